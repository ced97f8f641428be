"""Multi-fidelity problems: suite problems with a training budget ``epochs`` (issue 13).

A problem here is a problem of ``benchmarks/problems.py`` (its parameters and its full-budget
objective ``f(x)``, unchanged) plus one int parameter ``epochs`` in ``[B_MIN, B_MAX]``, the
training budget. A trial of configuration ``x`` at budget ``b`` observes a point of a learning
curve::

    value(x, b) = f(x) + (FLOOR + AMPLITUDE * slow(x)) * shape(b) + sigma(b) * eps(x, b)

    shape(b) = ((B_MAX / b)**ALPHA - 1) / ((B_MAX / B_MIN)**ALPHA - 1)   # 1 at B_MIN, 0 at B_MAX
    sigma(b) = SIGMA_FULL * sqrt(B_MAX / b)

- ``f(x)`` is the suite problem's noise-free objective (a random point scores about 1, the
  optimum 0); at the full budget the curve has reached it, so ``value(x, B_MAX)`` is ``f(x)``
  plus a little noise.
- ``slow(x)`` in [0, 1] is how slowly configuration ``x`` learns: 60 % a smooth periodic field
  over the unit-scaled parameters (a fixed random direction per problem: nothing to do with
  ``f``) and 40 % ``exp(-f(x) / 0.5)``, which is high for good configurations. So the ranking at
  a low budget is correlated with the full-budget ranking but not the same: some good
  configurations start slow and finish well (the case that makes early stopping hard), and the
  two rankings meet as ``b`` grows (``tests/benchmarks/test_multi_fidelity.py`` checks both).
- ``eps(x, b)`` is a standard normal drawn from a hash of (problem, the configuration's Katib
  strings without ``epochs``, ``b``): the same trial always observes the same value (like a
  training run with a fixed seed), so a run is deterministic per (problem, seed, assignment).
  The suite loop's own noise (``Problem.noise``) is 0 for these problems.
- The **cost** of a trial is its budget ``b`` (epochs); a full-budget trial costs ``B_MAX``.

Each problem comes in two views: ``mf-<base>`` has the ``epochs`` parameter (for ASHA and
hyperband arms), and ``mf-<base>-full`` has not and evaluates every trial at ``B_MAX`` (for the
full-budget arm, as a user who trains every trial for the full number of epochs would write the
Experiment). The suite's controller loop (``_suite_drive.run_grpc``) looks problems up by name
in ``problems.PROBLEMS``; :func:`registered` puts a view there for the duration of a run only,
so the suite's own sets and tables never see these problems.

The bases are sibling pairs of ``problems.PAIRS`` (the tune/check split of docs/benchmarks.md):
constants here were set by looking at the TUNE siblings only; the CHECK siblings are reported.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from benchmarks import problems
from benchmarks.problems import CATEGORICAL, DISCRETE, INT, LOG_UNIFORM, ParamSpec, Problem

BUDGET = "epochs"
B_MIN, B_MAX = 1, 27
#: Katib's and ASHA's reduction factor: rungs 1, 3, 9, 27.
ETA = 3
ALPHA = 0.7
#: Every configuration is worse early by FLOOR (no effect on rankings) plus AMPLITUDE * slow(x).
FLOOR = 0.3
AMPLITUDE = 1.0
SIGMA_FULL = 0.01
#: Share of the configuration-independent smooth field in slow(x); the rest follows f(x).
FIELD_SHARE = 0.6
SLOW_SCALE = 0.5

#: (tune base, check base) sibling pairs of problems.PAIRS, all multi-subnetwork; every list
#: in them holds integers, which Katib's hyperband needs (it parses discrete values with int()).
BASE_PAIRS: tuple[tuple[str, str], ...] = (
    ("two-h6-levy", "two-ackley-branin"),
    ("uneq4-rast", "uneq3-mich"),
    ("diff-ix", "diff-ix-b"),
    ("eq4-ackley", "eq3-styb"),
)
TUNE_BASES = tuple(t for t, _ in BASE_PAIRS)
CHECK_BASES = tuple(c for _, c in BASE_PAIRS)
PREFIX = "mf-"
FULL_SUFFIX = "-full"


def mf_name(base: str, *, full: bool = False) -> str:
    """The registered name of a base problem's multi-fidelity view (or its full-budget view)."""
    return f"{PREFIX}{base}{FULL_SUFFIX if full else ''}"


def _seed(*parts: str) -> int:
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def shape(b: float) -> float:
    """The learning curve's excess at budget ``b``: 1 at ``B_MIN``, 0 at ``B_MAX``."""
    return ((B_MAX / b) ** ALPHA - 1.0) / ((B_MAX / B_MIN) ** ALPHA - 1.0)


def sigma(b: float) -> float:
    """The observation noise's standard deviation at budget ``b``."""
    return SIGMA_FULL * math.sqrt(B_MAX / b)


def _unit(spec: ParamSpec, text: str) -> float:
    """A Katib value mapped onto [0, 1] along its parameter (lists by index)."""
    if spec.type in (DISCRETE, CATEGORICAL):
        return spec.values.index(text) / max(len(spec.values) - 1, 1)
    lo, hi, v = float(spec.min), float(spec.max), float(text)
    if spec.distribution == LOG_UNIFORM:
        lo, hi, v = math.log(lo), math.log(hi), math.log(v)
    return (v - lo) / (hi - lo)


@dataclass(frozen=True)
class MultiFidelity(Problem):
    """A suite problem with a training budget; ``full`` is the view without ``epochs``.

    Attributes:
        name: the registered name (:func:`mf_name`).
        base: the suite problem (its ``f`` is the full-budget objective).
        full: the full-budget view: no ``epochs`` parameter, every trial at ``B_MAX``.
    """

    name: str
    base: Problem
    full: bool = False
    noise: float = 0.0  # the loop adds nothing: the noise is part of value()
    kind: str = ""

    @cached_property
    def _base_specs(self) -> list[ParamSpec]:
        return self.base.specs()

    @cached_property
    def _direction(self) -> tuple[np.ndarray, float]:
        """The slow field's fixed random direction and phase (seeded by the base's name)."""
        rng = np.random.default_rng(_seed("mf-field", self.base.name))
        d = len(self._base_specs)
        return rng.normal(0.0, 1.5 / math.sqrt(d), d), float(rng.uniform(0, 2 * math.pi))

    def specs(self) -> list[ParamSpec]:
        budget = ParamSpec(BUDGET, INT, str(B_MIN), str(B_MAX))
        return list(self._base_specs) if self.full else [*self._base_specs, budget]

    def config(self, assignment: Mapping[str, str]) -> dict[str, str]:
        """The assignment without the budget: the base problem's parameters."""
        return {s.name: assignment[s.name] for s in self._base_specs}

    def budget(self, assignment: Mapping[str, str]) -> float:
        """A trial's budget (epochs), which is also its cost; ``B_MAX`` in the full view."""
        return float(B_MAX) if self.full else float(assignment[BUDGET])

    def full_value(self, assignment: Mapping[str, str]) -> float:
        """f(x): the noise-free value at the full budget."""
        return self.base.value(self.config(assignment))

    def slow(self, assignment: Mapping[str, str], f: float | None = None) -> float:
        """slow(x) in [0, 1]: how slowly the configuration learns."""
        w, phase = self._direction
        u = np.array([_unit(s, assignment[s.name]) for s in self._base_specs])
        field = 0.5 + 0.5 * math.sin(2 * math.pi * float(w @ u) + phase)
        f = self.full_value(assignment) if f is None else f
        return FIELD_SHARE * field + (1 - FIELD_SHARE) * math.exp(-max(f, 0.0) / SLOW_SCALE)

    def curve(self, assignment: Mapping[str, str], b: float) -> float:
        """The noise-free learning curve of the configuration at budget ``b``."""
        f = self.full_value(assignment)
        return f + (FLOOR + AMPLITUDE * self.slow(assignment, f)) * shape(b)

    def eps(self, assignment: Mapping[str, str], b: float) -> float:
        """The standard normal draw of this configuration at budget ``b`` (deterministic)."""
        cfg = self.config(assignment)
        key = "\x1e".join(f"{k}={cfg[k]}" for k in sorted(cfg))
        rng = np.random.default_rng(_seed("mf-noise", self.base.name, key, f"{b:.12g}"))
        return float(rng.standard_normal())

    def observe(self, assignment: Mapping[str, str], b: float) -> float:
        """What a trial of the configuration at budget ``b`` reports."""
        return self.curve(assignment, b) + sigma(b) * self.eps(assignment, b)

    def value(self, assignment: Mapping[str, str]) -> float:
        """The observed loss of a trial (what the controller loop records)."""
        return self.observe(assignment, self.budget(assignment))


def make(base: str, *, full: bool = False) -> MultiFidelity:
    """The multi-fidelity view (``full=False``) or full-budget view of a suite problem."""
    prob = problems.PROBLEMS[base]
    what = "full-budget view" if full else f"budget `{BUDGET}` in [{B_MIN}, {B_MAX}]"
    return MultiFidelity(mf_name(base, full=full), prob, full, kind=f"{base}: {what}")


@contextmanager
def registered(*probs: MultiFidelity) -> Iterator[None]:
    """Add the problems to ``problems.PROBLEMS`` while the block runs; removes what it added.

    The suite's loop finds problems by name in that table; these problems are not part of the
    suite's sets (``problems.TUNE``/``CHECK``) and must not stay in its table.
    """
    added = [p.name for p in probs if p.name not in problems.PROBLEMS]
    for p in probs:
        problems.PROBLEMS.setdefault(p.name, p)
    try:
        yield
    finally:
        for name in added:
            problems.PROBLEMS.pop(name, None)


def get(name: str) -> MultiFidelity:
    """A multi-fidelity problem by its registered name (``mf-<base>`` or ``mf-<base>-full``)."""
    if not name.startswith(PREFIX):
        raise KeyError(f"{name!r} is not a multi-fidelity problem (mf-<base>[-full])")
    base = name.removeprefix(PREFIX)
    full = base.endswith(FULL_SUFFIX) and base not in problems.PROBLEMS
    base = base.removesuffix(FULL_SUFFIX) if full else base
    if base not in problems.PROBLEMS:
        raise KeyError(f"unknown base problem {base!r} in {name!r}")
    return make(base, full=full)


def rank_correlation(prob: MultiFidelity, b: float, *, n: int = 2000, seed: int = 0) -> float:
    """Spearman correlation, over ``n`` random configurations, between the observed value at
    budget ``b`` and the full-budget value f(x)."""
    rng = np.random.default_rng(seed)
    low, full = [], []
    for _ in range(n):
        a = problems.random_assignment(prob.base, rng)
        low.append(prob.observe(a, b))
        full.append(prob.full_value(a))
    return _spearman(np.array(low), np.array(full))


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main() -> None:
    """Print each problem's rank correlation by budget: ``python -m benchmarks.mf_problems``."""
    budgets = [B_MIN * ETA**k for k in range(10) if B_MIN * ETA**k < B_MAX] + [B_MAX]
    print(f"{'problem':24s} set    " + " ".join(f"b={b:<5g}" for b in budgets))
    for tune, check in BASE_PAIRS:
        for base, which in ((tune, "tune"), (check, "check")):
            prob = make(base)
            cells = " ".join(f"{rank_correlation(prob, b, n=1000):<7.2f}" for b in budgets)
            print(f"{prob.name:24s} {which:6s} {cells}")


if __name__ == "__main__":
    main()
