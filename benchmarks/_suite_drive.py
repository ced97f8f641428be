"""One benchmark run: every arm is a Katib suggestion service, driven by one controller loop.

Every arm answers ``api.v1.beta1.Suggestion/GetSuggestions`` in a server process of its own:
our strategies in ``dcsa serve``, the Katib-equivalent skopt service in
``benchmarks/skopt_service.py``, the peers (Optuna TPE and GP, HEBO, BoTorch) in
``benchmarks/peer_service.py`` (state in memory per experiment, as Katib's Optuna service keeps
it), and Katib's own Optuna service from a Katib checkout (one process per experiment, as Katib
deploys it). ``run_grpc`` drives each of them exactly as Katib's controller drives a suggestion
service (docs/benchmarks.md, CONTRACT section 2): every call carries the full experiment spec
and *all* trials with their latest condition, ``current_request_number`` is the batch (the first
call included), ``total_request_number`` is cumulative, trial names come from the reply, reply
labels are *not* copied into the next request's trial spec (Katib never sends them back), and
``reply.algorithm`` settings are merged back into the experiment's settings by name. Batches are
synchronous: every trial of a batch is evaluated (SUCCEEDED with the ``loss`` metric and start
and completion times in Katib's format) before the next call.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from benchmarks import problems as problem_set
from benchmarks._latency_common import ServerProcess
from benchmarks.problems import Problem
from suggestion_service._generated import api_pb2 as pb
from suggestion_service._generated import api_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
METRIC = "loss"
ORIGIN_LABEL = "dcsa.io/origin"
#: Katib's controller gives GetSuggestions a 60 s deadline and no retry.
KATIB_DEADLINE_SECONDS = 60.0
#: Our strategies (served by ``dcsa serve``).
DCSA_ARMS = ("random", "gp-bo", "dc-bo", "sa-bo", "dcsa-bo")
SKOPT = "skopt"
TPE = "tpe"
OPTUNA_GP = "optuna-gp"
HEBO = "hebo"
BOTORCH = "botorch"
KATIB_TPE = "katib-tpe"
KATIB_SKOPT = "katib-skopt"
SKOPT_ALGORITHM = "bayesianoptimization"
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


@dataclass(frozen=True, kw_only=True)
class ArmKind:
    """How an arm is served: which server, which ``algorithmName``, whose code it is."""

    server: str  # dcsa | skopt | peers | peers-ext | katib-optuna | katib-skopt
    algorithm: str
    ours: bool = False
    #: a fresh server process per run: Katib's own services keep one experiment's state in
    #: memory and are deployed one process per experiment
    per_run_process: bool = False


#: Every base arm; a variant ``<base>@<label>`` is the base arm with its own settings.
ARM_KINDS: dict[str, ArmKind] = {
    **{a: ArmKind(server="dcsa", algorithm=a, ours=True) for a in DCSA_ARMS},
    SKOPT: ArmKind(server="skopt", algorithm=SKOPT_ALGORITHM),
    TPE: ArmKind(server="peers", algorithm=TPE),
    OPTUNA_GP: ArmKind(server="peers", algorithm=OPTUNA_GP),
    HEBO: ArmKind(server="peers-ext", algorithm=HEBO),
    BOTORCH: ArmKind(server="peers-ext", algorithm=BOTORCH),
    KATIB_TPE: ArmKind(server="katib-optuna", algorithm="multivariate-tpe", per_run_process=True),
    KATIB_SKOPT: ArmKind(server="katib-skopt", algorithm=SKOPT_ALGORITHM, per_run_process=True),
}
ARMS = tuple(ARM_KINDS)


def base_arm(arm: str) -> str:
    return arm.partition("@")[0]


def arm_kind(arm: str) -> ArmKind:
    base = base_arm(arm)
    if base not in ARM_KINDS:
        raise KeyError(f"unknown arm {arm!r}; known: {list(ARMS)} (a variant: <arm>@<label>)")
    return ARM_KINDS[base]


def problem(name: str) -> Problem:
    """A suite problem by name (benchmarks/problems.py)."""
    return problem_set.get(name)


@dataclass(frozen=True, kw_only=True)
class Task:
    """One run: an arm on a problem with a batch size, a seed and a budget of trials.

    ``settings`` are algorithm settings sent besides ``random_state`` (e.g. engine settings
    of one of our arms under tuning); they are part of the arm's fingerprint, not of the key.
    """

    problem: str
    arm: str
    batch: int
    seed: int
    budget: int
    settings: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        return f"{self.problem}|{self.arm}|b{self.batch}|s{self.seed}|n{self.budget}"

    def experiment_name(self) -> str:
        """Unique, DNS-1123 safe, at most 40 characters (Katib's limit)."""
        prob = self.problem.replace(".", "").replace("interaction", "ix").replace("-noise", "-n")
        arm = "".join(c if c.isalnum() else "-" for c in self.arm.replace("-bo", "").lower())
        name = f"b-{prob}-{arm}-b{self.batch}-s{self.seed}"
        return name[:40].rstrip("-")


@dataclass(kw_only=True)
class RunResult:
    """Everything recorded about one run."""

    problem: str
    arm: str
    batch: int
    seed: int
    budget: int
    values: list[float] = field(default_factory=list)  # observed loss, in trial order
    true_values: list[float] = field(default_factory=list)  # the noiseless objective
    origins: list[str] = field(default_factory=list)  # dcsa.io/origin label ('' if none)
    call_seconds: list[float] = field(default_factory=list)  # wall time of each suggest call
    fallbacks: int = 0
    wall_seconds: float = 0.0
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "problem": self.problem,
            "arm": self.arm,
            "batch": self.batch,
            "seed": self.seed,
            "budget": self.budget,
            "values": [_round(v) for v in self.values],
            "true_values": [_round(v) for v in self.true_values],
            "origins": self.origins,
            "call_seconds": [round(s, 4) for s in self.call_seconds],
            "fallbacks": self.fallbacks,
            "wall_seconds": round(self.wall_seconds, 3),
            "error": self.error,
        }


def _round(x: float) -> float:
    return float(f"{x:.7g}") if math.isfinite(x) else x


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


# ---- the Katib controller loop --------------------------------------------------------------
def merge_settings(
    base: Sequence[tuple[str, str]], updates: Sequence[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Katib's merge of ``reply.algorithm`` into the experiment's settings: by name, in place."""
    out = list(base)
    index = {n: i for i, (n, _v) in enumerate(out)}
    for name, value in updates:
        if name in index:
            out[index[name]] = (name, value)
        else:
            index[name] = len(out)
            out.append((name, value))
    return out


_TYPES = {
    "double": pb.DOUBLE,
    "int": pb.INT,
    "discrete": pb.DISCRETE,
    "categorical": pb.CATEGORICAL,
}
_DISTRIBUTIONS = {"uniform": pb.UNIFORM, "logUniform": pb.LOG_UNIFORM}


def parameter_specs(prob: Problem) -> list[pb.ParameterSpec]:
    """The problem's parameters as Katib sends them (the mutating webhook fills
    ``distribution: uniform`` where it is empty, categorical and discrete ones included)."""
    out = []
    for s in prob.specs():
        fs = pb.FeasibleSpace(distribution=_DISTRIBUTIONS[s.distribution])
        if s.values:
            fs.list.extend(s.values)
        else:
            fs.min, fs.max = s.min, s.max
            if s.step:
                fs.step = s.step
        out.append(pb.ParameterSpec(name=s.name, parameter_type=_TYPES[s.type], feasible_space=fs))
    return out


def experiment_spec(
    prob: Problem, algorithm: str, settings: Sequence[tuple[str, str]], task: Task
) -> pb.Experiment:
    """The Experiment as Katib sends it."""
    objective = pb.ObjectiveSpec(type=pb.MINIMIZE, objective_metric_name=METRIC)
    spec = pb.ExperimentSpec(
        objective=objective,
        algorithm=pb.AlgorithmSpec(
            algorithm_name=algorithm,
            algorithm_settings=[pb.AlgorithmSetting(name=k, value=v) for k, v in settings],
        ),
        parallel_trial_count=task.batch,
        max_trial_count=task.budget,
    )
    spec.parameter_specs.parameters.extend(parameter_specs(prob))
    return pb.Experiment(name=task.experiment_name(), spec=spec)


def _noise_rng(task: Task) -> np.random.Generator:
    """The same noise sequence for every arm of a (problem, seed): trial i gets draw i."""
    return np.random.default_rng([task.seed, 20260322])


_EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def katib_time(minutes: int) -> str:
    """A trial time as Katib formats it (``2006-01-02T15:04:05Z``), on a fixed clock (one minute
    per trial from 2026-01-01) so that the same run sends the same requests."""
    return (_EPOCH + dt.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def initial_settings(task: Task) -> list[tuple[str, str]]:
    """The experiment's algorithm settings: the run's seed as ``random_state`` (Katib's name,
    which every arm here reads), then the task's own settings."""
    kind = arm_kind(task.arm)
    if kind.server == "skopt":
        return list(task.settings)
    return merge_settings([("random_state", str(task.seed))], task.settings)


def run_grpc(task: Task, servers: Servers) -> RunResult:
    """Drive one experiment through GetSuggestions as Katib's controller would."""
    prob = problem(task.problem)
    kind = arm_kind(task.arm)
    stub = servers.stub(kind.server)
    settings = initial_settings(task)
    noise = _noise_rng(task)
    result = RunResult(
        problem=task.problem, arm=task.arm, batch=task.batch, seed=task.seed, budget=task.budget
    )
    objective = pb.ObjectiveSpec(type=pb.MINIMIZE, objective_metric_name=METRIC)
    trials: list[pb.Trial] = []
    total = 0
    started = time.perf_counter()
    try:
        while len(trials) < task.budget:
            n = min(task.batch, task.budget - len(trials))
            call_settings = settings
            if kind.server == "skopt":
                # Katib's skopt service keeps one Optimizer in memory, whose random generator
                # advances from call to call; skopt_service.py builds a fresh Optimizer per
                # call, so a fixed random_state would repeat the same initial point. A seed per
                # call (run seed, request counter) keeps runs reproducible and the draws fresh.
                call_settings = merge_settings(
                    settings, [("random_state", str(task.seed * 100_003 + total))]
                )
            req = pb.GetSuggestionsRequest(
                experiment=experiment_spec(prob, kind.algorithm, call_settings, task),
                trials=trials,
                current_request_number=n,
                total_request_number=total + n,
            )
            t0 = time.perf_counter()
            try:
                reply = stub.GetSuggestions(req, timeout=KATIB_DEADLINE_SECONDS)
            except grpc.RpcError as exc:
                result.call_seconds.append(time.perf_counter() - t0)
                result.error = f"GetSuggestions: {exc.code().name}: {exc.details()}"
                if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    servers.restart(kind.server)
                break
            result.call_seconds.append(time.perf_counter() - t0)
            if len(reply.parameter_assignments) != n:
                result.error = f"{len(reply.parameter_assignments)} assignments for {n} asked"
                break
            total += n
            settings = merge_settings(
                settings, [(s.name, s.value) for s in reply.algorithm.algorithm_settings]
            )
            for item in reply.parameter_assignments:
                assignment = {a.name: a.value for a in item.assignments}
                y_true = prob.value(assignment)
                y = y_true + prob.noise * float(noise.normal()) if prob.noise else y_true
                name = item.trial_name or f"{task.experiment_name()}-{len(trials):04d}"
                trial = pb.Trial(name=name)
                trial.spec.objective.CopyFrom(objective)
                trial.spec.parameter_assignments.assignments.extend(item.assignments)
                # item.labels go to the Trial's metadata only: Katib never sends them back
                trial.status.condition = pb.TrialStatus.SUCCEEDED
                trial.status.start_time = katib_time(len(trials))
                trial.status.completion_time = katib_time(len(trials) + 1)
                trial.status.observation.metrics.add(name=METRIC, value=repr(y))
                trials.append(trial)
                origin = item.labels.get(ORIGIN_LABEL, "")
                result.origins.append(origin)
                result.fallbacks += origin == "fallback"
                result.values.append(y)
                result.true_values.append(y_true)
    finally:
        if kind.per_run_process:
            servers.restart(kind.server)
    result.wall_seconds = time.perf_counter() - started
    return result


def run_task(task: Task, servers: Servers) -> RunResult:
    """Run one task with the worker's servers."""
    return run_grpc(task, servers)


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
