"""ASHA's rung bookkeeping (core/asha.py): ladder, checks, rung state, promotions, model data."""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from suggestion_service.core.asha import (
    MAX_RUNGS,
    Ladder,
    asha_settings,
    at_lowest_rung,
    budget_training_set,
    build_rung_state,
    check_asha,
    default_min_points,
    ladder_view,
    make_ladder,
    next_promotions,
    rung_state,
    rung_training_set,
)
from suggestion_service.core.errors import InvalidSettingError
from suggestion_service.core.history import (
    Goal,
    History,
    Objective,
    TrialRecord,
    TrialState,
    build_history,
)
from suggestion_service.core.settings import SettingsTable
from suggestion_service.core.space import SearchSpace

from .helpers import space_from

RESOURCE_FIELD = "spec.algorithm.algorithmSettings[resource_name]"
ETA_FIELD = "spec.algorithm.algorithmSettings[eta]"


def _space(*rows: tuple[str, str, str, str, str, Sequence[str]]) -> SearchSpace:
    """Rows of (name, type, min, max, step, list), uniform."""
    return space_from([(*row, "uniform") for row in rows])


def _budget_space(type_name: str, low: str, high: str, step: str = "") -> SearchSpace:
    return _space(
        ("x", "double", "0", "1", "", ()),
        ("epochs", type_name, low, high, step, ()),
        ("opt", "categorical", "", "", "", ("sgd", "adam")),
    )


# the experiment of most tests: epochs in [1, 27] with eta 3 gives rungs 1, 3, 9, 27
SPACE = _budget_space("int", "1", "27")
LADDER = make_ladder(SPACE, "epochs", 3)


def _trial(
    name: str,
    x: float,
    epochs: int | float,
    state: TrialState = TrialState.SUCCEEDED,
    loss: float | None = None,
    opt: str = "sgd",
) -> TrialRecord:
    metrics = {} if loss is None else {"loss": repr(loss)}
    assignments = {"x": repr(x), "epochs": repr(epochs), "opt": opt}
    return TrialRecord(name=name, assignments=assignments, state=state, metrics=metrics)


def _history(
    trials: Sequence[TrialRecord],
    *,
    goal: Goal = Goal.MINIMIZE,
    ledger: Sequence[Mapping[str, str]] = (),
    warm: Sequence[tuple[Mapping[str, str], float]] = (),
) -> History:
    return build_history(
        SPACE, Objective(goal=goal, metric="loss"), trials, extra_pending=ledger, warm=warm
    )


def _rung0(n: int, *, prefix: str = "t") -> list[TrialRecord]:
    """``n`` configurations completed on rung 0; configuration i has x = i / 100, loss = i."""
    return [_trial(f"{prefix}{i:04d}", i / 100, 1, loss=float(i)) for i in range(n)]


def _xs(promotions: Sequence[object]) -> list[tuple[float, int]]:
    """(x, rung) of each promotion, for readable expectations."""
    return [(float(p.row[0]), p.rung) for p in promotions]  # type: ignore[attr-defined]


# ---- settings and validation ---------------------------------------------------------------
def test_settings_parse_with_defaults_and_bounds() -> None:
    table = SettingsTable(asha_settings())
    assert table.parse({}, algorithm="gp-bo") == {
        "resource_name": None,
        "eta": 3,
        "promotion": "delayed",
    }
    raw = {"resource_name": "epochs", "eta": "4", "promotion": "asha"}
    parsed = table.parse(raw, algorithm="gp-bo")
    assert parsed == {"resource_name": "epochs", "eta": 4, "promotion": "asha"}
    with pytest.raises(InvalidSettingError) as info:
        table.parse({"promotion": "eager"}, algorithm="gp-bo")
    assert info.value.field == "spec.algorithm.algorithmSettings[promotion]"
    assert "'delayed'" in str(info.value) and "'asha'" in str(info.value)
    for eta in ("1", "17", "2.5"):
        with pytest.raises(InvalidSettingError) as info:
            table.parse({"eta": eta}, algorithm="gp-bo")
        assert info.value.field == ETA_FIELD
    with pytest.raises(InvalidSettingError) as info:
        table.parse({"resource_name": ""}, algorithm="gp-bo")
    assert info.value.field == RESOURCE_FIELD


def test_check_asha_is_off_without_resource_name_and_builds_the_ladder_with_it() -> None:
    assert check_asha(SPACE, {"resource_name": None, "eta": 3}) is None
    ladder = check_asha(SPACE, {"resource_name": "epochs", "eta": 3})
    assert ladder is not None
    assert ladder.budgets == (1.0, 3.0, 9.0, 27.0)
    assert ladder.column == 1


@pytest.mark.parametrize(
    ("space", "name", "needle"),
    [
        (SPACE, "epoch", "'epoch' is not a parameter of the search space; allowed: ['x', 'epoch"),
        (
            SPACE,
            "opt",
            "'opt' is categorical; the budget must be an int or double parameter; "
            "allowed: ['x', 'epochs']",
        ),
        (
            _space(("steps", "discrete", "", "", "", ("1", "3", "9"))),
            "steps",
            "'steps' is discrete",
        ),
        (_budget_space("int", "0", "27"), "epochs", "has min 0; a budget needs min > 0"),
        (_budget_space("double", "-1", "27"), "epochs", "has min -1; a budget needs min > 0"),
        (_budget_space("int", "1", "1000000"), "epochs", "at most 12 are allowed"),
        (_budget_space("double", "0.000001", "1e300"), "epochs", "at most 12 are allowed"),
    ],
)
def test_invalid_budget_parameter_names_resource_name(
    space: SearchSpace, name: str, needle: str
) -> None:
    with pytest.raises(InvalidSettingError) as info:
        check_asha(space, {"resource_name": name, "eta": 3})
    assert info.value.field == RESOURCE_FIELD
    assert needle in info.value.message


@pytest.mark.parametrize("eta", [0, 1, 17, 3.0, True])
def test_eta_out_of_bounds_names_eta(eta: object) -> None:
    with pytest.raises(InvalidSettingError) as info:
        check_asha(SPACE, {"resource_name": "epochs", "eta": eta})
    assert info.value.field == ETA_FIELD


def test_at_most_max_rungs() -> None:
    # [1, 2048] with eta 2: 1, 2, ..., 1024 and the top 2048, 12 rungs; one more value is one
    # rung too many
    assert make_ladder(_budget_space("int", "1", "2048"), "epochs", 2).n_rungs == MAX_RUNGS
    with pytest.raises(InvalidSettingError, match="at most 12"):
        make_ladder(_budget_space("int", "1", "2049"), "epochs", 2)


# ---- the ladder ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("low", "high", "step", "eta", "labels"),
    [
        ("1", "27", "", 3, ["1", "3", "9", "27"]),
        ("1", "27", "", 2, ["1", "2", "4", "8", "16", "27"]),
        ("1", "27", "", 4, ["1", "4", "16", "27"]),
        ("1", "100", "", 4, ["1", "4", "16", "64", "100"]),
        ("2", "7", "", 3, ["2", "6", "7"]),
        ("1", "2", "", 16, ["1", "2"]),
        # steps: every budget is min + k * step; the top is the largest such value
        ("5", "100", "5", 3, ["5", "15", "45", "100"]),
        ("3", "10", "3", 2, ["3", "6", "9"]),
        ("1", "30", "2", 3, ["1", "3", "9", "27", "29"]),
    ],
)
def test_int_ladder(low: str, high: str, step: str, eta: int, labels: list[str]) -> None:
    space = _budget_space("int", low, high, step)
    ladder = make_ladder(space, "epochs", eta)
    assert ladder.labels == tuple(labels)
    assert ladder.budgets == tuple(float(label) for label in labels)
    _assert_valid_budgets(ladder)


@pytest.mark.parametrize(
    ("low", "high", "step", "eta", "labels"),
    [
        # computed in decimal: 0.3, not 0.30000000000000004
        ("0.1", "2.7", "", 3, ["0.1", "0.3", "0.9", "2.7"]),
        ("0.5", "10", "", 2, ["0.5", "1", "2", "4", "8", "10"]),
        ("0.25", "8", "", 4, ["0.25", "1", "4", "8"]),
        # 0.2 and 0.8 round back onto the previous grid value and are dropped
        ("0.1", "10", "0.5", 2, ["0.1", "0.6", "1.6", "3.1", "6.6", "9.6"]),
    ],
)
def test_double_ladder(low: str, high: str, step: str, eta: int, labels: list[str]) -> None:
    ladder = make_ladder(_budget_space("double", low, high, step), "epochs", eta)
    assert ladder.labels == tuple(labels)
    _assert_valid_budgets(ladder)


def _assert_valid_budgets(ladder: Ladder) -> None:
    p = ladder.parameter
    assert all(a < b for a, b in zip(ladder.budgets, ladder.budgets[1:], strict=False))
    assert ladder.budgets[0] == p.low
    for budget, label in zip(ladder.budgets, ladder.labels, strict=True):
        # a budget is exactly what parsing a trial's assignment of it gives
        assert p.parse(label, where="t") == budget
        if p.step is not None:
            k = (budget - p.low) / p.step
            assert k == pytest.approx(round(k), abs=1e-9)


# ---- rung state ------------------------------------------------------------------------------
def test_off_ladder_budgets_sit_on_the_highest_rung_below() -> None:
    trials = [
        _trial("a", 0.1, 1, loss=1.0),
        _trial("b", 0.2, 2, loss=1.0),  # rung 0 (budget 1)
        _trial("c", 0.3, 3, loss=1.0),  # rung 1 exactly
        _trial("d", 0.4, 26, loss=1.0),  # rung 2 (budget 9)
        _trial("e", 0.5, 27, loss=1.0),  # the top
        _trial("f", 0.6, 5, TrialState.RUNNING),  # rung 1
        _trial("g", 0.7, 10, TrialState.FAILED),  # rung 2
    ]
    state = rung_state(LADDER, _history(trials))
    by_rung = [
        (
            sorted(float(k[0]) for k in r.completed),
            sorted(float(k[0]) for k in r.pending),
            sorted(float(k[0]) for k in r.failed),
        )
        for r in state.rungs
    ]
    assert by_rung == [
        ([0.1, 0.2], [], []),
        ([0.3], [0.6], []),
        ([0.4], [], [0.7]),
        ([0.5], [], []),
    ]
    assert state.n_below == 0


def test_budgets_below_the_lowest_rung_are_on_no_rung() -> None:
    ladder = make_ladder(_budget_space("double", "0.5", "4.5"), "epochs", 3)  # 0.5, 1.5, 4.5
    state = build_rung_state(
        ladder,
        x_completed=np.array(
            [[0.1, 0.25, 0.0], [0.2, 0.5, 0.0], [0.3, 1.49, 1.0], [0.4, 1.4999999999999, 1.0]]
        ),
        y_completed=np.array([1.0, 2.0, 3.0, 4.0]),
        x_pending=np.array([[0.4, 0.1, 0.0]]),
    )
    assert state.n_below == 2
    # 1.49 is below rung 1 (1.5); 1.4999999999999 is rung 1 up to float noise
    assert [sorted(r.completed) for r in state.rungs] == [
        [("0.2", "sgd"), ("0.3", "adam")],
        [("0.4", "adam")],
        [],
    ]
    assert [len(r.pending) for r in state.rungs] == [0, 0, 0]


def test_a_configuration_is_its_row_without_the_budget() -> None:
    row = np.array([0.25, 9.0, 1.0])
    assert LADDER.config_key(row) == ("0.25", "adam")
    assert LADDER.config_key(LADDER.with_budget(row, 0)) == LADDER.config_key(row)


def test_repeated_configuration_ranks_by_its_best_value() -> None:
    trials = [
        _trial("a", 0.1, 1, loss=5.0),
        _trial("b", 0.1, 1, loss=2.0),
        _trial("c", 0.1, 2, loss=3.0),  # off-ladder, same rung
        *[_trial(f"z{i}", 0.5 + i / 100, 1, loss=4.0) for i in range(2)],
    ]
    state = rung_state(LADDER, _history(trials))
    entry = state.rungs[0].completed[("0.1", "sgd")]
    assert entry.value == 2.0
    assert state.x_completed[entry.index][1] == 1.0
    assert len(state.rungs[0].completed) == 3


# ---- promotions ------------------------------------------------------------------------------
@pytest.mark.parametrize(("n", "promoted"), [(2, 0), (3, 1), (8, 2), (9, 3), (10, 3)])
def test_top_one_over_eta_of_rung_zero_is_promoted_best_first(n: int, promoted: int) -> None:
    trials = _rung0(n)
    random.Random(n).shuffle(trials)
    promotions = next_promotions(rung_state(LADDER, _history(trials)))
    assert _xs(promotions) == [(i / 100, 1) for i in range(promoted)]
    for p in promotions:
        assert p.row[1] == 3.0  # rung 1's budget, the rest of the row unchanged
        assert LADDER.config_key(p.row) == p.config
        assert p.value == p.row[0] * 100


def test_higher_rungs_are_promoted_first() -> None:
    trials = [
        *_rung0(9),
        # rung 1 holds the three best of rung 0; the best of them, x=0.01, goes on to rung 2
        _trial("u0", 0.0, 3, loss=7.0),
        _trial("u1", 0.01, 3, loss=5.0),
        _trial("u2", 0.02, 3, loss=6.0),
        # three more on rung 1 from elsewhere (a warm start, say), two of them better
        _trial("w0", 0.9, 3, loss=1.0),
        _trial("w1", 0.8, 3, loss=2.0),
        _trial("w2", 0.7, 3, loss=9.0),
    ]
    promotions = next_promotions(rung_state(LADDER, _history(trials)))
    # rung 1 has 6 completions: its best 2 move up; rung 0's best 3 are all on rung 1 already
    assert _xs(promotions) == [(0.9, 2), (0.8, 2)]
    assert [p.row[1] for p in promotions] == [9.0, 9.0]


def test_delayed_promotion_keeps_a_rung_to_one_promotion_per_eta_completions() -> None:
    # rung 0's first nine gave their best three to rung 1 (running); three better ones arrive
    early = [_trial(f"u{i}", i / 100, 3, TrialState.RUNNING) for i in range(3)]
    better = [_trial(f"n{i}", 0.5 + i / 100, 1, loss=float(i - 3)) for i in range(3)]
    trials = [*_rung0(9), *early, *better]
    asha = dataclasses.replace(LADDER, delayed=False)
    # 12 completions, top 4: the three newcomers and x=0.0 (already up)
    assert _xs(next_promotions(rung_state(asha, _history(trials)))) == [
        (0.5, 1),
        (0.51, 1),
        (0.52, 1),
    ]
    # delayed: floor(12 / 3) = 4 promotions in all, 3 made: only the best newcomer goes up
    assert LADDER.delayed
    assert _xs(next_promotions(rung_state(LADDER, _history(trials)))) == [(0.5, 1)]


@pytest.mark.parametrize("delayed", [True, False])
def test_promotion_rules_over_an_improving_run(delayed: bool) -> None:
    """An ASHA loop whose new configurations keep improving (as a model's proposals do):
    delayed promotion never exceeds floor(n_k / eta) promotions from a rung; asha does."""
    ladder = dataclasses.replace(LADDER, delayed=delayed)
    rng = random.Random(0)
    trials: list[TrialRecord] = []
    worst_excess = 0
    for step in range(150):
        promotions = next_promotions(rung_state(ladder, _history(trials)), limit=1)
        if promotions:
            p = promotions[0]
            loss = p.value - rng.random()  # a longer run, a lower loss
            trials.append(_trial(f"s{step:03d}", float(p.row[0]), int(p.row[1]), loss=loss))
        else:  # a new configuration, better on average than the ones before
            trials.append(_trial(f"s{step:03d}", step / 1000, 1, loss=rng.random() - step / 50))
        state = rung_state(ladder, _history(trials))
        for k in range(ladder.n_rungs - 1):
            completed = state.rungs[k].completed
            up = sum(1 for key in completed if state.highest[key] > k)
            worst_excess = max(worst_excess, up - len(completed) // ladder.eta)
    starts = len(rung_state(ladder, _history(trials)).rungs[0].completed)
    if delayed:
        assert worst_excess == 0
        assert starts > 100  # most of the steps start new configurations
    else:
        assert worst_excess > 5
        assert starts < 100


def test_nothing_is_promoted_from_the_top() -> None:
    trials = [_trial(f"t{i}", i / 10, 27, loss=float(i)) for i in range(9)]
    assert next_promotions(rung_state(LADDER, _history(trials))) == []


def test_ties_are_broken_by_configuration_key() -> None:
    configs = [(0.5, "sgd", 1.0), (0.5, "adam", 1.0), (0.2, "sgd", 1.0)]
    configs += [(0.9, "sgd", 2.0), (0.9, "adam", 3.0), (0.8, "sgd", 4.0)]
    trials = [_trial(f"t{i}", x, 1, loss=v, opt=o) for i, (x, o, v) in enumerate(configs)]
    for order in range(3):  # whatever the order of the request
        random.Random(order).shuffle(trials)
        promotions = next_promotions(rung_state(LADDER, _history(trials)))
        # 6 completions, top 2: the two smallest keys among the three tied at 1.0
        assert [p.config for p in promotions] == [("0.2", "sgd"), ("0.5", "adam")]


@pytest.mark.parametrize(
    "state", [TrialState.RUNNING, TrialState.SUCCEEDED, TrialState.FAILED, TrialState.KILLED]
)
@pytest.mark.parametrize("epochs", [3, 9, 27, 5])
def test_a_configuration_on_a_higher_rung_is_never_promoted_again(
    state: TrialState, epochs: int
) -> None:
    loss = 0.5 if state is TrialState.SUCCEEDED else None
    trials = [*_rung0(9), _trial("p", 0.0, epochs, state, loss=loss)]
    promotions = next_promotions(rung_state(LADDER, _history(trials)))
    # x=0.0 took its slot in rung 0's top 3; the 4th best does not replace it
    assert (0.0, 1) not in _xs(promotions)
    assert [x for x, rung in _xs(promotions) if rung == 1] == [0.01, 0.02]


def test_a_promotion_suggested_but_not_yet_a_trial_is_not_repeated() -> None:
    trials = _rung0(9)
    first = next_promotions(rung_state(LADDER, _history(trials)))
    ledger = [SPACE.to_strings(first[0].row)]  # what the service echoes back in its settings
    again = next_promotions(rung_state(LADDER, _history(trials, ledger=ledger)))
    assert [p.config for p in again] == [p.config for p in first[1:]]


def test_failed_trials_do_not_count_as_completions() -> None:
    failed = [_trial(f"f{i}", 0.5 + i / 100, 1, TrialState.FAILED) for i in range(3)]
    no_metric = _trial("m", 0.6, 1, TrialState.SUCCEEDED)  # succeeded without a value
    trials = [*_rung0(8), *failed, no_metric]
    state = rung_state(LADDER, _history(trials))
    assert len(state.rungs[0].completed) == 8
    assert len(state.rungs[0].failed) == 4
    assert _xs(next_promotions(state)) == [(0.0, 1), (0.01, 1)]  # floor(8 / 3), not floor(12 / 3)


def test_non_finite_values_given_explicitly_count_as_failed() -> None:
    x = np.array([[i / 10, 1.0, 0.0] for i in range(4)])
    state = build_rung_state(LADDER, x_completed=x, y_completed=np.array([1.0, np.nan, 2, 3]))
    assert len(state.rungs[0].completed) == 3
    assert state.rungs[0].failed == frozenset({("0.1", "sgd")})
    assert _xs(next_promotions(state)) == [(0.0, 1)]
    assert len(budget_training_set(state).y) == 3


def test_maximize_promotes_the_highest_metric() -> None:
    trials = _rung0(3)
    promotions = next_promotions(rung_state(LADDER, _history(trials, goal=Goal.MAXIMIZE)))
    assert _xs(promotions) == [(0.02, 1)]


def test_taken_configurations_and_limit() -> None:
    state = rung_state(LADDER, _history(_rung0(9)))
    taken = {("0.01", "sgd")}
    assert _xs(next_promotions(state, taken=taken)) == [(0.0, 1), (0.02, 1)]
    assert _xs(next_promotions(state, limit=1)) == [(0.0, 1)]
    assert next_promotions(state, limit=0) == []


def test_same_request_same_answer_in_any_order_after_a_restart() -> None:
    trials = [
        *_rung0(40),  # its top 13: x = 0.00 ... 0.12; only 0.10 is on no higher rung
        *[_trial(f"u{i}", i / 100, 3, loss=float(10 - i)) for i in range(10)],
        _trial("r", 0.11, 3, TrialState.RUNNING),
        _trial("v", 0.12, 9, TrialState.FAILED),
    ]
    answers = []
    for seed in range(3):
        shuffled = list(trials)
        random.Random(seed).shuffle(shuffled)
        promotions = next_promotions(rung_state(LADDER, _history(shuffled)))
        answers.append([(p.config, p.rung, p.value, p.row.tolist()) for p in promotions])
    assert answers[0] == answers[1] == answers[2]
    # rung 1: 10 completed, the best 3 (x = 0.09, 0.08, 0.07) move up; then rung 0's x = 0.10
    assert [(c[0], rung) for c, rung, _, _ in answers[0]] == [
        ("0.09", 2),
        ("0.08", 2),
        ("0.07", 2),
        ("0.1", 1),
    ]


def test_warm_starts_sit_on_the_rung_of_their_budget() -> None:
    warm = [({"x": repr(i / 10), "epochs": "4", "opt": "adam"}, float(i)) for i in range(3)]
    state = rung_state(LADDER, _history([], warm=warm))
    assert len(state.rungs[1].completed) == 3
    assert _xs(next_promotions(state)) == [(0.0, 2)]
    assert next_promotions(state)[0].row[1] == 9.0


# ---- model data, new configurations, the view --------------------------------------------------
def test_rung_training_set_is_the_highest_rung_with_enough_points() -> None:
    trials = [
        *_rung0(12),
        *[_trial(f"u{i}", i / 100, 3, loss=float(i)) for i in range(6)],
        *[_trial(f"v{i}", i / 100, 9, loss=float(i)) for i in range(2)],
    ]
    state = rung_state(LADDER, _history(trials))
    assert default_min_points(LADDER) == 6  # 2 configuration parameters + 2 is below 6
    data = rung_training_set(state)
    assert (data.rung, data.enough, len(data.y)) == (1, True, 6)
    assert (data.x[:, 1] == 3.0).all()
    assert data.y.tolist() == [float(i) for i in range(6)]  # ordered by key: x = 0.00 ... 0.05
    data = rung_training_set(state, min_points=2)
    assert (data.rung, data.enough, len(data.y)) == (2, True, 2)
    data = rung_training_set(state, min_points=13)
    assert (data.rung, data.enough, len(data.y)) == (0, False, 12)
    everything = budget_training_set(state)
    assert (everything.rung, everything.enough, len(everything.y)) == (None, True, 20)
    assert sorted(set(everything.x[:, 1].tolist())) == [1.0, 3.0, 9.0]


def test_training_sets_of_an_empty_history() -> None:
    state = rung_state(LADDER, _history([]))
    data = rung_training_set(state)
    assert (data.rung, data.enough, data.x.shape, data.y.shape) == (3, False, (0, 3), (0,))
    assert budget_training_set(state).x.shape == (0, 3)
    assert next_promotions(state) == []


def test_new_configurations_start_on_the_lowest_rung() -> None:
    row = np.array([0.3, 17.0, 1.0])
    assert at_lowest_rung(LADDER, row).tolist() == [0.3, 1.0, 1.0]
    assert row[1] == 17.0  # not modified in place
    rows = np.array([[0.3, 17.0, 1.0], [0.4, 27.0, 0.0]])
    assert at_lowest_rung(LADDER, rows)[:, 1].tolist() == [1.0, 1.0]


def test_ladder_view_counts() -> None:
    trials = [
        *_rung0(9),
        _trial("u0", 0.0, 3, loss=1.0),
        _trial("u1", 0.01, 3, TrialState.RUNNING),
        _trial("u2", 0.5, 3, TrialState.FAILED),
    ]
    view = ladder_view(rung_state(LADDER, _history(trials)))
    rows = [(v.label, v.completed, v.pending, v.failed, v.promoted, v.promotable) for v in view]
    assert rows == [
        ("1", 9, 0, 0, 2, 1),  # x=0.02 is still to promote
        ("3", 1, 1, 1, 0, 0),
        ("9", 0, 0, 0, 0, 0),
        ("27", 0, 0, 0, 0, 0),
    ]
    assert [v.budget for v in view] == [1.0, 3.0, 9.0, 27.0]


# ---- size ------------------------------------------------------------------------------------
def test_ten_thousand_trials_are_fast() -> None:
    rng = np.random.default_rng(0)
    ladder = make_ladder(_budget_space("int", "1", "81"), "epochs", 3)  # 1, 3, 9, 27, 81
    sizes = [6000, 2500, 1000, 400, 100]
    rows, values = [], []
    for k, size in enumerate(sizes):
        x = rng.random(size)
        rows.append(np.column_stack([x, np.full(size, ladder.budgets[k]), x > 0.5]))
        values.append(rng.random(size))
    x_all, y_all = np.vstack(rows), np.concatenate(values)
    assert len(y_all) == 10_000
    start = time.perf_counter()
    state = build_rung_state(  # the first 1,000 of rung 0 are running
        ladder, x_completed=x_all[1000:], y_completed=y_all[1000:], x_pending=x_all[:1000]
    )
    promotions = next_promotions(state)
    view = ladder_view(state)
    data = rung_training_set(state)
    elapsed = time.perf_counter() - start
    print(f"10,000 trials: {elapsed:.3f} s")  # ~0.2 s on a shared 2-core machine
    assert elapsed < 5.0
    assert sum(v.completed + v.pending for v in view) == 10_000
    assert len(promotions) == sum(v.promotable for v in view) > 0
    assert (data.rung, len(data.y)) == (4, 100)
