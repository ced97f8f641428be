"""Real-task multi-fidelity benchmark (issue 13): the budget ASHA needs on the trial image's tasks
to reach full-budget dcsa-bo's final median best, with and without checkpoint reuse.

Arms, per task and seed (interleaved per seed: seed 0's three arms, then seed 1's, ...; the same
``random_state`` in every arm):

- ``dcsa-bo``: an ordinary full-budget run, every trial trains ``--max-epochs`` epochs;
- ``dcsa-bo-asha``: dcsa-bo with ``resource_name=epochs`` and ``eta`` (default 3), the space
  gaining ``epochs`` in ``--min-epochs..--max-epochs`` (rungs 1, 3, 9 by default), and a fresh
  checkpoint directory per run (``--checkpoint-dir``): a promoted trial resumes from the lower
  rung's checkpoint of its configuration and trains only the extra epochs;
- ``dcsa-bo-asha-nockpt``: the same without a checkpoint directory (``--checkpoint-dir=``, which
  also overrides ``$DCSA_CHECKPOINT_DIR``): a promoted trial trains from scratch.

Each Experiment is ``manifests/examples/<task>.yaml`` as ``benchmarks/real_tasks.py`` prepares it
(:func:`benchmarks.real_tasks.make_experiment`: name, arm, seed, ``maxTrialCount``,
``parallelTrialCount``, ``maxFailedTrialCount`` = the trial count, ``n_initial_points``,
``--num-threads=1``), then changed here: the ASHA arms get the ``epochs`` parameter, its trial
parameter, ``--epochs=${trialParameters.epochs}`` and the two settings; the full arm gets
``--epochs=<max>``; ``--max-samples`` only when asked (tests). It runs through the same
``run_command`` as ``dcsa run FILE --plain --state-dir DIR``
(:func:`benchmarks.real_tasks.execute_doc`), and the trials are read back from ``state.json``
and from their logs (``<state>/logs/<trial>.log``).

**Cost of a trial** (:func:`trial_cost`) = the epochs it really trained. The trial image logs
``checkpoint: resumed from FILE (epochs 1-K); training epochs K+1-E`` when it resumes (``...;
nothing left`` when a file with all E epochs was there), and ``checkpoint: training from
scratch (...)`` when it has no usable checkpoint. A succeeded trial costs ``E - K`` when it
resumed after K epochs, else its ``E`` epochs (no checkpoint directory, a missing or unusable
checkpoint, no log). A trial that did not succeed costs the epochs it completed past K (its
last ``epoch=N`` metric line) plus the one it was in when it stopped, at most ``E - K``.

**Best** = the best objective among succeeded trials *at the full budget* (epochs = max), in
trial creation order; a lower rung's value is not a full-budget result. A run's curve is that
best against the cumulative cost (epochs); before its first full-budget trial it is "none yet",
and after its last trial it stays at its final best (the run's budget is its trial count).

**Ratio** (as ``benchmarks/multi_fidelity.py`` defines it, with epochs as the budget): the
target is ``dcsa-bo``'s median final best (the last point of its median curve over seeds);
ratio = the budget at which ``dcsa-bo``'s median curve first reaches the target / the budget at
which the arm's median curve first reaches it. "not reached" when the arm's median curve never
does; the bound ``< t_full / (the arm's largest total)`` is given with it.

**Budgets.** Every arm gets the same epochs: the full arm's (``--full-trials`` trials at
``--max-epochs``, default 6 x 9 = 54; ``--epoch-budget`` sets another). An ASHA run is an
Experiment with ``--trials`` trials (default 45, enough to spend 54 epochs with or without
reuse here), scored on its trials in creation order up to the last one that keeps its total
within the budget (:func:`capped`), as if the Experiment had stopped there; the trials after that
are kept in ``runs.json`` (``reuse_twins`` reads them) but count for nothing. A run that ends
below the budget is scored on all its trials and the table says so. (Until 2026-12-01 the ASHA
arms ran a fixed 27 trials, which with delayed promotions spent 38-47 epochs against the full
arm's 54: a "not reached" was then partly the benchmark's stop.)

Wall time: a trial here is dominated by its process start (importing torch, loading the data:
about 7 s on this machine) rather than by its epochs (0.1-0.4 s each on digits, diabetes and
mnist1d), so wall time follows the trial count, not the epochs; it is reported per run as
measured, on a shared machine. Tasks: digits and diabetes by default; ``--tasks mnist1d`` runs
on the CPU too (one trial about 8.5 s here, 0.3 s an epoch, like digits) and was left out of the
defaults only to keep the default benchmark near 40 minutes on this shared 2-core machine.

Outputs in ``--out`` (default ``benchmarks/results/real_mf/``): ``runs.json`` (every trial of
every run with its cost and checkpoint status; rewritten after every run; ``--resume`` skips
runs already in it with the same key), ``table.md`` and ``curves.png`` (median best full-budget
value against cumulative epochs, IQR band, per task).

    python -m benchmarks.real_mf --tasks digits diabetes mnist1d --seeds 5 --parallel 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as ``python benchmarks/real_mf.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import real_tasks as rt
from benchmarks.multi_fidelity import first_reach

OUT = rt.REPO / "benchmarks" / "results" / "real_mf"
TASKS = ("digits", "diabetes", "mnist1d")
DEFAULT_TASKS = ("digits", "diabetes")
FULL = "dcsa-bo"
ASHA = "dcsa-bo-asha"
NOCKPT = "dcsa-bo-asha-nockpt"
ARMS = (FULL, ASHA, NOCKPT)
SHORT = {FULL: "full", ASHA: "asha", NOCKPT: "asha-nc"}
COLORS = {FULL: "black", ASHA: "tab:red", NOCKPT: "tab:blue"}
BUDGET = "epochs"
KEY_FIELDS = (
    "task",
    "arm",
    "seed",
    "trials",
    "parallel",
    "min_epochs",
    "max_epochs",
    "eta",
    "n_initial",
    "max_samples",
)

_RESUMED = re.compile(
    r"checkpoint: resumed from (?P<path>.+?) \(epochs? (?:\d+-)?(?P<epochs>\d+)\); "
    r"(?:training|nothing left)"
)
_SCRATCH = re.compile(r"checkpoint: training from scratch")
_EPOCH = re.compile(r"^epoch=(\d+(?:\.\d*)?)\s*$", re.MULTILINE)


# ---- runs ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MFRun:
    task: str
    arm: str
    seed: int
    trials: int
    parallel: int
    min_epochs: int
    max_epochs: int
    eta: int
    n_initial: int | None
    max_samples: int | None = None

    @property
    def name(self) -> str:
        name = f"rmf-{self.task}-{SHORT[self.arm]}-s{self.seed}"
        assert len(name) <= 40, name
        return name

    def key(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in KEY_FIELDS}


def rungs(min_epochs: int, max_epochs: int, eta: int) -> list[int]:
    """The ladder's budgets: ``min * eta**k`` below the max, then the max (as the service's
    ``asha.make_ladder`` builds them for an int budget)."""
    out = []
    b = min_epochs
    while b < max_epochs:
        out.append(b)
        b *= eta
    out.append(max_epochs)
    return out


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc["spec"]["trialTemplate"]
    for c in spec["trialSpec"]["spec"]["template"]["spec"]["containers"]:
        if c["name"] == spec["primaryContainerName"]:
            container: dict[str, Any] = c  # the document's own, edited in place
            return container
    raise SystemExit("no primary container in the trial template")


def make_experiment(
    base: Mapping[str, Any], run: MFRun, checkpoint_dir: Path | None
) -> dict[str, Any]:
    """The run's Experiment: real_tasks' preparation of the example, then the arm's budget."""
    full = run.arm == FULL
    doc = rt.make_experiment(
        base,
        rt.RunSpec(
            run.task,
            "dcsa-bo",
            run.seed,
            run.trials,
            run.parallel,
            run.max_epochs if full else None,
            run.n_initial,
        ),
    )
    doc["metadata"]["name"] = run.name
    spec = doc["spec"]
    names = {p["name"] for p in spec["parameters"]}
    if BUDGET in names:
        raise SystemExit(f"manifests/examples/{run.task}.yaml already has a parameter {BUDGET!r}")
    c = _container(doc)
    command = [str(a) for a in c["command"]]
    if not full:
        spec["parameters"].insert(
            0,
            {
                "name": BUDGET,
                "parameterType": "int",
                "feasibleSpace": {"min": str(run.min_epochs), "max": str(run.max_epochs)},
            },
        )
        spec["trialTemplate"]["trialParameters"].insert(
            0, {"name": BUDGET, "reference": BUDGET, "description": "training budget (ASHA)"}
        )
        command = rt._set_flag(command, "--epochs", f"${{trialParameters.{BUDGET}}}")
        spec["algorithm"]["algorithmSettings"] += [
            {"name": "resource_name", "value": BUDGET},
            {"name": "eta", "value": str(run.eta)},
        ]
    command = rt._set_flag(command, "--checkpoint-dir", str(checkpoint_dir or ""))
    if run.max_samples is not None:
        command = rt._set_flag(command, "--max-samples", str(run.max_samples))
    c["command"] = command
    return doc


# ---- trial costs --------------------------------------------------------------------------------
@dataclass(frozen=True)
class LogInfo:
    """What a trial's log says about its checkpoint and its epochs."""

    checkpoint: str  # "resumed", "scratch" (no usable checkpoint) or "off" (no line about it)
    resumed_epochs: int  # K of "resumed from ... (epochs 1-K)"; 0 unless resumed
    last_epoch: int | None  # the last "epoch=N" metric line


def parse_log(text: str) -> LogInfo:
    m = _RESUMED.search(text)
    epochs = [int(float(x)) for x in _EPOCH.findall(text)]
    last = epochs[-1] if epochs else None
    if m:
        return LogInfo("resumed", int(m.group("epochs")), last)
    if _SCRATCH.search(text):
        return LogInfo("scratch", 0, last)
    return LogInfo("off", 0, last)


def trial_cost(epochs: int, succeeded: bool, log: LogInfo | None) -> int:
    """Epochs the trial really trained (see the module doc)."""
    resumed = log.resumed_epochs if log is not None else 0
    due = max(0, epochs - resumed)
    if succeeded or log is None:
        return due
    done = max(0, (log.last_epoch or 0) - resumed)
    return min(due, done + 1)


def annotate(rec: dict[str, Any], state_dir: Path | None) -> dict[str, Any]:
    """Add each trial's budget, checkpoint status and cost to a run record (in place)."""
    for t in rec["trials_run"]:
        epochs = int(float(t["assignments"].get(BUDGET, rec["max_epochs"])))
        log: LogInfo | None = None
        if state_dir is not None:
            path = state_dir / "logs" / f"{t['name']}.log"
            if path.exists():
                log = parse_log(path.read_text(encoding="utf-8", errors="replace"))
        t["epochs"] = epochs
        t["checkpoint"] = log.checkpoint if log is not None else "no log"
        t["resumed_epochs"] = log.resumed_epochs if log is not None else 0
        t["last_epoch"] = log.last_epoch if log is not None else None
        t["cost"] = trial_cost(epochs, t["condition"] == rt.SUCCEEDED, log)
    return rec


def execute(run: MFRun, base: Mapping[str, Any], tmp: Path) -> dict[str, Any]:
    ckpt = tmp / f"{run.name}-checkpoints" if run.arm == ASHA else None
    doc = make_experiment(base, run, ckpt)
    load1 = os.getloadavg()[0]
    rec = {**run.key(), "load1_at_start": round(load1, 2), **rt.execute_doc(doc, rt.REPO, tmp)}
    rec["epoch_rungs"] = rungs(run.min_epochs, run.max_epochs, run.eta) if run.arm != FULL else []
    return annotate(rec, tmp / run.name)


def load_note(runs: Sequence[Mapping[str, Any]]) -> str:
    """What the machine's load was while the runs started (wall times depend on it)."""
    loads = [float(r["load1_at_start"]) for r in runs if "load1_at_start" in r]
    if not loads:
        return "the load while these runs ran was not recorded (wall times are noisy)."
    return (
        f"1-minute load average at the runs' starts {min(loads):.1f}-{max(loads):.1f} "
        "(wall times depend on it)."
    )


# ---- curves and the ratio -----------------------------------------------------------------------
def loss_of(value: float | None, maximize: bool) -> float:
    if value is None:
        return math.inf
    return -value if maximize else value


def run_curve(run: Mapping[str, Any], at: np.ndarray) -> np.ndarray:
    """Best full-budget loss (the objective, negated when maximised) after each cumulative cost
    in ``at``: inf before the first full-budget success, flat after the run's last trial."""
    maximize = run["objective_type"] == "maximize"
    spent, best = 0.0, math.inf
    points_c, points_v = [0.0], [math.inf]
    for t in run["trials_run"]:
        spent += t["cost"]
        if t["epochs"] >= run["max_epochs"]:
            best = min(best, loss_of(t["objective"], maximize))
        points_c.append(spent)
        points_v.append(best)
    idx = np.searchsorted(np.array(points_c), at + 1e-9, side="right") - 1
    return np.array(points_v)[idx]


def total_cost(run: Mapping[str, Any]) -> int:
    return int(sum(t["cost"] for t in run["trials_run"]))


def capped(run: Mapping[str, Any], epochs: int) -> dict[str, Any]:
    """The run as if its Experiment had stopped at ``epochs``: its trials in creation order up to
    the last one that keeps the total within ``epochs``; ``cut_trials`` says how many were left
    out. A run within the budget comes back whole (``cut_trials`` 0)."""
    kept, spent = [], 0
    for t in run["trials_run"]:
        if spent + t["cost"] > epochs:
            break
        spent += t["cost"]
        kept.append(t)
    return {**run, "trials_run": kept, "cut_trials": len(run["trials_run"]) - len(kept)}


def grid(runs: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Every epoch from 1 to the largest total any run spent."""
    return np.arange(1, max((total_cost(r) for r in runs), default=0) + 1, dtype=float)


def median_curve(runs: Sequence[Mapping[str, Any]], at: np.ndarray, q: float = 50) -> np.ndarray:
    """The q-th percentile over runs (the median for 50) of their curves; inf counts."""
    stack = np.array([run_curve(r, at) for r in runs])
    if q == 50:
        return np.asarray(np.median(stack, axis=0), dtype=float)
    return np.asarray(np.percentile(stack, q, axis=0, method="nearest"), dtype=float)


@dataclass(frozen=True)
class Cell:
    """One arm on one task."""

    task: str
    arm: str
    seeds: list[int]
    maximize: bool
    metric: str
    finals: list[float]  # per seed: final best full-budget objective (NaN: none)
    final: float  # median final best (objective units; NaN when none)
    spent: list[int]  # per seed: total epochs
    full_trials: list[int]  # per seed: succeeded full-budget trials
    trials: list[int]  # per seed: trials run
    promoted: int  # trials with a budget above the lowest rung (all seeds)
    resumed: int  # trials that resumed from a checkpoint (all seeds)
    promoted_scratch: int  # promoted trials that trained from scratch despite a checkpoint dir
    failed: int
    cut: list[int]  # per seed: trials after the epoch budget, not scored
    reach: float | None  # epochs at which the median curve reaches the target
    ratio: float | None  # t_full / reach; None when not reached or no target
    bound: float | None  # t_full / the arm's largest total, when not reached
    walls: list[float]

    def ratio_text(self) -> str:
        if self.ratio is not None:
            return f"{self.ratio:.2f}x"
        if self.bound is not None:
            return f"not reached (< {self.bound:.2f}x)"
        return "n/a"


def scored(runs: Sequence[Mapping[str, Any]], epoch_budget: int | None) -> list[Mapping[str, Any]]:
    """The runs as they are scored: the ASHA arms' :func:`capped` at ``epoch_budget``."""
    if epoch_budget is None:
        return list(runs)
    return [r if r["arm"] == FULL else capped(r, epoch_budget) for r in runs]


def summarise(
    runs: Sequence[Mapping[str, Any]],
    tasks: Sequence[str],
    arms: Sequence[str] = ARMS,
    epoch_budget: int | None = None,
) -> tuple[list[Cell], dict[str, dict[str, Any]]]:
    """Cells per (task, arm) and per-task facts (target, the full arm's budget to reach it).
    With ``epoch_budget`` the ASHA arms' runs are scored :func:`capped` at it."""
    cells: list[Cell] = []
    facts: dict[str, dict[str, Any]] = {}
    for task in tasks:
        task_runs = scored(
            [r for r in runs if r["task"] == task and r["arm"] in arms], epoch_budget
        )
        if not task_runs:
            continue
        at = grid(task_runs)
        by_arm = {
            a: sorted((r for r in task_runs if r["arm"] == a), key=lambda r: int(r["seed"]))
            for a in arms
        }
        maximize = task_runs[0]["objective_type"] == "maximize"
        sign = -1.0 if maximize else 1.0
        full = by_arm.get(FULL) or []
        target = t_full = None
        if full and len(at):
            t = float(median_curve(full, at)[-1])
            if math.isfinite(t):
                target = t
                t_full = first_reach(median_curve(full, at), at, t)
        facts[task] = {
            "target": sign * target if target is not None else None,
            "t_full": t_full,
            "metric": task_runs[0]["objective_metric"],
            "maximize": maximize,
            "max_epochs": task_runs[0]["max_epochs"],
            "epoch_budget": epoch_budget,
        }
        for arm, rs in by_arm.items():
            if not rs:
                continue
            finals = [float(run_curve(r, np.array([float(total_cost(r))]))[0]) for r in rs]
            finals_obj = [sign * f if math.isfinite(f) else math.nan for f in finals]
            med_final = float(np.median(finals)) if finals else math.inf
            reach = ratio = bound = None
            if target is not None and t_full is not None:
                reach = first_reach(median_curve(rs, at), at, target)
                if reach is not None:
                    ratio = t_full / reach
                else:
                    bound = t_full / max(total_cost(r) for r in rs)
            trials = [t for r in rs for t in r["trials_run"]]
            low = {min(r["epoch_rungs"]) if r["epoch_rungs"] else r["max_epochs"] for r in rs}
            lowest = min(low)
            promoted = [t for t in trials if t["epochs"] > lowest]
            cells.append(
                Cell(
                    task=task,
                    arm=arm,
                    seeds=[int(r["seed"]) for r in rs],
                    maximize=maximize,
                    metric=rs[0]["objective_metric"],
                    finals=finals_obj,
                    final=sign * med_final if math.isfinite(med_final) else math.nan,
                    spent=[total_cost(r) for r in rs],
                    full_trials=[
                        sum(
                            t["epochs"] >= r["max_epochs"] and t["condition"] == rt.SUCCEEDED
                            for t in r["trials_run"]
                        )
                        for r in rs
                    ],
                    trials=[len(r["trials_run"]) for r in rs],
                    promoted=len(promoted) if arm != FULL else 0,
                    resumed=sum(t["checkpoint"] == "resumed" for t in trials),
                    promoted_scratch=sum(t["checkpoint"] == "scratch" for t in promoted),
                    failed=sum(t["condition"] != rt.SUCCEEDED for t in trials),
                    cut=[int(r.get("cut_trials", 0)) for r in rs],
                    reach=reach,
                    ratio=ratio,
                    bound=bound,
                    walls=[float(r["wall_seconds"]) for r in rs],
                )
            )
    return cells, facts


# ---- report -------------------------------------------------------------------------------------
def _fmt(v: float | None, task: str) -> str:
    if v is None or math.isnan(v):
        return "none"
    return f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}"


def _span(xs: Sequence[float]) -> str:
    lo, hi = min(xs), max(xs)
    return f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"


def reuse_twins(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per seed with both ASHA arms: the (configuration, epochs) pairs both trained, how many
    gave equal values, and how many leading trials had the same assignments."""
    common = equal = 0
    shared: list[int] = []
    seeds = sorted({int(r["seed"]) for r in runs})
    for seed in seeds:
        pair = [r for a in (ASHA, NOCKPT) for r in runs if r["arm"] == a and r["seed"] == seed]
        if [r["arm"] for r in pair] != [ASHA, NOCKPT]:
            continue
        values = []
        for r in pair:
            v: dict[tuple[str, int], float | None] = {}
            for t in r["trials_run"]:
                config = {k: x for k, x in t["assignments"].items() if k != BUDGET}
                if t["condition"] == rt.SUCCEEDED:
                    v[(json.dumps(config, sort_keys=True), t["epochs"])] = t["objective"]
            values.append(v)
        both = set(values[0]) & set(values[1])
        common += len(both)
        equal += sum(values[0][k] == values[1][k] for k in both)
        a, b = (r["trials_run"] for r in pair)
        n = 0
        while n < min(len(a), len(b)) and a[n]["assignments"] == b[n]["assignments"]:
            n += 1
        shared.append(n)
    return {"pairs": len(shared), "common": common, "equal": equal, "shared": shared}


def headline(cells: Sequence[Cell]) -> list[str]:
    lines = []
    for task in dict.fromkeys(c.task for c in cells):
        by = {c.arm: c for c in cells if c.task == task}
        parts = []
        for arm, label in ((ASHA, "with checkpoint reuse"), (NOCKPT, "without reuse")):
            if arm in by:
                parts.append(f"{label} ({arm}) {by[arm].ratio_text()}")
        if parts:
            lines.append(f"- **{task}**: " + "; ".join(parts))
    return lines


def budget_note(facts: Mapping[str, Mapping[str, Any]], cells: Sequence[Cell]) -> str:
    """The epoch budget as the table states it: "every arm" only where the full arm's runs
    spent exactly the budget (it is never cut: it sets the target)."""
    budgets = {f["epoch_budget"] for f in facts.values()}
    if budgets == {None}:
        return "No epoch budget: every run is scored on all its trials (`--epoch-budget 0`)."
    (budget,) = budgets
    full = sorted({e for c in cells if c.arm == FULL for e in c.spent})
    who = (
        f"Every arm gets {budget} epochs"
        if full in ([], [budget])
        else f"The ASHA arms get {budget} epochs (the full arm's runs, never cut, spent "
        f"{_span(full)})"
    )
    return (
        f"{who}: an ASHA run is scored on its trials in creation order up to the last that "
        "keeps its total within them, as if the Experiment had stopped there (`trials / run` "
        "counts those; the ones after it, in brackets, count for nothing)."
    )


def write_table(
    path: Path,
    cells: Sequence[Cell],
    facts: Mapping[str, Mapping[str, Any]],
    runs: Sequence[Mapping[str, Any]],
    command: str,
) -> None:
    total_wall = sum(float(r["wall_seconds"]) for r in runs)
    first = runs[0] if runs else {}
    n_seeds = len({r["seed"] for r in runs})
    ladder = rungs(first["min_epochs"], first["max_epochs"], first["eta"]) if runs else "none"
    lines = [
        "# Real tasks, multi-fidelity (issue 13): ASHA with and without checkpoint reuse "
        "against full-budget dcsa-bo",
        "",
        "Produced by:",
        "",
        "```sh",
        command,
        "```",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores; {load_note(runs)} "
        "Wall time of the benchmark "
        f"(sum over its {len(runs)} runs, one after another): {total_wall / 60:.1f} min.",
        "",
        f"Budget = epochs trained. ASHA arms: epochs {first.get('min_epochs')}.."
        f"{first.get('max_epochs')} in the space, eta {first.get('eta')} (rungs "
        f"{ladder}); full arm: every trial at "
        f"{first.get('max_epochs')} epochs. A trial costs the epochs it really trained: a "
        "resumed trial only its extra epochs (from the trial image's `checkpoint: resumed "
        "from ... (epochs 1-K)` log line). Best = best objective among trials at the full "
        "budget only, trials in creation order. Target = dcsa-bo's median final best; ratio = "
        "epochs dcsa-bo's median curve needs to reach it / epochs the arm's median curve needs "
        "(the definition of benchmarks/multi_fidelity.py). See the docstring of "
        "benchmarks/real_mf.py.",
        "",
        budget_note(facts, cells),
        "",
        f"With {n_seeds} seed{'s' if n_seeds != 1 else ''} and a few full-budget trials per run, "
        "these are small-sample numbers: the per-seed columns show the spread.",
        "",
        "## Ratios",
        "",
        *headline(cells),
        "",
    ]
    for task, f in facts.items():
        task_cells = [c for c in cells if c.task == task]
        if not task_cells:
            continue
        direction = "maximise" if f["maximize"] else "minimise"
        task_runs = [r for r in runs if r["task"] == task]
        cmds = {r["arm"]: shlex.join(r["trial_command"]) for r in task_runs if r["seed"] == 0}
        target = _fmt(f["target"], task)
        t_full = f"{f['t_full']:g}" if f["t_full"] is not None else "n/a"
        lines += [
            f"## {task}: {direction} `{f['metric']}`",
            "",
            f"Target (dcsa-bo's median final best at {f['max_epochs']} epochs): {target}, "
            f"which dcsa-bo's median curve reaches after {t_full} epochs.",
            "",
            "| arm | seeds | trials / run (after the budget) | full-budget trials / run | "
            "median final best | epochs / run | epochs to target | ratio vs dcsa-bo | "
            "promoted (resumed) | failed | wall / run (s) |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for c in task_cells:
            reach = f"{c.reach:g}" if c.reach is not None else f"> {max(c.spent)}"
            promoted = "-" if c.arm == FULL else f"{c.promoted} ({c.resumed})"
            lines.append(
                f"| {c.arm} | {len(c.seeds)} | {_span(c.trials)} ({_span(c.cut)}) | "
                f"{_span(c.full_trials)} | "
                f"{_fmt(c.final, task)} | {statistics.median(c.spent):g} ({_span(c.spent)}) | "
                f"{reach} | {c.ratio_text()} | {promoted} | {c.failed} | "
                f"{statistics.median(c.walls):.0f} |"
            )
        short = [
            f"{c.arm} seed {s} ({e} epochs)"
            for c in task_cells
            if c.arm != FULL and f["epoch_budget"] is not None
            for s, e, n in zip(c.seeds, c.spent, c.cut, strict=True)
            if n == 0 and e < f["epoch_budget"]
        ]
        if short:
            lines += [
                "",
                "Ended below the budget (all its trials spent first): " + ", ".join(short) + ".",
            ]
        seeds = sorted({s for c in task_cells for s in c.seeds})
        lines += ["", "Per seed: final best full-budget value / total epochs:", ""]
        lines += ["| arm | " + " | ".join(f"seed {s}" for s in seeds) + " |"]
        lines += ["|---|" + "---:|" * len(seeds)]
        for c in task_cells:
            per = {
                s: f"{_fmt(v, task)} / {e}"
                for s, v, e in zip(c.seeds, c.finals, c.spent, strict=True)
            }
            lines.append(f"| {c.arm} | " + " | ".join(per.get(s, "-") for s in seeds) + " |")
        scratch = [c for c in task_cells if c.arm == ASHA and c.promoted_scratch]
        if scratch:
            lines += [
                "",
                f"{scratch[0].promoted_scratch} promoted trial(s) of {ASHA} found no usable "
                "checkpoint and trained from scratch (charged their full epochs).",
            ]
        twins = reuse_twins(task_runs)
        if twins["pairs"]:
            lines += [
                "",
                f"Reuse against no reuse, same seed: {twins['common']} (configuration, epochs) "
                f"pairs were trained in both ASHA arms, and {twins['equal']} of them gave the "
                "same objective value to the last digit (a resumed trial continues exactly). "
                "The two arms' trial sequences part after "
                f"{_span(twins['shared'])} trials (per seed): with parallel trials, which trial "
                "ends first (and so what ASHA promotes or proposes next) depends on timing. So "
                "the two arms differ in cost by design and in their later configurations by "
                "chance.",
            ]
        lines += ["", "Trial commands (seed 0):", ""]
        lines += [f"- {a}: `{cmd}`" for a, cmd in cmds.items()]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


def write_figure(
    path: Path, runs: Sequence[Mapping[str, Any]], facts: Mapping[str, Mapping[str, Any]]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in facts if any(r["task"] == t for r in runs)]
    if not tasks:
        return
    fig, axes = plt.subplots(1, len(tasks), figsize=(6.4 * len(tasks), 4.4), squeeze=False)
    for ax, task in zip(axes.flat, tasks, strict=False):
        f = facts[task]
        sign = -1.0 if f["maximize"] else 1.0
        task_runs = scored([r for r in runs if r["task"] == task], f["epoch_budget"])
        at = grid(task_runs)
        for arm in ARMS:
            rs = [r for r in task_runs if r["arm"] == arm]
            if not rs:
                continue
            with np.errstate(invalid="ignore"):
                med = sign * median_curve(rs, at)
                lo = sign * median_curve(rs, at, 25)
                hi = sign * median_curve(rs, at, 75)
            finite = np.isfinite(med)
            ax.step(
                at[finite], med[finite], where="post", color=COLORS[arm], label=f"{arm} ({len(rs)})"
            )
            band = np.isfinite(lo) & np.isfinite(hi)
            ax.fill_between(
                at[band], lo[band], hi[band], step="post", color=COLORS[arm], alpha=0.15, lw=0
            )
        if f["target"] is not None:
            ax.axhline(f["target"], color="k", ls=":", lw=1, label="target")
        better = "higher" if f["maximize"] else "lower"
        ax.set_xlabel("cumulative epochs trained")
        ax.set_ylabel(f"best full-budget {f['metric']} ({better} is better)")
        n = len({r["seed"] for r in task_runs})
        ax.set_title(f"{task}: median over {n} seeds; band: 25th-75th percentile (nearest seed)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- the command --------------------------------------------------------------------------------
def plan(ns: argparse.Namespace) -> list[MFRun]:
    """Seed by seed (every task's arms on seed 0 first), so that an interrupted benchmark has
    every arm of every task on its first seeds."""
    full_trials = ns.full_trials
    n_initial = ns.n_initial if ns.n_initial > 0 else None
    trials = {arm: full_trials if arm == FULL else ns.trials for arm in ARMS}
    return [
        MFRun(
            task,
            arm,
            seed,
            trials[arm],
            min(ns.parallel, trials[arm]),  # Katib: parallelTrialCount <= maxTrialCount
            ns.min_epochs,
            ns.max_epochs,
            ns.eta,
            n_initial,
            ns.max_samples,
        )
        for seed in range(ns.seeds)
        for task in ns.tasks
        for arm in ns.arms
    ]


def _key(d: Mapping[str, Any]) -> str:
    return json.dumps({k: d[k] for k in KEY_FIELDS}, sort_keys=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS), choices=TASKS)
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    p.add_argument(
        "--trials", type=int, default=45, help="trials of an ASHA run (it is cut at the budget)"
    )
    p.add_argument("--full-trials", type=int, default=6, help="trials of a dcsa-bo run")
    p.add_argument(
        "--epoch-budget",
        type=int,
        default=None,
        help="epochs every arm gets (default: the full arm's, full trials x max epochs; "
        "0: score every trial of every run)",
    )
    p.add_argument("--parallel", type=int, default=2)
    p.add_argument("--min-epochs", type=int, default=1)
    p.add_argument("--max-epochs", type=int, default=9)
    p.add_argument("--eta", type=int, default=3)
    p.add_argument(
        "--n-initial", type=int, default=4, help="n_initial_points (0: the service's default)"
    )
    p.add_argument("--max-samples", type=int, default=None, help="subsample the data (tests)")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--resume", action="store_true", help="skip runs already in OUT/runs.json")
    p.add_argument("--no-plot", action="store_true")
    ns = p.parse_args(argv)
    for flag in ("trials", "full_trials"):
        if getattr(ns, flag) < 1:
            p.error(f"--{flag.replace('_', '-')} must be at least 1")
    if ns.epoch_budget is None:
        ns.epoch_budget = ns.full_trials * ns.max_epochs
    elif ns.epoch_budget < 0:
        p.error("--epoch-budget must be 0 (no budget) or a number of epochs")
    command = rt.command_line("benchmarks.real_mf", argv)
    runs_file, runs = rt.previous_runs(ns.out, resume=ns.resume)
    todo = plan(ns)
    wanted = {_key(r.key()) for r in todo}
    done = {_key(r) for r in runs}
    bases = {task: rt.load_example(task) for task in ns.tasks}
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dcsa-real-mf-") as tmp:
        for run in todo:
            if _key(run.key()) in done:
                print(f"{run.name}: in {runs_file}, skipped", flush=True)
                continue
            rec = execute(run, bases[run.task], Path(tmp))
            runs.append(rec)
            maximize = rec["objective_type"] == "maximize"
            best = run_curve(rec, np.array([float(total_cost(rec))]))[0]
            shown = (-best if maximize else best) if math.isfinite(best) else math.nan
            print(
                f"{run.name}: {rec['status']} ({rec['stop_reason']}), "
                f"{len(rec['trials_run'])} trials, {total_cost(rec)} epochs, "
                f"{sum(t['checkpoint'] == 'resumed' for t in rec['trials_run'])} resumed, "
                f"best full-budget {shown:.4f}, {rec['wall_seconds']:.0f} s; elapsed "
                f"{(time.monotonic() - t_start) / 60:.1f} min",
                flush=True,
            )
            runs_file.write_text(
                json.dumps({"command": command, "runs": runs}, indent=1) + "\n", encoding="utf-8"
            )
    selected = [r for r in runs if _key(r) in wanted]
    cells, facts = summarise(selected, ns.tasks, ns.arms, ns.epoch_budget or None)
    runs_file.write_text(
        json.dumps({"command": command, "runs": runs}, indent=1) + "\n", encoding="utf-8"
    )
    write_table(ns.out / "table.md", cells, facts, selected, command)
    if not ns.no_plot:
        write_figure(ns.out / "curves.png", selected, facts)
    print("\n".join(headline(cells)))
    print(f"table: {ns.out / 'table.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
