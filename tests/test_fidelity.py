"""ASHA around every algorithm: promotions first, new configurations at the lowest rung."""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import pytest
from scipy import stats

from suggestion_service.core import provenance
from suggestion_service.core.asha import RungState, build_rung_state, make_ladder
from suggestion_service.core.errors import InvalidSettingError
from suggestion_service.core.history import TrialState
from suggestion_service.core.registry import get_strategy
from suggestion_service.core.strategies.fidelity import (
    FullBudgetModel,
    curve_weight,
    training_set,
)

from .helpers import call, run_loop, space_from, trial

SPACE = space_from(
    [
        ("a__x", "double", "0", "1", "", (), "uniform"),
        ("a__k", "categorical", "", "", "", ("p", "q", "r"), "uniform"),
        ("b__y", "double", "0", "1", "", (), "uniform"),
        ("epochs", "int", "1", "27", "", (), "uniform"),
    ]
)
ASHA = {"resource_name": "epochs", "eta": "3"}


def _f(v: dict[str, str]) -> float:
    """Lower with more epochs; the ranking at low budgets is close to the final one."""
    x, y, e = float(v["a__x"]), float(v["b__y"]), int(v["epochs"])
    base = (x - 0.3) ** 2 + (y - 0.7) ** 2 + (0.1 if v["a__k"] == "q" else 0.0)
    return base + 0.5 / math.sqrt(e) * (1.0 + x)


def _config(v: dict[str, str]) -> tuple[str, ...]:
    return tuple(v[k] for k in ("a__x", "a__k", "b__y"))


@pytest.mark.parametrize("algorithm", ["random", "gp-bo", "dcsa-bo", "dc-bo", "sa-bo"])
def test_every_algorithm_runs_asha(algorithm: str) -> None:
    trials = run_loop(algorithm, SPACE, _f, budget=40, batch=2, seed=1, settings=ASHA)
    budgets: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for t in trials:
        budgets[_config(dict(t.assignments))].append(int(t.assignments["epochs"]))
    assert {int(t.assignments["epochs"]) for t in trials} <= {1, 3, 9, 27}
    promoted = 0
    for seen in budgets.values():
        # a configuration climbs the ladder one rung at a time and never repeats a rung
        assert seen == [1, 3, 9, 27][: len(seen)], seen
        promoted += len(seen) - 1
    assert promoted >= 5
    origins = {provenance.parse("exp", t.name).origin for t in trials}  # type: ignore[union-attr]
    assert "promotion" in origins
    # the same run again gives the same trials (stateless, seeded)
    again = run_loop(algorithm, SPACE, _f, budget=40, batch=2, seed=1, settings=ASHA)
    assert [t.assignments for t in again] == [t.assignments for t in trials]


def test_a_promotion_is_never_repeated_while_it_runs_or_after_it_failed() -> None:
    rung0 = [
        trial(
            f"t{i}", {"a__x": str(i / 10), "a__k": "p", "b__y": "0.7", "epochs": "1"}, loss=float(i)
        )
        for i in range(6)
    ]
    first = call("random", SPACE, rung0, 1, settings=ASHA)
    assert first.suggestions[0].origin == "promotion"
    best = first.suggestions[0].assignments
    assert best["a__x"] == "0" and best["epochs"] == "3"  # top 1/3 of 6 = 2: the best first
    for state in (TrialState.RUNNING, TrialState.FAILED):
        again = call("random", SPACE, [*rung0, trial("p0", best, state)], 2, settings=ASHA)
        got = [s.assignments for s in again.suggestions]
        assert best not in got
        assert got[0]["a__x"] == "0.1" and got[0]["epochs"] == "3"  # the second best
        assert got[1]["epochs"] == "1"  # top 2 of 6 both on rung 1: a new configuration


def test_the_promotion_setting_reaches_the_rungs() -> None:
    def row(x: float, epochs: int) -> dict[str, str]:
        return {"a__x": str(x), "a__k": "p", "b__y": "0.7", "epochs": str(epochs)}

    # nine on rung 0, their best three running on rung 1, then three better ones on rung 0
    trials = [trial(f"t{i}", row(i / 10, 1), loss=float(i)) for i in range(9)]
    trials += [trial(f"u{i}", row(i / 10, 3), state=TrialState.RUNNING) for i in range(3)]
    trials += [trial(f"n{i}", row(0.05 + i / 100, 1), loss=float(i - 3)) for i in range(3)]
    # 12 completions, top 4: ASHA's rule promotes the three newcomers
    asha = call("random", SPACE, trials, 4, settings={**ASHA, "promotion": "asha"})
    assert [s.origin for s in asha.suggestions] == ["promotion"] * 3 + ["random"]
    # delayed (the default): floor(12 / 3) = 4 promotions in all, 3 made, so one
    delayed = call("random", SPACE, trials, 4, settings=ASHA)
    assert [s.origin for s in delayed.suggestions] == ["promotion"] + ["random"] * 3
    assert delayed.suggestions[0].assignments == row(0.05, 3)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"resource_name": "nope"}, "nope"),
        ({"resource_name": "a__k"}, "int or double"),
        ({"resource_name": "epochs", "eta": "1"}, "must be in [2, 16]"),
        ({"resource_name": "epochs", "promotion": "eager"}, "'delayed', 'asha'"),
    ],
)
def test_bad_asha_settings_name_the_field(settings: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidSettingError) as err:
        call("gp-bo", SPACE, [], 1, settings=settings)
    assert err.value.field.startswith("spec.algorithm.algorithmSettings[")
    assert message in err.value.message


# ---- asha_model=budget: one GP over configuration and budget ------------------------------------
CURVE_SPACE = space_from(
    [
        ("x", "double", "0", "1", "", (), "uniform"),
        ("epochs", "int", "1", "27", "", (), "uniform"),
    ]
)
CURVE_LADDER = make_ladder(CURVE_SPACE, "epochs", 3)
#: gp-bo's settings with ASHA on, as the budget model always sees them
GP_SETTINGS = get_strategy("gp-bo").parse_settings({"resource_name": "epochs"})


def _curve(x: float, b: float) -> float:
    """Best at x = 0.7 at the full budget; low budgets favour large x (fast learners)."""
    return (x - 0.7) ** 2 + 0.5 * (1.0 - x) * (27.0 / b - 1.0) / 26.0


def _curve_state(per_rung: Sequence[Sequence[float]]) -> RungState:
    rows = [(x, b) for xs, b in zip(per_rung, (1, 3, 9, 27), strict=False) for x in xs]
    x = np.array(rows, dtype=np.float64)
    return build_rung_state(
        CURVE_LADDER, x_completed=x, y_completed=np.array([_curve(a, b) for a, b in rows])
    )


STATE = _curve_state(
    [
        [i / 19 for i in range(20)],
        [0.05, 0.3, 0.45, 0.6, 0.75, 0.85, 0.95, 1.0],
        [0.1, 0.5, 0.8, 1.0],
        [0.2, 0.9],
    ]
)


def test_curve_weight_falls_from_one_at_the_lowest_rung_to_zero_at_the_full_budget() -> None:
    rows = np.array([[0.5, b] for b in (1, 3, 9, 27)], dtype=np.float64)
    assert np.allclose(curve_weight(CURVE_LADDER, rows), [1.0, 4 / 9, 1 / 9, 0.0])


@pytest.mark.parametrize("kind", ["curve", "budget"])
def test_budget_model_values_each_configuration_once_at_the_full_budget(kind: str) -> None:
    settings = dataclasses.replace(GP_SETTINGS, asha_model=kind)
    model = FullBudgetModel.fit(STATE, settings, seed=0)
    assert model is not None and model.kind == kind
    if kind == "curve":  # f over the configuration, plus g over it scaled by w(b)
        assert GP_SETTINGS.asha_model == "curve"  # the default
        assert model.posterior.model.scaled_by == [None, 2]
    assert model.posterior.model.nu == 2.5  # the kernel ASHA keeps unless told otherwise
    told = dataclasses.replace(settings, kernel="matern32")
    other = FullBudgetModel.fit(STATE, told, seed=0)
    assert other is not None and other.posterior.model.nu == 1.5
    data = model.training_set(STATE)
    xs = data.x[:, 0].tolist()
    assert len(xs) == len(set(xs)) == len(STATE.highest)  # one row per configuration
    assert (data.x[:, 1] == 27.0).all()
    # each configuration is represented by its trial on its highest completed rung
    assert {STATE.x_completed[i, 1] for i, x in zip(data.index, xs, strict=True) if x == 0.9} == {
        27.0
    }
    # the rung-0 ranking prefers fast learners (x near 0.95); the full-budget model finds the
    # slower configurations that finish best, as the full-budget objective (best at 0.7) does
    rung0 = min(STATE.rungs[0].completed.values(), key=lambda e: e.value)
    assert STATE.x_completed[rung0.index, 0] > 0.85
    best = xs[int(np.argmin(data.y))]
    assert abs(best - 0.7) < 0.15, best
    full = [_curve(x, 27) for x in xs]
    assert stats.spearmanr(data.y, full).statistic > 0.8


def test_budget_model_needs_enough_completions_and_falls_back_to_the_rung() -> None:
    few = _curve_state([[0.1, 0.5, 0.9]])
    assert FullBudgetModel.fit(few, GP_SETTINGS, seed=0) is None
    assert training_set(few, None).rung == 0


@pytest.mark.parametrize("algorithm", ["gp-bo", "dcsa-bo"])
def test_rung_model_runs_asha_without_repeating_a_rung(algorithm: str) -> None:
    """asha_model=rung (BOHB's choice; the default is curve, run by the tests above)."""
    settings = {**ASHA, "asha_model": "rung"}
    trials = run_loop(algorithm, SPACE, _f, budget=40, batch=2, seed=1, settings=settings)
    budgets: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for t in trials:
        budgets[_config(dict(t.assignments))].append(int(t.assignments["epochs"]))
    for seen in budgets.values():
        assert seen == [1, 3, 9, 27][: len(seen)], seen
    assert sum(len(seen) - 1 for seen in budgets.values()) >= 5
    again = run_loop(algorithm, SPACE, _f, budget=40, batch=2, seed=1, settings=settings)
    assert [t.assignments for t in again] == [t.assignments for t in trials]
    # the default (curve) model proposes other new configurations from the same start
    default = run_loop(algorithm, SPACE, _f, budget=40, batch=2, seed=1, settings=ASHA)
    assert [t.assignments for t in default] != [t.assignments for t in trials]


def test_bad_asha_model_names_the_field_and_the_choices() -> None:
    with pytest.raises(InvalidSettingError) as err:
        call("gp-bo", SPACE, [], 1, settings={**ASHA, "asha_model": "bohb"})
    assert err.value.field == "spec.algorithm.algorithmSettings[asha_model]"
    assert "bohb" in err.value.message and "budget" in err.value.message


def test_asha_runs_keep_matern_52_unless_the_kernel_is_set() -> None:
    # the multi-fidelity tune set chose Matern 5/2 for ASHA's models; unset must mean that
    runs = {
        kernel: [
            t.assignments
            for t in run_loop("gp-bo", SPACE, _f, budget=30, seed=2, settings={**ASHA, **extra})
        ]
        for kernel, extra in (
            ("unset", {}),
            ("52", {"kernel": "matern52"}),
            ("32", {"kernel": "matern32"}),
        )
    }
    assert runs["unset"] == runs["52"] != runs["32"]
