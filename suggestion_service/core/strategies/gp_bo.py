"""``gp-bo``: Gaussian-process Bayesian optimisation over the full space.

Initial design: the first ``n_initial_points`` suggestions come from a scrambled Sobol sequence.
Then a Matern-5/2 ARD GP (MAP hyperparameters) is fitted on the completed trials and each slot of
the batch maximises the acquisition with every pending point (running trials, earlier suggestions
and the batch's own earlier slots) fantasised at its posterior mean (kriging believer), so a batch
spreads out instead of piling onto one optimum. The model is built so that subclasses can make it
additive by parameter group (issue 3's DC and SA strategies).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..gp.acquisition import ACQUISITIONS, acquisition, acquisition_grad
from ..gp.model import AdditiveGP, IntArray, Posterior
from ..gp.optimize import Objective as AcqObjective
from ..gp.optimize import maximize
from ..gp.transform import OutputWarp
from ..sampling import quasi_random_fill
from ..settings import (
    SettingsTable,
    at_least,
    choice_setting,
    float_setting,
    greater_than,
    int_setting,
)
from ..space import FloatArray, SearchSpace
from ..strategy import Context, Proposal, Proposals, Strategy, common_settings
from ..warm_start import WARM_START_SETTING, check_warm_start, warm_start_setting

log = logging.getLogger(__name__)


#: The derived initial design size, as the docs state it (chosen on the tune problems).
INITIAL_RULE = "the number of parameters + 1, at least 5 and at most 20"


def initial_design_size(space: SearchSpace, settings: Mapping[str, Any]) -> int:
    """``n_initial_points``, or the derived size when unset."""
    value = settings["n_initial_points"]
    if value is not None:
        return int(value)
    return max(5, min(20, len(space) + 1))


def gp_settings() -> tuple[Any, ...]:
    """The settings of gp-bo, shared by the strategies built on it."""
    return (
        *common_settings(),
        warm_start_setting(),
        int_setting(
            "n_initial_points",
            None,
            "Quasi-random (Sobol) suggestions before the GP takes over; unset means "
            f"{INITIAL_RULE}.",
            minimum=1,
            maximum=100_000,
        ),
        choice_setting(
            "acquisition",
            "ei",
            "Acquisition: ei (log expected improvement), pi (log probability of improvement) "
            "or ucb (lower confidence bound on the minimised objective).",
            ACQUISITIONS,
        ),
        float_setting(
            "xi",
            0.0,
            "Improvement margin of ei and pi, in standard deviations of the observed objective.",
            at_least(0.0),
            maximum=10.0,
        ),
        float_setting(
            "ucb_beta",
            2.0,
            "Exploration weight of ucb (mean - sqrt(beta) * sd).",
            greater_than(0.0),
            maximum=100.0,
        ),
        int_setting(
            "n_candidates",
            1024,
            "Quasi-random candidates scored per slot before local refinement.",
            minimum=16,
            maximum=16_384,
        ),
        choice_setting(
            "output_warping",
            "power",
            "Monotone transform of the objective before the GP: power (Yeo-Johnson fitted per "
            "call, for skewed and heavy-tailed objectives) or none (standardise only).",
            ("power", "none"),
        ),
        choice_setting(
            "incumbent",
            "mean",
            "The value to improve on: mean (lowest posterior mean among observed points, robust "
            "to noise) or observed (lowest observed value).",
            ("mean", "observed"),
        ),
        int_setting(
            "max_fit_points",
            128,
            "At most this many trials (the best half and a "
            "seeded sample of the rest) fit the hyperparameters.",
            minimum=8,
            maximum=1024,
        ),
        int_setting(
            "max_condition_points",
            512,
            "At most this many trials (the best half and a seeded sample of the rest) "
            "condition the posterior; bounds the work of a call on long histories.",
            minimum=8,
            maximum=4096,
        ),
    )


def _subset(ys: FloatArray, limit: int, seed: int) -> IntArray:
    """Indices of at most ``limit`` observations: the best half and a seeded sample of the rest
    (all of them when there are no more than ``limit``), in their original order."""
    if len(ys) <= limit:
        return np.arange(len(ys))
    order = np.argsort(ys, kind="stable")
    best = order[: limit // 2]
    rest = np.random.default_rng(seed).permutation(order[limit // 2 :])
    return np.sort(np.r_[best, rest[: limit - limit // 2]])


@dataclass(frozen=True)
class Fit:
    """A fitted surrogate in standardised units."""

    posterior: Posterior
    y_best: float
    warp: OutputWarp


class GPBO(Strategy):
    name = "gp-bo"
    summary = "Gaussian-process BO over the full space with batch-aware log-EI."
    settings = SettingsTable(gp_settings())

    def check(self, space: SearchSpace, settings: Mapping[str, Any]) -> None:
        check_warm_start(space, settings[WARM_START_SETTING])

    # ---- model ---------------------------------------------------------------------------
    def feature_groups(self, space: SearchSpace, settings: Mapping[str, Any]) -> list[list[int]]:
        """Additive components as feature-column lists; plain BO has one group with all."""
        return [list(range(space.n_features))]

    def fit(self, ctx: Context, groups: Sequence[Sequence[int]]) -> Fit:
        """Fit hyperparameters on at most ``max_fit_points`` trials and condition the posterior
        on at most ``max_condition_points`` (both: the best half and a seeded sample of the
        rest), so the work of a call is bounded whatever the history's size."""
        h = ctx.history
        y = h.y_obs
        warp = OutputWarp.fit(y, power=ctx.settings["output_warping"] == "power")
        ys = warp(y)
        x = ctx.space.features(h.x_obs)
        model = AdditiveGP(groups, ctx.space.n_features, ctx.space.categorical_mask)
        fit_idx = _subset(ys, int(ctx.settings["max_fit_points"]), ctx.seed)
        try:
            hp = model.fit(x[fit_idx], ys[fit_idx], seed=ctx.seed)
            cond_idx = _subset(ys, int(ctx.settings["max_condition_points"]), ctx.seed + 1)
            post = model.condition(x[cond_idx], ys[cond_idx], hp)
        except np.linalg.LinAlgError:
            # the fitted hyperparameters defeat the factorisation: the prior's mode, which is
            # smooth and noisy enough to factorise, keeps the batch model-based
            log.warning("GP conditioning failed; using default hyperparameters")
            cond_idx = _subset(ys, int(ctx.settings["max_condition_points"]), ctx.seed + 1)
            post = model.condition(x[cond_idx], ys[cond_idx], model.default_hyperparameters())
        if ctx.settings["incumbent"] == "mean":
            y_best = float(post.mean(x[cond_idx]).min())
        else:
            y_best = float(ys.min())
        return Fit(post, y_best, warp)

    # ---- one slot ------------------------------------------------------------------------
    def best_point(
        self,
        ctx: Context,
        fit: Fit,
        *,
        pending: FloatArray,
        exclude: Collection[tuple[str, ...]],
        slot: int,
        space: SearchSpace | None = None,
        embed: Any = None,
    ) -> FloatArray | None:
        """Maximise the acquisition over ``space`` (default: the whole space).

        ``embed`` maps typed rows of a sub-space to full typed rows (used by SA to search one
        group with the others fixed); ``pending`` holds full typed rows.
        """
        full = ctx.space
        post = fit.posterior.with_fantasies(full.features(pending))
        kind, xi, beta = ctx.settings["acquisition"], ctx.settings["xi"], ctx.settings["ucb_beta"]
        best = fit.y_best

        def value(feats: FloatArray) -> FloatArray:
            m, v = post.predict(feats)
            return acquisition(kind, m, v, best, xi=xi, beta=beta)

        def value_grad(feats: FloatArray) -> tuple[FloatArray, FloatArray]:
            m, v, dm, dv = post.predict_with_grad(feats)
            a, da_dm, da_dv = acquisition_grad(kind, m, v, best, xi=xi, beta=beta)
            return a, da_dm[:, None] * dm + da_dv[:, None] * dv

        search = space if space is not None else full
        if embed is not None:
            assert space is not None
            columns = tuple(full.index(n) for n in space.names)

            def features(typed: FloatArray) -> FloatArray:
                return full.features(embed(typed))

            def excluded(row: FloatArray) -> bool:
                return full.key(embed(row[None, :])[0]) in exclude

        else:
            columns = tuple(range(len(full)))
            features = full.features

            def excluded(row: FloatArray) -> bool:
                return full.key(row) in exclude

        h = ctx.history
        top = np.argsort(h.y_obs, kind="stable")[:5]
        starts = h.x_obs[top]
        if embed is not None:
            starts = starts[:, list(columns)]
        seed = zlib.crc32(f"{ctx.seed}:{ctx.sequence_start}:{slot}".encode())
        row, _ = maximize(
            search,
            AcqObjective(features, value, value_grad, columns),
            rng=ctx.rng,
            seed=seed,
            starts=starts,
            excluded=excluded,
            n_raw=int(ctx.settings["n_candidates"]),
        )
        if row is None:
            return None
        return np.asarray(embed(row[None, :])[0]) if embed is not None else row

    # ---- the batch -----------------------------------------------------------------------
    def n_initial(self, ctx: Context) -> int:
        """How many slots of this batch belong to the initial design."""
        if ctx.history.n_obs < 2:
            return ctx.n
        left = (
            initial_design_size(ctx.space, ctx.settings) - ctx.sequence_start - ctx.history.n_warm
        )
        return max(0, min(ctx.n, left))

    def propose(self, ctx: Context) -> Proposals:
        out = Proposals()
        taken: set[tuple[str, ...]] = set(ctx.history.known)
        k0 = self.n_initial(ctx)
        if k0:
            rows = quasi_random_fill(
                ctx.space, k0, seed=ctx.seed, start=ctx.sequence_start, exclude=taken
            )
            for row in rows:
                out.items.append(Proposal(row, "initial"))
                taken.add(ctx.space.key(row))
        if len(out.items) == ctx.n:
            return out
        self.propose_model_based(ctx, out, taken)
        return out

    def propose_model_based(
        self, ctx: Context, out: Proposals, taken: set[tuple[str, ...]]
    ) -> None:
        """Fill the rest of ``out`` with model-based points, within the deadline.

        Subclasses change what happens through :meth:`plan`; the deadline, fit-failure and
        no-candidate fallbacks stay here.
        """
        if ctx.time_left() <= 0:
            return self.fill_fallback(ctx, out, taken, "deadline")
        fit = self.fit_or_none(ctx, out)
        if fit is None:
            return self.fill_fallback(ctx, out, taken, "model_error")
        next_slot = self.plan(ctx, fit, out, taken)
        slot_cost = 0.0
        while len(out.items) < ctx.n:
            if ctx.time_left() < 1.5 * slot_cost:
                return self.fill_fallback(ctx, out, taken, "deadline")
            t0 = ctx.clock()
            proposal = next_slot()
            slot_cost = max(slot_cost, ctx.clock() - t0)
            if proposal is None:
                return self.fill_fallback(ctx, out, taken, "no_candidate")
            out.items.append(proposal)
            taken.add(ctx.space.key(proposal.row))
        return None

    def plan(
        self, ctx: Context, fit: Fit, out: Proposals, taken: set[tuple[str, ...]]
    ) -> Callable[[], Proposal | None]:
        """Work done once per batch; returns the proposer of one slot (full-space BO here)."""
        return lambda: self.bo_slot(ctx, fit, out, taken)

    def bo_slot(
        self, ctx: Context, fit: Fit, out: Proposals, taken: set[tuple[str, ...]]
    ) -> Proposal | None:
        row = self.best_point(
            ctx, fit, pending=self.pending_rows(ctx, out), exclude=taken, slot=len(out.items)
        )
        return None if row is None else Proposal(row, "bo")

    def fit_or_none(self, ctx: Context, out: Proposals) -> Fit | None:
        """The fitted surrogate, or None (logged) if the data defeat it."""
        t0 = ctx.clock()
        try:
            fit = self.fit(ctx, self.feature_groups(ctx.space, ctx.settings))
        except (np.linalg.LinAlgError, ValueError, FloatingPointError) as exc:
            log.warning("GP fit failed, falling back to quasi-random points: %s", exc)
            return None
        finally:
            out.fit_seconds = ctx.clock() - t0
        return fit

    @staticmethod
    def pending_rows(ctx: Context, out: Proposals) -> FloatArray:
        rows = [ctx.history.x_pending, *(p.row[None, :] for p in out.items)]
        return np.vstack(rows)

    @staticmethod
    def fill_fallback(
        ctx: Context, out: Proposals, taken: set[tuple[str, ...]], reason: str
    ) -> None:
        """Fill the remaining slots quasi-randomly and record why."""
        k = ctx.n - len(out.items)
        rows = quasi_random_fill(
            ctx.space,
            k,
            seed=ctx.seed + 7919,
            start=ctx.sequence_start + len(out.items),
            exclude=taken,
        )
        for row in rows:
            out.items.append(Proposal(row, "fallback"))
            out.fallbacks.append(reason)
            taken.add(ctx.space.key(row))
