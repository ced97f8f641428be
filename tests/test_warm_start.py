"""The warm_start setting: validated against the space, used by the surrogate from call one."""

from __future__ import annotations

import json

import pytest

from suggestion_service.core.errors import InvalidSettingError
from suggestion_service.core.history import Goal

from .helpers import call, space_from

SPACE = space_from(
    [
        ("x", "double", "-2", "3", "", (), "uniform"),
        ("k", "categorical", "", "", "", ("a", "b"), "uniform"),
    ]
)
FIELD = "spec.algorithm.algorithmSettings[warm_start]"


def payload(points: list[tuple[float, str, float]]) -> str:
    return json.dumps(
        {"trials": [{"assignments": {"x": str(x), "k": k}, "value": v} for x, k, v in points]}
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope", "not valid JSON"),
        ("[]", "must be a JSON object"),
        ('{"trials": [{"value": 1}]}', "trials[0] needs an 'assignments' object"),
        ('{"trials": [{"assignments": {"x": 1}, "value": 1}]}', "string values"),
        (
            '{"trials": [{"assignments": {"x": "1", "k": "a"}, "value": "1"}]}',
            "trials[0].value must be a number",
        ),
        ('{"trials": [{"assignments": {"x": "1", "k": "a"}, "value": NaN}]}', "must be finite"),
        (payload([(0.0, "a", 1.0), (9.0, "a", 1.0)]), "trials[1].assignments.x: 9.0 is outside"),
        (payload([(0.0, "c", 1.0)]), "trials[0].assignments.k: 'c' is not one of"),
        ('{"trials": [{"assignments": {"x": "1"}, "value": 1}]}', "missing values for parameters"),
    ],
)
@pytest.mark.parametrize("algorithm", ["gp-bo", "dcsa-bo"])
def test_bad_payloads_are_refused_by_name(algorithm: str, text: str, message: str) -> None:
    with pytest.raises(InvalidSettingError) as err:
        call(algorithm, SPACE, [], 1, settings={"warm_start": text})
    assert err.value.field == FIELD
    assert message in err.value.message


def test_random_search_does_not_take_warm_start() -> None:
    with pytest.raises(InvalidSettingError, match="unknown setting"):
        call("random", SPACE, [], 1, settings={"warm_start": payload([(0.0, "a", 1.0)])})


@pytest.mark.parametrize("algorithm", ["gp-bo", "dc-bo", "sa-bo", "dcsa-bo"])
@pytest.mark.parametrize("goal", [Goal.MINIMIZE, Goal.MAXIMIZE])
def test_first_suggestion_is_informed(algorithm: str, goal: Goal) -> None:
    sign = 1.0 if goal is Goal.MINIMIZE else -1.0
    points = [
        (-2 + 5 * i / 11, k, sign * ((-2 + 5 * i / 11 - 1.2) ** 2 + (k == "b")))
        for i in range(12)
        for k in ("a", "b")
    ]
    resp = call(algorithm, SPACE, [], 1, settings={"warm_start": payload(points)}, goal=goal)
    (s,) = resp.suggestions
    assert s.origin == "bo"  # no initial design: 24 warm observations >= n_initial_points
    assert resp.history.n_warm == 24 and resp.history.n_obs == 24
    assert abs(float(s.assignments["x"]) - 1.2) < 0.3
    assert s.assignments["k"] == "a"


def test_few_warm_trials_shorten_the_initial_design() -> None:
    points = [(0.5, "a", 1.0), (1.0, "b", 2.0), (2.0, "a", 0.5)]
    resp = call("gp-bo", SPACE, [], 10, settings={"warm_start": payload(points)})
    origins = [s.origin for s in resp.suggestions]
    # the derived design for 2 parameters is 5 points; 3 warm observations count towards it
    assert origins == ["initial"] * 2 + ["bo"] * 8
