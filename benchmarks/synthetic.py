"""The synthetic multi-subnetwork suite (ours, not the paper's; see docs/dc-sa.md).

f(x) = sum_k w_k * g~_k(x_k) / sum_k w_k + lambda * I(x) [+ h(x_global)] + sigma * eps

Each g~_k is a standard test function rescaled so that its optimum is 0 and a uniform random point
scores about 1: g~(z) = (g(z) - g*) / (median_uniform(g) - g*). Groups: ``h6`` (Hartmann6 on
[0,1]^6), ``levy`` (Levy on [-10,10]^4), ``branin`` (Branin on [-5,10] x [0,15]). The medians
were estimated with 200,000 uniform draws (seed 0): -0.1028, 37.14, 35.03.

Parameters are named by the subnetwork convention ``<group>__<param>``; the interaction problems
add a global group (``lr``, ``wd``: a shifted bowl, weight 1) and I(x) = (u_h6,0 - u_levy,0)^2 on
the unit-scaled first coordinates of the first two groups.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

_H6_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(x: np.ndarray) -> float:
    return float(-(_H6_ALPHA * np.exp(-(_H6_A * (x[None, :] - _H6_P) ** 2).sum(1))).sum())


def levy(x: np.ndarray) -> float:
    w = 1 + (x - 1) / 4
    head = math.sin(math.pi * w[0]) ** 2
    mid = float(np.sum((w[:-1] - 1) ** 2 * (1 + 10 * np.sin(math.pi * w[:-1] + 1) ** 2)))
    tail = (w[-1] - 1) ** 2 * (1 + math.sin(2 * math.pi * w[-1]) ** 2)
    return head + mid + tail


def branin(x: np.ndarray) -> float:
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    x1, x2 = float(x[0]), float(x[1])
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


@dataclass(frozen=True)
class Component:
    name: str
    dim: int
    low: float
    high: float
    fn: object
    optimum: float
    median: float

    def normalized(self, z: np.ndarray) -> float:
        return (self.fn(z) - self.optimum) / (self.median - self.optimum)  # type: ignore[operator]


COMPONENTS = (
    Component("h6", 6, 0.0, 1.0, hartmann6, -3.32237, -0.1028),
    Component("levy", 4, -10.0, 10.0, levy, 0.0, 37.14),
    Component("branin", 2, -5.0, 10.0, branin, 0.397887, 35.03),  # x2 in [0, 15], see bounds()
)


def bounds(comp: Component, i: int) -> tuple[float, float]:
    if comp.name == "branin" and i == 1:
        return 0.0, 15.0
    return comp.low, comp.high


@dataclass(frozen=True)
class Problem:
    """One benchmark problem: weights, interaction strength, global group and noise."""

    name: str
    weights: tuple[float, float, float]
    interaction: float = 0.0
    with_global: bool = False
    noise: float = 0.0

    def parameters(self) -> list[tuple[str, float, float]]:
        out = []
        for comp in COMPONENTS:
            for i in range(comp.dim):
                lo, hi = bounds(comp, i)
                out.append((f"{comp.name}__x{i}", lo, hi))
        if self.with_global:
            out += [("lr", 0.0, 1.0), ("wd", 0.0, 1.0)]
        return out

    def subnetworks(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for name, _, _ in self.parameters():
            head, sep, _tail = name.partition("__")
            groups.setdefault(head if sep else "global", []).append(name)
        return groups

    def value(self, x: Mapping[str, float], rng: np.random.Generator | None = None) -> float:
        """The noiseless objective (minimise; optimum 0 without interaction), plus noise."""
        total, wsum = 0.0, sum(self.weights)
        units = {}
        for comp, w in zip(COMPONENTS, self.weights, strict=True):
            z = np.array([x[f"{comp.name}__x{i}"] for i in range(comp.dim)])
            total += w * comp.normalized(z)
            lo, hi = bounds(comp, 0)
            units[comp.name] = (z[0] - lo) / (hi - lo)
        value = total / wsum
        if self.with_global:
            value += ((x["lr"] - 0.3) ** 2 + (x["wd"] - 0.7) ** 2) * 2.0
        value += self.interaction * (units["h6"] - units["levy"]) ** 2
        if self.noise and rng is not None:
            value += self.noise * float(rng.normal())
        return float(value)


PROBLEMS = {
    "equal": Problem("equal", (1.0, 1.0, 1.0)),
    "unequal": Problem("unequal", (1.0, 0.3, 0.05)),
    "interaction-0": Problem("interaction-0", (1.0, 1.0, 1.0), 0.0, True),
    "interaction-0.1": Problem("interaction-0.1", (1.0, 1.0, 1.0), 0.1, True),
    "interaction-0.5": Problem("interaction-0.5", (1.0, 1.0, 1.0), 0.5, True),
}


def with_noise(problem: Problem, sigma: float) -> Problem:
    return Problem(
        f"{problem.name}-noise{sigma:g}",
        problem.weights,
        problem.interaction,
        problem.with_global,
        sigma,
    )
