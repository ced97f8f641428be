"""Katib's experiment controller in miniature: trials as local processes, suggestions over gRPC.

The loop, as Katib runs it: keep ``parallelTrialCount`` trials active, ask for
``current_request_number`` new ones with every trial's latest condition and reduced observation,
send the reply's ``algorithm`` settings back merged into the experiment's, collect metrics when a
trial ends, and stop on the goal, on ``maxTrialCount`` or when more than ``maxFailedTrialCount``
trials failed.

Trials run in the runner's working directory (or ``workdir``) with the primary container's
``command`` + ``args`` and ``env``; a leading ``python``/``python3`` is the runner's own
interpreter, whose directory also heads ``PATH``. Each trial is its own process group; on Linux it
is killed if the runner dies, so ``kill -9`` leaves no orphans behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import secrets
import signal
import string
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any, Protocol

import grpc

from .._generated import api_pb2 as pb
from .._generated import api_pb2_grpc as pb_grpc
from . import controller as ctl
from . import metrics_collector as mc
from .experiment import Experiment, ExperimentError
from .state import (
    ACTIVE,
    CREATED,
    FAILED,
    KILLED,
    METRICS_UNAVAILABLE,
    RUNNING,
    SUCCEEDED,
    RunState,
    StateDir,
    StateError,
    TrialRow,
    now_rfc3339,
    spec_digest,
    write_plot,
)

log = logging.getLogger(__name__)

_PYTHON = re.compile(r"^python(3(\.\d+)?)?$")
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


#: Runs a trial's command after asking the kernel to SIGKILL it when the runner dies (Linux), so
#: ``kill -9`` of the runner leaves no orphan trial writing into a log a resumed run reuses.
#: A separate tiny interpreter rather than ``preexec_fn``: forking a process that holds gRPC
#: threads is unsafe, and without ``preexec_fn`` subprocess can use vfork/posix_spawn.
_LAUNCHER = """
import ctypes, os, sys
parent = int(sys.argv[1])
try:
    ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)
except (OSError, AttributeError):
    pass
if os.getppid() != parent:
    sys.exit(137)
try:
    os.execvp(sys.argv[2], sys.argv[2:])
except OSError as exc:
    sys.stderr.write(f"dcsa: cannot run {sys.argv[2]!r}: {exc}\\n")
    sys.exit(127)
"""


def launch_argv(argv: Sequence[str]) -> list[str]:
    """The command line that runs ``argv`` under the launcher (Linux) or as is."""
    if not sys.platform.startswith("linux"):
        return list(argv)
    return [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(os.getpid()), *argv]


@dataclass
class _Process:
    row: TrialRow
    popen: subprocess.Popen[bytes]
    log: IO[bytes]
    started: float
    file_offset: int = 0  # File collector: where this trial's lines start
    deadline_message: str = ""  # set when the trial overran its deadline and was terminated
    terminated_at: float | None = None


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
        self._procs: dict[str, _Process] = {}
        self._unsaved = False
        self._halt: tuple[str, str, str] | None = None  # (status, reason, message): no new trials
        self._state = RunState(experiment=experiment.name, spec_digest=spec_digest(experiment))
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
        return ctl.Objective(
            type=self.exp.goal,
            metric=self.exp.objective_metric,
            additional=self.exp.additional_metrics,
            goal=self.exp.target,
            strategies=self.exp.strategies,
        )

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
        req = self.request(need)
        if req is None:
            return
        try:
            reply = self.stub.GetSuggestions(req, timeout=self.options.rpc_timeout)
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
        state = self._state
        names = {t.name for t in state.trials}
        before = self._suggestion_state(need)
        try:
            after = ctl.accept_reply(before, req, reply, fresh_name=lambda: self._fresh_name(names))
        except ctl.ReplyError as exc:
            # Katib drops such a reply and calls again, forever; a local run stops
            self._halt = ("Failed", SUGGESTION_FAILED, f"GetSuggestions: {exc}")
            return
        for made in after.suggestions[before.suggestion_count :]:
            # a name already taken would overwrite a trial: never trust it blindly
            name = self._fresh_name(names) if made.name in names else made.name
            names.add(name)
            row = TrialRow(name=name, assignments=dict(made.assignments), labels=made.labels)
            state = state.replace_trial(row)
        self._state = dataclasses.replace(
            state,
            total_requested=req.total_request_number,
            algorithm_settings=after.algorithm_settings,
        )
        self._save()

    def _fresh_name(self, used: set[str]) -> str:
        while True:
            name = f"{self.exp.name}-{''.join(secrets.choice(_ALNUM) for _ in range(8))}"
            if name not in used:
                return name

    # ---- processes ------------------------------------------------------------------------
    def _start_created(self) -> None:
        for row in self._state.trials:
            if len(self._procs) >= self.parallel:
                return
            if row.condition == CREATED and row.name not in self._procs:
                self._start(row)

    def _start(self, row: TrialRow) -> None:
        started = now_rfc3339()
        row = dataclasses.replace(
            row,
            condition=RUNNING,
            start_time=started,
            completion_time=None,
            seconds=None,
            exit_code=None,
            metrics={},
            message="",
            attempts=row.attempts + 1,
        )
        log_path = self.state_dir.log_path(row.name)
        try:
            log_file = open(log_path, "wb")  # noqa: SIM115 - closed on reap
        except OSError as exc:
            raise StateError(f"{log_path}: cannot write: {exc.strerror or exc}") from None
        try:
            container = self.exp.render(
                trial_name=row.name, assignments=row.assignments, labels=row.labels
            )
            argv = list(container.command)
            if _PYTHON.match(argv[0]):
                argv[0] = sys.executable
            env = dict(os.environ)
            env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
            env.setdefault("PYTHONUNBUFFERED", "1")
            env.update(container.env)
            env["KATIB_TRIAL_NAME"] = row.name
            popen = subprocess.Popen(
                launch_argv(argv),
                cwd=self.options.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except (OSError, ExperimentError) as exc:
            log_file.write(f"dcsa: cannot start trial: {exc}\n".encode())
            log_file.close()
            self._record(
                dataclasses.replace(
                    row,
                    condition=FAILED,
                    completion_time=now_rfc3339(),
                    seconds=0.0,
                    message=f"cannot start: {exc}",
                )
            )
            self.reporter.event(f"trial {row.name} Failed: cannot start: {exc}")
            return
        self._procs[row.name] = _Process(row, popen, log_file, self.clock(), self._file_size())
        self._record(row)
        params = " ".join(f"{k}={v}" for k, v in row.assignments.items())
        self.reporter.event(f"trial {row.name} started: {params}")

    def _deadline(self) -> tuple[float, str] | None:
        """(seconds, reason) a trial may run, or None: the template's activeDeadlineSeconds
        (Kubernetes fails the Job with reason DeadlineExceeded) or ``--trial-timeout``."""
        limits = []
        template = self.exp.active_deadline
        if template is not None:
            seconds, where = template
            limits.append(
                (
                    seconds,
                    f"DeadlineExceeded: the trial ran longer than {where}={seconds:g}s "
                    "and was killed",
                )
            )
        if self.options.trial_timeout is not None:
            seconds = self.options.trial_timeout
            limits.append(
                (
                    seconds,
                    f"DeadlineExceeded: the trial ran longer than --trial-timeout={seconds:g}s "
                    "and was killed",
                )
            )
        return min(limits) if limits else None

    def _enforce_deadline(self, proc: _Process, now: float) -> None:
        deadline = self._deadline()
        if deadline is None:
            return
        seconds, message = deadline
        if proc.terminated_at is None and now - proc.started > seconds:
            proc.deadline_message = message
            proc.terminated_at = now
            _signal_group(proc.popen, signal.SIGTERM)
        elif proc.terminated_at is not None and now - proc.terminated_at > self.options.kill_grace:
            _signal_group(proc.popen, signal.SIGKILL)

    def _reap(self) -> None:
        for name, proc in list(self._procs.items()):
            rc = proc.popen.poll()
            if rc is None:
                self._enforce_deadline(proc, self.clock())
                continue
            del self._procs[name]
            proc.log.close()
            self._record(self._collect(proc, rc))
            self.reporter.event(self._describe(self._row(name)))

    def _collect(self, proc: _Process, rc: int) -> TrialRow:
        row = dataclasses.replace(
            proc.row,
            completion_time=now_rfc3339(),
            exit_code=rc,
            seconds=round(self.clock() - proc.started, 3),
        )
        logs = self._metric_logs(row, proc.file_offset)
        metrics = mc.reduce_metrics(logs, self.exp.strategies)
        row = dataclasses.replace(row, metrics=metrics)
        if proc.deadline_message:
            return dataclasses.replace(row, condition=FAILED, message=proc.deadline_message)
        if rc != 0:
            what = f"killed by signal {-rc}" if rc < 0 else f"exit code {rc}"
            return dataclasses.replace(row, condition=FAILED, message=what)
        if self.exp.objective_metric not in metrics:
            return dataclasses.replace(
                row,
                condition=METRICS_UNAVAILABLE,
                message=mc.missing_metric_message(
                    logs,
                    self.exp.objective_metric,
                    "output" if self.exp.collector.kind == "StdOut" else "file",
                ),
            )
        return dataclasses.replace(row, condition=SUCCEEDED)

    def _metrics_file(self) -> Path:
        return self.options.workdir / self.exp.collector.path

    def _file_size(self) -> int:
        if self.exp.collector.kind != "File":
            return 0
        try:
            return self._metrics_file().stat().st_size
        except OSError:
            return 0

    def _metric_logs(self, row: TrialRow, offset: int) -> list[mc.MetricLog]:
        """The trial's metric lines: its log (StdOut), or what it appended to the File
        collector's path (Katib's file is per pod; here one path serves every trial)."""
        collector = self.exp.collector
        path = self.state_dir.log_path(row.name)
        if collector.kind == "File":
            path = self._metrics_file()
        try:
            with path.open("rb") as f:
                f.seek(offset if collector.kind == "File" else 0)
                lines = f.read().decode("utf-8", errors="replace").splitlines()
        except OSError:
            return []
        if collector.kind == "File" and collector.file_format == "JSON":
            return mc.parse_json_lines(lines, self.exp.metric_names)
        return mc.parse_text(lines, self.exp.metric_names, collector.filters)

    def _finish_processes(self, *, interrupted: bool) -> None:
        """Terminate running trials: back to Created when interrupted (rerun on resume),
        Killed when the experiment ended."""
        if not self._procs:
            return
        for proc in self._procs.values():
            _signal_group(proc.popen, signal.SIGTERM)
        deadline = self.clock() + self.options.kill_grace
        try:
            for proc in self._procs.values():
                try:
                    proc.popen.wait(timeout=max(0.0, deadline - self.clock()))
                except subprocess.TimeoutExpired:
                    _signal_group(proc.popen, signal.SIGKILL)
                    proc.popen.wait()
        except KeyboardInterrupt:  # a second Ctrl-C: no more grace
            for proc in self._procs.values():
                _signal_group(proc.popen, signal.SIGKILL)
                proc.popen.wait()
        for name, proc in list(self._procs.items()):
            proc.log.close()
            row = self._row(name)
            if interrupted:
                row = dataclasses.replace(
                    row, condition=CREATED, start_time=None, message="interrupted; rerun on resume"
                )
            else:
                row = dataclasses.replace(
                    row,
                    condition=KILLED,
                    completion_time=now_rfc3339(),
                    seconds=round(self.clock() - proc.started, 3),
                    exit_code=proc.popen.returncode,
                    message="killed: the experiment ended",
                )
            self._state = self._state.replace_trial(row)
            self.reporter.event(f"trial {name} {'interrupted' if interrupted else 'Killed'}")
        self._procs.clear()
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


def _signal_group(popen: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, sig)


def labels_text(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
