"""Screening table for multi-fidelity variants (a developer's tool, like engine_tune).

Reads ``runs.json`` files written by ``benchmarks.multi_fidelity`` (e.g. a tune-set run with
``--variant``) and prints, per arm, the median best full-budget value at a few budgets and its
geometric mean over problems relative to ``dcsa-bo-full``'s median final best (lower is better),
then each arm's ratio as the benchmark's table defines it (dcsa-bo-full's budget to its own
median final best / the arm's budget to reach it; ``<`` a bound) and its median over problems:

    python -m benchmarks.multi_fidelity --set tune --seeds 5 \\
        --variant dcsa-bo-asha:asha_model=rung --out /tmp/mf-tune --no-plot
    python -m benchmarks.mf_screen /tmp/mf-tune/runs.json --at 10 20 30 \\
        --pair dcsa-bo-asha dcsa-bo-asha+asha_model=rung
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.multi_fidelity import FULL, budget_ratio, curve, grid, median_curve


def best_at(run: dict[str, Any], budget: float) -> float:
    """The run's best full-budget value once ``budget`` full-budget equivalents are spent
    (``multi_fidelity.curve`` at one budget)."""
    return float(curve(run, np.array([budget]))[0])


def table(runs: Sequence[dict[str, Any]], budgets: Sequence[float]) -> str:
    cells: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        cells[(r["problem"], r["arm"])].append(r)
    problems = sorted({p for p, _ in cells})
    arms = list(dict.fromkeys(a for _, a in cells))
    at = np.array(budgets, dtype=np.float64)
    # each cell's median curve, read at the budgets and at the end (its final best)
    medians = {key: median_curve(rs, np.append(at, math.inf)) for key, rs in cells.items()}
    final = {p: medians[(p, FULL)][-1] for p in problems if (p, FULL) in medians}
    w = max(len(a) for a in arms) + 2
    lines = []
    for j, budget in enumerate(budgets):
        lines.append(f"median best full-budget value at {budget:g} full budgets")
        lines.append(
            "arm".ljust(w) + "".join(f"{p[:14]:>15}" for p in problems) + f"{'geo/full':>10}"
        )
        for arm in arms:
            meds = [medians[(p, arm)][j] if (p, arm) in medians else math.nan for p in problems]
            ratios = [m / final[p] for m, p in zip(meds, problems, strict=True) if p in final]
            ok = ratios and all(math.isfinite(x) and x > 0 for x in ratios)
            geo = math.exp(statistics.fmean(map(math.log, ratios))) if ok else math.nan
            lines.append(arm.ljust(w) + "".join(f"{m:15.4f}" for m in meds) + f"{geo:10.3f}")
        lines.append("")
    return "\n".join(lines)


def ratios(runs: Sequence[dict[str, Any]]) -> str:
    """Per arm and problem, the benchmark's ratio to dcsa-bo-full's final median best."""
    cells: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        cells[(r["problem"], r["arm"])].append(r)
    problems = sorted({p for p, _ in cells if (p, FULL) in cells})
    arms = list(dict.fromkeys(a for _, a in cells))
    budget = max(r["budget"] for r in runs)
    at = grid(budget)
    w = max(len(a) for a in arms) + 2
    lines = [
        "ratio: budget for dcsa-bo-full's median final best, dcsa-bo-full / arm "
        "('<': never reached)",
        "arm".ljust(w) + "".join(f"{p[:14]:>15}" for p in problems) + f"{'median':>10}",
    ]
    full = {p: median_curve(cells[(p, FULL)], at) for p in problems}
    for arm in arms:
        values, texts = [], []
        for p in problems:
            if (p, arm) not in cells:
                values.append(math.nan)
                texts.append("-")
                continue
            ratio, reach = budget_ratio(full[p], median_curve(cells[(p, arm)], at), at, budget)
            values.append(ratio)
            texts.append(f"{ratio:.2f}" if reach else f"<{ratio:.2f}")
        med = statistics.median(values) if not any(map(math.isnan, values)) else math.nan
        lines.append(arm.ljust(w) + "".join(f"{t:>15}" for t in texts) + f"{med:10.2f}")
    return "\n".join(lines)


def pairs(runs: Sequence[dict[str, Any]], base: str, arm: str, budgets: Sequence[float]) -> str:
    """Per (problem, seed) pair run by both arms: how often ``arm``'s best full-budget value
    is lower than ``base``'s at each budget, and the geometric mean of arm / base."""
    by = {(r["problem"], r["seed"], r["arm"]): r for r in runs}
    keys = sorted({(p, s) for p, s, a in by if a == base and (p, s, arm) in by})
    if not keys:
        return f"no (problem, seed) pair has both {base!r} and {arm!r}"
    lines = [f"{arm} against {base}, per (problem, seed) pair ({len(keys)} pairs)"]
    for budget in budgets:
        a = np.array([best_at(by[(p, s, arm)], budget) for p, s in keys])
        b = np.array([best_at(by[(p, s, base)], budget) for p, s in keys])
        ok = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
        geo = float(np.exp(np.mean(np.log(a[ok] / b[ok])))) if ok.any() else math.nan
        lines.append(
            f"  at {budget:g} budgets: lower {int(np.sum(a < b))}/{len(keys)}, "
            f"higher {int(np.sum(a > b))}, geo. ratio {geo:.3f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="runs.json files")
    p.add_argument("--at", nargs="+", type=float, default=[10.0, 20.0, 30.0])
    p.add_argument(
        "--pair",
        nargs=2,
        action="append",
        default=[],
        metavar=("BASE", "ARM"),
        help="also compare ARM with BASE per (problem, seed) pair (repeatable)",
    )
    ns = p.parse_args(argv)
    runs = [r for f in ns.runs for r in json.loads(f.read_text())["runs"]]
    print(table(runs, ns.at))
    print(ratios(runs))
    for base, arm in ns.pair:
        print()
        print(pairs(runs, base, arm, ns.at))
    return 0


if __name__ == "__main__":
    sys.exit(main())
