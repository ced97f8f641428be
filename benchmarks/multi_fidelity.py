"""Multi-fidelity benchmark (issue 13): ASHA arms against full-budget dcsa-bo and Katib's hyperband.

Problems: ``benchmarks/mf_problems.py`` (suite problems with a training budget ``epochs`` in
[1, 27]; a trial costs its epochs). Arms, each a Katib suggestion service driven by the suite's
one controller loop (``_suite_drive.run_grpc``, batch 1):

- ``dcsa-bo-full``: dcsa-bo on the space without ``epochs``; every trial trains 27 epochs;
- ``dcsa-bo-asha``, ``gp-bo-asha``, ``random-asha``: our strategies with ``resource_name=epochs``
  and ``eta=3`` (ASHA over the rungs 1, 3, 9, 27);
- ``katib-hyperband``: Katib's own ``HyperbandService`` from the Katib checkout, unchanged
  (``benchmarks/katib_service.py --service hyperband``, one process per experiment, numpy's
  global generator seeded with the run's seed), settings ``r_l=27``, ``eta=3``,
  ``resource_name=epochs``.

The loop stops a run when its cumulative budget (the sum of its trials' epochs) reaches
``--budget`` full-budget equivalents. Two things the loop cannot express are added around the
gRPC stub it is given (see :class:`Meter` and :class:`HyperbandRequests`), not by another loop:

- **the budget meter**: ``run_grpc`` stops at a trial count only, and records values but not
  assignments; the meter records every assignment handed out (its epochs are the trial's cost)
  and, once the budget is spent, answers the next call with ``CANCELLED: budget spent`` (as
  an experiment deleted by its owner), which ends the loop;
- **hyperband's request numbers**: Katib's controller asks for ``parallelTrialCount`` (at least
  ``eta**s_max`` = 27 here, which Katib's validation demands) and refuses a reply with a
  different count; Katib's hyperband sizes each bracket from ``current_request_number`` and
  answers a promotion step with fewer trials (27, then 9, 3, 1), so under Katib's own
  controller it stalls after its first rung (kubeflow/katib issues 1168 and 1366; checked by
  :func:`katib_controller_check`). To compare the algorithm, the hyperband arm asks the service
  for the number its current bracket was started with (the setting ``n`` it returns; 27 on the
  first call, as Katib's controller with ``parallelTrialCount: 27`` asks) and hands its
  suggestions to the loop one at a time, as Katib creates Trials from a Suggestion's
  unused assignments. That runs textbook hyperband (brackets s = 3, 2, 1, 0: 450 epochs, 16.7
  full budgets) and then the service answers with no suggestion: the run ends there.

Measured, per (problem, arm, seed): the best *full-budget* value (lowest observed loss among
trials at 27 epochs) against the cumulative budget spent, in full-budget equivalents (27
epochs). Reported: median curves; the budget each arm needs for its median curve to reach
``dcsa-bo-full``'s median final best (ratio = dcsa-bo-full's budget / the arm's; the issue's
target is >= 3x for dcsa-bo-asha, median over problems); and every arm's median best at
hyperband's total budget (equal budget). Definitions: docs/benchmarks.md.

    python -m benchmarks.multi_fidelity --set tune --seeds 2                # develop
    python -m benchmarks.multi_fidelity --set check --seeds 10 --budget 30  # the table

Writes ``runs.json``, ``table.md`` and ``curves.png`` under ``--out`` (default
``benchmarks/results/multi_fidelity/``, ``.../tune/`` for the tune set); finished runs are
appended to ``<out>/checkpoint.jsonl`` and reused while their fingerprint (server code, the
code here that touches a run, the problem) still matches.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shlex
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np

if __package__ in (None, ""):  # run as ``python benchmarks/multi_fidelity.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _suite_drive as drive
from benchmarks import _suite_workers as workers
from benchmarks import mf_problems as mf
from benchmarks._latency_common import ServerProcess
from benchmarks._record import nothing_to_report, read_record
from benchmarks._suite_drive import REPO, ArmKind, Task, run_grpc
from suggestion_service._generated import api_pb2 as pb
from suggestion_service._generated import api_pb2_grpc as pb_grpc

OUT = REPO / "benchmarks" / "results" / "multi_fidelity"
HYPERBAND_VENV = REPO / "benchmarks" / ".venv-katib-hyperband"
BUDGET_SPENT = "budget spent"
FULL = "dcsa-bo-full"
ASHA_SETTINGS = (("resource_name", mf.BUDGET), ("eta", str(mf.ETA)))
HYPERBAND_SETTINGS = (("r_l", str(mf.B_MAX)), ("eta", str(mf.ETA)), ("resource_name", mf.BUDGET))
#: Katib's hyperband: the suite's loop knows arms by name; this one is registered here.
HYPERBAND_KIND = ArmKind(server="katib-hyperband", algorithm="hyperband", per_run_process=True)
#: The loop's error when the service answers an empty reply (hyperband's iteration is over).
HYPERBAND_DONE = "the response contains unexpected trials: 0 assignments, 1 requested"


@dataclass(frozen=True)
class Arm:
    """One arm: its name in the results, the suite arm that runs it, its view and settings."""

    name: str
    suite_arm: str  # the arm string of the suite's Task (``<algorithm>@<label>``)
    full: bool  # the full-budget view (no epochs parameter)
    settings: tuple[tuple[str, str], ...]
    doc: str


ARMS: dict[str, Arm] = {
    a.name: a
    for a in (
        Arm(FULL, "dcsa-bo@full", True, (), "dcsa-bo, every trial at the full budget"),
        Arm("dcsa-bo-asha", "dcsa-bo@asha", False, ASHA_SETTINGS, "dcsa-bo with ASHA"),
        Arm("gp-bo-asha", "gp-bo@asha", False, ASHA_SETTINGS, "gp-bo with ASHA"),
        Arm("random-asha", "random@asha", False, ASHA_SETTINGS, "random search with ASHA"),
        Arm(
            "katib-hyperband",
            "katib-hyperband",
            False,
            HYPERBAND_SETTINGS,
            "Katib's hyperband service (random configurations, synchronous brackets)",
        ),
    )
}


def add_variant(spec: str) -> str:
    """Register ``<arm>:<k>=<v>[,<k>=<v>...]`` (one of ours with extra settings) as the arm
    ``<arm>+<k>=<v>...``; its requests differ from ``<arm>``'s by those settings only."""
    base, _, text = spec.partition(":")
    if base not in ARMS or ARMS[base].suite_arm.startswith("katib") or not text:
        raise ValueError(f"--variant {spec!r}: want <arm>:<k>=<v>[,...] with <arm> one of ours")
    pairs = [kv.split("=", 1) for kv in text.split(",")]
    if any(len(kv) != 2 for kv in pairs):
        raise ValueError(f"--variant {spec!r}: settings are <k>=<v>, comma separated")
    extra = tuple((k, v) for k, v in pairs)
    arm = ARMS[base]
    name = f"{base}+{text}"
    ARMS[name] = Arm(name, arm.suite_arm, arm.full, arm.settings + extra, f"{arm.doc}, {text}")
    return name


#: The issue's headline arm and its baseline.
HEADLINE = "dcsa-bo-asha"
TARGET_RATIO = 3.0


@contextmanager
def _hyperband_known() -> Iterator[None]:
    """The suite's loop knows arms by name (``ARM_KINDS``); Katib's hyperband is there only
    while a run of it lasts."""
    added = "katib-hyperband" not in drive.ARM_KINDS
    drive.ARM_KINDS.setdefault("katib-hyperband", HYPERBAND_KIND)
    try:
        yield
    finally:
        if added:
            drive.ARM_KINDS.pop("katib-hyperband", None)


# ---- what wraps the loop's stub -----------------------------------------------------------------
class BudgetSpent(grpc.RpcError):
    """The meter's answer once the run's budget is spent: ends ``run_grpc``'s loop."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.CANCELLED

    def details(self) -> str:
        return BUDGET_SPENT


class Meter:
    """A stub around the arm's stub: records every assignment handed to the loop (in trial
    order) and refuses a call once the cumulative budget reaches ``budget`` epochs."""

    def __init__(self, stub: Any, prob: mf.MultiFidelity, budget: float) -> None:
        self._stub = stub
        self._prob = prob
        self.budget = budget
        self.spent = 0.0
        self.assignments: list[dict[str, str]] = []

    def GetSuggestions(  # noqa: N802 - the gRPC method name
        self, request: pb.GetSuggestionsRequest, timeout: float | None = None
    ) -> pb.GetSuggestionsReply:
        if self.spent >= self.budget:
            raise BudgetSpent()
        reply = self._stub.GetSuggestions(request, timeout=timeout)
        for item in reply.parameter_assignments:
            a = {x.name: x.value for x in item.assignments}
            self.assignments.append(a)
            self.spent += self._prob.budget(a)
        return reply


def _settings(request: pb.GetSuggestionsRequest) -> dict[str, str]:
    return {s.name: s.value for s in request.experiment.spec.algorithm.algorithm_settings}


def hyperband_parallel(r_l: float, eta: int) -> int:
    """The least ``parallelTrialCount`` Katib's hyperband accepts (its ValidateAlgorithmSettings:
    ``eta ** int(log(r_l) / log(eta))``), which is also the size of its first bracket."""
    return int(eta ** int(math.log(r_l) / math.log(eta)))


class HyperbandRequests:
    """Asks Katib's hyperband for the trials of its current bracket step and hands them to the
    loop one per call (the loop asks for 1 at a time), as Katib creates Trials from the
    Suggestion's unused assignments; the service's settings go back with the first of them, so
    the loop merges them as Katib does. The service is called only when every trial it handed
    out has completed (its brackets are synchronous)."""

    def __init__(self, stub: Any) -> None:
        self._stub = stub
        self._queue: list[pb.GetSuggestionsReply.ParameterAssignments] = []

    def GetSuggestions(  # noqa: N802 - the gRPC method name
        self, request: pb.GetSuggestionsRequest, timeout: float | None = None
    ) -> pb.GetSuggestionsReply:
        reply = pb.GetSuggestionsReply()
        if not self._queue:
            settings = _settings(request)
            first = hyperband_parallel(float(settings["r_l"]), int(float(settings.get("eta", "3"))))
            forward = pb.GetSuggestionsRequest()
            forward.CopyFrom(request)
            # the bracket's size, as the service last returned it (`n`), else its first bracket's
            n = int(float(settings["n"])) if "n" in settings else first
            forward.current_request_number = n
            forward.total_request_number = len(request.trials) + n
            answer = self._stub.GetSuggestions(forward, timeout=timeout)
            self._queue.extend(answer.parameter_assignments)
            if answer.HasField("algorithm"):
                reply.algorithm.CopyFrom(answer.algorithm)
        for _ in range(min(request.current_request_number, len(self._queue))):
            reply.parameter_assignments.append(self._queue.pop(0))
        return reply


# ---- servers ------------------------------------------------------------------------------------
def hyperband_command(seed: int) -> tuple[list[str], dict[str, str]]:
    """argv and environment of one Katib hyperband service (benchmarks/katib_service.py)."""
    if not (workers.KATIB_SRC / "pkg" / "suggestion" / "v1beta1" / "hyperband").is_dir():
        raise RuntimeError(
            f"no Katib checkout at {workers.KATIB_SRC}: run bash benchmarks/install_peers.sh"
        )
    python = HYPERBAND_VENV / "bin" / "python"
    if not python.exists():
        raise RuntimeError(
            f"{HYPERBAND_VENV} is missing: run bash benchmarks/install_peers.sh hyperband"
        )
    script = REPO / "benchmarks" / "katib_service.py"
    argv = [str(python), str(script), "--service", "hyperband", "--port", "0"]
    argv += ["--seed", str(seed)]
    path = os.pathsep.join(
        str(workers.KATIB_SRC / p)
        for p in ("", "pkg/apis/manager/v1beta1/python", "pkg/apis/manager/health/python")
    )
    return argv, {"PYTHONPATH": path}


def hyperband_available() -> str | None:
    """None when the hyperband arm can run, else why not."""
    try:
        hyperband_command(0)
    except RuntimeError as exc:
        return str(exc)
    return None


@contextmanager
def hyperband_stub(seed: int) -> Iterator[pb_grpc.SuggestionStub]:
    """A fresh Katib hyperband process (one per experiment, as Katib deploys it)."""
    argv, extra = hyperband_command(seed)
    proc = ServerProcess(
        "katib-hyperband",
        argv,
        r"listening on \S+:(\d+)",
        env=workers.server_env(extra),
        cwd=REPO,
    )
    proc.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{proc.port}")
    try:
        yield pb_grpc.SuggestionStub(channel)
    finally:
        channel.close()
        proc.cleanup()


# ---- one run ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    """One run to do: a base problem, an arm, a seed and a budget in full-budget equivalents."""

    base: str
    arm: str
    seed: int
    budget: float

    @property
    def key(self) -> str:
        return f"{self.base}|{self.arm}|s{self.seed}|B{self.budget:g}"

    def problem(self) -> mf.MultiFidelity:
        return mf.make(self.base, full=ARMS[self.arm].full)

    def task(self) -> Task:
        arm = ARMS[self.arm]
        epochs = self.budget * mf.B_MAX
        # a bound on the trial count; the meter ends the run first
        trials = math.ceil(epochs / (mf.B_MAX if arm.full else mf.B_MIN)) + 1
        return Task(
            problem=self.problem().name,
            arm=arm.suite_arm,
            batch=1,
            seed=self.seed,
            budget=trials,
            settings=arm.settings,
        )


def run_one(run: Run, servers: workers.Servers) -> dict[str, Any]:
    """Drive one run through the suite's loop with the budget meter; returns its record."""
    prob = run.problem()
    task = run.task()
    epochs = run.budget * mf.B_MAX
    started = time.perf_counter()
    if run.arm == "katib-hyperband":
        with hyperband_stub(run.seed) as stub, mf.registered(prob), _hyperband_known():
            meter = Meter(HyperbandRequests(stub), prob, epochs)
            result = run_grpc(task, meter)
    else:
        meter = Meter(servers.stub("dcsa"), prob, epochs)
        with mf.registered(prob):
            result = run_grpc(task, meter)
        if any(f"GetSuggestions: {c}:" in result.error for c in workers.RESTART_CODES):
            servers.restart("dcsa")
    end = "trials"
    error = result.error
    if error == f"GetSuggestions: CANCELLED: {BUDGET_SPENT}":
        end, error = "budget", ""
    elif run.arm == "katib-hyperband" and error == HYPERBAND_DONE:
        end, error = "hyperband finished", ""
    n = len(result.values)
    trials = [
        [prob.budget(a), round(v, 7), round(prob.full_value(a), 7)]
        for a, v in zip(meter.assignments[:n], result.values, strict=True)
    ]
    return {
        "problem": run.base,
        "arm": run.arm,
        "seed": run.seed,
        "budget": run.budget,
        "trials": trials,  # [epochs, observed loss, f(x) at the full budget] in trial order
        "origins": result.origins,
        "end": end,
        "error": error,
        "calls": len(result.call_seconds),
        "call_seconds": round(sum(result.call_seconds), 3),
        "wall_seconds": round(time.perf_counter() - started, 3),
    }


def katib_controller_check(base: str, seed: int = 0) -> str:
    """Katib's hyperband under Katib's own controller rules (``run_grpc`` as is, batch =
    parallelTrialCount = 27): the loop's error once the service answers a promotion step with
    fewer trials than asked (Katib refuses such a reply: 'The response contains unexpected
    trials')."""
    prob = mf.make(base)
    task = Task(
        problem=prob.name,
        arm="katib-hyperband",
        batch=hyperband_parallel(mf.B_MAX, mf.ETA),
        seed=seed,
        budget=200,
        settings=HYPERBAND_SETTINGS,
    )
    with hyperband_stub(seed) as stub, mf.registered(prob), _hyperband_known():
        result = run_grpc(task, stub)
    return f"{len(result.values)} trials, then: {result.error or 'no error'}"


# ---- curves and summaries ------------------------------------------------------------------
def grid(budget: float) -> np.ndarray:
    """Budgets (in full-budget equivalents) at which curves are read: every epoch."""
    return np.arange(1, round(budget * mf.B_MAX) + 1) / mf.B_MAX


def curve(run: dict[str, Any], at: np.ndarray, *, true: bool = False) -> np.ndarray:
    """Best full-budget value at each budget of ``at`` (inf before the first full-budget trial;
    after the run's last trial the curve stays flat, NaN past what the run spent when it ended
    before its budget, e.g. hyperband)."""
    spent, best, best_true = 0.0, math.inf, math.inf
    points_c, points_v = [0.0], [math.inf]
    for b, v, f in run["trials"]:
        spent += b / mf.B_MAX
        if b >= mf.B_MAX and v < best:
            best, best_true = v, f
        points_c.append(spent)
        points_v.append(best_true if true else best)
    idx = np.searchsorted(np.array(points_c), at + 1e-9, side="right") - 1
    out = np.array(points_v)[idx]
    if run["end"] != "budget":
        out[at > spent + 1e-9] = np.nan
    return out


def spent(run: dict[str, Any]) -> float:
    """The run's total budget in full-budget equivalents."""
    return sum(t[0] for t in run["trials"]) / mf.B_MAX


def median_curve(runs: Sequence[dict[str, Any]], at: np.ndarray, q: float = 50) -> np.ndarray:
    """The ``q``-th percentile over runs of their curves (the median for 50), where every run
    has a value (inf counts: no full-budget trial yet)."""
    stack = np.array([curve(r, at) for r in runs])
    out = np.full(len(at), np.nan)
    for j in range(len(at)):
        col = stack[:, j]
        if len(col) and not np.isnan(col).any():
            # no interpolation between order statistics: inf - inf would give NaN
            out[j] = np.median(col) if q == 50 else np.percentile(col, q, method="nearest")
    return out


def first_reach(med: np.ndarray, at: np.ndarray, target: float) -> float | None:
    hit = np.nonzero(med <= target + 1e-12)[0]
    return float(at[hit[0]]) if len(hit) else None


def budget_ratio(
    full_med: np.ndarray, med: np.ndarray, at: np.ndarray, budget: float
) -> tuple[float, float | None]:
    """The benchmark's ratio of an arm's median curve ``med`` to the full-budget arm's
    ``full_med`` (both read at ``at``): the budget at which ``full_med`` reaches its own final
    value / the budget at which ``med`` does (``budget`` when never: then the ratio is a
    bound), and the arm's budget to that target (None when never)."""
    target = float(full_med[-1])
    t_full = first_reach(full_med, at, target) or budget
    reach = first_reach(med, at, target)
    return t_full / (reach or budget), reach


@dataclass(frozen=True)
class Cell:
    """One arm on one problem: its median final best, budget to the target, ratio."""

    problem: str
    arm: str
    seeds: int
    final: float  # median best full-budget value at the end of its budget
    reach: float | None  # budget (full-budget equivalents) for the median curve to reach target
    ratio: float  # dcsa-bo-full's reach / this arm's (a bound when never reached)
    bound: bool
    at_hyperband: float  # median best at hyperband's total budget
    spent: float  # median budget spent
    wall: float  # median wall seconds per run

    def ratio_text(self) -> str:
        return f"< {self.ratio:.2f}" if self.bound else f"{self.ratio:.2f}"


def summarise(runs: Sequence[dict[str, Any]]) -> tuple[list[Cell], dict[str, Any]]:
    """Cells per (problem, arm) and per-problem facts (target, hyperband's budget)."""
    ok = [r for r in runs if not r["error"]]
    budget = max((r["budget"] for r in ok), default=0.0)
    at = grid(budget)
    problems_ = sorted({r["problem"] for r in ok}, key=_problem_order)
    cells: list[Cell] = []
    facts: dict[str, Any] = {}
    for p in problems_:
        by_arm = {a: [r for r in ok if r["problem"] == p and r["arm"] == a] for a in ARMS}
        full = by_arm[FULL]
        if not full:
            continue
        full_med = median_curve(full, at)
        target = float(full_med[-1])
        t_full = first_reach(full_med, at, target) or budget
        hb = by_arm["katib-hyperband"]
        hb_budget = statistics.median(spent(r) for r in hb) if hb else None
        facts[p] = {"target": target, "t_full": t_full, "hyperband_budget": hb_budget}
        for a, rs in by_arm.items():
            if not rs:
                continue
            med = median_curve(rs, at)
            finite = med[~np.isnan(med)]
            final = float(finite[-1]) if len(finite) else math.nan
            ratio, reach = budget_ratio(full_med, med, at, budget)
            at_hb = math.nan
            if hb_budget is not None:
                j = min(int(np.searchsorted(at, hb_budget - 1e-9)), len(at) - 1)
                at_hb = float(med[j])
            cells.append(
                Cell(
                    problem=p,
                    arm=a,
                    seeds=len(rs),
                    final=final,
                    reach=reach,
                    ratio=ratio,
                    bound=reach is None,
                    at_hyperband=at_hb,
                    spent=statistics.median(spent(r) for r in rs),
                    wall=statistics.median(r["wall_seconds"] for r in rs),
                )
            )
    return cells, facts


def _problem_order(p: str) -> tuple[int, str]:
    for i, (t, c) in enumerate(mf.BASE_PAIRS):
        if p in (t, c):
            return i, p
    return len(mf.BASE_PAIRS), p


def hyperband_wins(runs: Sequence[dict[str, Any]], problem: str, arm: str) -> tuple[int, int]:
    """Seeds on which ``arm``'s best at hyperband's budget (same seed) is below hyperband's."""
    ok = [r for r in runs if not r["error"] and r["problem"] == problem]
    hb = {r["seed"]: r for r in ok if r["arm"] == "katib-hyperband"}
    mine = {r["seed"]: r for r in ok if r["arm"] == arm}
    wins = n = 0
    for seed, h in hb.items():
        if seed not in mine:
            continue
        c = spent(h)
        at = np.array([c])
        a, b = float(curve(mine[seed], at)[0]), float(curve(h, at)[0])
        n += 1
        wins += a < b
    return wins, n


def criteria(cells: Sequence[Cell], runs: Sequence[dict[str, Any]]) -> list[str]:
    """The issue's two targets, as plain lines."""
    lines = []
    head = [c for c in cells if c.arm == HEADLINE]
    if head:
        ratios = [c.ratio for c in head]
        med = statistics.median(ratios)
        bounds = sum(c.bound for c in head)
        verdict = "**met**" if med >= TARGET_RATIO else "**missed**"
        lines.append(
            f"- {HEADLINE} reaches {FULL}'s final median best with {med:.2f}x less total budget, "
            f"median over {len(head)} problems (target >= {TARGET_RATIO:g}x): {verdict}"
            + (f" ({bounds} of them bounds: never reached)" if bounds else "")
        )
        per = ", ".join(f"`{c.problem}` {c.ratio_text()}x" for c in head)
        lines.append(f"  - per problem: {per}")
    pairs = []
    beats = 0
    by = {(c.problem, c.arm): c for c in cells}
    for c in head:
        hb = by.get((c.problem, "katib-hyperband"))
        if hb is None or math.isnan(c.at_hyperband):
            continue
        wins, n = hyperband_wins(runs, c.problem, HEADLINE)
        better = c.at_hyperband < hb.at_hyperband
        beats += better
        pairs.append(
            f"`{c.problem}` {c.at_hyperband:.3f} vs {hb.at_hyperband:.3f} ({wins}/{n} seeds lower)"
        )
    if pairs:
        verdict = "**met**" if beats == len(pairs) else "**missed**"
        lines.append(
            f"- {HEADLINE} beats Katib's hyperband at equal budget (median best full-budget "
            f"value at hyperband's total budget, lower on every problem): {beats}/{len(pairs)} "
            f"problems, {verdict}"
        )
        lines.append(f"  - {HEADLINE} vs hyperband: " + "; ".join(pairs))
    return lines


def table_md(cells: Sequence[Cell], facts: dict[str, Any]) -> str:
    rows = [
        "| problem | arm | seeds | median final best | budget to target | ratio vs "
        f"{FULL} | median best at hyperband's budget | budget spent | s/run |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cells:
        f = facts[c.problem]
        reach = f"{c.reach:.2f}" if c.reach is not None else f"> {c.spent:.1f}"
        rows.append(
            f"| {c.problem} | {c.arm} | {c.seeds} | {c.final:.4f} | {reach} | {c.ratio_text()} | "
            f"{c.at_hyperband:.4f} | {c.spent:.2f} | {c.wall:.0f} |"
        )
    rows.append("")
    rows.append(
        f"| problem | target ({FULL}'s median final best) | {FULL} reaches it at "
        "| hyperband's total budget |"
    )
    rows.append("|---|---:|---:|---:|")
    for p, f in facts.items():
        hb = f"{f['hyperband_budget']:.2f}" if f["hyperband_budget"] is not None else "-"
        rows.append(f"| {p} | {f['target']:.4f} | {f['t_full']:.2f} | {hb} |")
    return "\n".join(rows)


COLORS = {
    FULL: "black",
    "dcsa-bo-asha": "tab:red",
    "gp-bo-asha": "tab:blue",
    "random-asha": "tab:gray",
    "katib-hyperband": "tab:green",
}
#: Colours of --variant arms, in the order they appear.
VARIANT_COLORS = ("tab:orange", "tab:purple", "tab:brown", "tab:olive", "tab:cyan", "tab:pink")


def color(arm: str) -> str:
    if arm in COLORS:
        return COLORS[arm]
    variants = [a for a in ARMS if a not in COLORS]
    return VARIANT_COLORS[variants.index(arm) % len(VARIANT_COLORS)]


def plot(runs: Sequence[dict[str, Any]], facts: dict[str, Any], path: Path) -> None:
    """One panel per problem: median best full-budget value vs budget, IQR band, per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in runs if not r["error"]]
    probs = list(facts)
    if not probs:
        return
    budget = max(r["budget"] for r in ok)
    at = grid(budget)
    cols = min(len(probs), 2)
    rows = math.ceil(len(probs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 4.2 * rows), squeeze=False)
    for ax, p in zip(axes.flat, probs, strict=False):
        for arm in ARMS:
            rs = [r for r in ok if r["problem"] == p and r["arm"] == arm]
            if not rs:
                continue
            med = median_curve(rs, at)
            lo, hi = median_curve(rs, at, 25), median_curve(rs, at, 75)
            ax.plot(at, med, color=color(arm), label=f"{arm} ({len(rs)})", lw=1.6)
            ax.fill_between(at, lo, hi, color=color(arm), alpha=0.12, lw=0)
        ax.axhline(facts[p]["target"], color="black", ls=":", lw=1)
        ax.set_title(p)
        ax.set_xlabel("total budget spent (full-budget trials = 27 epochs)")
        ax.set_ylabel("best full-budget loss (median, IQR)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(probs) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- the command ---------------------------------------------------------------------------
def fingerprints() -> dict[str, str]:
    """What a run's answer depends on besides its key: the server's code and libraries (the
    suite's fingerprints, which include the loop), mf_problems.py and the code here that
    touches a run (the meter, hyperband's requests, run_one; not the report, so that editing
    the report keeps the stored runs)."""
    import inspect

    from benchmarks import suite  # the suite's fingerprints of the servers

    servers = suite.server_fingerprints()
    touching = (Meter, HyperbandRequests, hyperband_parallel, Run, run_one, hyperband_command)
    here = "".join(inspect.getsource(obj) for obj in touching)
    own = [REPO / "benchmarks" / "mf_problems.py"]
    katib_src = workers.KATIB_SRC / "pkg" / "suggestion" / "v1beta1" / "hyperband"
    hb_code = sorted(katib_src.rglob("*.py")) if katib_src.is_dir() else []
    hb = [*own, REPO / "benchmarks" / "katib_service.py"]
    loop = f"loop {drive.loop_fingerprint()}"
    return {
        "dcsa": suite._digest(own, servers["dcsa"] + here),
        "katib-hyperband": suite._digest(
            hb + hb_code, loop + suite._venv_packages(HYPERBAND_VENV) + here
        ),
    }


def run_fingerprint(prints: dict[str, str], run: Run) -> str:
    kind = "katib-hyperband" if run.arm == "katib-hyperband" else "dcsa"
    return f"{prints[kind]}-{run.problem().fingerprint()}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--set", choices=("tune", "check"), default="check")
    p.add_argument("--problems", nargs="+", help="base problems (default: the set's)")
    p.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    p.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1")
    p.add_argument("--budget", type=float, default=30.0, help="full-budget equivalents per run")
    p.add_argument("--out", type=Path, help="default benchmarks/results/multi_fidelity[/tune]")
    p.add_argument("--fresh", action="store_true", help="ignore the checkpoint")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="only report the stored runs of the plan, whatever their fingerprint",
    )
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        help="also run <arm>:<k>=<v>[,...] (an arm of ours with extra settings; screening)",
    )
    p.add_argument("--no-plot", action="store_true")
    ns = p.parse_args(argv)
    try:
        ns.arms = [*ns.arms, *(add_variant(v) for v in ns.variant)]
    except ValueError as exc:
        p.error(str(exc))
    bases = mf.CHECK_BASES if ns.set == "check" else mf.TUNE_BASES
    ns.problems = ns.problems or list(bases)
    unknown = [b for b in ns.problems if b not in mf.TUNE_BASES + mf.CHECK_BASES]
    if unknown:
        p.error(f"unknown base problems {unknown}; known: {list(mf.TUNE_BASES + mf.CHECK_BASES)}")
    ns.out = ns.out or (OUT if ns.set == "check" else OUT / ns.set)
    return ns


def plan(ns: argparse.Namespace) -> list[Run]:
    """Seed by seed, so that an interrupted run has every arm on the first seeds."""
    return [
        Run(base, arm, seed, ns.budget)
        for seed in range(ns.seeds)
        for base in ns.problems
        for arm in ns.arms
    ]


def load(
    checkpoint: Path, wanted: dict[str, str], *, any_fingerprint: bool = False
) -> dict[str, dict[str, Any]]:
    """Stored runs of the planned keys whose fingerprint matches (the latest line wins); with
    ``any_fingerprint`` (``--report-only``), whatever code produced them."""
    done: dict[str, dict[str, Any]] = {}
    if not checkpoint.exists():
        return done
    for line in checkpoint.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by an interrupted write
        key = entry["key"]
        if key not in wanted or entry["run"]["error"]:
            continue
        if any_fingerprint or wanted[key] == entry["fingerprint"]:
            done[key] = entry["run"]
    return done


def main(argv: Sequence[str] | None = None) -> int:
    ns = parse_args(argv)
    runs = plan(ns)
    missing = hyperband_available()
    if missing and "katib-hyperband" in ns.arms and not ns.report_only:
        print(f"# katib-hyperband left out: {missing}", flush=True)
        runs = [r for r in runs if r.arm != "katib-hyperband"]
    ns.out.mkdir(parents=True, exist_ok=True)
    checkpoint = ns.out / "checkpoint.jsonl"
    prints = fingerprints()
    wanted = {r.key: run_fingerprint(prints, r) for r in runs}
    done = {} if ns.fresh else load(checkpoint, wanted, any_fingerprint=ns.report_only)
    from_record, record_meta = {}, {}
    if ns.report_only:
        from_record, record_meta = read_record(
            ns.out / "runs.json",
            lambda r: Run(r["problem"], r["arm"], r["seed"], r["budget"]).key,
            wanted,
        )
        done = {**from_record, **done}
        if not done:
            return nothing_to_report([checkpoint, ns.out / "runs.json"])
    todo = [r for r in runs if r.key not in done]
    print(f"# {len(runs)} runs planned, {len(runs) - len(todo)} reused, {len(todo)} to run")
    started = time.monotonic()
    servers = workers.Servers()
    failed = 0
    try:
        for i, run in enumerate([] if ns.report_only else todo):
            record = run_one(run, servers)
            done[run.key] = record
            failed += bool(record["error"])
            with checkpoint.open("a") as fh:
                entry = {"key": run.key, "fingerprint": wanted[run.key], "run": record}
                fh.write(json.dumps(entry, separators=(",", ":")) + "\n")
            print(
                f"[{i + 1}/{len(todo)}] {run.key}: {len(record['trials'])} trials, "
                f"{spent(record):.2f} spent, end {record['end']}, {record['wall_seconds']:.0f} s"
                + (f", ERROR {record['error']}" if record["error"] else ""),
                flush=True,
            )
    finally:
        servers.close()
    kept = [done[r.key] for r in runs if r.key in done]
    cells, facts = summarise(kept)
    lines = criteria(cells, kept)
    meta = {
        "command": shlex.join(
            ["python", "-m", "benchmarks.multi_fidelity", *(sys.argv[1:] if argv is None else argv)]
        ),
        "set": ns.set,
        "problems": ns.problems,
        "arms": {a: ARMS[a].doc for a in ns.arms},
        "seeds": ns.seeds,
        "budget_full_equivalents": ns.budget,
        "epochs": [mf.B_MIN, mf.B_MAX],
        "eta": mf.ETA,
        "fingerprints": prints,
        "wall_seconds": round(time.monotonic() - started, 1),
        "finished_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    if from_record:
        # a report of runs made before: when and by what code they were made, not this call's
        meta.update(
            {
                k: record_meta[k]
                for k in ("fingerprints", "wall_seconds", "finished_utc")
                if k in record_meta
            }
        )
        meta["reported_from"] = "runs.json"
    (ns.out / "runs.json").write_text(
        json.dumps({"meta": meta, "runs": kept}, separators=(",", ":"))
    )
    text = [
        "# Multi-fidelity benchmark (issue 13)",
        "",
        "Produced by:",
        "",
        "```",
        meta["command"],
        "```",
        "",
        f"Set `{ns.set}` ({', '.join(ns.problems)}), {ns.seeds} seeds, {ns.budget:g} full-budget "
        f"equivalents per run ({ns.budget * mf.B_MAX:g} epochs; a trial costs its epochs, "
        f"{mf.B_MIN}..{mf.B_MAX}; ASHA eta {mf.ETA}: rungs 1, 3, 9, 27). Finished "
        f"{meta['finished_utc']}. Best = lowest observed loss among full-budget (27-epoch) "
        "trials. Budget in full-budget equivalents (27 epochs). Ratio = the budget at which "
        f"{FULL}'s median curve reaches its own median final best / the budget at which the "
        "arm's median curve reaches it ('<': never reached; bound). Hyperband runs one "
        "hyperband iteration (brackets s = 3..0) and stops; 'at hyperband's budget' compares "
        "every arm at the budget it spent. See docs/benchmarks.md.",
        "",
        "## Targets",
        "",
        *lines,
        "",
        "## Table",
        "",
        table_md(cells, facts),
        "",
    ]
    (ns.out / "table.md").write_text("\n".join(text))
    if not ns.no_plot:
        plot(kept, facts, ns.out / "curves.png")
    print("\n".join(lines))
    print(f"table and plot: {ns.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
