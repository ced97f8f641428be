"""dcsa-bo's adaptive mix: each slot policy's share, from the success of its own trials.

Policies: ``bo`` (full-space BO), ``sa`` (SA's move in one group), ``dc`` (DC's recombination).

Credit, in the spirit of adaptive operator selection (Thierens 2005; Fialho et al. 2010): a
completed trial that policy p suggested at sequence number s is credited with how much it
improved on the incumbent of its time, ``r = max(0, min{y_j : j suggested before s} - y)``
(values minimised). Trials are ordered by the sequence number written into their names
(provenance.py: Katib lists trials by name, and never returns labels); initial-design, random,
fallback and warm-start trials only set incumbents. A policy's quality ``q_p`` is the mean credit
of its last ``window`` completed trials (zeros included: rate times size of its improvements),
shrunk towards the pooled mean of all policies by ``PRIOR_WEIGHT`` pseudo-trials, so that one lucky
trial does not swing the mix (a policy with no completed trial yet gets the pooled mean). The
shares are probability matching with an exploration floor:

    share_p = floor + (1 - P * floor) * q_p / sum(q)        (uniform while every q_p is 0)

which does not depend on the objective's scale. Everything is recomputed from the request: the
same request gives the same shares, also after a restart.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import provenance
from ..history import History

#: The slot policies credited; other origins (initial, random, fallback) only set incumbents.
POLICIES = ("bo", "sa", "dc")
#: Pseudo-trials at the pooled mean credit that every policy's quality starts from.
PRIOR_WEIGHT = 3.0


def credits(history: History, experiment: str) -> dict[str, list[float]]:
    """Each policy's credits, in the order its trials were suggested."""
    rows = []  # (sequence, origin, value); warm starts and foreign names come first
    for name, y in zip(history.obs_names, history.y_obs.tolist(), strict=True):
        found = provenance.parse(experiment, name) if name else None
        seq = provenance.sequence(experiment, name) if found is not None else None
        rows.append((-1 if seq is None else seq, "" if found is None else found.origin, y))
    rows.sort(key=lambda r: (r[0], r[2]))
    out: dict[str, list[float]] = {}
    best = np.inf
    i = 0
    while i < len(rows):
        # trials with one sequence number (never more than one of ours) share one incumbent
        j = i
        while j < len(rows) and rows[j][0] == rows[i][0]:
            j += 1
        for _seq, origin, y in rows[i:j]:
            if origin in POLICIES and np.isfinite(best):
                out.setdefault(origin, []).append(max(0.0, best - y))
        best = min(best, *(r[2] for r in rows[i:j]))
        i = j
    return out


def policy_shares(
    history: History,
    experiment: str,
    policies: Sequence[str],
    *,
    floor: float,
    window: int,
) -> dict[str, float]:
    """The share of slots each policy gets now (sums to 1; each at least ``floor``)."""
    table = credits(history, experiment)
    recent = {p: table.get(p, [])[-window:] for p in policies}
    pooled = [r for p in policies for r in recent[p]]
    prior = float(np.mean(pooled)) if pooled else 0.0
    # each policy's mean credit, shrunk towards the pooled mean by PRIOR_WEIGHT pseudo-trials,
    # so one lucky trial does not swing the mix; an untried policy gets the pooled mean
    q = np.array(
        [
            (sum(recent[p]) + PRIOR_WEIGHT * prior) / (len(recent[p]) + PRIOR_WEIGHT)
            for p in policies
        ]
    )
    k = len(policies)
    floor = min(floor, 1.0 / k)
    total = float(q.sum())
    match = q / total if total > 0 and np.isfinite(total) else np.full(k, 1.0 / k)
    shares = floor + (1.0 - k * floor) * match
    shares = shares / shares.sum()
    return dict(zip(policies, shares.tolist(), strict=True))


def won_shares(
    history: History, experiment: str, policies: Sequence[str], *, window: int
) -> dict[str, float] | None:
    """The joint mix's allocation: which policy's candidate won the acquisition in each of the
    last ``window`` model-based trials (completed ones, by sequence number), as shares; None
    before the first one."""
    rows = []
    for name in history.obs_names:
        found = provenance.parse(experiment, name) if name else None
        if found is None or found.origin not in policies:
            continue
        seq = provenance.sequence(experiment, name)
        rows.append((-1 if seq is None else seq, found.origin))
    recent = [origin for _seq, origin in sorted(rows)[-window:]]
    if not recent:
        return None
    return {p: recent.count(p) / len(recent) for p in policies}
