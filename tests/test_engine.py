"""The engine's parts (issue 10): acquisition optimizer, output warping, categorical kernel,
fit fallback, incumbent and initial design."""

from __future__ import annotations

import math

import numpy as np
import pytest

from suggestion_service.core.gp import model as gp_model
from suggestion_service.core.gp.acquisition import acquisition, acquisition_grad
from suggestion_service.core.gp.model import AdditiveGP, CentredBowl
from suggestion_service.core.gp.optimize import Objective, maximize
from suggestion_service.core.gp.transform import OutputWarp
from suggestion_service.core.space import FloatArray

from .helpers import assert_likelihood_gradient, call, random_trials, space_from, trial

MIXED_SPACE = space_from(
    [
        ("a", "double", "-2", "3", "", (), "uniform"),
        ("lr", "double", "0.0001", "1", "", (), "logUniform"),
        ("units", "int", "8", "512", "8", (), "uniform"),
        ("layers", "int", "1", "6", "", (), "uniform"),
        ("batch", "discrete", "", "", "", ("16", "32", "64", "128", "256"), "uniform"),
        ("opt", "categorical", "", "", "", ("sgd", "adam", "rmsprop", "adagrad"), "uniform"),
    ]
)


def _known(typed: FloatArray) -> FloatArray:
    """A mixed-type function with a known maximum 0 at a=1.234, lr=0.01, units=200, layers=4,
    batch=64 (index 2), opt=rmsprop (index 2)."""
    a, lr, units, layers, batch, opt = typed.T
    return -(
        (a - 1.234) ** 2
        + (np.log10(lr) + 2.0) ** 2
        + ((units - 200.0) / 100.0) ** 2
        + 0.3 * (layers - 4.0) ** 2
        + 0.5 * (batch != 2)
        + 1.0 * (opt != 2)
    )


def _known_objective() -> Objective:
    """The known function on GP features, with a finite-difference gradient."""
    space = MIXED_SPACE
    cols = tuple(range(len(space)))

    def to_typed(feats: FloatArray) -> FloatArray:
        out = np.empty_like(feats)
        for j, p in enumerate(space.parameters):
            if p.is_categorical:
                out[:, j] = feats[:, j]
            elif p.grid_size is None:
                out[:, j] = p.unwarp(feats[:, j])
            else:  # relaxed ints and lists: the continuous value, not snapped
                out[:, j] = (
                    p.unwarp(feats[:, j])
                    if p.values == ()
                    else np.interp(feats[:, j], p.warp(np.asarray(p.values)), np.arange(5.0))
                )
        return out

    def value(feats: FloatArray) -> FloatArray:
        return _known(to_typed(feats))

    def value_grad(feats: FloatArray) -> tuple[FloatArray, FloatArray]:
        v = value(feats)
        g = np.zeros_like(feats)
        for j, p in enumerate(space.parameters):
            if p.is_categorical:
                continue
            e = np.zeros_like(feats)
            e[:, j] = 1e-6
            g[:, j] = (value(np.clip(feats + e, 0, 1)) - value(np.clip(feats - e, 0, 1))) / 2e-6
        return v, g

    return Objective(space.features, value, value_grad, cols)


def test_optimizer_reaches_the_known_optimum_of_a_mixed_function() -> None:
    row, score = maximize(
        MIXED_SPACE,
        _known_objective(),
        rng=np.random.default_rng(0),
        seed=0,
        starts=np.zeros((0, len(MIXED_SPACE))),
        excluded=lambda _row: False,
        n_raw=256,
    )
    assert row is not None
    values = MIXED_SPACE.to_strings(row)
    assert float(values["a"]) == pytest.approx(1.234, abs=0.01)
    assert float(values["lr"]) == pytest.approx(0.01, rel=0.03)
    assert values["units"] == "200"
    assert values["layers"] == "4"
    assert values["batch"] == "64"
    assert values["opt"] == "rmsprop"
    assert score == pytest.approx(0.0, abs=1e-3)


def test_optimizer_never_returns_an_excluded_point() -> None:
    space = space_from(
        [
            ("layers", "int", "1", "3", "", (), "uniform"),
            ("opt", "categorical", "", "", "", ("sgd", "adam"), "uniform"),
        ]
    )
    best = {"layers": "2", "opt": "adam"}

    def value(feats: FloatArray) -> FloatArray:
        typed = np.column_stack([space.parameters[0].from_feature(feats[:, 0]), feats[:, 1]])
        return -np.abs(typed[:, 0] - 2.0) - (typed[:, 1] != 1)

    objective = Objective(space.features, value, lambda f: (value(f), np.zeros_like(f)), (0, 1))
    banned = {tuple(best.values())}
    row, _ = maximize(
        space,
        objective,
        rng=np.random.default_rng(0),
        seed=1,
        starts=np.zeros((0, 2)),
        excluded=lambda r: space.key(r) in banned,
        n_raw=64,
    )
    assert row is not None
    assert space.key(row) not in banned
    assert space.to_strings(row) in ({"layers": "1", "opt": "adam"}, {"layers": "3", "opt": "adam"})


@pytest.mark.parametrize("bowl", [0.0, 0.5])
@pytest.mark.parametrize("nu", [2.5, 1.5])
@pytest.mark.parametrize("kind", ["ei", "pi", "ucb"])
def test_acquisition_gradient_matches_finite_differences(kind: str, nu: float, bowl: float) -> None:
    rng = np.random.default_rng(3)
    x = rng.random((20, 3))
    x[:, 2] = rng.integers(0, 3, 20)
    y = np.sin(4 * x[:, 0]) + x[:, 1] + 0.5 * (x[:, 2] == 1)
    y = (y - y.mean()) / y.std()
    cat = np.array([False, False, True])
    model = AdditiveGP([[0, 1, 2]], 3, cat, nu=nu)
    prior = CentredBowl.centred_on(x, ~cat, bowl) if bowl else None
    post = model.condition(x, y, model.fit(x, y, prior_mean=prior), prior)
    q = rng.random((5, 3))
    q[:, 2] = rng.integers(0, 3, 5)
    mean, var, dmean, dvar = post.predict_with_grad(q)
    best = float(mean.min())  # moderate z: finite differences stay accurate
    value, d_m, d_v = acquisition_grad(kind, mean, var, best)
    assert np.allclose(value, acquisition(kind, mean, var, best))
    grad = d_m[:, None] * dmean + d_v[:, None] * dvar
    for j in (0, 1):
        e = np.zeros_like(q)
        e[:, j] = 1e-6
        up = acquisition(kind, *post.predict(q + e), best)
        down = acquisition(kind, *post.predict(q - e), best)
        assert np.allclose(grad[:, j], (up - down) / 2e-6, rtol=1e-3, atol=1e-4), j
    assert np.all(grad[:, 2] == 0)  # categories are searched by enumeration


def test_output_warping_round_trips_and_keeps_the_order() -> None:
    from scipy.stats import skew

    rng = np.random.default_rng(0)
    y = np.r_[rng.lognormal(0, 1.0, 60), [40.0, 80.0]]  # skewed, heavy right tail
    warp = OutputWarp.fit(y)
    w = warp(y)
    assert warp.lam < 1.0  # compresses the heavy right tail
    assert np.allclose(warp.inverse(w), y, rtol=1e-9)
    assert np.array_equal(np.argsort(w), np.argsort(y))
    assert abs(float(w.mean())) < 1e-9 and float(w.std()) == pytest.approx(1.0)
    assert skew(y) > 4.0 and abs(skew(w)) < 0.5  # nearly symmetric after the transform
    plain = OutputWarp.fit(y, power=False)
    assert plain.lam == 1.0 and np.allclose(plain(y), (y - y.mean()) / y.std())
    # invariant to the objective's offset and units
    assert np.allclose(OutputWarp.fit(3.0 * y - 7.0)(3.0 * y - 7.0), w)


def test_output_warping_of_constant_values_is_finite() -> None:
    warp = OutputWarp.fit(np.full(5, 2.0))
    assert np.all(np.isfinite(warp(np.full(5, 2.0))))


def test_categorical_kernel_is_positive_definite_with_one_lengthscale_per_parameter() -> None:
    rng = np.random.default_rng(0)
    n = 60
    x = np.column_stack([rng.random(n), rng.integers(0, 12, n), rng.integers(0, 3, n)])
    cat = np.array([False, True, True])
    model = AdditiveGP([[0, 1], [2]], 3, cat)
    for _ in range(20):
        theta = rng.normal(0, 1.5, 3 + 2 + 1)
        hp = model._unpack(theta)
        k = model.kernel(x, x, hp)
        assert np.allclose(k, k.T)
        assert float(np.linalg.eigvalsh(k).min()) > -1e-9 * float(np.abs(k).max())
    # a category compares by equality: swapping two labels changes nothing
    hp = model.default_hyperparameters()
    swapped = x.copy()
    swapped[:, 1] = np.where(x[:, 1] == 3, 7, np.where(x[:, 1] == 7, 3, x[:, 1]))
    assert np.allclose(model.kernel(x, x, hp), model.kernel(swapped, swapped, hp))
    assert hp.lengthscales.shape == (3,)


def test_likelihood_gradient_with_categoricals_matches_finite_differences() -> None:
    rng = np.random.default_rng(4)
    x = np.column_stack([rng.random(25), rng.integers(0, 4, 25), rng.random(25)])
    y = np.sin(3 * x[:, 0]) + 0.7 * (x[:, 1] == 2) + x[:, 2]
    y = (y - y.mean()) / y.std()
    model = AdditiveGP([[0, 1], [2]], 3, np.array([False, True, False]))
    theta = rng.normal(0, 0.5, 3 + 2 + 1)
    theta[-1] = math.log(1e-2)
    assert_likelihood_gradient(model, theta, x, y)


def test_a_failed_fit_still_gives_model_based_points(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object, **_kwargs: object) -> object:
        raise np.linalg.LinAlgError("injected")

    monkeypatch.setattr(gp_model, "minimize", broken)
    trials = random_trials(MIXED_SPACE, 30, f=lambda v: float(v["a"]) ** 2)
    resp = call("gp-bo", MIXED_SPACE, trials, 3)
    assert [s.origin for s in resp.suggestions] == ["bo", "bo", "bo"]
    assert resp.fallbacks == []


def test_incumbent_is_robust_to_a_lucky_noisy_observation() -> None:
    """With noise, the incumbent is the lowest posterior mean, not the lowest (lucky) value."""
    from suggestion_service.core.strategies.model_based import fit_surrogate

    from .test_dcsa import _context

    space = space_from([("x", "double", "0", "1", "", (), "uniform")])
    rng = np.random.default_rng(0)
    xs = np.linspace(0, 1, 30)
    ys = (xs - 0.5) ** 2 + 0.02 * rng.standard_normal(30)
    ys[3] -= 0.2  # one lucky observation far from the optimum
    trials = [
        trial(f"t{i}", {"x": repr(float(x))}, loss=float(y))
        for i, (x, y) in enumerate(zip(xs, ys, strict=True))
    ]
    for incumbent in ("mean", "observed"):
        _, ctx = _context(space, trials, {"incumbent": incumbent})
        fit = fit_surrogate(ctx, [[0]])
        lowest = float(fit.warp(ys).min())
        mean_at_obs = fit.posterior.predict(space.features(ctx.history.x_obs))[0]
        if incumbent == "observed":
            assert fit.y_best == pytest.approx(lowest)
        else:
            assert fit.y_best == pytest.approx(float(mean_at_obs.min()))
            assert fit.y_best > lowest + 0.5  # the lucky value is not believed


def test_a_call_does_a_fixed_amount_of_model_work() -> None:
    """max_model_slots bounds the model-based slots of one call; the rest is quasi-random and
    counted as slot_limit fallbacks, the same on every repeat (not a wall-clock cut)."""
    trials = random_trials(MIXED_SPACE, 20, f=lambda v: float(v["a"]) ** 2)
    first = call("gp-bo", MIXED_SPACE, trials, 6, settings={"max_model_slots": "4"})
    assert [s.origin for s in first.suggestions] == ["bo"] * 4 + ["fallback"] * 2
    assert first.fallbacks == ["slot_limit", "slot_limit"]
    again = call("gp-bo", MIXED_SPACE, trials, 6, settings={"max_model_slots": "4"})
    assert [s.assignments for s in again.suggestions] == [s.assignments for s in first.suggestions]


def test_optimizer_takes_an_extra_candidate_that_beats_what_it_finds() -> None:
    # a needle the raw candidates and their local searches cannot see (zero gradient around it),
    # offered as an extra candidate (as dcsa-bo's joint mix offers DC's children)
    space = space_from([(f"x{i}", "double", "0", "1", "", (), "uniform") for i in range(6)])
    needle = np.array([0.123, 0.877, 0.5, 0.31, 0.64, 0.09])

    def value(feats: FloatArray) -> FloatArray:
        hit = np.all(np.abs(feats - needle) < 1e-9, axis=1)
        return np.where(hit, 1.0, 0.0)

    objective = Objective(
        space.features, value, lambda f: (value(f), np.zeros_like(f)), tuple(range(6))
    )
    common = {
        "rng": np.random.default_rng(0),
        "seed": 0,
        "starts": np.zeros((0, 6)),
        "excluded": lambda _row: False,
        "n_raw": 128,
    }
    _, without = maximize(space, objective, **common)  # type: ignore[arg-type]
    assert without == 0.0
    row, score = maximize(space, objective, extra=needle[None, :], **common)  # type: ignore[arg-type]
    assert score == 1.0 and row is not None and np.allclose(row, needle)


def test_a_batch_does_not_crowd_next_to_a_slot_expected_to_win() -> None:
    """Kriging believer with the incumbent lowered to the pending points' believed values: once
    slot 1 is expected to beat the incumbent, the next slots must beat slot 1's believed value,
    so they do not pile up beside it (with the observed incumbent, 3 of these 4 batches had two
    slots closer than 0.002, two of them four copies of one point up to 3 decimals)."""
    space = space_from(
        [("x", "double", "0", "1", "", (), "uniform"), ("y", "double", "0", "1", "", (), "uniform")]
    )
    crowded = 0
    for seed in range(4):
        pts = np.random.default_rng(seed).random((12, 2))
        trials = [
            trial(
                f"t{i}",
                {"x": repr(float(a)), "y": repr(float(b))},
                loss=(a - 0.31) ** 2 + (b - 0.62) ** 2,
            )
            for i, (a, b) in enumerate(pts)
        ]
        reply = call("gp-bo", space, trials, 4)
        assert [s.origin for s in reply.suggestions] == ["bo"] * 4
        xs = np.array([[float(s.assignments[k]) for k in ("x", "y")] for s in reply.suggestions])
        d = np.sqrt(((xs[:, None] - xs[None]) ** 2).sum(-1))
        crowded += bool(d[np.triu_indices(4, 1)].min() < 0.002)
    assert crowded <= 1
