"""Acquisition functions on a minimisation problem, all "higher is better"."""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erfcx, log_ndtr

from .model import FloatArray

ACQUISITIONS = ("ei", "pi", "ucb")
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def log_h(z: FloatArray) -> FloatArray:
    """log(phi(z) + z * Phi(z)), stable for very negative z (as in LogEI, Ament et al. 2023)."""
    z = np.asarray(z, dtype=np.float64)
    out = np.empty_like(z)
    big = z > -1.0
    zb = z[big]
    from scipy.special import ndtr

    out[big] = np.log(np.exp(-0.5 * zb * zb - _LOG_SQRT_2PI) + zb * ndtr(zb))
    zs = z[~big]
    # phi(z) + z Phi(z) = phi(z) * (1 - |z| * sqrt(pi/2) * erfcx(|z| / sqrt 2))
    w = 1.0 - np.abs(zs) * math.sqrt(math.pi / 2) * erfcx(np.abs(zs) / math.sqrt(2))
    tiny = w <= 1e-12
    w_safe = np.where(tiny, 1.0, w)
    asym = -2.0 * np.log(np.abs(zs) + 1e-300)  # phi(z)/z^2 tail when cancellation wins
    out[~big] = -0.5 * zs * zs - _LOG_SQRT_2PI + np.where(tiny, asym, np.log(w_safe))
    return out


def acquisition(
    kind: str,
    mean: FloatArray,
    var: FloatArray,
    best: float,
    *,
    xi: float = 0.0,
    beta: float = 2.0,
) -> FloatArray:
    """Score candidates for minimisation.

    Args:
        kind: ``ei`` (log expected improvement), ``pi`` (log probability of improvement) or
            ``ucb`` (negated lower confidence bound, mean - sqrt(beta) * sd).
        mean, var: posterior mean and variance (standardised units).
        best: the incumbent (lowest observed standardised value).
        xi: improvement margin for ei and pi.
        beta: exploration weight for ucb.
    """
    sd = np.sqrt(var)
    if kind == "ucb":
        return np.asarray(-(mean - math.sqrt(beta) * sd))
    z = (best - xi - mean) / sd
    if kind == "pi":
        return np.asarray(log_ndtr(z))
    if kind == "ei":
        return np.asarray(np.log(sd) + log_h(z))
    raise ValueError(f"unknown acquisition {kind!r}")


def acquisition_grad(
    kind: str,
    mean: FloatArray,
    var: FloatArray,
    best: float,
    *,
    xi: float = 0.0,
    beta: float = 2.0,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The acquisition and its partial derivatives with respect to the mean and the variance."""
    sd = np.sqrt(var)
    if kind == "ucb":
        root = math.sqrt(beta)
        return np.asarray(-(mean - root * sd)), -np.ones_like(mean), root / (2.0 * sd)
    z = (best - xi - mean) / sd
    if kind == "pi":
        lp = log_ndtr(z)
        ratio = np.exp(-0.5 * z * z - _LOG_SQRT_2PI - lp)  # phi(z) / Phi(z)
        return np.asarray(lp), -ratio / sd, -ratio * z / sd / (2.0 * sd)
    if kind == "ei":
        lh = log_h(z)
        ratio = np.exp(log_ndtr(z) - lh)  # Phi(z) / h(z), h(z) = phi(z) + z Phi(z)
        d_sd = 1.0 / sd - ratio * z / sd
        return np.asarray(np.log(sd) + lh), -ratio / sd, d_sd / (2.0 * sd)
    raise ValueError(f"unknown acquisition {kind!r}")


def mace_beta(n_params: int, n_obs: int, *, upsilon: float = 0.5, delta: float = 0.01) -> float:
    """The squared UCB weight of HEBO's MACE (GP-UCB's schedule, Srinivas et al. 2010), which
    grows with the number of observations."""
    t = max(1, n_obs)
    return upsilon * 2.0 * ((2.0 + n_params / 2.0) * math.log(t) + math.log(math.pi**2 / delta))


_MACE_KINDS = ("ei", "pi", "ucb")
_MACE_RHO = 0.05


class Mace:
    """One random point of the Pareto front of log EI, log PI and UCB (HEBO's MACE ensemble,
    Cowen-Rivers et al. 2022), reached by maximising an augmented Chebyshev scalarisation with
    random weights instead of an evolutionary multi-objective search.

    Each acquisition is scaled so that the median of a reference set is 0 and its maximum is 1;
    the score is ``min_i w_i (a_i - 1) + rho * sum_i w_i a_i``, whose maximiser is Pareto optimal.
    """

    def __init__(
        self, weights: FloatArray, lo: FloatArray, span: FloatArray, xi: float, beta: float
    ):
        self.weights, self.lo, self.span, self.xi, self.beta = weights, lo, span, xi, beta

    @classmethod
    def calibrate(
        cls,
        mean: FloatArray,
        var: FloatArray,
        best: float,
        rng: np.random.Generator,
        *,
        xi: float,
        beta: float,
    ) -> Mace:
        """Scales from the posterior on a reference set; weights drawn uniformly on the simplex."""
        raw = np.stack([acquisition(k, mean, var, best, xi=xi, beta=beta) for k in _MACE_KINDS])
        raw = np.where(np.isfinite(raw), raw, np.nan)
        lo = np.nanmedian(raw, axis=1)
        span = np.nanmax(raw, axis=1) - lo
        span = np.where(np.isfinite(span) & (span > 1e-12), span, 1.0)
        lo = np.where(np.isfinite(lo), lo, 0.0)
        return cls(rng.dirichlet(np.ones(3)), lo, span, xi, beta)

    def _parts(
        self, mean: FloatArray, var: FloatArray, best: float
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        parts = [
            acquisition_grad(k, mean, var, best, xi=self.xi, beta=self.beta) for k in _MACE_KINDS
        ]
        scale = (self.weights / self.span)[:, None]
        a = (np.stack([p[0] for p in parts]) - self.lo[:, None]) / self.span[:, None]
        dm = np.stack([p[1] for p in parts]) * scale
        dv = np.stack([p[2] for p in parts]) * scale
        return a, dm, dv

    def value(self, mean: FloatArray, var: FloatArray, best: float) -> FloatArray:
        a, _, _ = self._parts(mean, var, best)
        w = self.weights[:, None]
        return np.asarray(np.min(w * (a - 1.0), axis=0) + _MACE_RHO * np.sum(w * a, axis=0))

    def value_grad(
        self, mean: FloatArray, var: FloatArray, best: float
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        a, dm, dv = self._parts(mean, var, best)
        w = self.weights[:, None]
        terms = w * (a - 1.0)
        j = np.argmin(terms, axis=0)
        cols = np.arange(a.shape[1])
        value = terms[j, cols] + _MACE_RHO * np.sum(w * a, axis=0)
        return (
            np.asarray(value),
            dm[j, cols] + _MACE_RHO * dm.sum(0),
            dv[j, cols] + _MACE_RHO * dv.sum(0),
        )
