"""The one batch loop of every model-based strategy, and the surrogate it fits.

A call goes: the initial design (scrambled Sobol) while it lasts; then **one** fit of the
surrogate; then slot after slot, each filled by a *slot policy* (full-space BO, SA's move in one
group, DC's recombination, ...) that the strategy's :meth:`ModelBased.plan` picks. Every slot
sees running trials and the batch's earlier slots as pending points (kriging believer: observed
at their posterior mean, which also lowers the incumbent when one is expected to beat it), so a
batch spreads out.
A policy that finds nothing new hands its slot to full-space BO; when BO finds nothing either,
or the fit fails, the remaining slots are filled quasi-randomly and the reason is recorded.

The work of a call is bounded by settings (``max_fit_points``, ``max_condition_points``,
``n_candidates``, ``max_model_slots``), so the same request gives the same answer on any
machine. The wall clock (``time_budget_seconds`` and the call's deadline) is only a safety net:
when it bites, the slots left are quasi-random, and the fallback is logged and counted.
"""

from __future__ import annotations

import itertools
import logging
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..gp.acquisition import ACQUISITIONS, acquisition, acquisition_grad
from ..gp.model import AdditiveGP, CentredBowl, IntArray, Posterior
from ..gp.optimize import Objective as AcqObjective
from ..gp.optimize import maximize
from ..gp.transform import OutputWarp
from ..sampling import quasi_random_fill
from ..settings import (
    at_least,
    choice_setting,
    float_setting,
    greater_than,
    int_setting,
    spec,
)
from ..space import FloatArray, SearchSpace
from ..strategy import CommonSettings, Context, Proposal, Proposals, Strategy
from ..warm_start import WARM_START_SETTING, WarmTrial, check_warm_start, warm_start_setting

log = logging.getLogger(__name__)

#: The derived initial design size, as the docs state it (chosen on the tune problems).
INITIAL_RULE = "the number of parameters + 1, at least 5 and at most 20"

Key = tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class GPSettings(CommonSettings):
    """The settings of gp-bo, shared by every model-based strategy."""

    warm_start: tuple[WarmTrial, ...] | None = spec(warm_start_setting())
    n_initial_points: int | None = spec(
        int_setting(
            "n_initial_points",
            None,
            "Quasi-random (Sobol) suggestions before the GP takes over; unset means "
            f"{INITIAL_RULE}.",
            minimum=1,
            maximum=100_000,
        )
    )
    acquisition: str = spec(
        choice_setting(
            "acquisition",
            "ei",
            "Acquisition: ei (log expected improvement), pi (log probability of improvement) "
            "or ucb (lower confidence bound on the minimised objective).",
            ACQUISITIONS,
        )
    )
    xi: float = spec(
        float_setting(
            "xi",
            0.0,
            "Improvement margin of ei and pi, in standard deviations of the observed objective.",
            at_least(0.0),
            maximum=10.0,
        )
    )
    ucb_beta: float = spec(
        float_setting(
            "ucb_beta",
            2.0,
            "Exploration weight of ucb (mean - sqrt(beta) * sd).",
            greater_than(0.0),
            maximum=100.0,
        )
    )
    n_candidates: int = spec(
        int_setting(
            "n_candidates",
            1024,
            "Quasi-random candidates scored per slot before local refinement.",
            minimum=16,
            maximum=16_384,
        )
    )
    output_warping: str = spec(
        choice_setting(
            "output_warping",
            "power",
            "Monotone transform of the objective before the GP: power (Yeo-Johnson fitted per "
            "call, for skewed and heavy-tailed objectives) or none (standardise only).",
            ("power", "none"),
        )
    )
    kernel: str | None = spec(
        choice_setting(
            "kernel",
            None,
            "The GP's kernel: matern32 (Matern 3/2, once differentiable, as HEBO's GP) or "
            "matern52 (Matern 5/2, twice: smoother). Unset means matern32, or matern52 with "
            "resource_name (learning curves are smooth in the budget); each default was chosen "
            "on its tune problems (docs/benchmarks.md).",
            ("matern52", "matern32"),
        )
    )
    centre_prior: float = spec(
        float_setting(
            "centre_prior",
            0.5,
            "Strength of the GP's quadratic prior mean, lowest at the centre of the search box "
            "(standard deviations of the objective per squared unit distance, summed over numeric "
            "parameters): an optimum is more likely inside the ranges than on their bounds; data "
            "override it. 0 is the usual constant mean. Chosen on the tune problems.",
            at_least(0.0),
            maximum=100.0,
        )
    )
    incumbent: str = spec(
        choice_setting(
            "incumbent",
            "mean",
            "The value to improve on: mean (lowest posterior mean among observed points, robust "
            "to noise) or observed (lowest observed value).",
            ("mean", "observed"),
        )
    )
    max_fit_points: int = spec(
        int_setting(
            "max_fit_points",
            128,
            "At most this many trials (the best half and a "
            "seeded sample of the rest) fit the hyperparameters.",
            minimum=8,
            maximum=1024,
        )
    )
    max_condition_points: int = spec(
        int_setting(
            "max_condition_points",
            512,
            "At most this many trials (the best half and a seeded sample of the rest) "
            "condition the posterior; bounds the work of a call on long histories.",
            minimum=8,
            maximum=4096,
        )
    )
    asha_model: str = spec(
        choice_setting(
            "asha_model",
            "curve",
            "With resource_name: the history new configurations are proposed from. curve: one "
            "GP, value = f(config) + w(budget) * g(config) with w falling to 0 at the full "
            "budget, fitted on every completion, gives each configuration's value f at the full "
            "budget; budget: the same from one GP over the configuration and the log budget; "
            "rung (BOHB): the completions of the highest rung that has enough of them.",
            ("curve", "budget", "rung"),
        )
    )
    max_model_slots: int = spec(
        int_setting(
            "max_model_slots",
            64,
            "At most this many slots of one call are model-based; the rest of a larger batch "
            "is quasi-random (a fixed amount of work per call, the same on any machine).",
            minimum=1,
            maximum=1000,
        )
    )


def kernel_nu(settings: GPSettings) -> float:
    """The Matern smoothness of the ``kernel`` setting (unset: 3/2, or 5/2 with ASHA)."""
    kernel = settings.kernel
    if kernel is None:
        kernel = "matern32" if settings.resource_name is None else "matern52"
    return 1.5 if kernel == "matern32" else 2.5


def initial_design_size(space: SearchSpace, settings: GPSettings) -> int:
    """``n_initial_points``, or the derived size when unset."""
    if settings.n_initial_points is not None:
        return int(settings.n_initial_points)
    return max(5, min(20, len(space) + 1))


def subset(ys: FloatArray, limit: int, seed: int) -> IntArray:
    """Indices of at most ``limit`` observations: the best half and a seeded sample of the rest
    (all of them when there are no more than ``limit``), in their original order."""
    if len(ys) <= limit:
        return np.arange(len(ys))
    order = np.argsort(ys, kind="stable")
    best = order[: limit // 2]
    rest = np.random.default_rng(seed).permutation(order[limit // 2 :])
    return np.sort(np.r_[best, rest[: limit - limit // 2]])


@dataclass(frozen=True)
class Surrogate:
    """A fitted GP in standardised units, and the value the acquisition improves on."""

    posterior: Posterior
    y_best: float
    warp: OutputWarp


def fit_surrogate(ctx: Context, groups: Sequence[Sequence[int]]) -> Surrogate:
    """Fit hyperparameters on at most ``max_fit_points`` trials and condition the posterior on
    at most ``max_condition_points`` (both: the best half and a seeded sample of the rest), so
    the work of a call is bounded whatever the history's size."""
    s: GPSettings = ctx.settings
    h = ctx.history
    warp = OutputWarp.fit(h.y_obs, power=s.output_warping == "power")
    ys = warp(h.y_obs)
    x = ctx.space.features(h.x_obs)
    model = AdditiveGP(groups, ctx.space.n_features, ctx.space.categorical_mask, nu=kernel_nu(s))
    fit_idx = subset(ys, s.max_fit_points, ctx.seed)
    cond_idx = subset(ys, s.max_condition_points, ctx.seed + 1)
    bowl = None
    if s.centre_prior > 0:
        bowl = CentredBowl.centred_on(x, ~ctx.space.categorical_mask, s.centre_prior)
    try:
        hp = model.fit(x[fit_idx], ys[fit_idx], seed=ctx.seed, prior_mean=bowl)
        post = model.condition(x[cond_idx], ys[cond_idx], hp, bowl)
    except np.linalg.LinAlgError:
        # the fitted hyperparameters defeat the factorisation: the prior's mode, which is
        # smooth and noisy enough to factorise, keeps the batch model-based
        log.warning("GP conditioning failed; using default hyperparameters")
        post = model.condition(x[cond_idx], ys[cond_idx], model.default_hyperparameters(), bowl)
    y_best = float(post.mean(x[cond_idx]).min() if s.incumbent == "mean" else ys.min())
    return Surrogate(post, y_best, warp)


@dataclass
class Batch:
    """The batch being built: its proposals so far and every point it must avoid."""

    ctx: Context
    out: Proposals = field(default_factory=Proposals)
    taken: set[Key] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.taken |= self.ctx.history.known

    @property
    def size(self) -> int:
        return len(self.out.items)

    @property
    def full(self) -> bool:
        return self.size >= self.ctx.n

    def add(self, proposal: Proposal) -> None:
        self.out.items.append(proposal)
        self.taken.add(self.ctx.space.key(proposal.row))

    def pending_rows(self) -> FloatArray:
        """Running trials, open suggestions and this batch's earlier slots (full typed rows)."""
        return np.vstack([self.ctx.history.x_pending, *(p.row[None, :] for p in self.out.items)])

    def fill_quasi_random(
        self, origin: str, *, reason: str | None = None, seed_offset: int = 0
    ) -> None:
        """Fill the remaining slots from the scrambled Sobol sequence; record ``reason``."""
        ctx = self.ctx
        rows = quasi_random_fill(
            ctx.space,
            ctx.n - self.size,
            seed=ctx.seed + seed_offset,
            start=ctx.sequence_start + self.size,
            exclude=self.taken,
        )
        for row in rows:
            self.add(Proposal(row, origin))
            if reason is not None:
                self.out.fallbacks.append(reason)


def maximise_acquisition(
    batch: Batch,
    model: Surrogate,
    *,
    columns: Sequence[int] | None = None,
    anchor: FloatArray | None = None,
    extra: FloatArray | None = None,
) -> FloatArray | None:
    """The typed row that maximises the acquisition, with the batch's pending points fantasised.

    Args:
        columns: search only these parameters, the others held at ``anchor`` (SA's move in one
            group); None searches the whole space.
        extra: full typed rows offered to the optimizer as candidates (whole-space search
            only), e.g. DC's recombinations and SA's one-group moves.

    Returns:
        A full typed row not in ``batch.taken``, or None if none was found.
    """
    ctx = batch.ctx
    s: GPSettings = ctx.settings
    full = ctx.space
    pending = full.features(batch.pending_rows())
    post = model.posterior.with_fantasies(pending)
    kind, xi, beta, best = s.acquisition, s.xi, s.ucb_beta, model.y_best
    if len(pending):
        # the believer believes all the way: a pending point that the model expects to beat
        # the incumbent is the incumbent, else the next slot crowds next to it
        best = min(best, float(post.mean(pending).min()))

    def value(feats: FloatArray) -> FloatArray:
        m, v = post.predict(feats)
        return acquisition(kind, m, v, best, xi=xi, beta=beta)

    def value_grad(feats: FloatArray) -> tuple[FloatArray, FloatArray]:
        m, v, dm, dv = post.predict_with_grad(feats)
        a, da_dm, da_dv = acquisition_grad(kind, m, v, best, xi=xi, beta=beta)
        return a, da_dm[:, None] * dm + da_dv[:, None] * dv

    h = ctx.history
    starts = h.x_obs[np.argsort(h.y_obs, kind="stable")[:5]]
    embed: Callable[[FloatArray], FloatArray] | None = None
    if columns is None:
        search, cols = full, tuple(range(len(full)))
        features: Callable[[FloatArray], FloatArray] = full.features
    else:
        assert anchor is not None
        cols = tuple(columns)
        search = SearchSpace(tuple(full.parameters[i] for i in cols))
        starts = starts[:, list(cols)]
        embed = _embedder(anchor, list(cols))

        def features(typed: FloatArray) -> FloatArray:
            assert embed is not None
            return full.features(embed(typed))

    def excluded(row: FloatArray) -> bool:
        whole = row if embed is None else embed(row[None, :])[0]
        return full.key(whole) in batch.taken

    seed = zlib.crc32(f"{ctx.seed}:{ctx.sequence_start}:{batch.size}".encode())
    row, _ = maximize(
        search,
        AcqObjective(features, value, value_grad, cols),
        # its own stream per slot, not ctx.rng: what a strategy draws before (DC's children,
        # SA's moves) must not change how the optimizer searches, so dcsa-bo differs from
        # gp-bo by its extra candidates alone
        rng=np.random.default_rng([seed, ctx.history.digest]),
        seed=seed,
        starts=starts,
        excluded=excluded,
        n_raw=s.n_candidates,
        extra=extra if columns is None else None,
    )
    if row is None:
        return None
    return np.asarray(embed(row[None, :])[0]) if embed is not None else row


def _embedder(anchor: FloatArray, cols: list[int]) -> Callable[[FloatArray], FloatArray]:
    def embed(sub_rows: FloatArray) -> FloatArray:
        rows = np.repeat(anchor[None, :], sub_rows.shape[0], axis=0)
        rows[:, cols] = sub_rows
        return rows

    return embed


class SlotPolicy(Protocol):
    """Fills one slot of a batch: a proposal, or None when it finds nothing new."""

    def __call__(self, batch: Batch, model: Surrogate) -> Proposal | None: ...


def full_space_bo(batch: Batch, model: Surrogate) -> Proposal | None:
    """Plain BO: maximise the acquisition over the whole space."""
    row = maximise_acquisition(batch, model)
    return None if row is None else Proposal(row, "bo")


class ModelBased(Strategy):
    """A model-based strategy: declares its surrogate's structure and its slot policies."""

    def check(self, space: SearchSpace, settings: Any) -> None:
        super().check(space, settings)
        check_warm_start(space, getattr(settings, WARM_START_SETTING))

    def feature_groups(self, space: SearchSpace, settings: Any) -> list[list[int]]:
        """Additive components of the surrogate as feature-column lists (one: a plain GP)."""
        return [list(range(space.n_features))]

    def plan(self, batch: Batch, model: Surrogate) -> Iterator[SlotPolicy]:
        """The policy of each model-based slot, in order (work done once per batch goes here)."""
        return itertools.repeat(full_space_bo)

    def n_initial(self, ctx: Context) -> int:
        """How many slots of this batch belong to the initial design."""
        if ctx.history.n_obs < 2:
            return ctx.n
        left = initial_design_size(ctx.space, ctx.settings) - ctx.sequence_start
        return max(0, min(ctx.n, left - ctx.history.n_warm))

    def propose(self, ctx: Context) -> Proposals:
        batch = Batch(ctx)
        k0 = self.n_initial(ctx)
        if k0:
            rows = quasi_random_fill(
                ctx.space, k0, seed=ctx.seed, start=ctx.sequence_start, exclude=batch.taken
            )
            for row in rows:
                batch.add(Proposal(row, "initial"))
        if not batch.full:
            self._model_slots(batch)
        return batch.out

    def _model_slots(self, batch: Batch) -> None:
        ctx = batch.ctx
        if ctx.time_left() <= 0:
            return self._fallback(batch, "deadline")
        t0 = ctx.clock()
        try:
            model = fit_surrogate(ctx, self.feature_groups(ctx.space, ctx.settings))
        except (np.linalg.LinAlgError, ValueError, FloatingPointError) as exc:
            log.warning("GP fit failed, falling back to quasi-random points: %s", exc)
            return self._fallback(batch, "model_error")
        finally:
            batch.out.fit_seconds = ctx.clock() - t0
        policies = self.plan(batch, model)
        limit = batch.size + int(ctx.settings.max_model_slots)
        slot_cost = 0.0
        while not batch.full:
            if batch.size >= limit:
                return self._fallback(batch, "slot_limit")
            if ctx.time_left() < 1.5 * slot_cost:
                return self._fallback(batch, "deadline")
            t0 = ctx.clock()
            policy = next(policies)
            proposal = policy(batch, model)
            if proposal is None and policy is not full_space_bo:
                proposal = full_space_bo(batch, model)
            slot_cost = max(slot_cost, ctx.clock() - t0)
            if proposal is None:
                return self._fallback(batch, "no_candidate")
            batch.add(proposal)
        return None

    @staticmethod
    def _fallback(batch: Batch, reason: str) -> None:
        batch.fill_quasi_random("fallback", reason=reason, seed_offset=7919)


__all__ = [
    "Batch",
    "GPSettings",
    "ModelBased",
    "SlotPolicy",
    "Surrogate",
    "fit_surrogate",
    "full_space_bo",
    "initial_design_size",
    "kernel_nu",
    "maximise_acquisition",
    "subset",
]
