"""Summaries of the suite's runs: curves, ranks, efficiency, criteria, table and plots.

Definitions (docs/benchmarks.md):

* a cell is (problem, batch, budget); an arm's runs in a cell differ only by seed;
* best-so-far curve of a run: b(t) = min of the observed losses of trials 1..t; an arm's
  median (and quartile) curve: the pointwise median (quartiles) over its seeds;
* final best: b(budget), median and interquartile range over seeds;
* rank of an arm in a cell: 1 for the lowest median final best, ties share the mean rank;
* T_A(target): the first trial at which A's median curve is <= target;
* efficiency of A against a baseline B: target = B's median final best,
  efficiency = T_B(target) / T_A(target); if A's median curve never reaches the target the
  efficiency is reported as the bound ``< T_B / budget``;
* wins vs B: on how many seeds A's final best is lower than B's with the same seed;
* paired test of A against B: Wilcoxon's signed-rank test, two-sided, on the differences of
  the final bests of the seeds both ran (the arms share each seed's random streams), as a
  p-value beside the median criteria: it says whether a gap is larger than seed noise;
* AUC: the mean of the median curve over trials 1..budget (objective units: a uniform random
  point scores about 1); lower is better.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from benchmarks import problems as problem_set

GPBO = "gp-bo"
TPE = "tpe"
RANDOM = "random"
DCSA = "dcsa-bo"
OPTUNA_GP = "optuna-gp"
HEBO = "hebo"
ARM_ORDER = (
    "random",
    "skopt",
    "katib-tpe",
    "tpe",
    "optuna-gp",
    "hebo",
    "botorch",
    "gp-bo",
    "dc-bo",
    "sa-bo",
    "dcsa-bo",
)


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
    """One arm in one cell (problem, batch, budget)."""

    problem: str
    batch: int
    budget: int
    arm: str
    seeds: int
    median: np.ndarray
    q25: np.ndarray
    q75: np.ndarray
    final_median: float
    final_q25: float
    final_q75: float
    rank: float
    auc: float
    eff_tpe: Efficiency
    eff_gp: Efficiency
    wins_vs_random: tuple[int, int] | None  # (wins, paired seeds)
    wins_vs_gp: tuple[int, int] | None
    seconds_per_call: float
    seconds_per_run: float
    fallbacks: int
    errors: int
    finals: Mapping[int, float]  # final best per seed

    @property
    def cell(self) -> tuple[str, int, int]:
        return (self.problem, self.batch, self.budget)


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
    if not np.isfinite(arm_median[-1]):
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


def _ranks(finals: Mapping[str, float]) -> dict[str, float]:
    """1 = lowest; ties share the mean of their ranks; arms without runs are left out."""
    items = sorted((v, a) for a, v in finals.items() if math.isfinite(v))
    out: dict[str, float] = {}
    i = 0
    while i < len(items):
        j = i
        while j + 1 < len(items) and items[j + 1][0] == items[i][0]:
            j += 1
        for k in range(i, j + 1):
            out[items[k][1]] = (i + j) / 2 + 1
        i = j + 1
    return out


def _wins(finals: Mapping[str, Mapping[int, float]], arm: str, base: str) -> tuple[int, int] | None:
    if arm == base or base not in finals:
        return None
    paired = sorted(set(finals[arm]) & set(finals[base]))
    if not paired:
        return None
    return (sum(finals[arm][s] < finals[base][s] for s in paired), len(paired))


def paired(a: ArmSummary, b: ArmSummary) -> tuple[int, int, float | None]:
    """(seeds where ``a``'s final best is lower, seeds both ran, Wilcoxon's two-sided p-value of
    the paired differences; None with fewer than 5 seeds or no nonzero difference)."""
    seeds = sorted(set(a.finals) & set(b.finals))
    diff = np.array([a.finals[s] - b.finals[s] for s in seeds])
    lower = int(np.sum(diff < 0))
    if len(seeds) < 5 or not np.any(diff != 0):
        return lower, len(seeds), None
    return lower, len(seeds), float(stats.wilcoxon(diff, zero_method="zsplit").pvalue)


def paired_text(a: ArmSummary, b: ArmSummary) -> str:
    lower, n, p = paired(a, b)
    pv = "too few seeds for a test" if p is None else f"Wilcoxon p = {p:.2g}"
    return f"lower on {lower}/{n} seeds, {pv}"


def summarise(runs: Sequence[Mapping[str, Any]]) -> list[ArmSummary]:
    """One summary per (problem, batch, budget, arm), in a stable order."""
    cells: dict[tuple[str, int, int], dict[str, list[Mapping[str, Any]]]] = {}
    for r in runs:
        cells.setdefault((r["problem"], r["batch"], r["budget"]), {}).setdefault(
            r["arm"], []
        ).append(r)
    out: list[ArmSummary] = []
    for (prob, batch, budget), by_arm in cells.items():
        mats = {arm: curves(rs, budget) for arm, rs in by_arm.items()}
        medians = {arm: np.median(m, axis=0) for arm, m in mats.items() if m.shape[0]}
        finals = {
            arm: {
                r["seed"]: float(best_so_far(r["values"][:budget])[-1])
                for r in rs
                if len(r["values"]) >= budget
            }
            for arm, rs in by_arm.items()
        }
        ranks = _ranks({a: float(m[-1]) for a, m in medians.items()})
        for arm in sorted(by_arm, key=arm_key):
            mat = mats[arm]
            rs = by_arm[arm]
            calls = [s for r in rs for s in r["call_seconds"]]
            if mat.shape[0] == 0:
                nan = np.full(budget, np.nan)
                med, q25, q75 = nan, nan, nan
            else:
                med = medians[arm]
                q25, q75 = np.percentile(mat, [25, 75], axis=0)
            out.append(
                ArmSummary(
                    problem=prob,
                    batch=batch,
                    budget=budget,
                    arm=arm,
                    seeds=int(mat.shape[0]),
                    median=med,
                    q25=q25,
                    q75=q75,
                    final_median=float(med[-1]),
                    final_q25=float(q25[-1]),
                    final_q75=float(q75[-1]),
                    rank=ranks.get(arm, math.nan),
                    auc=float(np.mean(med)),
                    eff_tpe=efficiency(med, medians.get(TPE)),
                    eff_gp=efficiency(med, medians.get(GPBO)),
                    wins_vs_random=_wins(finals, arm, RANDOM),
                    wins_vs_gp=_wins(finals, arm, GPBO),
                    seconds_per_call=float(sum(calls) / max(len(calls), 1)),
                    seconds_per_run=float(np.median([r["wall_seconds"] for r in rs])),
                    fallbacks=sum(int(r.get("fallbacks", 0)) for r in rs),
                    errors=sum(bool(r.get("error")) for r in rs),
                    finals=finals[arm],
                )
            )
    return sorted(out, key=lambda s: (s.budget, s.batch, problem_key(s.problem), arm_key(s.arm)))


def arm_key(arm: str) -> tuple[int, str]:
    base = arm.partition("@")[0]
    return (ARM_ORDER.index(base) if base in ARM_ORDER else len(ARM_ORDER), arm)


def problem_key(problem: str) -> tuple[int, int, str]:
    order = problem_set.CHECK + problem_set.TUNE
    return (
        0 if problem in problem_set.CHECK else 1,
        order.index(problem) if problem in order else len(order),
        problem,
    )


def _g(x: float) -> str:
    if not math.isfinite(x):
        return "-"
    return f"{x:.3g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


def _set_of(problem: str) -> str:
    return "check" if problem in problem_set.CHECK else "tune"


# ---- markdown -------------------------------------------------------------------------------
def table_md(summaries: Sequence[ArmSummary]) -> str:
    head = (
        "| problem | set | batch | trials | arm | seeds | final best: median [IQR] | rank "
        "| eff. vs tpe | eff. vs gp-bo | wins vs random | AUC | s/call | s/run | fallbacks |\n"
        "|---|---|---:|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for s in summaries:
        wins = f"{s.wins_vs_random[0]}/{s.wins_vs_random[1]}" if s.wins_vs_random else "-"
        errors = f" ({s.errors} failed)" if s.errors else ""
        lines.append(
            f"| {s.problem} | {_set_of(s.problem)} | {s.batch} | {s.budget} | {s.arm} | "
            f"{s.seeds}{errors} | {_g(s.final_median)} [{_g(s.final_q25)}, {_g(s.final_q75)}] | "
            f"{_g(s.rank)} | {s.eff_tpe.text() if s.arm != TPE else '1 (base)'} | "
            f"{s.eff_gp.text() if s.arm != GPBO else '1 (base)'} | {wins} | {_g(s.auc)} | "
            f"{s.seconds_per_call:.3f} | {s.seconds_per_run:.1f} | {s.fallbacks} |"
        )
    return head + "\n".join(lines) + "\n"


def rank_table_md(summaries: Sequence[ArmSummary]) -> str:
    """Median rank over problems per arm, for each (set, batch, budget)."""
    groups: dict[tuple[str, int, int], dict[str, list[float]]] = {}
    counts: dict[tuple[str, int, int], set[str]] = {}
    for s in summaries:
        if not math.isfinite(s.rank):
            continue
        g = (_set_of(s.problem), s.batch, s.budget)
        groups.setdefault(g, {}).setdefault(s.arm, []).append(s.rank)
        counts.setdefault(g, set()).add(s.problem)
    lines = [
        "| set | batch | trials | problems | arm: median rank (problems ranked) |",
        "|---|---:|---:|---:|---|",
    ]
    for g in sorted(groups):
        arms = sorted(groups[g].items(), key=lambda kv: (statistics.median(kv[1]), arm_key(kv[0])))
        text = "; ".join(f"{a} {statistics.median(r):.1f} ({len(r)})" for a, r in arms)
        lines.append(f"| {g[0]} | {g[1]} | {g[2]} | {len(counts[g])} | {text} |")
    return "\n".join(lines) + "\n"


def _by_cell(summaries: Sequence[ArmSummary]) -> dict[tuple[str, int, int], dict[str, ArmSummary]]:
    out: dict[tuple[str, int, int], dict[str, ArmSummary]] = {}
    for s in summaries:
        if s.seeds:
            out.setdefault(s.cell, {})[s.arm] = s
    return out


def _verdict(ok: bool | None) -> str:
    return "**not measured**" if ok is None else ("**met**" if ok else "**missed**")


def criteria(summaries: Sequence[ArmSummary], which: str = "check") -> list[str]:
    """The 'Done when' lines of issue 10 (gp-bo) and issue 11 (dcsa-bo) on one problem set,
    for each (batch, budget). Only the check set decides; the tune set is shown for tuning."""
    cells = {c: arms for c, arms in _by_cell(summaries).items() if _set_of(c[0]) == which}
    out: list[str] = []
    for batch, budget in sorted({(c[1], c[2]) for c in cells}):
        group = {c[0]: arms for c, arms in cells.items() if (c[1], c[2]) == (batch, budget)}
        out.append(f"### {which} set, batch {batch}, {budget} trials ({len(group)} problems)")
        out.append("")
        out += _issue10(group)
        out += _issue11(group)
        out.append("")
    return out or [f"- no {which}-set problem in this run"]


def _median_rank(group: Mapping[str, Mapping[str, ArmSummary]], arm: str) -> float | None:
    ranks = [arms[arm].rank for arms in group.values() if arm in arms]
    return statistics.median(ranks) if ranks else None


def _issue10(group: Mapping[str, Mapping[str, ArmSummary]]) -> list[str]:
    out = []
    gp = _median_rank(group, GPBO)
    ogp = _median_rank(group, OPTUNA_GP)
    tpe = _median_rank(group, TPE)
    if gp is None or ogp is None or tpe is None:
        have = ", ".join(
            f"{a} {r:.1f}" for a, r in ((GPBO, gp), (OPTUNA_GP, ogp), (TPE, tpe)) if r is not None
        )
        out.append(
            "- issue 10, gp-bo's median rank <= optuna-gp's and < tpe's: **not measured** "
            f"(needs gp-bo, optuna-gp and tpe; have: {have or 'none'})"
        )
    else:
        ok = gp <= ogp and gp < tpe
        out.append(
            f"- issue 10, gp-bo's median rank <= optuna-gp's and < tpe's: {_verdict(ok)} "
            f"(gp-bo {gp:.1f}, optuna-gp {ogp:.1f}, tpe {tpe:.1f}; ranks among the arms run)"
        )
    pairs = [(p, a[GPBO], a[RANDOM]) for p, a in group.items() if GPBO in a and RANDOM in a]
    if pairs:
        lost = [p for p, g, r in pairs if not g.final_median < r.final_median]
        out.append(
            f"- issue 10, gp-bo beats random on every problem: {_verdict(not lost)} "
            f"({len(pairs) - len(lost)}/{len(pairs)}"
            + (f"; not on {', '.join(lost)}" if lost else "")
            + ")"
        )
    else:
        out.append("- issue 10, gp-bo beats random on every problem: **not measured**")
    pairs = [(p, a[GPBO], a[HEBO]) for p, a in group.items() if GPBO in a and HEBO in a]
    if pairs:
        within = [p for p, g, h in pairs if g.final_median <= 1.5 * h.final_median]
        need = math.ceil(len(group) / 2)
        out.append(
            f"- issue 10, gp-bo within 1.5x of HEBO on at least half the problems: "
            f"{_verdict(len(within) >= need)} ({len(within)}/{len(pairs)} with HEBO runs, "
            f"{need} needed of {len(group)})"
        )
    else:
        out.append("- issue 10, gp-bo within 1.5x of HEBO: **not measured** (no HEBO runs)")
    return out


def _issue11(group: Mapping[str, Mapping[str, ArmSummary]]) -> list[str]:
    multi = {p: a for p, a in group.items() if not problem_set.get(p).single_group}
    single = {p: a for p, a in group.items() if problem_set.get(p).single_group}
    with_dcsa = {p: a for p, a in multi.items() if DCSA in a}
    out = []
    if not with_dcsa:
        return ["- issue 11: **not measured** (no dcsa-bo runs on multi-subnetwork problems)"]
    n = len(multi)
    lowest = [
        p
        for p, a in with_dcsa.items()
        if a[DCSA].final_median <= min(s.final_median for s in a.values())
    ]
    need = math.ceil(2 * n / 3)
    out.append(
        f"- issue 11, dcsa-bo lowest median final best (of all arms run) on >= 2/3 of the "
        f"multi-subnetwork problems: {_verdict(len(lowest) >= need)} ({len(lowest)}/{n}, "
        f"{need} needed)"
    )
    vs_tpe = [
        (p, a[DCSA].final_median / a[TPE].final_median)
        for p, a in with_dcsa.items()
        if TPE in a and a[TPE].final_median > 0
    ]
    if vs_tpe:
        good = [p for p, r in vs_tpe if r <= 0.8]
        need = math.ceil(n / 2)
        out.append(
            f"- issue 11, dcsa-bo <= 0.8x tpe's median final best on >= half: "
            f"{_verdict(len(good) >= need)} ({len(good)}/{len(vs_tpe)}, {need} needed; "
            f"ratios {', '.join(f'{p} {r:.2f}' for p, r in vs_tpe)})"
        )
        effs = [a[DCSA].eff_tpe for a in with_dcsa.values() if TPE in a]
        vals = [e.value for e in effs if e.value is not None]
        if vals:
            med = statistics.median(vals)
            bounds = sum(e.bound for e in effs)
            out.append(
                f"- issue 11, dcsa-bo's median efficiency vs tpe >= 2x: {_verdict(med >= 2)} "
                f"(median {med:.2f}x over {len(vals)} problems; {bounds} of them bounds '<')"
            )
    else:
        out.append("- issue 11, dcsa-bo vs tpe: **not measured** (no tpe runs)")
    worse = []
    checked = 0
    for p, a in {**multi, **single}.items():
        base = [a[x] for x in (GPBO, "dc-bo", "sa-bo") if x in a]
        if DCSA in a and base:
            checked += 1
            best = min(base, key=lambda b: b.final_median)
            if a[DCSA].final_median > 1.1 * best.final_median:
                worse.append(
                    f"{p} ({a[DCSA].final_median / best.final_median:.2f}x {best.arm}; "
                    f"{paired_text(a[DCSA], best)})"
                )
    out.append(
        f"- issue 11, dcsa-bo never worse than 1.1x the best of gp-bo/dc-bo/sa-bo: "
        f"{_verdict(not worse if checked else None)} ({checked} problems"
        + (f"; worse on {', '.join(worse)}" if worse else "")
        + ")"
    )
    pairs = [(p, a[DCSA], a[GPBO]) for p, a in single.items() if DCSA in a and GPBO in a]
    if pairs:
        worse_s = [p for p, d, g in pairs if d.final_median > g.final_median]
        out.append(
            f"- issue 11, dcsa-bo not worse than gp-bo on single-group problems: "
            f"{_verdict(not worse_s)} ({len(pairs) - len(worse_s)}/{len(pairs)}"
            + (f"; worse on {', '.join(worse_s)}" if worse_s else "")
            + ")"
        )
    else:
        out.append("- issue 11, single-group problems: **not measured**")
    return out


# ---- plots ----------------------------------------------------------------------------------
def _colors(arms: Sequence[str]) -> dict[str, str]:
    return {arm: f"C{i % 10}" for i, arm in enumerate(sorted(set(arms), key=arm_key))}


def plot(summaries: Sequence[ArmSummary], out_dir: Path) -> list[Path]:
    """``convergence-<problem>-b<batch>-n<budget>.png``: median best-so-far and IQR band per
    arm; ``ranks-<set>-b<batch>-n<budget>.png``: every arm's rank on every problem."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = _colors([s.arm for s in summaries])
    paths = []
    for (prob, batch, budget), arms in _by_cell(summaries).items():
        fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
        items = sorted(arms.values(), key=lambda a: arm_key(a.arm))
        positive = all(np.nanmin(a.q25) > 0 for a in items)
        for a in items:
            t = np.arange(1, a.budget + 1)
            width = 2.2 if a.arm in (DCSA, GPBO) else 1.3
            ax.plot(t, a.median, label=f"{a.arm} (n={a.seeds})", color=colors[a.arm], lw=width)
            ax.fill_between(t, a.q25, a.q75, color=colors[a.arm], alpha=0.12, lw=0)
        if positive:
            ax.set_yscale("log")
        ax.set_xlabel("trials")
        ax.set_ylabel("best-so-far loss (median, IQR band)")
        ax.set_title(f"{prob} ({_set_of(prob)} set), batch {batch}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        path = out_dir / f"convergence-{prob}-b{batch}-n{budget}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    paths += plot_ranks(summaries, out_dir, colors)
    return paths


def plot_ranks(
    summaries: Sequence[ArmSummary], out_dir: Path, colors: Mapping[str, str]
) -> list[Path]:
    import matplotlib.pyplot as plt

    groups: dict[tuple[str, int, int], list[ArmSummary]] = {}
    for s in summaries:
        if math.isfinite(s.rank):
            groups.setdefault((_set_of(s.problem), s.batch, s.budget), []).append(s)
    paths = []
    for (which, batch, budget), items in sorted(groups.items()):
        probs = sorted({s.problem for s in items}, key=problem_key)
        arms = sorted({s.arm for s in items}, key=arm_key)
        fig, ax = plt.subplots(figsize=(max(7.0, 0.6 * len(probs) + 3), 5.0), dpi=110)
        x = np.arange(len(probs))
        for k, arm in enumerate(arms):
            by = {s.problem: s.rank for s in items if s.arm == arm}
            y = np.array([by.get(p, np.nan) for p in probs])
            jitter = (k - (len(arms) - 1) / 2) * 0.04
            med = float(np.nanmedian(y))
            width = 2.2 if arm in (DCSA, GPBO) else 1.0
            ax.plot(
                x + jitter,
                y,
                "o-",
                color=colors[arm],
                lw=width,
                ms=4,
                alpha=0.85,
                label=f"{arm} (median {med:.1f})",
            )
        ax.set_xticks(x, probs, rotation=45, ha="right", fontsize=8)
        ax.set_ylabel("rank by median final best (1 = best)")
        ax.invert_yaxis()
        ax.set_title(f"ranks on the {which} set, batch {batch}, {budget} trials")
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        fig.tight_layout()
        path = out_dir / f"ranks-{which}-b{batch}-n{budget}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths
