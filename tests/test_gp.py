"""The GP surrogate and acquisition, with exact expectations."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from scipy.special import ndtr

from suggestion_service.core.gp.acquisition import acquisition, log_h
from suggestion_service.core.gp.model import AdditiveGP, CentredBowl
from suggestion_service.core.history import Goal

from .helpers import assert_likelihood_gradient, best, run_loop, space_from


@pytest.mark.parametrize("nu", [2.5, 1.5])
@pytest.mark.parametrize("groups", [[[0, 1, 2, 3]], [[0, 1], [2], [3]]])
def test_gradient_matches_finite_differences(groups: list[list[int]], nu: float) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((25, 4))
    y = np.sin(3 * x[:, 0]) + x[:, 1] ** 2 - x[:, 3]
    y = (y - y.mean()) / y.std()
    model = AdditiveGP(groups, 4, nu=nu)
    theta = rng.normal(0, 0.5, 4 + len(groups) + 1)
    theta[-1] = math.log(1e-2)
    assert_likelihood_gradient(model, theta, x, y)


def _scaled_data() -> tuple[AdditiveGP, np.ndarray, np.ndarray]:
    """Two copies of a 2-d configuration and a weight column w: f(x) + w * g(x)."""
    rng = np.random.default_rng(4)
    cfg = rng.random((30, 2))
    w = rng.choice([0.0, 0.25, 1.0], 30)
    x = np.hstack([cfg, cfg, w[:, None]])
    y = np.sin(3 * cfg[:, 0]) + w * (1.0 + np.cos(4 * cfg[:, 1]))
    y = (y - y.mean()) / y.std()
    return AdditiveGP([[0, 1], [2, 3]], 5, nu=2.5, scaled_by=[None, 4]), x, y


def test_scaled_group_gradients_match_finite_differences() -> None:
    model, x, y = _scaled_data()
    rng = np.random.default_rng(5)
    theta = rng.normal(0, 0.5, 5 + 2 + 1)
    theta[-1] = math.log(1e-2)
    assert_likelihood_gradient(model, theta, x, y)
    post = model.condition(x, y, model._unpack(theta))
    q = np.hstack([rng.random((4, 4)), rng.random((4, 1))])
    mean, var, dmean, dvar = post.predict_with_grad(q)
    assert np.allclose((mean, var), post.predict(q))
    for j in range(5):
        e = np.zeros_like(q)
        e[:, j] = 1e-6
        (mu_up, v_up), (mu_dn, v_dn) = post.predict(q + e), post.predict(q - e)
        assert np.allclose(dmean[:, j], (mu_up - mu_dn) / 2e-6, rtol=1e-4, atol=1e-5), j
        assert np.allclose(dvar[:, j], (v_up - v_dn) / 2e-6, rtol=1e-4, atol=1e-5), j


def test_a_scaled_group_vanishes_where_its_weight_is_zero() -> None:
    model, x, y = _scaled_data()
    post = model.condition(x, y, model.fit(x, y))
    q = np.hstack([np.random.default_rng(6).random((6, 4)), np.zeros((6, 1))])
    assert np.allclose(post.component_mean(q, 1), 0.0)
    assert np.allclose(post.mean(q), post.component_mean(q, 0))
    # the unscaled group recovers f(x) = sin(3 x0) up to the standardisation
    assert np.corrcoef(post.mean(q), np.sin(3 * q[:, 0]))[0, 1] > 0.9
    with pytest.raises(ValueError, match="scaled_by"):
        AdditiveGP([[0], [1]], 3, scaled_by=[None])


def test_posterior_interpolates_and_is_uncertain_far_away() -> None:
    x = np.linspace(0, 1, 8)[:, None]
    y = np.sin(6 * x[:, 0])
    y = (y - y.mean()) / y.std()
    model = AdditiveGP([[0]], 1)
    post = model.condition(x, y, model.fit(x, y))
    mean, var = post.predict(x)
    assert np.allclose(mean, y, atol=0.05)
    _, var_far = post.predict(np.array([[3.0]]))
    assert var_far[0] > 20 * var.max()


def test_fantasies_shrink_variance_at_pending_points_only() -> None:
    rng = np.random.default_rng(1)
    x = rng.random((12, 2)) * 0.5  # data in one corner
    y = np.sin(8 * x[:, 0]) + np.cos(7 * x[:, 1])
    y = (y - y.mean()) / y.std()
    model = AdditiveGP([[0, 1]], 2)
    post = model.condition(x, y, model.fit(x, y))
    pending = np.array([[0.9, 0.9]])
    far = np.array([[0.1, 0.95]])
    m0, v0 = post.predict(pending)
    fantasy = post.with_fantasies(pending)
    m1, v1 = fantasy.predict(pending)
    assert m1 == pytest.approx(m0, abs=1e-6)
    assert v1[0] < 0.05 * v0[0]
    assert fantasy.predict(far)[1][0] > 0.3 * post.predict(far)[1][0]


def test_additive_components_sum_to_the_mean() -> None:
    rng = np.random.default_rng(2)
    x = rng.random((30, 3))
    y = np.sin(4 * x[:, 0]) + 0.1 * x[:, 2]
    y = (y - y.mean()) / y.std()
    model = AdditiveGP([[0, 1], [2]], 3)
    post = model.condition(x, y, model.fit(x, y))
    q = rng.random((5, 3))
    mean, _ = post.predict(q)
    assert np.allclose(post.component_mean(q, 0) + post.component_mean(q, 1), mean)
    # the component holding the signal gets the larger output scale
    assert post.hp.scales[0] > post.hp.scales[1]


@pytest.mark.parametrize("z", [-40.0, -12.0, -3.0, -0.5, 0.0, 1.0, 5.0])
def test_log_h_is_accurate(z: float) -> None:
    import mpmath

    exact = float(mpmath.log(mpmath.npdf(z) + z * mpmath.ncdf(z)))
    assert log_h(np.array([z]))[0] == pytest.approx(exact, rel=1e-6)


def test_ei_prefers_low_mean_and_high_variance() -> None:
    mean = np.array([0.0, -1.0, 0.0])
    var = np.array([1.0, 1.0, 4.0])
    ei = acquisition("ei", mean, var, best=0.0)
    assert ei[1] > ei[0] and ei[2] > ei[0]
    naive = np.log(1.0 * (0 * ndtr(0) + math.exp(0) / math.sqrt(2 * math.pi)))
    assert ei[0] == pytest.approx(naive)


@pytest.mark.parametrize("kind", ["ei", "pi", "ucb"])
def test_every_acquisition_solves_a_1d_maximisation(kind: str) -> None:
    space = space_from([("x", "double", "-2", "3", "", (), "uniform")])
    trials = run_loop(
        "gp-bo",
        space,
        lambda v: -((float(v["x"]) - 1.3) ** 2),
        budget=16,
        goal=Goal.MAXIMIZE,
        settings={"acquisition": kind, "n_initial_points": "4"},
    )
    assert best(trials, Goal.MAXIMIZE) > -1e-3


def test_kernel_setting_resolves_by_whether_asha_is_on() -> None:
    from suggestion_service.core.errors import InvalidSettingError
    from suggestion_service.core.registry import get_strategy
    from suggestion_service.core.strategies.model_based import kernel_nu

    for algorithm in ("gp-bo", "dcsa-bo"):
        table = get_strategy(algorithm).settings
        assert kernel_nu(table.typed({}, algorithm=algorithm)) == 1.5
        asha = table.typed({"resource_name": "epochs"}, algorithm=algorithm)
        assert kernel_nu(asha) == 2.5  # chosen on the multi-fidelity tune set
        for kernel, nu in (("matern32", 1.5), ("matern52", 2.5)):
            for raw in ({"kernel": kernel}, {"kernel": kernel, "resource_name": "epochs"}):
                assert kernel_nu(table.typed(raw, algorithm=algorithm)) == nu
        with pytest.raises(InvalidSettingError) as info:
            table.typed({"kernel": "rbf"}, algorithm=algorithm)
        assert "kernel" in str(info.value) and "matern32" in str(info.value)


def test_the_kernel_setting_reaches_the_fitted_model() -> None:
    # resolving the setting is not enough: a run with it unset must be the Matern-3/2 run
    space = space_from([(f"x{i}", "double", "0", "1", "", (), "uniform") for i in range(2)])

    def f(v: dict[str, str]) -> float:
        return abs(float(v["x0"]) - 0.3) + (float(v["x1"]) - 0.7) ** 2

    runs = _gp_bo_runs(
        space, f, {"unset": {}, "32": {"kernel": "matern32"}, "52": {"kernel": "matern52"}}
    )
    assert runs["unset"] == runs["32"] != runs["52"]


def _gp_bo_runs(
    space: Any, f: Callable[[dict[str, str]], float], cases: dict[str, dict[str, str]]
) -> dict[str, list[dict[str, str]]]:
    """The assignments of a 12-trial gp-bo run per case of settings."""
    return {
        label: [t.assignments for t in run_loop("gp-bo", space, f, budget=12, settings=extra)]
        for label, extra in cases.items()
    }


def test_the_centre_prior_setting_reaches_the_fitted_model() -> None:
    # unset must be the 0.5 run, and 0 (the constant mean) a different one
    space = space_from([(f"x{i}", "double", "0", "1", "", (), "uniform") for i in range(3)])

    def f(v: dict[str, str]) -> float:
        return sum((float(v[f"x{i}"]) - 0.2 * (i + 1)) ** 2 for i in range(3))

    runs = _gp_bo_runs(
        space, f, {"unset": {}, "0.5": {"centre_prior": "0.5"}, "0": {"centre_prior": "0"}}
    )
    assert runs["unset"] == runs["0.5"] != runs["0"]


def _trend_data(slope: float, seed: int = 4) -> tuple[np.ndarray, np.ndarray]:
    # most of the signal in coordinate 1, a linear fall in coordinate 0, sampled on [0, 0.5]
    # only: a long length-scale extrapolates the fall to the bound at 1, which no data support
    rng = np.random.default_rng(seed)
    x = rng.random((20, 2))
    x[:, 0] *= 0.5
    y = np.sin(6 * x[:, 1]) - slope * x[:, 0]
    return x, (y - y.mean()) / y.std()


def test_centred_bowl_is_zero_on_average_over_the_data_and_ignores_categories() -> None:
    rng = np.random.default_rng(5)
    x = rng.random((30, 3))
    x[:, 2] = rng.integers(0, 4, 30)
    numeric = np.array([True, True, False])
    bowl = CentredBowl.centred_on(x, numeric, 0.5)
    assert float(bowl(x).mean()) == pytest.approx(0.0, abs=1e-12)
    moved = x.copy()
    moved[:, 2] = 3 - moved[:, 2]
    assert np.allclose(bowl(moved), bowl(x))
    centre = np.array([[0.5, 0.5, 0.0]])
    corner = np.array([[1.0, 0.0, 0.0]])
    assert float(bowl(corner)[0] - bowl(centre)[0]) == pytest.approx(0.5 * 0.5)
    assert np.allclose(bowl.grad(centre), 0.0)
    assert CentredBowl.centred_on(x, numeric, 0.0)(x) == pytest.approx(np.zeros(30))


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_the_prior_mean_keeps_a_weak_trend_off_the_bound_and_yields_to_a_strong_one(
    seed: int,
) -> None:
    def argmin_along_0(slope: float, strength: float) -> float:
        x, y = _trend_data(slope, seed)
        model = AdditiveGP([[0, 1]], 2)
        bowl = CentredBowl.centred_on(x, np.array([True, True]), strength) if strength else None
        post = model.condition(x, y, model.fit(x, y, prior_mean=bowl), bowl)
        assert np.allclose(post.mean(x), y, atol=0.1)  # both fit the data
        grid = np.column_stack([np.linspace(0, 1, 201), np.full(201, x[np.argmin(y), 1])])
        return float(grid[np.argmin(post.mean(grid)), 0])

    # a weak fall seen on [0, 0.5]: the constant mean extrapolates it to the bound, the
    # centred prior mean stops inside the box
    assert argmin_along_0(0.3, 0.0) == 1.0
    assert 0.5 < argmin_along_0(0.3, 0.5) < 0.9
    # a strong fall: the data win and the minimum stays on the bound
    assert argmin_along_0(3.0, 0.5) == 1.0


def test_fantasies_keep_the_prior_mean() -> None:
    x, y = _trend_data(0.3)
    model = AdditiveGP([[0, 1]], 2)
    bowl = CentredBowl.centred_on(x, np.array([True, True]), 0.5)
    post = model.condition(x, y, model.fit(x, y, prior_mean=bowl), bowl)
    pending = np.array([[0.9, 0.9]])
    fantasy = post.with_fantasies(pending)
    q = np.array([[0.95, 0.1], [0.2, 0.6]])
    assert fantasy.predict(pending)[0] == pytest.approx(post.predict(pending)[0], abs=1e-6)
    assert fantasy.predict(q)[0] == pytest.approx(post.predict(q)[0], abs=0.05)
    assert fantasy.predict(pending)[1][0] < 0.2 * post.predict(pending)[1][0]
