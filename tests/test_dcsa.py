"""Partition parsing, DC candidates, SA probabilities and importance, and the DC/SA strategies."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping

import numpy as np
import pytest

from suggestion_service.core import provenance
from suggestion_service.core.engine_labels import LABEL_DC_ROUND, LABEL_GROUP, LABEL_ORIGIN
from suggestion_service.core.errors import InvalidSettingError
from suggestion_service.core.history import Goal, Objective, TrialState, build_history
from suggestion_service.core.partition import make_partition, parse_subnetworks
from suggestion_service.core.registry import get_strategy
from suggestion_service.core.strategies.dcsa import (
    dc_candidates,
    group_importance,
    group_probabilities,
)
from suggestion_service.core.strategies.model_based import (
    Batch,
    fit_surrogate,
    maximise_acquisition,
)
from suggestion_service.core.strategy import Context

from .helpers import call, random_trials, run_loop, space_from, trial

FIELD = "spec.algorithm.algorithmSettings[subnetworks]"

GROUPED = space_from(
    [
        ("conv__filters", "int", "8", "64", "8", (), "uniform"),
        ("conv__kernel", "discrete", "", "", "", ("3", "5", "7"), "uniform"),
        ("dense__units", "int", "16", "256", "", (), "logUniform"),
        ("dense__act", "categorical", "", "", "", ("relu", "tanh"), "uniform"),
        ("lr", "double", "0.0001", "0.1", "", (), "logUniform"),
    ]
)


# ---- partition ------------------------------------------------------------------------------
def test_naming_convention_and_global_group() -> None:
    part = make_partition(GROUPED, None)
    assert part.names == ("conv", "dense", "global")
    assert [g.params for g in part.groups] == [(0, 1), (2, 3), (4,)]
    # one GP feature column per parameter (a categorical is one column, compared by equality)
    assert part.feature_groups() == [[0, 1], [2, 3], [4]]


def test_explicit_mapping_overrides_the_convention() -> None:
    part = make_partition(GROUPED, {"a": ["conv__filters", "dense__units"], "b": ["lr"]})
    assert part.names == ("a", "global", "b")
    assert [g.params for g in part.groups] == [(0, 2), (1, 3), (4,)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "non-empty JSON object"),
        ("{}", "non-empty JSON object"),
        ('{"a": "lr"}', "must map to a list"),
        ('{"a": [1]}', "must map to a list"),
        ('{"a": []}', "group 'a' is empty"),
        ('{"": ["lr"]}', "must not be empty"),
    ],
)
def test_malformed_mappings(text: str, message: str) -> None:
    with pytest.raises(InvalidSettingError) as err:
        parse_subnetworks(text)
    assert err.value.field == FIELD
    assert message in err.value.message


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"a": ["nope"]}, "group 'a' names unknown parameter 'nope'"),
        ({"a": ["lr"], "b": ["lr"]}, "parameter 'lr' is in two groups: 'a' and 'b'"),
    ],
)
def test_inconsistent_mappings(mapping: dict[str, list[str]], message: str) -> None:
    with pytest.raises(InvalidSettingError) as err:
        make_partition(GROUPED, mapping)
    assert err.value.field == FIELD
    assert message in err.value.message


@pytest.mark.parametrize("algorithm", ["dc-bo", "sa-bo", "dcsa-bo"])
def test_partition_errors_surface_through_validation(algorithm: str) -> None:
    with pytest.raises(InvalidSettingError, match="unknown parameter"):
        call(algorithm, GROUPED, [], 1, settings={"subnetworks": json.dumps({"a": ["x"]})})


@pytest.mark.parametrize(
    ("setting", "value"),
    [("dc_top_m", "1"), ("dc_interval", "0"), ("sa_epsilon", "1.5"), ("sa_full_share", "-0.1")],
)
def test_dc_sa_settings_are_checked(setting: str, value: str) -> None:
    with pytest.raises(InvalidSettingError) as err:
        call("dcsa-bo", GROUPED, [], 1, settings={setting: value})
    assert err.value.field == f"spec.algorithm.algorithmSettings[{setting}]"


def test_gp_bo_does_not_accept_dc_settings() -> None:
    with pytest.raises(InvalidSettingError, match="unknown setting"):
        call("gp-bo", GROUPED, [], 1, settings={"dc_top_m": "3"})


# ---- SA ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("eps", [0.0, 0.2, 1.0])
@pytest.mark.parametrize("importance", [[1.0, 0.0, 0.0], [3.0, 2.0, 1.0], [0.0, 0.0, 0.0]])
def test_sa_probabilities_sum_to_one_and_respect_the_floor(
    eps: float, importance: list[float]
) -> None:
    p = group_probabilities(np.array(importance), eps)
    assert p.sum() == pytest.approx(1.0)
    assert (p >= eps / 3 - 1e-12).all()
    if sum(importance) and eps < 1:
        assert np.argmax(p) == int(np.argmax(importance))
    if eps == 1.0 or not sum(importance):
        assert np.allclose(p, 1 / 3)


def _context(space, trials, settings=None, n=1):  # type: ignore[no-untyped-def]
    strategy = get_strategy("dcsa-bo")
    parsed = strategy.parse_settings(settings or {})
    history = build_history(space, Objective(goal=Goal.MINIMIZE, metric="loss"), trials)
    return strategy, Context(
        space=space,
        objective=Objective(goal=Goal.MINIMIZE, metric="loss"),
        history=history,
        settings=parsed,
        n=n,
        seed=0,
        rng=np.random.default_rng(0),
        sequence_start=len(trials),
        clock=lambda: 0.0,
        deadline=1e9,
    )


SPACE3 = space_from(
    [
        (f"{g}__x{i}", "double", "0", "1", "", (), "uniform")
        for g in ("a", "b", "c")
        for i in range(2)
    ]
)


def _additive(v: dict[str, str]) -> float:
    x = {k: float(s) for k, s in v.items()}
    return (
        10.0 * ((x["a__x0"] - 0.3) ** 2 + (x["a__x1"] - 0.6) ** 2)
        + 1.0 * ((x["b__x0"] - 0.5) ** 2 + x["b__x1"] ** 2)
        + 0.05 * (x["c__x0"] + x["c__x1"])
    )


def test_importance_ranks_groups_on_a_known_additive_function() -> None:
    trials = random_trials(SPACE3, 40, seed=3, f=_additive)
    for surrogate in ("additive", "full"):
        strategy, ctx = _context(SPACE3, trials, {"surrogate": surrogate})
        fit = fit_surrogate(ctx, strategy.feature_groups(SPACE3, ctx.settings))  # type: ignore[attr-defined]
        imp = group_importance(fit, SPACE3, make_partition(SPACE3, None), seed=0)
        assert imp[0] > 5 * imp[1] > 5 * imp[2] > 0, surrogate


def test_the_optimizer_does_not_depend_on_what_strategies_drew_before() -> None:
    # DC's children (and SA's group choice) draw from ctx.rng before the acquisition is
    # maximised; the optimizer has its own stream, so dcsa-bo's search differs from gp-bo's by
    # its candidates
    trials = random_trials(SPACE3, 20, seed=3, f=_additive)
    strategy, ctx = _context(SPACE3, trials)
    fit = fit_surrogate(ctx, strategy.feature_groups(SPACE3, ctx.settings))  # type: ignore[attr-defined]
    first = maximise_acquisition(Batch(ctx), fit)
    ctx.rng.random(1000)
    second = maximise_acquisition(Batch(ctx), fit)
    assert first is not None and second is not None
    assert SPACE3.key(first) == SPACE3.key(second)


# ---- DC ---------------------------------------------------------------------------------------
def test_dc_candidates_are_the_cross_product_minus_known_points() -> None:
    # three top trials with distinct (a, b, c) configurations, plus bad ones
    top = [
        ({"a": 0.1, "b": 0.2, "c": 0.3}, 0.0),
        ({"a": 0.4, "b": 0.5, "c": 0.6}, 0.1),
        ({"a": 0.7, "b": 0.8, "c": 0.9}, 0.2),
    ]
    trials = []
    for i, (cfg, y) in enumerate(top):
        values = {f"{g}__x{j}": str(cfg[g]) for g in "abc" for j in range(2)}
        trials.append(trial(f"top{i}", values, loss=y))
    known_child = {
        f"{g}__x{j}": str(top[0][0]["a"] if g == "a" else top[1][0][g])
        for g in "abc"
        for j in range(2)
    }
    trials.append(trial("child", known_child, loss=5.0))
    trials += random_trials(SPACE3, 10, seed=4, f=lambda v: 10.0 + _additive(v), prefix="r")
    strategy, ctx = _context(SPACE3, trials, {"dc_top_m": "3"})
    fit = fit_surrogate(ctx, strategy.feature_groups(SPACE3, ctx.settings))  # type: ignore[attr-defined]
    batch = Batch(ctx)
    ranked = dc_candidates(batch, fit, make_partition(SPACE3, None), 3, 4096)
    cands = [row for row in ranked if SPACE3.key(row) not in batch.taken]
    got = {tuple(round(float(v), 6) for v in row[[0, 2, 4]]) for row in cands}
    expected = {
        (a, b, c) for a in (0.1, 0.4, 0.7) for b in (0.2, 0.5, 0.8) for c in (0.3, 0.6, 0.9)
    }
    expected -= {(0.1, 0.2, 0.3), (0.4, 0.5, 0.6), (0.7, 0.8, 0.9)}  # the parents
    expected -= {(0.1, 0.5, 0.6)}  # already evaluated
    assert got == expected
    assert len(cands) == 23
    # ranked by the summed component means: the best-ranked child has the lowest model mean
    means = fit.posterior.predict(SPACE3.features(np.vstack(cands)))[0]
    assert means[0] == pytest.approx(means.min())


def test_dc_round_happens_once_per_interval_and_is_labelled() -> None:
    trials = random_trials(SPACE3, 15, seed=5, f=_additive)
    resp = call(
        "dcsa-bo", SPACE3, trials, 3, settings={"dc_batch": "2", "dc_interval": "5", "mix": "fixed"}
    )
    origins = [s.origin for s in resp.suggestions]
    assert origins[:2] == ["dc", "dc"]
    assert resp.suggestions[0].labels[LABEL_DC_ROUND] == "1"  # (15 - 7) // 5
    assert provenance.parse("exp", resp.suggestions[0].trial_name) == provenance.Provenance("dc", 1)
    # the round's trials now exist (pending): the next call makes no DC round
    running = [trial(s.trial_name, s.assignments, TrialState.RUNNING) for s in resp.suggestions]
    settings = {"dc_batch": "2", "dc_interval": "5", "mix": "fixed"}
    again = call("dcsa-bo", SPACE3, trials + running, 2, settings=settings)
    assert "dc" not in [s.origin for s in again.suggestions]
    # one more completed trial opens the next round only at the default interval of 1
    done = [
        *trials,
        trial(running[0].name, running[0].assignments, loss=0.0),  # the first one completed
        *running[1:],
    ]
    assert "dc" not in [
        s.origin for s in call("dcsa-bo", SPACE3, done, 2, settings=settings).suggestions
    ]
    assert "dc" in [
        s.origin
        for s in call(
            "dcsa-bo",
            SPACE3,
            done,
            2,
            settings={"dc_batch": "2", "dc_interval": "1", "mix": "fixed"},
        ).suggestions
    ]
    # dc-bo's default interval is 1, dcsa-bo's 5 (SA fills the slots between rounds)
    assert "dc" in [s.origin for s in call("dc-bo", SPACE3, done, 2).suggestions]
    fixed = {"mix": "fixed"}
    assert "dc" not in [
        s.origin for s in call("dcsa-bo", SPACE3, done, 2, settings=fixed).suggestions
    ]


def test_sa_labels_name_the_group() -> None:
    trials = random_trials(SPACE3, 20, seed=6, f=_additive)
    resp = call("sa-bo", SPACE3, trials, 4, settings={"sa_full_share": "0"})
    assert {s.labels[LABEL_ORIGIN] for s in resp.suggestions} == {"sa"}
    assert {s.labels[LABEL_GROUP] for s in resp.suggestions} <= {"a", "b", "c"}
    assert set(resp.importance) == {"a", "b", "c"}


def test_sa_slot_changes_only_its_group() -> None:
    trials = random_trials(SPACE3, 20, seed=7, f=_additive)
    best = min(trials, key=lambda t: float(t.metrics["loss"]))
    resp = call("sa-bo", SPACE3, trials, 3, settings={"sa_full_share": "0"})
    for s in resp.suggestions:
        group = s.labels[LABEL_GROUP]
        for name, value in s.assignments.items():
            if not name.startswith(group + "__"):
                assert value == best.assignments[name]


@pytest.mark.parametrize("algorithm", ["dc-bo", "sa-bo", "dcsa-bo"])
def test_one_group_reduces_to_plain_bo(algorithm: str) -> None:
    space = space_from([(f"x{i}", "double", "0", "1", "", (), "uniform") for i in range(3)])
    trials = random_trials(space, 14, seed=8, f=lambda v: sum(float(x) ** 2 for x in v.values()))
    plain = call("gp-bo", space, trials, 2, settings={"random_state": "1"})
    grouped = call(algorithm, space, trials, 2, settings={"random_state": "1"})
    assert [s.assignments for s in grouped.suggestions] == [
        s.assignments for s in plain.suggestions
    ]
    assert {s.origin for s in grouped.suggestions} == {"bo"}


@pytest.mark.parametrize("mix", ["joint", "adaptive", "fixed"])
def test_one_group_runs_exactly_as_gp_bo_whatever_the_mix(mix: str) -> None:
    # a whole run, not one call: with one subnetwork there is nothing to divide or to adapt
    # over, so no mix may add candidates (the joint mix once offered one-group "moves" of the
    # incumbent, which are local search, not SA)
    space = space_from([(f"x{i}", "double", "0", "1", "", (), "uniform") for i in range(3)])

    def f(v: Mapping[str, str]) -> float:
        return sum((float(x) - 0.3) ** 2 for x in v.values())

    plain = run_loop("gp-bo", space, f, budget=16, batch=2, seed=3)
    grouped = run_loop("dcsa-bo", space, f, budget=16, batch=2, seed=3, settings={"mix": mix})
    assert [t.assignments for t in grouped] == [t.assignments for t in plain]


@pytest.mark.parametrize("algorithm", ["gp-bo", "dcsa-bo"])
def test_random_state_fixes_a_run_whatever_the_experiment_is_called(algorithm: str) -> None:
    # trial names carry the experiment's name; they must not reach the random streams, or the
    # same algorithm with the same random_state runs differently under another name (two
    # subnetworks, so that dcsa-bo draws DC's children)
    space = space_from(
        [(f"{g}__x{i}", "double", "0", "1", "", (), "uniform") for g in "ab" for i in range(2)]
    )

    def f(v: Mapping[str, str]) -> float:
        return sum(abs(float(x) - 0.3) for x in v.values())

    runs = [
        run_loop(algorithm, space, f, budget=14, batch=2, seed=3, experiment=name)
        for name in ("exp", "another-name")
    ]
    assert [t.assignments for t in runs[0]] == [t.assignments for t in runs[1]]
    assert {t.name.split("-")[0] for t in runs[1]} == {"another"}
    other_seed = run_loop(algorithm, space, f, budget=14, batch=2, seed=4)
    assert [t.assignments for t in other_seed] != [t.assignments for t in runs[0]]


@pytest.mark.parametrize("algorithm", ["dc-bo", "sa-bo", "dcsa-bo"])
def test_grouped_strategies_keep_the_contract_on_a_partitioned_mixed_space(algorithm: str) -> None:
    trials = random_trials(GROUPED, 16, seed=9, f=lambda v: float(v["lr"]))
    for n in (1, 4):
        resp = call(algorithm, GROUPED, trials, n)
        keys = [tuple(s.assignments.values()) for s in resp.suggestions]
        assert len(keys) == n == len(set(keys))
        assert not set(keys) & {tuple(t.assignments.values()) for t in trials}
        for s in resp.suggestions:
            assert s.assignments["conv__kernel"] in ("3", "5", "7")
            assert s.assignments["dense__act"] in ("relu", "tanh")
            assert int(s.assignments["conv__filters"]) % 8 == 0
            assert 16 <= int(s.assignments["dense__units"]) <= 256
    again = call(algorithm, GROUPED, trials, 4)
    assert [s.assignments for s in again.suggestions] == [s.assignments for s in resp.suggestions]


def _origin(name: str) -> str | None:
    """A trial's origin as the service reads it back: from the name Katib returns."""
    found = provenance.parse("exp", name)
    return None if found is None else found.origin


def test_dcsa_origins_over_a_run() -> None:
    settings = {"dc_interval": "5", "sa_full_share": "0", "mix": "fixed"}
    trials = run_loop("dcsa-bo", SPACE3, _additive, budget=30, seed=1, settings=settings)
    counts = Counter(_origin(t.name) for t in trials)
    assert counts["initial"] == 7  # 6 parameters + 1
    # BO only where SA's group move found nothing new
    assert counts["dc"] >= 4 and counts["sa"] >= 10 and counts["bo"] <= 2
    # defaults: a DC round every 5 completed trials (2 slots), the other slots half SA, half BO
    fixed = {"mix": "fixed"}
    counts = Counter(
        _origin(t.name)
        for t in run_loop("dcsa-bo", SPACE3, _additive, budget=30, seed=1, settings=fixed)
    )
    assert counts["initial"] == 7
    # 23 model-based trials: rounds at 7, 12, 17, 22, 27 completed trials, 2 slots each
    assert 4 <= counts["dc"] <= 10 and counts["sa"] >= 3 and counts["bo"] >= 3


def test_joint_mix_is_seeded_and_labels_what_won() -> None:
    settings = {"mix": "joint", "n_initial_points": "6"}
    trials = run_loop("dcsa-bo", SPACE3, _additive, budget=24, batch=2, seed=4, settings=settings)
    again = run_loop("dcsa-bo", SPACE3, _additive, budget=24, batch=2, seed=4, settings=settings)
    assert [t.assignments for t in trials] == [t.assignments for t in again]
    assert len({tuple(t.assignments.values()) for t in trials}) == 24  # never a repeat
    origins = Counter(_origin(t.name) for t in trials)
    assert origins["initial"] == 6
    assert set(origins) <= {"initial", "bo", "dc"}  # SA's moves are not among its candidates


def test_joint_mix_offers_a_bounded_number_of_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    # 80 one-parameter subnetworks: DC's children are capped at 32 rows whatever the partition
    from suggestion_service.core.gp import optimize
    from suggestion_service.core.strategies import model_based

    seen: list[int] = []

    def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
        extra = kwargs.get("extra")
        seen.append(0 if extra is None else extra.shape[0])
        return optimize.maximize(*args, **kwargs)

    monkeypatch.setattr(model_based, "maximize", recording)
    space = space_from([(f"g{i}__x", "double", "0", "1", "", (), "uniform") for i in range(80)])
    history = random_trials(space, 12, seed=2, f=lambda v: sum(float(x) for x in v.values()))
    settings = {"n_candidates": "64", "n_initial_points": "5"}
    resp = call("dcsa-bo", space, history, 2, settings=settings)
    again = call("dcsa-bo", space, history, 2, settings=settings)
    assert [s.assignments for s in resp.suggestions] == [s.assignments for s in again.suggestions]
    assert seen and 0 < max(seen) <= 32
