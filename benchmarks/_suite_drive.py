"""One benchmark run: every arm is a Katib suggestion service, driven by one controller loop.

This file is the loop and what it sends (it is part of every run's fingerprint); the servers and
worker processes are in ``_suite_workers.py``.

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
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from benchmarks import problems as problem_set
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


def run_grpc(task: Task, stub: pb_grpc.SuggestionStub) -> RunResult:
    """Drive one experiment through GetSuggestions as Katib's controller would.

    A failed call ends the run with ``error`` = ``GetSuggestions: <status code>: <details>``
    (Katib would retry; a benchmark run stops); the caller restarts the server when needed.
    """
    prob = problem(task.problem)
    kind = arm_kind(task.arm)
    settings = initial_settings(task)
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
    result.wall_seconds = time.perf_counter() - started
    return result
