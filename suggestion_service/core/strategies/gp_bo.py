"""``gp-bo``: Gaussian-process Bayesian optimisation over the full space.

Initial design: the first ``n_initial_points`` suggestions come from a scrambled Sobol sequence.
Then a Matern ARD GP (3/2 unless ``kernel`` says 5/2; MAP hyperparameters, output warping) is
fitted on the completed trials and every slot maximises the acquisition over the whole space,
with every pending point (running trials, earlier suggestions and the batch's own earlier slots)
fantasised at its posterior mean (kriging believer; a pending point expected to beat the
incumbent becomes the incumbent), so a batch spreads out instead of piling onto one optimum.
The batch loop is :class:`~.model_based.ModelBased`'s; gp-bo's one slot policy is full-space BO.
"""

from __future__ import annotations

from ..settings import SettingsTable
from .model_based import GPSettings, ModelBased


class GPBO(ModelBased):
    name = "gp-bo"
    summary = "Gaussian-process BO over the full space with batch-aware log-EI."
    settings = SettingsTable.of(GPSettings)
