"""One benchmark run: every arm is a Katib suggestion service, driven by one controller loop.

This file says what the suite sends (the Experiment, the objective's values, the trial times)
and drives it with the controller loop ``dcsa run`` and the tests share
(``suggestion_service.local.controller.run_synchronous``). What the loop sends is part of every
run's fingerprint (:func:`loop_fingerprint`); the servers and worker processes are in
``_suite_workers.py``.

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
import hashlib
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import grpc
import numpy as np

from benchmarks import problems as problem_set
from benchmarks.problems import Problem
from suggestion_service._generated import api_pb2 as pb
from suggestion_service.katib import convert
from suggestion_service.katib.servicer import answer
from suggestion_service.local import controller as ctl

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
def experiment_spec(
    prob: Problem, algorithm: str, settings: Sequence[tuple[str, str]], task: Task
) -> pb.Experiment:
    """The Experiment as Katib sends it, through the project's one converter (the mutating
    webhook has filled ``distribution: uniform`` where it was empty, categorical and discrete
    parameters included)."""
    parameters = []
    for s in prob.specs():
        space: dict[str, Any] = {"distribution": s.distribution}
        if s.values:
            space["list"] = list(s.values)
        else:
            space.update(min=s.min, max=s.max, step=s.step or None)
        parameters.append({"name": s.name, "parameterType": s.type, "feasibleSpace": space})
    return convert.experiment_to_pb(
        task.experiment_name(),
        {
            "objective": {"type": "minimize", "objectiveMetricName": METRIC},
            "algorithm": {
                "algorithmName": algorithm,
                "algorithmSettings": [{"name": k, "value": v} for k, v in settings],
            },
            "parameters": parameters,
            "parallelTrialCount": task.batch,
            "maxTrialCount": task.budget,
        },
    )


def _noise_rng(task: Task) -> np.random.Generator:
    """The same noise sequence for every arm of a (problem, seed): trial i gets draw i."""
    return np.random.default_rng([task.seed, 20260322])


_EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def trial_time(minutes: int) -> dt.datetime:
    """A fixed clock (one minute per trial from 2026-01-01), so that the same run sends the
    same requests."""
    return _EPOCH + dt.timedelta(minutes=minutes)


def initial_settings(task: Task) -> list[tuple[str, str]]:
    """The experiment's algorithm settings: the run's seed as ``random_state`` (Katib's name,
    which every arm here reads), then the task's own settings."""
    kind = arm_kind(task.arm)
    if kind.server == "skopt":
        return list(task.settings)
    return list(ctl.merge_settings([("random_state", str(task.seed))], task.settings))


#: The objective as Katib's webhook leaves it: ``loss`` minimised, its strategy ``min``.
OBJECTIVE = ctl.Objective(type="minimize", metric=METRIC, strategies={METRIC: "min"})


class Stub(Protocol):
    """What :func:`run_grpc` calls: a gRPC ``SuggestionStub`` or :class:`InProcess`."""

    def GetSuggestions(  # noqa: N802 - gRPC method name
        self, request: pb.GetSuggestionsRequest, timeout: float | None = None
    ) -> pb.GetSuggestionsReply: ...


def in_process(request: pb.GetSuggestionsRequest) -> pb.GetSuggestionsReply:
    """Our service without gRPC (``katib.servicer.answer``, no deadline)."""
    return answer(request)[2]


class InProcess:
    """Our service as a stub without gRPC, for quick screening (``benchmarks.engine_tune``):
    the same requests and answers as through ``dcsa serve``, short of the server's deadline."""

    def GetSuggestions(  # noqa: N802 - gRPC method name
        self, request: pb.GetSuggestionsRequest, timeout: float | None = None
    ) -> pb.GetSuggestionsReply:
        return in_process(request)


def run_grpc(task: Task, stub: Stub) -> RunResult:
    """Drive one experiment through GetSuggestions with Katib's controller rules
    (``suggestion_service.local.controller.run_synchronous``, the loop ``dcsa run`` and the
    tests share): ``parallelTrialCount`` = the batch, every trial evaluated before the next call.

    A failed call ends the run with ``error`` = ``GetSuggestions: <status code>: <details>``
    (Katib would retry; a benchmark run stops); the caller restarts the server when needed.
    """
    prob = problem(task.problem)
    kind = arm_kind(task.arm)
    noise = _noise_rng(task)
    result = RunResult(
        problem=task.problem, arm=task.arm, batch=task.batch, seed=task.seed, budget=task.budget
    )

    def call(request: pb.GetSuggestionsRequest) -> pb.GetSuggestionsReply:
        if kind.server == "skopt":
            # Katib's skopt service keeps one Optimizer in memory, whose random generator
            # advances from call to call; skopt_service.py builds a fresh Optimizer per
            # call, so a fixed random_state would repeat the same initial point. A seed per
            # call (run seed, suggestions made so far) keeps runs reproducible and the draws
            # fresh.
            made = request.total_request_number - request.current_request_number
            seeded = pb.GetSuggestionsRequest()
            seeded.CopyFrom(request)
            seeded.experiment.CopyFrom(
                ctl.with_settings(
                    request.experiment, [("random_state", str(task.seed * 100_003 + made))]
                )
            )
            request = seeded
        t0 = time.perf_counter()
        try:
            return stub.GetSuggestions(request, timeout=KATIB_DEADLINE_SECONDS)
        finally:
            result.call_seconds.append(time.perf_counter() - t0)

    def evaluate(made: ctl.Assignment, i: int) -> ctl.TrialView:
        y_true = prob.value(dict(made.assignments))
        y = y_true + prob.noise * float(noise.normal()) if prob.noise else y_true
        origin = made.labels.get(ORIGIN_LABEL, "")
        result.origins.append(origin)
        result.fallbacks += origin == "fallback"
        result.values.append(y)
        result.true_values.append(y_true)
        return ctl.succeeded(
            made, OBJECTIVE, repr(y), start=trial_time(i), completion=trial_time(i + 1)
        )

    started = time.perf_counter()
    try:
        ctl.run_synchronous(
            experiment_spec(prob, kind.algorithm, initial_settings(task), task),
            call,
            evaluate,
            parallel=task.batch,
            max_trials=task.budget,
        )
    except grpc.RpcError as exc:
        result.error = f"GetSuggestions: {exc.code().name}: {exc.details()}"
    except ctl.ReplyError as exc:
        result.error = str(exc)
    result.wall_seconds = time.perf_counter() - started
    return result


# ---- the loop's fingerprint -----------------------------------------------------------------
class _Scripted:
    """A stub that answers with seeded random points of the problem, names its trials or not,
    labels them and returns a setting that changes per call (to exercise Katib's merge), and
    keeps a hash of every request it receives."""

    def __init__(self, prob: Problem, *, named: bool, seed: int) -> None:
        self.prob, self.named = prob, named
        self.rng = np.random.default_rng(seed)
        self.hash = hashlib.sha256()
        self.calls = 0

    def GetSuggestions(  # noqa: N802 - gRPC method name
        self, request: pb.GetSuggestionsRequest, timeout: float | None = None
    ) -> pb.GetSuggestionsReply:
        self.hash.update(request.SerializeToString(deterministic=True))
        self.hash.update(repr(timeout).encode())
        self.calls += 1
        reply = pb.GetSuggestionsReply()
        for i in range(request.current_request_number):
            point = problem_set.random_assignment(self.prob, self.rng)
            item = reply.parameter_assignments.add(
                trial_name=f"scripted-{self.calls}-{i}" if self.named else ""
            )
            item.assignments.extend(
                pb.ParameterAssignment(name=k, value=v) for k, v in point.items()
            )
            item.labels[ORIGIN_LABEL] = "bo"
        reply.algorithm.algorithm_settings.add(name="scripted_call", value=str(self.calls))
        return reply


def loop_fingerprint() -> str:
    """What the loop sends, hashed: the requests of scripted runs (named and unnamed trials,
    batches 1 and 3, a noisy problem, the skopt arm's per-call seed) and what it records.

    Stored runs are keyed by this rather than by this file's text, so an edit of the loop that
    keeps its requests (a refactoring, a comment) keeps them, and one that changes a request
    re-runs them. ``tests/benchmarks/test_suite_loop.py`` pins the value.
    """
    h = hashlib.sha256()
    for prob_name, arm, batch, named in (
        ("mixed4-b", "tpe", 1, False),
        ("mixed4-b", "gp-bo", 3, True),
        ("noisy-uneq", "skopt", 2, False),
    ):
        prob = problem(prob_name)
        task = Task(problem=prob_name, arm=arm, batch=batch, seed=7, budget=7)
        stub = _Scripted(prob, named=named, seed=11)
        result = run_grpc(task, stub)
        h.update(stub.hash.digest())
        h.update(json.dumps(result.to_json() | {"call_seconds": [], "wall_seconds": 0}).encode())
    return h.hexdigest()[:16]
