"""The one Katib converter: the wire format (protobuf) <-> core types, and Katib's custom
resources (an Experiment's YAML mapping) -> the wire format, as Katib's controller converts them.

Katib's strings are parsed once here into typed objects and back. Directions:

- wire -> core: :func:`to_space` (:func:`to_parameter`), :func:`to_objective`,
  :func:`to_settings`, :func:`to_trial`, :func:`to_request`;
- core -> wire: :func:`to_reply`, :func:`from_trial`;
- custom resource -> wire (Katib's ``ConvertExperiment``): :func:`experiment_to_pb`,
  :func:`parameters_to_pb`, :func:`objective_to_pb`;
- custom resource -> core: :func:`space_from_parameters` (the two steps above, for code that
  reads Experiment objects, such as the TuningSchedule operator).

The controller's rules (which trials a request carries, request numbers, settings merge) are in
``suggestion_service.local.controller``, which builds its requests with these functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._generated import api_pb2 as pb
from ..core.engine import SuggestRequest, SuggestResponse, format_mix
from ..core.errors import InvalidObjectiveError, InvalidRequestError, InvalidSearchSpaceError, echo
from ..core.history import Goal, Objective, TrialRecord, TrialState
from ..core.settings import LEDGER_SETTING, MIX_SETTING
from ..core.space import (
    Parameter,
    ParameterType,
    SearchSpace,
    format_double,
    make_parameter,
    make_space,
)

_TYPES = {
    pb.DOUBLE: "double",
    pb.INT: "int",
    pb.DISCRETE: "discrete",
    pb.CATEGORICAL: "categorical",
}
_DISTRIBUTIONS = {
    pb.DISTRIBUTION_UNSPECIFIED: "uniform",
    pb.UNIFORM: "uniform",
    pb.LOG_UNIFORM: "logUniform",
    pb.NORMAL: "normal",
    pb.LOG_NORMAL: "logNormal",
}
_STATES = {
    pb.TrialStatus.CREATED: TrialState.CREATED,
    pb.TrialStatus.RUNNING: TrialState.RUNNING,
    pb.TrialStatus.SUCCEEDED: TrialState.SUCCEEDED,
    pb.TrialStatus.KILLED: TrialState.KILLED,
    pb.TrialStatus.FAILED: TrialState.FAILED,
    pb.TrialStatus.METRICSUNAVAILABLE: TrialState.METRICS_UNAVAILABLE,
    pb.TrialStatus.EARLYSTOPPED: TrialState.EARLY_STOPPED,
    pb.TrialStatus.UNKNOWN: TrialState.UNKNOWN,
}


def to_space(spec: pb.ExperimentSpec) -> SearchSpace:
    """Parse ``spec.parameter_specs`` into a validated search space."""
    return make_space(
        [
            to_parameter(ps, f"spec.parameters[{i}]")
            for i, ps in enumerate(spec.parameter_specs.parameters)
        ]
    )


def to_parameter(ps: pb.ParameterSpec, where: str) -> Parameter:
    """Parse one ParameterSpec (an unset distribution is uniform, as Katib's webhook fills).

    Raises:
        InvalidSearchSpaceError: naming ``where`` and what is wrong.
    """
    type_name = _TYPES.get(ps.parameter_type)
    if type_name is None:
        raise InvalidSearchSpaceError(
            f"{where}.parameterType",
            f"parameter {echo(ps.name)} has unknown type {ps.parameter_type}; allowed: "
            "double, int, discrete, categorical",
        )
    fs = ps.feasible_space
    dist = _DISTRIBUTIONS.get(fs.distribution)
    if dist is None:
        raise InvalidSearchSpaceError(
            f"{where}.feasibleSpace.distribution",
            f"unknown distribution {fs.distribution}; allowed: uniform, logUniform, normal, "
            "logNormal",
        )
    return make_parameter(
        name=ps.name,
        type_name=type_name,
        min_text=fs.min,
        max_text=fs.max,
        step_text=fs.step,
        choices=list(fs.list),
        distribution=dist,
        where=where,
    )


def space_to_pb(space: SearchSpace) -> list[pb.ParameterSpec]:
    """The inverse of :func:`to_space`: each parameter as Katib sends it (``to_space`` of the
    result equals ``space``). Tests and in-process benchmarks build requests with it."""
    out = []
    for p in space.parameters:
        fs = pb.FeasibleSpace(distribution=_CR_DISTRIBUTIONS[p.distribution.value])
        if p.type in (ParameterType.DISCRETE, ParameterType.CATEGORICAL):
            fs.list.extend(p.labels)
        elif p.type is ParameterType.INT:
            fs.min, fs.max = str(int(p.low)), str(int(p.high))
            fs.step = "" if p.step in (None, 1.0) else str(int(p.step))
        else:
            fs.min, fs.max = format_double(p.low), format_double(p.high)
            fs.step = "" if p.step is None else format_double(p.step)
        out.append(
            pb.ParameterSpec(
                name=p.name, parameter_type=_PARAMETER_TYPES[p.type.value], feasible_space=fs
            )
        )
    return out


def to_objective(spec: pb.ExperimentSpec) -> Objective:
    obj = spec.objective
    if obj.type == pb.MAXIMIZE:
        goal = Goal.MAXIMIZE
    elif obj.type == pb.MINIMIZE:
        goal = Goal.MINIMIZE
    else:
        raise InvalidObjectiveError("spec.objective.type", "must be minimize or maximize")
    if not obj.objective_metric_name:
        raise InvalidObjectiveError("spec.objective.objectiveMetricName", "must not be empty")
    # proto3 cannot tell an unset goal from 0; the core only reports it, so keep it as sent
    return Objective(goal=goal, metric=obj.objective_metric_name, target=obj.goal)


def to_settings(spec: pb.ExperimentSpec) -> dict[str, str]:
    """Algorithm settings by name (a later duplicate overrides, as Katib's merge does)."""
    return {s.name: s.value for s in spec.algorithm.algorithm_settings}


_CONDITIONS = {state: condition for condition, state in _STATES.items()}


def from_trial(record: TrialRecord) -> pb.Trial:
    """A core trial on the wire as Katib sends it (the inverse of :func:`to_trial`): name,
    assignments, condition, observation; never labels (Katib never sets a Trial's spec labels)."""
    out = pb.Trial(name=record.name)
    for name, value in record.assignments.items():
        out.spec.parameter_assignments.assignments.add(name=name, value=value)
    out.status.condition = _CONDITIONS[record.state]
    for name, value in record.metrics.items():
        out.status.observation.metrics.add(name=name, value=value)
    return out


def to_trial(trial: pb.Trial, *, names: dict[str, str] | None = None) -> TrialRecord:
    """A trial in core terms. ``names``, shared by the trials of one request, makes them share
    one string per parameter name (each trial repeats every name; 10,000 trials of 2,000
    parameters would otherwise hold 20 million copies)."""
    pairs = trial.spec.parameter_assignments.assignments
    if names is None:
        assignments = {a.name: a.value for a in pairs}
    else:
        assignments = {names.setdefault(a.name, a.name): a.value for a in pairs}
    return TrialRecord(
        name=trial.name,
        assignments=assignments,
        state=_STATES.get(trial.status.condition, TrialState.UNKNOWN),
        metrics={m.name: m.value for m in trial.status.observation.metrics},
        labels=dict(trial.spec.labels),
    )


#: Most suggestions an experiment may have requested (``total_request_number``); Katib's own
#: experiments stay far below (each trial is a pod). The quasi-random sequence costs no memory
#: with it (``core.sampling`` jumps to the position and draws a chunk at a time), so the core
#: answers any int32 total; this is the wire's documented limit (README).
MAX_TOTAL_REQUESTS = 100_000


def to_request(request: pb.GetSuggestionsRequest) -> SuggestRequest:
    spec = request.experiment.spec
    if request.total_request_number > MAX_TOTAL_REQUESTS:
        raise InvalidRequestError(
            "total_request_number",
            f"must be at most {MAX_TOTAL_REQUESTS}, got {request.total_request_number}",
        )
    names: dict[str, str] = {}  # one string per parameter name, shared by every trial
    return SuggestRequest(
        algorithm=spec.algorithm.algorithm_name,
        experiment=request.experiment.name or "experiment",
        space=to_space(spec),
        objective=to_objective(spec),
        settings=to_settings(spec),
        trials=[to_trial(t, names=names) for t in request.trials],
        n=request.current_request_number,
        total_requested=request.total_request_number,
    )


def to_reply(response: SuggestResponse, algorithm: str) -> pb.GetSuggestionsReply:
    """Build the reply; ``algorithm`` carries the ledger for Katib to store and send back."""
    reply = pb.GetSuggestionsReply()
    for s in response.suggestions:
        item = reply.parameter_assignments.add(trial_name=s.trial_name)
        for name, value in s.assignments.items():
            item.assignments.add(name=name, value=value)
        _copy_labels(item.labels, s.labels)
    reply.algorithm.algorithm_name = algorithm
    reply.algorithm.algorithm_settings.add(name=LEDGER_SETTING, value=response.ledger)
    if response.shares:
        # dcsa-bo's current mix, for people (kubectl get experiment) and dcsa run's live view
        reply.algorithm.algorithm_settings.add(name=MIX_SETTING, value=format_mix(response.shares))
    return reply


def _copy_labels(target: object, labels: Mapping[str, str]) -> None:
    for k, v in labels.items():
        target[k] = v  # type: ignore[index]


# ---- Katib's custom resources -> the wire (Katib's ConvertExperiment) ------------------------
_PARAMETER_TYPES = {
    "double": pb.DOUBLE,
    "int": pb.INT,
    "discrete": pb.DISCRETE,
    "categorical": pb.CATEGORICAL,
}
_CR_DISTRIBUTIONS = {
    "uniform": pb.UNIFORM,
    "logUniform": pb.LOG_UNIFORM,
    "normal": pb.NORMAL,
    "logNormal": pb.LOG_NORMAL,
}
_OBJECTIVE_TYPES = {"maximize": pb.MAXIMIZE, "minimize": pb.MINIMIZE}


def text(value: Any) -> str:
    """A YAML scalar as Katib's string (YAML may have parsed ``"0.1"`` written bare as a float)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def objective_to_pb(
    *, type: str, metric: str, additional: Sequence[str] = (), goal: float | None = None
) -> pb.ObjectiveSpec:
    """An ObjectiveSpec as Katib sends it (``type`` minimize/maximize, else UNKNOWN; metric
    strategies are not part of the wire format)."""
    out = pb.ObjectiveSpec(
        type=_OBJECTIVE_TYPES.get(type, pb.UNKNOWN),
        objective_metric_name=metric,
        additional_metric_names=list(additional),
    )
    if goal is not None:
        out.goal = goal
    return out


def parameters_to_pb(parameters: Any) -> list[pb.ParameterSpec]:
    """Katib's ``convertParameters`` of a ``parameters`` list: an unknown type or distribution
    is the zero value (the mutating webhook has filled ``distribution: uniform`` before this
    runs in a cluster)."""
    out = []
    for raw in _list(parameters):
        p = _dict(raw)
        fs = _dict(p.get("feasibleSpace"))
        out.append(
            pb.ParameterSpec(
                name=text(p.get("name")),
                parameter_type=_PARAMETER_TYPES.get(text(p.get("parameterType")), pb.UNKNOWN_TYPE),
                feasible_space=pb.FeasibleSpace(
                    max=text(fs.get("max")),
                    min=text(fs.get("min")),
                    list=[text(v) for v in _list(fs.get("list"))],
                    step=text(fs.get("step")),
                    distribution=_CR_DISTRIBUTIONS.get(
                        text(fs.get("distribution")), pb.DISTRIBUTION_UNSPECIFIED
                    ),
                ),
            )
        )
    return out


def space_from_parameters(parameters: Any) -> SearchSpace:
    """The search space of an Experiment's ``parameters`` list (mappings as in the YAML), as
    the service parses it once Katib has converted it: :func:`parameters_to_pb`, then
    :func:`to_space`.

    What that conversion would turn into a zero value is refused first, with the text as
    written, as Katib's webhook refuses it before the conversion runs: an entry or
    ``feasibleSpace`` that is not a mapping, an unknown ``parameterType`` or ``distribution``.
    A missing distribution is uniform (the webhook's default).

    Raises:
        InvalidSearchSpaceError: naming ``spec.parameters[i]...`` and what is wrong.
    """
    for i, raw in enumerate(_list(parameters)):
        where = f"spec.parameters[{i}]"
        if not isinstance(raw, Mapping):
            raise InvalidSearchSpaceError(where, "must be an object")
        fs = raw.get("feasibleSpace") or {}
        if not isinstance(fs, Mapping):
            raise InvalidSearchSpaceError(f"{where}.feasibleSpace", "must be an object")
        type_name = text(raw.get("parameterType"))
        if type_name not in _PARAMETER_TYPES:
            raise InvalidSearchSpaceError(
                f"{where}.parameterType",
                f"{echo(type_name)} is not a known type; allowed: {list(_PARAMETER_TYPES)}",
            )
        dist = text(fs.get("distribution"))
        if dist and dist not in _CR_DISTRIBUTIONS:
            raise InvalidSearchSpaceError(
                f"{where}.feasibleSpace.distribution",
                f"{echo(dist)} is not a known distribution; allowed: {list(_CR_DISTRIBUTIONS)}",
            )
    spec = pb.ExperimentSpec()
    spec.parameter_specs.parameters.extend(parameters_to_pb(parameters))
    return to_space(spec)


def experiment_to_pb(name: str, spec: Mapping[str, Any]) -> pb.Experiment:
    """Katib's ``ConvertExperiment`` of an Experiment's ``spec`` (a mapping as in the YAML):
    algorithm, objective, parameters; goal, nasConfig, counts and early stopping when set."""
    out = pb.Experiment(name=name)
    s = out.spec
    alg = _dict(spec.get("algorithm"))
    s.algorithm.algorithm_name = text(alg.get("algorithmName"))
    for raw in _list(alg.get("algorithmSettings")):
        setting = _dict(raw)
        s.algorithm.algorithm_settings.add(
            name=text(setting.get("name")), value=text(setting.get("value"))
        )
    obj = _dict(spec.get("objective"))
    goal = obj.get("goal")
    s.objective.CopyFrom(
        objective_to_pb(
            type=text(obj.get("type")),
            metric=text(obj.get("objectiveMetricName")),
            additional=[text(m) for m in _list(obj.get("additionalMetricNames"))],
            goal=None if goal is None else float(goal),
        )
    )
    s.parameter_specs.parameters.extend(parameters_to_pb(spec.get("parameters")))
    nas = spec.get("nasConfig")
    if isinstance(nas, Mapping):
        graph = _dict(nas.get("graphConfig"))
        s.nas_config.graph_config.num_layers = _int(graph.get("numLayers")) or 0
        s.nas_config.graph_config.input_sizes.extend(
            v for v in _list(graph.get("inputSizes")) if _int(v) is not None
        )
        s.nas_config.graph_config.output_sizes.extend(
            v for v in _list(graph.get("outputSizes")) if _int(v) is not None
        )
        for raw in _list(nas.get("operations")):
            op = _dict(raw)
            operation = s.nas_config.operations.operation.add(
                operation_type=text(op.get("operationType"))
            )
            operation.parameter_specs.parameters.extend(parameters_to_pb(op.get("parameters")))
    parallel, max_trials = _int(spec.get("parallelTrialCount")), _int(spec.get("maxTrialCount"))
    if parallel is not None:
        s.parallel_trial_count = parallel
    if max_trials is not None:
        s.max_trial_count = max_trials
    early = spec.get("earlyStopping")
    if isinstance(early, Mapping):
        s.early_stopping.algorithm_name = text(early.get("algorithmName"))
        for raw in _list(early.get("algorithmSettings")):
            setting = _dict(raw)
            s.early_stopping.algorithm_settings.add(
                name=text(setting.get("name")), value=text(setting.get("value"))
            )
    return out
