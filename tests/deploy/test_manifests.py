"""The kustomize manifests: generated from the chart (in sync), build with kubectl's kustomize,
validate strictly, and register/unregister our algorithms on a real API server."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import FIXTURES, REPO, ApiServer, find_tool, need_tool, run

MANIFESTS = REPO / "manifests"
DIRS = [".", "base", "katib-config", "katib-config-remove", "monitoring"]
STOCK = (FIXTURES / "katib-config.yaml").read_text()

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


def build(path: str) -> list[dict[str, Any]]:
    out = run([need_tool("kubectl"), "kustomize", str(MANIFESTS / path)]).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_manifests_are_generated_from_the_chart() -> None:
    helm = need_tool("helm")
    env = {**os.environ, "HELM": helm, "PYTHON": sys.executable}
    proc = run(["bash", str(MANIFESTS / "generate.sh"), "--check"], env=env, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", DIRS)
def test_kustomize_builds_and_validates(path: str, tmp_path: Path) -> None:
    docs = build(path)
    assert docs
    builtin = [
        d
        for d in docs
        if d["apiVersion"].split("/")[0] not in {"monitoring.coreos.com", "kubeflow.org"}
    ]
    if builtin:
        f = tmp_path / "out.yaml"
        f.write_text(yaml.safe_dump_all(builtin))
        proc = run([need_tool("kubernetes-validate"), "--strict", str(f)], check=False)
        assert proc.returncode == 0 and "ERROR" not in proc.stdout + proc.stderr, proc.stdout


def test_top_level_includes_registration_and_cpu_examples() -> None:
    docs = build(".")
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("Job", "dcsa-katib-config-add") in kinds
    assert ("Role", "dcsa-katib-config") in kinds
    # Left out: examples that need something of the cluster (GPU nodes, a volume claim).
    examples = sorted(
        p.name
        for p in (MANIFESTS / "examples").glob("*.yaml")
        if "gpu" not in p.name and "persistentVolumeClaim" not in p.read_text()
    )
    experiments = [d for d in docs if d["kind"] == "Experiment"]
    assert len(experiments) == len(examples)
    assert {d["metadata"]["namespace"] for d in experiments} == {"dcsa-examples"}
    assert {d["spec"]["algorithm"]["algorithmName"] for d in experiments} <= {
        "dcsa-bo",
        "dc-bo",
        "sa-bo",
        "gp-bo",
        "random",
    }


def test_remove_overlay_has_no_hook_annotations() -> None:
    (job,) = [d for d in build("katib-config-remove") if d["kind"] == "Job"]
    assert not [k for k in job["metadata"].get("annotations", {}) if k.startswith("helm.sh")]
    assert job["spec"]["template"]["spec"]["containers"][0]["args"][:2] == [
        "katib-config",
        "remove",
    ]


def _sa_kubeconfig(api: ApiServer, tmp: Path) -> Path:
    token = api.kubectl(
        "-n", "dcsa-system", "create", "token", "dcsa-katib-config", "--duration=10m"
    ).stdout.strip()
    cfg = yaml.safe_load(api.kubeconfig.read_text())
    cfg["users"] = [{"name": "admin", "user": {"token": token}}]
    path = tmp / "sa.kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run_job(job: dict[str, Any], kubeconfig: Path, entries: Path | None) -> None:
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    if entries is not None:
        args = [a.replace("/etc/dcsa/entries.yaml", str(entries)) for a in args]
    run(
        [sys.executable, "-m", "suggestion_service", *args, f"--kubeconfig={kubeconfig}"],
        env={**os.environ, "KUBERNETES_SERVICE_HOST": ""},
    )


def _katib_config(api: ApiServer) -> str:
    cm = json.loads(
        api.kubectl("-n", "kubeflow", "get", "configmap", "katib-config", "-o", "json").stdout
    )
    text: str = cm["data"]["katib-config.yaml"]
    return text


def test_apply_k_registers_and_remove_overlay_restores(cluster: ApiServer, tmp_path: Path) -> None:
    """`kubectl apply -k manifests/` on a real API server, then what its Job would run."""
    if find_tool("helm") is None:  # only to keep the module's tools consistent
        pytest.skip("helm not installed (run scripts/install/deploy.sh)")
    api = cluster
    assert _katib_config(api) == STOCK
    api.kubectl("apply", "-k", str(MANIFESTS))
    api.kubectl("-n", "dcsa-examples", "get", "experiment", "digits-quickstart")
    entries = tmp_path / "entries.yaml"
    entries.write_text(
        yaml.safe_load(
            api.kubectl(
                "-n", "dcsa-system", "get", "configmap", "dcsa-katib-entries", "-o", "yaml"
            ).stdout
        )["data"]["entries.yaml"]
    )
    sa_cfg = _sa_kubeconfig(api, tmp_path)
    add_job = json.loads(
        api.kubectl("-n", "dcsa-system", "get", "job", "dcsa-katib-config-add", "-o", "json").stdout
    )
    _run_job(add_job, sa_cfg, entries)
    names = [
        e["algorithmName"] for e in yaml.safe_load(_katib_config(api))["runtime"]["suggestions"]
    ]
    assert names[-4:] == ["dcsa-bo", "dc-bo", "sa-bo", "gp-bo"]

    api.kubectl("apply", "-k", str(MANIFESTS / "katib-config-remove"))
    remove_job = json.loads(
        api.kubectl(
            "-n", "dcsa-system", "get", "job", "dcsa-katib-config-remove", "-o", "json"
        ).stdout
    )
    _run_job(remove_job, sa_cfg, None)
    assert _katib_config(api) == STOCK

    # Clean up, but keep the namespaces: without a controller-manager a deleted namespace
    # stays Terminating for good.
    leftovers = [
        d for path in (".", "katib-config-remove") for d in build(path) if d["kind"] != "Namespace"
    ]
    (tmp_path / "leftovers.yaml").write_text(yaml.safe_dump_all(leftovers))
    api.kubectl(
        "delete", "-f", str(tmp_path / "leftovers.yaml"), "--wait=false", "--ignore-not-found"
    )
