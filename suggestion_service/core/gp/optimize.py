"""Maximise an acquisition over a mixed search space.

1. Raw candidates: a scrambled Sobol sample of the space, plus perturbations of good observed
   points, snapped to typed points and scored.
2. The best few distinct candidates start a local search, in the spirit of Optuna's
   ``_gp/optim_mixed.py`` (written anew here): L-BFGS-B with the acquisition's analytic gradient
   on the continuous relaxation of every numeric parameter (the GP feature, a warped position in
   [0, 1]), all starts at once; then exact snapping to steps and listed values; then a
   neighbour search, one parameter at a time, over the grid values near the current one (every
   value of a small grid, every category). Repeated until nothing improves.
3. Every scored typed point competes; the best one that is not ``excluded`` is returned, so the
   result is always a point that can be suggested.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from ..sampling import sobol_latent
from ..space import FloatArray, ParameterType, SearchSpace

#: Grids up to this size are searched exhaustively in the neighbour step.
_FULL_GRID = 32
_NEIGHBOUR_STEPS = np.array([1, 2, 4, 8, 16])


@dataclass(frozen=True)
class Objective:
    """The acquisition on the searched space.

    Attributes:
        features: typed rows of the searched space -> full GP feature rows.
        value: full feature rows -> acquisition values (higher is better).
        value_grad: full feature rows -> values and gradients with respect to the features.
        columns: the full feature column of each searched parameter.
    """

    features: Callable[[FloatArray], FloatArray]
    value: Callable[[FloatArray], FloatArray]
    value_grad: Callable[[FloatArray], tuple[FloatArray, FloatArray]]
    columns: tuple[int, ...]

    def score(self, typed: FloatArray) -> FloatArray:
        return np.asarray(self.value(self.features(typed)))


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


def _neighbours(space: SearchSpace, j: int, value: float) -> FloatArray:
    """Typed values of parameter ``j`` to try in place of ``value`` (never empty)."""
    p = space.parameters[j]
    size = p.grid_size
    if size is None:
        return np.array([value])
    if p.type in (ParameterType.CATEGORICAL, ParameterType.DISCRETE):
        if size <= _FULL_GRID:
            return np.arange(size, dtype=np.float64)
        idx = value + np.r_[0, _NEIGHBOUR_STEPS, -_NEIGHBOUR_STEPS]
        return np.unique(np.clip(idx, 0, size - 1))
    assert p.step is not None
    if size <= _FULL_GRID:
        return np.asarray(p.low + np.arange(size) * p.step, dtype=np.float64)
    k = np.round((value - p.low) / p.step) + np.r_[0, _NEIGHBOUR_STEPS, -_NEIGHBOUR_STEPS]
    return np.unique(p.low + np.clip(k, 0, size - 1) * p.step)


def _lbfgs(
    space: SearchSpace, objective: Objective, typed: FloatArray, max_iter: int
) -> FloatArray:
    """L-BFGS-B on the relaxed numeric features of every start at once; returns snapped rows."""
    relaxed = [j for j, p in enumerate(space.parameters) if not p.is_categorical]
    if not relaxed:
        return typed
    full_cols = np.asarray(objective.columns)[relaxed]
    base = objective.features(typed)
    s, r = typed.shape[0], len(relaxed)

    def fun(z: FloatArray) -> tuple[float, FloatArray]:
        feats = base.copy()
        feats[:, full_cols] = z.reshape(s, r)
        values, grad = objective.value_grad(feats)
        finite = np.isfinite(values)
        total = float(values[finite].sum())
        g = np.where(finite[:, None], grad[:, full_cols], 0.0)
        return -total, -g.ravel()

    z0 = base[:, full_cols].ravel()
    res = minimize(
        fun,
        z0,
        jac=True,
        method="L-BFGS-B",
        bounds=[(0.0, 1.0)] * z0.size,
        options={"maxiter": max_iter},
    )
    z = np.clip(np.asarray(res.x).reshape(s, r), 0.0, 1.0)
    out = typed.copy()
    for i, j in enumerate(relaxed):
        out[:, j] = space.parameters[j].from_feature(z[:, i])
    return out


def _neighbour_search(
    space: SearchSpace, objective: Objective, typed: FloatArray, values: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """One pass of coordinate-wise search over grid parameters; keeps improvements only."""
    typed, values = typed.copy(), values.copy()
    for j, p in enumerate(space.parameters):
        if p.grid_size is None:
            continue
        blocks = [_neighbours(space, j, float(typed[i, j])) for i in range(typed.shape[0])]
        owner = np.repeat(np.arange(typed.shape[0]), [b.size for b in blocks])
        rows = typed[owner].copy()
        rows[:, j] = np.concatenate(blocks)
        scores = objective.score(rows)
        scores = np.where(np.isfinite(scores), scores, -np.inf)
        for i in range(typed.shape[0]):
            mine = np.flatnonzero(owner == i)
            k = mine[int(np.argmax(scores[mine]))]
            if scores[k] > values[i]:
                typed[i], values[i] = rows[k], scores[k]
    return typed, values


def maximize(
    space: SearchSpace,
    objective: Objective,
    *,
    rng: np.random.Generator,
    seed: int,
    starts: FloatArray,
    excluded: Callable[[FloatArray], bool],
    n_raw: int = 1024,
    n_local: int = 64,
    n_starts: int = 8,
    n_rounds: int = 3,
    max_iter: int = 100,
    extra: FloatArray | None = None,
) -> tuple[FloatArray | None, float]:
    """The best typed point of ``space`` that is not ``excluded``, and its acquisition value.

    Args:
        objective: the acquisition on typed rows of ``space``, with gradients.
        seed: seeds the raw Sobol candidates.
        starts: typed rows to perturb (good observed points).
        extra: typed rows scored with the raw candidates, as they are (e.g. DC's
            recombinations); the best of all start the local searches.
        excluded: tells whether a typed row must not be returned (already known).
        n_raw: quasi-random candidates; n_starts: how many of the best start a local search;
        n_rounds: rounds of (L-BFGS-B, snap, neighbour search); max_iter: L-BFGS-B iterations.
    """
    latent = [sobol_latent(len(space), n_raw, seed)]
    if starts.shape[0]:
        latent.append(_perturb(rng, space.to_latent(starts), n_local, 0.1, space))
    typed = space.from_latent(np.vstack(latent))
    if extra is not None and extra.shape[0]:
        typed = np.vstack([typed, extra])
    values = objective.score(typed)
    pool_t, pool_v = [typed], [values]

    order = np.argsort(-np.where(np.isfinite(values), values, -np.inf), kind="stable")
    picked: list[int] = []
    seen: set[tuple[str, ...]] = set()
    for i in order:
        key = space.key(typed[i])
        if key in seen:
            continue
        seen.add(key)
        picked.append(int(i))
        if len(picked) == n_starts:
            break
    cur_t, cur_v = typed[picked], values[picked]
    for _ in range(n_rounds):
        new_t = _lbfgs(space, objective, cur_t, max_iter)
        new_v = objective.score(new_t)
        pool_t.append(new_t)
        pool_v.append(new_v)
        better = new_v > cur_v
        nxt_t = np.where(better[:, None], new_t, cur_t)
        nxt_v = np.where(better, new_v, cur_v)
        nxt_t, nxt_v = _neighbour_search(space, objective, nxt_t, nxt_v)
        pool_t.append(nxt_t)
        pool_v.append(nxt_v)
        improved = bool(np.any(nxt_v > cur_v + 1e-9 * np.maximum(1.0, np.abs(cur_v))))
        cur_t, cur_v = nxt_t, nxt_v
        if not improved:
            break

    all_t, all_v = np.vstack(pool_t), np.concatenate(pool_v)
    order = np.argsort(-np.where(np.isfinite(all_v), all_v, -np.inf), kind="stable")
    seen.clear()
    for i in order:
        if not np.isfinite(all_v[i]):
            break
        key = space.key(all_t[i])
        if key in seen:
            continue
        seen.add(key)
        if not excluded(all_t[i]):
            return all_t[i], float(all_v[i])
    return None, float("-inf")
