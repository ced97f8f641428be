"""The GP surrogate and acquisition, with exact expectations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import ndtr

from suggestion_service.core.gp.acquisition import acquisition, log_h
from suggestion_service.core.gp.model import AdditiveGP
from suggestion_service.core.history import Goal

from .helpers import best, run_loop, space_from


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
    _, grad = model.neg_log_posterior(theta, x, y)
    eps = 1e-6
    for i in range(theta.size):
        up, down = theta.copy(), theta.copy()
        up[i] += eps
        down[i] -= eps
        fd = (model.neg_log_posterior(up, x, y)[0] - model.neg_log_posterior(down, x, y)[0]) / (
            2 * eps
        )
        assert grad[i] == pytest.approx(fd, rel=1e-4, abs=1e-5), i


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

    runs = {
        kernel: [t.assignments for t in run_loop("gp-bo", space, f, budget=12, settings=extra)]
        for kernel, extra in (
            ("unset", {}),
            ("32", {"kernel": "matern32"}),
            ("52", {"kernel": "matern52"}),
        )
    }
    assert runs["unset"] == runs["32"] != runs["52"]
