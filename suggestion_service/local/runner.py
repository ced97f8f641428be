"""Katib's experiment controller in miniature: trials as local processes, suggestions over gRPC.

The loop, as Katib runs it: keep ``parallelTrialCount`` trials active, ask for
``current_request_number`` new ones with every trial's latest condition and reduced observation,
send the reply's ``algorithm`` settings back merged into the experiment's, collect metrics when a
trial ends, and stop on the goal, on ``maxTrialCount`` or when more than ``maxFailedTrialCount``
trials failed.

The controller's rules (requests, settings merge, stop conditions) are pure functions in
:mod:`.controller`; trials as processes (launch, deadline, kill, metrics) are :mod:`.trials`; this
module is the loop between them, the state directory and the signals.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import signal
import string
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import grpc

from .._generated import api_pb2 as pb
from .._generated import api_pb2_grpc as pb_grpc
from ..core.asha import (
    ETA_SETTING,
    PROMOTION_SETTING,
    RESOURCE_SETTING,
    Ladder,
    RungView,
    asha_settings,
    check_asha,
    ladder_view,
    rung_state,
)
from ..core.engine import parse_mix
from ..core.errors import InvalidArgumentError
from ..core.history import Objective, build_history
from ..core.settings import MIX_SETTING, SettingsTable
from ..katib import convert
from . import controller as ctl
from .experiment import Experiment
from .state import (
    ACTIVE,
    CREATED,
    FAILED,
    KILLED,
    METRICS_UNAVAILABLE,
    RUNNING,
    SUCCEEDED,
    Budget,
    RunState,
    StateDir,
    StateError,
    TrialRow,
    spec_digest,
    write_plot,
)
from .trials import TrialProcesses

log = logging.getLogger(__name__)

_ALNUM = string.ascii_lowercase + string.digits

# Stop reasons beyond Katib's (GOAL_REACHED, MAX_TRIALS, MAX_FAILED: see controller).
EXHAUSTED = "SearchSpaceExhausted"
SUGGESTION_FAILED = "SuggestionFailed"
INTERRUPTED = "Interrupted"


class RunError(Exception):
    """The run cannot start (bad state directory, unusable experiment)."""


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """How to run. ``parallel``/``max_trials`` override the Experiment's counts when set."""

    state_dir: Path
    parallel: int | None = None
    max_trials: int | None = None
    workdir: Path = field(default_factory=Path.cwd)
    poll_interval: float = 0.1
    kill_grace: float = 5.0
    rpc_timeout: float = 60.0
    #: seconds a trial may run (``--trial-timeout``); the trial template's
    #: ``activeDeadlineSeconds`` applies too, the smaller wins
    trial_timeout: float | None = None


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """What a display shows."""

    experiment: str
    algorithm: str
    max_trials: int | None
    succeeded: int
    failed: int
    killed: int
    running: int
    queued: int
    best: TrialRow | None
    best_value: float | None
    metric: str
    elapsed: float
    mix: Mapping[str, float] = field(default_factory=dict)  # dcsa-bo's share per slot policy
    #: ASHA (algorithm setting ``resource_name``): the budget parameter and its rungs
    resource: str | None = None
    rungs: tuple[RungView, ...] = ()

    @property
    def done(self) -> int:
        return self.succeeded + self.failed + self.killed


@dataclass(frozen=True, kw_only=True)
class RunResult:
    """How the run ended. ``status`` is Succeeded, Failed or Interrupted."""

    status: str
    reason: str
    message: str
    trials: tuple[TrialRow, ...]
    best: TrialRow | None
    elapsed: float
    state_dir: Path
    resource: str | None = None  # ASHA's budget parameter, when the experiment names one

    @property
    def exit_code(self) -> int:
        return {"Succeeded": 0, "Interrupted": 130}.get(self.status, 1)


class Reporter(Protocol):
    """Receives progress; see ``display`` for the terminal and plain-line versions."""

    def event(self, message: str) -> None: ...

    def progress(self, snapshot: Snapshot) -> None: ...


class NullReporter:
    def event(self, message: str) -> None:
        pass

    def progress(self, snapshot: Snapshot) -> None:
        pass


def objective_value(row: TrialRow, metric: str) -> float | None:
    """The objective of a Succeeded trial as a number, else None."""
    return ctl.objective_value(row.condition, row.metrics, metric)


def best_trial(trials: Sequence[TrialRow], metric: str, maximize: bool) -> TrialRow | None:
    scored = [(v, t) for t in trials if (v := objective_value(t, metric)) is not None]
    if not scored:
        return None
    pick = max if maximize else min
    return pick(scored, key=lambda vt: vt[0])[1]


def controller_objective(exp: Experiment) -> ctl.Objective:
    """The experiment's objective as Katib's controller holds it (metric strategies included)."""
    return ctl.Objective(
        type=exp.goal,
        metric=exp.objective_metric,
        additional=exp.additional_metrics,
        goal=exp.target,
        strategies=exp.strategies,
    )


def trial_view(row: TrialRow, objective: ctl.Objective) -> ctl.TrialView:
    """A trial row as Katib's controller reads the Trial: its one condition, its metrics
    (reduced when collected, so min, max and latest are that value), no spec labels (the
    reply's labels are the Trial's metadata labels, which Katib never sends back)."""
    return ctl.TrialView(
        name=row.name,
        objective=objective,
        assignments=tuple(row.assignments.items()),
        conditions=(ctl.Condition(row.condition),),
        start_time=ctl.parse_time(row.start_time),
        completion_time=ctl.parse_time(row.completion_time),
        observation=tuple(ctl.Metric.reduced(n, v) for n, v in row.metrics.items()),
    )


def asha_ladder(exp: Experiment) -> Ladder | None:
    """The experiment's ASHA ladder as the service builds it (settings ``resource_name`` and
    ``eta`` parsed by core's one declaration of them, the space by the Katib converter), or None
    when ``resource_name`` is unset or the settings are ones the service refuses."""
    spec = exp.to_pb().spec
    raw = convert.to_settings(spec)
    if RESOURCE_SETTING not in raw:
        return None
    try:
        parsed = SettingsTable(asha_settings()).parse(
            {k: raw[k] for k in (RESOURCE_SETTING, ETA_SETTING, PROMOTION_SETTING) if k in raw},
            algorithm=exp.algorithm,
        )
        return check_asha(convert.to_space(spec), parsed)
    except InvalidArgumentError as exc:  # validated before the run; a display never fails it
        log.warning("no rung view: %s", exc)
        return None


class RungTracker:
    """ASHA's rungs over the runner's trials, for the live view.

    The rung state is rebuilt as the service rebuilds it from a request: the trials Katib
    sends, converted as it sends them (:func:`trial_view`, ``controller.trials_to_pb``, then
    the Katib converter), a core History, then
    :func:`~suggestion_service.core.asha.rung_state`. So MetricsUnavailable trials, which Katib
    leaves out of requests, are on no rung. Recomputed only when the trials change (the runner
    replaces its trials tuple on every change), not per snapshot.
    """

    def __init__(self, exp: Experiment) -> None:
        self.ladder = asha_ladder(exp)
        self._trial_objective = controller_objective(exp)
        self._objective: Objective | None = None
        if self.ladder is not None:
            try:
                self._objective = convert.to_objective(exp.to_pb().spec)
            except InvalidArgumentError as exc:  # validated before the run
                log.warning("no rung view: %s", exc)
                self.ladder = None
        self._seen: tuple[TrialRow, ...] | None = None
        self._views: tuple[RungView, ...] = ()

    @property
    def resource(self) -> str | None:
        """The budget parameter's name, or None without ASHA."""
        return None if self.ladder is None else self.ladder.parameter.name

    @property
    def budget(self) -> Budget | None:
        """The budget for the convergence plot, or None without ASHA."""
        if self.ladder is None:
            return None
        return Budget(
            name=self.ladder.parameter.name,
            full=self.ladder.budgets[-1],
            label=self.ladder.labels[-1],
        )

    def views(self, trials: tuple[TrialRow, ...]) -> tuple[RungView, ...]:
        """Per rung, lowest first: budget and counts (empty without ASHA)."""
        if self.ladder is None or self._objective is None:
            return ()
        if trials is not self._seen:
            views = [trial_view(t, self._trial_objective) for t in trials]
            records = [convert.to_trial(t) for t in ctl.trials_to_pb(views)]
            history = build_history(self.ladder.space, self._objective, records)
            self._views = ladder_view(rung_state(self.ladder, history))
            self._seen = trials
        return self._views


class Runner:
    """Runs one Experiment to its end. Construct, then call :meth:`run` (from the main thread
    if Ctrl-C should stop it cleanly)."""

    def __init__(
        self,
        experiment: Experiment,
        stub: pb_grpc.SuggestionStub,
        options: RunOptions,
        *,
        reporter: Reporter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.exp = experiment
        self.stub = stub
        self.options = options
        self.reporter: Reporter = reporter or NullReporter()
        self.clock = clock
        self.state_dir = StateDir(options.state_dir)
        self.parallel = options.parallel or experiment.parallel
        self.max_trials = options.max_trials or experiment.max_trials
        self.maximize = experiment.goal == "maximize"
        self._stop = threading.Event()
        self._trials = TrialProcesses(
            experiment,
            self.state_dir,
            workdir=options.workdir,
            kill_grace=options.kill_grace,
            trial_timeout=options.trial_timeout,
            clock=clock,
        )
        self._unsaved = False
        self._halt: tuple[str, str, str] | None = None  # (status, reason, message): no new trials
        self._state = RunState(experiment=experiment.name, spec_digest=spec_digest(experiment))
        self._rungs = RungTracker(experiment)
        self._t0 = clock()

    # ---- public ---------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Stop as Ctrl-C does: terminate running trials, save, return Interrupted."""
        self._stop.set()

    def run(self) -> RunResult:
        """Run until a stop condition; always leaves the state directory saved.

        Raises:
            RunError: the state directory belongs to another experiment or another runner.
        """
        if self.max_trials is None:
            raise RunError(
                "spec.maxTrialCount is not set: set it in the Experiment or pass --max-trials"
            )
        try:
            self.state_dir.open()
        except StateError as exc:
            raise RunError(str(exc)) from None
        restore = self._install_signals()
        try:
            try:
                self._resume()
                status, reason, message = self._loop()
                self._finish_processes(interrupted=reason == INTERRUPTED)
                self._state = dataclasses.replace(self._state, status=status, stop_reason=reason)
                self._save()
            except StateError as exc:
                # the state can no longer be saved (full disk, read-only directory): stop the
                # trials (the finally below) and say why; the last saved state.json is intact
                self._unsaved = True
                raise RunError(f"{exc}; the run stopped, the last saved state is kept") from None
            self._plot()
            return RunResult(
                status=status,
                reason=reason,
                message=message,
                trials=self._state.trials,
                best=self._best(),
                elapsed=self.clock() - self._t0,
                state_dir=self.options.state_dir,
                resource=self._rungs.resource,
            )
        finally:
            self._finish_processes(interrupted=True)  # only does work after an exception
            restore()
            self.state_dir.close()

    # ---- loop -----------------------------------------------------------------------------
    def _loop(self) -> tuple[str, str, str]:
        while True:
            self._reap()
            stop = self._stop_condition()
            if stop is not None:
                return stop
            self._start_created()
            need = self._needed()
            if need > 0 and self._halt is None:
                self._suggest(need)
                self._start_created()
            self.reporter.progress(self.snapshot())
            self._stop.wait(self.options.poll_interval)

    def _stop_condition(self) -> tuple[str, str, str] | None:
        trials = self._state.trials
        if self._stop.is_set():
            return "Interrupted", INTERRUPTED, "stopped by the user; run again to resume"
        best = self._best()
        metric = self.exp.objective_metric
        active = sum(t.condition in ACTIVE for t in trials)
        assert self.max_trials is not None
        stop = ctl.stop_condition(
            best=None
            if best is None
            else (best.name, best.metrics[metric], float(best.metrics[metric])),
            metric=metric,
            target=self.exp.target,
            maximize=self.maximize,
            failed=sum(t.condition in (FAILED, METRICS_UNAVAILABLE) for t in trials),
            max_failed=self.exp.max_failed,
            active=active,
            total=len(trials),
            max_trials=self.max_trials,
        )
        if stop is not None:
            return stop.status, stop.reason, stop.message
        if active == 0 and self._halt is not None:
            return self._halt
        return None

    def _needed(self) -> int:
        trials = self._state.trials
        active = sum(t.condition in ACTIVE for t in trials)
        return ctl.trials_to_add(
            parallel=self.parallel,
            max_trials=self.max_trials,
            active=active,
            completed=len(trials) - active,
        )

    # ---- suggestions ----------------------------------------------------------------------
    def _objective(self) -> ctl.Objective:
        return controller_objective(self.exp)

    def _suggestion_state(self, need: int) -> ctl.SuggestionState:
        """The Suggestion as Katib's controller would hold it: every trial row was one
        suggestion (the runner turns a reply into trials at once), ``need`` more requested."""
        views = self._views()
        return ctl.SuggestionState(
            requests=ctl.requests_for(views, need),
            suggestions=tuple(
                ctl.Assignment(
                    name=t.name, assignments=tuple(t.assignments.items()), labels=t.labels
                )
                for t in self._state.trials
            ),
            algorithm_settings=self._state.algorithm_settings,
        )

    def _views(self) -> list[ctl.TrialView]:
        objective = self._objective()
        return [trial_view(t, objective) for t in self._state.trials]

    def request(self, need: int) -> pb.GetSuggestionsRequest | None:
        """The GetSuggestions request Katib's controller would send now (None: no call)."""
        return ctl.build_request(
            self.exp.to_pb(parallel=self.parallel, max_trials=self.max_trials),
            self._suggestion_state(need),
            self._views(),
        )

    def _suggest(self, need: int) -> None:
        names = {t.name for t in self._state.trials}
        before = self._suggestion_state(need)
        try:
            step = ctl.suggest(
                self.exp.to_pb(parallel=self.parallel, max_trials=self.max_trials),
                before,
                self._views(),
                need,
                lambda req: self.stub.GetSuggestions(req, timeout=self.options.rpc_timeout),
                fresh_name=lambda _i: self._fresh_name(names),
            )
        except grpc.RpcError as err:
            code, details = err.code(), err.details() or ""
            if code is grpc.StatusCode.FAILED_PRECONDITION:
                # Katib would retry forever and keep the Experiment Running (the chart's
                # DcsaSearchSpaceExhausted alert fires); a local run stops with the same message
                self._halt = (
                    "Succeeded" if self._best() else "Failed",
                    EXHAUSTED,
                    f"GetSuggestions: FAILED_PRECONDITION: {details}; in Katib the Experiment "
                    "would stay Running (alert DcsaSearchSpaceExhausted): lower maxTrialCount "
                    "to the number of points or widen the space",
                )
            else:
                self._halt = (
                    "Failed",
                    SUGGESTION_FAILED,
                    f"GetSuggestions: {code.name}: {details}",
                )
            self.reporter.event(f"no more suggestions: {details}")
            return
        except ctl.ReplyError as exc:
            # Katib drops such a reply and calls again, forever; a local run stops
            self._halt = ("Failed", SUGGESTION_FAILED, f"GetSuggestions: {exc}")
            return
        if step.request is None:
            return
        state = self._state
        for made in step.state.suggestions[before.suggestion_count :]:
            # a name already taken would overwrite a trial: never trust it blindly
            name = self._fresh_name(names) if made.name in names else made.name
            names.add(name)
            row = TrialRow(name=name, assignments=dict(made.assignments), labels=made.labels)
            state = state.replace_trial(row)
        self._state = dataclasses.replace(
            state,
            total_requested=step.request.total_request_number,
            algorithm_settings=step.state.algorithm_settings,
        )
        self._save()

    def _fresh_name(self, used: set[str]) -> str:
        while True:
            name = f"{self.exp.name}-{''.join(secrets.choice(_ALNUM) for _ in range(8))}"
            if name not in used:
                return name

    # ---- trials ---------------------------------------------------------------------------
    def _start_created(self) -> None:
        for row in self._state.trials:
            if len(self._trials) >= self.parallel:
                return
            if row.condition == CREATED and row.name not in self._trials:
                now, started = self._trials.start(row)
                self._record(now)
                if started:
                    params = " ".join(f"{k}={v}" for k, v in now.assignments.items())
                    self.reporter.event(f"trial {now.name} started: {params}")
                else:
                    self.reporter.event(f"trial {now.name} Failed: {now.message}")

    def _reap(self) -> None:
        for row in self._trials.poll():
            self._record(row)
            self.reporter.event(self._describe(row))

    def _finish_processes(self, *, interrupted: bool) -> None:
        """Terminate running trials: back to Created when interrupted (rerun on resume),
        Killed when the experiment ended."""
        rows = self._trials.stop(interrupted=interrupted)
        if not rows:
            return
        for row in rows:
            self._state = self._state.replace_trial(row)
            self.reporter.event(f"trial {row.name} {'interrupted' if interrupted else 'Killed'}")
        self._save()

    # ---- state ----------------------------------------------------------------------------
    def _resume(self) -> None:
        try:
            saved = self.state_dir.load()
        except StateError as exc:
            raise RunError(str(exc)) from None
        if saved is not None:
            if saved.spec_digest != self._state.spec_digest:
                raise RunError(
                    f"{self.options.state_dir} holds experiment {saved.experiment!r} with a "
                    "different spec (only maxTrialCount, parallelTrialCount and "
                    "maxFailedTrialCount may change between runs); use another --state-dir"
                )
            rerun = [t for t in saved.trials if t.condition in ACTIVE]
            trials = tuple(
                dataclasses.replace(t, condition=CREATED, start_time=None)
                if t.condition in ACTIVE
                else t
                for t in saved.trials
            )
            self._state = dataclasses.replace(
                saved, trials=trials, status="Running", stop_reason=""
            )
            kept = sum(t.condition not in ACTIVE for t in trials)
            self.reporter.event(
                f"resuming {saved.experiment}: {kept} finished trials kept, "
                f"{len(rerun)} interrupted to rerun"
            )
        self.state_dir.save_experiment(self.exp)
        self._save()

    def _row(self, name: str) -> TrialRow:
        return next(t for t in self._state.trials if t.name == name)

    def _record(self, row: TrialRow) -> None:
        self._state = self._state.replace_trial(row)
        self._save()

    def _save(self) -> None:
        if not self._unsaved:  # after a failed save, only stop: the last saved state stands
            self.state_dir.save(self._state)

    def _plot(self) -> None:
        try:
            write_plot(
                self.options.state_dir / "convergence.png",
                self._state.trials,
                metric=self.exp.objective_metric,
                maximize=self.maximize,
                title=f"{self.exp.name} ({self.exp.algorithm})",
                budget=self._rungs.budget,
            )
        except Exception:  # a plot must never cost the results
            log.exception("could not write the convergence plot")

    def _best(self) -> TrialRow | None:
        return best_trial(self._state.trials, self.exp.objective_metric, self.maximize)

    def snapshot(self) -> Snapshot:
        trials = self._state.trials
        best = self._best()
        return Snapshot(
            experiment=self.exp.name,
            algorithm=self.exp.algorithm,
            max_trials=self.max_trials,
            succeeded=sum(t.condition == SUCCEEDED for t in trials),
            failed=sum(t.condition in (FAILED, METRICS_UNAVAILABLE) for t in trials),
            killed=sum(t.condition == KILLED for t in trials),
            running=sum(t.condition == RUNNING for t in trials),
            queued=sum(t.condition == CREATED for t in trials),
            best=best,
            best_value=None if best is None else objective_value(best, self.exp.objective_metric),
            metric=self.exp.objective_metric,
            elapsed=self.clock() - self._t0,
            mix=parse_mix(dict(self._state.algorithm_settings).get(MIX_SETTING)),
            resource=self._rungs.resource,
            rungs=self._rungs.views(trials),
        )

    def _describe(self, row: TrialRow) -> str:
        metric = row.metrics.get(self.exp.objective_metric)
        what = f"{self.exp.objective_metric}={metric}" if metric is not None else row.message
        return f"trial {row.name} {row.condition}: {what} ({row.seconds or 0:.1f}s)"

    # ---- signals --------------------------------------------------------------------------
    def _install_signals(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous: dict[int, Any] = {}

        def handler(signum: int, _frame: FrameType | None) -> None:
            if self._stop.is_set() and signum == signal.SIGINT:
                raise KeyboardInterrupt  # a second Ctrl-C: stop waiting for the grace period
            self.reporter.event(
                f"{signal.Signals(signum).name}: stopping; running trials are "
                "terminated and will rerun on resume"
            )
            self._stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)

        def restore() -> None:
            for sig, h in previous.items():
                signal.signal(sig, h)

        return restore


def labels_text(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
