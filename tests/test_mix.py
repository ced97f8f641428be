"""dcsa-bo's adaptive mix: credit from the sequence in trial names, shares, and the wire."""

from __future__ import annotations

import numpy as np
import pytest

from suggestion_service.core import provenance
from suggestion_service.core.engine import format_mix, parse_mix
from suggestion_service.core.history import Goal, Objective, build_history
from suggestion_service.core.strategies.mix import credits, policy_shares, won_shares

from .helpers import call, random_trials, space_from, trial

SPACE = space_from([("x", "double", "0", "1", "", (), "uniform")])
LOSS = Objective(goal=Goal.MINIMIZE, metric="loss")


def _name(tag: str, seq: int) -> str:
    return f"exp-{tag}-{provenance.encode_sequence(seq)}abc"


def _history(rows: list[tuple[str, int, float]]):  # type: ignore[no-untyped-def]
    trials = [
        trial(_name(tag, seq), {"x": str(0.001 * i)}, loss=y)
        for i, (tag, seq, y) in enumerate(rows)
    ]
    return build_history(SPACE, LOSS, trials)


@pytest.mark.parametrize("seq", [0, 1, 35, 36, 12345, 36**5 - 1])
def test_sequence_numbers_round_trip_through_names(seq: int) -> None:
    name = _name("s2", seq)
    assert provenance.sequence("exp", name) == seq
    assert provenance.parse("exp", name) == provenance.Provenance("sa", 2)
    assert provenance.sequence("other", name) is None
    assert provenance.sequence("exp", "exp-abcdefgh") is None  # Katib's own naming


def test_credit_is_the_improvement_over_the_incumbent_of_its_time() -> None:
    h = _history(
        [
            ("i", 0, 5.0),
            ("i", 1, 4.0),
            ("b", 2, 3.0),  # improves 4 -> 3: credit 1
            ("s0", 3, 3.5),  # no improvement: 0
            ("d", 4, 1.0),  # 3 -> 1: credit 2
            ("b", 5, 2.0),  # incumbent is 1 now: 0
        ]
    )
    assert credits(h, "exp") == {"bo": [1.0, 0.0], "sa": [0.0], "dc": [2.0]}


def test_the_order_of_trials_in_the_request_does_not_matter() -> None:
    rows = [("i", 0, 5.0), ("b", 1, 3.0), ("s1", 2, 2.0), ("d", 3, 2.5), ("b", 4, 1.0)]
    a = policy_shares(_history(rows), "exp", ("bo", "sa", "dc"), floor=0.1, window=10)
    b = policy_shares(_history(rows[::-1]), "exp", ("bo", "sa", "dc"), floor=0.1, window=10)
    assert a == b


def test_shares_follow_success_and_keep_the_floor() -> None:
    rows = [("i", 0, 10.0), ("b", 1, 9.0)]
    rows += [("s0", 2 + i, 7.0 - 2 * i) for i in range(5)]  # SA improves by 2 every time
    rows += [("d", 10 + i, 20.0) for i in range(5)]  # DC never does
    shares = policy_shares(_history(rows), "exp", ("bo", "sa", "dc"), floor=0.1, window=10)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["sa"] > shares["bo"] > shares["dc"] >= 0.1


def test_an_untried_policy_gets_the_pooled_mean_and_no_success_is_uniform() -> None:
    rows = [("i", 0, 10.0), ("b", 1, 9.0), ("b", 2, 8.0)]
    shares = policy_shares(_history(rows), "exp", ("bo", "sa", "dc"), floor=0.1, window=10)
    assert shares["sa"] == shares["dc"] == pytest.approx(shares["bo"])
    flat = [("i", 0, 1.0), ("b", 1, 2.0), ("s0", 2, 3.0), ("d", 3, 4.0)]
    shares = policy_shares(_history(flat), "exp", ("bo", "sa", "dc"), floor=0.1, window=10)
    assert np.allclose(list(shares.values()), 1 / 3)


def test_the_window_forgets_old_success() -> None:
    rows = [("i", 0, 100.0), ("b", 1, 1.0)]  # one early, huge BO improvement
    rows += [("b", 2 + i, 50.0) for i in range(3)]
    rows += [("s0", 10 + i, 0.9 - 0.1 * i) for i in range(3)]
    wide = policy_shares(_history(rows), "exp", ("bo", "sa"), floor=0.0, window=10)
    narrow = policy_shares(_history(rows), "exp", ("bo", "sa"), floor=0.0, window=3)
    assert wide["bo"] > wide["sa"]
    assert narrow["bo"] < narrow["sa"] and narrow["bo"] < wide["bo"]


def test_mix_text_round_trips_and_is_ignored_as_a_setting() -> None:
    shares = {"bo": 0.5, "sa": 0.3, "dc": 0.2}
    assert parse_mix(format_mix(shares)) == shares
    assert parse_mix("garbage") == {} and parse_mix(None) == {}
    space3 = space_from(
        [(f"{g}__x", "double", "0", "1", "", (), "uniform") for g in ("a", "b", "c")]
    )
    trials = random_trials(space3, 12, seed=1, f=lambda v: sum(float(x) for x in v.values()))
    resp = call("dcsa-bo", space3, trials, 2, settings={"dcsa_mix": "bo=1.000", "mix": "adaptive"})
    assert set(resp.shares) == {"bo", "sa", "dc"}
    assert sum(resp.shares.values()) == pytest.approx(1.0)
    assert {s.origin for s in resp.suggestions} <= {"bo", "sa", "dc"}


def test_joint_mix_reports_which_policy_won_the_last_slots() -> None:
    rows = [("i", 0, 5.0), ("b", 1, 3.0), ("s1", 2, 2.0), ("d", 3, 2.5), ("b", 4, 1.0)]
    h = _history(rows[::-1])  # the request's order does not matter: sequence numbers do
    assert won_shares(h, "exp", ("bo", "sa", "dc"), window=10) == {
        "bo": 0.5,
        "sa": 0.25,
        "dc": 0.25,
    }
    assert won_shares(h, "exp", ("bo", "sa", "dc"), window=2) == {"bo": 0.5, "sa": 0.0, "dc": 0.5}
    assert won_shares(_history(rows[:1]), "exp", ("bo", "sa", "dc"), window=10) is None


def test_joint_mix_shares_reach_the_response() -> None:
    space3 = space_from(
        [(f"{g}__x", "double", "0", "1", "", (), "uniform") for g in ("a", "b", "c")]
    )
    trials = [
        trial(f"exp-{tag}-{provenance.encode_sequence(i)}abc", values, loss=float(i))
        for i, (tag, values) in enumerate(
            zip(
                ["i"] * 8 + ["b", "d", "s0", "b"],
                [t.assignments for t in random_trials(space3, 12, seed=3)],
                strict=True,
            )
        )
    ]
    resp = call("dcsa-bo", space3, trials, 2)  # joint is the default
    # the joint mix has no SA slot: an older trial named as SA's is not counted
    assert resp.shares == pytest.approx({"bo": 2 / 3, "dc": 1 / 3})
    assert {s.origin for s in resp.suggestions} <= {"bo", "dc"}
