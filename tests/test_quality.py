"""Seeded quality checks: gp-bo must beat random search by a clear margin (slow)."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from benchmarks.synthetic import PROBLEMS

from .functions import BRANIN_MIN, HARTMANN6_MIN, branin, hartmann6
from .helpers import best, run_loop, space_from

SEEDS = range(5)
BUDGET = 40

BRANIN_SPACE = space_from(
    [
        ("x1", "double", "-5", "10", "", (), "uniform"),
        ("x2", "double", "0", "15", "", (), "uniform"),
    ]
)
H6_SPACE = space_from([(f"x{i}", "double", "0", "1", "", (), "uniform") for i in range(6)])


def _branin(v: dict[str, str]) -> float:
    return branin(float(v["x1"]), float(v["x2"]))


def _h6(v: dict[str, str]) -> float:
    return hartmann6(np.array([float(v[f"x{i}"]) for i in range(6)]))


def _median_regret(algorithm: str, space, f, optimum: float) -> float:  # type: ignore[no-untyped-def]
    return statistics.median(
        best(run_loop(algorithm, space, f, budget=BUDGET, seed=s)) - optimum for s in SEEDS
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "space", "f", "optimum", "margin"),
    [
        ("branin", BRANIN_SPACE, _branin, BRANIN_MIN, 10.0),
        ("hartmann6", H6_SPACE, _h6, HARTMANN6_MIN, 2.0),
    ],
)
def test_gp_bo_beats_random(name: str, space, f, optimum: float, margin: float) -> None:  # type: ignore[no-untyped-def]
    gp = _median_regret("gp-bo", space, f, optimum)
    rnd = _median_regret("random", space, f, optimum)
    print(f"{name}: median regret after {BUDGET} trials: gp-bo {gp:.4g}, random {rnd:.4g}")
    assert gp * margin < rnd, (gp, rnd)


UNEQUAL = PROBLEMS["unequal"]
UNEQUAL_SPACE = space_from(
    [(n, "double", str(lo), str(hi), "", (), "uniform") for n, lo, hi in UNEQUAL.parameters()]
)


def _unequal(v: dict[str, str]) -> float:
    return UNEQUAL.value({k: float(x) for k, x in v.items()})


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="known, issue 11: with the centred prior mean dcsa-bo's joint mix does not beat gp-bo "
    "here (10 seeds x 60 trials on the tune set: 0.026 vs 0.025); strict, so the test reports "
    "when DC/SA win",
)
def test_dcsa_bo_beats_gp_bo_on_unequal_importance() -> None:
    """The synthetic suite's unequal-importance problem (12-D, three subnetworks).

    A strict xfail from issue 10 until the centred prior mean (``centre_prior``); with it, the
    joint mix as it then was (DC's children and SA's moves among the optimizer's candidates)
    passed on these 3 seeds (0.029 against 0.047), but over 10 seeds x 60 trials on the tune set
    it was 1.73x worse than gp-bo here (median 0.043 against 0.025): luck. Since SA's moves left
    the joint mix (docs/benchmarks.md item 15) dcsa-bo is level with gp-bo here (0.026 against
    0.025, lower on 7 of 10 seeds) and lower on 1 of these 3 seeds (0.034 against 0.047 median).
    """
    budget = 40
    seeds = range(3)
    dcsa = [
        best(run_loop("dcsa-bo", UNEQUAL_SPACE, _unequal, budget=budget, seed=s)) for s in seeds
    ]
    gp = [best(run_loop("gp-bo", UNEQUAL_SPACE, _unequal, budget=budget, seed=s)) for s in seeds]
    print(f"unequal after {budget} trials: dcsa-bo {dcsa}, gp-bo {gp}")
    assert statistics.median(dcsa) < 0.85 * statistics.median(gp)
    assert sum(d < g for d, g in zip(dcsa, gp, strict=True)) >= 2


def _problem_space(name: str):  # type: ignore[no-untyped-def]
    from benchmarks import problems

    prob = problems.get(name)
    rows = [
        (s.name, s.type, s.min, s.max, s.step, tuple(s.values), s.distribution)
        for s in prob.specs()
    ]
    return prob, space_from(rows)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["two-h6-levy", "mixed4"])
def test_gp_bo_beats_random_and_tpe_level_on_tune_problems(name: str) -> None:
    """Two problems of the tune set (docs/benchmarks.md): a 10-D two-subnetwork one and a
    mixed-type one (stepped ints, log doubles, lists, categoricals). gp-bo's median final best
    over 5 seeds x 60 trials (the suite's budget) must beat random's by a wide margin.

    At 3 seeds x 40 trials this was marginal: over 10 seeds at 40 trials gp-bo's median on
    mixed4 is about 0.74x random's on the code before issue 11 and about 0.85x after (other
    random streams, the same algorithm), so the check moved to the budget the suite judges at."""
    from benchmarks import problems

    assert name in problems.TUNE
    prob, space = _problem_space(name)
    seeds = range(5)
    gp = [best(run_loop("gp-bo", space, prob.value, budget=60, seed=s)) for s in seeds]
    rnd = [best(run_loop("random", space, prob.value, budget=60, seed=s)) for s in seeds]
    print(f"{name} after 60 trials: gp-bo {gp}, random {rnd}")
    assert statistics.median(gp) < 0.7 * statistics.median(rnd)
