"""Quasi-random points that avoid known ones: initial design, random strategy and fallbacks."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
from scipy.stats import qmc

from .errors import SearchSpaceExhaustedError
from .space import FloatArray, SearchSpace

_ENUMERATE_LIMIT = 50_000


def sobol_latent(dim: int, n: int, seed: int) -> FloatArray:
    """The first ``n`` points of a scrambled Sobol sequence (same seed, same sequence)."""
    m = max(1, int(np.ceil(np.log2(max(n, 2)))))
    pts = qmc.Sobol(d=dim, scramble=True, seed=np.random.default_rng(seed)).random_base2(m)
    return np.asarray(pts[:n], dtype=np.float64)


def quasi_random_fill(
    space: SearchSpace,
    n: int,
    *,
    seed: int,
    start: int,
    exclude: Collection[tuple[str, ...]],
) -> FloatArray:
    """``n`` distinct typed points of the scrambled Sobol sequence of ``seed``, none in ``exclude``.

    The scan starts at sequence position ``start`` (how many suggestions came before), so the
    initial design stays one low-discrepancy sequence across calls, and a repeated call with a
    larger ``total_request_number`` moves on even without any other state.

    Raises:
        SearchSpaceExhaustedError: a finite space has fewer than ``n`` unseen points left.
    """
    if n <= 0:
        return np.zeros((0, len(space)))
    chosen: list[FloatArray] = []
    taken = set(exclude)
    card = space.cardinality
    if card is not None and card - len(taken) < n:
        raise SearchSpaceExhaustedError(
            f"the search space has {card} distinct points and {len(taken)} are already "
            f"evaluated, pending or suggested; {n} more were requested"
        )
    length = max(start + n, 16) * 2
    for _attempt in range(6):
        typed = space.from_latent(sobol_latent(len(space), length, seed))
        order = np.r_[np.arange(start % length, length), np.arange(0, start % length)]
        for row in typed[order]:
            key = space.key(row)
            if key not in taken:
                taken.add(key)
                chosen.append(row)
                if len(chosen) == n:
                    return np.vstack(chosen)
        length *= 4
    # Small or lumpy finite spaces: enumerate what is left and draw from it.
    if card is not None and card <= _ENUMERATE_LIMIT:
        rest = [row for row in space.enumerate_all() if space.key(row) not in taken]
        rng = np.random.default_rng(seed + start)
        picks = rng.permutation(len(rest))[: n - len(chosen)]
        chosen.extend(rest[i] for i in picks)
        if len(chosen) == n:
            return np.vstack(chosen)
    # Plain uniform draws as a last resort (continuous spaces never get here in practice).
    rng = np.random.default_rng(seed + start + 1)
    for _ in range(100 * n):
        row = space.from_latent(rng.random((1, len(space))))[0]
        key = space.key(row)
        if key not in taken:
            taken.add(key)
            chosen.append(row)
            if len(chosen) == n:
                return np.vstack(chosen)
    raise SearchSpaceExhaustedError(
        f"could not find {n} unseen points in the search space after {len(taken)} known ones"
    )
