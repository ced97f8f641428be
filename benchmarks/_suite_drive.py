"""One benchmark run of the synthetic suite: a controller loop as Katib's, or Optuna in process.

The gRPC arms (our strategies and the Katib-equivalent skopt service) are driven exactly as
Katib's controller drives a suggestion service (docs/benchmarks.md, /shared CONTRACT section 2):
every call carries the full experiment spec and *all* trials with their latest condition,
``current_request_number`` is the batch (the first call included), ``total_request_number`` is
cumulative, trial names and labels come from the reply, and ``reply.algorithm`` settings are
merged back into the experiment's settings by name. Batches are synchronous: every trial of a
batch is evaluated (SUCCEEDED with the ``loss`` metric) before the next call.
"""

from __future__ import annotations

import logging
import math
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from benchmarks._latency_common import ServerProcess
from benchmarks.synthetic import PROBLEMS, Problem, with_noise
from suggestion_service._generated import api_pb2 as pb
from suggestion_service._generated import api_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
METRIC = "loss"
ORIGIN_LABEL = "dcsa.io/origin"
#: Katib's controller gives GetSuggestions a 60 s deadline and no retry.
KATIB_DEADLINE_SECONDS = 60.0
#: Our strategies (served by ``dcsa serve``), the Katib-equivalent skopt arm, Optuna TPE.
DCSA_ARMS = ("random", "gp-bo", "dc-bo", "sa-bo", "dcsa-bo")
SKOPT = "skopt"
TPE = "tpe"
ARMS = ("random", SKOPT, TPE, "gp-bo", "dc-bo", "sa-bo", "dcsa-bo")
SKOPT_ALGORITHM = "bayesianoptimization"
_MB = 1024 * 1024
_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 64 * _MB),
    ("grpc.max_receive_message_length", 64 * _MB),
]
BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def problem(name: str) -> Problem:
    """A suite problem by name: a key of ``PROBLEMS``, optionally with ``-noise<sigma>``."""
    base, sep, sigma = name.partition("-noise")
    if base not in PROBLEMS:
        raise KeyError(f"unknown problem {name!r}; known: {sorted(PROBLEMS)} (+ '-noise0.01')")
    return with_noise(PROBLEMS[base], float(sigma)) if sep else PROBLEMS[base]


@dataclass(frozen=True, kw_only=True)
class Task:
    """One run: an arm on a problem with a batch size, a seed and a budget of trials."""

    problem: str
    arm: str
    batch: int
    seed: int
    budget: int

    @property
    def key(self) -> str:
        return f"{self.problem}|{self.arm}|b{self.batch}|s{self.seed}|n{self.budget}"

    def experiment_name(self) -> str:
        """Unique, DNS-1123 safe, at most 40 characters (Katib's limit)."""
        prob = self.problem.replace(".", "").replace("interaction", "ix").replace("-noise", "-n")
        arm = self.arm.replace("-bo", "")
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


def _skopt_argv() -> list[str]:
    return [sys.executable, "-m", "benchmarks.skopt_service", "--host", "127.0.0.1", "--port", "0"]


def server_env() -> dict[str, str]:
    """One BLAS thread per server process: ``--jobs`` workers share the cores, and skopt's GP
    (numpy/scikit-learn) would otherwise spawn a thread per core in every worker. dcsa pins itself
    to one BLAS thread anyway (server.py)."""
    import os

    env = dict(os.environ)
    env.update({k: "1" for k in BLAS_VARIABLES})
    return env


class Servers:
    """The suggestion servers of one worker, started on first use and reused for every run."""

    def __init__(self) -> None:
        self._procs: dict[str, ServerProcess] = {}
        self._stubs: dict[str, pb_grpc.SuggestionStub] = {}
        self._channels: dict[str, grpc.Channel] = {}

    def stub(self, kind: str) -> pb_grpc.SuggestionStub:
        if kind not in self._stubs:
            if kind == "dcsa":
                proc = ServerProcess(
                    "dcsa",
                    _dcsa_argv(),
                    r"serving Katib suggestions on \S+:(\d+)",
                    env=server_env(),
                    cwd=REPO,
                )
            else:
                proc = ServerProcess(
                    "skopt", _skopt_argv(), r"listening on \S+:(\d+)", env=server_env(), cwd=REPO
                )
            proc.start()
            self._procs[kind] = proc
            channel = grpc.insecure_channel(f"127.0.0.1:{proc.port}", options=_CHANNEL_OPTIONS)
            self._channels[kind] = channel
            self._stubs[kind] = pb_grpc.SuggestionStub(channel)
        return self._stubs[kind]

    def restart(self, kind: str) -> None:
        """After an abandoned call the server still computes it: start it afresh."""
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


def experiment_spec(
    prob: Problem, algorithm: str, settings: Sequence[tuple[str, str]], task: Task
) -> pb.Experiment:
    """The Experiment as Katib sends it (the mutating webhook fills distribution: uniform)."""
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
    for name, lo, hi in prob.parameters():
        spec.parameter_specs.parameters.add(
            name=name,
            parameter_type=pb.DOUBLE,
            feasible_space=pb.FeasibleSpace(min=repr(lo), max=repr(hi), distribution=pb.UNIFORM),
        )
    return pb.Experiment(name=task.experiment_name(), spec=spec)


def _noise_rng(task: Task) -> np.random.Generator:
    """The same noise sequence for every arm of a (problem, seed): trial i gets draw i."""
    return np.random.default_rng([task.seed, 20260322])


def run_grpc(task: Task, servers: Servers) -> RunResult:
    """Drive one experiment through GetSuggestions as Katib's controller would."""
    prob = problem(task.problem)
    is_skopt = task.arm == SKOPT
    kind = "skopt" if is_skopt else "dcsa"
    algorithm = SKOPT_ALGORITHM if is_skopt else task.arm
    stub = servers.stub(kind)
    settings: list[tuple[str, str]] = [] if is_skopt else [("random_state", str(task.seed))]
    noise = _noise_rng(task)
    result = RunResult(
        problem=task.problem, arm=task.arm, batch=task.batch, seed=task.seed, budget=task.budget
    )
    objective = pb.ObjectiveSpec(type=pb.MINIMIZE, objective_metric_name=METRIC)
    trials: list[pb.Trial] = []
    total = 0
    started = time.perf_counter()
    while len(trials) < task.budget:
        n = min(task.batch, task.budget - len(trials))
        call_settings = settings
        if is_skopt:
            # Katib's skopt service keeps one Optimizer in memory, whose random generator
            # advances from call to call; skopt_service.py builds a fresh Optimizer per call,
            # so a fixed random_state would repeat the same initial point. A seed per call
            # (run seed, request counter) keeps runs reproducible and the draws fresh.
            call_settings = [("random_state", str(task.seed * 100_003 + total))]
        req = pb.GetSuggestionsRequest(
            experiment=experiment_spec(prob, algorithm, call_settings, task),
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
                servers.restart(kind)
            break
        result.call_seconds.append(time.perf_counter() - t0)
        if len(reply.parameter_assignments) != n:
            result.error = f"{len(reply.parameter_assignments)} assignments for {n} asked"
            break
        total += n
        if not is_skopt:
            settings = merge_settings(
                settings, [(s.name, s.value) for s in reply.algorithm.algorithm_settings]
            )
        for item in reply.parameter_assignments:
            x = {a.name: float(a.value) for a in item.assignments}
            y_true = prob.value(x)
            y = y_true + prob.noise * float(noise.normal()) if prob.noise else y_true
            name = item.trial_name or f"{task.experiment_name()}-{len(trials):04d}"
            trial = pb.Trial(name=name)
            trial.spec.objective.CopyFrom(objective)
            trial.spec.parameter_assignments.assignments.extend(item.assignments)
            for k, v in item.labels.items():
                trial.spec.labels[k] = v
            trial.status.condition = pb.TrialStatus.SUCCEEDED
            trial.status.observation.metrics.add(name=METRIC, value=repr(y))
            trials.append(trial)
            origin = item.labels.get(ORIGIN_LABEL, "")
            result.origins.append(origin)
            result.fallbacks += origin == "fallback"
            result.values.append(y)
            result.true_values.append(y_true)
    result.wall_seconds = time.perf_counter() - started
    return result


# ---- Optuna TPE, in process ----------------------------------------------------------------
def run_tpe(task: Task) -> RunResult:
    """Optuna's multivariate TPE with ask/tell, ``batch`` asks then ``batch`` tells per round.

    In process: Katib ships no multivariate-TPE suggestion service (its ``tpe`` and
    ``multivariate-tpe`` go through its own Optuna service, which keeps state in memory); the
    peer here is the sampler itself.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    prob = problem(task.problem)
    dists: dict[str, optuna.distributions.BaseDistribution] = {
        name: optuna.distributions.FloatDistribution(lo, hi) for name, lo, hi in prob.parameters()
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(multivariate=True, seed=task.seed)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    noise = _noise_rng(task)
    result = RunResult(
        problem=task.problem, arm=task.arm, batch=task.batch, seed=task.seed, budget=task.budget
    )
    started = time.perf_counter()
    while len(result.values) < task.budget:
        n = min(task.batch, task.budget - len(result.values))
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            asked = [study.ask(dists) for _ in range(n)]
        result.call_seconds.append(time.perf_counter() - t0)
        for trial in asked:
            y_true = prob.value(trial.params)
            y = y_true + prob.noise * float(noise.normal()) if prob.noise else y_true
            study.tell(trial, y)
            result.values.append(y)
            result.true_values.append(y_true)
            result.origins.append("")
    result.wall_seconds = time.perf_counter() - started
    return result


def run_task(task: Task, servers: Servers) -> RunResult:
    """Run one task with the worker's servers."""
    if task.arm == TPE:
        return run_tpe(task)
    if task.arm == SKOPT or task.arm in DCSA_ARMS:
        return run_grpc(task, servers)
    raise ValueError(f"unknown arm {task.arm!r}; known: {list(ARMS)}")


# ---- worker processes -------------------------------------------------------------------------
def worker_main(tasks: Any, results: Any, worker: int) -> None:
    """Run tasks from ``tasks`` until a ``None``; put ``(key, run json)`` on ``results``.

    Each worker owns one ``dcsa serve`` process (and one skopt service, when it gets a skopt
    task), started on first use and stopped on exit, SIGTERM included.
    """
    import os
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
