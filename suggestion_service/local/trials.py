"""Trial execution for ``dcsa run``: a trial as a local process, its deadline, its metrics.

A trial runs in the working directory with the primary container's ``command`` + ``args`` and
``env``; a leading ``python``/``python3`` is the runner's own interpreter, whose directory also
heads ``PATH``. Each trial is its own process group; on Linux it is killed if the runner dies, so
``kill -9`` leaves no orphans behind. A trial that runs past the trial template's
``activeDeadlineSeconds`` or ``--trial-timeout`` is terminated (SIGKILL after the grace period)
and Failed with ``DeadlineExceeded``, as Kubernetes fails such a Job.

The controller's rules (what to ask, when to stop) are in :mod:`.controller`; the loop that ties
both together is :mod:`.runner`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from . import metrics_collector as mc
from .experiment import Experiment, ExperimentError
from .state import (
    CREATED,
    FAILED,
    KILLED,
    METRICS_UNAVAILABLE,
    RUNNING,
    SUCCEEDED,
    StateDir,
    StateError,
    TrialRow,
    now_rfc3339,
)

_PYTHON = re.compile(r"^python(3(\.\d+)?)?$")

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


def _signal_group(popen: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, sig)


class TrialProcesses:
    """The running trials of one Experiment, as processes."""

    def __init__(
        self,
        experiment: Experiment,
        state_dir: StateDir,
        *,
        workdir: Path,
        kill_grace: float,
        trial_timeout: float | None,
        clock: Callable[[], float],
    ) -> None:
        self.exp = experiment
        self.state_dir = state_dir
        self.workdir = workdir
        self.kill_grace = kill_grace
        self.trial_timeout = trial_timeout
        self.clock = clock
        self._procs: dict[str, _Process] = {}

    def __len__(self) -> int:
        return len(self._procs)

    def __contains__(self, name: object) -> bool:
        return name in self._procs

    # ---- start ----------------------------------------------------------------------------
    def start(self, row: TrialRow) -> tuple[TrialRow, bool]:
        """Start a Created trial. Returns the row, Running (True) or Failed when its command
        cannot start (False).

        Raises:
            StateError: its log file cannot be written.
        """
        row = dataclasses.replace(
            row,
            condition=RUNNING,
            start_time=now_rfc3339(),
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
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except (OSError, ExperimentError) as exc:
            log_file.write(f"dcsa: cannot start trial: {exc}\n".encode())
            log_file.close()
            failed = dataclasses.replace(
                row,
                condition=FAILED,
                completion_time=now_rfc3339(),
                seconds=0.0,
                message=f"cannot start: {exc}",
            )
            return failed, False
        self._procs[row.name] = _Process(row, popen, log_file, self.clock(), self._file_size())
        return row, True

    # ---- deadlines and ends ---------------------------------------------------------------
    def deadline(self) -> tuple[float, str] | None:
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
        if self.trial_timeout is not None:
            seconds = self.trial_timeout
            limits.append(
                (
                    seconds,
                    f"DeadlineExceeded: the trial ran longer than --trial-timeout={seconds:g}s "
                    "and was killed",
                )
            )
        return min(limits) if limits else None

    def _enforce_deadline(self, proc: _Process, now: float) -> None:
        deadline = self.deadline()
        if deadline is None:
            return
        seconds, message = deadline
        if proc.terminated_at is None and now - proc.started > seconds:
            proc.deadline_message = message
            proc.terminated_at = now
            _signal_group(proc.popen, signal.SIGTERM)
        elif proc.terminated_at is not None and now - proc.terminated_at > self.kill_grace:
            _signal_group(proc.popen, signal.SIGKILL)

    def poll(self) -> list[TrialRow]:
        """The trials that ended since the last call, with their condition and metrics;
        trials past their deadline are terminated."""
        done = []
        for name, proc in list(self._procs.items()):
            rc = proc.popen.poll()
            if rc is None:
                self._enforce_deadline(proc, self.clock())
                continue
            del self._procs[name]
            proc.log.close()
            done.append(self._collect(proc, rc))
        return done

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

    # ---- metrics --------------------------------------------------------------------------
    def _metrics_file(self) -> Path:
        return self.workdir / self.exp.collector.path

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

    # ---- stop -----------------------------------------------------------------------------
    def stop(self, *, interrupted: bool) -> list[TrialRow]:
        """Terminate every running trial (SIGTERM, SIGKILL after the grace period; a second
        Ctrl-C skips the grace). Returns their rows: Created again when ``interrupted`` (rerun
        on resume), Killed when the experiment ended."""
        if not self._procs:
            return []
        for proc in self._procs.values():
            _signal_group(proc.popen, signal.SIGTERM)
        deadline = self.clock() + self.kill_grace
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
        rows = []
        for proc in self._procs.values():
            proc.log.close()
            if interrupted:
                row = dataclasses.replace(
                    proc.row,
                    condition=CREATED,
                    start_time=None,
                    message="interrupted; rerun on resume",
                )
            else:
                row = dataclasses.replace(
                    proc.row,
                    condition=KILLED,
                    completion_time=now_rfc3339(),
                    seconds=round(self.clock() - proc.started, 3),
                    exit_code=proc.popen.returncode,
                    message="killed: the experiment ended",
                )
            rows.append(row)
        self._procs.clear()
        return rows
