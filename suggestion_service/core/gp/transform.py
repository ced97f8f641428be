"""Output warping: a monotone transform of the objective fitted per call.

Objectives of hyperparameter tuning are often skewed and heavy-tailed (a diverged run scores far
worse than the rest). A GP with a stationary kernel and Gaussian noise fits such data badly: the
few huge values dominate the marginal likelihood, the length-scales shrink and the model of the
good region is lost. As HEBO does, the observed values pass through a power transform whose
exponent maximises the Gaussian likelihood of the transformed values (Yeo-Johnson, scipy's MLE),
then are standardised. The map is strictly
increasing, so the order of the observations, and therefore the incumbent, is unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from .model import FloatArray

#: Exponents outside this range make the transform numerically explosive for little gain.
_LAMBDA_BOUNDS = (-3.0, 3.0)


def _yeo_johnson(x: FloatArray, lam: float) -> FloatArray:
    out = np.empty_like(x)
    pos = x >= 0
    if abs(lam) > 1e-8:
        out[pos] = ((x[pos] + 1.0) ** lam - 1.0) / lam
    else:
        out[pos] = np.log1p(x[pos])
    if abs(lam - 2.0) > 1e-8:
        out[~pos] = -(((1.0 - x[~pos]) ** (2.0 - lam)) - 1.0) / (2.0 - lam)
    else:
        out[~pos] = -np.log1p(-x[~pos])
    return out


def _yeo_johnson_inverse(z: FloatArray, lam: float) -> FloatArray:
    out = np.empty_like(z)
    pos = z >= 0
    if abs(lam) > 1e-8:
        out[pos] = (z[pos] * lam + 1.0) ** (1.0 / lam) - 1.0
    else:
        out[pos] = np.expm1(z[pos])
    if abs(lam - 2.0) > 1e-8:
        out[~pos] = 1.0 - (1.0 - (2.0 - lam) * z[~pos]) ** (1.0 / (2.0 - lam))
    else:
        out[~pos] = -np.expm1(-z[~pos])
    return out


@dataclass(frozen=True)
class OutputWarp:
    """y -> (y - min) / IQR -> Yeo-Johnson(lambda) -> standardise; strictly increasing.

    Shifting to the minimum and scaling by the interquartile range (the standard deviation if
    that is zero) makes the transform invariant to the objective's offset and units, and puts the
    bulk of the values where the power transform bends: scaling by the standard deviation
    instead lets a few outliers squeeze the bulk into the transform's nearly linear part.
    """

    shift: float
    scale: float
    lam: float
    mean: float
    std: float

    @classmethod
    def fit(cls, y: FloatArray, *, power: bool = True) -> OutputWarp:
        y = np.asarray(y, dtype=np.float64)
        shift = float(y.min()) if y.size else 0.0
        q75, q25 = np.percentile(y, [75, 25]) if y.size else (1.0, 0.0)
        scale = float(q75 - q25)
        if not scale > 1e-12:
            scale = float(np.std(y)) if y.size else 1.0
        if not scale > 1e-12:
            scale = 1.0
        z = (y - shift) / scale
        lam = 1.0  # identity
        if power and len(y) >= 3 and float(np.ptp(z)) > 0:
            try:
                lam = float(stats.yeojohnson_normmax(z))
            except (ValueError, FloatingPointError, RuntimeError):
                lam = 1.0
            if not math.isfinite(lam):
                lam = 1.0
            lam = min(max(lam, _LAMBDA_BOUNDS[0]), _LAMBDA_BOUNDS[1])
        t = _yeo_johnson(z, lam)
        mean, std = float(np.mean(t)), float(np.std(t))
        std = std if std > 1e-12 and math.isfinite(std) else 1.0
        return cls(shift, scale, lam, mean, std)

    def __call__(self, y: FloatArray) -> FloatArray:
        z = (np.asarray(y, dtype=np.float64) - self.shift) / self.scale
        return np.asarray((_yeo_johnson(z, self.lam) - self.mean) / self.std)

    def inverse(self, w: FloatArray) -> FloatArray:
        t = np.asarray(w, dtype=np.float64) * self.std + self.mean
        return np.asarray(_yeo_johnson_inverse(t, self.lam) * self.scale + self.shift)
