"""The benchmark problem set: multi-subnetwork objectives built from standard test functions.

Every problem is a Katib search space (parameters named ``<group>__<param>``, all four Katib types)
and an objective to minimise::

    f(x) = sum_k w_k * c_k(x_k) / sum_k w_k  +  sum_j interaction_j(x)  [+ sigma * eps]

Each component ``c_k`` is a standard test function (Branin, Hartmann 3/6, Levy, Ackley,
Rosenbrock, Styblinski-Tang, Michalewicz, Rastrigin) of the group's parameters, rescaled so that
its optimum is 0 and a point drawn from the Katib space (uniform, log-uniform, uniform over the
int grid, the list or the categories) scores 1 in median. The medians are estimated on first use
from 20,000 draws of a generator seeded by the component's definition (numpy's PCG64, stable
across versions), so they are deterministic and need no hard-coded table.

How a Katib parameter feeds its coordinate of the test function's domain [lo, hi]:

* ``double`` (uniform): linearly; ``double`` with ``logUniform``: linearly in log(value);
* ``int`` with a step: linearly in the value (the grid need not hit the function's optimum, so
  the optimum of such a component is about 0, not exactly);
* ``discrete`` (a list of numbers): linearly in the list index (powers of two: in log value);
* a ``categorical`` parameter picks a *variant* of its group's component: the best variant is the
  function itself; every other variant mirrors one coordinate (so the best continuous values
  depend on the category) and adds a fixed offset (so the category matters on its own).

Interactions couple groups: ``diff`` adds ``s * (u_a - u_b)^2`` on two unit-scaled coordinates of
different groups (it moves the optimum away from the component optima), ``product`` adds
``s * c_a * c_b`` (the optimum stays 0 but no group can be tuned alone).

Problems come in sibling pairs of the same kind (weights, interaction, noise, types, number of
groups) built from different functions; the first of each pair is in ``TUNE``, the second in
``CHECK`` (docs/benchmarks.md). The five problems of the old synthetic suite
(``benchmarks/synthetic.py``: ``equal``, ``unequal``, ``interaction-*``) are in ``TUNE``, since
defaults were chosen on them. So are the ``bb-*`` problems (``BBOB``), built from COCO's BBOB
functions (``bbob1``-``bbob24``, via the ``ioh`` package): tune only, without check siblings.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks import synthetic

# ---- standard test functions, vectorised: rows of X are points ---------------------------------
_H3_A = np.array([[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]])
_H3_P = 1e-4 * np.array(
    [[3689, 1170, 2673], [4699, 4387, 7470], [1091, 8732, 5547], [381, 5743, 8828]]
)
_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def _hartmann(x: np.ndarray, a: np.ndarray, p: np.ndarray) -> np.ndarray:
    inner = (a[None] * (x[:, None, :] - p[None]) ** 2).sum(-1)
    return -(_ALPHA[None] * np.exp(-inner)).sum(-1)


def hartmann3(x: np.ndarray) -> np.ndarray:
    return _hartmann(x, _H3_A, _H3_P)


def hartmann6(x: np.ndarray) -> np.ndarray:
    return _hartmann(x, synthetic._H6_A, synthetic._H6_P)


def branin(x: np.ndarray) -> np.ndarray:
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    x1, x2 = x[:, 0], x[:, 1]
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * np.cos(x1) + 10


def levy(x: np.ndarray) -> np.ndarray:
    w = 1 + (x - 1) / 4
    head = np.sin(math.pi * w[:, 0]) ** 2
    mid = ((w[:, :-1] - 1) ** 2 * (1 + 10 * np.sin(math.pi * w[:, :-1] + 1) ** 2)).sum(1)
    tail = (w[:, -1] - 1) ** 2 * (1 + np.sin(2 * math.pi * w[:, -1]) ** 2)
    return head + mid + tail


def ackley(x: np.ndarray) -> np.ndarray:
    d = x.shape[1]
    r = np.sqrt((x**2).sum(1) / d)
    return -20 * np.exp(-0.2 * r) - np.exp(np.cos(2 * math.pi * x).sum(1) / d) + 20 + math.e


def rosenbrock(x: np.ndarray) -> np.ndarray:
    return (100 * (x[:, 1:] - x[:, :-1] ** 2) ** 2 + (x[:, :-1] - 1) ** 2).sum(1)


def styblinski_tang(x: np.ndarray) -> np.ndarray:
    return 0.5 * (x**4 - 16 * x**2 + 5 * x).sum(1)


def michalewicz(x: np.ndarray) -> np.ndarray:
    i = np.arange(1, x.shape[1] + 1)
    return -(np.sin(x) * np.sin(i * x**2 / math.pi) ** 20).sum(1)


def rastrigin(x: np.ndarray) -> np.ndarray:
    return 10 * x.shape[1] + (x**2 - 10 * np.cos(2 * math.pi * x)).sum(1)


#: The BBOB instance every ``bbob<fid>`` function uses (its rotation, shift and optimum value).
BBOB_INSTANCE = 1


@functools.cache
def _bbob_problem(fid: int, dim: int) -> Any:
    # The 24 noiseless BBOB functions of COCO (Hansen et al. 2009) as IOHprofiler implements
    # them: rotated, shifted, ill-conditioned and deceptive variants that no hand-written
    # function here covers. Imported on first use: only the benchmarks need ``ioh``.
    import ioh

    return ioh.get_problem(
        fid, instance=BBOB_INSTANCE, dimension=dim, problem_class=ioh.ProblemClass.BBOB
    )


def _bbob(fid: int) -> Callable[[np.ndarray], np.ndarray]:
    def fn(x: np.ndarray) -> np.ndarray:
        out = _bbob_problem(fid, x.shape[1])(np.asarray(x, dtype=float).tolist())
        return np.asarray(out, dtype=float).reshape(x.shape[0])

    return fn


def _bbob_minimum(fid: int) -> Callable[[int], float]:
    return lambda d: float(_bbob_problem(fid, d).optimum.y)


@dataclass(frozen=True)
class Function:
    """A test function, its default domain (per coordinate) and its minimum by dimension."""

    fn: Callable[[np.ndarray], np.ndarray]
    low: float
    high: float
    minimum: Callable[[int], float]
    dims: tuple[int, ...] | None = None  # allowed dimensions; None: any >= 2


def _fixed(value: float) -> Callable[[int], float]:
    return lambda _d: value


FUNCTIONS: dict[str, Function] = {
    "branin": Function(branin, -5.0, 10.0, _fixed(0.397887), (2,)),  # x2 in [0, 15]: _domain
    "hartmann3": Function(hartmann3, 0.0, 1.0, _fixed(-3.86278), (3,)),
    "hartmann6": Function(hartmann6, 0.0, 1.0, _fixed(-3.32237), (6,)),
    "levy": Function(levy, -10.0, 10.0, _fixed(0.0)),
    # Ackley and Rastrigin have their optimum at 0: asymmetric domains keep it off the centre.
    "ackley": Function(ackley, -12.0, 20.0, _fixed(0.0)),
    "rosenbrock": Function(rosenbrock, -5.0, 10.0, _fixed(0.0)),
    "styblinski": Function(styblinski_tang, -5.0, 5.0, lambda d: -39.16616570377142 * d),
    "michalewicz": Function(
        michalewicz, 0.0, math.pi, {2: -1.8013, 5: -4.687658}.__getitem__, (2, 5)
    ),
    "rastrigin": Function(rastrigin, -3.5, 6.0, _fixed(0.0)),
    # Domains cut at the optimum, which then sits on a bound of every coordinate (Rosenbrock at
    # the upper end, x = 1; Levy and Styblinski-Tang at the lower end): the edge-* tune problems
    "rosenbrock-edge": Function(rosenbrock, -5.0, 1.0, _fixed(0.0)),
    "levy-edge": Function(levy, 1.0, 10.0, _fixed(0.0)),
    "styblinski-edge": Function(
        styblinski_tang, -2.903534027771177, 5.0, lambda d: -39.16616570377142 * d
    ),
    # BBOB f1-f24 on their domain [-5, 5]^d (optimum inside [-4, 4]^d, off the centre)
    **{f"bbob{fid}": Function(_bbob(fid), -5.0, 5.0, _bbob_minimum(fid)) for fid in range(1, 25)},
}


def _domain(fn: str, i: int) -> tuple[float, float]:
    if fn == "branin" and i == 1:
        return 0.0, 15.0
    f = FUNCTIONS[fn]
    return f.low, f.high


# ---- Katib parameters -----------------------------------------------------------------------
DOUBLE, INT, DISCRETE, CATEGORICAL = "double", "int", "discrete", "categorical"
UNIFORM, LOG_UNIFORM = "uniform", "logUniform"


@dataclass(frozen=True)
class ParamSpec:
    """One Katib parameter as an Experiment declares it (values are Katib's strings)."""

    name: str
    type: str  # double | int | discrete | categorical
    min: str = ""
    max: str = ""
    step: str = ""
    values: tuple[str, ...] = ()  # discrete and categorical lists
    distribution: str = UNIFORM  # uniform | logUniform

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "min": self.min,
            "max": self.max,
            "step": self.step,
            "list": list(self.values),
            "distribution": self.distribution,
        }


@dataclass(frozen=True)
class Enc:
    """How one Katib parameter feeds one coordinate of its component's function.

    ``kind``: ``double`` (uniform on [a, b]), ``log`` (double, logUniform on [a, b]), ``int``
    ([a, b] with ``step``), ``discrete`` (``values``, mapped by list index).
    """

    kind: str = "double"
    a: float = 0.0
    b: float = 1.0
    step: float = 1.0
    values: tuple[float, ...] = ()
    name: str = ""  # the parameter's name within its group; default x<i>

    def spec(self, full_name: str) -> ParamSpec:
        if self.kind == "double":
            return ParamSpec(full_name, DOUBLE, _num(self.a), _num(self.b))
        if self.kind == "log":
            return ParamSpec(full_name, DOUBLE, _num(self.a), _num(self.b), "", (), LOG_UNIFORM)
        if self.kind == "int":
            return ParamSpec(full_name, INT, _num(self.a), _num(self.b), _num(self.step))
        if self.kind == "discrete":
            return ParamSpec(full_name, DISCRETE, values=tuple(_num(v) for v in self.values))
        raise ValueError(f"unknown encoding {self.kind!r}")

    def unit(self, v: np.ndarray) -> np.ndarray:
        """The parameter's numeric value -> [0, 1] along its coordinate."""
        if self.kind in ("double", "int"):
            return (v - self.a) / (self.b - self.a)
        if self.kind == "log":
            return (np.log(v) - math.log(self.a)) / (math.log(self.b) - math.log(self.a))
        idx = np.abs(v[:, None] - np.asarray(self.values)[None]).argmin(1)
        return idx / (len(self.values) - 1)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draws as a Katib-uniform sampler would (log-uniform, uniform grid or list)."""
        if self.kind == "double":
            return rng.uniform(self.a, self.b, n)
        if self.kind == "log":
            return np.exp(rng.uniform(math.log(self.a), math.log(self.b), n))
        if self.kind == "int":
            k = math.floor((self.b - self.a) / self.step + 1e-9) + 1
            return self.a + self.step * rng.integers(0, k, n)
        return np.asarray(self.values)[rng.integers(0, len(self.values), n)]

    def parse(self, text: str) -> float:
        return float(text)


def _num(x: float) -> str:
    """Katib's string for a number: ints without a point, doubles in repr form."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))


def D(a: float = 0.0, b: float = 1.0, name: str = "") -> Enc:  # noqa: N802 - short builders
    return Enc("double", a, b, name=name)


def L(a: float, b: float, name: str = "") -> Enc:  # noqa: N802
    return Enc("log", a, b, name=name)


def N(a: int, b: int, step: int = 1, name: str = "") -> Enc:  # noqa: N802
    return Enc("int", a, b, step, name=name)


def Q(*values: float, name: str = "") -> Enc:  # noqa: N802
    return Enc("discrete", values=tuple(sorted(values)), name=name)


@dataclass(frozen=True)
class Comp:
    """One subnetwork: a test function of its group's parameters, a weight, optional variants.

    ``encs`` gives one encoding per coordinate (default: uniform doubles on [0, 1]).
    ``variants``: the categories of a categorical parameter ``<group>__<variant_name>``;
    ``offsets`` their fixed offsets in rescaled units (exactly one 0: the function itself).
    """

    group: str
    fn: str
    dim: int
    weight: float = 1.0
    encs: tuple[Enc, ...] = ()
    variants: tuple[str, ...] = ()
    offsets: tuple[float, ...] = ()
    variant_name: str = "kind"

    def __post_init__(self) -> None:
        f = FUNCTIONS[self.fn]
        if f.dims is not None and self.dim not in f.dims:
            raise ValueError(f"{self.fn} has no {self.dim}-D form")
        if self.encs and len(self.encs) != self.dim:
            raise ValueError(f"{self.group}: {len(self.encs)} encodings for {self.dim} dims")
        if self.variants and (
            len(self.offsets) != len(self.variants) or sorted(self.offsets)[0] != 0
        ):
            raise ValueError(f"{self.group}: one offset per variant, the best 0")

    def encodings(self) -> tuple[Enc, ...]:
        return self.encs or tuple(D() for _ in range(self.dim))

    def _full(self, name: str) -> str:
        # a group named "" is a single-group problem: plain names, no ``__``
        return f"{self.group}__{name}" if self.group else name

    def names(self) -> list[str]:
        return [self._full(e.name or f"x{i}") for i, e in enumerate(self.encodings())]

    def variant_param(self) -> str | None:
        return self._full(self.variant_name) if self.variants else None

    def specs(self) -> list[ParamSpec]:
        out = [e.spec(n) for e, n in zip(self.encodings(), self.names(), strict=True)]
        if self.variants:
            out.append(ParamSpec(str(self.variant_param()), CATEGORICAL, values=self.variants))
        return out

    def units(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        """(n, dim) unit-scaled coordinates from numeric parameter columns."""
        return np.stack(
            [e.unit(cols[n]) for e, n in zip(self.encodings(), self.names(), strict=True)], 1
        )

    def raw(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        """The function's excess over its minimum, per row, with the variant applied."""
        u = self.units(cols)
        offset = np.zeros(u.shape[0])
        if self.variants:
            which = cols[str(self.variant_param())].astype(int)
            offs = np.asarray(self.offsets)
            offset = offs[which]
            # each non-best variant mirrors one coordinate: the best continuous values move
            for j, off in enumerate(self.offsets):
                if off:
                    rows = which == j
                    c = j % self.dim
                    u[rows, c] = 1.0 - u[rows, c]
        lows, highs = zip(*(_domain(self.fn, i) for i in range(self.dim)), strict=True)
        z = np.asarray(lows) + u * (np.asarray(highs) - np.asarray(lows))
        f = FUNCTIONS[self.fn]
        excess = np.maximum(f.fn(z) - f.minimum(self.dim), 0.0)
        return excess / self._scale_fn() + offset

    def sample(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        cols = {nm: e.sample(rng, n) for e, nm in zip(self.encodings(), self.names(), strict=True)}
        if self.variants:
            cols[str(self.variant_param())] = rng.integers(0, len(self.variants), n).astype(float)
        return cols

    def key(self) -> str:
        return json.dumps(
            [
                self.fn,
                self.dim,
                [e.spec(n).to_json() for e, n in zip(self.encodings(), self.names(), strict=True)],
                self.variants,
                self.offsets,
            ],
            sort_keys=True,
        )

    def _scale_fn(self) -> float:
        return _function_scale(self)

    def value(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        """Rescaled: 0 at the optimum, median 1 over Katib-uniform draws."""
        return self.raw(cols) / _component_median(self)


MEDIAN_DRAWS = 20_000


def _seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


_SCALES: dict[str, float] = {}
_MEDIANS: dict[str, float] = {}


def _function_scale(comp: Comp) -> float:
    """Median excess of the bare function over Katib-uniform draws of its parameters, with the
    best variant (so that the variant offsets are in units of the function's typical excess)."""
    key = comp.key()
    if key not in _SCALES:
        rng = np.random.default_rng(_seed("scale|" + key))
        cols = comp.sample(rng, MEDIAN_DRAWS)
        lows, highs = zip(*(_domain(comp.fn, i) for i in range(comp.dim)), strict=True)
        z = np.asarray(lows) + comp.units(cols) * (np.asarray(highs) - np.asarray(lows))
        f = FUNCTIONS[comp.fn]
        _SCALES[key] = float(np.median(np.maximum(f.fn(z) - f.minimum(comp.dim), 0.0)))
    return _SCALES[key]


def _component_median(comp: Comp) -> float:
    key = comp.key()
    if key not in _MEDIANS:
        rng = np.random.default_rng(_seed("median|" + key))
        _MEDIANS[key] = float(np.median(comp.raw(comp.sample(rng, MEDIAN_DRAWS))))
    return _MEDIANS[key]


@dataclass(frozen=True)
class Interaction:
    """A cross-group term: ``diff`` s*(u_a - u_b)^2 on coordinates, ``product`` s*c_a*c_b."""

    kind: str  # diff | product
    a: str  # group (product) or parameter name (diff)
    b: str
    strength: float


# ---- problems -----------------------------------------------------------------------------
class Problem:
    """A benchmark problem: Katib parameter specs, subnetworks, objective and noise.

    ``value(assignment)`` takes Katib's strings (``{"h6__x0": "0.25", ...}``) and returns the
    noise-free objective (minimise); an observation adds ``noise * N(0, 1)``.
    """

    name: str
    noise: float
    kind: str  # a short description of what the problem tests

    def specs(self) -> list[ParamSpec]:
        raise NotImplementedError

    def value(self, assignment: Mapping[str, str]) -> float:
        raise NotImplementedError

    def subnetworks(self) -> dict[str, list[str]]:
        """Groups by the ``<group>__<param>`` convention (no ``__``: group ``global``)."""
        groups: dict[str, list[str]] = {}
        for s in self.specs():
            head, sep, _ = s.name.partition("__")
            groups.setdefault(head if sep else "global", []).append(s.name)
        return groups

    @property
    def single_group(self) -> bool:
        return len(self.subnetworks()) == 1

    def fingerprint(self) -> str:
        """A hash of the definition and of the objective at 16 fixed points: changes when the
        problem changes, whatever in the code changed it."""
        h = hashlib.sha256(
            json.dumps([self.name, self.noise, [s.to_json() for s in self.specs()]]).encode()
        )
        rng = np.random.default_rng(12345)
        for _ in range(16):
            h.update(f"{self.value(random_assignment(self, rng)):.10g}".encode())
        return h.hexdigest()[:16]


def random_assignment(prob: Problem, rng: np.random.Generator) -> dict[str, str]:
    """A uniform draw from a problem's Katib space, as Katib's strings."""
    out = {}
    for s in prob.specs():
        if s.type in (DISCRETE, CATEGORICAL):
            out[s.name] = s.values[int(rng.integers(0, len(s.values)))]
        elif s.type == INT:
            lo, hi, st = int(s.min), int(s.max), int(s.step or 1)
            out[s.name] = str(lo + st * int(rng.integers(0, (hi - lo) // st + 1)))
        elif s.distribution == LOG_UNIFORM:
            out[s.name] = repr(
                math.exp(rng.uniform(math.log(float(s.min)), math.log(float(s.max))))
            )
        else:
            out[s.name] = repr(float(rng.uniform(float(s.min), float(s.max))))
    return out


@dataclass(frozen=True)
class Composite(Problem):
    """Weighted components plus interactions, optionally noisy."""

    name: str
    comps: tuple[Comp, ...]
    interactions: tuple[Interaction, ...] = ()
    noise: float = 0.0
    kind: str = ""
    _specs: list[ParamSpec] = field(default_factory=list, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._specs.extend(s for c in self.comps for s in c.specs())
        names = [s.name for s in self._specs]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: duplicate parameter names")

    def specs(self) -> list[ParamSpec]:
        return list(self._specs)

    def _cols(self, assignment: Mapping[str, str]) -> dict[str, np.ndarray]:
        cols = {}
        for s in self._specs:
            text = assignment[s.name]
            if s.type == CATEGORICAL:
                cols[s.name] = np.array([float(s.values.index(text))])
            else:
                cols[s.name] = np.array([float(text)])
        return cols

    def values(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        """Vectorised objective over numeric columns (categoricals as indices)."""
        comp_vals = {c.group: c.value(cols) for c in self.comps}
        wsum = sum(c.weight for c in self.comps)
        total = sum(c.weight * comp_vals[c.group] for c in self.comps) / wsum
        for ix in self.interactions:
            if ix.kind == "product":
                total = total + ix.strength * comp_vals[ix.a] * comp_vals[ix.b]
            else:
                total = total + ix.strength * (self._unit(ix.a, cols) - self._unit(ix.b, cols)) ** 2
        return np.asarray(total, dtype=float)

    def _unit(self, param: str, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        for c in self.comps:
            for e, n in zip(c.encodings(), c.names(), strict=True):
                if n == param:
                    return e.unit(cols[n])
        raise KeyError(param)

    def value(self, assignment: Mapping[str, str]) -> float:
        return float(self.values(self._cols(assignment))[0])


@dataclass(frozen=True)
class Legacy(Problem):
    """A problem of the old synthetic suite (benchmarks/synthetic.py), unchanged."""

    name: str
    base: synthetic.Problem
    kind: str = ""

    @property
    def noise(self) -> float:  # type: ignore[override]
        return self.base.noise

    def specs(self) -> list[ParamSpec]:
        return [ParamSpec(n, DOUBLE, repr(lo), repr(hi)) for n, lo, hi in self.base.parameters()]

    def value(self, assignment: Mapping[str, str]) -> float:
        return self.base.value({k: float(v) for k, v in assignment.items()})


def _pair(tune: Problem, check: Problem) -> tuple[Problem, Problem]:
    return tune, check


ACT = ("relu", "gelu", "tanh", "elu")
OPTIM = ("adam", "sgd", "rmsprop")

#: Sibling pairs of the same kind, built before any run; the first of each pair is TUNE.
PAIRS: tuple[tuple[Problem, Problem], ...] = (
    _pair(  # equal weights, doubles
        Composite(
            "eq4-ackley",
            (
                Comp("ack", "ackley", 4),
                Comp("ros", "rosenbrock", 4),
                Comp("h3", "hartmann3", 3),
                Comp("br", "branin", 2),
            ),
            kind="equal weights, 4 groups, doubles",
        ),
        Composite(
            "eq3-styb",
            (Comp("sty", "styblinski", 5), Comp("levy", "levy", 4), Comp("h6", "hartmann6", 6)),
            kind="equal weights, 3 groups, doubles",
        ),
    ),
    _pair(  # unequal weights, doubles
        Composite(
            "uneq4-rast",
            (
                Comp("ras", "rastrigin", 3, 1.0),
                Comp("h6", "hartmann6", 6, 0.3),
                Comp("br", "branin", 2, 0.1),
                Comp("ros", "rosenbrock", 3, 0.03),
            ),
            kind="unequal weights (1, .3, .1, .03), 4 groups, doubles",
        ),
        Composite(
            "uneq3-mich",
            (
                Comp("mich", "michalewicz", 5, 1.0),
                Comp("ack", "ackley", 4, 0.2),
                Comp("h3", "hartmann3", 3, 0.05),
            ),
            kind="unequal weights (1, .2, .05), 3 groups, doubles",
        ),
    ),
    _pair(  # two groups
        Composite(
            "two-h6-levy",
            (Comp("h6", "hartmann6", 6, 1.0), Comp("levy", "levy", 2, 0.5)),
            kind="2 groups, weights (1, .5), doubles",
        ),
        Composite(
            "two-ackley-branin",
            (Comp("ack", "ackley", 4, 1.0), Comp("br", "branin", 2, 0.5)),
            kind="2 groups, weights (1, .5), doubles",
        ),
    ),
    _pair(  # six groups, many parameters
        Composite(
            "six-22d",
            (
                Comp("br", "branin", 2, 1.0),
                Comp("h3", "hartmann3", 3, 0.8),
                Comp("ros", "rosenbrock", 4, 0.6),
                Comp("levy", "levy", 4, 0.4),
                Comp("sty", "styblinski", 4, 0.2),
                Comp("ack", "ackley", 5, 0.1),
            ),
            kind="6 groups, 22 parameters, weights 1 to .1, doubles",
        ),
        Composite(
            "six-21d",
            (
                Comp("h6", "hartmann6", 6, 1.0),
                Comp("br", "branin", 2, 1.0),
                Comp("ras", "rastrigin", 3, 0.5),
                Comp("mich", "michalewicz", 2, 0.5),
                Comp("ros", "rosenbrock", 4, 0.25),
                Comp("levy", "levy", 4, 0.25),
            ),
            kind="6 groups, 21 parameters, weights 1 to .25, doubles",
        ),
    ),
    _pair(  # strong product interaction
        Composite(
            "prod-ix",
            (Comp("ack", "ackley", 4), Comp("h6", "hartmann6", 6), Comp("br", "branin", 2)),
            (Interaction("product", "ack", "h6", 1.0),),
            kind="product interaction 1.0 between two of 3 equal groups",
        ),
        Composite(
            "prod-ix-b",
            (Comp("levy", "levy", 4), Comp("ros", "rosenbrock", 3), Comp("h3", "hartmann3", 3)),
            (Interaction("product", "levy", "ros", 1.0),),
            kind="product interaction 1.0 between two of 3 equal groups",
        ),
    ),
    _pair(  # strong diff interactions (the optimum moves off the component optima)
        Composite(
            "diff-ix",
            (Comp("sty", "styblinski", 4), Comp("h3", "hartmann3", 3), Comp("br", "branin", 2)),
            (
                Interaction("diff", "sty__x0", "h3__x0", 1.0),
                Interaction("diff", "h3__x1", "br__x0", 0.5),
            ),
            kind="diff interactions 1.0 and 0.5 chaining 3 equal groups",
        ),
        Composite(
            "diff-ix-b",
            (Comp("ack", "ackley", 3), Comp("h6", "hartmann6", 6), Comp("levy", "levy", 3)),
            (
                Interaction("diff", "ack__x0", "h6__x0", 1.0),
                Interaction("diff", "h6__x2", "levy__x1", 0.5),
            ),
            kind="diff interactions 1.0 and 0.5 chaining 3 equal groups",
        ),
    ),
    _pair(  # noise
        Composite(
            "noisy-eq",
            (
                Comp("ros", "rosenbrock", 3),
                Comp("h3", "hartmann3", 3),
                Comp("br", "branin", 2),
                Comp("levy", "levy", 3),
            ),
            noise=0.03,
            kind="noise sigma .03, 4 equal groups, doubles",
        ),
        Composite(
            "noisy-uneq",
            (
                Comp("ack", "ackley", 4, 1.0),
                Comp("h6", "hartmann6", 6, 0.3),
                Comp("sty", "styblinski", 3, 0.1),
            ),
            noise=0.05,
            kind="noise sigma .05, 3 groups, weights (1, .3, .1), doubles",
        ),
    ),
    _pair(  # mixed Katib types
        Composite(
            "mixed4",
            (
                Comp(
                    "conv",
                    "hartmann6",
                    6,
                    1.0,
                    (
                        N(8, 128, 8, "filters"),
                        N(1, 7, 2, "kernel"),
                        D(0, 0.5, "dropout"),
                        L(1e-5, 1e-1, "wd"),
                        Q(16, 32, 64, 128, 256, name="batch"),
                        D(0, 1, "mom"),
                    ),
                    ACT,
                    (0.25, 0.0, 0.5, 0.15),
                    "act",
                ),
                Comp("dense", "branin", 2, 1.0, (N(16, 512, 16, "units"), L(1e-4, 1.0, "l2"))),
                Comp(
                    "opt",
                    "levy",
                    3,
                    1.0,
                    (L(1e-5, 1e-1, "lr"), D(0.8, 0.999, "beta"), N(0, 20, 1, "warmup")),
                    OPTIM,
                    (0.0, 0.4, 0.2),
                    "name",
                ),
                Comp(
                    "head",
                    "rosenbrock",
                    2,
                    1.0,
                    (Q(0.0, 0.1, 0.2, 0.3, 0.4, 0.5, name="drop"), D(0, 1, "ls")),
                ),
            ),
            kind="mixed types (int+step, logUniform, discrete, categorical), 4 equal groups",
        ),
        Composite(
            "mixed4-b",
            (
                Comp(
                    "enc",
                    "ackley",
                    4,
                    1.0,
                    (
                        N(1, 8, 1, "layers"),
                        N(32, 256, 32, "width"),
                        L(1e-4, 1e-1, "lr"),
                        D(0, 0.6, "dropout"),
                    ),
                    ACT,
                    (0.0, 0.3, 0.15, 0.45),
                    "act",
                ),
                Comp(
                    "dec",
                    "hartmann3",
                    3,
                    1.0,
                    (Q(1, 2, 4, 8, name="heads"), L(1e-6, 1e-2, "wd"), N(2, 30, 2, "epochs")),
                    OPTIM,
                    (0.3, 0.0, 0.15),
                    "opt",
                ),
                Comp(
                    "fuse",
                    "styblinski",
                    3,
                    1.0,
                    (D(0, 1, "alpha"), Q(64, 128, 256, 512, 1024, name="dim"), L(0.01, 10, "temp")),
                ),
                Comp("aux", "branin", 2, 1.0, (N(0, 10, 1, "k"), D(-1, 1, "bias"))),
            ),
            kind="mixed types (int+step, logUniform, discrete, categorical), 4 equal groups",
        ),
    ),
    _pair(  # mixed types, unequal, interaction and noise together
        Composite(
            "mixed-hard",
            (
                Comp(
                    "cnn",
                    "ackley",
                    3,
                    1.0,
                    (N(8, 64, 8, "filters"), L(1e-4, 1e-1, "lr"), D(0, 0.5, "dropout")),
                    ("max", "avg", "none"),
                    (0.0, 0.2, 0.5),
                    "pool",
                ),
                Comp(
                    "rnn",
                    "hartmann3",
                    3,
                    0.3,
                    (N(16, 256, 16, "hidden"), Q(1, 2, 3, name="layers"), D(0, 1, "clip")),
                ),
                Comp(
                    "mlp",
                    "rosenbrock",
                    3,
                    0.1,
                    (L(1e-3, 1.0, "l2"), N(1, 4, 1, "depth"), D(0, 1, "x")),
                ),
            ),
            (Interaction("diff", "cnn__lr", "rnn__clip", 0.5),),
            noise=0.02,
            kind="mixed types, weights (1, .3, .1), diff interaction .5, noise .02",
        ),
        Composite(
            "mixed-hard-b",
            (
                Comp(
                    "vis",
                    "levy",
                    4,
                    1.0,
                    (
                        N(2, 12, 2, "blocks"),
                        L(1e-5, 1e-2, "lr"),
                        D(0, 0.5, "dropout"),
                        Q(32, 64, 128, 256, name="batch"),
                    ),
                    ("sgd", "adam", "adamw"),
                    (0.35, 0.2, 0.0),
                    "optim",
                ),
                Comp("txt", "michalewicz", 2, 0.3, (N(50, 500, 50, "vocab_k"), D(0, 1, "tau"))),
                Comp("fus", "branin", 2, 0.1, (L(0.01, 100, "scale"), D(0, 1, "gate"))),
            ),
            (Interaction("diff", "vis__lr", "fus__gate", 0.5),),
            noise=0.02,
            kind="mixed types, weights (1, .3, .1), diff interaction .5, noise .02",
        ),
    ),
)

#: Single-group pairs: no structure to exploit (parameters without ``__``: one group).
SINGLE_PAIRS: tuple[tuple[Problem, Problem], ...] = (
    _pair(
        Composite("single-h6", (Comp("", "hartmann6", 6),), kind="single group, Hartmann6"),
        Composite("single-ackley10", (Comp("", "ackley", 10),), kind="single group, Ackley 10-D"),
    ),
    _pair(
        Composite(
            "single-mixed-levy8",
            (
                Comp(
                    "",
                    "levy",
                    8,
                    1.0,
                    (
                        N(1, 16, 1),
                        N(8, 256, 8),
                        L(1e-5, 1e-1),
                        L(1e-3, 10.0),
                        D(0, 1),
                        D(-1, 1),
                        Q(16, 32, 64, 128, 256),
                        Q(0.1, 0.25, 0.5, 0.75, 0.9),
                    ),
                    OPTIM,
                    (0.0, 0.25, 0.5),
                    "optim",
                ),
            ),
            kind="single group, Levy 8-D, mixed types",
        ),
        Composite(
            "single-mixed-sty8",
            (
                Comp(
                    "",
                    "styblinski",
                    8,
                    1.0,
                    (
                        N(2, 20, 2),
                        N(32, 512, 32),
                        L(1e-6, 1e-2),
                        L(0.01, 1.0),
                        D(0, 1),
                        D(0, 0.5),
                        Q(1, 2, 4, 8, 16),
                        Q(0.0, 0.1, 0.2, 0.3),
                    ),
                    ACT,
                    (0.2, 0.4, 0.0, 0.1),
                    "act",
                ),
            ),
            kind="single group, Styblinski-Tang 8-D, mixed types",
        ),
    ),
)

#: Tune problems built from BBOB functions (COCO's f1-f24, instance ``BBOB_INSTANCE``), one or two
#: per BBOB family: rotated, ill-conditioned, deceptive and weakly structured components that the
#: hand-written functions above lack. Tune only: defaults may be chosen on them; they have no
#: check siblings and the check set is unchanged.
BBOB_TUNE: tuple[Problem, ...] = (
    Composite(
        "bb-sep",
        (Comp("ras", "bbob3", 3), Comp("buche", "bbob4", 3), Comp("ell", "bbob2", 4)),
        kind="BBOB separable (f3, f4, f2), equal weights, doubles",
    ),
    Composite(
        "bb-cond",
        (
            Comp("ell", "bbob10", 4, 1.0),
            Comp("disc", "bbob11", 3, 0.5),
            Comp("ridge", "bbob13", 3, 0.3),
            Comp("pow", "bbob14", 2, 0.2),
        ),
        kind="BBOB ill-conditioned, rotated (f10, f11, f13, f14), weights 1 to .2",
    ),
    Composite(
        "bb-struct",
        (Comp("ras", "bbob15", 4), Comp("schaf", "bbob17", 3), Comp("grie", "bbob19", 4)),
        kind="BBOB multimodal with global structure (f15, f17, f19), equal weights",
    ),
    Composite(
        "bb-weak",
        (
            Comp("schw", "bbob20", 3, 1.0),
            Comp("gal101", "bbob21", 4, 0.6),
            Comp("gal21", "bbob22", 3, 0.4),
            Comp("lun", "bbob24", 2, 0.2),
        ),
        kind="BBOB multimodal, weak global structure (f20, f21, f22, f24), weights 1 to .2",
    ),
    Composite(
        "bb-ix",
        (Comp("ros", "bbob8", 3), Comp("rosr", "bbob9", 3), Comp("cig", "bbob12", 3)),
        (
            Interaction("product", "ros", "cig", 0.3),
            Interaction("diff", "rosr__x0", "cig__x1", 0.5),
        ),
        kind="BBOB Rosenbrock, rotated Rosenbrock, bent cigar (f8, f9, f12), interactions",
    ),
    Composite(
        "bb-mixed",
        (
            Comp("weier", "bbob16", 3, 1.0, (N(1, 64), L(1e-4, 1e-1), Q(16, 32, 64, 128, 256))),
            Comp(
                "schaf",
                "bbob18",
                3,
                0.5,
                (D(0, 1), L(1e-3, 1.0), N(0, 10)),
                ACT,
                (0.0, 0.2, 0.4, 0.1),
                "act",
            ),
            Comp(
                "sector",
                "bbob6",
                4,
                0.3,
                (D(0, 0.5), N(8, 256, 8), L(1e-5, 1e-2), Q(0.0, 0.1, 0.2, 0.3, 0.5)),
                OPTIM,
                (0.3, 0.0, 0.15),
                "optim",
            ),
        ),
        noise=0.02,
        kind="BBOB mixed types, categorical variants (f16, f18, f6), noise .02",
    ),
    Composite(
        "bb-six",
        (
            Comp("sector", "bbob6", 3, 1.0),
            Comp("step", "bbob7", 3, 0.8),
            Comp("cig", "bbob12", 3, 0.6),
            Comp("ras", "bbob15", 3, 0.4),
            Comp("gal", "bbob21", 4, 0.3),
            Comp("kat", "bbob23", 2, 0.2),
        ),
        kind="BBOB, 6 groups, 18 parameters (f6, f7, f12, f15, f21, f23), weights 1 to .2",
    ),
    Composite(
        "bb-single-schaf",
        (Comp("", "bbob17", 8),),
        kind="single group, BBOB Schaffer F7 (f17) 8-D, rotated",
    ),
)

#: Tune problems whose optima sit on bounds of the search box (every optimum of the other
#: problems is inside it): the cost of the GP's centred prior mean (``centre_prior``) where its
#: assumption fails, measured before its strength is tuned further. Tune only.
EDGE_TUNE: tuple[Problem, ...] = (
    Composite(
        "edge-all",
        (
            Comp("ros", "rosenbrock-edge", 4),
            Comp("levy", "levy-edge", 4),
            Comp("sty", "styblinski-edge", 4),
        ),
        kind="every optimum on a bound (upper for ros, lower for levy and sty), equal weights",
    ),
    Composite(
        "edge-some",
        (
            Comp("ros", "rosenbrock-edge", 4),
            Comp("h6", "hartmann6", 6),
            Comp("br", "branin", 2),
        ),
        kind="one group's optimum on a bound (a corner), two inside, equal weights",
    ),
)

LEGACY: tuple[Problem, ...] = tuple(
    Legacy(name, base, "old synthetic suite (benchmarks/synthetic.py)")
    for name, base in synthetic.PROBLEMS.items()
)

BBOB: tuple[str, ...] = tuple(p.name for p in BBOB_TUNE)
EDGE: tuple[str, ...] = tuple(p.name for p in EDGE_TUNE)
TUNE: tuple[str, ...] = (
    tuple(p.name for p in LEGACY) + tuple(t.name for t, _ in PAIRS + SINGLE_PAIRS) + BBOB + EDGE
)
CHECK: tuple[str, ...] = tuple(c.name for _, c in PAIRS + SINGLE_PAIRS)
#: ``tune-bbob`` and ``tune-edge``: parts of the tune set alone (for screens on them).
SETS: dict[str, tuple[str, ...]] = {
    "tune": TUNE,
    "tune-bbob": BBOB,
    "tune-edge": EDGE,
    "check": CHECK,
}

PROBLEMS: dict[str, Problem] = {
    p.name: p
    for p in (
        *LEGACY,
        *(p for pair in PAIRS + SINGLE_PAIRS for p in pair),
        *BBOB_TUNE,
        *EDGE_TUNE,
    )
}


def get(name: str) -> Problem:
    """A problem by name; an old suite name may carry ``-noise<sigma>``."""
    if name in PROBLEMS:
        return PROBLEMS[name]
    base, sep, sigma = name.partition("-noise")
    if sep and base in synthetic.PROBLEMS:
        return Legacy(name, synthetic.with_noise(synthetic.PROBLEMS[base], float(sigma)), "")
    raise KeyError(f"unknown problem {name!r}; known: {sorted(PROBLEMS)}")


def describe() -> list[dict[str, Any]]:
    """One row per problem: name, set, groups, parameters by type, noise, kind."""
    rows = []
    for name, p in PROBLEMS.items():
        types = {
            t: sum(s.type == t for s in p.specs()) for t in (DOUBLE, INT, DISCRETE, CATEGORICAL)
        }
        rows.append(
            {
                "name": name,
                "set": "tune" if name in TUNE else "check",
                "groups": len(p.subnetworks()),
                "params": len(p.specs()),
                "types": types,
                "noise": p.noise,
                "kind": p.kind,
            }
        )
    return rows


__all__: Sequence[str] = (
    "BBOB",
    "CHECK",
    "PROBLEMS",
    "SETS",
    "TUNE",
    "Comp",
    "Composite",
    "Interaction",
    "ParamSpec",
    "Problem",
    "describe",
    "get",
    "random_assignment",
)


def main() -> None:
    """Print the problem set: ``python -m benchmarks.problems``."""
    print(f"{'problem':22s} {'set':6s} groups params noise  kind")
    for r in describe():
        print(
            f"{r['name']:22s} {r['set']:6s} {r['groups']:6d} {r['params']:6d} "
            f"{r['noise']:<5g}  {r['kind']}"
        )


if __name__ == "__main__":
    main()
