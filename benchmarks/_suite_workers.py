"""The suite's worker processes and the suggestion servers each of them runs.

Kept apart from the loop (``_suite_drive.py``) because nothing here changes an answer: this
file is not part of any run's fingerprint.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import grpc

from benchmarks._latency_common import ServerProcess
from benchmarks._suite_drive import REPO, RunResult, Task, arm_kind, run_grpc
from suggestion_service._generated import api_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

_MB = 1024 * 1024
_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 64 * _MB),
    ("grpc.max_receive_message_length", 64 * _MB),
]
BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: Separate environments of the peers that cannot share ours (benchmarks/install_peers.sh).
PEER_VENV = REPO / "benchmarks" / ".venv-peers"
KATIB_VENV = REPO / "benchmarks" / ".venv-katib"
KATIB_SKOPT_VENV = REPO / "benchmarks" / ".venv-katib-skopt"
KATIB_SRC = Path(os.environ.get("KATIB_SRC", str(REPO / "benchmarks" / ".katib-src")))
#: A call that failed with one of these leaves a server worth restarting (still computing, or
#: gone).
RESTART_CODES = ("DEADLINE_EXCEEDED", "UNAVAILABLE")


# ---- servers ------------------------------------------------------------------------------------
def _dcsa_argv() -> list[str]:
    script = Path(sys.executable).parent / "dcsa"
    head = [str(script)] if script.exists() else [sys.executable, "-m", "suggestion_service"]
    return [*head, "serve", "--host", "127.0.0.1", "--port", "0", "--metrics-port", "-1"]


def _python(venv: Path) -> str:
    exe = venv / "bin" / "python"
    if not exe.exists():
        raise RuntimeError(f"{venv} is missing: run bash benchmarks/install_peers.sh")
    return str(exe)


def server_command(kind: str) -> tuple[list[str], str, dict[str, str]]:
    """argv, the regex of its 'serving on port' log line, extra environment."""
    ready = r"listening on \S+:(\d+)"
    if kind == "dcsa":
        return _dcsa_argv(), r"serving Katib suggestions on \S+:(\d+)", {}
    if kind == "skopt":
        return [sys.executable, "-m", "benchmarks.skopt_service", "--port", "0"], ready, {}
    if kind == "peers":
        return [sys.executable, "-m", "benchmarks.peer_service", "--port", "0"], ready, {}
    if kind == "peers-ext":
        # the separate environment has no dcsa installed: the repository root goes on the path
        argv = [_python(PEER_VENV), "-m", "benchmarks.peer_service", "--port", "0"]
        return argv, ready, {"PYTHONPATH": str(REPO)}
    if kind in ("katib-optuna", "katib-skopt"):
        service = kind.removeprefix("katib-")
        if not (KATIB_SRC / "pkg" / "suggestion" / "v1beta1" / service).is_dir():
            raise RuntimeError(f"no Katib checkout at {KATIB_SRC}: run benchmarks/install_peers.sh")
        venv = KATIB_VENV if service == "optuna" else KATIB_SKOPT_VENV
        script = str(REPO / "benchmarks" / "katib_service.py")
        argv = [_python(venv), script, "--service", service, "--port", "0"]
        path = os.pathsep.join(
            str(KATIB_SRC / p)
            for p in ("", "pkg/apis/manager/v1beta1/python", "pkg/apis/manager/health/python")
        )
        return argv, ready, {"PYTHONPATH": path}
    raise ValueError(f"unknown server kind {kind!r}")


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """One BLAS thread per server process: ``--jobs`` workers share the cores, and numpy,
    scikit-learn and torch would otherwise spawn a thread per core in every worker. dcsa pins
    itself to one BLAS thread anyway (server.py)."""
    env = dict(os.environ)
    env.update({k: "1" for k in BLAS_VARIABLES})
    env.update(extra or {})
    return env


class Servers:
    """The suggestion servers of one worker, started on first use and reused for every run
    (except Katib's own services: one process per experiment, as Katib deploys them)."""

    def __init__(self) -> None:
        self._procs: dict[str, ServerProcess] = {}
        self._stubs: dict[str, pb_grpc.SuggestionStub] = {}
        self._channels: dict[str, grpc.Channel] = {}

    def stub(self, kind: str) -> pb_grpc.SuggestionStub:
        if kind not in self._stubs:
            argv, ready, extra = server_command(kind)
            proc = ServerProcess(kind, argv, ready, env=server_env(extra), cwd=REPO)
            proc.start()
            self._procs[kind] = proc
            channel = grpc.insecure_channel(f"127.0.0.1:{proc.port}", options=_CHANNEL_OPTIONS)
            self._channels[kind] = channel
            self._stubs[kind] = pb_grpc.SuggestionStub(channel)
        return self._stubs[kind]

    def restart(self, kind: str) -> None:
        """Stop a server (after an abandoned call it still computes; or the run is over for a
        per-experiment service); the next ``stub`` starts it afresh."""
        if kind in self._procs:
            self._channels.pop(kind).close()
            self._stubs.pop(kind)
            self._procs.pop(kind).cleanup()

    def close(self) -> None:
        for kind in list(self._procs):
            self.restart(kind)


def run_task(task: Task, servers: Servers) -> RunResult:
    """Run one task on the worker's server for its arm; restart that server when the run left
    it unusable, or when it serves one experiment only (Katib's own services)."""
    kind = arm_kind(task.arm)
    try:
        result = run_grpc(task, servers.stub(kind.server))
    finally:
        if kind.per_run_process:
            servers.restart(kind.server)
    if any(f"GetSuggestions: {code}:" in result.error for code in RESTART_CODES):
        servers.restart(kind.server)
    return result


# ---- worker processes -------------------------------------------------------------------------
def worker_main(tasks: Any, results: Any, worker: int) -> None:
    """Run tasks from ``tasks`` until a ``None``; put ``(key, run json)`` on ``results``.

    Each worker owns one server process per kind of arm it has run (``dcsa serve``, the skopt
    service, the peer service...), started on first use and stopped on exit, SIGTERM included.
    """
    import signal
    import traceback

    def _stop(_signum: int, _frame: object) -> None:
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles ^C and stops us
    logging.basicConfig(level=logging.WARNING, format=f"w{worker} %(levelname)s %(message)s")
    servers = Servers()
    try:
        while True:
            task = tasks.get()
            if task is None:
                break
            load = os.getloadavg()[0]
            try:
                run = run_task(task, servers)
                out = run.to_json()
            except Exception:
                out = RunResult(
                    problem=task.problem,
                    arm=task.arm,
                    batch=task.batch,
                    seed=task.seed,
                    budget=task.budget,
                    error=traceback.format_exc(limit=5),
                ).to_json()
                servers.close()
            out["worker"] = worker
            out["load1_at_start"] = round(load, 2)
            results.put((task.key, out))
    finally:
        servers.close()
