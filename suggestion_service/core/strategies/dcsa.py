"""``dc-bo``, ``sa-bo`` and ``dcsa-bo``: our reading of Treacher & Montillo (2022).

Only the paper's abstract is public; these procedures are our own design consistent with it, not
a reproduction of the paper's code (see README and docs/dc-sa.md).

Both add-ons sit on the additive-by-group GP (one Matern-5/2 ARD component per subnetwork, each
with its own output scale):

- **DC** (divide and conquer): every ``dc_interval`` completed trials after the initial design,
  take the top ``dc_top_m`` trials, collect each group's distinct configurations among them, and
  score the cross product (minus every known point) by the sum of the per-group component means;
  the best ``dc_batch`` combinations are proposed.
- **SA** (subnetwork adaptive): each remaining slot picks a group with probability
  ``sa_epsilon / K + (1 - sa_epsilon) * I_k / sum(I)``, where ``I_k`` is the variance of group
  k's component mean over its own space, and maximises the acquisition over that group's
  parameters alone with the other groups held at the incumbent. A share ``sa_full_share`` of the
  slots stays ordinary full-space BO so a wrong importance estimate or a cross-group interaction
  cannot trap the search.

Everything is recomputed from the request's history and seeded, so the same request gives the
same answer, also after a restart.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .. import provenance
from ..engine_labels import LABEL_DC_ROUND
from ..errors import InvalidSettingError
from ..partition import (
    SUBNETWORKS_SETTING,
    Partition,
    make_partition,
    parse_subnetworks,
)
from ..sampling import sobol_latent
from ..settings import (
    SETTINGS_FIELD,
    Setting,
    SettingsTable,
    between,
    int_setting,
)
from ..space import FloatArray, SearchSpace
from ..strategy import Context, Proposal, Proposals
from .gp_bo import GPBO, Fit, gp_settings, initial_design_size

log = logging.getLogger(__name__)


def _subnetworks_setting() -> Setting:
    return Setting(
        name=SUBNETWORKS_SETTING,
        type_name="json",
        default=None,
        parse=parse_subnetworks,
        doc='Partition as a JSON object {"group": ["param", ...]}; unset means the naming '
        "convention <group>__<param>; parameters in no group form the group global.",
    )


def _dc_settings(interval: int) -> tuple[Setting, ...]:
    """DC's settings; ``interval`` is the default of dc_interval (per strategy, measured)."""
    return (
        int_setting(
            "dc_top_m", 5, "DC: how many top trials donate subnetworks.", minimum=2, maximum=64
        ),
        int_setting(
            "dc_interval",
            interval,
            "DC: completed trials between two DC rounds (1: a round whenever a trial completed; "
            "default 1 for dc-bo, 5 for dcsa-bo, where SA fills the slots in between).",
            minimum=1,
            maximum=100_000,
        ),
        int_setting("dc_batch", 2, "DC: combinations proposed per round.", minimum=1, maximum=1000),
        int_setting(
            "dc_max_candidates",
            4096,
            "DC: the cross product is sampled down to this many candidates.",
            minimum=1,
            maximum=65_536,
        ),
    )


def _sa_settings() -> tuple[Setting, ...]:
    from ..settings import float_setting

    return (
        float_setting(
            "sa_epsilon",
            0.2,
            "SA: exploration floor; every group is picked with probability >= epsilon / K.",
            between(0.0, 1.0),
        ),
        float_setting(
            "sa_full_share",
            0.5,
            "SA: share of slots kept as ordinary full-space BO.",
            between(0.0, 1.0),
        ),
    )


class _GroupedBO(GPBO):
    """Shared machinery: partition, additive surrogate, DC round and SA slots."""

    use_dc = False
    use_sa = False

    def check(self, space: SearchSpace, settings: Mapping[str, Any]) -> None:
        super().check(space, settings)
        make_partition(space, settings[SUBNETWORKS_SETTING])
        if self.use_dc and settings["dc_top_m"] < 2:
            raise InvalidSettingError(f"{SETTINGS_FIELD}[dc_top_m]", "must be >= 2")

    def partition(self, ctx: Context) -> Partition:
        return make_partition(ctx.space, ctx.settings[SUBNETWORKS_SETTING])

    def feature_groups(self, space: SearchSpace, settings: Mapping[str, Any]) -> list[list[int]]:
        return make_partition(space, settings[SUBNETWORKS_SETTING]).feature_groups()

    # ---- the batch -------------------------------------------------------------------------
    def plan(
        self, ctx: Context, fit: Fit, out: Proposals, taken: set[tuple[str, ...]]
    ) -> Callable[[], Proposal | None]:
        """DC's round first (if due), then each slot is SA (by importance) or full-space BO."""
        part = self.partition(ctx)
        if self.use_dc:
            self._dc_round(ctx, fit, part, out, taken)
        if not (self.use_sa and len(part.groups) > 1):
            return super().plan(ctx, fit, out, taken)
        importance = self.importance(ctx, fit, part)
        out.importance = dict(zip(part.names, importance.tolist(), strict=True))
        probs = self.group_probabilities(importance, float(ctx.settings["sa_epsilon"]))
        full_share = float(ctx.settings["sa_full_share"])

        def next_slot() -> Proposal | None:
            if ctx.rng.random() >= full_share:
                k = int(ctx.rng.choice(len(part.groups), p=probs))
                proposal = self._sa_slot(ctx, fit, part, k, out, taken)
                if proposal is not None:
                    return proposal
            return self.bo_slot(ctx, fit, out, taken)

        return next_slot

    # ---- DC ----------------------------------------------------------------------------------
    def dc_round_due(self, ctx: Context) -> tuple[int, int] | None:
        """The DC round due now and how many of its ``dc_batch`` slots are left, or None.

        Round r = (completed - n_initial_points) // dc_interval; its suggestions are named with
        the tag ``d<r>`` (provenance.py; Katib sends names back, never labels), so a round spans
        calls until ``dc_batch`` trials or open suggestions carry it.
        """
        h = ctx.history
        n_init = initial_design_size(ctx.space, ctx.settings)
        if h.n_obs < max(n_init, 2):
            return None
        current = (h.n_obs - n_init) // int(ctx.settings["dc_interval"])
        mine = (provenance.parse(ctx.experiment, name) for name in h.names)
        used = sum(1 for p in mine if p is not None and p.origin == "dc" and p.number == current)
        left = int(ctx.settings["dc_batch"]) - used
        return (current, left) if left > 0 else None

    def dc_candidates(
        self, ctx: Context, fit: Fit, part: Partition, taken: set[tuple[str, ...]]
    ) -> list[FloatArray]:
        """Cross-product children of the top trials, best (lowest summed mean) first."""
        h = ctx.history
        top = h.x_obs[np.argsort(h.y_obs, kind="stable")[: int(ctx.settings["dc_top_m"])]]
        per_group: list[list[FloatArray]] = []
        for g in part.groups:
            seen: dict[tuple[float, ...], FloatArray] = {}
            for row in top:
                seen.setdefault(tuple(row[list(g.params)].tolist()), row[list(g.params)])
            per_group.append(list(seen.values()))
        sizes = [len(c) for c in per_group]
        total = int(np.prod(sizes))
        limit = int(ctx.settings["dc_max_candidates"])
        if total <= limit:
            combos = list(itertools.product(*(range(s) for s in sizes)))
        else:
            picks = ctx.rng.integers(0, sizes, size=(limit, len(sizes)))
            combos = sorted({tuple(int(v) for v in c) for c in picks})
        rows = []
        for combo in combos:
            row = np.empty(len(ctx.space))
            for g, configs, i in zip(part.groups, per_group, combo, strict=True):
                row[list(g.params)] = configs[i]
            if ctx.space.key(row) not in taken:
                rows.append(row)
        if not rows:
            return []
        cand = np.vstack(rows)
        feats = ctx.space.features(cand)
        score = sum(fit.posterior.component_mean(feats, k) for k in range(len(part.groups)))
        order = np.argsort(np.asarray(score), kind="stable")
        return [cand[i] for i in order]

    def _dc_round(
        self, ctx: Context, fit: Fit, part: Partition, out: Proposals, taken: set[tuple[str, ...]]
    ) -> None:
        if len(part.groups) < 2:
            return  # one group: the cross product is the parents themselves
        due = self.dc_round_due(ctx)
        if due is None:
            return
        round_no, left = due
        room = min(left, ctx.n - len(out.items))
        for row in self.dc_candidates(ctx, fit, part, taken)[:room]:
            out.items.append(
                Proposal(row, "dc", labels={LABEL_DC_ROUND: str(round_no)}, number=round_no)
            )
            taken.add(ctx.space.key(row))

    # ---- SA ----------------------------------------------------------------------------------
    def importance(self, ctx: Context, fit: Fit, part: Partition) -> FloatArray:
        """Variance of each group's component mean over the space (quasi-random sample).

        Differences within one component are identified by the data; its constant offset and
        its pointwise variance are not (any constant can move between components), which is
        why importance is a spread of the mean and not a bound built on component variances.
        """
        typed = ctx.space.from_latent(sobol_latent(len(ctx.space), 256, ctx.seed))
        feats = ctx.space.features(typed)
        return np.array(
            [float(np.var(fit.posterior.component_mean(feats, k))) for k in range(len(part.groups))]
        )

    @staticmethod
    def group_probabilities(importance: FloatArray, epsilon: float) -> FloatArray:
        """epsilon / K + (1 - epsilon) * I_k / sum(I); uniform when no group matters yet."""
        k = importance.shape[0]
        total = float(importance.sum())
        share = importance / total if total > 0 and np.isfinite(total) else np.full(k, 1.0 / k)
        p = epsilon / k + (1.0 - epsilon) * share
        return np.asarray(p / p.sum())

    def _sa_slot(
        self,
        ctx: Context,
        fit: Fit,
        part: Partition,
        k: int,
        out: Proposals,
        taken: set[tuple[str, ...]],
    ) -> Proposal | None:
        """Search group k alone, other groups fixed at the incumbent; None if nothing new."""
        h = ctx.history
        best_i = h.best_index()
        if best_i is None:
            return None
        incumbent = h.x_obs[best_i]
        cols = list(part.groups[k].params)
        sub = SearchSpace(tuple(ctx.space.parameters[i] for i in cols))
        embed = _embedder(incumbent, cols)
        row = self.best_point(
            ctx,
            fit,
            pending=self.pending_rows(ctx, out),
            exclude=taken,
            slot=len(out.items),
            space=sub,
            embed=embed,
        )
        if row is None:
            return None
        return Proposal(row, "sa", group=part.groups[k].name, number=k)


def _embedder(incumbent: FloatArray, cols: list[int]) -> Callable[[FloatArray], FloatArray]:
    def embed(sub_rows: FloatArray) -> FloatArray:
        rows = np.repeat(incumbent[None, :], sub_rows.shape[0], axis=0)
        rows[:, cols] = sub_rows
        return rows

    return embed


class DCBO(_GroupedBO):
    name = "dc-bo"
    summary = "Additive-by-subnetwork GP BO with divide-and-conquer rounds."
    use_dc = True
    settings = SettingsTable((*gp_settings(), _subnetworks_setting(), *_dc_settings(1)))


class SABO(_GroupedBO):
    name = "sa-bo"
    summary = "Additive-by-subnetwork GP BO with subnetwork-adaptive allocation."
    use_sa = True
    settings = SettingsTable((*gp_settings(), _subnetworks_setting(), *_sa_settings()))


class DCSABO(_GroupedBO):
    name = "dcsa-bo"
    summary = "Additive-by-subnetwork GP BO with DC rounds and SA allocation."
    use_dc = True
    use_sa = True
    settings = SettingsTable(
        (*gp_settings(), _subnetworks_setting(), *_dc_settings(5), *_sa_settings())
    )
