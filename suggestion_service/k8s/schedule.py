"""TuningSchedule: the pure decisions of the operator (no API calls here).

A TuningSchedule (``dcsa.io/v1alpha1``) creates a Katib Experiment from its template at every due
time of a cron schedule, as a CronJob creates Jobs. This module holds everything the operator
decides, as functions of plain data, so that each decision is unit-testable:

- ``parse_spec``: the object's spec, checked, into a frozen ``ScheduleSpec`` (clear messages that
  name the field);
- ``due_time``: the CronJob rule for missed schedules (at most one catch-up: the most recent
  missed time, if still within ``startingDeadlineSeconds``);
- ``decide``: what to do now given the active Experiment and ``concurrencyPolicy``/``suspend``;
- ``to_prune``: finished Experiments beyond ``historyLimit``;
- ``experiment_name``: a unique, deterministic name per scheduled time (a retry after a crash
  finds the same name, so a slot never creates two Experiments);
- ``summarize``: a finished Experiment's stop reason, best objective and best parameters.

``suggestion_service.k8s.operator`` reads and writes the objects.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from croniter import croniter  # type: ignore[import-untyped,import-not-found,unused-ignore]

from .warm_start_payload import WarmStartError, metric_value, parse_payload, search_space

GROUP = "dcsa.io"
VERSION = "v1alpha1"
PLURAL = "tuningschedules"
KIND = "TuningSchedule"

KATIB_GROUP = "kubeflow.org"
KATIB_VERSION = "v1beta1"

#: Label on each created Experiment: the TuningSchedule that owns it.
SCHEDULE_LABEL = "dcsa.io/tuning-schedule"
#: Annotation on each created Experiment: the scheduled time it was created for (RFC 3339).
SCHEDULED_TIME_ANNOTATION = "dcsa.io/scheduled-time"
#: Annotations on each created Experiment: how many warm-start trials it carries / dropped.
WARM_TRIALS_ANNOTATION = "dcsa.io/warm-start-trials"
WARM_DROPPED_ANNOTATION = "dcsa.io/warm-start-dropped"

#: Katib names the suggestion Deployment ``<experiment>-<algorithm>``; it limits names to 40.
MAX_EXPERIMENT_NAME = 40
#: Run summaries kept in the status (also of Experiments already pruned).
RUN_SUMMARY_LIMIT = 10
#: CronJob reports, and stops counting, beyond this many missed start times.
MAX_MISSED_COUNT = 100

WARM_START_ALGORITHMS = ("gp-bo", "dc-bo", "sa-bo", "dcsa-bo")
_CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class ScheduleSpecError(ValueError):
    """The TuningSchedule's spec cannot be used; ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class ConcurrencyPolicy(enum.Enum):
    FORBID = "Forbid"
    REPLACE = "Replace"


@dataclass(frozen=True, kw_only=True)
class WarmStartSpec:
    """``spec.warmStart``: carry up to ``max_trials`` best trials of the last ``from_runs`` runs."""

    enabled: bool = False
    max_trials: int = 50
    from_runs: int = 1


@dataclass(frozen=True, kw_only=True)
class ScheduleSpec:
    """A checked TuningSchedule spec."""

    schedule: str
    template: Mapping[str, Any]
    concurrency_policy: ConcurrencyPolicy = ConcurrencyPolicy.FORBID
    suspend: bool = False
    history_limit: int = 3
    starting_deadline_seconds: int | None = None
    warm_start: WarmStartSpec = WarmStartSpec()

    @property
    def template_spec(self) -> Mapping[str, Any]:
        spec: Mapping[str, Any] = self.template["spec"]
        return spec


# ---- spec ------------------------------------------------------------------------------------


def check_cron(expression: object, field: str = "spec.schedule") -> str:
    """Accept what a CronJob accepts: five fields or a macro such as ``@daily``.

    Raises:
        ScheduleSpecError: naming the field, with croniter's reason.
    """
    if not isinstance(expression, str) or not expression.strip():
        raise ScheduleSpecError(field, "must be a cron expression such as '0 2 * * *'")
    text = expression.strip()
    fields = text.split()
    if not (text in _CRON_MACROS or len(fields) == 5):
        raise ScheduleSpecError(
            field,
            f"{text!r} is not a cron expression: use 5 fields (minute hour day-of-month month "
            f"day-of-week, times in UTC) or one of {', '.join(_CRON_MACROS)}",
        )
    try:
        croniter(text, dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    except (ValueError, KeyError) as exc:
        raise ScheduleSpecError(field, f"{text!r} is not a valid cron expression: {exc}") from None
    return text


def _int(spec: Mapping[str, Any], key: str, default: int, low: int, high: int, path: str) -> int:
    value = spec.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ScheduleSpecError(f"{path}.{key}", f"must be an integer in [{low}, {high}]")
    return value


def _bool(spec: Mapping[str, Any], key: str, path: str) -> bool:
    value = spec.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ScheduleSpecError(f"{path}.{key}", "must be true or false")
    return value


def check_template(template: object, *, warm_start: bool) -> Mapping[str, Any]:
    """Check ``spec.experimentTemplate`` enough that an Experiment made from it can run.

    Katib's webhook checks the rest when the Experiment is created; what it would refuse on
    every run (no parameters, no objective, a malformed ``warm_start`` setting) is refused here
    once, with the field named.
    """
    path = "spec.experimentTemplate"
    if not isinstance(template, Mapping):
        raise ScheduleSpecError(path, "must be an object with a Katib Experiment `spec`")
    spec = template.get("spec")
    if not isinstance(spec, Mapping):
        raise ScheduleSpecError(f"{path}.spec", "must be a Katib Experiment spec (an object)")
    meta = template.get("metadata", {})
    if meta is not None and not isinstance(meta, Mapping):
        raise ScheduleSpecError(f"{path}.metadata", "must be an object (labels, annotations)")
    objective = spec.get("objective")
    if not isinstance(objective, Mapping) or not objective.get("objectiveMetricName"):
        raise ScheduleSpecError(
            f"{path}.spec.objective", "must set objectiveMetricName and type (minimize|maximize)"
        )
    if objective.get("type") not in ("minimize", "maximize"):
        raise ScheduleSpecError(f"{path}.spec.objective.type", "must be minimize or maximize")
    params = spec.get("parameters")
    if not isinstance(params, list) or not params:
        raise ScheduleSpecError(f"{path}.spec.parameters", "must list at least one parameter")
    algorithm = spec.get("algorithm")
    if not isinstance(algorithm, Mapping) or not algorithm.get("algorithmName"):
        raise ScheduleSpecError(f"{path}.spec.algorithm.algorithmName", "must be set")
    name = algorithm["algorithmName"]
    if warm_start and name not in WARM_START_ALGORITHMS:
        raise ScheduleSpecError(
            f"{path}.spec.algorithm.algorithmName",
            f"{name!r} does not accept a warm start; use one of {', '.join(WARM_START_ALGORITHMS)}"
            " or set spec.warmStart.enabled=false",
        )
    try:
        space = search_space(spec)
    except WarmStartError as exc:
        raise ScheduleSpecError(f"{path}.{exc.field}", exc.message) from None
    for i, setting in enumerate(algorithm.get("algorithmSettings") or []):
        if isinstance(setting, Mapping) and setting.get("name") == "warm_start":
            where = f"{path}.spec.algorithm.algorithmSettings[{i}]"
            try:
                parse_payload(setting.get("value"), space)
            except WarmStartError as exc:
                raise ScheduleSpecError(where, exc.message) from None
    return template


def parse_spec(spec: object) -> ScheduleSpec:
    """Check a TuningSchedule's spec.

    Raises:
        ScheduleSpecError: naming the first field that cannot be used, and what is allowed.
    """
    if not isinstance(spec, Mapping):
        raise ScheduleSpecError("spec", "must be an object")
    schedule = check_cron(spec.get("schedule"))
    policy_text = spec.get("concurrencyPolicy") or "Forbid"
    try:
        policy = ConcurrencyPolicy(policy_text)
    except ValueError:
        raise ScheduleSpecError(
            "spec.concurrencyPolicy", f"{policy_text!r} is not Forbid or Replace"
        ) from None
    deadline = spec.get("startingDeadlineSeconds")
    if deadline is not None and (
        isinstance(deadline, bool) or not isinstance(deadline, int) or deadline < 1
    ):
        raise ScheduleSpecError("spec.startingDeadlineSeconds", "must be a positive integer")
    warm = spec.get("warmStart") or {}
    if not isinstance(warm, Mapping):
        raise ScheduleSpecError("spec.warmStart", "must be an object")
    warm_spec = WarmStartSpec(
        enabled=_bool(warm, "enabled", "spec.warmStart"),
        max_trials=_int(warm, "maxTrials", 50, 1, 1000, "spec.warmStart"),
        from_runs=_int(warm, "fromRuns", 1, 1, 20, "spec.warmStart"),
    )
    template = check_template(spec.get("experimentTemplate"), warm_start=warm_spec.enabled)
    return ScheduleSpec(
        schedule=schedule,
        template=template,
        concurrency_policy=policy,
        suspend=_bool(spec, "suspend", "spec"),
        history_limit=_int(spec, "historyLimit", 3, 0, 100, "spec"),
        starting_deadline_seconds=deadline,
        warm_start=warm_spec,
    )


# ---- time ------------------------------------------------------------------------------------


def parse_time(text: object) -> dt.datetime | None:
    """RFC 3339 (as the API server writes it) to an aware UTC datetime; None if absent/bad."""
    if not isinstance(text, str) or not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def format_time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Due:
    """Outcome of ``due_time``.

    Attributes:
        scheduled: the time to run for now (the most recent missed one), or None.
        missed: how many start times passed since the last run (capped at MAX_MISSED_COUNT);
            all but ``scheduled`` are skipped, as CronJob does.
        next_time: the next start time after ``now``.
        too_late: the most recent start time, when it was missed by more than
            startingDeadlineSeconds (it does not run).
    """

    scheduled: dt.datetime | None
    missed: int
    next_time: dt.datetime
    too_late: dt.datetime | None = None


def due_time(
    schedule: str,
    *,
    last_schedule: dt.datetime | None,
    created: dt.datetime,
    now: dt.datetime,
    starting_deadline_seconds: int | None = None,
) -> Due:
    """CronJob's rule: the most recent start time in (last run or creation, now], if any.

    After an operator outage several start times may have passed: only the most recent one
    runs (one catch-up), and not at all if it is older than ``starting_deadline_seconds``.
    """
    earliest = last_schedule or created
    nxt = croniter(schedule, now).get_next(dt.datetime)
    latest = croniter(schedule, now + dt.timedelta(microseconds=1)).get_prev(dt.datetime)
    if latest <= earliest:
        return Due(None, 0, nxt)
    missed = 0
    it = croniter(schedule, earliest)
    while missed < MAX_MISSED_COUNT:
        if it.get_next(dt.datetime) > now:
            break
        missed += 1
    if starting_deadline_seconds is not None and (now - latest).total_seconds() > (
        starting_deadline_seconds
    ):
        return Due(None, missed, nxt, too_late=latest)
    return Due(latest, missed, nxt)


# ---- concurrency and history -----------------------------------------------------------------


class Action(enum.Enum):
    NOTHING = "nothing"  # not due
    SUSPENDED = "suspended"  # due, but spec.suspend
    WAIT = "wait"  # due, Forbid and a run is active: start it when that run finishes
    CREATE = "create"
    REPLACE = "replace"  # delete the active run, then create


def decide(*, due: bool, suspend: bool, active: str | None, policy: ConcurrencyPolicy) -> Action:
    """What to do now: suspend wins, then the concurrency policy against the active run."""
    if not due:
        return Action.NOTHING
    if suspend:
        return Action.SUSPENDED
    if active is None:
        return Action.CREATE
    if policy is ConcurrencyPolicy.FORBID:
        return Action.WAIT
    return Action.REPLACE


@dataclass(frozen=True, kw_only=True)
class RunRef:
    """One Experiment created by a schedule, as the operator sees it."""

    name: str
    scheduled: dt.datetime
    finished: bool


def to_prune(runs: Sequence[RunRef], history_limit: int) -> list[str]:
    """Names of finished runs beyond the ``history_limit`` most recent ones (oldest first)."""
    finished = sorted((r for r in runs if r.finished), key=lambda r: (r.scheduled, r.name))
    excess = len(finished) - history_limit
    return [r.name for r in finished[: max(0, excess)]]


def experiment_name(schedule_name: str, scheduled: dt.datetime) -> str:
    """``<schedule>-<minutes since the epoch>``, at most 40 characters (Katib's limit).

    Deterministic per scheduled time, as CronJob names its Jobs: creating twice for the same
    time hits AlreadyExists instead of making a second Experiment.
    """
    suffix = str(int(scheduled.timestamp() // 60))
    prefix = schedule_name[: MAX_EXPERIMENT_NAME - len(suffix) - 1].rstrip("-")
    return f"{prefix}-{suffix}"


def check_name(name: str) -> None:
    """A schedule name must make valid Experiment names (DNS-1123 label)."""
    if not _DNS_LABEL.match(name):
        raise ScheduleSpecError("metadata.name", "must be a DNS-1123 label (lower case, -)")


# ---- Experiment status -----------------------------------------------------------------------


def _conditions(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    status = obj.get("status") or {}
    conds = status.get("conditions") if isinstance(status, Mapping) else None
    return [c for c in conds or [] if isinstance(c, Mapping)]


def finished_condition(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The Succeeded or Failed condition with status True (Katib's end states), if any."""
    for cond in _conditions(obj):
        if cond.get("type") in ("Succeeded", "Failed") and str(cond.get("status")) == "True":
            return cond
    return None


def metric_strategy(spec: Mapping[str, Any], metric: str) -> str:
    """How Katib reduces ``metric``: ``objective.metricStrategies`` or min/max by direction."""
    objective = spec.get("objective") or {}
    for item in objective.get("metricStrategies") or []:
        if isinstance(item, Mapping) and item.get("name") == metric:
            value = str(item.get("value", "")).lower()
            if value in ("min", "max", "latest"):
                return value
    return "min" if objective.get("type") == "minimize" else "max"


def summarize(experiment: Mapping[str, Any]) -> dict[str, Any]:
    """The status entry for one run: name, phase, stop reason, best objective and parameters."""
    meta = experiment.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    spec = experiment.get("spec") or {}
    status = experiment.get("status") or {}
    cond = finished_condition(experiment)
    out: dict[str, Any] = {
        "name": meta.get("name", ""),
        "scheduledTime": annotations.get(SCHEDULED_TIME_ANNOTATION, ""),
        "phase": "Running" if cond is None else str(cond.get("type")),
    }
    if cond is not None:
        out["stopReason"] = str(cond.get("reason") or cond.get("type"))
        if cond.get("message"):
            out["message"] = str(cond["message"])[:300]
        if status.get("completionTime"):
            out["completionTime"] = str(status["completionTime"])
    best = status.get("currentOptimalTrial") or {}
    objective = spec.get("objective") or {}
    metric = str(objective.get("objectiveMetricName", ""))
    value = metric_value(
        (best.get("observation") or {}).get("metrics"), metric, metric_strategy(spec, metric)
    )
    if value is not None:
        out["bestObjective"] = value
        out["bestTrialName"] = str(best.get("bestTrialName", ""))
        out["bestParameters"] = {
            str(p.get("name")): str(p.get("value"))
            for p in best.get("parameterAssignments") or []
            if isinstance(p, Mapping)
        }
    for key, ann in (
        ("warmStartTrials", WARM_TRIALS_ANNOTATION),
        ("warmStartDropped", WARM_DROPPED_ANNOTATION),
    ):
        if str(annotations.get(ann, "")).isdigit():
            out[key] = int(annotations[ann])
    return out


def merge_runs(
    previous: Sequence[Mapping[str, Any]], current: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Status ``runs``: fresh summaries of existing runs, kept summaries of pruned ones, by
    scheduled time, the last RUN_SUMMARY_LIMIT."""
    by_name: dict[str, dict[str, Any]] = {
        str(r.get("name")): dict(r) for r in previous if isinstance(r, Mapping)
    }
    for r in current:
        by_name[str(r["name"])] = dict(r)
    runs = sorted(by_name.values(), key=lambda r: (str(r.get("scheduledTime", "")), r["name"]))
    return runs[-RUN_SUMMARY_LIMIT:]


def is_permanent(status_code: int) -> bool:
    """An API error that retrying the same request will not fix (bad template, webhook)."""
    return 400 <= status_code < 500 and status_code not in (408, 409, 429)
