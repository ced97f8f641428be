"""Against a real kube-apiserver: helm install registers our algorithms without harming Katib's.

The API server runs no pods (no kubelet, no controllers), so hook Jobs never execute here. The
chart is installed with ``--no-hooks``; the test then reads the hook Jobs' exact arguments from
``helm get hooks`` and runs that command itself, authenticated as the hook's ServiceAccount (a
token from the TokenRequest API), which also proves its RBAC is enough and no more.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from suggestion_service.k8s.configmap import Target, apply, load_client
from suggestion_service.k8s.katib_config import OWNER_ANNOTATION

from .conftest import CHART, FIXTURES, ApiServer, run

# The test API server uses a self-signed certificate on 127.0.0.1.
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

KATIB_NS = "kubeflow"
RELEASE = "dcsa"
NS = "dcsa-system"
OURS = ["dcsa-bo", "dc-bo", "sa-bo", "gp-bo"]
STOCK = (FIXTURES / "katib-config.yaml").read_text()


def read_cm(api: ApiServer) -> dict[str, Any]:
    out = api.kubectl("-n", KATIB_NS, "get", "configmap", "katib-config", "-o", "json").stdout
    cm: dict[str, Any] = json.loads(out)
    return cm


def suggestion_names(text: str) -> list[str]:
    return [e["algorithmName"] for e in yaml.safe_load(text)["runtime"]["suggestions"]]


def helm_cmd(helm: str, api: ApiServer, *args: str) -> list[str]:
    return [helm, "--kubeconfig", str(api.kubeconfig), *args]


def hook_jobs(helm: str, api: ApiServer, release: str = RELEASE) -> dict[str, dict[str, Any]]:
    out = run(helm_cmd(helm, api, "get", "hooks", release, "-n", NS)).stdout
    jobs = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "Job"]
    return {j["metadata"]["annotations"]["helm.sh/hook"]: j for j in jobs}


def sa_kubeconfig(api: ApiServer, tmp: Path, sa: str) -> Path:
    token = api.kubectl("-n", NS, "create", "token", sa, "--duration=10m").stdout.strip()
    cfg = yaml.safe_load(api.kubeconfig.read_text())
    cfg["users"] = [{"name": "admin", "user": {"token": token}}]
    path = tmp / f"{sa}.kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_job_command(
    job: dict[str, Any],
    kubeconfig: Path,
    entries: Path | None,
) -> Any:
    """Run what the Job's container runs (``dcsa`` + its args) with a local kubeconfig."""
    container = job["spec"]["template"]["spec"]["containers"][0]
    args = [
        a.replace("/etc/dcsa/entries.yaml", str(entries)) if entries else a
        for a in container["args"]
    ]
    env = {
        **os.environ,
        **{e["name"]: e["value"] for e in container.get("env", [])},
        "KUBERNETES_SERVICE_HOST": "",
    }
    return run(
        [sys.executable, "-m", "suggestion_service", *args, f"--kubeconfig={kubeconfig}"],
        env=env,
        check=False,
    )


def test_helm_install_registers_our_algorithms_and_keeps_katibs(
    cluster: ApiServer, helm: str, tmp_path: Path
) -> None:
    api = cluster
    before = read_cm(api)
    assert before["data"]["katib-config.yaml"] == STOCK

    run(
        helm_cmd(
            helm,
            api,
            "install",
            RELEASE,
            str(CHART),
            "-n",
            NS,
            "--create-namespace",
            "--no-hooks",
            "-f",
            str(CHART / "ci" / "networkpolicy-values.yaml"),
            "--set",
            "networkPolicy.experimentNamespaces={default}",
        ),
        timeout=180,
    )

    # Regular resources are there: least-privilege RBAC in Katib's namespace, our entries.
    role = json.loads(
        api.kubectl("-n", KATIB_NS, "get", "role", "dcsa-katib-config", "-o", "json").stdout
    )
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["katib-config"],
            "verbs": ["get", "patch"],
        }
    ]
    api.kubectl("-n", KATIB_NS, "get", "rolebinding", "dcsa-katib-config")
    api.kubectl("-n", "default", "get", "networkpolicy", "dcsa-suggestions")
    # With --no-hooks no Job was created; the hooks are recorded in the release.
    assert api.kubectl("-n", NS, "get", "jobs", "-o", "name").stdout.strip() == ""
    jobs = hook_jobs(helm, api)
    assert set(jobs) == {"post-install,post-upgrade", "pre-delete"}

    entries_text = yaml.safe_load(
        api.kubectl("-n", NS, "get", "configmap", "dcsa-katib-entries", "-o", "yaml").stdout
    )["data"]["entries.yaml"]
    entries = tmp_path / "entries.yaml"
    entries.write_text(entries_text)

    # The hook's ServiceAccount may get and patch katib-config, and nothing else.
    sa = jobs["pre-delete"]["spec"]["template"]["spec"]["serviceAccountName"]
    sa_cfg = sa_kubeconfig(api, tmp_path, sa)

    def can(*args: str) -> str:
        return api.kubectl("auth", "can-i", *args, kubeconfig=sa_cfg, check=False).stdout.strip()

    assert can("get", "configmap/katib-config", "-n", KATIB_NS) == "yes"
    assert can("patch", "configmap/katib-config", "-n", KATIB_NS) == "yes"
    for verb_and_object in (
        ("update", "configmap/katib-config"),
        ("delete", "configmap/katib-config"),
        ("get", "configmap/other"),
        ("list", "configmaps"),
        ("create", "configmaps"),
        ("get", "secrets"),
    ):
        assert can(*verb_and_object, "-n", KATIB_NS) == "no", verb_and_object
    assert can("patch", "configmap/katib-config", "-n", NS) == "no"

    # post-install: `dcsa katib-config add`, as the hook's ServiceAccount.
    add_job = jobs["post-install,post-upgrade"]
    proc = run_job_command(add_job, sa_cfg, entries)
    assert proc.returncode == 0, proc.stderr
    after = read_cm(api)
    text = after["data"]["katib-config.yaml"]
    katib_names = suggestion_names(STOCK)
    assert suggestion_names(text) == [*katib_names, *OURS]
    cut = STOCK.index("    # end of Katib's suggestions")
    assert text.startswith(STOCK[:cut]) and text.endswith(STOCK[cut:])  # Katib's bytes kept
    stock_doc, new_doc = yaml.safe_load(STOCK), yaml.safe_load(text)
    assert (
        new_doc["runtime"]["suggestions"][: len(katib_names)] == stock_doc["runtime"]["suggestions"]
    )
    for ours in new_doc["runtime"]["suggestions"][len(katib_names) :]:
        assert ours["resources"]["limits"]["memory"] == "2Gi"
        assert {"name": "metrics", "containerPort": 8000, "protocol": "TCP"} in ours["ports"]
        assert ours["securityContext"]["readOnlyRootFilesystem"] is True
        assert {"name": "OMP_NUM_THREADS", "value": "1"} in ours["env"]
    assert after["metadata"]["annotations"][OWNER_ANNOTATION] == ",".join(sorted(OURS))
    assert set(after["data"]) == set(before["data"])

    # Twice: idempotent, no write at all.
    proc = run_job_command(add_job, sa_cfg, entries)
    assert proc.returncode == 0, proc.stderr
    again = read_cm(api)
    assert again["data"] == after["data"]
    assert again["metadata"]["resourceVersion"] == after["metadata"]["resourceVersion"]

    # helm upgrade with other resources: the post-upgrade command replaces our entries in place.
    run(
        helm_cmd(
            helm,
            api,
            "upgrade",
            RELEASE,
            str(CHART),
            "-n",
            NS,
            "--no-hooks",
            "--reuse-values",
            "--set",
            "suggestion.resources.limits.memory=3Gi",
        ),
        timeout=180,
    )
    entries.write_text(
        yaml.safe_load(
            api.kubectl("-n", NS, "get", "configmap", "dcsa-katib-entries", "-o", "yaml").stdout
        )["data"]["entries.yaml"]
    )
    jobs = hook_jobs(helm, api)
    proc = run_job_command(jobs["post-install,post-upgrade"], sa_cfg, entries)
    assert proc.returncode == 0, proc.stderr
    upgraded = read_cm(api)["data"]["katib-config.yaml"]
    assert suggestion_names(upgraded) == [*katib_names, *OURS]
    assert upgraded.startswith(STOCK[:cut]) and upgraded.endswith(STOCK[cut:])
    ours_after = yaml.safe_load(upgraded)["runtime"]["suggestions"][len(katib_names) :]
    assert {e["resources"]["limits"]["memory"] for e in ours_after} == {"3Gi"}

    # pre-delete: `dcsa katib-config remove` gives back the original bytes.
    proc = run_job_command(jobs["pre-delete"], sa_cfg, None)
    assert proc.returncode == 0, proc.stderr
    restored = read_cm(api)
    assert restored["data"]["katib-config.yaml"] == STOCK
    assert restored["data"] == before["data"]
    assert OWNER_ANNOTATION not in (restored["metadata"].get("annotations") or {})
    assert (restored["metadata"].get("labels") or {}) == (before["metadata"].get("labels") or {})

    # Uninstall takes the RBAC away again.
    run(helm_cmd(helm, api, "uninstall", RELEASE, "-n", NS, "--no-hooks"), timeout=120)
    assert (
        api.kubectl("-n", KATIB_NS, "get", "role", "dcsa-katib-config", check=False).returncode != 0
    )


def test_add_refuses_to_take_over_katibs_random(
    cluster: ApiServer, tmp_path: Path, helm: str
) -> None:
    api = cluster
    out = run(
        [
            helm,
            "template",
            RELEASE,
            str(CHART),
            "-n",
            NS,
            "--show-only",
            "templates/katib-entries-configmap.yaml",
            "--set",
            "algorithms={dcsa-bo,random}",
        ]
    ).stdout
    entries = tmp_path / "entries.yaml"
    entries.write_text(yaml.safe_load(out)["data"]["entries.yaml"])
    before = read_cm(api)
    proc = run(
        [
            sys.executable,
            "-m",
            "suggestion_service",
            "katib-config",
            "add",
            f"--entries={entries}",
            f"--kubeconfig={api.kubeconfig}",
        ],
        check=False,
    )
    assert proc.returncode == 2
    assert "not written by dcsa" in proc.stderr and "'random'" in proc.stderr
    assert read_cm(api)["data"] == before["data"]


class _RacingApi:
    """A real CoreV1Api whose first read is followed by someone else's write (a real 409)."""

    def __init__(self, inner: Any, api: ApiServer) -> None:
        self._inner = inner
        self._api = api
        self.reads = 0

    def read_namespaced_config_map(self, name: str, namespace: str) -> Any:
        cm = self._inner.read_namespaced_config_map(name, namespace)
        self.reads += 1
        if self.reads == 1:
            self._api.kubectl(
                "-n",
                namespace,
                "label",
                "configmap",
                name,
                "--overwrite",
                f"touched-by-someone-else={int(time.time())}",
            )
        return cm

    def patch_namespaced_config_map(self, *args: Any, **kwargs: Any) -> Any:
        return self._inner.patch_namespaced_config_map(*args, **kwargs)


def test_conflicting_update_is_retried(cluster: ApiServer, tmp_path: Path, helm: str) -> None:
    api = cluster
    out = run(
        [
            helm,
            "template",
            RELEASE,
            str(CHART),
            "-n",
            NS,
            "--show-only",
            "templates/katib-entries-configmap.yaml",
        ]
    ).stdout
    entries = yaml.safe_load(yaml.safe_load(out)["data"]["entries.yaml"])
    racing = _RacingApi(load_client(str(api.kubeconfig)), api)
    outcome = apply(racing, Target(), "add", entries, sleep=lambda _s: None)
    assert outcome.patched and outcome.attempts == 2 and racing.reads == 2
    cm = read_cm(api)
    assert suggestion_names(cm["data"]["katib-config.yaml"])[-4:] == OURS
    assert "touched-by-someone-else" in cm["metadata"]["labels"]  # their write survived
    outcome = apply(load_client(str(api.kubeconfig)), Target(), "remove")
    assert outcome.patched
    assert read_cm(api)["data"]["katib-config.yaml"] == STOCK


def test_snippet_mode_installs_no_job_and_no_rbac(cluster: ApiServer, helm: str) -> None:
    api = cluster
    run(
        helm_cmd(
            helm,
            api,
            "install",
            "snip",
            str(CHART),
            "-n",
            NS,
            "--create-namespace",
            "--no-hooks",
            "-f",
            str(CHART / "ci" / "snippet-values.yaml"),
        ),
        timeout=180,
    )
    try:
        assert "Job" not in {
            d["kind"]
            for d in yaml.safe_load_all(
                run(helm_cmd(helm, api, "get", "hooks", "snip", "-n", NS)).stdout
            )
            if d
        }
        assert api.kubectl("-n", KATIB_NS, "get", "roles", "-o", "name").stdout.strip() == ""
        snippet = yaml.safe_load(
            api.kubectl(
                "-n", NS, "get", "configmap", "snip-dcsa-katib-config-snippet", "-o", "yaml"
            ).stdout
        )["data"]["suggestions.yaml"]
        assert [e["algorithmName"] for e in yaml.safe_load(snippet)] == OURS
        assert read_cm(api)["data"]["katib-config.yaml"] == STOCK
    finally:
        run(helm_cmd(helm, api, "uninstall", "snip", "-n", NS, "--no-hooks"), timeout=120)


def test_rendered_manifests_pass_server_side_dry_run(
    cluster: ApiServer, helm: str, tmp_path: Path
) -> None:
    """Everything the chart renders is accepted by a real (1.20) API server: built-in kinds
    against its own schemas, PodMonitor/PrometheusRule against schema-less operator CRDs."""
    api = cluster
    api.kubectl("apply", "-f", str(FIXTURES / "monitoring-crds.yaml"))
    for ns in ("team-a", "team-b", "katib-system"):
        api.kubectl("create", "namespace", ns, check=False)
    for values in sorted((CHART / "ci").glob("*-values.yaml")):
        out = run([helm, "template", RELEASE, str(CHART), "-n", NS, "-f", str(values)]).stdout
        path = tmp_path / values.name
        path.write_text(out)
        proc = api.kubectl("apply", "--dry-run=server", "-f", str(path), check=False)
        assert proc.returncode == 0, f"{values.name}: {proc.stderr}"


def test_monitoring_installs_with_the_operator_crds(cluster: ApiServer, helm: str) -> None:
    api = cluster
    api.kubectl("apply", "-f", str(FIXTURES / "monitoring-crds.yaml"))
    values = CHART / "ci" / "monitoring-values.yaml"
    args = ["install", "mon", str(CHART), "-n", NS, "--create-namespace", "--no-hooks"]
    run(helm_cmd(helm, api, *args, "-f", str(values)), timeout=180)
    try:
        api.kubectl("-n", NS, "get", "podmonitor", "mon-dcsa-suggestions")
        rule = json.loads(
            api.kubectl("-n", NS, "get", "prometheusrule", "mon-dcsa", "-o", "json").stdout
        )
        assert len(rule["spec"]["groups"][0]["rules"]) == 8
        api.kubectl("-n", NS, "get", "configmap", "mon-dcsa-dashboard")
    finally:
        run(helm_cmd(helm, api, "uninstall", "mon", "-n", NS, "--no-hooks"), timeout=120)


def test_missing_configmap_and_missing_rights_give_clear_exit_codes(
    cluster: ApiServer, tmp_path: Path, helm: str
) -> None:
    api = cluster
    api.kubectl("create", "namespace", "no-katib-here")
    base = [sys.executable, "-m", "suggestion_service", "katib-config"]
    kube = f"--kubeconfig={api.kubeconfig}"
    # remove with Katib gone: nothing to do, success (helm uninstall must not get stuck)
    proc = run([*base, "remove", "--namespace=no-katib-here", kube], check=False)
    assert proc.returncode == 0, proc.stderr
    assert "not found" in proc.stderr and "nothing to remove" in proc.stderr
    out = run(
        [
            helm,
            "template",
            RELEASE,
            str(CHART),
            "--show-only",
            "templates/katib-entries-configmap.yaml",
        ]
    ).stdout
    entries = tmp_path / "entries.yaml"
    entries.write_text(yaml.safe_load(out)["data"]["entries.yaml"])
    # add with Katib missing: a clear error, exit code 2
    proc = run(
        [*base, "add", f"--entries={entries}", "--namespace=no-katib-here", kube], check=False
    )
    assert proc.returncode == 2
    assert "is Katib installed in namespace 'no-katib-here'" in proc.stderr
    # a ServiceAccount without the Role: a message that names the missing rights
    api.kubectl("create", "namespace", NS, check=False)  # when run on its own
    api.kubectl("-n", NS, "create", "serviceaccount", "nobody")
    proc = run(
        [
            *base,
            "add",
            f"--entries={entries}",
            f"--kubeconfig={sa_kubeconfig(api, tmp_path, 'nobody')}",
        ],
        check=False,
    )
    assert proc.returncode == 2
    assert "needs get and patch" in proc.stderr
    assert read_cm(api)["data"]["katib-config.yaml"] == STOCK
