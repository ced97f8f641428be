"""The TuningSchedule operator against a real kube-apiserver 1.20 (tests/deploy/conftest.py).

The chart's CRD is installed; Katib's Experiment and Trial CRDs are the schema-less ones from
fixtures/katib-crds.yaml. There is no Katib controller, so the tests play Katib: they create
Trials and write Experiment and Trial status as Katib would. The operator runs in-process with an
injected clock (so a due time is "now" without waiting for the wall clock), authenticated as
the chart's ServiceAccount with the chart's (Cluster)Role; one test runs ``dcsa operator --once``
as a subprocess with the real clock.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from suggestion_service.k8s.operator import Operator, load_clients
from suggestion_service.k8s.schedule import experiment_name, format_time, parse_time

from .conftest import CHART, ApiServer, run

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

RELEASE = "sched"
OPERATOR_NS = "sched-system"
SA = "sched-dcsa-operator"
KATIB = ("kubeflow.org", "v1beta1")
TS = ("dcsa.io", "v1alpha1")

TEMPLATE: dict[str, Any] = {
    "metadata": {"labels": {"team": "ml"}},
    "spec": {
        "objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
        "algorithm": {"algorithmName": "gp-bo"},
        "parallelTrialCount": 1,
        "maxTrialCount": 5,
        "parameters": [
            {
                "name": "lr",
                "parameterType": "double",
                "feasibleSpace": {"min": "0.001", "max": "0.1"},
            },
            {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "4"}},
        ],
        "trialTemplate": {"primaryContainerName": "training"},
    },
}


@pytest.fixture(scope="module")
def operator_setup(
    cluster: ApiServer, helm: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ApiServer, Path]]:
    """The chart's CRD and cluster-wide operator RBAC applied; a kubeconfig of its SA."""
    api = cluster
    out = run(
        [
            helm,
            "template",
            RELEASE,
            str(CHART),
            "-n",
            OPERATOR_NS,
            "-f",
            str(CHART / "ci" / "operator-values.yaml"),
            "--show-only",
            "templates/operator-crd.yaml",
            "--show-only",
            "templates/operator-rbac.yaml",
        ]
    ).stdout
    api.kubectl("create", "namespace", OPERATOR_NS, check=False)
    api.kubectl("apply", "-f", "-", input=out)
    api.kubectl(
        "wait", "--for=condition=Established", "crd/tuningschedules.dcsa.io", "--timeout=60s"
    )
    token = api.kubectl("-n", OPERATOR_NS, "create", "token", SA, "--duration=30m").stdout.strip()
    cfg = yaml.safe_load(api.kubeconfig.read_text())
    cfg["users"] = [{"name": "admin", "user": {"token": token}}]
    path = tmp_path_factory.mktemp("operator") / "sa.kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    yield api, path


class Katib:
    """Plays Katib's controller on the API server (admin credentials)."""

    def __init__(self, api: ApiServer, ns: str) -> None:
        self.custom, self.core = load_clients(str(api.kubeconfig))
        self.ns = ns
        api.kubectl("create", "namespace", ns)

    def experiments(self) -> dict[str, dict[str, Any]]:
        items = self.custom.list_namespaced_custom_object(*KATIB, self.ns, "experiments")["items"]
        return {e["metadata"]["name"]: e for e in items}

    def schedule(self, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
            *TS, self.ns, "tuningschedules", name
        )
        return obj

    def create_schedule(self, name: str, **spec: Any) -> dict[str, Any]:
        body = {
            "apiVersion": "dcsa.io/v1alpha1",
            "kind": "TuningSchedule",
            "metadata": {"name": name},
            "spec": {"schedule": "0 * * * *", "experimentTemplate": TEMPLATE, **spec},
        }
        obj: dict[str, Any] = self.custom.create_namespaced_custom_object(
            *TS, self.ns, "tuningschedules", body
        )
        return obj

    def patch_schedule(self, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            *TS,
            self.ns,
            "tuningschedules",
            name,
            {"spec": spec},
            _content_type="application/merge-patch+json",
        )

    def add_trial(
        self, experiment: str, name: str, lr: str, layers: str, acc: str | None, cond: str
    ) -> None:
        body = {
            "apiVersion": "kubeflow.org/v1beta1",
            "kind": "Trial",
            "metadata": {"name": name, "labels": {"katib.kubeflow.org/experiment": experiment}},
            "spec": {
                "parameterAssignments": [
                    {"name": "lr", "value": lr},
                    {"name": "layers", "value": layers},
                ]
            },
        }
        self.custom.create_namespaced_custom_object(*KATIB, self.ns, "trials", body)
        metrics = (
            [] if acc is None else [{"name": "accuracy", "min": "0.1", "max": acc, "latest": acc}]
        )
        status = {
            "conditions": [
                {"type": "Created", "status": "True", "reason": "TrialCreated"},
                {"type": cond, "status": "True", "reason": f"Trial{cond}"},
            ],
            "observation": {"metrics": metrics},
        }
        self.custom.patch_namespaced_custom_object_status(
            *KATIB,
            self.ns,
            "trials",
            name,
            {"status": status},
            _content_type="application/merge-patch+json",
        )

    def finish(self, experiment: str, best: float | None = None, failed: bool = False) -> None:
        status: dict[str, Any] = {
            "conditions": [
                {"type": "Created", "status": "True", "reason": "ExperimentCreated"},
                {"type": "Running", "status": "False", "reason": "ExperimentRunning"},
                {
                    "type": "Failed" if failed else "Succeeded",
                    "status": "True",
                    "reason": "ExperimentFailed" if failed else "ExperimentMaxTrialsReached",
                    "message": "Experiment has succeeded because max trial count has reached",
                },
            ],
            "completionTime": "2026-01-01T00:00:00Z",
        }
        if best is not None:
            status["currentOptimalTrial"] = {
                "bestTrialName": f"{experiment}-t1",
                "parameterAssignments": [
                    {"name": "lr", "value": "0.01"},
                    {"name": "layers", "value": "2"},
                ],
                "observation": {
                    "metrics": [
                        {"name": "accuracy", "min": "0.1", "max": str(best), "latest": "0.5"}
                    ]
                },
            }
        self.custom.patch_namespaced_custom_object_status(
            *KATIB,
            self.ns,
            "experiments",
            experiment,
            {"status": status},
            _content_type="application/merge-patch+json",
        )

    def events(self, name: str) -> list[tuple[str, str, str]]:
        items = self.core.list_namespaced_event(
            self.ns, field_selector=f"involvedObject.name={name}"
        ).items
        return [(e.type, e.reason, e.message) for e in items]


def next_hour(obj: dict[str, Any]) -> dt.datetime:
    created = parse_time(obj["metadata"]["creationTimestamp"])
    assert created is not None
    return created.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)


def make_operator(sa_cfg: Path, ns: str) -> tuple[Operator, Callable[[dt.datetime], None]]:
    custom, core = load_clients(str(sa_cfg))
    now = [dt.datetime.now(dt.UTC)]
    op = Operator(custom=custom, core=core, namespaces=[ns], clock=lambda: now[0])

    def set_now(value: dt.datetime) -> None:
        now[0] = value

    return op, set_now


def setting(exp: dict[str, Any], name: str) -> str | None:
    for s in exp["spec"]["algorithm"].get("algorithmSettings") or []:
        if s["name"] == name:
            return str(s["value"])
    return None


def test_runs_on_schedule_with_warm_start_and_history_limit(
    operator_setup: tuple[ApiServer, Path],
) -> None:
    api, sa_cfg = operator_setup
    k = Katib(api, "ts-main")
    obj = k.create_schedule("nightly", historyLimit=1, warmStart={"enabled": True, "maxTrials": 2})
    op, set_now = make_operator(sa_cfg, k.ns)
    t1 = next_hour(obj)

    # Not due yet: nothing happens, the status says when.
    set_now(t1 - dt.timedelta(minutes=1))
    assert op.reconcile_all() == 1
    assert k.experiments() == {}
    assert k.schedule("nightly")["status"]["nextScheduleTime"] == format_time(t1)

    # Due: one Experiment from the template, owned by the schedule; twice changes nothing.
    set_now(t1 + dt.timedelta(seconds=20))
    op.reconcile_all()
    op.reconcile_all()
    exps = k.experiments()
    e1 = experiment_name("nightly", t1)
    assert list(exps) == [e1]
    first = exps[e1]
    assert first["metadata"]["labels"] == {"team": "ml", "dcsa.io/tuning-schedule": "nightly"}
    assert first["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
    assert first["spec"]["parameters"] == TEMPLATE["spec"]["parameters"]
    assert setting(first, "warm_start") is None  # nothing earlier to start from
    status = k.schedule("nightly")["status"]
    assert status["active"] == e1
    assert status["lastScheduleTime"] == format_time(t1)
    assert status["runs"] == [
        {
            "name": e1,
            "scheduledTime": format_time(t1),
            "phase": "Running",
            "warmStartTrials": 0,
            "warmStartDropped": 0,
        }
    ]
    ready = status["conditions"][0]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "Scheduled")
    assert [r for _, r, _ in k.events("nightly")].count("Created") == 1

    # Katib runs it: five trials, then the Experiment succeeds.
    k.add_trial(e1, f"{e1}-a", "0.01", "2", "0.81", "Succeeded")
    k.add_trial(e1, f"{e1}-b", "0.08", "3", "0.95", "Succeeded")  # will not fit the new range
    k.add_trial(e1, f"{e1}-c", "0.02", "1", "0.70", "EarlyStopped")
    k.add_trial(e1, f"{e1}-d", "0.03", "4", "0.60", "Succeeded")
    k.add_trial(e1, f"{e1}-e", "0.04", "4", None, "Failed")
    k.finish(e1, best=0.95)
    # Meanwhile the team narrows the learning-rate range.
    narrowed = json.loads(json.dumps(TEMPLATE))
    narrowed["spec"]["parameters"][0]["feasibleSpace"]["max"] = "0.05"
    k.patch_schedule("nightly", {"experimentTemplate": narrowed})

    # The next run carries the best trials that still fit, as the warm_start setting.
    t2 = t1 + dt.timedelta(hours=1)
    set_now(t2 + dt.timedelta(seconds=5))
    op.reconcile_all()
    e2 = experiment_name("nightly", t2)
    exps = k.experiments()
    assert set(exps) == {e1, e2}
    payload = json.loads(setting(exps[e2], "warm_start") or "null")
    assert payload == {
        "trials": [
            {"assignments": {"layers": "2", "lr": "0.01"}, "value": 0.81},
            {"assignments": {"layers": "1", "lr": "0.02"}, "value": 0.7},
        ]
    }
    assert exps[e2]["spec"]["parameters"][0]["feasibleSpace"]["max"] == "0.05"
    status = k.schedule("nightly")["status"]
    assert status["active"] == e2
    assert status["warmStart"] == {
        "experiment": e2,
        "sources": [e1],
        "carried": 2,
        "dropped": [
            {"reason": "beyond maxTrials", "count": 1},
            {"reason": "does not fit the search space", "count": 1},
            {"reason": "not finished", "count": 1},
        ],
    }
    run1 = next(r for r in status["runs"] if r["name"] == e1)
    assert run1["phase"] == "Succeeded" and run1["stopReason"] == "ExperimentMaxTrialsReached"
    assert run1["bestObjective"] == 0.95
    assert run1["bestParameters"] == {"lr": "0.01", "layers": "2"}
    created = [m for _, r, m in k.events("nightly") if r == "Created" and e2 in m]
    assert len(created) == 1 and "warm start: 2 trials" in created[0]

    # Third run: historyLimit 1 keeps only the newest finished run; summaries stay.
    k.finish(e2, best=0.9)
    t3 = t2 + dt.timedelta(hours=1)
    set_now(t3 + dt.timedelta(seconds=5))
    op.reconcile_all()
    e3 = experiment_name("nightly", t3)
    assert set(k.experiments()) == {e2, e3}
    status = k.schedule("nightly")["status"]
    assert [r["name"] for r in status["runs"]] == [e1, e2, e3]
    assert status["runs"][0]["bestObjective"] == 0.95  # pruned run's result kept
    assert any(r == "Deleted" and e1 in m for _, r, m in k.events("nightly"))


def test_forbid_waits_replace_replaces_suspend_holds(
    operator_setup: tuple[ApiServer, Path],
) -> None:
    api, sa_cfg = operator_setup
    k = Katib(api, "ts-policy")
    forbid = k.create_schedule("forbid")
    replace = k.create_schedule("replace", concurrencyPolicy="Replace")
    held = k.create_schedule("held", suspend=True)
    op, set_now = make_operator(sa_cfg, k.ns)
    t1 = max(next_hour(o) for o in (forbid, replace, held))
    t2 = t1 + dt.timedelta(hours=1)
    set_now(t1 + dt.timedelta(seconds=5))
    op.reconcile_all()
    assert set(k.experiments()) == {experiment_name("forbid", t1), experiment_name("replace", t1)}
    assert k.schedule("held")["status"]["conditions"][0]["reason"] == "Suspended"

    # Next hour, both first runs still active.
    set_now(t2 + dt.timedelta(seconds=5))
    op.reconcile_all()
    op.reconcile_all()
    assert set(k.experiments()) == {experiment_name("forbid", t1), experiment_name("replace", t2)}
    status = k.schedule("forbid")["status"]
    assert status["conditions"][0]["reason"] == "Waiting"
    assert status["lastScheduleTime"] == format_time(t1)
    assert [r for _, r, _ in k.events("forbid")].count("Waiting") == 1
    assert any(r == "Replaced" for _, r, _ in k.events("replace"))

    # Forbid: when the active run finishes, the waiting start time runs (late, once).
    k.finish(experiment_name("forbid", t1))
    set_now(t2 + dt.timedelta(minutes=20))
    op.reconcile_all()
    assert experiment_name("forbid", t2) in k.experiments()
    assert k.schedule("forbid")["status"]["lastScheduleTime"] == format_time(t2)

    # Suspend lifted: one catch-up run for the most recent missed start time, not two.
    k.patch_schedule("held", {"suspend": False})
    op.reconcile_all()
    op.reconcile_all()
    held_runs = [n for n in k.experiments() if n.startswith("held-")]
    assert held_runs == [experiment_name("held", t2)]


def test_bad_input_is_refused_in_status_and_events_without_loops(
    operator_setup: tuple[ApiServer, Path],
) -> None:
    api, sa_cfg = operator_setup
    k = Katib(api, "ts-bad")
    k.create_schedule("badcron", schedule="every night")
    bad_payload = json.loads(json.dumps(TEMPLATE))
    bad_payload["spec"]["algorithm"]["algorithmSettings"] = [
        {"name": "warm_start", "value": '{"trials": [{"assignments": {"lr": "5"}, "value": 1}]}'}
    ]
    k.create_schedule("badwarm", experimentTemplate=bad_payload)
    # Accepted by our checks, refused by the API server: an invalid label value.
    refused = json.loads(json.dumps(TEMPLATE))
    refused["metadata"]["labels"]["team"] = "not a label value!"
    obj = k.create_schedule("refused", experimentTemplate=refused)
    op, set_now = make_operator(sa_cfg, k.ns)
    t1 = next_hour(obj)
    for minutes in (1, 2, 3):
        set_now(t1 + dt.timedelta(minutes=minutes))
        assert op.reconcile_all() == 3  # never raises, every schedule reconciled
    assert k.experiments() == {}

    cond = k.schedule("badcron")["status"]["conditions"][0]
    assert (cond["status"], cond["reason"]) == ("False", "InvalidSpec")
    assert cond["message"].startswith("spec.schedule: 'every night' is not a cron expression")
    assert k.events("badcron") == [("Warning", "InvalidSpec", cond["message"])]  # once

    cond = k.schedule("badwarm")["status"]["conditions"][0]
    assert cond["reason"] == "InvalidSpec"
    assert "spec.experimentTemplate.spec.algorithm.algorithmSettings[0]" in cond["message"]
    assert "missing values for parameters ['layers']" in cond["message"]

    status = k.schedule("refused")["status"]
    cond = status["conditions"][0]
    assert (cond["status"], cond["reason"]) == ("False", "CreateFailed")
    assert "not a label value!" in cond["message"]
    assert status["lastScheduleTime"] == format_time(t1)  # that start time is spent: no retry loop
    assert [r for _, r, _ in k.events("refused")] == ["CreateFailed"]


def test_rbac_and_the_cli_catch_up_once_after_downtime(
    operator_setup: tuple[ApiServer, Path],
) -> None:
    api, sa_cfg = operator_setup

    def can(*args: str) -> str:
        return api.kubectl("auth", "can-i", *args, kubeconfig=sa_cfg, check=False).stdout.strip()

    for allowed in (
        ("list", "tuningschedules.dcsa.io", "-A"),
        ("patch", "tuningschedules.dcsa.io/x", "--subresource=status", "-n", "ts-cli"),
        ("create", "experiments.kubeflow.org", "-n", "ts-cli"),
        ("delete", "experiments.kubeflow.org/x", "-n", "ts-cli"),
        ("list", "trials.kubeflow.org", "-n", "ts-cli"),
        ("create", "events", "-n", "ts-cli"),
    ):
        assert can(*allowed) == "yes", allowed
    for denied in (
        ("patch", "tuningschedules.dcsa.io/x", "-n", "ts-cli"),
        ("delete", "tuningschedules.dcsa.io/x", "-n", "ts-cli"),
        ("update", "experiments.kubeflow.org/x", "-n", "ts-cli"),
        ("delete", "trials.kubeflow.org/x", "-n", "ts-cli"),
        ("get", "secrets", "-n", "ts-cli"),
        ("get", "pods", "-n", "ts-cli"),
    ):
        assert can(*denied) == "no", denied

    k = Katib(api, "ts-cli")
    k.create_schedule("minutely", schedule="* * * * *")
    # As if the operator created a run 5 minutes ago and was then down.
    before = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=5)
    k.custom.patch_namespaced_custom_object_status(
        *TS,
        k.ns,
        "tuningschedules",
        "minutely",
        {"status": {"lastScheduleTime": format_time(before)}},
        _content_type="application/merge-patch+json",
    )
    proc = run(
        [
            sys.executable,
            "-m",
            "suggestion_service",
            "operator",
            "--once",
            f"--kubeconfig={sa_cfg}",
            "--namespace=ts-cli",
        ],
        timeout=120,
    )
    (name,) = k.experiments()  # one catch-up run, not five
    scheduled = parse_time(
        k.experiments()[name]["metadata"]["annotations"]["dcsa.io/scheduled-time"]
    )
    assert scheduled is not None and scheduled >= before + dt.timedelta(minutes=5)
    assert name == experiment_name("minutely", scheduled)
    (created,) = [m for _, r, m in k.events("minutely") if r == "Created"]
    assert "start times were missed, only the most recent one runs" in created
    assert "created Experiment" in proc.stderr
