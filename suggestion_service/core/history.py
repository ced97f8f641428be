"""Trial history, rebuilt from each request: observations, pending, failed and known points."""

from __future__ import annotations

import enum
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import InvalidArgumentError, cut
from .space import FloatArray, SearchSpace


class TrialState(enum.Enum):
    """Katib's trial conditions."""

    CREATED = "Created"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    KILLED = "Killed"
    FAILED = "Failed"
    METRICS_UNAVAILABLE = "MetricsUnavailable"
    EARLY_STOPPED = "EarlyStopped"
    UNKNOWN = "Unknown"


COMPLETED_STATES = frozenset({TrialState.SUCCEEDED, TrialState.EARLY_STOPPED})
PENDING_STATES = frozenset({TrialState.CREATED, TrialState.RUNNING, TrialState.UNKNOWN})


class Goal(enum.Enum):
    MINIMIZE = "minimize"
    MAXIMIZE = "maximize"


@dataclass(frozen=True, kw_only=True)
class Objective:
    """The objective: direction, metric name and optional goal."""

    goal: Goal
    metric: str
    target: float | None = None


@dataclass(frozen=True, kw_only=True)
class TrialRecord:
    """One trial as the request describes it (strings as Katib sent them)."""

    name: str
    assignments: Mapping[str, str]
    state: TrialState
    metrics: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HistoryIssue:
    """Something in the history the service tolerated (and logs and counts)."""

    trial: str
    reason: (
        str  # bounded vocabulary: missing_metric, non_numeric_metric, non_finite_metric, off_space
    )
    detail: str


@dataclass(frozen=True, kw_only=True)
class History:
    """What every strategy needs, in typed form.

    Attributes:
        x_obs: typed rows of completed trials with a finite objective.
        y_obs: their objective, sign-adjusted so that *lower is better*.
        x_pending: typed rows of created/running trials and of suggestions not yet trials.
        x_failed: typed rows of failed, killed and metric-less trials (never suggested again).
        known: keys of every point that must never be suggested again.
        counts: trials per state, for metrics.
        issues: tolerated problems, for logs and metrics.
        n_trials: how many trials the request carried.
        digest: a stable hash of the history, used to seed randomness.
    """

    x_obs: FloatArray
    y_obs: FloatArray
    x_pending: FloatArray
    x_failed: FloatArray
    known: frozenset[tuple[str, ...]]
    counts: Mapping[TrialState, int]
    issues: tuple[HistoryIssue, ...]
    n_trials: int
    digest: int
    names: tuple[str, ...] = ()  # every trial's name, then the open ledger's
    n_warm: int = 0
    obs_names: tuple[str, ...] = ()  # the trial name of each row of x_obs ("" for warm starts)

    @property
    def n_obs(self) -> int:
        return int(self.y_obs.shape[0])

    def best_index(self) -> int | None:
        return int(np.argmin(self.y_obs)) if self.n_obs else None


def build_history(
    space: SearchSpace,
    objective: Objective,
    trials: Sequence[TrialRecord],
    *,
    extra_pending: Sequence[Mapping[str, str]] = (),
    extra_names: Sequence[str] = (),
    warm: Sequence[tuple[Mapping[str, str], float]] = (),
) -> History:
    """Build the typed history from the request's trials.

    Trials are sorted by name so that the order Katib lists them in does not change the answer.
    A completed trial whose objective is missing or not a finite number is treated like a failed
    trial (its point is remembered, it is not an observation) and reported as an issue.
    A trial whose assignments do not fit the space is reported and only its key is remembered.
    """
    sign = -1.0 if objective.goal is Goal.MAXIMIZE else 1.0
    obs: list[FloatArray] = []
    ys: list[float] = []
    obs_names: list[str] = []
    pending: list[FloatArray] = []
    failed: list[FloatArray] = []
    known: set[tuple[str, ...]] = set()
    counts: dict[TrialState, int] = dict.fromkeys(TrialState, 0)
    issues: list[HistoryIssue] = []
    entries: list[str] = []
    parsed: list[FloatArray] = []  # every trial's row that fits the space: keys made at once

    for trial in sorted(trials, key=lambda t: t.name):
        counts[trial.state] += 1
        # content only, not names: names carry the experiment's, and with random_state set an
        # experiment must run the same whatever it is called
        entries.append(
            json.dumps(
                [
                    sorted(trial.assignments.items()),
                    trial.state.value,
                    trial.metrics.get(objective.metric),
                ]
            )
        )
        try:
            row = space.parse_assignment(trial.assignments, where=f"trials[{trial.name}]")
        except InvalidArgumentError as exc:
            issues.append(HistoryIssue(trial.name, "off_space", exc.message))
            known.add(tuple(trial.assignments.get(n, "") for n in space.names))
            continue
        parsed.append(row)
        if trial.state in COMPLETED_STATES:
            value = _metric(trial, objective.metric, issues)
            if value is None:
                failed.append(row)
            else:
                obs.append(row)
                ys.append(sign * value)
                obs_names.append(trial.name)
        elif trial.state in PENDING_STATES:
            pending.append(row)
        else:
            failed.append(row)
    if parsed:
        known.update(space.keys(np.vstack(parsed)))
    del parsed

    for i, assignment in enumerate(extra_pending):
        try:
            row = space.parse_assignment(assignment, where=f"{i}")
        except InvalidArgumentError:
            continue  # stale ledger entry from an earlier space: nothing to avoid
        key = space.key(row)
        if key not in known:
            known.add(key)
            pending.append(row)

    n_warm = 0
    for i, (assignment, value) in enumerate(warm):
        try:
            row = space.parse_assignment(assignment, where=f"warm_start.trials[{i}]")
        except InvalidArgumentError:
            continue  # validated up front; never fatal here
        # observations from an earlier run: they inform the model but do not block re-trying
        obs.append(row)
        ys.append(sign * value)
        obs_names.append("")
        n_warm += 1

    digest = hashlib.sha256()
    for entry in sorted(entries):
        digest.update(entry.encode())
    p = len(space)

    def stack(rows: list[FloatArray]) -> FloatArray:
        return np.vstack(rows) if rows else np.zeros((0, p))

    return History(
        x_obs=stack(obs),
        y_obs=np.asarray(ys, dtype=np.float64),
        x_pending=stack(pending),
        x_failed=stack(failed),
        known=frozenset(known),
        counts=counts,
        issues=tuple(issues),
        n_trials=len(trials),
        digest=int.from_bytes(digest.digest()[:8], "little"),
        names=tuple([*(t.name for t in trials), *extra_names]),
        n_warm=n_warm,
        obs_names=tuple(obs_names),
    )


def _metric(trial: TrialRecord, metric: str, issues: list[HistoryIssue]) -> float | None:
    text = trial.metrics.get(metric)
    if text is None or text == "":
        issues.append(HistoryIssue(trial.name, "missing_metric", f"no value for {metric!r}"))
        return None
    try:
        value = float(text)
    except ValueError:
        issues.append(HistoryIssue(trial.name, "non_numeric_metric", f"{metric}={text!r}"))
        return None
    if not math.isfinite(value):
        issues.append(HistoryIssue(trial.name, "non_finite_metric", f"{metric}={text!r}"))
        return None
    return value


def summarize_issues(issues: Sequence[HistoryIssue], *, examples: int = 3) -> str | None:
    """One line for a call's tolerated history problems: counts by reason and a few examples.

    A warning per trial per call grows the log with the square of the experiment (every call
    carries every trial); one summary per call does not.

    Returns:
        None when there are no issues.
    """
    if not issues:
        return None
    by_reason: dict[str, int] = {}
    for issue in issues:
        by_reason[issue.reason] = by_reason.get(issue.reason, 0) + 1
    counts = ", ".join(f"{reason}={n}" for reason, n in sorted(by_reason.items()))
    shown = "; ".join(
        cut(f"trial {i.trial}: {i.reason}: {i.detail}", 200) for i in issues[:examples]
    )
    more = f" (and {len(issues) - examples} more)" if len(issues) > examples else ""
    return f"{len(issues)} trial(s) tolerated in the history ({counts}): {shown}{more}"
