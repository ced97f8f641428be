"""Quasi-random points that avoid known ones: initial design, random strategy and fallbacks."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
from scipy.stats import qmc

from .errors import SearchSpaceExhaustedError
from .space import FloatArray, SearchSpace

_ENUMERATE_LIMIT = 50_000
#: Positions of scipy's scrambled Sobol sequence (30 bits); a later position wraps around.
SOBOL_PERIOD = 2**30
#: Most sequence positions one fill scans before it enumerates or draws uniformly. The first
#: pass (positions start .. 2 (start + n), then 0 .. start) fits below it for starts up to
#: about 130,000 (Katib's requests: the converter accepts totals up to 100,000), so only a
#: nearly exhausted lumpy space stops short of where an unbounded scan would have gone.
SCAN_LIMIT = 2**18
#: Below this position the engine is fast-forwarded point by point; above, it jumps.
_JUMP_FROM = 2**16
_FIRST_CHUNK = 64
_MAX_CHUNK = 4096


def sobol_latent(dim: int, n: int, seed: int) -> FloatArray:
    """The first ``n`` points of a scrambled Sobol sequence (same seed, same sequence)."""
    m = max(1, int(np.ceil(np.log2(max(n, 2)))))
    pts = _sobol(dim, seed).random_base2(m)
    return np.asarray(pts[:n], dtype=np.float64)


def _sobol(dim: int, seed: int) -> qmc.Sobol:
    return qmc.Sobol(d=dim, scramble=True, seed=np.random.default_rng(seed))


def _advance(engine: qmc.Sobol, position: int) -> None:
    """Move a fresh (or reset) engine so that its next point is the one at ``position``, in
    memory O(dim) and time O(dim * 30) (scipy's ``fast_forward`` takes O(dim * position)).

    Point q of the Sobol sequence (Gray-code order, as scipy generates it) is the scrambled
    shift XOR the direction numbers of the bits set in gray(q) = q ^ (q >> 1); the engine
    holds the last point drawn, so the next one is ``position``. Uses scipy's engine state
    (``_sv``, ``_shift``, ``_quasi``); tests check it against ``fast_forward``.
    """
    if position < _JUMP_FROM or not all(hasattr(engine, a) for a in ("_sv", "_shift", "_quasi")):
        if position:
            engine.fast_forward(position)
        return
    q = position - 1
    gray = q ^ (q >> 1)
    state = engine._shift.copy()
    for bit in range(engine._sv.shape[1]):
        if gray >> bit & 1:
            state ^= engine._sv[:, bit]
    engine._quasi[:] = state
    engine.num_generated = position


def sobol_positions(start: int, n: int) -> list[tuple[int, int]]:
    """Ranges of sequence positions ``[lo, hi)`` in the order a fill scans them: from
    ``start`` to twice ``start + n`` (at least 32), then from 0 to ``start``, then ranges four
    times longer each (at most five more), all within one period of the sequence."""
    s = start % SOBOL_PERIOD
    first = max(s + n, 16) * 2
    out = [(s, min(first, SOBOL_PERIOD)), (0, s)]
    lo = first
    for _ in range(5):
        if lo >= SOBOL_PERIOD:
            break
        out.append((lo, min(lo * 4, SOBOL_PERIOD)))
        lo *= 4
    return [(a, b) for a, b in out if a < b]


def _scan(
    space: SearchSpace,
    n: int,
    *,
    seed: int,
    start: int,
    taken: set[tuple[str, ...]],
    chosen: list[FloatArray],
) -> None:
    """Add to ``chosen`` (and ``taken``) the points of the Sobol sequence of ``seed`` that are
    not in ``taken``, in scan order, until there are ``n`` or ``SCAN_LIMIT`` positions are
    spent. Draws a chunk at a time, so memory does not grow with ``start``."""
    engine = _sobol(len(space), seed)
    budget = SCAN_LIMIT
    for lo, hi in sobol_positions(start, n):
        engine.reset()
        _advance(engine, lo)
        pos, chunk = lo, _FIRST_CHUNK
        while pos < hi and budget > 0:
            k = min(chunk, hi - pos, budget)
            # a fresh engine's first draw is a power of two (scipy warns otherwise)
            latent = engine.random(chunk)[:k] if engine.num_generated == 0 else engine.random(k)
            typed = space.from_latent(latent)
            for row, key in zip(typed, space.keys(typed), strict=True):
                if key not in taken:
                    taken.add(key)
                    chosen.append(row)
                    if len(chosen) == n:
                        return
            pos += k
            budget -= k
            chunk = min(chunk * 2, _MAX_CHUNK)


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
    _scan(space, n, seed=seed, start=start, taken=taken, chosen=chosen)
    if len(chosen) == n:
        return np.vstack(chosen)
    # Small or lumpy finite spaces: enumerate what is left and draw from it.
    if card is not None and card <= _ENUMERATE_LIMIT:
        grid = space.enumerate_all()
        rest = [row for row, key in zip(grid, space.keys(grid), strict=True) if key not in taken]
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
