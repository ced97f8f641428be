"""Search space: typed parameters, their warping onto the unit interval, and Katib string forms.

Every strategy works in a *latent* unit cube with one coordinate per parameter. A latent point is
turned into typed values (snapped to `step` and to the listed values) and those values into GP
*features*: one coordinate per parameter, the warped position in [0, 1] of a numeric parameter or
the index of a category (the GP compares categories by equality, one length-scale each).

Distributions on a bounded space (the warp is the distribution's CDF, so quasi-random latent points
follow the distribution and the GP sees the space at the matching resolution):

- ``uniform``: linear in [min, max].
- ``logUniform``: linear in log(x); needs min > 0.
- ``normal``: a normal with mean (min + max) / 2 and standard deviation (max - min) / 6,
  truncated to [min, max] (so +-3 sigma spans the range).
- ``logNormal``: the same on log(x); needs min > 0.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr, ndtri

from .errors import InvalidSearchSpaceError, cut, echo

FloatArray = NDArray[np.float64]
Value = float | int | str

_TRUNC = 3.0  # normal distributions are truncated at +-3 sigma
_PHI_LO = float(ndtr(-_TRUNC))
_PHI_SPAN = float(ndtr(_TRUNC) - ndtr(-_TRUNC))

#: Largest |value| of an int parameter: integers beyond 2**53 are not exact as doubles.
MAX_EXACT_INT = 2**53
#: Most values of a stepped parameter (min + k * step); beyond, counting them overflows.
MAX_GRID_POINTS = 1e12
#: Smallest step relative to the largest |bound|: below, neighbouring grid values round to
#: the same double (doubles carry 52 bits; 40 leaves margin for min + k * step).
_MIN_RELATIVE_STEP = 2.0**-40


class ParameterType(enum.Enum):
    """Katib's four parameter types."""

    DOUBLE = "double"
    INT = "int"
    DISCRETE = "discrete"
    CATEGORICAL = "categorical"


class Distribution(enum.Enum):
    """Katib's distributions; UNIFORM is the default when unspecified."""

    UNIFORM = "uniform"
    LOG_UNIFORM = "logUniform"
    NORMAL = "normal"
    LOG_NORMAL = "logNormal"

    @property
    def is_log(self) -> bool:
        return self in (Distribution.LOG_UNIFORM, Distribution.LOG_NORMAL)

    @property
    def is_normal(self) -> bool:
        return self in (Distribution.NORMAL, Distribution.LOG_NORMAL)


def format_double(value: float) -> str:
    """Write a double as a plain decimal string (no exponent), shortest round-trip digits."""
    if value == 0:
        return "0"
    # Python's repr has the same shortest round-trip digits as numpy's positional format and is
    # ten times faster; it only differs where it writes an exponent (or inf/nan)
    text = repr(float(value))
    if "e" in text or "n" in text:
        return str(np.format_float_positional(float(value), trim="-"))
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True, kw_only=True)
class Parameter:
    """One typed, validated parameter.

    For DOUBLE and INT, ``low``/``high`` are the bounds and ``step`` the optional grid spacing
    (INT defaults to 1). For DISCRETE, ``values`` holds the numbers sorted ascending with
    ``labels`` their original strings. For CATEGORICAL, ``labels`` holds the choices.
    """

    name: str
    type: ParameterType
    low: float = 0.0
    high: float = 1.0
    step: float | None = None
    distribution: Distribution = Distribution.UNIFORM
    values: tuple[float, ...] = ()
    labels: tuple[str, ...] = ()

    # ---- derived facts -------------------------------------------------------------------
    @property
    def is_categorical(self) -> bool:
        return self.type is ParameterType.CATEGORICAL

    @property
    def grid_size(self) -> int | None:
        """Number of distinct values, or None for a continuous double."""
        if self.type in (ParameterType.DISCRETE, ParameterType.CATEGORICAL):
            return len(self.labels)
        if self.step is None:
            return None
        return math.floor((self.high - self.low) / self.step + 1e-9) + 1

    # ---- warping ---------------------------------------------------------------------------
    def _bounds_t(self) -> tuple[float, float]:
        lo, hi = (self.values[0], self.values[-1]) if self.values else (self.low, self.high)
        if self.distribution.is_log:
            return math.log(lo), math.log(hi)
        return lo, hi

    def warp(self, x: FloatArray) -> FloatArray:
        """Map numeric values to [0, 1] through the distribution's CDF."""
        lo, hi = self._bounds_t()
        if hi <= lo:
            return np.full_like(x, 0.5, dtype=np.float64)
        t = np.log(x) if self.distribution.is_log else x
        if self.distribution.is_normal:
            mu, sigma = (lo + hi) / 2, (hi - lo) / (2 * _TRUNC)
            out = (ndtr((t - mu) / sigma) - _PHI_LO) / _PHI_SPAN
        else:
            out = (t - lo) / (hi - lo)
        return np.asarray(np.clip(out, 0.0, 1.0), dtype=np.float64)

    def unwarp(self, u: FloatArray) -> FloatArray:
        """Inverse of :meth:`warp`."""
        lo, hi = self._bounds_t()
        u = np.clip(u, 0.0, 1.0)
        if self.distribution.is_normal:
            mu, sigma = (lo + hi) / 2, (hi - lo) / (2 * _TRUNC)
            p = np.clip(_PHI_LO + u * _PHI_SPAN, 1e-300, 1 - 1e-16)
            t = mu + sigma * ndtri(p)
        else:
            t = lo + u * (hi - lo)
        x = np.exp(t) if self.distribution.is_log else t
        return np.asarray(x, dtype=np.float64)

    # ---- latent -> typed ------------------------------------------------------------------
    def from_latent(self, u: FloatArray) -> FloatArray:
        """Map latent coordinates in [0, 1] to snapped numeric values or category indices."""
        u = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
        if self.type in (ParameterType.CATEGORICAL, ParameterType.DISCRETE):
            k = len(self.labels)
            if self.type is ParameterType.CATEGORICAL or self.distribution is Distribution.UNIFORM:
                # equal mass for every listed value
                return np.minimum(np.floor(u * k), k - 1).astype(np.float64)
            x = self.unwarp(u)
            vals = np.asarray(self.values)
            return np.asarray(np.argmin(np.abs(x[:, None] - vals[None, :]), axis=1), np.float64)
        size = self.grid_size
        if size is not None and self.step is not None and self.distribution is Distribution.UNIFORM:
            idx = np.minimum(np.floor(u * size), size - 1)
            return self.low + idx * self.step
        return self.snap(self.unwarp(u))

    def snap(self, x: FloatArray) -> FloatArray:
        """Snap numeric values onto the step grid inside the bounds."""
        if self.step is None:
            return np.clip(x, self.low, self.high)
        idx = np.round((x - self.low) / self.step)
        size = self.grid_size or 1
        return self.low + np.clip(idx, 0, size - 1) * self.step

    def features(self, typed: FloatArray) -> FloatArray:
        """The GP feature of typed values: warped position, or the category's index."""
        if self.is_categorical:
            return np.asarray(typed, dtype=np.float64)
        if self.type is ParameterType.DISCRETE:
            return self.warp(np.asarray(self.values)[typed.astype(int)])
        return self.warp(typed)

    def from_feature(self, u: FloatArray) -> FloatArray:
        """Typed values nearest to relaxed features ``u`` in [0, 1] (numeric parameters only)."""
        if self.type is ParameterType.DISCRETE:
            grid = self.warp(np.asarray(self.values))
            return np.asarray(np.argmin(np.abs(u[:, None] - grid[None, :]), axis=1), np.float64)
        return self.snap(self.unwarp(u))

    def to_latent(self, typed: FloatArray) -> FloatArray:
        """A latent coordinate that maps back to ``typed`` (used to perturb known points)."""
        if self.type in (ParameterType.CATEGORICAL, ParameterType.DISCRETE):
            k = len(self.labels)
            if self.type is ParameterType.CATEGORICAL or self.distribution is Distribution.UNIFORM:
                return (typed + 0.5) / k
            return self.warp(np.asarray(self.values)[typed.astype(int)])
        size = self.grid_size
        if size is not None and self.step is not None and self.distribution is Distribution.UNIFORM:
            return (np.round((typed - self.low) / self.step) + 0.5) / size
        return self.warp(typed)

    # ---- strings ---------------------------------------------------------------------------
    def format(self, typed: float) -> str:
        """Katib's string form: ints as integers, doubles as decimals, lists exactly as listed."""
        if self.type in (ParameterType.CATEGORICAL, ParameterType.DISCRETE):
            return self.labels[int(typed)]
        if self.type is ParameterType.INT:
            return str(round(typed))
        if self.step is not None:
            k = round((typed - self.low) / self.step)
            if abs(typed - (self.low + k * self.step)) <= 1e-6 * self.step:
                return self._grid_text(k)
        return format_double(typed)

    def _grid_text(self, k: int) -> str:
        """Grid value ``min + k * step`` computed in decimal, so it carries the digits of both
        min and step (min=0.00000001, step=0.1 gives 0.10000001, not 0.1) and no binary noise."""
        k = min(max(k, 0), (self.grid_size or 1) - 1)
        value = Decimal(repr(self.low)) + k * Decimal(repr(self.step))
        text = f"{value:f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return "0" if text in ("", "-0") else text

    def parse(self, text: str, *, where: str) -> float:
        """Parse a Katib string value into the typed (numeric or index) form.

        Raises:
            InvalidSearchSpaceError: the value is not a member of this parameter's space.
        """
        if self.type is ParameterType.CATEGORICAL:
            try:
                return float(self.labels.index(text))
            except ValueError:
                raise InvalidSearchSpaceError(
                    where, f"{echo(text)} is not one of {echo(list(self.labels))}"
                ) from None
        try:
            x = float(text)
        except ValueError:
            raise InvalidSearchSpaceError(where, f"{echo(text)} is not a number") from None
        if self.type is ParameterType.DISCRETE:
            hits = [i for i, v in enumerate(self.values) if math.isclose(v, x, rel_tol=1e-9)]
            if not hits:
                raise InvalidSearchSpaceError(
                    where, f"{echo(text)} is not one of {echo(list(self.labels))}"
                )
            return float(hits[0])
        tol = 1e-9 * max(1.0, abs(self.high - self.low))
        if not (self.low - tol <= x <= self.high + tol):
            raise InvalidSearchSpaceError(
                where, f"{cut(text)} is outside [{self.low}, {self.high}]"
            )
        return x


Formatter = Callable[[float], str]
Parser = Callable[[str], "float | None"]


def _formatter(p: Parameter) -> Formatter:
    """``p.format`` without its per-call branching (same strings)."""
    if p.type in (ParameterType.CATEGORICAL, ParameterType.DISCRETE):
        labels = p.labels
        return lambda v: labels[int(v)]
    if p.type is ParameterType.INT:
        return lambda v: str(round(v))
    if p.step is None:
        return format_double
    return p.format


def _parser(p: Parameter) -> Parser:
    """``p.parse`` for the common case: the same value, or None where ``p.parse`` must decide
    (and raise, with the field's name, if the value is not in the space)."""
    if p.type is ParameterType.CATEGORICAL:
        # the first of equal labels wins, as labels.index does
        lookup = {label: float(i) for i, label in reversed(list(enumerate(p.labels)))}
        return lookup.get
    if p.type is ParameterType.DISCRETE:
        ordered = sorted(p.values)
        if any(math.isclose(a, b, rel_tol=1e-9) for a, b in itertools.pairwise(ordered)):
            return lambda text: None  # near-equal values: only parse() picks the right one
        exact = {v: float(i) for i, v in enumerate(p.values)}

        def discrete(text: str) -> float | None:
            try:
                return exact.get(float(text))
            except (TypeError, ValueError):
                return None

        return discrete
    tol = 1e-9 * max(1.0, abs(p.high - p.low))
    low, high = p.low - tol, p.high + tol

    def number(text: str) -> float | None:
        try:
            x = float(text)
        except (TypeError, ValueError):
            return None
        return x if low <= x <= high else None

    return number


@dataclass(frozen=True)
class _Block:
    """Columns that one vectorised formula converts; ``a`` and ``b`` are per-column constants
    of that formula (bounds, sizes, steps), computed as the per-parameter code computes them."""

    cols: NDArray[np.intp]
    a: FloatArray
    b: FloatArray
    c: FloatArray
    log: bool


@dataclass(frozen=True)
class _Plan:
    """How :class:`SearchSpace` converts many columns at once (performance only: each block
    applies a parameter's own formula to all its columns; the rest go one parameter at a
    time). Log and exp are still taken one column at a time, on arrays laid out as the
    per-parameter code lays them out, so every value is bit for bit the same."""

    feature_index: NDArray[np.intp]  # categorical columns: the feature is the index
    feature_linear: tuple[_Block, ...]  # a=lo, b=hi of the warp (log-space bounds if log)
    feature_normal: tuple[_Block, ...]  # a=mu, b=sigma
    feature_rest: tuple[int, ...]
    latent_floor: _Block  # categorical and uniform discrete: a=k
    latent_grid: _Block  # stepped uniform numbers: a=size, b=low, c=[step]
    latent_linear: tuple[_Block, ...]  # unstepped (log-)uniform: a=lo, b=hi, c=[low, high]
    latent_rest: tuple[int, ...]

    @staticmethod
    def of(parameters: Sequence[Parameter]) -> _Plan:
        index: list[int] = []
        f_lin: dict[bool, list[tuple[int, float, float]]] = {}
        f_nor: dict[bool, list[tuple[int, float, float]]] = {}
        f_rest: list[int] = []
        floor: list[tuple[int, float]] = []
        grid: list[tuple[int, float, float, float]] = []
        l_lin: dict[bool, list[tuple[int, float, float, float, float]]] = {}
        l_rest: list[int] = []
        for j, p in enumerate(parameters):
            numeric = p.type in (ParameterType.DOUBLE, ParameterType.INT)
            dist = p.distribution
            try:
                lo, hi = p._bounds_t() if numeric else (0.0, 0.0)
            except ValueError:  # log of a bound <= 0 (only a hand-built Parameter has one)
                lo, hi, numeric = 0.0, 0.0, False
            # ---- features (Parameter.features)
            if p.is_categorical:
                index.append(j)
            elif not numeric or hi <= lo:
                f_rest.append(j)
            elif dist.is_normal:
                f_nor.setdefault(dist.is_log, []).append(
                    (j, (lo + hi) / 2, (hi - lo) / (2 * _TRUNC))
                )
            else:
                f_lin.setdefault(dist.is_log, []).append((j, lo, hi))
            # ---- latent -> typed (Parameter.from_latent)
            size = p.grid_size
            if p.is_categorical or (
                p.type is ParameterType.DISCRETE and dist is Distribution.UNIFORM
            ):
                floor.append((j, len(p.labels)))
            elif not numeric:
                l_rest.append(j)
            elif size is not None and p.step is not None and dist is Distribution.UNIFORM:
                grid.append((j, size, p.low, p.step))
            elif p.step is None and not dist.is_normal:
                l_lin.setdefault(dist.is_log, []).append((j, lo, hi, p.low, p.high))
            else:
                l_rest.append(j)

        def block(rows: Sequence[tuple[float, ...]], log: bool = False) -> _Block:
            """Columns and their constants: a, b, c from the 2nd, 3rd and 4th-and-later
            entries of each row (c has one row per entry)."""
            width = len(rows[0]) if rows else 4
            table = np.asarray(rows, dtype=np.float64).reshape(len(rows), width)
            a, b = (table[:, k] if k < table.shape[1] else table[:, :0] for k in (1, 2))
            return _Block(table[:, 0].astype(np.intp), a, b, table[:, 3:].T, log)

        return _Plan(
            feature_index=np.asarray(index, dtype=np.intp),
            feature_linear=tuple(block(rows, log) for log, rows in f_lin.items()),
            feature_normal=tuple(block(rows, log) for log, rows in f_nor.items()),
            feature_rest=tuple(f_rest),
            latent_floor=block(floor),
            latent_grid=block(grid),
            latent_linear=tuple(block(rows, log) for log, rows in l_lin.items()),
            latent_rest=tuple(l_rest),
        )


@dataclass(frozen=True)
class SearchSpace:
    """An ordered, validated set of parameters."""

    parameters: tuple[Parameter, ...]
    _index: Mapping[str, int] = field(init=False, repr=False, compare=False)
    _names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _formatters: tuple[Formatter, ...] = field(init=False, repr=False, compare=False)
    _parsers: tuple[Parser, ...] = field(init=False, repr=False, compare=False)
    _plan: _Plan = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # derived once: every request converts thousands of rows through these
        setattr_ = object.__setattr__
        setattr_(self, "_index", {p.name: i for i, p in enumerate(self.parameters)})
        setattr_(self, "_names", tuple(p.name for p in self.parameters))
        setattr_(self, "_formatters", tuple(_formatter(p) for p in self.parameters))
        setattr_(self, "_parsers", tuple(_parser(p) for p in self.parameters))
        setattr_(self, "_plan", _Plan.of(self.parameters))

    def __len__(self) -> int:
        return len(self.parameters)

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    def index(self, name: str) -> int:
        return self._index[name]

    @property
    def n_features(self) -> int:
        """GP feature columns: one per parameter."""
        return len(self.parameters)

    @property
    def categorical_mask(self) -> NDArray[np.bool_]:
        """Which feature columns hold category indices (compared by equality)."""
        return np.array([p.is_categorical for p in self.parameters], dtype=bool)

    @property
    def cardinality(self) -> int | None:
        """Number of distinct points, or None if any parameter is continuous."""
        total = 1
        for p in self.parameters:
            size = p.grid_size
            if size is None:
                return None
            total *= size
        return total

    # ---- vectorised conversions over rows --------------------------------------------------
    def from_latent(self, u: FloatArray) -> FloatArray:
        """Latent (n, P) -> typed (n, P): snapped numbers and category indices."""
        u = np.atleast_2d(u)
        plan = self._plan
        out = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)  # converted column by column
        # in place on one block-sized array: a wide space makes these arrays large
        b = plan.latent_floor
        if b.cols.size:
            x = out[:, b.cols]
            np.multiply(x, b.a, out=x)
            np.floor(x, out=x)
            out[:, b.cols] = np.minimum(x, b.a - 1, out=x)
        b = plan.latent_grid
        if b.cols.size:
            x = out[:, b.cols]
            np.multiply(x, b.a, out=x)
            np.floor(x, out=x)
            np.minimum(x, b.a - 1, out=x)
            np.multiply(x, b.c[0], out=x)
            out[:, b.cols] = np.add(b.b, x, out=x)
        for b in plan.latent_linear:
            x = out[:, b.cols]
            np.multiply(x, b.b - b.a, out=x)
            np.add(b.a, x, out=x)
            if b.log:
                for i in range(b.cols.size):
                    x[:, i] = np.exp(np.ascontiguousarray(x[:, i]))
            out[:, b.cols] = np.clip(x, b.c[0], b.c[1], out=x)
        for j in plan.latent_rest:
            out[:, j] = self.parameters[j].from_latent(u[:, j])
        return out

    def to_latent(self, typed: FloatArray) -> FloatArray:
        typed = np.atleast_2d(typed)
        return np.column_stack([p.to_latent(typed[:, j]) for j, p in enumerate(self.parameters)])

    def features(self, typed: FloatArray) -> FloatArray:
        """Typed (n, P) -> GP features (n, P)."""
        typed = np.atleast_2d(typed)
        if typed.shape[0] == 0:
            return np.zeros((0, self.n_features))
        plan = self._plan
        out = np.empty((typed.shape[0], len(self.parameters)))
        if plan.feature_index.size:
            out[:, plan.feature_index] = typed[:, plan.feature_index]
        # in place on one block-sized array: a wide space makes these arrays large
        for b in plan.feature_linear:
            t = self._warp_input(typed, b)
            np.subtract(t, b.a, out=t)
            np.divide(t, b.b - b.a, out=t)
            out[:, b.cols] = np.clip(t, 0.0, 1.0, out=t)
        for b in plan.feature_normal:
            t = self._warp_input(typed, b)
            np.subtract(t, b.a, out=t)
            np.divide(t, b.b, out=t)
            ndtr(t, out=t)
            np.subtract(t, _PHI_LO, out=t)
            np.divide(t, _PHI_SPAN, out=t)
            out[:, b.cols] = np.clip(t, 0.0, 1.0, out=t)
        for j in plan.feature_rest:
            out[:, j] = self.parameters[j].features(typed[:, j])
        return out

    @staticmethod
    def _warp_input(typed: FloatArray, b: _Block) -> FloatArray:
        """A new array of the block's columns, on the log scale where the distribution is."""
        if not b.log:
            return np.asarray(typed[:, b.cols], dtype=np.float64)  # indexing made a copy
        t = np.empty((typed.shape[0], b.cols.size))
        for i, j in enumerate(b.cols.tolist()):
            t[:, i] = np.log(typed[:, j])  # the column view Parameter.warp takes the log of
        return t

    def key(self, row: Sequence[float] | FloatArray) -> tuple[str, ...]:
        """Canonical identity of a typed point: its Katib strings, in parameter order."""
        values = (
            row.tolist()
            if isinstance(row, np.ndarray) and row.dtype == np.float64
            else [float(v) for v in row]
        )
        return tuple(f(v) for f, v in zip(self._formatters, values, strict=True))

    def keys(self, typed: FloatArray) -> list[tuple[str, ...]]:
        """:meth:`key` of every row of ``typed`` (n, P), a column at a time."""
        typed = np.atleast_2d(np.asarray(typed, dtype=np.float64))
        if typed.shape[1] != len(self.parameters):
            raise ValueError(f"rows of {typed.shape[1]} values for {len(self)} parameters")
        if typed.shape[0] == 0:
            return []
        columns = [[f(v) for v in typed[:, j].tolist()] for j, f in enumerate(self._formatters)]
        return list(zip(*columns, strict=True))

    def to_strings(self, row: Sequence[float] | FloatArray) -> dict[str, str]:
        return dict(zip(self.names, self.key(row), strict=True))

    def parse_assignment(self, values: Mapping[str, str], *, where: str) -> FloatArray:
        """Katib strings -> one typed row. Raises InvalidSearchSpaceError if it does not fit."""
        names = self._names
        if len(values) == len(names):
            # the common case: every name once, every value in the space
            try:
                row = [f(values[n]) for f, n in zip(self._parsers, names, strict=True)]
            except (KeyError, TypeError):
                row = [None]
            if None not in row:
                return np.array(row)
        missing = [n for n in self.names if n not in values]
        if missing:
            raise InvalidSearchSpaceError(where, f"missing values for parameters {missing}")
        extra = sorted(set(values) - set(self.names))
        if extra:
            raise InvalidSearchSpaceError(where, f"unknown parameters {extra}")
        return np.array(
            [p.parse(values[p.name], where=f"{where}.{p.name}") for p in self.parameters]
        )

    def enumerate_all(self) -> FloatArray:
        """Every typed point of a finite space (call only when cardinality is small)."""
        grids: list[FloatArray] = []
        for p in self.parameters:
            size = p.grid_size
            assert size is not None
            if p.type in (ParameterType.CATEGORICAL, ParameterType.DISCRETE):
                grids.append(np.arange(size, dtype=np.float64))
            else:
                assert p.step is not None
                grids.append(np.asarray(p.low + np.arange(size) * p.step, dtype=np.float64))
        mesh = np.meshgrid(*grids, indexing="ij")
        return np.column_stack([m.ravel() for m in mesh])


# ---- building from strings (shared by every adapter) -------------------------------------
def _number(text: str, where: str) -> float:
    try:
        x = float(text)
    except (TypeError, ValueError):
        raise InvalidSearchSpaceError(where, f"{echo(text)} is not a number") from None
    if not math.isfinite(x):
        raise InvalidSearchSpaceError(where, f"{echo(text)} must be a finite number")
    return x


def _integer(text: str, where: str) -> int:
    x = _number(text, where)
    if x != int(x):
        raise InvalidSearchSpaceError(
            where, f"{echo(text)} must be an integer for an int parameter"
        )
    if abs(x) > MAX_EXACT_INT:
        raise InvalidSearchSpaceError(
            where,
            f"{echo(text)} is beyond +-{MAX_EXACT_INT}, where integers are no longer exact "
            "as doubles",
        )
    return int(x)


def make_parameter(
    *,
    name: str,
    type_name: str,
    min_text: str = "",
    max_text: str = "",
    step_text: str = "",
    choices: Sequence[str] = (),
    distribution: str = "uniform",
    where: str,
) -> Parameter:
    """Validate one parameter given Katib's string fields.

    Args:
        where: the field path prefix used in error messages, e.g. ``spec.parameters[2]``.

    Raises:
        InvalidSearchSpaceError: naming the field and what is allowed.
    """
    if not name:
        raise InvalidSearchSpaceError(f"{where}.name", "must not be empty")
    try:
        ptype = ParameterType(type_name)
    except ValueError:
        allowed = [t.value for t in ParameterType]
        raise InvalidSearchSpaceError(
            f"{where}.parameterType", f"{echo(type_name)} is not a known type; allowed: {allowed}"
        ) from None
    try:
        dist = Distribution(distribution or "uniform")
    except ValueError:
        allowed = [d.value for d in Distribution]
        raise InvalidSearchSpaceError(
            f"{where}.feasibleSpace.distribution",
            f"{echo(distribution)} is not a known distribution; allowed: {allowed}",
        ) from None
    fs = f"{where}.feasibleSpace"
    if ptype is ParameterType.CATEGORICAL:
        if not choices:
            raise InvalidSearchSpaceError(f"{fs}.list", "must list at least one value")
        if len(set(choices)) != len(choices):
            raise InvalidSearchSpaceError(f"{fs}.list", "values must be unique")
        # a distribution means nothing for categories; Katib's webhook fills uniform anyway
        return Parameter(name=name, type=ptype, labels=tuple(choices))
    if ptype is ParameterType.DISCRETE:
        if not choices:
            raise InvalidSearchSpaceError(f"{fs}.list", "must list at least one number")
        nums = [_number(c, f"{fs}.list[{i}]") for i, c in enumerate(choices)]
        if len(set(nums)) != len(nums):
            raise InvalidSearchSpaceError(f"{fs}.list", "values must be unique numbers")
        _check_range(min(nums), max(nums), f"{fs}.list")
        if dist.is_log and min(nums) <= 0:
            raise InvalidSearchSpaceError(
                f"{fs}.distribution", f"{dist.value} needs every listed value > 0"
            )
        order = sorted(range(len(nums)), key=nums.__getitem__)
        return Parameter(
            name=name,
            type=ptype,
            distribution=dist,
            values=tuple(nums[i] for i in order),
            labels=tuple(choices[i] for i in order),
        )
    if min_text == "" or max_text == "":
        raise InvalidSearchSpaceError(fs, f"{ptype.value} parameters need both min and max")
    conv = _integer if ptype is ParameterType.INT else _number
    low, high = float(conv(min_text, f"{fs}.min")), float(conv(max_text, f"{fs}.max"))
    if low >= high:
        raise InvalidSearchSpaceError(
            fs, f"min ({cut(min_text)}) must be less than max ({cut(max_text)})"
        )
    _check_range(low, high, fs)
    step: float | None = None
    if step_text:
        step = float(conv(step_text, f"{fs}.step"))
        if step <= 0:
            raise InvalidSearchSpaceError(f"{fs}.step", f"must be > 0, got {cut(step_text)}")
        _check_grid(low, high, step, f"{fs}.step")
    elif ptype is ParameterType.INT:
        step = 1.0
        _check_grid(low, high, step, fs)
    if dist.is_log and low <= 0:
        raise InvalidSearchSpaceError(
            f"{fs}.min", f"{dist.value} needs min > 0, got {cut(min_text)}; use uniform or normal"
        )
    return Parameter(name=name, type=ptype, low=low, high=high, step=step, distribution=dist)


def _check_range(low: float, high: float, where: str) -> None:
    """max - min must itself be a finite double, or no point between them can be computed."""
    if not math.isfinite(high - low):
        raise InvalidSearchSpaceError(
            where, f"max - min ({high:g} - {low:g}) overflows a double; narrow the range"
        )


def _check_grid(low: float, high: float, step: float, where: str) -> None:
    """The grid min + k * step must be countable and its points distinct as doubles."""
    size = (high - low) / step
    if not size < MAX_GRID_POINTS:
        raise InvalidSearchSpaceError(
            where,
            f"[{low:g}, {high:g}] in steps of {step:g} has more than {MAX_GRID_POINTS:.0e} "
            "values; use a larger step (or none, for a double)",
        )
    magnitude = max(abs(low), abs(high))
    if step < magnitude * _MIN_RELATIVE_STEP:
        raise InvalidSearchSpaceError(
            where,
            f"step {step:g} is too fine for values as large as {magnitude:g}: a double cannot "
            f"tell neighbouring grid values apart; use a step of at least "
            f"{magnitude * _MIN_RELATIVE_STEP:.3g}",
        )


def make_space(parameters: Sequence[Parameter], *, where: str = "spec.parameters") -> SearchSpace:
    """Check names are unique and build the space."""
    if not parameters:
        raise InvalidSearchSpaceError(where, "at least one parameter is required")
    seen: dict[str, int] = {}
    for i, p in enumerate(parameters):
        if p.name in seen:
            raise InvalidSearchSpaceError(
                f"{where}[{i}].name",
                f"duplicate parameter name {echo(p.name)} (also {where}[{seen[p.name]}])",
            )
        seen[p.name] = i
    return SearchSpace(tuple(parameters))
