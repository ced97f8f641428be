"""Summaries of the synthetic suite's runs: curves, efficiency, final best, AUC, table and plots.

Definitions (docs/benchmarks.md):

* best-so-far curve of a run: b(t) = min of the observed losses of trials 1..t;
* an arm's median (and quartile) curve: the pointwise median (quartiles) over its seeds;
* T_A(target): the first trial t at which A's median curve is <= target;
* efficiency of A against a baseline B: target = B's median curve at the full budget,
  efficiency = T_B(target) / T_A(target). If A's median curve never reaches the target,
  T_A > budget, so the efficiency is reported as the bound ``< T_B / budget``;
* final best: the best-so-far at the budget, median and interquartile range over seeds, and
  a paired comparison with gp-bo (seeds where the arm's final best is lower, same seed);
* AUC: the mean of the median curve over trials 1..budget (objective units: a uniform random
  point scores about 1 and the optimum of the interaction-free problems is 0); lower is better.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

GPBO = "gp-bo"
SKOPT = "skopt"
DCSA = "dcsa-bo"
ARM_ORDER = ("random", "skopt", "tpe", "gp-bo", "dc-bo", "sa-bo", "dcsa-bo")
#: Issue 3's targets: (base problem, baseline, minimum efficiency of dcsa-bo).
EFFICIENCY_TARGETS = (
    ("unequal", GPBO, 5.0),
    ("unequal", SKOPT, 5.0),
    ("equal", GPBO, 2.0),
)
#: dcsa-bo's final best no worse than gp-bo's on this problem.
ROBUSTNESS_PROBLEM = "interaction-0.5"


@dataclass(frozen=True, kw_only=True)
class Efficiency:
    """T_baseline / T_arm at the baseline's final median best; ``bound`` when never reached."""

    value: float | None  # None when the baseline has no runs
    bound: bool  # True: the arm never reached the target, ``value`` is an upper bound
    t_arm: int | None
    t_base: int | None
    target: float | None

    def text(self) -> str:
        if self.value is None:
            return "n/a"
        if self.bound:
            return f"< {self.value:.2f}"
        return f"{self.value:.2f}"


@dataclass(frozen=True, kw_only=True)
class ArmSummary:
    """One arm on one (problem, batch)."""

    problem: str
    batch: int
    arm: str
    seeds: int
    budget: int
    median: np.ndarray
    q25: np.ndarray
    q75: np.ndarray
    final_median: float
    final_q25: float
    final_q75: float
    auc: float
    eff_gp: Efficiency
    eff_skopt: Efficiency
    wins_vs_gp: tuple[int, int] | None  # (wins, paired seeds)
    seconds_per_call: float
    fallbacks: int
    errors: int


def best_so_far(values: Sequence[float]) -> np.ndarray:
    return np.minimum.accumulate(np.asarray(values, dtype=float))


def curves(runs: Sequence[Mapping[str, Any]], budget: int) -> np.ndarray:
    """Seeds x budget best-so-far matrix of the runs that completed the budget."""
    rows = [best_so_far(r["values"][:budget]) for r in runs if len(r["values"]) >= budget]
    return np.array(rows) if rows else np.empty((0, budget))


def first_reach(curve: np.ndarray, target: float) -> int | None:
    """1-based index of the first point of ``curve`` at or below ``target``."""
    hit = np.nonzero(curve <= target + 1e-12 * max(1.0, abs(target)))[0]
    return int(hit[0]) + 1 if hit.size else None


def efficiency(arm_median: np.ndarray, base_median: np.ndarray | None) -> Efficiency:
    if base_median is None or base_median.size == 0 or arm_median.size == 0:
        return Efficiency(value=None, bound=False, t_arm=None, t_base=None, target=None)
    target = float(base_median[-1])
    t_base = first_reach(base_median, target)
    assert t_base is not None
    t_arm = first_reach(arm_median, target)
    if t_arm is None:
        return Efficiency(
            value=t_base / arm_median.size, bound=True, t_arm=None, t_base=t_base, target=target
        )
    return Efficiency(value=t_base / t_arm, bound=False, t_arm=t_arm, t_base=t_base, target=target)


def summarise(runs: Sequence[Mapping[str, Any]]) -> list[ArmSummary]:
    """One summary per (problem, batch, arm), in a stable order."""
    cells: dict[tuple[str, int], dict[str, list[Mapping[str, Any]]]] = {}
    for r in runs:
        cells.setdefault((r["problem"], r["batch"]), {}).setdefault(r["arm"], []).append(r)
    out: list[ArmSummary] = []
    for (prob, batch), by_arm in cells.items():
        budget = max(r["budget"] for rs in by_arm.values() for r in rs)
        mats = {arm: curves(rs, budget) for arm, rs in by_arm.items()}
        medians = {arm: np.median(m, axis=0) for arm, m in mats.items() if m.shape[0]}
        finals_by_seed = {
            arm: {
                r["seed"]: float(best_so_far(r["values"])[-1])
                for r in rs
                if len(r["values"]) >= budget
            }
            for arm, rs in by_arm.items()
        }
        for arm in sorted(by_arm, key=_arm_key):
            mat = mats[arm]
            rs = by_arm[arm]
            calls = [s for r in rs for s in r["call_seconds"]]
            n_calls = [len(r["call_seconds"]) for r in rs]
            if mat.shape[0] == 0:
                nan = np.full(budget, np.nan)
                med, q25, q75 = nan, nan, nan
            else:
                med = medians[arm]
                q25, q75 = np.percentile(mat, [25, 75], axis=0)
            wins = None
            if arm != GPBO and GPBO in finals_by_seed:
                paired = sorted(set(finals_by_seed[arm]) & set(finals_by_seed[GPBO]))
                if paired:
                    w = sum(finals_by_seed[arm][s] < finals_by_seed[GPBO][s] for s in paired)
                    wins = (w, len(paired))
            out.append(
                ArmSummary(
                    problem=prob,
                    batch=batch,
                    arm=arm,
                    seeds=int(mat.shape[0]),
                    budget=budget,
                    median=med,
                    q25=q25,
                    q75=q75,
                    final_median=float(med[-1]),
                    final_q25=float(q25[-1]),
                    final_q75=float(q75[-1]),
                    auc=float(np.mean(med)),
                    eff_gp=efficiency(med, medians.get(GPBO)),
                    eff_skopt=efficiency(med, medians.get(SKOPT)),
                    wins_vs_gp=wins,
                    seconds_per_call=float(sum(calls) / max(sum(n_calls), 1)),
                    fallbacks=sum(int(r.get("fallbacks", 0)) for r in rs),
                    errors=sum(bool(r.get("error")) for r in rs),
                )
            )
    return sorted(out, key=lambda s: (_problem_key(s.problem), s.batch, _arm_key(s.arm)))


def _arm_key(arm: str) -> int:
    return ARM_ORDER.index(arm) if arm in ARM_ORDER else len(ARM_ORDER)


def _problem_key(problem: str) -> tuple[int, str]:
    order = ("unequal", "equal", "interaction-0", "interaction-0.1", "interaction-0.5")
    base = problem.partition("-noise")[0]
    return (order.index(base) if base in order else len(order), problem)


def _g(x: float) -> str:
    if not math.isfinite(x):
        return "-"
    return f"{x:.3g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


# ---- markdown -------------------------------------------------------------------------------
def table_md(summaries: Sequence[ArmSummary]) -> str:
    head = (
        "| problem | batch | arm | seeds | final best: median [IQR] | eff. vs gp-bo "
        "| eff. vs skopt | wins vs gp-bo | AUC | s/call | fallbacks |\n"
        "|---|---:|---|---:|---|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for s in summaries:
        wins = f"{s.wins_vs_gp[0]}/{s.wins_vs_gp[1]}" if s.wins_vs_gp else "-"
        errors = f" ({s.errors} failed)" if s.errors else ""
        lines.append(
            f"| {s.problem} | {s.batch} | {s.arm} | {s.seeds}{errors} | "
            f"{_g(s.final_median)} [{_g(s.final_q25)}, {_g(s.final_q75)}] | "
            f"{s.eff_gp.text() if s.arm != GPBO else '1 (base)'} | "
            f"{s.eff_skopt.text() if s.arm != SKOPT else '1 (base)'} | {wins} | "
            f"{_g(s.auc)} | {s.seconds_per_call:.3f} | {s.fallbacks} |"
        )
    return head + "\n".join(lines) + "\n"


def verdicts(summaries: Sequence[ArmSummary]) -> list[str]:
    """One line per target of issue 3 and each (problem variant, batch) it applies to."""
    by = {(s.problem, s.batch, s.arm): s for s in summaries}
    cells = sorted(
        {(s.problem, s.batch) for s in summaries}, key=lambda c: (_problem_key(c[0]), c[1])
    )
    out: list[str] = []
    for base, baseline, need in EFFICIENCY_TARGETS:
        for prob, batch in cells:
            if prob.partition("-noise")[0] != base:
                continue
            s = by.get((prob, batch, DCSA))
            label = f"{prob}, batch {batch}: dcsa-bo efficiency vs {baseline} >= {need:g}x"
            if s is None or (baseline, batch) not in {(a, b) for (p, b, a) in by if p == prob}:
                out.append(f"- {label}: **not measured** (arm missing)")
                continue
            eff = s.eff_gp if baseline == GPBO else s.eff_skopt
            base_s = by[(prob, batch, baseline)]
            if eff.value is None:
                out.append(f"- {label}: **not measured**")
                continue
            detail = (
                f"target = {baseline}'s final median best {_g(eff.target or math.nan)} "
                f"(reached by {baseline} at trial {eff.t_base}, {base_s.seeds} seeds); "
            )
            if eff.bound:
                detail += (
                    f"dcsa-bo never reached it in {s.budget} trials (final median "
                    f"{_g(s.final_median)}, {s.seeds} seeds), efficiency {eff.text()}"
                )
                out.append(f"- {label}: **missed** (efficiency {eff.text()}x): {detail}")
                continue
            detail += f"dcsa-bo reached it at trial {eff.t_arm} ({s.seeds} seeds)"
            if eff.value >= need:
                out.append(f"- {label}: **met** ({eff.value:.2f}x): {detail}")
            else:
                out.append(
                    f"- {label}: **missed** ({eff.value:.2f}x, short by "
                    f"{need - eff.value:.2f}x, {100 * eff.value / need:.0f}% of target): {detail}"
                )
    for prob, batch in cells:
        if prob.partition("-noise")[0] != ROBUSTNESS_PROBLEM:
            continue
        label = f"{prob}, batch {batch}: dcsa-bo final best no worse than gp-bo's"
        s, g = by.get((prob, batch, DCSA)), by.get((prob, batch, GPBO))
        if s is None or g is None:
            out.append(f"- {label}: **not measured** (arm missing)")
            continue
        wins = (
            f"; paired: dcsa-bo lower on {s.wins_vs_gp[0]}/{s.wins_vs_gp[1]} seeds"
            if (s.wins_vs_gp)
            else ""
        )
        nums = (
            f"median {_g(s.final_median)} [IQR {_g(s.final_q25)}, {_g(s.final_q75)}] vs "
            f"gp-bo {_g(g.final_median)} [{_g(g.final_q25)}, {_g(g.final_q75)}]{wins}"
        )
        if s.final_median <= g.final_median:
            out.append(f"- {label}: **met**: {nums}")
        else:
            out.append(
                f"- {label}: **missed** by {_g(s.final_median - g.final_median)} "
                f"({100 * (s.final_median / g.final_median - 1):.0f}% worse): {nums}"
            )
    return out


# ---- plots ----------------------------------------------------------------------------------
def plot(summaries: Sequence[ArmSummary], out_dir: Path) -> list[Path]:
    """``convergence-<problem>-b<batch>.png``: median best-so-far and IQR band per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells: dict[tuple[str, int], list[ArmSummary]] = {}
    for s in summaries:
        cells.setdefault((s.problem, s.batch), []).append(s)
    paths = []
    colors = {arm: f"C{i}" for i, arm in enumerate(ARM_ORDER)}
    for (prob, batch), arms in cells.items():
        fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
        positive = all(np.nanmin(a.q25) > 0 for a in arms if a.seeds)
        for a in arms:
            if not a.seeds:
                continue
            t = np.arange(1, a.budget + 1)
            color = colors.get(a.arm)
            width = 2.2 if a.arm in (DCSA, GPBO) else 1.3
            ax.plot(t, a.median, label=f"{a.arm} (n={a.seeds})", color=color, lw=width)
            ax.fill_between(t, a.q25, a.q75, color=color, alpha=0.15, lw=0)
        if positive:
            ax.set_yscale("log")
        ax.set_xlabel("trials")
        ax.set_ylabel("best-so-far loss (median, IQR band)")
        ax.set_title(f"{prob}, batch {batch}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, ncol=2)
        fig.tight_layout()
        path = out_dir / f"convergence-{prob}-b{batch}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths
