"""Katib's controller rules, pure: the GetSuggestions request, the reply's use, settings, stops.

The one place where this project writes down what Katib's experiment and suggestion controllers
do (kubeflow/katib ``pkg/controller.v1beta1/suggestion/suggestionclient`` and
``experiment/experiment_controller.go``), so that ``dcsa run``, the benchmarks and the tests send
the requests Katib sends:

- ``requests`` = all trials + the trials to add − EarlyStopped trials without an observation;
  ``current_request_number`` = ``requests`` − suggestions already made, no call when ≤ 0
  (suggestions made but not yet trials are used first); ``total_request_number`` = ``requests``.
- every trial is sent except MetricsUnavailable ones and EarlyStopped ones without an
  observation, with its *last* condition, metric values picked by the metric's strategy
  (``min``/``max`` falling back to ``latest`` when unavailable; no strategy sends ""), times as
  ``2006-01-02T15:04:05Z`` ("" when unset), and ``spec.labels`` as the Trial's spec holds them,
  which Katib never fills (reply labels go to the Trial's metadata only).
- the Experiment's algorithm settings are overwritten by name by the settings the service
  returned earlier (``reply.algorithm``), new names appended.

No I/O, no clock, no gRPC of its own: inputs are plain values (and, for ``suggest`` and
``run_synchronous``, the callables that call the service and finish trials), outputs protobuf
messages or plain values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from .._generated import api_pb2 as pb
from ..core.space import SearchSpace
from ..katib import convert
from ..katib.convert import text

#: Katib's ``timeFormat`` (Go's reference time 2006-01-02T15:04:05Z), always UTC.
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
#: Katib's ``consts.UnavailableMetricValue``: a min or max the collector could not compute.
UNAVAILABLE = "unavailable"

# Trial conditions, as Katib names them.
CREATED = "Created"
RUNNING = "Running"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
KILLED = "Killed"
METRICS_UNAVAILABLE = "MetricsUnavailable"
EARLY_STOPPED = "EarlyStopped"
ACTIVE = frozenset({CREATED, RUNNING})

_CONDITIONS = {
    CREATED: pb.TrialStatus.CREATED,
    RUNNING: pb.TrialStatus.RUNNING,
    SUCCEEDED: pb.TrialStatus.SUCCEEDED,
    KILLED: pb.TrialStatus.KILLED,
    FAILED: pb.TrialStatus.FAILED,
    EARLY_STOPPED: pb.TrialStatus.EARLYSTOPPED,
}

# Stop reasons, Katib's where Katib has one.
GOAL_REACHED = "ExperimentGoalReached"
MAX_TRIALS = "ExperimentMaxTrialsReached"
MAX_FAILED = "ExperimentMaxFailedTrialsReached"


class ReplyError(Exception):
    """The reply cannot be used (Katib drops it and calls again)."""


@dataclass(frozen=True, kw_only=True)
class Metric:
    """One metric of a Trial's observation, as Katib's metrics collector stores it."""

    name: str
    min: str = UNAVAILABLE
    max: str = UNAVAILABLE
    latest: str = ""

    @classmethod
    def reduced(cls, name: str, value: str) -> Metric:
        """A metric known only by its reduced value (min, max and latest are that value)."""
        return cls(name=name, min=value, max=value, latest=value)


@dataclass(frozen=True)
class Condition:
    """One entry of a Trial's ``status.conditions``: its type and whether its status is True."""

    type: str
    true: bool = True


@dataclass(frozen=True, kw_only=True)
class Objective:
    """A Trial's (or the Experiment's) objective; ``strategies`` maps metric -> min/max/latest."""

    type: str  # "minimize", "maximize" or "" (unknown)
    metric: str
    additional: tuple[str, ...] = ()
    goal: float | None = None
    strategies: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class TrialView:
    """What the controller reads from a Trial custom resource.

    ``conditions`` in the order Katib appended them (only the last one's type is sent);
    ``observation`` None when the Trial has none; ``spec_labels`` the Trial's *spec* labels,
    which Katib's experiment controller never sets.
    """

    name: str
    objective: Objective
    assignments: Sequence[tuple[str, str]]
    conditions: Sequence[Condition] = ()
    start_time: datetime | None = None
    completion_time: datetime | None = None
    observation: Sequence[Metric] | None = None
    spec_labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def condition(self) -> str | None:
        return self.conditions[-1].type if self.conditions else None

    def has(self, condition: str) -> bool:
        """Katib's ``hasCondition``: a condition of this type whose status is True."""
        return any(c.type == condition and c.true for c in self.conditions)

    @property
    def observation_available(self) -> bool:
        # Katib's IsObservationAvailable: an objective metric value other than "unavailable"
        for m in self.observation or ():
            if m.name == self.objective.metric:
                return m.latest != UNAVAILABLE
        return False


@dataclass(frozen=True, kw_only=True)
class Assignment:
    """One suggestion as stored in the Suggestion's status."""

    name: str
    assignments: tuple[tuple[str, str], ...]
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class SuggestionState:
    """The Suggestion custom resource: ``requests`` (spec) and what its status holds."""

    requests: int = 0
    suggestions: tuple[Assignment, ...] = ()
    algorithm_settings: tuple[tuple[str, str], ...] = ()

    @property
    def suggestion_count(self) -> int:
        return len(self.suggestions)


def succeeded(
    made: Assignment,
    objective: Objective,
    value: str,
    *,
    start: datetime | None = None,
    completion: datetime | None = None,
) -> TrialView:
    """The Trial of a suggestion that Succeeded with its objective metric at ``value`` (a trial
    of ``run_synchronous``'s ``evaluate``)."""
    return TrialView(
        name=made.name,
        objective=objective,
        assignments=made.assignments,
        conditions=(Condition(SUCCEEDED),),
        start_time=start,
        completion_time=completion,
        observation=(Metric.reduced(objective.metric, value),),
    )


# ---- settings --------------------------------------------------------------------------------
def merge_settings(
    base: Sequence[tuple[str, str]], updates: Sequence[tuple[str, str]]
) -> tuple[tuple[str, str], ...]:
    """Katib's merge of algorithm settings: by name, overwriting in place, new ones appended."""
    out = list(base)
    index = {n: i for i, (n, _v) in enumerate(out)}
    for name, value in updates:
        if name in index:
            out[index[name]] = (name, value)
        else:
            index[name] = len(out)
            out.append((name, value))
    return tuple(out)


def with_settings(
    experiment: pb.Experiment, status_settings: Sequence[tuple[str, str]]
) -> pb.Experiment:
    """A copy of ``experiment`` with the Suggestion status's settings merged in (by name)."""
    out = pb.Experiment()
    out.CopyFrom(experiment)
    algorithm = out.spec.algorithm
    merged = merge_settings(
        [(s.name, s.value) for s in algorithm.algorithm_settings], status_settings
    )
    del algorithm.algorithm_settings[:]
    for name, value in merged:
        algorithm.algorithm_settings.add(name=name, value=value)
    return out


def experiment_of_space(
    name: str,
    space: SearchSpace,
    *,
    algorithm: str,
    settings: Mapping[str, str],
    type: str = "minimize",
    metric: str = "loss",
    parallel: int | None = None,
    max_trials: int | None = None,
) -> pb.Experiment:
    """An Experiment as Katib sends it, over a core search space (tests and in-process
    benchmarks): ``space_to_pb``'s parameters, the objective, the algorithm and its settings."""
    out = pb.Experiment(name=name)
    out.spec.parameter_specs.parameters.extend(convert.space_to_pb(space))
    out.spec.objective.CopyFrom(convert.objective_to_pb(type=type, metric=metric))
    out.spec.algorithm.algorithm_name = algorithm
    for k, v in settings.items():
        out.spec.algorithm.algorithm_settings.add(name=k, value=v)
    if parallel is not None:
        out.spec.parallel_trial_count = parallel
    if max_trials is not None:
        out.spec.max_trial_count = max_trials
    return out


# ---- trials ----------------------------------------------------------------------------------
def format_time(moment: datetime | None) -> str:
    """A Trial time as Katib sends it: ``2006-01-02T15:04:05Z``, "" when unset."""
    return "" if moment is None else moment.strftime(TIME_FORMAT)


def parse_time(text: str | None) -> datetime | None:
    """The inverse of :func:`format_time` ("" or None gives None)."""
    return datetime.strptime(text, TIME_FORMAT) if text else None


def objective_to_pb(objective: Objective) -> pb.ObjectiveSpec:
    """The ObjectiveSpec Katib sends (metric strategies are not part of the wire format)."""
    return convert.objective_to_pb(
        type=objective.type,
        metric=objective.metric,
        additional=objective.additional,
        goal=objective.goal,
    )


def observation_to_pb(
    strategies: Mapping[str, str], observation: Sequence[Metric] | None
) -> pb.Observation:
    """Katib's ``convertTrialObservation``: each metric's value by its strategy."""
    out = pb.Observation()
    for m in observation or ():
        strategy = strategies.get(m.name)
        if strategy == "min":
            value = m.latest if m.min == UNAVAILABLE else m.min
        elif strategy == "max":
            value = m.latest if m.max == UNAVAILABLE else m.max
        elif strategy == "latest":
            value = m.latest
        else:
            value = ""
        out.metrics.add(name=m.name, value=value)
    return out


def condition_to_pb(condition: str | None) -> pb.TrialStatus.TrialConditionType.ValueType:
    """Katib's ``convertTrialConditionType``; no condition is CREATED (the proto default)."""
    if condition is None:
        return pb.TrialStatus.CREATED
    return _CONDITIONS.get(condition, pb.TrialStatus.UNKNOWN)


def is_sent(trial: TrialView) -> bool:
    """Whether Katib sends this trial: not MetricsUnavailable, not EarlyStopped without an
    observation (any such condition whose status is True, as Katib checks)."""
    if trial.has(METRICS_UNAVAILABLE):
        return False
    return not (trial.has(EARLY_STOPPED) and not trial.observation_available)


def trial_to_pb(trial: TrialView) -> pb.Trial:
    """Katib's ``ConvertTrials`` for one trial that :func:`is_sent`."""
    out = pb.Trial(name=trial.name)
    out.spec.objective.CopyFrom(objective_to_pb(trial.objective))
    for name, value in trial.assignments:
        out.spec.parameter_assignments.assignments.add(name=name, value=value)
    for key, value in trial.spec_labels.items():
        out.spec.labels[key] = value
    out.status.start_time = format_time(trial.start_time)
    out.status.completion_time = format_time(trial.completion_time)
    out.status.condition = condition_to_pb(trial.condition)
    out.status.observation.CopyFrom(
        observation_to_pb(trial.objective.strategies, trial.observation)
    )
    return out


def trials_to_pb(trials: Sequence[TrialView]) -> list[pb.Trial]:
    """Every trial Katib sends, in the given order."""
    return [trial_to_pb(t) for t in trials if is_sent(t)]


# ---- requests and replies --------------------------------------------------------------------
def requests_for(trials: Sequence[TrialView], add: int) -> int:
    """The Suggestion's ``spec.requests`` after the experiment controller wants ``add`` more
    trials: all trials + ``add`` − EarlyStopped trials without an observation."""
    waiting = sum(t.has(EARLY_STOPPED) and not t.observation_available for t in trials)
    return len(trials) + add - waiting


def unused(state: SuggestionState, trials: Sequence[TrialView]) -> tuple[Assignment, ...]:
    """Suggestions already made that are not trials yet: Katib creates these without a call."""
    names = {t.name for t in trials}
    if state.suggestion_count <= len(trials):
        return ()
    return tuple(s for s in state.suggestions if s.name not in names)


def build_request(
    experiment: pb.Experiment, state: SuggestionState, trials: Sequence[TrialView]
) -> pb.GetSuggestionsRequest | None:
    """The GetSuggestionsRequest Katib's suggestion controller sends, or None (no call) when
    the Suggestion already holds ``requests`` suggestions.

    Args:
        experiment: the Experiment as Katib converts it (its own algorithm settings).
        state: the Suggestion: ``requests``, suggestions made, settings the service returned.
        trials: every Trial of the Experiment.
    """
    current = state.requests - state.suggestion_count
    if current <= 0:
        return None
    return pb.GetSuggestionsRequest(
        experiment=with_settings(experiment, state.algorithm_settings),
        trials=trials_to_pb(trials),
        current_request_number=current,
        total_request_number=state.requests,
    )


def accept_reply(
    state: SuggestionState,
    request: pb.GetSuggestionsRequest,
    reply: pb.GetSuggestionsReply,
    *,
    fresh_name: Callable[[int], str],
) -> SuggestionState:
    """The Suggestion after a reply: suggestions appended (a reply's trial name, else
    ``fresh_name(i)``, ``i`` the suggestion's index in the Suggestion), labels kept for the
    Trial's metadata, ``reply.algorithm`` merged into the status settings by name.

    Raises:
        ReplyError: the reply has not exactly ``current_request_number`` assignments.
    """
    if len(reply.parameter_assignments) != request.current_request_number:
        raise ReplyError(
            f"the response contains unexpected trials: {len(reply.parameter_assignments)} "
            f"assignments, {request.current_request_number} requested"
        )
    made = tuple(
        Assignment(
            name=item.trial_name or fresh_name(state.suggestion_count + i),
            assignments=tuple((a.name, a.value) for a in item.assignments),
            labels=dict(item.labels),
        )
        for i, item in enumerate(reply.parameter_assignments)
    )
    settings = state.algorithm_settings
    if reply.HasField("algorithm"):
        settings = merge_settings(
            settings, [(s.name, s.value) for s in reply.algorithm.algorithm_settings]
        )
    return SuggestionState(
        requests=state.requests,
        suggestions=(*state.suggestions, *made),
        algorithm_settings=settings,
    )


@dataclass(frozen=True, kw_only=True)
class Suggested:
    """One round of the suggestion controller: the request sent (None: no call was needed), the
    Suggestion after it, and the suggestions the experiment controller turns into Trials now."""

    request: pb.GetSuggestionsRequest | None
    state: SuggestionState
    new: tuple[Assignment, ...]


def suggest(
    experiment: pb.Experiment,
    state: SuggestionState,
    trials: Sequence[TrialView],
    add: int,
    call: Callable[[pb.GetSuggestionsRequest], pb.GetSuggestionsReply],
    *,
    fresh_name: Callable[[int], str],
) -> Suggested:
    """The experiment controller wants ``add`` more trials: ``requests`` is raised (its earlier
    value in ``state`` is ignored), the service is called when the Suggestion holds too few
    suggestions, and up to ``add`` suggestions that are not Trials yet come back in ``new``.

    ``call`` sends the request (a gRPC stub's ``GetSuggestions`` or the service in process);
    whatever it raises propagates, as does :class:`ReplyError` for a reply of the wrong size.
    """
    state = replace(state, requests=requests_for(trials, add))
    request = build_request(experiment, state, trials)
    if request is not None:
        state = accept_reply(state, request, call(request), fresh_name=fresh_name)
    return Suggested(request=request, state=state, new=unused(state, trials)[: max(add, 0)])


def run_synchronous(
    experiment: pb.Experiment,
    call: Callable[[pb.GetSuggestionsRequest], pb.GetSuggestionsReply],
    evaluate: Callable[[Assignment, int], TrialView],
    *,
    parallel: int,
    max_trials: int,
) -> list[TrialView]:
    """Katib's controller over an experiment whose trials finish as soon as they are created
    (the benchmarks and the tests; ``dcsa run`` runs real processes with the same rules).

    Each round asks for ``parallel`` trials (fewer at the end), turns the suggestions into
    Trials named as the reply names them (``<experiment>-<i:04d>`` when it names none) and
    ``evaluate(suggestion, i)`` gives the finished Trial ``i``. Returns every Trial in order;
    what ``call`` raises, or a :class:`ReplyError`, ends the loop (the caller keeps what
    ``evaluate`` saw).
    """
    trials: list[TrialView] = []
    state = SuggestionState()
    while len(trials) < max_trials:
        add = trials_to_add(
            parallel=parallel, max_trials=max_trials, active=0, completed=len(trials)
        )
        step = suggest(
            experiment,
            state,
            trials,
            add,
            call,
            fresh_name=lambda i: f"{experiment.name}-{i:04d}",
        )
        if not step.new:
            raise ReplyError("the Suggestion holds no suggestion to turn into a Trial")
        state = step.state
        for made in step.new:
            trials.append(evaluate(made, len(trials)))
    return trials


def trials_to_add(*, parallel: int, max_trials: int | None, active: int, completed: int) -> int:
    """The experiment controller's ``addCount``: fill up to ``parallel`` active trials, never past
    ``maxTrialCount`` − completed ones."""
    required = parallel if max_trials is None else min(parallel, max_trials - completed)
    return max(0, required - active)


# ---- stop conditions -------------------------------------------------------------------------
def objective_value(condition: str, metrics: Mapping[str, str], metric: str) -> float | None:
    """The objective of a Succeeded trial as a number, else None."""
    if condition != SUCCEEDED:
        return None
    try:
        return float(metrics[metric])
    except (KeyError, ValueError):
        return None


@dataclass(frozen=True, kw_only=True)
class Stop:
    """Why an experiment ends: ``status`` Succeeded or Failed, Katib's ``reason``, a message."""

    status: str
    reason: str
    message: str


def goal_reached(*, value: float | None, target: float | None, maximize: bool) -> bool:
    """Whether the best objective ``value`` reached the objective's goal."""
    if value is None or target is None:
        return False
    return value >= target if maximize else value <= target


def stop_condition(
    *,
    best: tuple[str, str, float] | None,
    metric: str,
    target: float | None,
    maximize: bool,
    failed: int,
    max_failed: int | None,
    active: int,
    total: int,
    max_trials: int,
) -> Stop | None:
    """Katib's end of an experiment: goal reached, more than ``maxFailedTrialCount`` failed,
    or ``maxTrialCount`` trials made and none active.

    Args:
        best: (trial name, objective as printed, objective value) of the best trial, if any.
    """
    if best is not None and goal_reached(value=best[2], target=target, maximize=maximize):
        assert target is not None
        op = ">=" if maximize else "<="
        return Stop(
            status="Succeeded",
            reason=GOAL_REACHED,
            message=f"{metric}={best[1]} of trial {best[0]} reached the goal ({op} {target:g})",
        )
    if max_failed is not None and failed > max_failed:
        return Stop(
            status="Failed",
            reason=MAX_FAILED,
            message=f"{failed} trials failed, more than maxFailedTrialCount={max_failed}",
        )
    if active == 0 and total >= max_trials:
        return Stop(
            status="Succeeded",
            reason=MAX_TRIALS,
            message=f"all {max_trials} trials finished (maxTrialCount={max_trials})",
        )
    return None


# ---- the Experiment ----------------------------------------------------------------------------
def objective_from_spec(objective: Any) -> Objective:
    """The :class:`Objective` of an Experiment's (or Trial's) ``objective`` mapping."""
    obj = objective if isinstance(objective, Mapping) else {}
    goal = obj.get("goal")
    strategies = obj.get("metricStrategies")
    return Objective(
        type=text(obj.get("type")),
        metric=text(obj.get("objectiveMetricName")),
        additional=tuple(text(m) for m in obj.get("additionalMetricNames") or ()),
        goal=None if goal is None else float(goal),
        strategies={
            text(s.get("name")): text(s.get("value"))
            for s in (strategies if isinstance(strategies, list) else ())
            if isinstance(s, Mapping)
        },
    )
