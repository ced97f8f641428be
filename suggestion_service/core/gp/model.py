"""An additive-by-group Gaussian process with Matern ARD components (5/2 or 3/2).

k(x, x') = sum_g s_g * Matern_nu(r_g(x, x')) + noise * I,
r_g^2 = sum_{j in g, numeric} ((x_j - x'_j) / l_j)^2
      + sum_{j in g, categorical} [x_j != x'_j] / l_j^2

With a single group holding every feature this is the usual full-space GP. A group may also be
*scaled* by a feature column w: its term becomes w(x) * w(x') * s_g * Matern(...), a function
that is w times a GP (ASHA's budget model uses it for the part of a learning curve that
vanishes at the full budget, as FABOLAS's basis functions do, Klein et al. 2017).

Numeric features are warped positions in [0, 1]; a categorical feature is the category's index,
compared by equality with one length-scale per parameter (the Hamming-style kernel of Optuna's
GPSampler), so a categorical with many choices costs one hyperparameter, not one per choice.

Hyperparameters are fitted by maximising the log marginal likelihood plus log-normal priors (MAP),
with analytic gradients and L-BFGS-B from several starts; outputs are standardised (and warped,
see transform.py) by the caller. If every start fails, the prior's mode is used: the model stays
usable, only less tuned.

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
_LOG_LS_PRIOR_MEDIAN = -0.5
#: Up to this many fit points the two best starts are optimised; above, only the best (the
#: likelihood surface is better determined and each evaluation costs O(n^3)).
_TWO_RUNS_UP_TO = 64


_SQRT3 = math.sqrt(3.0)
#: Matern smoothness parameters the model offers.
NUS = (1.5, 2.5)


def _matern(r: FloatArray, nu: float) -> tuple[FloatArray, FloatArray]:
    """The Matern correlation m(r) (nu 3/2 or 5/2) and a(r) = -m'(r) / r, in which the
    derivatives with respect to log length-scales and inputs are written."""
    if nu == 1.5:
        e = np.exp(-_SQRT3 * r)
        return (1.0 + _SQRT3 * r) * e, 3.0 * e
    e = np.exp(-_SQRT5 * r)
    return (1.0 + _SQRT5 * r + 5.0 / 3.0 * r * r) * e, 5.0 / 3.0 * (1.0 + _SQRT5 * r) * e


def _sq_dist(a: FloatArray, b: FloatArray, cat: NDArray[np.bool_], ls: FloatArray) -> FloatArray:
    """Squared scaled distances between rows of ``a`` and ``b`` (numeric and categorical)."""
    num = ~cat
    out = np.zeros((a.shape[0], b.shape[0]))
    if num.any():
        an, bn = a[:, num] / ls[num], b[:, num] / ls[num]
        out += (an * an).sum(1)[:, None] + (bn * bn).sum(1)[None, :] - 2.0 * an @ bn.T
        np.maximum(out, 0.0, out=out)
    if cat.any():
        w = 1.0 / ls[cat] ** 2
        for j, wj in zip(np.flatnonzero(cat), w, strict=True):
            out += wj * (a[:, j][:, None] != b[:, j][None, :])
    return out


@dataclass(frozen=True)
class CentredBowl:
    """A quadratic prior mean, lowest at the centre of the box:
    m(x) = strength * (sum_{j numeric} (x_j - 1/2)^2 - offset).

    It says that an optimum is more likely inside the search box than on its bounds, as the
    ranges of a tuning experiment are usually chosen around good values (a quadratic prior mean
    centred in the box, as in Snoek et al. 2015, DNGO). Without it, a GP whose length-scale
    along a coordinate is long extrapolates a trend to the bound, and the search pins that
    coordinate there; data still override it (a coordinate on a bound costs ``strength / 4``
    standard deviations of the objective). ``offset`` centres it on the fitted data.
    """

    strength: float
    numeric: NDArray[np.bool_]
    offset: float = 0.0

    @classmethod
    def centred_on(cls, x: FloatArray, numeric: NDArray[np.bool_], strength: float) -> CentredBowl:
        raw = cls(strength, numeric)
        return cls(strength, numeric, float(np.mean(raw(x)) / strength) if strength else 0.0)

    def __call__(self, x: FloatArray) -> FloatArray:
        d = x[:, self.numeric] - 0.5
        return np.asarray(self.strength * ((d * d).sum(1) - self.offset))

    def grad(self, x: FloatArray) -> FloatArray:
        out = np.zeros_like(x)
        out[:, self.numeric] = 2.0 * self.strength * (x[:, self.numeric] - 0.5)
        return out


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
        categorical: which feature columns hold category indices (default: none).
        nu: the Matern smoothness, 2.5 (twice differentiable) or 1.5 (once).
        scaled_by: per group, None or the feature column w whose values scale that group's
            term by w(x) w(x') (default: none scaled). The column should be in no group.
    """

    def __init__(
        self,
        groups: Sequence[Sequence[int]],
        n_features: int,
        categorical: NDArray[np.bool_] | None = None,
        *,
        nu: float = 2.5,
        scaled_by: Sequence[int | None] | None = None,
    ) -> None:
        if nu not in NUS:
            raise ValueError(f"nu must be one of {NUS}, got {nu}")
        self.nu = nu
        self.groups = [np.asarray(g, dtype=np.intp) for g in groups]
        self.n_features = n_features
        if any(len(g) == 0 for g in self.groups):
            raise ValueError("every group needs at least one feature")
        self.categorical = (
            np.zeros(n_features, dtype=bool) if categorical is None else np.asarray(categorical)
        )
        self.scaled_by = [None] * len(self.groups) if scaled_by is None else list(scaled_by)
        if len(self.scaled_by) != len(self.groups):
            raise ValueError("scaled_by needs one entry per group")
        for c in self.scaled_by:
            if c is not None and (not 0 <= c < n_features or self.categorical[c]):
                raise ValueError(f"scaled_by column {c} is not a numeric feature column")

    def _scale(self, a: FloatArray, b: FloatArray, k: int) -> FloatArray | float:
        """w(a) w(b)^T for a scaled group ``k``, else 1."""
        c = self.scaled_by[k]
        return 1.0 if c is None else np.outer(a[:, c], b[:, c])

    def prior_variance(self, xq: FloatArray, hp: Hyperparameters) -> FloatArray:
        """k(x, x) at each row of ``xq`` (without noise)."""
        out = np.zeros(xq.shape[0])
        for k, c in enumerate(self.scaled_by):
            out += hp.scales[k] * (1.0 if c is None else xq[:, c] ** 2)
        return out

    # ---- kernel ----------------------------------------------------------------------------
    def component(self, a: FloatArray, b: FloatArray, hp: Hyperparameters, k: int) -> FloatArray:
        g = self.groups[k]
        r = np.sqrt(_sq_dist(a[:, g], b[:, g], self.categorical[g], hp.lengthscales[g]))
        return np.asarray(hp.scales[k] * _matern(r, self.nu)[0] * self._scale(a, b, k))

    def kernel(self, a: FloatArray, b: FloatArray, hp: Hyperparameters) -> FloatArray:
        out = np.zeros((a.shape[0], b.shape[0]))
        for k in range(len(self.groups)):
            out += self.component(a, b, hp, k)
        return out

    # ---- priors ----------------------------------------------------------------------------
    def _prior(self) -> tuple[FloatArray, FloatArray]:
        """Means and standard deviations of the log-normal priors, in theta order."""
        # Length-scales: log-normal with median e^-0.5 ~ 0.61 on the unit-scaled features, not
        # scaled with the dimension. The dimension-scaled prior of Hvarfner et al. (2024), median
        # ~4 sqrt(d), made the GP nearly linear at these budgets (6-24 parameters, 60-100
        # trials): the acquisition's maximum sat on the boundary (60% of coordinates within 1%
        # of a bound) and gp-bo was no better than random. Chosen on the tune problems only
        # (docs/benchmarks.md): median 4 sqrt(d) -> e^0 -> e^-0.5, each better on most of them.
        mu_ls = np.full(self.n_features, _LOG_LS_PRIOR_MEDIAN)
        n_groups = len(self.groups)
        mu = np.concatenate([mu_ls, np.full(n_groups, math.log(1.0 / n_groups)), [-4.0]])
        sd = np.concatenate(
            [np.full(self.n_features, math.sqrt(3.0)), np.full(n_groups, 1.5), [1.5]]
        )
        return mu, sd

    def _bounds(self) -> list[tuple[float, float]]:
        return (
            [_LOG_LS_BOUNDS] * self.n_features
            + [_LOG_SCALE_BOUNDS] * len(self.groups)
            + [_LOG_NOISE_BOUNDS]
        )

    def _unpack(self, theta: FloatArray) -> Hyperparameters:
        f, g = self.n_features, len(self.groups)
        return Hyperparameters(
            np.exp(theta[:f]), np.exp(theta[f : f + g]), float(np.exp(theta[-1]))
        )

    def default_hyperparameters(self) -> Hyperparameters:
        """The prior's mode: what the model uses when fitting fails."""
        mu, _ = self._prior()
        lo, hi = zip(*self._bounds(), strict=True)
        return self._unpack(np.clip(mu, lo, hi))

    # ---- fitting ---------------------------------------------------------------------------
    def neg_log_posterior(
        self, theta: FloatArray, x: FloatArray, y: FloatArray
    ) -> tuple[float, FloatArray]:
        """Negative log marginal likelihood + negative log prior, and its gradient."""
        hp = self._unpack(theta)
        n = x.shape[0]
        k = np.zeros((n, n))
        pieces = []
        for gi, g in enumerate(self.groups):
            ls, cat = hp.lengthscales[g], self.categorical[g]
            r = np.sqrt(_sq_dist(x[:, g], x[:, g], cat, ls))
            m, a = _matern(r, self.nu)  # dk/dlog(l_j) = s * a * d_j^2 / l_j^2
            w = self._scale(x, x, gi)
            m, a = m * w, a * w
            k += hp.scales[gi] * m
            pieces.append((m, a))
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
        for gi, (g, (m, a)) in enumerate(zip(self.groups, pieces, strict=True)):
            s = hp.scales[gi]
            grad[f + gi] = -0.5 * s * float((w * m).sum())
            b = w * a
            rows = b.sum(1)
            total = float(rows.sum())
            for j in g:
                col = x[:, j]
                inv_l2 = 1.0 / hp.lengthscales[j] ** 2
                if self.categorical[j]:
                    # sum_ij b_ij [x_i != x_j] = sum(b) - sum over categories of the blocks
                    same = sum(float(b[np.ix_(col == c, col == c)].sum()) for c in np.unique(col))
                    quad = (total - same) * inv_l2
                else:
                    # sum_ij b_ij (x_i - x_j)^2 = 2 (sum_i x_i^2 rows_i - x^T B x)
                    quad = 2.0 * (float((col * col) @ rows) - float(col @ (b @ col))) * inv_l2
                grad[j] = -0.5 * s * quad
        grad[-1] = -0.5 * hp.noise * float(np.trace(w))
        mu, sd = self._prior()
        z = (theta - mu) / sd
        return nll + 0.5 * float(z @ z), grad + z / sd

    def fit(
        self,
        x: FloatArray,
        y: FloatArray,
        *,
        max_iter: int = 50,
        n_restarts: int = 4,
        seed: int = 0,
        prior_mean: CentredBowl | None = None,
    ) -> Hyperparameters:
        """MAP hyperparameters for standardised ``y`` on features ``x``, the GP modelling
        ``y - prior_mean(x)`` (pass the same ``prior_mean`` to :meth:`condition`).

        Starts: the prior's mode (smooth, noisy), a wiggly nearly noiseless point (a single start
        often settles in the "everything is noise" optimum on skewed objectives) and
        ``n_restarts`` seeded draws from the prior. The best starts (two up to 64 points, one
        above) are optimised and the best finite optimum wins; if none is finite, the prior's
        mode.
        """
        if prior_mean is not None:
            y = y - prior_mean(x)
        mu, sd = self._prior()
        bounds = self._bounds()
        lo, hi = np.array([b[0] for b in bounds]), np.array([b[1] for b in bounds])
        wiggly = mu.copy()
        wiggly[: self.n_features] = math.log(0.3)
        wiggly[-1] = math.log(1e-4)
        rng = np.random.default_rng(seed)
        starts = [mu, wiggly] + [mu + sd * rng.standard_normal(mu.shape) for _ in range(n_restarts)]
        # Screen every start by its objective (one evaluation each) and optimise from the best
        # two: most of the benefit of restarts for a fraction of the cost.
        screened: list[tuple[float, int, FloatArray]] = []
        for start in starts:
            theta0 = np.clip(start, lo, hi)
            value = self.neg_log_posterior(theta0, x, y)[0]
            screened.append((value if math.isfinite(value) else math.inf, len(screened), theta0))
        screened.sort(key=lambda item: (item[0], item[1]))
        best_theta, best_value = np.clip(mu, lo, hi), math.inf
        n_runs = 2 if x.shape[0] <= _TWO_RUNS_UP_TO else 1
        for _value, _i, theta0 in screened[:n_runs]:
            try:
                res = minimize(
                    self.neg_log_posterior,
                    theta0,
                    args=(x, y),
                    jac=True,
                    method="L-BFGS-B",
                    bounds=bounds,
                    options={"maxiter": max_iter},
                )
            except (np.linalg.LinAlgError, ValueError, FloatingPointError):
                continue
            if np.all(np.isfinite(res.x)) and float(res.fun) < best_value:
                best_theta, best_value = res.x, float(res.fun)
        return self._unpack(np.asarray(best_theta, dtype=np.float64))

    def condition(
        self,
        x: FloatArray,
        y: FloatArray,
        hp: Hyperparameters,
        prior_mean: CentredBowl | None = None,
    ) -> Posterior:
        """The posterior given data (hyperparameters fixed), around ``prior_mean`` (zero if
        None), with hyperparameters fitted by :meth:`fit` with the same ``prior_mean``."""
        return Posterior(self, x, y, hp, prior_mean)


class Posterior:
    """A GP conditioned on data; cheap to extend with fantasised (pending) points.

    ``y`` are the observed values; the GP models ``y - prior_mean(x)``, and every mean this
    class returns (and its gradient) includes the prior mean, except :meth:`component_mean`.
    """

    def __init__(
        self,
        model: AdditiveGP,
        x: FloatArray,
        y: FloatArray,
        hp: Hyperparameters,
        prior_mean: CentredBowl | None = None,
    ):
        self.model, self.x, self.y, self.hp = model, x, y, hp
        self.prior_mean = prior_mean
        resid = y if prior_mean is None else y - prior_mean(x)
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
        self.alpha = cho_solve((self.chol, True), resid, check_finite=False)

    def _prior(self, xq: FloatArray) -> FloatArray | float:
        return 0.0 if self.prior_mean is None else self.prior_mean(xq)

    def predict(self, xq: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Posterior mean and variance (of the latent function) at ``xq``."""
        ks = self.model.kernel(xq, self.x, self.hp)
        mean = ks @ self.alpha + self._prior(xq)
        v = solve_triangular(self.chol, ks.T, lower=True, check_finite=False)
        var = np.maximum(self.model.prior_variance(xq, self.hp) - (v * v).sum(0), 1e-12)
        return mean, var

    def mean(self, xq: FloatArray) -> FloatArray:
        """Posterior mean only (no variance: O(n) per point instead of O(n^2))."""
        return np.asarray(self.model.kernel(xq, self.x, self.hp) @ self.alpha + self._prior(xq))

    def predict_with_grad(
        self, xq: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """Mean, variance and their gradients with respect to the numeric features of ``xq``.

        Gradients of categorical columns are zero (they are searched by enumeration).
        """
        model, hp, x = self.model, self.hp, self.x
        q = xq.shape[0]
        ks = np.zeros((q, x.shape[0]))
        parts = []
        scaled_parts = []
        for k, g in enumerate(model.groups):
            ls, cat = hp.lengthscales[g], model.categorical[g]
            r = np.sqrt(_sq_dist(xq[:, g], x[:, g], cat, ls))
            m0, a = _matern(r, model.nu)
            w = model._scale(xq, x, k)
            m, a = m0 * w, a * w
            ks += hp.scales[k] * m
            # dk/dx_j = -s a(r) (x_j - X_j) / l_j^2; for a group scaled by column c,
            # dk/dxq_c = s Matern(r) w(X) and d k(xq, xq) / dxq_c = 2 s w(xq)
            parts.append((g, -hp.scales[k] * a))
            c = model.scaled_by[k]
            if c is not None:
                dks = hp.scales[k] * m0 * x[:, c][None, :]
                scaled_parts.append((c, dks, 2.0 * hp.scales[k] * xq[:, c]))
        mean = ks @ self.alpha + self._prior(xq)
        v = solve_triangular(self.chol, ks.T, lower=True, check_finite=False)
        var = np.maximum(self.model.prior_variance(xq, self.hp) - (v * v).sum(0), 1e-12)
        beta = solve_triangular(self.chol, v, lower=True, trans="T", check_finite=False).T
        dmean = np.zeros_like(xq) if self.prior_mean is None else self.prior_mean.grad(xq)
        dvar = np.zeros_like(xq)
        for g, a in parts:
            num = g[~model.categorical[g]]
            if num.size == 0:
                continue
            inv_l2 = 1.0 / hp.lengthscales[num] ** 2
            xg, xtr = xq[:, num], x[:, num]
            aa = a @ self.alpha
            dmean[:, num] += (xg * aa[:, None] - a @ (self.alpha[:, None] * xtr)) * inv_l2
            wb = beta * a
            dvar[:, num] += -2.0 * (xg * wb.sum(1)[:, None] - wb @ xtr) * inv_l2
        for c, dks, dprior in scaled_parts:
            dmean[:, c] += dks @ self.alpha
            dvar[:, c] += dprior - 2.0 * (beta * dks).sum(1)
        return mean, var, dmean, dvar

    def component_mean(self, xq: FloatArray, k: int) -> FloatArray:
        """Posterior mean of additive component ``k`` alone at ``xq`` (without the prior
        mean, which belongs to no component)."""
        return np.asarray(self.model.component(xq, self.x, self.hp, k) @ self.alpha)

    def with_fantasies(self, xp: FloatArray) -> Posterior:
        """Kriging believer: add pending points with their posterior mean as observed value.

        The mean is unchanged and the variance at (and near) pending points shrinks, so the
        acquisition steers away from them and a batch spreads out.
        """
        if xp.shape[0] == 0:
            return self
        mean = self.mean(xp)
        return Posterior(
            self.model,
            np.vstack([self.x, xp]),
            np.concatenate([self.y, mean]),
            self.hp,
            self.prior_mean,
        )
