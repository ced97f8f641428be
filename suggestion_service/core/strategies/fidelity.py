"""Multi-fidelity for every algorithm: asynchronous successive halving (ASHA) around a strategy.

With ``resource_name`` set, a batch is filled in two steps (Li et al. 2020, ASHA; Falkner et al.
2018, BOHB):

1. **Promotions** first: a configuration in the top ``1/eta`` of a rung's completed trials
   that is on no higher rung yet runs again with the next rung's budget (same other assignments),
   highest rungs first, at most ``floor(n / eta)`` from a rung of ``n`` completions with the
   default ``promotion: delayed`` (asha.py's rules; never twice, since everything is rebuilt from
   the request).
2. **New configurations** fill the remaining slots, at the lowest rung's budget. They come from
   the algorithm itself, run on the *configuration space* (the space without the budget) with
   a history of configurations and values: gp-bo's GP, dcsa-bo's mix, DC's recombination of
   the top configurations, or random's Sobol sequence. Every configuration already started at
   any budget is known there, and the running ones are pending, so a new configuration is new.

The history of configurations is the model-based setting ``asha_model``:

- ``rung`` (BOHB's choice, Falkner et al. 2018): the completed trials of the highest rung that
  has enough of them;
- ``curve`` (the default) and ``budget`` (MOBSTER's, Klein et al. 2020, as a projection): one GP
  over the configuration and the budget is fitted on every completed trial, and each
  configuration's value is that GP's mean at the full budget (:class:`FullBudgetModel`). Low
  rungs then inform the model without their early ranking standing in for the final one.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass

import numpy as np

from ..asha import (
    ConfigKey,
    Ladder,
    RungState,
    TrainingSet,
    budget_training_set,
    make_ladder,
    next_promotions,
    rung_state,
    rung_training_set,
)
from ..gp.model import AdditiveGP, Posterior
from ..gp.transform import OutputWarp
from ..space import Distribution, FloatArray, SearchSpace
from ..strategy import Context, Proposal, Proposals, Strategy
from .model_based import GPSettings, kernel_nu, subset

log = logging.getLogger(__name__)


def ladder_of(ctx: Context) -> Ladder | None:
    """The experiment's ladder, or None when ``resource_name`` is unset."""
    name = getattr(ctx.settings, "resource_name", None)
    if name is None:
        return None
    return make_ladder(ctx.space, name, int(ctx.settings.eta), str(ctx.settings.promotion))


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
    train = training_set(state, full_budget_model(state, ctx))

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


def full_budget_model(state: RungState, ctx: Context) -> FullBudgetModel | None:
    """The full-budget model (``asha_model`` curve or budget) when it can be fitted, else
    None (``rung``, random, too few completions)."""
    if getattr(ctx.settings, "asha_model", "rung") == "rung":  # random has no model
        return None
    return FullBudgetModel.fit(state, ctx.settings, ctx.seed)


def training_set(state: RungState, model: FullBudgetModel | None) -> TrainingSet:
    """The history of configurations the inner strategy sees (``asha_model``)."""
    return rung_training_set(state) if model is None else model.training_set(state)


@dataclass(frozen=True)
class FullBudgetModel:
    """A GP over the configuration and the budget, read at the full budget.

    Fitted on every completed trial (at most ``max_fit_points`` for its hyperparameters and
    ``max_condition_points`` for its posterior, as gp-bo's own model), with the ``kernel``
    setting's Matern, in one of two forms (``asha_model``):

    - ``curve``: value(x, b) = f(x) + w(b) g(x), f and g ARD GPs over the configuration's
      features and w(b) = d(b)^2, d(b) = log(full / b) / log(full / lowest): 1 at the lowest rung,
      0 at the full budget. The full budget reads f alone; what low budgets add (a learning
      curve's distance to its end, large for slow learners) is g's, scaled down as the budget
      grows, the shape of FABOLAS's basis functions (Klein et al. 2017) on a log budget.
    - ``budget``: one ARD component over the configuration's features and the log budget.
    """

    ladder: Ladder
    space: SearchSpace  # the budget on a log scale
    posterior: Posterior
    kind: str = "curve"

    @classmethod
    def fit(cls, state: RungState, settings: GPSettings, seed: int) -> FullBudgetModel | None:
        """None when there are too few completions or the fit fails (the caller then uses the
        rung's completions)."""
        ladder = state.ladder
        every = budget_training_set(state)
        if not every.enough:
            return None
        kind = str(settings.asha_model)
        space = budget_log_space(ladder)
        try:
            warp = OutputWarp.fit(every.y, power=settings.output_warping == "power")
            ys = warp(every.y)
            x = _features(ladder, space, every.x, kind)
            gp = _model(ladder, space, kind, kernel_nu(settings))
            fit_idx = subset(ys, settings.max_fit_points, seed + 2)
            cond_idx = subset(ys, settings.max_condition_points, seed + 3)
            hp = gp.fit(x[fit_idx], ys[fit_idx], seed=seed)
            post = gp.condition(x[cond_idx], ys[cond_idx], hp)
        except (np.linalg.LinAlgError, ValueError, FloatingPointError) as exc:
            log.warning("ASHA budget model failed, using the rung's completions: %s", exc)
            return None
        return cls(ladder, space, post, kind)

    def at_full_budget(self, rows: FloatArray) -> FloatArray:
        """The posterior mean of each typed row with its budget set to the full budget."""
        rows = np.array(rows, dtype=np.float64, copy=True)
        rows[:, self.ladder.column] = self.ladder.budgets[-1]
        x = _features(self.ladder, self.space, rows, self.kind)
        return np.asarray(self.posterior.mean(x), dtype=np.float64)

    def training_set(self, state: RungState) -> TrainingSet:
        """Every configuration completed on some rung, represented by its trial on its highest
        completed rung and valued at the full budget."""
        chosen: dict[ConfigKey, int] = {}
        for rung in reversed(state.rungs):
            for key, entry in sorted(rung.completed.items()):
                chosen.setdefault(key, entry.index)
        index = np.array([chosen[k] for k in sorted(chosen)], dtype=np.intp)
        rows = state.x_completed[index].copy()
        rows[:, self.ladder.column] = self.ladder.budgets[-1]
        y = self.at_full_budget(rows) if len(index) else np.zeros(0)
        return TrainingSet(rung=None, x=rows, y=y, enough=True, index=index)


def curve_weight(ladder: Ladder, rows: FloatArray) -> FloatArray:
    """w(b) = d(b)^2 of each typed row, d = log(full / b) / log(full / lowest) (at least 0)."""
    lo, hi = ladder.budgets[0], ladder.budgets[-1]
    b = np.maximum(rows[:, ladder.column], np.finfo(np.float64).tiny)
    d = np.maximum(np.log(hi / b) / math.log(hi / lo), 0.0)
    return np.asarray(d * d)


def _features(ladder: Ladder, space: SearchSpace, rows: FloatArray, kind: str) -> FloatArray:
    """The model's inputs: the space's features (``budget``), or the configuration's features
    twice (for f and for g) and w(b) (``curve``)."""
    f = space.features(rows)
    if kind == "budget":
        return f
    cfg = np.delete(f, ladder.column, axis=1)
    return np.hstack([cfg, cfg, curve_weight(ladder, rows)[:, None]])


def _model(ladder: Ladder, space: SearchSpace, kind: str, nu: float) -> AdditiveGP:
    cat = space.categorical_mask
    if kind == "budget":
        return AdditiveGP([list(range(space.n_features))], space.n_features, cat, nu=nu)
    cfg_cat = np.delete(cat, ladder.column)
    q = len(cfg_cat)
    mask = np.concatenate([cfg_cat, cfg_cat, [False]])
    groups = [list(range(q)), list(range(q, 2 * q))]
    return AdditiveGP(groups, 2 * q + 1, mask, nu=nu, scaled_by=[None, 2 * q])


def budget_log_space(ladder: Ladder) -> SearchSpace:
    """The space with its budget parameter on a log scale (rungs evenly spaced for eta^k)."""
    params = list(ladder.space.parameters)
    params[ladder.column] = dataclasses.replace(
        params[ladder.column], distribution=Distribution.LOG_UNIFORM
    )
    return SearchSpace(tuple(params))


__all__ = [
    "FullBudgetModel",
    "budget_log_space",
    "curve_weight",
    "full_budget_model",
    "ladder_of",
    "propose",
    "training_set",
]
