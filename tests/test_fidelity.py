"""ASHA around every algorithm: promotions first, new configurations at the lowest rung."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest

from suggestion_service.core import provenance
from suggestion_service.core.errors import InvalidSettingError
from suggestion_service.core.history import TrialState

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


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"resource_name": "nope"}, "nope"),
        ({"resource_name": "a__k"}, "int or double"),
        ({"resource_name": "epochs", "eta": "1"}, "must be in [2, 16]"),
    ],
)
def test_bad_asha_settings_name_the_field(settings: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidSettingError) as err:
        call("gp-bo", SPACE, [], 1, settings=settings)
    assert err.value.field.startswith("spec.algorithm.algorithmSettings[")
    assert message in err.value.message
