"""Multi-fidelity for every algorithm: asynchronous successive halving (ASHA) around a strategy.

With ``resource_name`` set, a batch is filled in two steps (Li et al. 2020, ASHA; Falkner et al.
2018, BOHB):

1. **Promotions** first: every configuration in the top ``1/eta`` of a rung's completed trials
   that is on no higher rung yet runs again with the next rung's budget (same other assignments),
   highest rungs first (asha.py's rules; never twice, since everything is rebuilt from the
   request).
2. **New configurations** fill the remaining slots, at the lowest rung's budget. They come from
   the algorithm itself, run on the *configuration space* (the space without the budget) with
   the completed trials of the highest rung that has enough of them as its history (BOHB's
   choice): gp-bo's GP, dcsa-bo's mix, DC's recombination of the top trials of that rung, or
   random's Sobol sequence. Every configuration already started at any budget is known there, and
   the running ones are pending, so a new configuration is new.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..asha import Ladder, make_ladder, next_promotions, rung_state, rung_training_set
from ..space import SearchSpace
from ..strategy import Context, Proposal, Proposals, Strategy


def ladder_of(ctx: Context) -> Ladder | None:
    """The experiment's ladder, or None when ``resource_name`` is unset."""
    name = getattr(ctx.settings, "resource_name", None)
    if name is None:
        return None
    return make_ladder(ctx.space, name, int(ctx.settings.eta))


def propose(strategy: Strategy, ctx: Context) -> Proposals:
    """The strategy's batch, with ASHA around it when the experiment names a budget."""
    ladder = ladder_of(ctx)
    if ladder is None:
        return strategy.propose(ctx)
    state = rung_state(ladder, ctx.history)
    out = Proposals()
    for promotion in next_promotions(state, limit=ctx.n):
        out.items.append(Proposal(promotion.row, "promotion", number=promotion.rung))
    left = ctx.n - len(out.items)
    if left <= 0:
        return out

    h = ctx.history
    col = ladder.column
    sub = SearchSpace(tuple(p for i, p in enumerate(ctx.space.parameters) if i != col))
    train = rung_training_set(state)

    def project(rows: np.ndarray) -> np.ndarray:
        return np.delete(rows, col, axis=1)

    pending = np.vstack([h.x_pending, *(p.row[None, :] for p in out.items)])
    started = set(state.highest)  # every configuration present on a rung, in any state
    history = dataclasses.replace(
        h,
        x_obs=project(train.x),
        y_obs=train.y,
        x_pending=project(pending),
        x_failed=project(h.x_failed),
        known=frozenset(started),
        obs_names=tuple(h.obs_names[i] for i in train.index.tolist()),
        n_warm=0,
    )
    inner = dataclasses.replace(
        ctx,
        space=sub,
        history=history,
        n=left,
        # the initial design counts configurations, not trials (promotions are not new points)
        sequence_start=len(started),
    )
    result = strategy.propose(inner)
    for p in result.items:
        row = np.insert(p.row, col, ladder.budgets[0])
        out.items.append(dataclasses.replace(p, row=row))
    out.fallbacks.extend(result.fallbacks)
    out.fit_seconds = result.fit_seconds
    out.importance = result.importance
    out.shares = result.shares
    return out


__all__ = ["ladder_of", "propose"]
