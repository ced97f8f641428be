"""One GetSuggestions call, end to end, in pure terms: validate, rebuild history, propose, name.

Nothing here is remembered between calls. The small durable state, the *ledger* of suggestions not
yet seen as trials, travels through Katib: it is returned as the algorithm setting
``dcsa_suggested`` and Katib merges it into the settings of later requests.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .engine_labels import LABEL_ALGORITHM, LABEL_GROUP, LABEL_ORIGIN
from .errors import InvalidObjectiveError, InvalidRequestError
from .history import History, Objective, TrialRecord, build_history
from .provenance import Provenance, encode_sequence
from .registry import get_strategy
from .settings import LEDGER_SETTING
from .space import SearchSpace
from .strategies import fidelity
from .strategy import Context, Proposals, Strategy
from .warm_start import WARM_START_SETTING

log = logging.getLogger(__name__)

MAX_BATCH = 1000
LEDGER_LIMIT = 512


@dataclass(frozen=True, kw_only=True)
class SuggestRequest:
    """A GetSuggestions call in core terms."""

    algorithm: str
    experiment: str
    space: SearchSpace
    objective: Objective
    settings: Mapping[str, str]
    trials: Sequence[TrialRecord]
    n: int
    total_requested: int


@dataclass(frozen=True)
class Suggestion:
    assignments: dict[str, str]
    trial_name: str
    labels: dict[str, str]
    origin: str


@dataclass(frozen=True, kw_only=True)
class SuggestResponse:
    suggestions: list[Suggestion]
    ledger: str
    history: History
    fallbacks: list[str] = field(default_factory=list)
    fit_seconds: float | None = None
    warnings: list[str] = field(default_factory=list)
    importance: dict[str, float] = field(default_factory=dict)
    shares: dict[str, float] = field(default_factory=dict)


def format_mix(shares: Mapping[str, float]) -> str:
    """The ``dcsa_mix`` setting's value: ``bo=0.500,sa=0.300,dc=0.200``."""
    return ",".join(f"{k}={v:.3f}" for k, v in shares.items())


def parse_mix(text: str | None) -> dict[str, float]:
    """Read ``dcsa_mix`` back (for displays); anything malformed gives an empty mix."""
    out: dict[str, float] = {}
    for part in (text or "").split(","):
        name, sep, value = part.partition("=")
        try:
            out[name] = float(value)
        except ValueError:
            return {}
        if not sep:
            return {}
    return out


def validate(
    algorithm: str, space: SearchSpace, objective: Objective, settings: Mapping[str, str]
) -> tuple[Strategy, Any]:
    """Everything ValidateAlgorithmSettings checks; GetSuggestions runs the same.

    Raises:
        InvalidArgumentError (and subclasses): naming the field and what is allowed.
    """
    if not objective.metric:
        raise InvalidObjectiveError("spec.objective.objectiveMetricName", "must not be empty")
    strategy = get_strategy(algorithm)
    parsed = strategy.parse_settings(settings)
    strategy.check(space, parsed)
    return strategy, parsed


def experiment_seed(experiment: str, random_state: int | None) -> int:
    """The experiment's seed: the setting, or a stable hash of the experiment name."""
    if random_state is not None:
        return int(random_state)
    return zlib.crc32(experiment.encode())


@dataclass(frozen=True)
class LedgerEntry:
    """A suggestion not yet seen as a trial: its name, assignment and labels."""

    name: str
    assignments: dict[str, str]
    labels: dict[str, str]


def parse_ledger(text: str | None) -> tuple[list[LedgerEntry], list[str]]:
    """Decode the ledger setting; a malformed one is ignored with a warning, never fatal."""
    if not text:
        return [], []
    try:
        data = json.loads(text)
        entries = []
        for item in data["s"]:
            name, values = item[0], item[1]
            labels = item[2] if len(item) > 2 else {}
            entries.append(
                LedgerEntry(
                    str(name),
                    {str(k): str(v) for k, v in values.items()},
                    {str(k): str(v) for k, v in labels.items()},
                )
            )
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as exc:
        return [], [f"ignored malformed {LEDGER_SETTING} setting: {exc}"]
    return entries, []


def format_ledger(entries: Sequence[LedgerEntry]) -> str:
    return json.dumps(
        {"v": 1, "s": [[e.name, e.assignments, e.labels] for e in entries[-LEDGER_LIMIT:]]},
        separators=(",", ":"),
        sort_keys=True,
    )


def suggest(
    req: SuggestRequest,
    *,
    time_limit: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> SuggestResponse:
    """Answer one GetSuggestions call.

    Args:
        time_limit: seconds left before the caller's deadline (None: no deadline); the
            strategy's ``time_budget_seconds`` caps it further.

    Raises:
        InvalidArgumentError: bad algorithm, settings, space or request.
        SearchSpaceExhaustedError: a finite space has no unseen points left.
    """
    start = clock()
    strategy, settings = validate(req.algorithm, req.space, req.objective, req.settings)
    if req.n < 0 or req.n > MAX_BATCH:
        raise InvalidRequestError(
            "current_request_number", f"must be between 0 and {MAX_BATCH}, got {req.n}"
        )
    ledger, warnings = parse_ledger(req.settings.get(LEDGER_SETTING))
    trial_names = {t.name for t in req.trials}
    open_ledger = [e for e in ledger if e.name not in trial_names]
    history = build_history(
        req.space,
        req.objective,
        req.trials,
        extra_pending=[e.assignments for e in open_ledger],
        extra_names=[e.name for e in open_ledger],
        warm=[(w.assignments, w.value) for w in getattr(settings, WARM_START_SETTING, None) or ()],
    )
    # history issues are logged once per call by the adapter (a summary, not a line per trial)
    if req.n == 0:
        return SuggestResponse(
            suggestions=[], ledger=format_ledger(open_ledger), history=history, warnings=warnings
        )

    seed = experiment_seed(req.experiment, settings.random_state)
    # how many suggestions came before this batch (Katib's counter, or what the history shows)
    sequence_start = max(req.total_requested - req.n, len(req.trials) + len(open_ledger), 0)
    budget = float(settings.time_budget_seconds)
    limit = budget if time_limit is None else min(budget, time_limit)
    ctx = Context(
        space=req.space,
        objective=req.objective,
        history=history,
        settings=settings,
        n=req.n,
        seed=seed,
        rng=np.random.default_rng([seed, max(req.total_requested, 0), history.digest]),
        sequence_start=sequence_start,
        clock=clock,
        deadline=start + limit,
        experiment=req.experiment,
    )
    result: Proposals = fidelity.propose(strategy, ctx)
    _check(req, history, result)

    suggestions = []
    used_names = set(trial_names) | {e.name for e in open_ledger}
    for i, prop in enumerate(result.items):
        assignments = req.space.to_strings(prop.row)
        tag = Provenance(prop.origin, prop.number).tag
        name = _trial_name(req, seed, sequence_start + i, assignments, used_names, tag)
        used_names.add(name)
        labels = {LABEL_ORIGIN: prop.origin, LABEL_ALGORITHM: req.algorithm}
        if prop.group is not None:
            labels[LABEL_GROUP] = _label_value(prop.group)
        labels.update({k: _label_value(v) for k, v in prop.labels.items()})
        suggestions.append(Suggestion(assignments, name, labels, prop.origin))
        open_ledger.append(LedgerEntry(name, assignments, labels))
    return SuggestResponse(
        suggestions=suggestions,
        ledger=format_ledger(open_ledger),
        history=history,
        fallbacks=list(result.fallbacks),
        fit_seconds=result.fit_seconds,
        warnings=warnings,
        importance=dict(result.importance),
        shares=dict(result.shares),
    )


def _check(req: SuggestRequest, history: History, result: Proposals) -> None:
    """The controller's rules, enforced on every strategy: exact count, all new, all distinct."""
    keys = [req.space.key(p.row) for p in result.items]
    if len(keys) != req.n:
        raise AssertionError(f"strategy returned {len(keys)} points, {req.n} requested")
    if len(set(keys)) != len(keys) or any(k in history.known for k in keys):
        raise AssertionError("strategy returned a duplicate or an already known point")


def _trial_name(
    req: SuggestRequest,
    seed: int,
    position: int,
    assignments: Mapping[str, str],
    used: set[str],
    tag: str,
) -> str:
    """``<experiment>-<tag>-<sequence><hash>``: like Katib's own names, derived from the request,
    with the provenance tag and sequence number that strategies read back (provenance.py)."""
    head = encode_sequence(position)
    for salt in range(1000):
        digest = hashlib.sha256(
            json.dumps(
                [seed, req.total_requested, position, salt, sorted(assignments.items())]
            ).encode()
        ).hexdigest()
        name = f"{req.experiment}-{tag}-{head}{_base36(int(digest[:16], 16))[:3]}"
        if name not in used:
            return name
    raise AssertionError("could not find a unique trial name")


def _base36(x: int) -> str:
    chars = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = []
    while x:
        x, r = divmod(x, 36)
        out.append(chars[r])
    return "".join(out).rjust(8, "a")


def _label_value(text: str) -> str:
    """A valid Kubernetes label value (<= 63 chars of [A-Za-z0-9._-], alphanumeric ends)."""
    clean = "".join(c if c.isalnum() or c in "._-" else "_" for c in text)[:63]
    return clean.strip("._-") or "none"
