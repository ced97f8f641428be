"""Where, at 10 budgets, is the best configuration a run has started? (twelfth session)

Reads a multi-fidelity runs.json (each trial: [epochs, observed value, true f]; a configuration
is identified by its true f) and prints, per ASHA arm: how many runs' best-started configuration
(by true f, within the first 10 full budgets) is still only on rung 0, its rank on rung 0 by
1-epoch value (quartiles), and per problem the median true f of the best started and the median
reported value (best observed at 27 epochs). Added in the thirteenth session: when that
configuration was started (in budgets spent), and the same figures for the best configuration
started by 7 budgets, which had 3 budgets (a climb 1 -> 27 epochs costs 40 epochs, 1.5 budgets)
to be confirmed at the full budget. Run on the main runs the screens compare with:

    python where_best_started.py ../screen-curve-model/delayed-curve2-10seeds.runs.json
"""

import json
import statistics
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

AT, EARLY, FULL = 10.0, 7.0, 27.0
runs = json.loads(Path(sys.argv[1]).read_text())["runs"]
per_problem: dict[tuple[str, str], list[tuple[float, float, float, float]]] = defaultdict(list)
for arm in sorted({r["arm"] for r in runs if "asha" in r["arm"]}):
    highest: Counter[float] = Counter()
    highest_early: Counter[float] = Counter()
    ranks, starts = [], []
    for r in (r for r in runs if r["arm"] == arm):
        spent, top, rung0, reported = 0.0, {}, {}, float("inf")
        started: dict[float, float] = {}
        for b, obs, f in r["trials"]:
            spent += b / FULL
            if spent > AT + 1e-9:
                break
            started.setdefault(f, spent)
            top[f] = max(top.get(f, 0.0), b)
            if b == 1:
                rung0[f] = min(obs, rung0.get(f, float("inf")))
            if b == FULL:
                reported = min(reported, obs)
        best = min(top)
        early = min(f for f, t in started.items() if t <= EARLY + 1e-9)
        highest[top[best]] += 1
        highest_early[top[early]] += 1
        starts.append(started[best])
        order = sorted(rung0, key=rung0.__getitem__)
        if best in rung0:
            ranks.append(order.index(best) + 1)
        per_problem[(r["problem"], arm)].append((best, reported, early, started[best]))
    print(arm, "highest rung (epochs) of the best started:", dict(highest))
    print("  its rank on rung 0, quartiles:", np.percentile(ranks, [25, 50, 75]))
    print("  budgets spent when it was started, quartiles:", np.percentile(starts, [25, 50, 75]))
    print(f"  highest rung of the best started by {EARLY:g} budgets:", dict(highest_early))
for (problem, arm), v in sorted(per_problem.items()):
    print(
        f"{problem:12s} {arm:14s} best started {statistics.median(x[0] for x in v):.3f}"
        f"  reported {statistics.median(x[1] for x in v):.3f}"
        f"  best started by {EARLY:g} budgets {statistics.median(x[2] for x in v):.3f}"
    )
