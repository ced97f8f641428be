"""The suite's summaries: ranks, efficiency against a baseline, criteria lines."""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks import _suite_report as report


def _run(arm: str, seed: int, values: list[float], problem: str = "eq3-styb") -> dict[str, Any]:
    return {
        "problem": problem,
        "arm": arm,
        "batch": 1,
        "seed": seed,
        "budget": len(values),
        "values": values,
        "call_seconds": [0.01] * len(values),
        "wall_seconds": 1.0,
        "fallbacks": 0,
        "error": "",
    }


def test_efficiency_counts_trials_to_the_baselines_final_median() -> None:
    base = np.array([5.0, 4.0, 3.0, 2.0])  # reaches its final 2.0 at trial 4
    fast = np.array([5.0, 2.0, 1.0, 1.0])  # reaches 2.0 at trial 2
    eff = report.efficiency(fast, base)
    assert (eff.value, eff.bound, eff.t_base, eff.t_arm) == (2.0, False, 4, 2)
    slow = np.array([5.0, 4.0, 3.0, 2.5])
    eff = report.efficiency(slow, base)
    assert eff.bound and eff.value == 1.0 and eff.text() == "< 1.00"


def test_ranks_share_ties_and_summaries_carry_them() -> None:
    assert report._ranks({"a": 1.0, "b": 1.0, "c": 0.5}) == {"c": 1.0, "a": 2.5, "b": 2.5}
    runs = (
        [_run("tpe", s, [3.0, 2.0, 2.0, 1.0]) for s in range(3)]
        + [_run("gp-bo", s, [3.0, 1.0, 0.5, 0.5]) for s in range(3)]
        + [_run("random", s, [3.0, 2.5, 2.5, 2.0]) for s in range(3)]
    )
    by = {s.arm: s for s in report.summarise(runs)}
    assert (by["gp-bo"].rank, by["tpe"].rank, by["random"].rank) == (1.0, 2.0, 3.0)
    assert by["gp-bo"].eff_tpe.value == 4 / 2
    assert by["gp-bo"].wins_vs_random == (3, 3)
    lines = report.criteria(list(by.values()), "check")
    assert any("gp-bo beats random on every problem: **met**" in line for line in lines)


def _long_run(budget: int, batch: int, seed: int = 0, error: str = "") -> dict[str, object]:
    n = budget
    return {
        "problem": "p",
        "arm": "a",
        "batch": batch,
        "seed": seed,
        "budget": budget,
        "values": [float(i) for i in range(n)],
        "true_values": [float(i) for i in range(n)],
        "origins": ["bo"] * n,
        "call_seconds": [0.1] * -(-n // batch),
        "fallbacks": 0,
        "wall_seconds": 1.0,
        "error": error,
    }


def test_prefix_runs_read_shorter_budgets_from_longer_runs() -> None:
    from benchmarks.suite import prefix_runs

    runs = [
        _long_run(100, 4, seed=0),
        _long_run(100, 4, seed=1),
        _long_run(60, 4, seed=1),
        _long_run(100, 4, 2, "x"),
    ]
    derived = prefix_runs(runs, [60])
    # seed 1 has its own 60-trial run and seed 2 failed: only seed 0 is derived
    assert [(r["seed"], r["budget"], r["prefix_of"]) for r in derived] == [(0, 60, 100)]
    (d,) = derived
    assert d["values"] == [float(i) for i in range(60)]
    assert len(d["call_seconds"]) == 15 and len(d["origins"]) == 60
    assert prefix_runs(runs, [100, 120]) == []
