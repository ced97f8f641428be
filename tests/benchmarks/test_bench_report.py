"""The suite's summaries: ranks, efficiency against a baseline, criteria lines."""

from __future__ import annotations

import json
from pathlib import Path
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


def test_the_1_1x_line_says_whether_a_gap_is_larger_than_seed_noise() -> None:
    # eq3-styb: dcsa-bo worse than gp-bo on all 6 seeds; uneq3-mich: worse in median only
    runs = [_run("gp-bo", s, [3.0, 1.0 + 0.01 * s]) for s in range(6)]
    runs += [_run("dcsa-bo", s, [3.0, 2.0 + 0.01 * s]) for s in range(6)]
    mixed_gp = [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
    mixed_dcsa = [0.2, 1.1, 1.9, 1.8, 2.5, 2.6]
    runs += [_run("gp-bo", s, [3.0, v], "uneq3-mich") for s, v in enumerate(mixed_gp)]
    runs += [_run("dcsa-bo", s, [3.0, v], "uneq3-mich") for s, v in enumerate(mixed_dcsa)]
    summaries = report.summarise(runs)
    by = {(s.problem, s.arm): s for s in summaries}
    assert by[("eq3-styb", "dcsa-bo")].finals == {s: 2.0 + 0.01 * s for s in range(6)}
    lower, n, p = report.paired(by[("eq3-styb", "dcsa-bo")], by[("eq3-styb", "gp-bo")])
    assert (lower, n) == (0, 6) and p == 2 / 2**6  # exact: the two most extreme of 64 signs
    lower, n, p = report.paired(by[("uneq3-mich", "dcsa-bo")], by[("uneq3-mich", "gp-bo")])
    assert (lower, n) == (2, 6) and p is not None and p > 0.5
    (line,) = [x for x in report.criteria(summaries, "check") if "1.1x the best" in x]
    assert "eq3-styb (1.98x gp-bo; lower on 0/6 seeds, Wilcoxon p = 0.031)" in line
    assert "uneq3-mich (1.23x gp-bo; lower on 2/6 seeds, Wilcoxon p = " in line
    # fewer than 5 paired seeds: no test, said so
    few = report.summarise([r for r in runs if r["seed"] < 3])
    (line,) = [x for x in report.criteria(few, "check") if "1.1x the best" in x]
    assert "lower on 0/3 seeds, too few seeds for a test" in line


def test_report_only_reports_a_published_record_and_never_empties_it(tmp_path: Path) -> None:
    from benchmarks import suite

    argv = [
        "--preset", "quick", "--problems", "eq3-styb", "--arms", "gp-bo", "random",
        "--seeds", "2", "--budget", "4", "--batch", "1", "--no-plot", "--report-only",
        "--out", str(tmp_path),
    ]  # fmt: skip
    # nothing stored: refused, and nothing written
    assert suite.main(argv) == 2
    assert not (tmp_path / "runs.json").exists() and not (tmp_path / "table.md").exists()
    # a clean clone has the committed runs.json but no checkpoint: the report is made from it
    runs = [_run("gp-bo", s, [3.0, 2.0, 1.0, 0.5]) for s in range(2)]
    runs += [_run("random", s, [3.0, 2.5, 2.5, 2.0]) for s in range(2)]
    runs.append(_run("tpe", 0, [1.0, 1.0, 1.0, 1.0]))  # not planned: left out of the report
    meta = {"wall_seconds": 600.0, "finished_utc": "2026-11-30 22:22 UTC", "reused_runs": 0}
    (tmp_path / "runs.json").write_text(json.dumps({"meta": meta, "runs": runs}))
    assert suite.main(argv) == 0
    record = json.loads((tmp_path / "runs.json").read_text())
    key = [(r["arm"], r["seed"]) for r in record["runs"]]
    assert sorted(key) == sorted((r["arm"], r["seed"]) for r in runs[:4])
    assert [r["values"] for r in record["runs"] if r["arm"] == "gp-bo"] == [runs[0]["values"]] * 2
    assert record["meta"]["finished_utc"] == "2026-11-30 22:22 UTC"  # when they were made
    assert record["meta"]["reported_from"] == str((tmp_path / "runs.json").resolve())
    table = (tmp_path / "table.md").read_text()
    assert "suite wall time 10.0 min" in table and "Finished 2026-11-30 22:22 UTC" in table
    assert "| eq3-styb | check | 1 | 4 | gp-bo | 2 | 0.5 [0.5, 0.5] |" in table
