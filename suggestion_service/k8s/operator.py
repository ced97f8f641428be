"""The TuningSchedule operator: a level-triggered reconcile loop on the Kubernetes client.

Every ``interval`` seconds it lists the TuningSchedules (all namespaces, or the ones given) and
reconciles each on its own: record the results of its finished Experiments, create one from the
template when a start time is due (respecting ``suspend`` and ``concurrencyPolicy``, with the
``warm_start`` setting built from earlier runs' Trials), delete finished ones beyond
``historyLimit``, and write the status. The decisions are the pure functions of ``schedule`` and
``warm_start_payload``; this module only reads and writes objects.

Why the client directly and not kopf: cron schedules need a periodic pass anyway (a due time is
not an API event), a poll of one list call per interval is cheap at the scale of nightly
schedules, and it keeps the operator free of kopf's own annotations, peering objects and asyncio
stack; the dependency is the ``kubernetes`` client the katib-config command already uses.

It never raises out of the loop: a schedule whose spec is malformed gets a ``Ready=False``
condition and one Warning event (until the spec changes), and an Experiment the API server
refuses is recorded against its start time, so no start time creates more than one Experiment.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..core.warm_start import WarmTrial
from .schedule import (
    GROUP,
    KATIB_GROUP,
    KATIB_VERSION,
    KIND,
    PLURAL,
    SCHEDULE_LABEL,
    SCHEDULED_TIME_ANNOTATION,
    VERSION,
    WARM_DROPPED_ANNOTATION,
    WARM_TRIALS_ANNOTATION,
    Action,
    RunRef,
    ScheduleSpec,
    ScheduleSpecError,
    check_name,
    decide,
    due_time,
    experiment_name,
    finished_condition,
    format_time,
    is_permanent,
    merge_runs,
    metric_strategy,
    parse_spec,
    parse_time,
    summarize,
    to_prune,
)
from .warm_start_payload import (
    Payload,
    build_payload,
    parse_payload,
    search_space,
    trial_observations,
    with_setting,
)

log = logging.getLogger(__name__)

COMPONENT = "dcsa-operator"
_NOT_FOUND = 404
_CONFLICT = 409
_TRIAL_LABEL = "katib.kubeflow.org/experiment"
_MERGE = "application/merge-patch+json"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def load_clients(kubeconfig: str | None = None) -> tuple[Any, Any]:
    """(CustomObjectsApi, CoreV1Api): in-cluster config in a pod, else the kubeconfig."""
    import kubernetes  # type: ignore[import-untyped,import-not-found,unused-ignore]

    client: Any = kubernetes.client
    config: Any = kubernetes.config
    if kubeconfig is None:
        try:
            config.load_incluster_config()
            return client.CustomObjectsApi(), client.CoreV1Api()
        except config.ConfigException:
            pass
    config.load_kube_config(config_file=kubeconfig)
    return client.CustomObjectsApi(), client.CoreV1Api()


def _status_code(exc: BaseException) -> int | None:
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


def _set_condition(
    conditions: Sequence[Mapping[str, Any]],
    *,
    status: bool,
    reason: str,
    message: str,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """The ``Ready`` condition replaced; lastTransitionTime moves only when status flips."""
    old = next((c for c in conditions if c.get("type") == "Ready"), None)
    value = "True" if status else "False"
    since = (
        old.get("lastTransitionTime")
        if old is not None and old.get("status") == value and old.get("lastTransitionTime")
        else format_time(now)
    )
    others = [dict(c) for c in conditions if c.get("type") != "Ready"]
    ready = {
        "type": "Ready",
        "status": value,
        "reason": reason,
        "message": message[:1000],
        "lastTransitionTime": since,
    }
    return [*others, ready]


@dataclass
class _Pass:
    """What one reconcile of one schedule decided (turned into a status patch and events)."""

    ready: bool = True
    reason: str = "Scheduled"
    message: str = ""
    events: list[tuple[str, str, str]] | None = None  # (type, reason, message)

    def event(self, kind: str, reason: str, message: str) -> None:
        if self.events is None:
            self.events = []
        self.events.append((kind, reason, message))


class Operator:
    """Reconciles TuningSchedules. Inject the API clients and the clock (tests use both).

    Args:
        custom: a ``kubernetes.client.CustomObjectsApi``.
        core: a ``kubernetes.client.CoreV1Api`` (events).
        namespaces: namespaces to watch; empty: all (needs the ClusterRole).
        clock: returns the current time (aware, UTC).
    """

    def __init__(
        self,
        *,
        custom: Any,
        core: Any,
        namespaces: Sequence[str] = (),
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.custom = custom
        self.core = core
        self.namespaces = tuple(namespaces)
        self.clock = clock
        self.last_pass: float | None = None  # monotonic time of the last complete pass

    # ---- loop ---------------------------------------------------------------------------------

    def list_schedules(self) -> list[dict[str, Any]]:
        if not self.namespaces:
            return list(self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"])
        items: list[dict[str, Any]] = []
        for ns in self.namespaces:
            items += self.custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]
        return items

    def reconcile_all(self) -> int:
        """One pass over every schedule; returns how many were reconciled. Never raises."""
        try:
            schedules = self.list_schedules()
        except Exception as exc:
            log.error("cannot list %s: %s", PLURAL, exc)
            return 0
        done = 0
        for obj in schedules:
            meta = obj.get("metadata") or {}
            where = f"{meta.get('namespace')}/{meta.get('name')}"
            try:
                self.reconcile(obj)
                done += 1
            except Exception:
                # One broken object or API hiccup must not stop the others; retried next pass.
                log.exception("reconciling TuningSchedule %s failed; retrying next pass", where)
        self.last_pass = time.monotonic()
        return done

    def run(self, stop: threading.Event, interval: float) -> None:
        """Reconcile every ``interval`` seconds until ``stop`` is set."""
        log.info(
            "TuningSchedule operator started (namespaces: %s, every %.0f s)",
            ", ".join(self.namespaces) or "all",
            interval,
        )
        while not stop.is_set():
            started = time.monotonic()
            self.reconcile_all()
            stop.wait(max(0.0, interval - (time.monotonic() - started)))

    # ---- one schedule -------------------------------------------------------------------------

    def reconcile(self, obj: Mapping[str, Any]) -> None:
        """Bring one TuningSchedule's Experiments and status up to date."""
        meta = obj["metadata"]
        ns, name = str(meta["namespace"]), str(meta["name"])
        status: Mapping[str, Any] = obj.get("status") or {}
        now = self.clock()
        new_status: dict[str, Any] = {"observedGeneration": meta.get("generation")}
        step = _Pass()
        try:
            check_name(name)
            spec = parse_spec(obj.get("spec"))
        except ScheduleSpecError as exc:
            step.ready, step.reason, step.message = False, "InvalidSpec", str(exc)
            self._finish(obj, status, new_status, step, now)
            return

        experiments = self._owned_experiments(ns, name, str(meta.get("uid", "")))
        runs = [self._run_ref(e) for e in experiments]
        active = sorted((r for r in runs if not r.finished), key=lambda r: r.scheduled)
        last = parse_time(status.get("lastScheduleTime"))
        created = parse_time(meta.get("creationTimestamp")) or now
        due = due_time(
            spec.schedule,
            last_schedule=last,
            created=created,
            now=now,
            starting_deadline_seconds=spec.starting_deadline_seconds,
        )
        action = decide(
            due=due.scheduled is not None,
            suspend=spec.suspend,
            active=active[-1].name if active else None,
            policy=spec.concurrency_policy,
        )
        new_status["nextScheduleTime"] = format_time(due.next_time)
        step.message = f"next run at {format_time(due.next_time)}"
        new_runs: list[dict[str, Any]] = []
        old_ready: Mapping[str, Any] = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {}
        )
        if (
            action is Action.NOTHING
            and old_ready.get("reason") == "CreateFailed"
            and status.get("observedGeneration") == meta.get("generation")
        ):
            # Keep the refusal visible until the next start time or a new spec.
            step.ready, step.reason, step.message = False, "CreateFailed", old_ready["message"]
        if due.too_late is not None:
            step.reason = "MissedSchedule"
            step.message = (
                f"start time {format_time(due.too_late)} was missed by more than "
                f"startingDeadlineSeconds={spec.starting_deadline_seconds}; "
                f"next run at {format_time(due.next_time)}"
            )
        if action is Action.SUSPENDED:
            step.reason, step.message = "Suspended", "spec.suspend is true: no new runs"
        elif action is Action.WAIT:
            assert due.scheduled is not None
            step.reason = "Waiting"
            step.message = (
                f"run for {format_time(due.scheduled)} waits for {active[-1].name} to finish "
                "(concurrencyPolicy Forbid)"
            )
        elif action in (Action.CREATE, Action.REPLACE):
            assert due.scheduled is not None
            if action is Action.REPLACE:
                for run in active:
                    self._delete(ns, run.name)
                    step.event("Normal", "Replaced", f"deleted active run {run.name}")
                active = []
            body = self._create(obj, spec, experiments, due.scheduled, due.missed, new_status, step)
            if body is not None:
                new_runs.append(body)
                runs.append(
                    RunRef(name=body["metadata"]["name"], scheduled=due.scheduled, finished=False)
                )
                active = [runs[-1]]
        new_status["active"] = active[-1].name if active else None

        for victim in to_prune(runs, spec.history_limit):
            self._delete(ns, victim)
            step.event("Normal", "Deleted", f"deleted finished run {victim} (historyLimit)")
        new_status["runs"] = merge_runs(
            status.get("runs") or [], [summarize(e) for e in [*experiments, *new_runs]]
        )
        self._finish(obj, status, new_status, step, now)

    def _owned_experiments(self, ns: str, name: str, uid: str) -> list[dict[str, Any]]:
        items = self.custom.list_namespaced_custom_object(
            KATIB_GROUP,
            KATIB_VERSION,
            ns,
            "experiments",
            label_selector=f"{SCHEDULE_LABEL}={name}",
        )["items"]
        out = []
        for e in items:
            meta = e.get("metadata") or {}
            owners = meta.get("ownerReferences") or []
            if owners and uid and not any(o.get("uid") == uid for o in owners):
                continue  # made by an earlier schedule of the same name
            if meta.get("deletionTimestamp"):
                continue
            out.append(e)
        return out

    @staticmethod
    def _run_ref(experiment: Mapping[str, Any]) -> RunRef:
        meta = experiment.get("metadata") or {}
        scheduled = parse_time(
            (meta.get("annotations") or {}).get(SCHEDULED_TIME_ANNOTATION)
        ) or parse_time(meta.get("creationTimestamp"))
        return RunRef(
            name=str(meta.get("name")),
            scheduled=scheduled or dt.datetime.min.replace(tzinfo=dt.UTC),
            finished=finished_condition(experiment) is not None,
        )

    def _delete(self, ns: str, name: str) -> None:
        try:
            self.custom.delete_namespaced_custom_object(
                KATIB_GROUP,
                KATIB_VERSION,
                ns,
                "experiments",
                name,
                propagation_policy="Background",
            )
        except Exception as exc:
            if _status_code(exc) != _NOT_FOUND:
                raise

    # ---- warm start and creation --------------------------------------------------------------

    def warm_start(
        self, ns: str, spec: ScheduleSpec, experiments: Sequence[Mapping[str, Any]]
    ) -> tuple[Payload, list[str]]:
        """The payload for a new run: the template's own ``warm_start`` trials plus the best
        trials of the last ``fromRuns`` finished runs, filtered to fit the template's space."""
        tspec = spec.template_spec
        space = search_space(tspec)
        objective = tspec["objective"]
        candidates: list[WarmTrial] = []
        for s in (tspec.get("algorithm") or {}).get("algorithmSettings") or []:
            if isinstance(s, Mapping) and s.get("name") == "warm_start":
                candidates += parse_payload(s.get("value"), space)
        dropped: Counter[str] = Counter()
        finished = sorted(
            (e for e in experiments if finished_condition(e) is not None),
            key=lambda e: self._run_ref(e).scheduled,
            reverse=True,
        )[: spec.warm_start.from_runs]
        sources = []
        for e in finished:
            ename = str(e["metadata"]["name"])
            sources.append(ename)
            trials = self.custom.list_namespaced_custom_object(
                KATIB_GROUP, KATIB_VERSION, ns, "trials", label_selector=f"{_TRIAL_LABEL}={ename}"
            )["items"]
            src_obj = (e.get("spec") or {}).get("objective") or {}
            if (src_obj.get("objectiveMetricName"), src_obj.get("type")) != (
                objective.get("objectiveMetricName"),
                objective.get("type"),
            ):
                dropped["objective changed"] += len(trials)
                continue
            metric = str(objective["objectiveMetricName"])
            candidates += trial_observations(
                trials,
                metric=metric,
                strategy=metric_strategy(e.get("spec") or {}, metric),
                dropped=dropped,
            )
        payload = build_payload(
            candidates,
            space=space,
            maximize=objective.get("type") == "maximize",
            max_trials=spec.warm_start.max_trials,
            dropped=dropped,
        )
        return payload, sources

    def _create(
        self,
        obj: Mapping[str, Any],
        spec: ScheduleSpec,
        experiments: Sequence[Mapping[str, Any]],
        scheduled: dt.datetime,
        missed: int,
        new_status: dict[str, Any],
        step: _Pass,
    ) -> dict[str, Any] | None:
        """Create the run for ``scheduled``; return its body, or None if the API server refused
        it (recorded in ``step``). Transient errors propagate: the pass is retried."""
        meta = obj["metadata"]
        ns, name = str(meta["namespace"]), str(meta["name"])
        exp_name = experiment_name(name, scheduled)
        tmeta = spec.template.get("metadata") or {}
        annotations = {
            **(tmeta.get("annotations") or {}),
            SCHEDULED_TIME_ANNOTATION: format_time(scheduled),
        }
        exp_spec: dict[str, Any] = json.loads(json.dumps(spec.template_spec))
        warm_note = ""
        if spec.warm_start.enabled:
            payload, sources = self.warm_start(ns, spec, experiments)
            exp_spec = with_setting(exp_spec, payload.to_json() if payload.trials else None)
            annotations[WARM_TRIALS_ANNOTATION] = str(len(payload.trials))
            annotations[WARM_DROPPED_ANNOTATION] = str(payload.n_dropped)
            new_status["warmStart"] = {
                "experiment": exp_name,
                "sources": sources,
                "carried": len(payload.trials),
                "dropped": [{"reason": k, "count": v} for k, v in payload.dropped.items()],
            }
            dropped = ", ".join(f"{v} {k}" for k, v in payload.dropped.items())
            warm_note = f"; warm start: {len(payload.trials)} trials from {sources or 'none'}" + (
                f", dropped {dropped}" if dropped else ""
            )
        body = {
            "apiVersion": f"{KATIB_GROUP}/{KATIB_VERSION}",
            "kind": "Experiment",
            "metadata": {
                "name": exp_name,
                "namespace": ns,
                "labels": {**(tmeta.get("labels") or {}), SCHEDULE_LABEL: name},
                "annotations": annotations,
                "ownerReferences": [
                    {
                        "apiVersion": f"{GROUP}/{VERSION}",
                        "kind": KIND,
                        "name": name,
                        "uid": meta.get("uid"),
                        "controller": True,
                    }
                ],
            },
            "spec": exp_spec,
        }
        try:
            self.custom.create_namespaced_custom_object(
                KATIB_GROUP, KATIB_VERSION, ns, "experiments", body
            )
        except Exception as exc:
            code = _status_code(exc)
            if code == _CONFLICT:
                log.info("Experiment %s/%s already exists (created earlier)", ns, exp_name)
                new_status["lastScheduleTime"] = format_time(scheduled)
                return body
            if code is None or not is_permanent(code):
                raise  # transient: the same start time is retried next pass
            reason = getattr(exc, "body", None) or getattr(exc, "reason", "") or str(exc)
            with contextlib.suppress(TypeError, ValueError, AttributeError):
                reason = json.loads(reason).get("message", reason)
            step.ready, step.reason = False, "CreateFailed"
            step.message = (
                f"the API server refused Experiment {exp_name} for {format_time(scheduled)} "
                f"({code}): {reason}; fix spec.experimentTemplate, next try at the next start time"
            )
            new_status["lastScheduleTime"] = format_time(scheduled)
            return None
        new_status["lastScheduleTime"] = format_time(scheduled)
        catch_up = (
            f"; {missed} start times were missed, only the most recent one runs"
            if missed > 1
            else ""
        )
        step.event(
            "Normal",
            "Created",
            f"created Experiment {exp_name} for {format_time(scheduled)}{warm_note}{catch_up}",
        )
        log.info("created Experiment %s/%s%s%s", ns, exp_name, warm_note, catch_up)
        return body

    # ---- status and events --------------------------------------------------------------------

    def _finish(
        self,
        obj: Mapping[str, Any],
        status: Mapping[str, Any],
        new_status: dict[str, Any],
        step: _Pass,
        now: dt.datetime,
    ) -> None:
        old = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
        conditions = _set_condition(
            status.get("conditions") or [],
            status=step.ready,
            reason=step.reason,
            message=step.message,
            now=now,
        )
        changed = old is None or (old.get("reason"), old.get("message")) != (
            step.reason,
            step.message,
        )
        if changed and step.reason != "Scheduled":
            step.event("Normal" if step.ready else "Warning", step.reason, step.message)
        new_status["conditions"] = conditions
        new_status.setdefault("lastScheduleTime", status.get("lastScheduleTime"))
        patch = {k: v for k, v in new_status.items() if status.get(k) != v}
        meta = obj["metadata"]
        ns, name = str(meta["namespace"]), str(meta["name"])
        if patch:
            self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, ns, PLURAL, name, {"status": patch}, _content_type=_MERGE
            )
        for kind, reason, message in step.events or []:
            self._event(obj, kind, reason, message, now)

    def _event(
        self, obj: Mapping[str, Any], kind: str, reason: str, message: str, now: dt.datetime
    ) -> None:
        import kubernetes  # type: ignore[import-untyped,import-not-found,unused-ignore]

        meta = obj["metadata"]
        stamp = format_time(now)
        body = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": KIND,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": kind,
            "reason": reason,
            "message": message[:1000],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": socket.gethostname()[:128],
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        log.log(logging.WARNING if kind == "Warning" else logging.INFO, "%s: %s", reason, message)
        try:
            event: Any = kubernetes.client.CoreV1Event.from_dict(body)
            self.core.create_namespaced_event(str(meta["namespace"]), event)
        except Exception as exc:  # events are best effort
            log.warning("could not record event %s: %s", reason, exc)


# ---- process ----------------------------------------------------------------------------------


def serve_health(operator: Operator, port: int, interval: float) -> ThreadingHTTPServer:
    """``/healthz``: 200 while passes complete (within three intervals plus a minute)."""
    started = time.monotonic()
    stale = 3 * interval + 60

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            last = operator.last_pass if operator.last_pass is not None else started
            ok = self.path in ("/healthz", "/readyz") and time.monotonic() - last < stale
            self.send_response(200 if ok else 503)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok\n" if ok else b"stale\n")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="health").start()
    return server


def operator_command(
    *,
    namespaces: Sequence[str],
    interval: float,
    health_port: int,
    kubeconfig: str | None,
    once: bool,
) -> int:
    """``dcsa operator``: run the loop (or one pass with ``once``); exit code 0, 2 on bad use."""
    import signal

    if interval <= 0:
        log.error("--interval must be > 0")
        return 2
    namespaces = [n for n in namespaces if n] or [
        n for n in os.environ.get("DCSA_WATCH_NAMESPACES", "").split(",") if n
    ]
    custom, core = load_clients(kubeconfig)
    operator = Operator(custom=custom, core=core, namespaces=namespaces)
    if once:
        operator.reconcile_all()
        return 0
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = serve_health(operator, health_port, interval) if health_port >= 0 else None
    try:
        operator.run(stop, interval)
    finally:
        if server is not None:
            server.shutdown()
    return 0
