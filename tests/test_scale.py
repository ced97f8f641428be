"""Bounded work and memory on long histories and huge request counters (issue 12, section 3).

Bounds on traced memory and on the rows the GP sees, never on wall-clock time (the machines
these tests run on are shared). ``benchmarks/scale.py`` measures time and RSS.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pytest

from suggestion_service._generated import api_pb2 as pb
from suggestion_service.core import engine
from suggestion_service.core.gp.model import AdditiveGP, Posterior
from suggestion_service.core.history import build_history
from suggestion_service.core.sampling import SOBOL_PERIOD, quasi_random_fill, sobol_latent
from suggestion_service.core.space import SearchSpace
from suggestion_service.katib import convert

from .helpers import MIXED, objective, pb_experiment, pb_request, random_trials, space_from

_MB = 1024 * 1024
#: MIXED's nine parameters in three subnetworks (a__, b__, c__), for dcsa-bo.
GROUPED = [(f"{g}__{row[0]}", *row[1:]) for g, row in zip("aaabbbccc", MIXED, strict=True)]
#: Every type, distribution and step combination the vectorised conversions special-case.
EVERY_KIND = [
    ("u", "double", "-1", "3", "", (), "uniform"),
    ("lu", "double", "0.0001", "10", "", (), "logUniform"),
    ("n", "double", "0", "10", "", (), "normal"),
    ("ln", "double", "0.001", "1", "", (), "logNormal"),
    ("su", "double", "0", "1", "0.05", (), "uniform"),
    ("sl", "double", "0.01", "1", "0.01", (), "logUniform"),
    ("i", "int", "1", "9", "", (), "uniform"),
    ("il", "int", "1", "1000", "", (), "logUniform"),
    ("is", "int", "0", "100", "5", (), "normal"),
    ("d", "discrete", "", "", "", ("0.5", "2", "8", "32"), "uniform"),
    ("dl", "discrete", "", "", "", ("1", "10", "100"), "logNormal"),
    ("c", "categorical", "", "", "", ("x", "y", "z"), "uniform"),
]


def _traced_peak(fn: Callable[[], Any]) -> tuple[Any, int]:
    """``fn()`` and the peak of Python-traced memory it allocated, in bytes."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return result, peak


# ---- quasi-random sampling -------------------------------------------------------------------
@pytest.mark.parametrize("start", [100_000, 2**31 - 2])
def test_sobol_fill_memory_does_not_grow_with_the_request_counter(start: int) -> None:
    # Katib's total_request_number is an int32: the fill must neither draw nor hold the points
    # before it (a former version generated all of them: 19 MB at 100,000, 320 GiB at 2^31)
    space = space_from(MIXED)
    quasi_random_fill(space, 5, seed=3, start=0, exclude=set())  # scipy loads its tables once
    rows, peak = _traced_peak(
        lambda: quasi_random_fill(space, 5, seed=3, start=start, exclude=set())
    )
    assert rows.shape == (5, len(space))
    assert len({space.key(r) for r in rows}) == 5
    assert peak < 2 * _MB, f"{peak / _MB:.1f} MiB traced"


@pytest.mark.parametrize("start", [0, 1000, 2**16 + 5, 2**17 + 3])
def test_sobol_fill_continues_the_sequence_at_its_position(start: int) -> None:
    # the same points as reading the whole sequence up to there (also past 2^16, where the
    # engine jumps instead of stepping), skipping the excluded one
    space = space_from(MIXED)
    whole = space.from_latent(sobol_latent(len(space), start + 5, seed=11)[start:])
    skipped = space.key(whole[1])
    got = quasi_random_fill(space, 4, seed=11, start=start, exclude={skipped})
    np.testing.assert_array_equal(got, whole[[0, 2, 3, 4]])


def test_sobol_positions_wrap_around_the_period() -> None:
    space = space_from(MIXED)
    late = quasi_random_fill(space, 3, seed=5, start=SOBOL_PERIOD + 7, exclude=set())
    early = quasi_random_fill(space, 3, seed=5, start=7, exclude=set())
    np.testing.assert_array_equal(late, early)


# ---- vectorised space conversions ------------------------------------------------------------
def test_vectorised_conversions_match_each_parameter_bit_for_bit() -> None:
    space = space_from(EVERY_KIND)
    rng = np.random.default_rng(0)
    u = rng.random((400, len(space)))
    u[:20] = 0.0
    u[20:40] = 1.0
    u[40:60] = np.nextafter(1.0, 0.0)
    typed = space.from_latent(u)
    each = np.column_stack([p.from_latent(u[:, j]) for j, p in enumerate(space.parameters)])
    np.testing.assert_array_equal(typed, each)
    feats = np.column_stack([p.features(typed[:, j]) for j, p in enumerate(space.parameters)])
    np.testing.assert_array_equal(space.features(typed), feats)
    keys = [
        tuple(p.format(float(v)) for p, v in zip(space.parameters, r, strict=True)) for r in typed
    ]
    assert space.keys(typed) == keys
    assert [space.key(r) for r in typed] == keys
    assert [space.key(list(r)) for r in typed[:5]] == keys[:5]


def test_parse_of_near_equal_listed_values_picks_the_first_close_one() -> None:
    space = space_from([("d", "discrete", "", "", "", ("1", "1.0000000001", "2"), "uniform")])
    assert space.parse_assignment({"d": "1.0000000001"}, where="t").tolist() == [0.0]
    assert space.parse_assignment({"d": "2"}, where="t").tolist() == [2.0]


# ---- a 10,000-trial request ------------------------------------------------------------------
N_LONG = 10_000


@pytest.fixture(scope="module")
def long_history() -> list[Any]:
    space = space_from(GROUPED)
    rng = np.random.default_rng(1)
    weights = rng.random(len(space))

    def loss(values: Mapping[str, str]) -> float:
        row = space.features(space.parse_assignment(values, where="t"))[0]
        return float(np.sum(weights * (row - 0.3) ** 2))

    return random_trials(space, N_LONG, seed=2, f=loss)


@pytest.fixture
def rows_seen(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[int]]]:
    """Rows every hyperparameter fit and every posterior (conditioning) gets."""
    seen: dict[str, list[int]] = {"fit": [], "condition": []}
    fit, init = AdditiveGP.fit, Posterior.__init__

    def spy_fit(self: AdditiveGP, x: Any, *args: Any, **kwargs: Any) -> Any:
        seen["fit"].append(len(x))
        return fit(self, x, *args, **kwargs)

    def spy_init(self: Posterior, model: Any, x: Any, *args: Any, **kwargs: Any) -> None:
        seen["condition"].append(len(x))
        init(self, model, x, *args, **kwargs)

    monkeypatch.setattr(AdditiveGP, "fit", spy_fit)
    monkeypatch.setattr(Posterior, "__init__", spy_init)
    yield seen


@pytest.mark.parametrize("algorithm", ["gp-bo", "dcsa-bo"])
def test_a_10k_trial_request_is_bounded(
    algorithm: str, long_history: list[Any], rows_seen: dict[str, list[int]]
) -> None:
    req = pb_request(pb_experiment(GROUPED, algorithm=algorithm), long_history, 1)
    data = req.SerializeToString()

    def answer() -> pb.GetSuggestionsReply:
        # what the servicer does with the bytes of the request
        wire = pb.GetSuggestionsRequest.FromString(data)
        response = engine.suggest(convert.to_request(wire), time_limit=60.0)
        return convert.to_reply(response, algorithm)

    reply, peak = _traced_peak(answer)
    assert len(reply.parameter_assignments) == 1
    origin = reply.parameter_assignments[0].labels["dcsa.io/origin"]
    assert origin not in ("fallback", "initial", "random"), origin
    # the trials themselves take about 20 MB as Python objects; an unbounded GP took GBs
    assert peak < 150 * _MB, f"{peak / _MB:.0f} MiB traced"
    # defaults: 128 rows fit the hyperparameters, 512 condition the posterior (+ fantasies of
    # the pending points, none here but the batch's own)
    assert rows_seen["fit"] and max(rows_seen["fit"]) <= 128
    assert rows_seen["condition"] and max(rows_seen["condition"]) <= 512 + 1


def test_history_keys_are_the_keys_of_each_trial(long_history: list[Any]) -> None:
    space = space_from(GROUPED)
    trials = long_history[:2000]
    history = build_history(space, objective(), trials)
    assert history.known == {
        space.key(space.parse_assignment(t.assignments, where="t")) for t in trials
    }
    assert history.n_obs == len(trials)


def test_the_trials_of_one_request_share_their_parameter_names() -> None:
    space = space_from(MIXED)
    req = pb_request(pb_experiment(MIXED), random_trials(space, 3), 1)
    first, *rest = convert.to_request(req).trials
    for trial in rest:
        for a, b in zip(first.assignments, trial.assignments, strict=True):
            assert a is b


def test_space_is_a_value() -> None:
    # the cached conversion tables do not take part in equality or hashing
    a, b = space_from(MIXED), space_from(MIXED)
    assert a == b and hash(a) == hash(b)
    assert SearchSpace(a.parameters) == a
