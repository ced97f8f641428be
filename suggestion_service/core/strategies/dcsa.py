"""``dc-bo``, ``sa-bo`` and ``dcsa-bo``: our reading of Treacher & Montillo (2022).

Only the paper's abstract is public; these procedures are our own design consistent with it, not
a reproduction of the paper's code (see README and docs/dc-sa.md).

All three run :class:`~.model_based.ModelBased`'s batch loop with slot policies over the
parameters partitioned by subnetwork:

- **BO**: maximise the acquisition over the whole space.
- **SA** (subnetwork adaptive): pick group k with probability
  ``sa_epsilon / K + (1 - sa_epsilon) * I_k / sum(I)``, where ``I_k`` is the group's importance
  (the expected variance of the posterior mean when only group k moves), and maximise the
  acquisition over group k's parameters alone, the other groups held at the incumbent.
- **DC** (divide and conquer): take the top ``dc_top_m`` trials, collect each group's distinct
  configurations among them, and propose the best (lowest posterior mean) unseen combination of
  the cross product.

``dc-bo`` runs a DC round of ``dc_batch`` slots every ``dc_interval`` completed trials and BO in
between; ``sa-bo`` gives each slot to SA or, with probability ``sa_full_share``, to BO.
``dcsa-bo`` (``mix: joint``, the default) gives every slot to one acquisition maximisation over
the whole space whose candidates, and so the starts of its local searches, include DC's best
recombinations (SA's one-group moves were candidates too until measured to hurt; see
docs/benchmarks.md); ``mix: adaptive`` allocates each slot to one policy by its measured success
in this experiment (mix.py); ``mix: fixed`` runs dc-bo's rounds plus sa-bo's slots. With a single
subnetwork there is nothing to divide or adapt over, and all three run exactly as gp-bo with
their surrogate.

The surrogate is additive by group (one Matern ARD component per subnetwork, each with its
own output scale) or, with ``surrogate: full``, the plain GP of gp-bo; the policies only read its
posterior mean, so they work with either.

Everything is recomputed from the request's history and seeded, so the same request gives the
same answer, also after a restart.
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import provenance
from ..engine_labels import LABEL_DC_ROUND
from ..partition import SUBNETWORKS_SETTING, Partition, make_partition, parse_subnetworks
from ..sampling import sobol_latent
from ..settings import (
    Setting,
    SettingsTable,
    between,
    choice_setting,
    float_setting,
    int_setting,
    spec,
)
from ..space import FloatArray, SearchSpace
from ..strategy import Proposal
from .mix import policy_shares, won_shares
from .model_based import (
    Batch,
    GPSettings,
    ModelBased,
    SlotPolicy,
    Surrogate,
    full_space_bo,
    initial_design_size,
    maximise_acquisition,
)

log = logging.getLogger(__name__)


# ---- settings ------------------------------------------------------------------------------
_SUBNETWORKS = Setting(
    name=SUBNETWORKS_SETTING,
    type_name="json",
    default=None,
    parse=parse_subnetworks,
    doc='Partition as a JSON object {"group": ["param", ...]}; unset means the naming '
    "convention <group>__<param>; parameters in no group form the group global.",
)


def _surrogate(default: str) -> Setting:
    return choice_setting(
        "surrogate",
        default,
        "The GP: additive (one component per subnetwork) or full (one over all parameters, as "
        "gp-bo; captures interactions between subnetworks); dcsa-bo's default was chosen on "
        "the tune problems (docs/benchmarks.md).",
        ("additive", "full"),
    )


_DC_TOP_M = int_setting(
    "dc_top_m", 5, "DC: how many top trials donate subnetworks.", minimum=2, maximum=64
)


def _dc_interval(default: int) -> Setting:
    return int_setting(
        "dc_interval",
        default,
        "DC: completed trials between two DC rounds (1: a round whenever a trial completed).",
        minimum=1,
        maximum=100_000,
    )


_DC_BATCH = int_setting(
    "dc_batch", 2, "DC: combinations proposed per round.", minimum=1, maximum=1000
)


_DC_MAX_CANDIDATES = int_setting(
    "dc_max_candidates",
    4096,
    "DC: the cross product is sampled down to this many candidates.",
    minimum=1,
    maximum=65_536,
)


_SA_EPSILON = float_setting(
    "sa_epsilon",
    0.2,
    "SA: exploration floor; every group is picked with probability >= epsilon / K.",
    between(0.0, 1.0),
)


_SA_FULL_SHARE = float_setting(
    "sa_full_share",
    0.5,
    "SA: share of slots kept as ordinary full-space BO.",
    between(0.0, 1.0),
)


@dataclass(frozen=True, kw_only=True)
class DCSettings(GPSettings):
    subnetworks: Mapping[str, Sequence[str]] | None = spec(_SUBNETWORKS)
    surrogate: str = spec(_surrogate("additive"))
    dc_top_m: int = spec(_DC_TOP_M)
    dc_interval: int = spec(_dc_interval(1))
    dc_batch: int = spec(_DC_BATCH)
    dc_max_candidates: int = spec(_DC_MAX_CANDIDATES)


@dataclass(frozen=True, kw_only=True)
class SASettings(GPSettings):
    subnetworks: Mapping[str, Sequence[str]] | None = spec(_SUBNETWORKS)
    surrogate: str = spec(_surrogate("additive"))
    sa_epsilon: float = spec(_SA_EPSILON)
    sa_full_share: float = spec(_SA_FULL_SHARE)


@dataclass(frozen=True, kw_only=True)
class DCSASettings(GPSettings):
    subnetworks: Mapping[str, Sequence[str]] | None = spec(_SUBNETWORKS)
    surrogate: str = spec(_surrogate("full"))
    mix: str = spec(
        choice_setting(
            "mix",
            "joint",
            "How BO, SA and DC share the slots: joint (every slot maximises the acquisition "
            "over the whole space, DC's best recombinations of the top trials among the "
            "starts of its search; no SA), adaptive (each slot one "
            "policy, by the improvement each policy's trials brought in this experiment) or "
            "fixed (DC rounds every dc_interval trials, the other slots SA or, with probability "
            "sa_full_share, BO). The default was chosen on the tune problems.",
            ("adaptive", "fixed", "joint"),
        )
    )
    mix_floor: float = spec(
        float_setting(
            "mix_floor",
            0.1,
            "Adaptive mix: every policy gets at least this share of the slots.",
            between(0.0, 1.0 / 3.0),
        )
    )
    mix_window: int = spec(
        int_setting(
            "mix_window",
            10,
            "Adaptive mix: a policy is judged on its last this-many completed trials (joint: "
            "the shares reported are over as many).",
            minimum=1,
            maximum=10_000,
        )
    )
    dc_top_m: int = spec(_DC_TOP_M)
    dc_interval: int = spec(_dc_interval(5))
    dc_batch: int = spec(_DC_BATCH)
    dc_max_candidates: int = spec(_DC_MAX_CANDIDATES)
    sa_epsilon: float = spec(_SA_EPSILON)
    sa_full_share: float = spec(_SA_FULL_SHARE)


# ---- SA ------------------------------------------------------------------------------------
def group_importance(
    model: Surrogate, space: SearchSpace, part: Partition, seed: int, *, base: int = 64
) -> FloatArray:
    """Each group's importance: the expected variance of the posterior mean when only that
    group's parameters move (a total-effect index of the mean, estimated on Sobol points).

    Works for the additive and the full surrogate alike; for an additive one it is the variance
    of the group's component. Differences, not levels, of the mean are identified by the data,
    which is why importance is a spread of the mean and not built on posterior variances.
    """
    p = len(space)
    anchors = space.from_latent(sobol_latent(p, base, seed))
    moves = space.from_latent(sobol_latent(p, 16, seed + 1))
    out = np.empty(len(part.groups))
    for k, g in enumerate(part.groups):
        cols = list(g.params)
        rows = np.repeat(anchors, moves.shape[0], axis=0)
        rows[:, cols] = np.tile(moves[:, cols], (base, 1))
        m = model.posterior.mean(space.features(rows)).reshape(base, moves.shape[0])
        out[k] = float(np.mean(np.var(m, axis=1)))
    return out


def group_probabilities(importance: FloatArray, epsilon: float) -> FloatArray:
    """epsilon / K + (1 - epsilon) * I_k / sum(I); uniform when no group matters yet."""
    k = importance.shape[0]
    total = float(importance.sum())
    share = importance / total if total > 0 and np.isfinite(total) else np.full(k, 1.0 / k)
    p = epsilon / k + (1.0 - epsilon) * share
    return np.asarray(p / p.sum())


class GroupMove:
    """SA's slot policy: search one group, picked by importance, the others at the incumbent."""

    def __init__(self, batch: Batch, model: Surrogate, part: Partition, epsilon: float):
        ctx = batch.ctx
        self.part = part
        importance = group_importance(model, ctx.space, part, ctx.seed)
        batch.out.importance = dict(zip(part.names, importance.tolist(), strict=True))
        self.probabilities = group_probabilities(importance, epsilon)

    def __call__(self, batch: Batch, model: Surrogate) -> Proposal | None:
        h = batch.ctx.history
        best = h.best_index()
        if best is None:
            return None
        k = int(batch.ctx.rng.choice(len(self.part.groups), p=self.probabilities))
        group = self.part.groups[k]
        row = maximise_acquisition(batch, model, columns=group.params, anchor=h.x_obs[best])
        return None if row is None else Proposal(row, "sa", group=group.name, number=k)


# ---- DC ------------------------------------------------------------------------------------
def dc_candidates(
    batch: Batch, model: Surrogate, part: Partition, top_m: int, limit: int
) -> list[FloatArray]:
    """Cross-product children of the top trials, best (lowest posterior mean) first.

    Known points (the parents among them) are not removed here: the caller skips them as it
    takes children, so only the children it proposes get a key (a key per candidate cost
    seconds with thousands of parameters), and the order of the unseen ones is the same.
    """
    ctx = batch.ctx
    h = ctx.history
    top = h.x_obs[np.argsort(h.y_obs, kind="stable")[:top_m]]
    per_group: list[list[FloatArray]] = []
    for g in part.groups:
        seen: dict[tuple[float, ...], FloatArray] = {}
        for row in top:
            seen.setdefault(tuple(row[list(g.params)].tolist()), row[list(g.params)])
        per_group.append(list(seen.values()))
    sizes = [len(c) for c in per_group]
    if int(np.prod(sizes)) <= limit:
        combos = list(itertools.product(*(range(s) for s in sizes)))
    else:
        picks = ctx.rng.integers(0, sizes, size=(limit, len(sizes)))
        combos = sorted({tuple(int(v) for v in c) for c in picks})
    cand = np.empty((len(combos), len(ctx.space)))
    for j, combo in enumerate(combos):
        for g, configs, i in zip(part.groups, per_group, combo, strict=True):
            cand[j, list(g.params)] = configs[i]
    if not len(cand):
        return []
    order = np.argsort(model.posterior.mean(ctx.space.features(cand)), kind="stable")
    return [cand[i] for i in order]


class Recombination:
    """DC's slot policy: the best unseen child of the top trials (computed once per batch)."""

    def __init__(self, part: Partition, top_m: int, limit: int, number: int | None = None):
        self.part, self.top_m, self.limit, self.number = part, top_m, limit, number
        self._children: list[FloatArray] | None = None
        self._next = 0

    def __call__(self, batch: Batch, model: Surrogate) -> Proposal | None:
        if len(self.part.groups) < 2:
            return None  # one group: the cross product is the parents themselves
        if self._children is None:
            self._children = dc_candidates(batch, model, self.part, self.top_m, self.limit)
        while self._next < len(self._children):
            row = self._children[self._next]
            self._next += 1
            if batch.ctx.space.key(row) not in batch.taken:
                labels = {} if self.number is None else {LABEL_DC_ROUND: str(self.number)}
                return Proposal(row, "dc", labels=labels, number=self.number)
        return None


# ---- joint: DC's children as starts of one acquisition search ---------------------------------
#: Joint mix: how many of DC's best children are offered to the optimizer.
JOINT_CHILDREN = 32


class JointAcquisition:
    """dcsa-bo's ``mix: joint`` slot policy: maximise the acquisition over the whole space, with
    DC's best recombinations of the top trials among the optimizer's candidates. They are scored
    with its quasi-random candidates and the best of all start its local searches, so DC steers
    where the search looks (the basins the top trials' subnetworks point to) while the
    acquisition decides what is proposed. The proposal's origin is ``dc`` if it is one of the
    children as offered, else ``bo``."""

    def __init__(self, part: Partition, top_m: int, limit: int) -> None:
        self.part, self.top_m, self.limit = part, top_m, limit
        self._children: FloatArray | None = None

    def _candidates(self, batch: Batch, model: Surrogate) -> FloatArray:
        if self._children is None:
            children = dc_candidates(batch, model, self.part, self.top_m, self.limit)
            rows = [c[None, :] for c in children[:JOINT_CHILDREN]]
            self._children = np.vstack(rows) if rows else np.empty((0, len(batch.ctx.space)))
        return self._children

    def __call__(self, batch: Batch, model: Surrogate) -> Proposal | None:
        children = self._candidates(batch, model)
        row = maximise_acquisition(batch, model, extra=children)
        if row is None:
            return None
        space = batch.ctx.space
        key = space.key(row)
        return Proposal(row, "dc" if any(space.key(c) == key for c in children) else "bo")


def dc_round_due(batch: Batch, interval: int, size: int) -> tuple[int, int] | None:
    """The DC round due now and how many of its ``size`` slots are left, or None.

    Round r = (completed - initial design) // interval; its suggestions are named with the tag
    ``d<r>`` (provenance.py; Katib sends names back, never labels), so a round spans calls until
    ``size`` trials or open suggestions carry it.
    """
    ctx = batch.ctx
    h = ctx.history
    n_init = initial_design_size(ctx.space, ctx.settings)
    if h.n_obs < max(n_init, 2):
        return None
    current = (h.n_obs - n_init) // interval
    mine = (provenance.parse(ctx.experiment, name) for name in h.names)
    used = sum(1 for p in mine if p is not None and p.origin == "dc" and p.number == current)
    left = size - used
    return (current, left) if left > 0 else None


# ---- the strategies --------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def _partition(
    space: SearchSpace, mapping: tuple[tuple[str, tuple[str, ...]], ...] | None
) -> Partition:
    return make_partition(space, None if mapping is None else {g: list(m) for g, m in mapping})


def partition_of(space: SearchSpace, subnetworks: Mapping[str, Sequence[str]] | None) -> Partition:
    """The partition of ``space`` by the ``subnetworks`` setting, built once per experiment
    (validation, the surrogate and the policies of a call all ask for it)."""
    key = None if subnetworks is None else tuple((g, tuple(m)) for g, m in subnetworks.items())
    return _partition(space, key)


class _Grouped(ModelBased):
    """Partitioned strategies."""

    def check(self, space: SearchSpace, settings: Any) -> None:
        super().check(space, settings)
        partition_of(space, settings.subnetworks)

    def feature_groups(self, space: SearchSpace, settings: Any) -> list[list[int]]:
        if settings.surrogate == "full":
            return [list(range(space.n_features))]
        return partition_of(space, settings.subnetworks).feature_groups()

    @staticmethod
    def partition(batch: Batch) -> Partition:
        return partition_of(batch.ctx.space, batch.ctx.settings.subnetworks)

    @staticmethod
    def dc_round(batch: Batch, part: Partition) -> Iterator[SlotPolicy]:
        """The slots of a DC round, if one is due (none with a single group)."""
        s = batch.ctx.settings
        due = dc_round_due(batch, s.dc_interval, s.dc_batch) if len(part.groups) > 1 else None
        if due is None:
            return iter(())
        round_no, left = due
        dc = Recombination(part, s.dc_top_m, s.dc_max_candidates, number=round_no)
        return itertools.repeat(dc, left)

    @staticmethod
    def sa_or_bo(batch: Batch, model: Surrogate, part: Partition) -> Iterator[SlotPolicy]:
        """Each slot SA's move or, with probability ``sa_full_share``, full-space BO."""
        s = batch.ctx.settings
        if len(part.groups) < 2:
            return itertools.repeat(full_space_bo)
        sa = GroupMove(batch, model, part, s.sa_epsilon)
        rng = batch.ctx.rng
        return (full_space_bo if rng.random() < s.sa_full_share else sa for _ in itertools.count())


class DCBO(_Grouped):
    name = "dc-bo"
    summary = "Additive-by-subnetwork GP BO with divide-and-conquer rounds."
    settings = SettingsTable.of(DCSettings)

    def plan(self, batch: Batch, model: Surrogate) -> Iterator[SlotPolicy]:
        part = self.partition(batch)
        return itertools.chain(self.dc_round(batch, part), itertools.repeat(full_space_bo))


class SABO(_Grouped):
    name = "sa-bo"
    summary = "Additive-by-subnetwork GP BO with subnetwork-adaptive allocation."
    settings = SettingsTable.of(SASettings)

    def plan(self, batch: Batch, model: Surrogate) -> Iterator[SlotPolicy]:
        return self.sa_or_bo(batch, model, self.partition(batch))


class DCSABO(_Grouped):
    name = "dcsa-bo"
    summary = (
        "GP BO whose acquisition search also starts from DC's recombinations of the top "
        "trials (mix joint); mix adaptive or fixed share slots among BO, SA and DC."
    )
    settings = SettingsTable.of(DCSASettings)

    def plan(self, batch: Batch, model: Surrogate) -> Iterator[SlotPolicy]:
        part = self.partition(batch)
        s: DCSASettings = batch.ctx.settings
        if len(part.groups) < 2:
            # one subnetwork: nothing to divide or to adapt over; every mix is plain BO
            return itertools.repeat(full_space_bo)
        if s.mix == "fixed":
            return itertools.chain(self.dc_round(batch, part), self.sa_or_bo(batch, model, part))
        if s.mix == "joint":
            won = won_shares(
                batch.ctx.history, batch.ctx.experiment, ("bo", "dc"), window=s.mix_window
            )
            if won is not None:
                batch.out.shares = won
            return itertools.repeat(JointAcquisition(part, s.dc_top_m, s.dc_max_candidates))
        names = ("bo", "sa", "dc")
        shares = policy_shares(
            batch.ctx.history, batch.ctx.experiment, names, floor=s.mix_floor, window=s.mix_window
        )
        batch.out.shares = shares
        policies: dict[str, SlotPolicy] = {
            "bo": full_space_bo,
            "sa": GroupMove(batch, model, part, s.sa_epsilon),
            "dc": Recombination(part, s.dc_top_m, s.dc_max_candidates),
        }
        p = np.array([shares[n] for n in names])
        rng = batch.ctx.rng
        return (policies[names[int(rng.choice(len(names), p=p))]] for _ in itertools.count())


__all__ = [
    "DCBO",
    "DCSABO",
    "SABO",
    "group_importance",
    "group_probabilities",
]
