"""Rung bookkeeping of asynchronous successive halving (ASHA; Li et al., MLSys 2020).

One parameter of the search space is the training budget (epochs, steps...), named by the
setting ``resource_name`` as Katib's hyperband names it. Its values form a *ladder* of rungs,
``min * eta**k`` below ``max`` and then ``max`` itself. A *configuration* is a typed row without
its budget column; a trial is a configuration run at one budget. ASHA starts new configurations
on the lowest rung and promotes a configuration from rung k to rung k + 1 (a new trial: the same
row with the next budget) once it ranks in the top ``floor(n_k / eta)`` of the ``n_k``
configurations completed on rung k, preferring promotions from higher rungs.

The setting ``promotion`` chooses how many: ``asha`` promotes every configuration that enters
that top set, so a rung that keeps receiving better configurations (as a model's proposals
improve) promotes far more than ``n_k / eta`` of them; ``delayed`` (D-ASHA, Li et al., VLDB 2022,
"Hyper-Tune") promotes from rung k only while fewer than ``floor(n_k / eta)`` of its
configurations are on a higher rung, which keeps the rungs' sizes at the ratios of successive
halving and leaves more of the budget to new configurations.

Everything is rebuilt from the request (the service is stateless): a configuration counts as
promoted from rung k as soon as it is present on a higher rung in any state (completed, running,
failed, or suggested and not yet a trial, which the history carries as pending), so a promotion
is never repeated, also after a restart.

Decisions:

- A trial whose budget is not a rung budget (a warm start, a trial from before ``eta`` changed)
  belongs to the highest rung whose budget is <= its own (it ran at least that long); a budget
  below the lowest rung (possible only with rows given explicitly) belongs to no rung and is
  counted in ``RungState.n_below``. Budgets within a relative 1e-9 of a rung are that rung.
- A configuration completed several times on one rung ranks by its lowest value, and that
  trial's row represents it.
- Failed (and non-finite) trials are not completions: they neither count in ``n_k`` nor rank;
  they do mark their configuration as present on their rung, so nothing is re-promoted there.
- Ties in value rank by configuration key (the Katib strings), so the order is total.

This module is pure bookkeeping: the strategies decide how many slots go to promotions and
how new configurations are proposed (:func:`rung_training_set`, :func:`budget_training_set`,
:func:`at_lowest_rung`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from .errors import InvalidSettingError, echo
from .history import History
from .settings import SETTINGS_FIELD, Setting, choice_setting, int_setting
from .space import FloatArray, Parameter, ParameterType, SearchSpace

RESOURCE_SETTING = "resource_name"
ETA_SETTING = "eta"
PROMOTION_SETTING = "promotion"
PROMOTIONS = ("delayed", "asha")
#: Bounds of ``eta``: 2 halves each rung; beyond 16 a ladder has one or two rungs.
MIN_ETA, MAX_ETA = 2, 16
#: Most rungs of a ladder (the top included): keeps rung loops and names bounded.
MAX_RUNGS = 12
#: Budgets within this relative distance of a rung budget are that rung (float noise).
_REL_TOL = 1e-9

ConfigKey = tuple[str, ...]


def _resource_check(value: Any) -> str | None:
    return None if value else "must name an int or double parameter of the search space"


def asha_settings() -> tuple[Setting, ...]:
    """The ASHA settings, for a strategy's settings table: ``resource_name``, ``eta`` and
    ``promotion``."""
    return (
        Setting(
            name=RESOURCE_SETTING,
            type_name="str",
            default=None,
            parse=str,
            check=_resource_check,
            doc="ASHA: the int or double parameter that is the training budget (epochs, "
            "steps), as in Katib's hyperband; rungs are min * eta^k below max, then max. "
            "Unset turns ASHA off.",
        ),
        int_setting(
            ETA_SETTING,
            3,
            "ASHA: reduction factor; the best 1/eta of a rung's completed configurations are "
            "promoted to the next rung.",
            minimum=MIN_ETA,
            maximum=MAX_ETA,
        ),
        choice_setting(
            PROMOTION_SETTING,
            PROMOTIONS[0],
            "ASHA: delayed (D-ASHA) promotes from a rung of n completed configurations only "
            "while fewer than floor(n / eta) of them are on a higher rung; asha promotes every "
            "configuration that enters the rung's top floor(n / eta).",
            PROMOTIONS,
        ),
    )


# ---- the ladder ------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Ladder:
    """The rungs of one experiment.

    Attributes:
        space: the search space (the budget is one of its columns).
        column: index of the budget parameter in the space.
        eta: the reduction factor.
        budgets: the rung budgets, strictly increasing typed values of the budget parameter;
            the last is the parameter's largest value.
        delayed: the ``promotion`` rule: at most ``floor(n_k / eta)`` promotions from rung k
            (``delayed``), or every configuration entering its top ``floor(n_k / eta)``.
    """

    space: SearchSpace
    column: int
    eta: int
    budgets: tuple[float, ...]
    delayed: bool = True

    @property
    def parameter(self) -> Parameter:
        return self.space.parameters[self.column]

    @property
    def n_rungs(self) -> int:
        return len(self.budgets)

    @property
    def labels(self) -> tuple[str, ...]:
        """The rung budgets as Katib strings."""
        return tuple(self.parameter.format(b) for b in self.budgets)

    def rungs_of(self, budgets: FloatArray) -> np.ndarray[Any, np.dtype[np.intp]]:
        """Rung index of each budget: the highest rung at or below it, -1 below the lowest."""
        edges = np.asarray(self.budgets) * (1.0 - _REL_TOL)
        return np.searchsorted(edges, np.asarray(budgets, dtype=np.float64), side="right") - 1

    def config_key(self, row: FloatArray) -> ConfigKey:
        """A configuration's identity: the row's Katib strings without the budget column."""
        return tuple(
            p.format(float(v))
            for j, (p, v) in enumerate(zip(self.space.parameters, row, strict=True))
            if j != self.column
        )

    def with_budget(self, row: FloatArray, rung: int) -> FloatArray:
        """A copy of a typed row (or rows) with the budget set to rung ``rung``'s budget."""
        out = np.array(row, dtype=np.float64, copy=True)
        out[..., self.column] = self.budgets[rung]
        return out


def _field(name: str) -> str:
    return f"{SETTINGS_FIELD}[{name}]"


def make_ladder(
    space: SearchSpace, resource_name: str, eta: int, promotion: str = PROMOTIONS[0]
) -> Ladder:
    """Validate the budget parameter, ``eta`` and ``promotion`` and build the ladder.

    Raises:
        InvalidSettingError: naming ``resource_name`` (unknown, non-numeric or non-positive
            parameter, or more than :data:`MAX_RUNGS` rungs), ``eta`` (out of bounds) or
            ``promotion`` (not one of :data:`PROMOTIONS`).
    """
    if promotion not in PROMOTIONS:
        raise InvalidSettingError(
            _field(PROMOTION_SETTING),
            f"{echo(promotion)} is not allowed: must be one of {echo(list(PROMOTIONS))}",
        )
    if isinstance(eta, bool) or not isinstance(eta, int) or not MIN_ETA <= eta <= MAX_ETA:
        raise InvalidSettingError(
            _field(ETA_SETTING), f"{echo(eta)} is not allowed: must be an int in [2, 16]"
        )
    numeric = [
        p.name for p in space.parameters if p.type in (ParameterType.INT, ParameterType.DOUBLE)
    ]
    where = _field(RESOURCE_SETTING)
    if resource_name not in space.names:
        raise InvalidSettingError(
            where,
            f"{echo(resource_name)} is not a parameter of the search space; allowed: "
            f"{echo(numeric)} (the int or double parameters)",
        )
    column = space.index(resource_name)
    p = space.parameters[column]
    if p.type not in (ParameterType.INT, ParameterType.DOUBLE):
        raise InvalidSettingError(
            where,
            f"parameter {echo(p.name)} is {p.type.value}; the budget must be an int or double "
            f"parameter; allowed: {echo(numeric)}",
        )
    if not p.low > 0:
        raise InvalidSettingError(
            where, f"parameter {echo(p.name)} has min {p.low:g}; a budget needs min > 0"
        )
    if not p.high > p.low:
        raise InvalidSettingError(
            where, f"parameter {echo(p.name)} needs max > min, got [{p.low:g}, {p.high:g}]"
        )
    return Ladder(
        space=space,
        column=column,
        eta=eta,
        budgets=_budgets(p, eta, where),
        delayed=promotion == "delayed",
    )


def _budgets(p: Parameter, eta: int, where: str) -> tuple[float, ...]:
    top = _on_grid(p, p.high)
    below_top = top * (1.0 - _REL_TOL)
    out: list[float] = []
    k = 0
    while True:
        # in decimal, so min=0.1, eta=3 gives 0.3, not 0.30000000000000004 (inf past doubles)
        raw = float(Decimal(repr(p.low)) * eta**k)
        b = _on_grid(p, raw)
        if not (raw < below_top and b < below_top):
            break
        if not out or b > out[-1]:  # else rounding onto the grid met the previous rung
            if len(out) == MAX_RUNGS - 1:
                needed = math.ceil((math.log(p.high) - math.log(p.low)) / math.log(eta)) + 1
                raise InvalidSettingError(
                    where,
                    f"parameter {echo(p.name)} in [{p.low:g}, {p.high:g}] with eta {eta} needs "
                    f"about {max(needed, MAX_RUNGS + 1)} rungs (min * eta^k up to max); at most "
                    f"{MAX_RUNGS} are allowed: raise its min, lower its max or raise eta",
                )
            out.append(b)
        k += 1
    out.append(top)
    return tuple(out)


def _on_grid(p: Parameter, x: float) -> float:
    """The nearest valid value of the budget parameter (ints rounded, steps respected)."""
    step = p.step if p.step is not None else (1.0 if p.type is ParameterType.INT else None)
    if step is None:
        return float(p.format(min(max(x, p.low), p.high)))
    size = math.floor((p.high - p.low) / step + 1e-9) + 1
    k = min(max(round((x - p.low) / step), 0), size - 1)
    # through Katib's string, so a budget equals what parsing a trial's assignment gives
    return float(p.format(p.low + k * step))


def check_asha(space: SearchSpace, settings: Mapping[str, Any]) -> Ladder | None:
    """Validate the ASHA settings against the space (for a strategy's ``check``).

    Returns:
        The ladder, or None when ``resource_name`` is unset (ASHA off).

    Raises:
        InvalidSettingError: see :func:`make_ladder`.
    """
    name = settings.get(RESOURCE_SETTING)
    if name is None:
        return None
    return make_ladder(
        space,
        str(name),
        settings.get(ETA_SETTING, 3),
        settings.get(PROMOTION_SETTING, PROMOTIONS[0]),
    )


# ---- the state of the rungs ----------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """A configuration's result on one rung: its best value and the index of that trial's row."""

    value: float
    index: int


@dataclass(frozen=True, kw_only=True)
class Rung:
    """One rung: its budget and the configurations on it, by state."""

    budget: float
    completed: Mapping[ConfigKey, Entry]
    pending: frozenset[ConfigKey]
    failed: frozenset[ConfigKey]


@dataclass(frozen=True, kw_only=True)
class RungState:
    """Every rung's trials, rebuilt from one request.

    Attributes:
        ladder: the ladder.
        rungs: one per rung budget, lowest first.
        highest: for each configuration, the highest rung it is present on in any state.
        x_completed: typed rows of every completed trial (indexed by ``Entry.index``).
        y_completed: their values, lower is better.
        n_below: trials (any state) whose budget is below the lowest rung; on no rung.
    """

    ladder: Ladder
    rungs: tuple[Rung, ...]
    highest: Mapping[ConfigKey, int]
    x_completed: FloatArray
    y_completed: FloatArray
    n_below: int

    def ranked(self, rung: int) -> list[tuple[ConfigKey, Entry]]:
        """Rung ``rung``'s completed configurations, best first (ties by key)."""
        return sorted(self.rungs[rung].completed.items(), key=lambda kv: (kv[1].value, kv[0]))


def build_rung_state(
    ladder: Ladder,
    *,
    x_completed: FloatArray,
    y_completed: FloatArray,
    x_pending: FloatArray | None = None,
    x_failed: FloatArray | None = None,
) -> RungState:
    """Sort trials onto the rungs.

    Args:
        x_completed, y_completed: typed rows of completed trials and their values (lower is
            better); a non-finite value makes the trial count as failed.
        x_pending: typed rows of running trials and of suggestions not yet trials.
        x_failed: typed rows of failed, killed and metric-less trials.
    """
    p = len(ladder.space)
    x_c = np.asarray(x_completed, dtype=np.float64).reshape(-1, p)
    y_c = np.asarray(y_completed, dtype=np.float64).reshape(-1)
    finite = np.isfinite(y_c)
    empty = np.zeros((0, p))
    x_p = empty if x_pending is None else np.asarray(x_pending, dtype=np.float64).reshape(-1, p)
    x_f = empty if x_failed is None else np.asarray(x_failed, dtype=np.float64).reshape(-1, p)

    n = ladder.n_rungs
    completed: list[dict[ConfigKey, Entry]] = [{} for _ in range(n)]
    pending: list[set[ConfigKey]] = [set() for _ in range(n)]
    failed: list[set[ConfigKey]] = [set() for _ in range(n)]
    highest: dict[ConfigKey, int] = {}
    # a configuration's trials on several rungs share its floats: format them once
    keys: dict[bytes, ConfigKey] = {}
    n_below = 0

    def place(rows: FloatArray) -> list[tuple[int, ConfigKey, int]]:
        nonlocal n_below
        rungs = ladder.rungs_of(rows[:, ladder.column])
        configs = np.ascontiguousarray(np.delete(rows, ladder.column, axis=1))
        out: list[tuple[int, ConfigKey, int]] = []
        for i, (row, k) in enumerate(zip(rows, rungs.tolist(), strict=True)):
            if k < 0:
                n_below += 1
                continue
            raw = configs[i].tobytes()
            key = keys.get(raw)
            if key is None:
                key = keys[raw] = ladder.config_key(row)
            if highest.get(key, -1) < k:
                highest[key] = k
            out.append((i, key, k))
        return out

    for i, key, k in place(x_c):
        if not finite[i]:
            failed[k].add(key)
            continue
        value = float(y_c[i])
        old = completed[k].get(key)
        if old is None or value < old.value:
            completed[k][key] = Entry(value, i)
    for _, key, k in place(x_p):
        pending[k].add(key)
    for _, key, k in place(x_f):
        failed[k].add(key)

    return RungState(
        ladder=ladder,
        rungs=tuple(
            Rung(
                budget=ladder.budgets[k],
                completed=completed[k],
                pending=frozenset(pending[k]),
                failed=frozenset(failed[k]),
            )
            for k in range(n)
        ),
        highest=highest,
        x_completed=x_c,
        y_completed=y_c,
        n_below=n_below,
    )


def rung_state(ladder: Ladder, history: History) -> RungState:
    """:func:`build_rung_state` from a request's history.

    Warm-start observations (the last ``history.n_warm`` completed rows) sit on the rung of
    their budget like any completed trial: they rank, and the best of them are promoted.
    """
    return build_rung_state(
        ladder,
        x_completed=history.x_obs,
        y_completed=history.y_obs,
        x_pending=history.x_pending,
        x_failed=history.x_failed,
    )


# ---- promotions ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Promotion:
    """A configuration to run on the next rung.

    Attributes:
        config: the configuration's key.
        rung: the rung it is promoted to (it completed on ``rung - 1``).
        value: its value on ``rung - 1``.
        row: the typed row to suggest: its best trial's row with rung ``rung``'s budget.
    """

    config: ConfigKey
    rung: int
    value: float
    row: FloatArray


def next_promotions(
    state: RungState,
    *,
    taken: Collection[ConfigKey] = (),
    limit: int | None = None,
) -> list[Promotion]:
    """The configurations to promote now, in ASHA order.

    From the highest rung below the top down to rung 0, best first within a rung: a
    configuration completed on rung k is promotable if it ranks in the top ``floor(n_k / eta)``
    of the ``n_k`` configurations completed on rung k and is present on no higher rung (in any
    state) and not in ``taken``. With the ladder's ``delayed`` rule, rung k promotes only while
    fewer than ``floor(n_k / eta)`` of its completed configurations are on a higher rung.

    Args:
        taken: configuration keys (:meth:`Ladder.config_key`) already used in this batch.
        limit: stop after this many; None for all.
    """
    ladder = state.ladder
    out: list[Promotion] = []
    for k in range(ladder.n_rungs - 2, -1, -1):
        completed = state.rungs[k].completed
        top = len(completed) // ladder.eta
        if ladder.delayed:
            allowed = top - sum(1 for key in completed if state.highest[key] > k)
        else:
            allowed = top
        if allowed <= 0:
            continue
        for key, entry in state.ranked(k)[:top]:
            if limit is not None and len(out) >= limit:
                return out
            if allowed == 0:
                break
            if state.highest.get(key, k) > k or key in taken:
                continue
            allowed -= 1
            row = ladder.with_budget(state.x_completed[entry.index], k + 1)
            out.append(Promotion(config=key, rung=k + 1, value=entry.value, row=row))
    return out


# ---- what the model learns from --------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class TrainingSet:
    """Rows and values for a model that proposes new configurations.

    Attributes:
        rung: the rung the rows come from, or None for every completed trial.
        x: typed rows, budget column intact.
        y: their values, lower is better.
        enough: whether the set reached the ``min_points`` asked for.
    """

    rung: int | None
    x: FloatArray
    y: FloatArray
    enough: bool
    index: np.ndarray[Any, np.dtype[np.intp]] = field(
        default_factory=lambda: np.zeros(0, dtype=np.intp)
    )  # each row's index into RungState.x_completed (the history's x_obs)


def default_min_points(ladder: Ladder) -> int:
    """Fewest completions a rung needs to train the model: configuration parameters + 2, >= 6."""
    return max(len(ladder.space) - 1 + 2, 6)


def rung_training_set(state: RungState, *, min_points: int | None = None) -> TrainingSet:
    """BOHB's choice: the completions of the highest rung with at least ``min_points`` of them.

    One row per configuration (its best trial on that rung), ordered by key. When no rung has
    enough, the rung with the most completions (the higher on ties) is returned with
    ``enough=False``; BOHB then samples at random, a GP may still use it.

    Args:
        min_points: default :func:`default_min_points`.
    """
    need = default_min_points(state.ladder) if min_points is None else min_points
    counts = [len(r.completed) for r in state.rungs]
    chosen = next((k for k in reversed(range(len(counts))) if counts[k] >= need), None)
    enough = chosen is not None
    if chosen is None:
        chosen = max(reversed(range(len(counts))), key=counts.__getitem__)
    items = sorted(state.rungs[chosen].completed.items())
    index = np.array([e.index for _, e in items], dtype=np.intp)
    p = len(state.ladder.space)
    x = state.x_completed[index] if len(index) else np.zeros((0, p))
    y = np.array([e.value for _, e in items], dtype=np.float64)
    return TrainingSet(rung=chosen, x=x, y=y, enough=enough, index=index)


def budget_training_set(state: RungState, *, min_points: int | None = None) -> TrainingSet:
    """MOBSTER's choice: every completed trial, the budget as one more input of the model.

    Rows are as given (budget column intact, repeated configurations and budgets below the
    lowest rung included); non-finite values are left out.
    """
    need = default_min_points(state.ladder) if min_points is None else min_points
    finite = np.isfinite(state.y_completed)
    x, y = state.x_completed[finite], state.y_completed[finite]
    index = np.flatnonzero(finite).astype(np.intp)
    return TrainingSet(rung=None, x=x, y=y, enough=len(y) >= need, index=index)


def at_lowest_rung(ladder: Ladder, rows: FloatArray) -> FloatArray:
    """A new configuration's row (or rows) with the budget set to the lowest rung's."""
    return ladder.with_budget(rows, 0)


# ---- where we are ----------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class RungView:
    """One rung's counts, for a progress view and metrics.

    Attributes:
        rung: its index, 0 the lowest.
        budget: its budget as a typed value; ``label`` as Katib's string.
        completed, pending, failed: configurations on it in each state.
        promoted: configurations completed on it and present on a higher rung.
        promotable: configurations that :func:`next_promotions` would promote from it now.
    """

    rung: int
    budget: float
    label: str
    completed: int
    pending: int
    failed: int
    promoted: int
    promotable: int


def ladder_view(state: RungState) -> tuple[RungView, ...]:
    """Per rung, lowest first: budget and counts of configurations by state."""
    ladder = state.ladder
    promotable: dict[int, int] = {}
    for promotion in next_promotions(state):
        promotable[promotion.rung - 1] = promotable.get(promotion.rung - 1, 0) + 1
    labels = ladder.labels
    return tuple(
        RungView(
            rung=k,
            budget=rung.budget,
            label=labels[k],
            completed=len(rung.completed),
            pending=len(rung.pending),
            failed=len(rung.failed),
            promoted=sum(1 for key in rung.completed if state.highest[key] > k),
            promotable=promotable.get(k, 0),
        )
        for k, rung in enumerate(state.rungs)
    )
