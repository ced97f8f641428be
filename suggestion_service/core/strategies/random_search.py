"""``random``: scrambled quasi-random (Sobol) search."""

from __future__ import annotations

from ..sampling import quasi_random_fill
from ..settings import SettingsTable
from ..strategy import CommonSettings, Context, Proposal, Proposals, Strategy


class RandomSearch(Strategy):
    name = "random"
    summary = "Scrambled Sobol points, never repeating an evaluated, pending or failed point."
    settings = SettingsTable.of(CommonSettings)

    def propose(self, ctx: Context) -> Proposals:
        rows = quasi_random_fill(
            ctx.space, ctx.n, seed=ctx.seed, start=ctx.sequence_start, exclude=ctx.history.known
        )
        return Proposals([Proposal(row, "random") for row in rows])
