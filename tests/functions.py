"""Standard test functions (minimisation) on their usual domains, from the benchmark suite."""

from __future__ import annotations

import numpy as np

from benchmarks.synthetic import branin as _branin
from benchmarks.synthetic import hartmann6

HARTMANN6_MIN = -3.32237
BRANIN_MIN = 0.397887


def branin(x1: float, x2: float) -> float:
    """Branin on [-5, 10] x [0, 15]; minimum 0.397887."""
    return _branin(np.array([x1, x2]))


__all__ = ["BRANIN_MIN", "HARTMANN6_MIN", "branin", "hartmann6"]
