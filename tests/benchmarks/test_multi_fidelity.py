"""The multi-fidelity benchmark (issue 13): its problems, its budget meter, a tiny driver run."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks import _suite_drive as drive
from benchmarks import _suite_workers as workers
from benchmarks import mf_problems as mf
from benchmarks import mf_screen as screen
from benchmarks import multi_fidelity as bench
from benchmarks import problems
from suggestion_service._generated import api_pb2 as pb

TUNE_BASE = mf.TUNE_BASES[0]


def _assignments(prob: mf.MultiFidelity, n: int, seed: int = 0) -> list[dict[str, str]]:
    rng = np.random.default_rng(seed)
    return [problems.random_assignment(prob.base, rng) for _ in range(n)]


def test_bases_are_sibling_pairs_of_the_suite_split() -> None:
    for tune, check in mf.BASE_PAIRS:
        assert tune in problems.TUNE and check in problems.CHECK
        assert (problems.PROBLEMS[tune], problems.PROBLEMS[check]) in problems.PAIRS


@pytest.mark.parametrize("base", [*mf.TUNE_BASES, *mf.CHECK_BASES])
def test_low_budget_ranking_is_correlated_with_the_full_budget_but_not_the_same(
    base: str,
) -> None:
    prob = mf.make(base)
    rungs = [1, 3, 9, 27]
    corr = [mf.rank_correlation(prob, b, n=150, seed=1) for b in rungs]
    assert 0.3 < corr[0] < 0.97, corr
    assert corr == sorted(corr), corr  # the rankings meet as the budget grows
    assert corr[-1] > 0.97, corr  # only the little noise left at the full budget


def test_some_good_configuration_starts_slow_and_finishes_well() -> None:
    prob = mf.make(TUNE_BASE)
    configs = _assignments(prob, 400)
    f = np.array([prob.full_value(a) for a in configs])
    low = np.array([prob.observe(a, mf.B_MIN) for a in configs])
    best_full = int(np.argmin(f))
    # the best configuration at the full budget is not the best after one epoch
    assert int(np.argmin(low)) != best_full
    assert (low < low[best_full]).sum() >= 1


def test_values_are_deterministic_and_reach_f_at_the_full_budget() -> None:
    prob, full = mf.make(TUNE_BASE), mf.make(TUNE_BASE, full=True)
    a = _assignments(prob, 1)[0]
    at = {**a, mf.BUDGET: str(mf.B_MAX)}
    assert prob.value(at) == prob.value(dict(at)) == full.value(a)
    assert abs(prob.value(at) - prob.full_value(a)) < 5 * mf.SIGMA_FULL
    early = {**a, mf.BUDGET: str(mf.B_MIN)}
    assert prob.curve(early, mf.B_MIN) > prob.full_value(a) + mf.FLOOR - 1e-12
    assert mf.BUDGET not in {s.name for s in full.specs()}
    budget = next(s for s in prob.specs() if s.name == mf.BUDGET)
    assert (budget.type, budget.min, budget.max) == ("int", "1", "27")
    # found by the suite's loop (by name) during a run only
    with mf.registered(prob, full):
        assert problems.get(prob.name) is prob and problems.get(full.name) is full
    assert prob.name not in problems.PROBLEMS and full.name not in problems.PROBLEMS


class _Fixed:
    """A stub that hands out the given assignments, one call at a time."""

    def __init__(self, rows: list[dict[str, str]]) -> None:
        self.rows = list(rows)

    def GetSuggestions(  # noqa: N802
        self, request: pb.GetSuggestionsRequest, timeout: float | None = None
    ) -> pb.GetSuggestionsReply:
        reply = pb.GetSuggestionsReply()
        for row in self.rows[: request.current_request_number]:
            item = reply.parameter_assignments.add()
            for k, v in row.items():
                item.assignments.add(name=k, value=v)
        del self.rows[: request.current_request_number]
        return reply


def test_the_meter_charges_each_trial_its_epochs_and_stops_at_the_budget() -> None:
    prob = mf.make(TUNE_BASE)
    base = _assignments(prob, 4)
    rows = [{**a, mf.BUDGET: e} for a, e in zip(base, ("1", "3", "27", "9"), strict=True)]
    meter = bench.Meter(_Fixed(rows), prob, budget=30)
    request = pb.GetSuggestionsRequest(current_request_number=1)
    for _ in range(3):
        meter.GetSuggestions(request)
    assert meter.spent == 31 and [a[mf.BUDGET] for a in meter.assignments] == ["1", "3", "27"]
    with pytest.raises(bench.BudgetSpent) as err:
        meter.GetSuggestions(request)
    assert err.value.details() == bench.BUDGET_SPENT
    # the full-budget view: every trial costs B_MAX
    full = mf.make(TUNE_BASE, full=True)
    meter = bench.Meter(_Fixed(base), full, budget=2 * mf.B_MAX)
    meter.GetSuggestions(request)
    meter.GetSuggestions(request)
    assert meter.spent == 2 * mf.B_MAX
    with pytest.raises(bench.BudgetSpent):
        meter.GetSuggestions(request)


def _record(trials: list[list[float]], end: str = "budget") -> dict[str, Any]:
    return {"trials": trials, "end": end, "budget": 2.0, "error": ""}


def test_curve_is_the_best_full_budget_value_against_the_budget_spent() -> None:
    b = mf.B_MAX
    run = _record([[1, 0.1, 0.5], [b, 0.7, 0.6], [3, 0.05, 0.4], [b, 0.4, 0.3]])
    at = np.array([1, 28, 30, 31, 58]) / b
    got = bench.curve(run, at)
    # a low-budget value never counts; the full-budget ones after they have been paid for
    assert got.tolist() == [np.inf, 0.7, 0.7, 0.7, 0.4]
    assert bench.curve(run, at, true=True)[-1] == 0.3
    assert bench.spent(run) == pytest.approx(58 / b)
    # a run that ended before its budget (hyperband) has no value past what it spent
    short = _record([[b, 0.2, 0.2]], end="hyperband finished")
    assert np.isnan(bench.curve(short, np.array([2.0]))[0])


def test_hyperband_asks_for_its_bracket_and_hands_out_one_trial_per_call() -> None:
    assert bench.hyperband_parallel(27, 3) == 27 and bench.hyperband_parallel(81, 3) == 81

    class Service:
        def __init__(self) -> None:
            self.asked: list[int] = []

        def GetSuggestions(  # noqa: N802
            self, request: pb.GetSuggestionsRequest, timeout: float | None = None
        ) -> pb.GetSuggestionsReply:
            self.asked.append(request.current_request_number)
            reply = pb.GetSuggestionsReply()
            for i in range(3):  # fewer than asked, as hyperband's promotion steps
                reply.parameter_assignments.add().assignments.add(name="x", value=str(i))
            reply.algorithm.algorithm_settings.add(name="n", value="12")
            return reply

    service = Service()
    adapter = bench.HyperbandRequests(service)
    request = pb.GetSuggestionsRequest(current_request_number=1)
    request.experiment.spec.algorithm.algorithm_settings.add(name="r_l", value="27")
    first = adapter.GetSuggestions(request)
    assert service.asked == [27] and len(first.parameter_assignments) == 1
    assert [s.name for s in first.algorithm.algorithm_settings] == ["n"]
    second = adapter.GetSuggestions(request)
    assert not second.HasField("algorithm") and len(second.parameter_assignments) == 1
    adapter.GetSuggestions(request)
    request.experiment.spec.algorithm.algorithm_settings.add(name="n", value="12")
    adapter.GetSuggestions(request)
    assert service.asked == [27, 12]


def test_a_tiny_driver_run_goes_through_the_suites_loop() -> None:
    servers = workers.Servers()
    try:
        full = bench.run_one(bench.Run(TUNE_BASE, bench.FULL, 0, 2.0), servers)
        asha = bench.run_one(bench.Run(TUNE_BASE, "random-asha", 0, 2 / mf.B_MAX), servers)
    finally:
        servers.close()
    assert (full["end"], full["error"]) == ("budget", "")
    assert [t[0] for t in full["trials"]] == [mf.B_MAX, mf.B_MAX]
    assert (asha["end"], asha["error"]) == ("budget", "")
    assert [t[0] for t in asha["trials"]] == [mf.B_MIN, mf.B_MIN]  # new configurations: rung 0
    # the suite's tables hold the run's problem only while it runs
    assert not any(name.startswith(mf.PREFIX) for name in problems.PROBLEMS)
    cells, facts = bench.summarise([full, asha])
    assert {c.arm for c in cells} == {bench.FULL, "random-asha"}
    assert facts[TUNE_BASE]["target"] == min(t[1] for t in full["trials"])


@pytest.mark.skipif(
    bench.hyperband_available() is not None,
    reason="Katib's hyperband is not installed (bash benchmarks/install_peers.sh hyperband)",
)
def test_katib_hyperband_runs_its_first_bracket_and_stalls_under_katibs_controller() -> None:
    run = bench.run_one(bench.Run(TUNE_BASE, "katib-hyperband", 0, 1.0), workers.Servers())
    assert (run["end"], run["error"]) == ("budget", "")
    # its first bracket: 27 random configurations at 1 epoch, exactly the budget of 27 epochs
    assert [t[0] for t in run["trials"]] == [1] * 27
    again = bench.run_one(bench.Run(TUNE_BASE, "katib-hyperband", 0, 1.0), workers.Servers())
    assert again["trials"] == run["trials"]  # seeded: the same run
    assert "unexpected trials: 9 assignments, 27 requested" in bench.katib_controller_check(
        TUNE_BASE
    )
    assert "katib-hyperband" not in drive.ARM_KINDS


def test_a_variant_is_an_arm_of_ours_with_extra_settings() -> None:
    name = bench.add_variant("gp-bo-asha:asha_model=rung,eta=3")
    try:
        arm = bench.ARMS[name]
        assert name == "gp-bo-asha+asha_model=rung,eta=3"
        assert arm.suite_arm == bench.ARMS["gp-bo-asha"].suite_arm  # the same experiment name
        assert arm.settings[-2:] == (("asha_model", "rung"), ("eta", "3"))
    finally:
        bench.ARMS.pop(name, None)
    for bad in ("katib-hyperband:eta=3", "gp-bo-asha", "nope:eta=3", "gp-bo-asha:eta"):
        with pytest.raises(ValueError, match="--variant"):
            bench.add_variant(bad)


def test_screen_reads_the_best_full_budget_value_at_each_budget() -> None:
    b = mf.B_MAX
    full = {
        **_record([[b, 0.8, 0.8], [b, 0.5, 0.5]]),
        "problem": "p",
        "arm": bench.FULL,
    }
    asha = {**_record([[1, 0.1, 0.9], [b, 0.6, 0.6], [b, 0.4, 0.4]]), "problem": "p", "arm": "x"}
    assert screen.best_at(asha, 1.0) == math.inf  # a low-budget value never counts
    assert screen.best_at(asha, 1.1) == 0.6 and screen.best_at(asha, 3.0) == 0.4
    text = screen.table([full, asha], [2.0])
    row = next(line for line in text.splitlines() if line.startswith("x "))
    assert row.split()[1:] == ["0.6000", "1.200"]  # 0.6 against full's final 0.5


def test_screen_compares_two_arms_per_problem_and_seed() -> None:
    b = mf.B_MAX

    def run(arm: str, seed: int, value: float) -> dict[str, Any]:
        return {**_record([[b, value, value]]), "problem": "p", "arm": arm, "seed": seed}

    runs = [run("a", 0, 0.5), run("b", 0, 0.25), run("a", 1, 0.4), run("b", 1, 0.8)]
    runs.append(run("b", 2, 0.1))  # no pair: seed 2 has no run of "a"
    text = screen.pairs(runs, "a", "b", [2.0])
    assert "(2 pairs)" in text
    assert "lower 1/2, higher 1, geo. ratio 1.000" in text  # 0.5 * 2.0 = 1
    assert "no (problem, seed) pair" in screen.pairs(runs, "a", "c", [2.0])


def test_report_only_reports_the_committed_record_without_a_checkpoint(tmp_path: Path) -> None:
    argv = ["--set", "tune", "--problems", "diff-ix", "--arms", "random-asha", "--seeds", "1"]
    argv += ["--budget", "2", "--no-plot", "--out", str(tmp_path)]
    # nothing stored: refused, nothing written
    assert bench.main([*argv, "--report-only"]) == 2
    assert sorted(tmp_path.iterdir()) == []
    assert bench.main(argv) == 0
    made = json.loads((tmp_path / "runs.json").read_text())
    table = (tmp_path / "table.md").read_text()
    # a clean clone: the committed runs.json and table, no checkpoint
    (tmp_path / "checkpoint.jsonl").unlink()
    assert bench.main([*argv, "--report-only"]) == 0
    again = json.loads((tmp_path / "runs.json").read_text())
    assert again["runs"] == made["runs"] and len(made["runs"]) == 1
    assert again["meta"]["finished_utc"] == made["meta"]["finished_utc"]
    assert again["meta"]["reported_from"] == "runs.json"
    assert (tmp_path / "table.md").read_text().replace(" --report-only", "") == table


def test_report_only_names_a_corrupt_record(tmp_path: Path) -> None:
    (tmp_path / "runs.json").write_text('{"runs": [')
    argv = ["--set", "tune", "--problems", "diff-ix", "--arms", "random-asha", "--seeds", "1"]
    with pytest.raises(SystemExit, match=r"runs\.json is not a JSON record of runs"):
        bench.main([*argv, "--no-plot", "--report-only", "--out", str(tmp_path)])
    assert (tmp_path / "runs.json").read_text() == '{"runs": ['  # left as it was
