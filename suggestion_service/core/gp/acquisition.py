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
