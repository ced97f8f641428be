"""The strategy abstraction: every algorithm declares its settings once and proposes points."""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .asha import asha_settings, make_ladder
from .history import History, Objective
from .settings import SettingsTable, float_setting, greater_than, int_setting, spec
from .space import FloatArray, SearchSpace

#: Where a suggestion came from; also the value of the ``dcsa.io/origin`` trial label.
ORIGINS = ("initial", "random", "bo", "dc", "sa", "fallback", "promotion")

_RESOURCE, _ETA, _PROMOTION = asha_settings()


@dataclass(frozen=True, kw_only=True)
class CommonSettings:
    """Settings every strategy accepts."""

    random_state: int | None = spec(
        int_setting(
            "random_state",
            None,
            "Seed of every random choice; unset means a seed derived from the experiment name, "
            "so a restarted service gives the same answers.",
            maximum=2**63 - 1,
        )
    )
    time_budget_seconds: float = spec(
        float_setting(
            "time_budget_seconds",
            20.0,
            "Wall-clock safety net of one GetSuggestions call (also capped by the call's gRPC "
            "deadline): the work of a call is bounded by the other settings, so the same "
            "request gives the same answer on any machine; if a slow machine still runs out, "
            "the slots left are filled quasi-randomly, logged and counted.",
            greater_than(0.0),
            maximum=60.0,
        )
    )
    resource_name: str | None = spec(_RESOURCE)
    eta: int = spec(_ETA)
    promotion: str = spec(_PROMOTION)


@dataclass(frozen=True, kw_only=True)
class Context:
    """Everything a strategy may use to propose a batch.

    Attributes:
        n: how many points to propose.
        seed: the experiment's seed (same for every call of one experiment).
        rng: a generator seeded from the seed, the request counter and the history digest.
        sequence_start: how many suggestions were requested before this batch.
        clock: monotonic clock; ``deadline`` is a value of it.
        experiment: the experiment's name (trial names start with it; see provenance.py).
    """

    space: SearchSpace
    objective: Objective
    history: History
    settings: Any  # the strategy's settings dataclass, parsed once
    n: int
    seed: int
    rng: np.random.Generator
    sequence_start: int
    clock: Callable[[], float]
    deadline: float
    experiment: str = ""

    def time_left(self) -> float:
        return self.deadline - self.clock()


@dataclass(frozen=True)
class Proposal:
    """One proposed typed point and where it came from."""

    row: FloatArray
    origin: str
    group: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    number: int | None = None  # DC round or SA group index, written into the trial name


@dataclass
class Proposals:
    """A strategy's answer: the points, plus what the service should count and log."""

    items: list[Proposal] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)  # one reason per fallback point
    fit_seconds: float | None = None
    importance: dict[str, float] = field(default_factory=dict)  # SA's per-group importance
    shares: dict[str, float] = field(default_factory=dict)  # the mix's share per slot policy


class Strategy(abc.ABC):
    """Base class of every suggestion algorithm (in the spirit of Optuna's BaseSampler).

    ``settings`` is the table built from the strategy's settings dataclass
    (``SettingsTable.of``); :meth:`parse_settings` turns Katib's strings into an instance.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    settings: ClassVar[SettingsTable]

    def parse_settings(self, raw: Mapping[str, str]) -> Any:
        """Katib's strings -> the typed settings (raise InvalidSettingError naming the field)."""
        return self.settings.typed(raw, algorithm=self.name)

    def check(self, space: SearchSpace, settings: Any) -> None:
        """Cross-field validation beyond the settings table (raise InvalidArgumentError).

        Subclasses extend it (calling ``super().check``); here: the ASHA budget parameter.
        """
        if settings.resource_name is not None:
            make_ladder(space, settings.resource_name, settings.eta, settings.promotion)

    @abc.abstractmethod
    def propose(self, ctx: Context) -> Proposals:
        """Propose exactly ``ctx.n`` distinct typed points, none of them in ``history.known``."""
