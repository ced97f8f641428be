"""Maximise an acquisition over a mixed search space by sampling and local perturbation.

Works in the latent unit cube (one coordinate per parameter), so ints, steps, discrete lists and
categories are handled uniformly: every candidate is snapped to a typed point before it is scored,
and the scores are those of points that can actually be suggested.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..sampling import sobol_latent
from ..space import FloatArray, SearchSpace

Scorer = Callable[[FloatArray], FloatArray]


def _perturb(
    rng: np.random.Generator, base: FloatArray, n: int, sigma: float, space: SearchSpace
) -> FloatArray:
    """Gaussian steps on a random subset of coordinates (at least one) of latent points."""
    p = base.shape[1]
    reps = np.repeat(base, n, axis=0)
    mask = rng.random(reps.shape) < max(1.0 / p, min(1.0, 3.0 / p))
    none = ~mask.any(1)
    mask[none, rng.integers(0, p, none.sum())] = True
    step = rng.normal(0.0, sigma, reps.shape)
    cat = np.array([q.is_categorical for q in space.parameters])
    # categories: a masked coordinate jumps to a uniformly random category
    jump = rng.random(reps.shape)
    out = np.where(mask, reps + step, reps)
    out = np.where(mask & cat[None, :], jump, out)
    return np.asarray(np.clip(out, 0.0, 1.0 - 1e-12))


def maximize(
    space: SearchSpace,
    score: Scorer,
    *,
    rng: np.random.Generator,
    seed: int,
    starts: FloatArray,
    excluded: Callable[[FloatArray], bool],
    n_raw: int = 1024,
    n_local: int = 64,
    top_k: int = 6,
) -> tuple[FloatArray | None, float]:
    """The best typed point that is not ``excluded`` and its score.

    Args:
        score: typed rows -> acquisition values (higher is better).
        seed: seeds the raw Sobol candidates.
        starts: typed rows to search around (good observed points).
        excluded: tells whether a typed row must not be returned (already known).
    """
    latent = [sobol_latent(len(space), n_raw, seed)]
    if starts.shape[0]:
        latent.append(_perturb(rng, space.to_latent(starts), n_local, 0.1, space))
    u = np.vstack(latent)
    typed = space.from_latent(u)
    values = score(typed)
    for sigma in (0.05, 0.015, 0.004):
        top = np.argsort(-values)[:top_k]
        u_new = _perturb(rng, u[top], n_local, sigma, space)
        t_new = space.from_latent(u_new)
        v_new = score(t_new)
        u, typed, values = np.vstack([u, u_new]), np.vstack([typed, t_new]), np.r_[values, v_new]
    order = np.argsort(-values, kind="stable")
    seen: set[tuple[str, ...]] = set()
    for i in order:
        if not np.isfinite(values[i]):
            break
        key = space.key(typed[i])
        if key in seen:
            continue
        seen.add(key)
        if not excluded(typed[i]):
            return typed[i], float(values[i])
    return None, float("-inf")
