"""An additive-by-group Gaussian process with Matern-5/2 ARD components.

k(x, x') = sum_g s_g * Matern52(||(x_g - x'_g) / l_g||) + noise * I

With a single group holding every feature this is the usual full-space GP. Hyperparameters are
fitted by maximising the log marginal likelihood plus log-normal priors (MAP), with analytic
gradients and L-BFGS-B. Inputs are GP features in [0, 1]; outputs are standardised.

Why hand-written instead of BoTorch/GPyTorch: see README "Why numpy and not BoTorch". In short,
the service must answer in milliseconds inside a small pod; torch adds ~300 MB of RSS and seconds
of import, while this model is a few hundred lines of numpy on top of LAPACK.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import cho_factor, cho_solve, solve_triangular
from scipy.optimize import minimize

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

_SQRT5 = math.sqrt(5.0)
_LOG_LS_BOUNDS = (math.log(1e-2), math.log(1e2))
_LOG_SCALE_BOUNDS = (math.log(1e-3), math.log(1e2))
_LOG_NOISE_BOUNDS = (math.log(1e-6), math.log(1.0))
_JITTER = 1e-8


def _matern52(r: FloatArray) -> FloatArray:
    sr = _SQRT5 * r
    return np.asarray((1.0 + sr + sr * sr / 3.0) * np.exp(-sr))


def _scaled_dist(a: FloatArray, b: FloatArray) -> FloatArray:
    """Euclidean distances between rows of already length-scaled inputs."""
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.asarray(np.sqrt(np.maximum(sq, 0.0)), dtype=np.float64)


@dataclass(frozen=True)
class Hyperparameters:
    """Length-scales (one per feature), output scales (one per group), noise variance."""

    lengthscales: FloatArray
    scales: FloatArray
    noise: float


class AdditiveGP:
    """The model family: which feature columns form each additive group.

    Args:
        groups: one index array of feature columns per additive component.
        n_features: total number of feature columns.
    """

    def __init__(self, groups: Sequence[Sequence[int]], n_features: int) -> None:
        self.groups = [np.asarray(g, dtype=np.intp) for g in groups]
        self.n_features = n_features
        if any(len(g) == 0 for g in self.groups):
            raise ValueError("every group needs at least one feature")

    # ---- kernel ----------------------------------------------------------------------------
    def kernel(self, a: FloatArray, b: FloatArray, hp: Hyperparameters) -> FloatArray:
        out = np.zeros((a.shape[0], b.shape[0]))
        for g, s in zip(self.groups, hp.scales, strict=True):
            ls = hp.lengthscales[g]
            out += s * _matern52(_scaled_dist(a[:, g] / ls, b[:, g] / ls))
        return out

    def component(self, a: FloatArray, b: FloatArray, hp: Hyperparameters, k: int) -> FloatArray:
        g = self.groups[k]
        ls = hp.lengthscales[g]
        return np.asarray(hp.scales[k] * _matern52(_scaled_dist(a[:, g] / ls, b[:, g] / ls)))

    # ---- priors ----------------------------------------------------------------------------
    def _prior(self) -> tuple[FloatArray, FloatArray]:
        """Means and standard deviations of the log-normal priors, in theta order."""
        mu_ls = np.empty(self.n_features)
        for g in self.groups:
            # dimension-scaled length-scale prior (Hvarfner et al., 2024), per component
            mu_ls[g] = math.sqrt(2.0) + 0.5 * math.log(len(g))
        n_groups = len(self.groups)
        mu = np.concatenate([mu_ls, np.full(n_groups, math.log(1.0 / n_groups)), [-4.0]])
        sd = np.concatenate(
            [np.full(self.n_features, math.sqrt(3.0)), np.full(n_groups, 1.5), [1.5]]
        )
        return mu, sd

    def _unpack(self, theta: FloatArray) -> Hyperparameters:
        f, g = self.n_features, len(self.groups)
        return Hyperparameters(
            np.exp(theta[:f]), np.exp(theta[f : f + g]), float(np.exp(theta[-1]))
        )

    # ---- fitting ---------------------------------------------------------------------------
    def neg_log_posterior(
        self, theta: FloatArray, x: FloatArray, y: FloatArray
    ) -> tuple[float, FloatArray]:
        """Negative log marginal likelihood + negative log prior, and its gradient."""
        hp = self._unpack(theta)
        n = x.shape[0]
        k = np.full((n, n), 0.0)
        pieces = []
        for gi, g in enumerate(self.groups):
            xs = x[:, g] / hp.lengthscales[g]
            r = _scaled_dist(xs, xs)
            e = np.exp(-_SQRT5 * r)
            m = (1.0 + _SQRT5 * r + 5.0 / 3.0 * r * r) * e
            a = 5.0 / 3.0 * (1.0 + _SQRT5 * r) * e  # -(dk/dr)/r, so dk/dlog(l_j) = a * d_j^2
            k += hp.scales[gi] * m
            pieces.append((xs, m, a))
        k[np.diag_indices(n)] += hp.noise + _JITTER
        try:
            factor = cho_factor(k, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            return 1e10, np.zeros_like(theta)
        alpha = cho_solve(factor, y, check_finite=False)
        nll = (
            0.5 * float(y @ alpha)
            + float(np.log(np.diag(factor[0])).sum())
            + 0.5 * n * math.log(2 * math.pi)
        )
        kinv = cho_solve(factor, np.eye(n), check_finite=False)
        w = np.outer(alpha, alpha) - kinv
        grad = np.zeros_like(theta)
        f = self.n_features
        for gi, (g, (xs, m, a)) in enumerate(zip(self.groups, pieces, strict=True)):
            s = hp.scales[gi]
            grad[f + gi] = -0.5 * s * float((w * m).sum())
            b = w * a
            rows = b.sum(1)
            bx = b @ xs
            # sum_ij b_ij (xs_i - xs_j)^2 = 2 (sum_i xs_i^2 rows_i - sum_i xs_i (B xs)_i)
            quad = 2.0 * ((xs * xs * rows[:, None]).sum(0) - (xs * bx).sum(0))
            grad[g] = -0.5 * s * quad
        grad[-1] = -0.5 * hp.noise * float(np.trace(w))
        mu, sd = self._prior()
        z = (theta - mu) / sd
        return nll + 0.5 * float(z @ z), grad + z / sd

    def fit(self, x: FloatArray, y: FloatArray, *, max_iter: int = 60) -> Hyperparameters:
        """MAP hyperparameters for standardised ``y`` on features ``x``."""
        mu, _ = self._prior()
        bounds = (
            [_LOG_LS_BOUNDS] * self.n_features
            + [_LOG_SCALE_BOUNDS] * len(self.groups)
            + [_LOG_NOISE_BOUNDS]
        )
        lo, hi = [b[0] for b in bounds], [b[1] for b in bounds]
        # Two starts: the prior's mode (smooth, noisy) and a wiggly, nearly noiseless one. A single
        # start often settles in the "everything is noise" optimum on skewed objectives.
        wiggly = mu.copy()
        wiggly[: self.n_features] = math.log(0.3)
        wiggly[-1] = math.log(1e-4)
        best_theta, best_value = np.clip(mu, lo, hi), math.inf
        for theta0 in (np.clip(mu, lo, hi), np.clip(wiggly, lo, hi)):
            res = minimize(
                self.neg_log_posterior,
                theta0,
                args=(x, y),
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options={"maxiter": max_iter},
            )
            if np.all(np.isfinite(res.x)) and float(res.fun) < best_value:
                best_theta, best_value = res.x, float(res.fun)
        return self._unpack(np.asarray(best_theta, dtype=np.float64))

    def condition(self, x: FloatArray, y: FloatArray, hp: Hyperparameters) -> Posterior:
        """The posterior given data (hyperparameters fixed)."""
        return Posterior(self, x, y, hp)


class Posterior:
    """A GP conditioned on data; cheap to extend with fantasised (pending) points."""

    def __init__(self, model: AdditiveGP, x: FloatArray, y: FloatArray, hp: Hyperparameters):
        self.model, self.x, self.y, self.hp = model, x, y, hp
        k = model.kernel(x, x, hp)
        k[np.diag_indices_from(k)] += hp.noise + _JITTER
        jitter = _JITTER
        while True:
            try:
                self.chol = np.linalg.cholesky(k)
                break
            except np.linalg.LinAlgError:
                jitter *= 10
                if jitter > 1e-2:
                    raise
                k[np.diag_indices_from(k)] += jitter
        self.alpha = cho_solve((self.chol, True), y, check_finite=False)
        self.prior_var = float(hp.scales.sum())

    def predict(self, xq: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Posterior mean and variance (of the latent function) at ``xq``."""
        ks = self.model.kernel(xq, self.x, self.hp)
        mean = ks @ self.alpha
        v = solve_triangular(self.chol, ks.T, lower=True, check_finite=False)
        var = np.maximum(self.prior_var - (v * v).sum(0), 1e-12)
        return mean, var

    def component_mean(self, xq: FloatArray, k: int) -> FloatArray:
        """Posterior mean of additive component ``k`` alone at ``xq``."""
        return np.asarray(self.model.component(xq, self.x, self.hp, k) @ self.alpha)

    def with_fantasies(self, xp: FloatArray) -> Posterior:
        """Kriging believer: add pending points with their posterior mean as observed value.

        The mean is unchanged and the variance at (and near) pending points shrinks, so the
        acquisition steers away from them and a batch spreads out.
        """
        if xp.shape[0] == 0:
            return self
        mean, _ = self.predict(xp)
        return Posterior(
            self.model, np.vstack([self.x, xp]), np.concatenate([self.y, mean]), self.hp
        )
