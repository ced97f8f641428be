"""One contract suite, run over every strategy the service registers."""

from __future__ import annotations

import re

import pytest

from suggestion_service.core import provenance
from suggestion_service.core.errors import InvalidArgumentError, SearchSpaceExhaustedError
from suggestion_service.core.history import Goal, TrialState
from suggestion_service.core.registry import algorithm_names
from suggestion_service.core.settings import LEDGER_SETTING

from .helpers import MIXED, call, random_trials, space_from, trial

ALGORITHMS = algorithm_names()
SPACE = space_from(MIXED)
SPEC = {row[0]: row for row in MIXED}
INT_RE = re.compile(r"^-?\d+$")
DEC_RE = re.compile(r"^-?\d+(\.\d+)?$")


def test_every_issue_algorithm_is_registered() -> None:
    assert {"random", "gp-bo"} <= set(ALGORITHMS)


def check_assignment(values: dict[str, str]) -> None:
    assert list(values) == [row[0] for row in MIXED]
    for name, text in values.items():
        _, ptype, lo, hi, step, choices, _ = SPEC[name]
        if ptype in ("discrete", "categorical"):
            assert text in choices, (name, text)
            continue
        if ptype == "int":
            assert INT_RE.match(text), (name, text)
        else:
            assert DEC_RE.match(text), (name, text)  # decimal, never an exponent
        x = float(text)
        assert float(lo) <= x <= float(hi), (name, text)
        if step:
            k = (x - float(lo)) / float(step)
            assert abs(k - round(k)) < 1e-6, (name, text, "off step")


def keys(resp_or_trials) -> list[tuple[str, ...]]:  # type: ignore[no-untyped-def]
    items = getattr(resp_or_trials, "suggestions", resp_or_trials)
    return [tuple(s.assignments[n] for n in SPACE.names) for s in items]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("n", [1, 4])
def test_count_bounds_steps_types(algorithm: str, n: int) -> None:
    history = random_trials(SPACE, 14, seed=1, f=lambda v: float(v["momentum"]) ** 2)
    resp = call(algorithm, SPACE, history, n)
    assert len(resp.suggestions) == n
    for s in resp.suggestions:
        check_assignment(s.assignments)
        found = provenance.parse("exp", s.trial_name)
        assert found is not None and found.origin == s.origin
        assert len(s.trial_name) <= len("exp-") + 14 + 8
        assert s.labels["dcsa.io/origin"] in ("initial", "random", "bo", "dc", "sa", "fallback")
    ks = keys(resp)
    assert len(set(ks)) == n
    assert not set(ks) & set(keys(history))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_empty_history(algorithm: str) -> None:
    resp = call(algorithm, SPACE, [], 5)
    assert len(resp.suggestions) == 5
    assert len(set(keys(resp))) == 5
    for s in resp.suggestions:
        check_assignment(s.assignments)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize(
    "state", [TrialState.FAILED, TrialState.KILLED, TrialState.METRICS_UNAVAILABLE]
)
def test_all_failed_history_never_repeats_a_failed_point(algorithm: str, state: TrialState) -> None:
    history = random_trials(SPACE, 12, seed=2, state=state)
    resp = call(algorithm, SPACE, history, 3)
    assert len(resp.suggestions) == 3
    assert not set(keys(resp)) & set(keys(history))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_pending_only_history(algorithm: str) -> None:
    history = random_trials(SPACE, 5, seed=3, state=TrialState.RUNNING)
    resp = call(algorithm, SPACE, history, 3)
    assert len(resp.suggestions) == 3
    assert not set(keys(resp)) & set(keys(history))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_same_request_same_answer(algorithm: str) -> None:
    history = random_trials(SPACE, 14, seed=4, f=lambda v: float(v["scale"]))
    a = call(algorithm, SPACE, history, 3, settings={"random_state": "7"})
    b = call(algorithm, SPACE, history, 3, settings={"random_state": "7"})
    assert keys(a) == keys(b)
    assert [s.trial_name for s in a.suggestions] == [s.trial_name for s in b.suggestions]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_seed_changes_the_answer(algorithm: str) -> None:
    a = call(algorithm, SPACE, [], 3, settings={"random_state": "1"})
    b = call(algorithm, SPACE, [], 3, settings={"random_state": "2"})
    assert keys(a) != keys(b)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_called_twice_with_the_same_history_gives_new_points(algorithm: str) -> None:
    """Katib may call again before the first batch became trials: never the same point."""
    history = random_trials(SPACE, 14, seed=5, f=lambda v: float(v["momentum"]))
    first = call(algorithm, SPACE, history, 2, total=16)
    # Katib stores reply.algorithm and sends it back merged into the settings
    second = call(algorithm, SPACE, history, 2, total=18, settings={LEDGER_SETTING: first.ledger})
    assert not set(keys(first)) & set(keys(second))
    names = {s.trial_name for s in first.suggestions} | {s.trial_name for s in second.suggestions}
    assert len(names) == 4


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_ledger_entries_drop_once_they_are_trials(algorithm: str) -> None:
    first = call(algorithm, SPACE, [], 2)
    history = [trial(s.trial_name, s.assignments, TrialState.RUNNING) for s in first.suggestions]
    second = call(algorithm, SPACE, history, 1, settings={LEDGER_SETTING: first.ledger})
    assert first.suggestions[0].trial_name not in second.ledger
    assert second.suggestions[0].trial_name in second.ledger


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_deadline_already_passed_still_answers(algorithm: str) -> None:
    history = random_trials(SPACE, 14, seed=6, f=lambda v: float(v["momentum"]))
    resp = call(algorithm, SPACE, history, 3, time_limit=0.0)
    assert len(resp.suggestions) == 3
    assert len(set(keys(resp))) == 3
    for s in resp.suggestions:
        check_assignment(s.assignments)
    if algorithm != "random":
        assert resp.fallbacks == ["deadline"] * 3
        assert {s.origin for s in resp.suggestions} == {"fallback"}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_finite_space_is_exhausted_exactly(algorithm: str) -> None:
    small = space_from(
        [
            ("a", "int", "0", "4", "", (), "uniform"),
            ("b", "categorical", "", "", "", ("x", "y"), "uniform"),
        ]
    )
    history = random_trials(small, 0)
    seen: set[tuple[str, ...]] = set()
    trials = []
    for i in range(10):
        resp = call(algorithm, small, trials, 1)
        (s,) = resp.suggestions
        key = (s.assignments["a"], s.assignments["b"])
        assert key not in seen
        seen.add(key)
        trials.append(trial(f"t{i}", s.assignments, loss=float(i % 3)))
    assert len(seen) == 10 and history == []
    with pytest.raises(SearchSpaceExhaustedError, match="10 distinct points"):
        call(algorithm, small, trials, 1)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("bad", ["", "nan", "abc", "inf"])
def test_bad_metric_values_are_tolerated_and_reported(algorithm: str, bad: str) -> None:
    history = random_trials(SPACE, 14, seed=8, f=lambda v: float(v["momentum"]))
    broken = trial("broken", history[0].assignments, loss=None)
    if bad:
        broken = trial("broken", history[0].assignments, loss=bad)
    history[0] = broken
    resp = call(algorithm, SPACE, history, 2)
    assert len(resp.suggestions) == 2
    assert not set(keys(resp)) & set(keys(history))
    reasons = [i.reason for i in resp.history.issues]
    assert reasons == [
        {
            "": "missing_metric",
            "nan": "non_finite_metric",
            "abc": "non_numeric_metric",
            "inf": "non_finite_metric",
        }[bad]
    ]
    assert resp.history.n_obs == 13


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_off_space_trial_is_tolerated(algorithm: str) -> None:
    history = random_trials(SPACE, 3, seed=9)
    odd = dict(history[0].assignments)
    odd["optimizer"] = "adagrad"
    history.append(trial("odd", odd, loss=1.0))
    resp = call(algorithm, SPACE, history, 1)
    assert len(resp.suggestions) == 1
    assert [i.reason for i in resp.history.issues] == ["off_space"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"no_such_setting": "1"}, "no_such_setting"),
        ({"random_state": "abc"}, "random_state"),
        ({"random_state": "-1"}, "random_state"),
        ({"time_budget_seconds": "0"}, "time_budget_seconds"),
    ],
)
def test_bad_settings_are_rejected_by_name(
    algorithm: str, settings: dict[str, str], field: str
) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        call(algorithm, SPACE, [], 1, settings=settings)
    assert err.value.field == f"spec.algorithm.algorithmSettings[{field}]"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_maximize_is_honoured_in_the_history(algorithm: str) -> None:
    history = random_trials(SPACE, 12, seed=10, f=lambda v: float(v["scale"]))
    resp = call(algorithm, SPACE, history, 1, goal=Goal.MAXIMIZE)
    values = [float(t.metrics["loss"]) for t in history]
    assert resp.history.y_obs.min() == -max(values)
