"""The state directory: every trial, the service's durable settings, logs, a CSV and a plot.

``state.json`` is the source of truth. It is rewritten atomically (temporary file, fsync,
rename) whenever a trial is created, starts or finishes, so ``kill -9`` loses no finished trial.
``trials.csv`` and ``convergence.png`` are derived from it. Layout::

    state.json        experiment name, spec digest, request counter, algorithm settings, trials
    trials.csv        one row per trial: parameters, metrics, timings, labels
    logs/<trial>.log  the trial's stdout and stderr
    convergence.png   objective per finished trial and best so far (with ASHA: best at the
                      full budget against the total budget spent)
    experiment.yaml   the Experiment as run
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import yaml

from .experiment import Experiment

FORMAT = "dcsa-local-state/1"
#: Katib lets these change on a running Experiment; anything else makes a different experiment.
EDITABLE = ("maxTrialCount", "parallelTrialCount", "maxFailedTrialCount")

CREATED = "Created"
RUNNING = "Running"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
KILLED = "Killed"
METRICS_UNAVAILABLE = "MetricsUnavailable"
ACTIVE = frozenset({CREATED, RUNNING})
FINISHED = frozenset({SUCCEEDED, FAILED, KILLED, METRICS_UNAVAILABLE})


class StateError(Exception):
    """The state directory cannot be used (another experiment, another runner, bad file)."""


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, kw_only=True)
class TrialRow:
    """One trial as the runner knows it. ``condition`` is one of Katib's trial conditions."""

    name: str
    assignments: Mapping[str, str]
    labels: Mapping[str, str] = field(default_factory=dict)
    condition: str = CREATED
    metrics: Mapping[str, str] = field(default_factory=dict)
    start_time: str | None = None
    completion_time: str | None = None
    seconds: float | None = None
    exit_code: int | None = None
    message: str = ""
    attempts: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "condition": self.condition,
            "assignments": [{"name": k, "value": v} for k, v in self.assignments.items()],
            "metrics": [{"name": k, "value": v} for k, v in self.metrics.items()],
            "labels": dict(self.labels),
            "startTime": self.start_time,
            "completionTime": self.completion_time,
            "seconds": self.seconds,
            "exitCode": self.exit_code,
            "message": self.message,
            "attempts": self.attempts,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrialRow:
        return cls(
            name=str(data["name"]),
            condition=str(data["condition"]),
            assignments={str(a["name"]): str(a["value"]) for a in data["assignments"]},
            metrics={str(m["name"]): str(m["value"]) for m in data.get("metrics", [])},
            labels={str(k): str(v) for k, v in data.get("labels", {}).items()},
            start_time=data.get("startTime"),
            completion_time=data.get("completionTime"),
            seconds=data.get("seconds"),
            exit_code=data.get("exitCode"),
            message=str(data.get("message", "")),
            attempts=int(data.get("attempts", 0)),
        )


@dataclass(frozen=True, kw_only=True)
class RunState:
    """Everything a resumed run needs."""

    experiment: str
    spec_digest: str
    total_requested: int = 0
    algorithm_settings: tuple[tuple[str, str], ...] = ()
    trials: tuple[TrialRow, ...] = ()
    status: str = "Running"
    stop_reason: str = ""
    started_at: str = field(default_factory=now_rfc3339)

    def replace_trial(self, row: TrialRow) -> RunState:
        trials = tuple(row if t.name == row.name else t for t in self.trials)
        if not any(t.name == row.name for t in self.trials):
            trials = (*self.trials, row)
        return dataclasses.replace(self, trials=trials)


def spec_digest(exp: Experiment) -> str:
    """A hash of the name and spec without the fields Katib lets a user edit."""
    spec = {k: v for k, v in exp.spec.items() if k not in EDITABLE}
    data = json.dumps({"name": exp.name, "spec": spec}, sort_keys=True, default=str)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader (or a crash) sees the old or the new file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class StateDir:
    """A state directory held by one runner at a time (an advisory lock, released on exit)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.logs = path / "logs"
        self.state_file = path / "state.json"
        self._lock: IO[bytes] | None = None

    def open(self) -> None:
        """Create the directory and take its lock.

        Raises:
            StateError: another runner holds it.
        """
        try:
            self.logs.mkdir(parents=True, exist_ok=True)
            lock = open(self.path / ".lock", "wb")  # noqa: SIM115 - held until close()
        except OSError as exc:
            raise StateError(
                _os_problem(exc, self.path, "cannot use the state directory")
            ) from None
        try:
            import fcntl

            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - not POSIX: no lock
            pass
        except OSError:
            lock.close()
            raise StateError(f"{self.path} is in use by another dcsa run") from None
        self._lock = lock

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def log_path(self, trial: str) -> Path:
        return self.logs / f"{trial}.log"

    def load(self) -> RunState | None:
        """The saved state, or None for a new directory.

        Raises:
            StateError: the file is unreadable or of another format.
        """
        if not self.state_file.exists():
            return None
        try:
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise StateError(_os_problem(exc, self.state_file, "cannot read")) from None
        except ValueError as exc:
            raise StateError(f"{self.state_file}: cannot read: not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise StateError(
                f"{self.state_file}: cannot read: holds {json.dumps(data)[:40]} instead of a "
                "saved run (a JSON object); move it away to start afresh"
            )
        try:
            if data.get("format") != FORMAT:
                raise StateError(f"{self.state_file}: unknown format {data.get('format')!r}")
            return RunState(
                experiment=str(data["experiment"]),
                spec_digest=str(data["specDigest"]),
                total_requested=int(data["totalRequested"]),
                algorithm_settings=tuple(
                    (str(s["name"]), str(s["value"])) for s in data["algorithmSettings"]
                ),
                trials=tuple(TrialRow.from_json(t) for t in data["trials"]),
                status=str(data.get("status", "Running")),
                stop_reason=str(data.get("stopReason", "")),
                started_at=str(data.get("startedAt", now_rfc3339())),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StateError(f"{self.state_file}: cannot read: {exc!r}") from None

    def save(self, state: RunState) -> None:
        """Write state.json and trials.csv atomically."""
        data = {
            "format": FORMAT,
            "experiment": state.experiment,
            "specDigest": state.spec_digest,
            "status": state.status,
            "stopReason": state.stop_reason,
            "startedAt": state.started_at,
            "updatedAt": now_rfc3339(),
            "totalRequested": state.total_requested,
            "algorithmSettings": [{"name": n, "value": v} for n, v in state.algorithm_settings],
            "trials": [t.to_json() for t in state.trials],
        }
        self._write(self.state_file, (json.dumps(data, indent=1) + "\n").encode())
        self._write(self.path / "trials.csv", trials_csv(state.trials).encode())

    def save_experiment(self, exp: Experiment) -> None:
        self._write(
            self.path / "experiment.yaml", yaml.safe_dump(dict(exp.body), sort_keys=False).encode()
        )

    def _write(self, path: Path, data: bytes) -> None:
        """atomic_write; a full disk or a read-only directory is a StateError naming the file
        (the atomic write leaves the previous version in place)."""
        try:
            atomic_write(path, data)
        except OSError as exc:
            raise StateError(_os_problem(exc, path, "cannot write")) from None


def _os_problem(exc: OSError, path: Path, what: str) -> str:
    """One line: the path, what failed and the system's reason (no traceback)."""
    cause = exc.strerror or str(exc)
    return f"{path}: {what}: {cause}"


def trials_csv(trials: Sequence[TrialRow]) -> str:
    """One row per trial; parameter and metric columns in first-seen order."""
    params: dict[str, None] = {}
    metrics: dict[str, None] = {}
    for t in trials:
        params.update(dict.fromkeys(t.assignments))
        metrics.update(dict.fromkeys(t.metrics))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        [
            "name",
            "condition",
            *params,
            *metrics,
            "start_time",
            "completion_time",
            "seconds",
            "exit_code",
            "attempts",
            "labels",
            "message",
        ]
    )
    for t in trials:
        w.writerow(
            [
                t.name,
                t.condition,
                *(t.assignments.get(p, "") for p in params),
                *(t.metrics.get(m, "") for m in metrics),
                t.start_time or "",
                t.completion_time or "",
                "" if t.seconds is None else f"{t.seconds:.3f}",
                "" if t.exit_code is None else t.exit_code,
                t.attempts,
                json.dumps(dict(t.labels), sort_keys=True),
                t.message,
            ]
        )
    return buf.getvalue()


def objective_series(trials: Sequence[TrialRow], metric: str) -> Iterator[tuple[TrialRow, float]]:
    """Succeeded trials with a numeric objective, in completion order."""
    done = [t for t in trials if t.condition == SUCCEEDED and t.completion_time]
    for t in sorted(done, key=lambda t: t.completion_time or ""):
        try:
            yield t, float(t.metrics[metric])
        except (KeyError, ValueError):
            continue


@dataclass(frozen=True, kw_only=True)
class Budget:
    """The training budget of an ASHA experiment (algorithm setting ``resource_name``).

    Attributes:
        name: the budget parameter (``epochs``).
        full: its largest value, the top rung's budget.
        label: ``full`` as Katib's string.
    """

    name: str
    full: float
    label: str

    def of(self, row: TrialRow) -> float | None:
        """The trial's budget, or None when its assignment is missing or not a number."""
        try:
            return float(row.assignments[self.name])
        except (KeyError, ValueError):
            return None

    def is_full(self, value: float) -> bool:
        # the ladder's tolerance: budgets within a relative 1e-9 of the top are the top
        return value >= self.full * (1.0 - 1e-9)


@dataclass(frozen=True, kw_only=True)
class BudgetPoint:
    """One finished trial on the budget axis of the convergence plot.

    Attributes:
        trial: the trial.
        budget: its budget (the value of the budget parameter).
        spent: the total budget of the finished trials up to and including this one.
        value: its objective when it succeeded, else None.
        full: whether it ran at the full budget.
        best: the best objective among succeeded full-budget trials so far, None before one.
    """

    trial: TrialRow
    budget: float
    spent: float
    value: float | None
    full: bool
    best: float | None


def budget_series(
    trials: Sequence[TrialRow], metric: str, *, maximize: bool, budget: Budget
) -> list[BudgetPoint]:
    """Finished trials (any condition) in completion order with the budget spent so far and the
    best objective at the full budget so far. A failed or killed trial spent its budget too
    (as far as we know); trials without a numeric budget are left out."""
    done = [t for t in trials if t.condition in FINISHED and t.completion_time]
    pick = max if maximize else min
    spent = 0.0
    best: float | None = None
    out: list[BudgetPoint] = []
    for t in sorted(done, key=lambda t: t.completion_time or ""):
        b = budget.of(t)
        if b is None:
            continue
        spent += b
        value: float | None = None
        if t.condition == SUCCEEDED:
            try:
                value = float(t.metrics[metric])
            except (KeyError, ValueError):
                value = None
        full = budget.is_full(b)
        if full and value is not None:
            best = value if best is None else pick(best, value)
        out.append(BudgetPoint(trial=t, budget=b, spent=spent, value=value, full=full, best=best))
    return out


def write_plot(
    path: Path,
    trials: Sequence[TrialRow],
    *,
    metric: str,
    maximize: bool,
    title: str,
    budget: Budget | None = None,
) -> bool:
    """The convergence plot (matplotlib, Agg backend). Returns False when nothing to plot.

    Without ``budget``: every succeeded trial's objective in completion order and the best so
    far. With it (ASHA): x is the total budget spent (:func:`budget_series`), the line is the
    best objective among trials run at the full budget, and every succeeded trial is a dot
    (lower budgets fainter).
    """
    series = (
        [] if budget is None else budget_series(trials, metric, maximize=maximize, budget=budget)
    )
    points = [] if budget is not None else [v for _t, v in objective_series(trials, metric)]
    if not series and not points:
        return False
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.add_subplot()
    if budget is not None:
        _budget_axes(ax, series, metric=metric, budget=budget)
    else:
        best: list[float] = []
        for v in points:
            best.append(v if not best else (max if maximize else min)(best[-1], v))
        xs = list(range(1, len(points) + 1))
        ax.scatter(xs, points, s=16, color="tab:blue", alpha=0.6, label=f"trial {metric}")
        ax.step(xs, best, where="post", color="tab:red", label="best so far")
        ax.set_xlabel("succeeded trial (completion order)")
        ax.set_ylabel(metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write(path, buf.getvalue())
    return True


def _budget_axes(ax: Any, series: Sequence[BudgetPoint], *, metric: str, budget: Budget) -> None:
    top = [(p.spent, p.value) for p in series if p.full and p.value is not None]
    low = [(p.spent, p.value) for p in series if not p.full and p.value is not None]
    if low:
        ax.scatter(
            *zip(*low, strict=True),
            s=10,
            color="tab:gray",
            alpha=0.4,
            label=f"trial {metric}, {budget.name} < {budget.label}",
        )
    if top:
        ax.scatter(
            *zip(*top, strict=True),
            s=16,
            color="tab:blue",
            alpha=0.7,
            label=f"trial {metric}, {budget.name} = {budget.label}",
        )
    line = [(p.spent, p.best) for p in series if p.best is not None]
    if line:
        # carried on to the last finished trial: budget spent since did not improve it
        xs = [x for x, _ in line] + [series[-1].spent]
        ys = [y for _, y in line] + [line[-1][1]]
        ax.step(
            xs, ys, where="post", color="tab:red", label=f"best at {budget.name}={budget.label}"
        )
    ax.set_xlabel(f"total budget spent (sum of {budget.name} over finished trials)")
    ax.set_ylabel(f"{metric} (line: best at full budget, {budget.name}={budget.label})")
