"""The Helm chart: lint, render, validate (kubernetes-validate --strict), scan (checkov), and
the invariants the issue asks for (hardened pods, least-privilege RBAC, our katib-config entries).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from suggestion_service.k8s.katib_config import validate_entries

from .conftest import (
    CHART,
    CI_VALUES,
    RELEASE_NS,
    find_tool,
    free_port,
    helm_template,
    need_tool,
    run,
)

CI_IDS = [p.name.removesuffix("-values.yaml") for p in CI_VALUES]
OPERATOR_KINDS = {"PodMonitor", "PrometheusRule"}
COMPONENT = "app.kubernetes.io/component"


def kinds(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        out.setdefault(d["kind"], []).append(d)
    return out


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    specs = []
    for d in docs:
        if d["kind"] == "Pod":
            specs.append((d["metadata"]["name"], d["spec"]))
        elif d["kind"] in {"Job", "Deployment", "StatefulSet", "DaemonSet"}:
            specs.append((d["metadata"]["name"], d["spec"]["template"]["spec"]))
    return specs


def entries_of(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for d in docs:
        if d["kind"] == "ConfigMap" and "entries.yaml" in d.get("data", {}):
            return list(yaml.safe_load(d["data"]["entries.yaml"]))
        if d["kind"] == "ConfigMap" and "suggestions.yaml" in d.get("data", {}):
            return list(yaml.safe_load(d["data"]["suggestions.yaml"]))
    return []


def test_every_feature_has_ci_values() -> None:
    assert set(CI_IDS) >= {
        "default",
        "snippet",
        "monitoring",
        "networkpolicy",
        "fromvolume",
        "custom",
        "plain-jobs",
        "hardened",
    }


@pytest.mark.parametrize("helm_name", ["helm", "helm4"])
@pytest.mark.parametrize("values", CI_VALUES, ids=CI_IDS)
def test_lint_strict_and_template(helm_name: str, values: Path) -> None:
    binary = find_tool(helm_name)
    if binary is None:
        if helm_name == "helm":
            pytest.skip("helm not installed (run scripts/install/deploy.sh)")
        pytest.skip("Helm 4 not installed (scripts/install/deploy.sh installs it as helm4)")
    lint = run([binary, "lint", "--strict", str(CHART), "-f", str(values)])
    assert "0 chart(s) failed" in lint.stdout
    docs = helm_template(binary, "-f", str(values))
    assert docs, "nothing rendered"
    for d in docs:
        assert d["metadata"]["labels"]["app.kubernetes.io/name"] == "dcsa"
        assert d["metadata"]["labels"]["helm.sh/chart"].startswith("dcsa-")


BAD_VALUES = [
    (["--set", "algorithms={dcsa-bo,hyperband}"], "algorithms.1: algorithms.1 must be one of"),
    (
        ["--set", "suggestion.metricsPort=6789"],
        "suggestion.metricsPort: 6789 is Katib's suggestion API port",
    ),
    (["--set", "suggestion.resources.limits=null"], "suggestion.resources: limits is required"),
    (
        ["--set", "suggestion.resources.limits.memory=null"],
        "suggestion.resources.limits: memory is required",
    ),
    (
        ["--set", "suggestion.resources.limits.memory=lots"],
        "suggestion.resources.limits.memory: does not match pattern",
    ),
    (["--set", "katibConfig.mode=replace"], "katibConfig.mode: katibConfig.mode must be one"),
    (
        ["--set", "katibConfig.hook.helmHooks=false"],
        "katibConfig.hook.removeOnUninstall needs katibConfig.hook.helmHooks=true",
    ),
    (["--set", "suggestion.logFormat=xml"], "suggestion.logFormat must be one of"),
    (
        ["--set", "suggestion.maxConcurrentRpcs=2"],
        "suggestion.maxConcurrentRpcs: must be 0 (twice workers) or at least suggestion.workers",
    ),
    (
        ["--set", "metrics.prometheusRule.latencyWarningSeconds=90"],
        "latencyWarningSeconds: must be less than or equal to 60",
    ),
    (["--set", "katib.namespace=Kube_Flow"], "katib.namespace: does not match pattern"),
    (["--set", "image.digest=latest"], "image.digest: does not match pattern"),
    (["--set", "unknownKey=1"], "additional property unknownKey is not allowed"),
]


@pytest.mark.parametrize(("args", "message"), BAD_VALUES, ids=[m for _, m in BAD_VALUES])
def test_bad_values_fail_rendering_with_a_clear_message(
    helm: str, args: list[str], message: str
) -> None:
    proc = run([helm, "template", "dcsa", str(CHART), *args], check=False)
    assert proc.returncode != 0
    assert message.lower() in proc.stderr.lower(), proc.stderr


def test_several_errors_are_reported_at_once(helm: str) -> None:
    proc = run(
        [
            helm,
            "template",
            "dcsa",
            str(CHART),
            "--set",
            "suggestion.metricsPort=6789",
            "--set",
            "katibConfig.hook.helmHooks=false",
        ],
        check=False,
    )
    assert proc.returncode != 0
    assert "VALUES VALIDATION" in proc.stderr
    assert "metricsPort" in proc.stderr and "removeOnUninstall" in proc.stderr


@pytest.mark.parametrize("k8s_version", ["1.25.0", "1.37.0"])
def test_kubernetes_validate_strict(
    rendered: dict[str, list[dict[str, Any]]], tmp_path: Path, k8s_version: str
) -> None:
    tool = need_tool("kubernetes-validate")
    files = []
    for name, docs in rendered.items():
        builtin = [d for d in docs if d["kind"] not in OPERATOR_KINDS]
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump_all(builtin))
        files.append(str(path))
    proc = run([tool, "--strict", "-k", k8s_version, *files], check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ERROR" not in proc.stdout + proc.stderr
    assert "passed for resource job/" in proc.stdout


def test_operator_resources_have_the_operators_shape(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """kubernetes-validate has no schema for monitoring.coreos.com; check the fields we use."""
    by_kind = kinds(rendered["monitoring"])
    (pm,) = by_kind["PodMonitor"]
    assert pm["apiVersion"] == "monitoring.coreos.com/v1"
    assert pm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    spec = pm["spec"]
    assert set(spec) == {"namespaceSelector", "selector", "podMetricsEndpoints"}
    assert spec["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}
    assert spec["selector"] == {
        "matchExpressions": [{"key": "katib.kubeflow.org/suggestion", "operator": "Exists"}]
    }
    (ep,) = spec["podMetricsEndpoints"]
    assert ep["port"] == "metrics" and ep["path"] == "/metrics"
    allowed = {"sourceLabels", "targetLabel", "regex", "action", "replacement", "separator"}
    for r in ep["relabelings"]:
        assert set(r) <= allowed
    keep = ep["relabelings"][0]
    assert keep["action"] == "keep"
    assert keep["regex"] == ".+-(dcsa-bo|dc-bo|sa-bo|gp-bo)"
    (rule,) = by_kind["PrometheusRule"]
    assert set(rule["spec"]) == {"groups"}
    names = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert names == {
        "DcsaSuggestionRPCErrors",
        "DcsaSuggestionInvalidSettings",
        "DcsaSearchSpaceExhausted",
        "DcsaSuggestionLatencyHigh",
        "DcsaSuggestionLatencyCritical",
        "DcsaSuggestionFallbacks",
        "DcsaSuggestionPodRestarting",
        "DcsaSuggestionOOMKilled",
    }
    (dash,) = [d for d in by_kind["ConfigMap"] if d["metadata"]["name"].endswith("-dashboard")]
    assert dash["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_optional_features_are_off_by_default(rendered: dict[str, list[dict[str, Any]]]) -> None:
    default = kinds(rendered["default"])
    assert not OPERATOR_KINDS & set(default)
    # the suggestion pods' NetworkPolicy is a security default (issue 12): on, in Katib's
    # namespace unless Experiment namespaces are listed
    assert sorted(
        (n["metadata"]["name"], n["metadata"]["namespace"]) for n in default["NetworkPolicy"]
    ) == [("dcsa-deny-ingress", RELEASE_NS), ("dcsa-suggestions", "kubeflow")]
    assert not [c for c in default["ConfigMap"] if "dashboard" in c["metadata"]["name"]]
    assert {j["metadata"]["annotations"]["helm.sh/hook"] for j in default["Job"]} == {
        "post-install,post-upgrade",
        "pre-delete",
    }


def test_checkov_finds_nothing_unexplained(
    rendered: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    checkov = need_tool("checkov")
    for name, docs in rendered.items():
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump_all(docs))
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    proc = run(
        [checkov, "--config-file", str(CHART / ".checkov.yaml"), "-d", str(tmp_path), "-o", "json"],
        check=False,
        timeout=300,
        env=env,
    )
    report = yaml.safe_load(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [
        (c["check_id"], c["resource"]) for r in reports for c in r["results"]["failed_checks"]
    ]
    assert failed == [], failed
    assert sum(r["summary"]["passed"] for r in reports) > 500
    # Resource-level skips: only those explained in a checkov.io/skipN annotation of the one
    # resource concerned (hook Job token, test pod probes); global ones live in .checkov.yaml.
    skipped = {c["check_id"] for r in reports for c in r["results"]["skipped_checks"]}
    assert skipped == {"CKV_K8S_38", "CKV_K8S_8", "CKV_K8S_9"}, skipped


@pytest.mark.parametrize("name", CI_IDS)
def test_pods_are_hardened(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    specs = pod_specs(rendered[name])
    assert specs
    for pod, spec in specs:
        assert spec["securityContext"]["runAsNonRoot"] is True, pod
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, pod
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True and isinstance(sc["runAsUser"], int), pod
            assert sc["allowPrivilegeEscalation"] is False, pod
            assert sc["readOnlyRootFilesystem"] is True, pod
            assert sc["capabilities"]["drop"] == ["ALL"], pod
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, pod
            assert c["resources"]["limits"]["memory"], pod
            assert c["resources"]["requests"]["cpu"], pod


@pytest.mark.parametrize("name", CI_IDS)
def test_rbac_is_least_privilege(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    # The TuningSchedule operator's own RBAC (component: operator) is checked rule by rule in
    # tests/deploy/test_schedule_chart.py; everything else here is the katib-config Job's.
    by_kind = kinds(
        [d for d in rendered[name] if d["metadata"]["labels"].get(COMPONENT) != "operator"]
    )
    assert "ClusterRole" not in by_kind and "ClusterRoleBinding" not in by_kind
    for role in by_kind.get("Role", []):
        for rule in role["rules"]:
            for key in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(key, []), (role["metadata"]["name"], key)
            assert rule["resources"] == ["configmaps"]
            assert rule["resourceNames"] == ["katib-config"]
            assert set(rule["verbs"]) == {"get", "patch"}
    for sa in by_kind.get("ServiceAccount", []):
        assert sa["automountServiceAccountToken"] is False


@pytest.mark.parametrize("name", ["default", "custom", "fromvolume", "snippet"])
def test_katib_entries(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    entries = validate_entries(entries_of(rendered[name]))
    expected = ["dcsa-bo", "dc-bo", "sa-bo", "gp-bo"] + (["random"] if name == "custom" else [])
    assert [e["algorithmName"] for e in entries] == expected
    for e in entries:
        env = {v["name"]: v["value"] for v in e["env"]}
        threads = "2" if name == "custom" else "1"
        assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == threads
        assert env["DCSA_BLAS_THREADS"] == env["MKL_NUM_THREADS"] == threads
        assert env["DCSA_LOG_FORMAT"] == ("text" if name == "custom" else "json")
        assert e["ports"] == [{"name": "metrics", "containerPort": 8000, "protocol": "TCP"}]
        assert e["securityContext"]["readOnlyRootFilesystem"] is True
        assert e["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert e["resources"]["limits"]["memory"] not in {"100Mi", None}
        assert ("persistentVolumeClaimSpec" in e) is (name == "fromvolume")
    if name == "fromvolume":
        pvc = entries[0]["persistentVolumeClaimSpec"]
        assert pvc == {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "standard",
            "resources": {"requests": {"storage": "2Gi"}},
        }
        assert entries[0]["volumeMountPath"] == "/opt/katib/data"
    if name == "custom":
        assert entries[0]["image"] == (
            "registry.example.com/ml/dcsa@sha256:"
            "0123456789abcdef0123456789abcdef"
            "0123456789abcdef0123456789abcdef"
        )
        assert entries[0]["serviceAccountName"] == "dcsa-suggestion"
        assert {"name": "DCSA_GRACE", "value": "20"} in entries[0]["env"]


def test_snippet_mode_renders_no_job_and_no_rbac(rendered: dict[str, list[dict[str, Any]]]) -> None:
    by_kind = kinds(rendered["snippet"])
    assert not {"Job", "Role", "RoleBinding", "ServiceAccount"} & set(by_kind)


def test_hardened_suggestion_pods(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """Issue 12, section 6: suggestion pods on a ServiceAccount without an API token in each
    Experiment namespace, and the metrics listener address configurable."""
    docs = rendered["hardened"]
    sas = [d for d in kinds(docs)["ServiceAccount"] if d["metadata"]["name"] == "dcsa-suggestion"]
    assert sorted(sa["metadata"]["namespace"] for sa in sas) == ["team-a", "team-b"]
    assert all(sa["automountServiceAccountToken"] is False for sa in sas)
    entries = validate_entries(entries_of(docs))
    for e in entries:
        assert e["serviceAccountName"] == "dcsa-suggestion"
        env = {v["name"]: v["value"] for v in e["env"]}
        assert env["DCSA_METRICS_HOST"] == "127.0.0.1"
        assert env["DCSA_MAX_CONCURRENT_RPCS"] == "6"
    default = validate_entries(entries_of(rendered["default"]))
    assert all("serviceAccountName" not in e for e in default)
    assert all("DCSA_METRICS_HOST" not in {v["name"] for v in e["env"]} for e in default)


def test_plain_jobs_render_only_the_add_job_without_hooks(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    (job,) = kinds(rendered["plain-jobs"])["Job"]
    assert "helm.sh/hook" not in job["metadata"].get("annotations", {})
    assert job["spec"]["template"]["spec"]["containers"][0]["args"][:2] == ["katib-config", "add"]


def test_network_policy_allows_katib_and_monitoring_only(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    policies = [
        p
        for p in kinds(rendered["networkpolicy"])["NetworkPolicy"]
        if p["metadata"]["name"] == "dcsa-suggestions"
    ]
    assert sorted(p["metadata"]["namespace"] for p in policies) == ["team-a", "team-b"]
    ingress = policies[0]["spec"]["ingress"]
    assert ingress == [
        {
            "from": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kubeflow"}}}
            ],
            "ports": [{"protocol": "TCP", "port": 6789}],
        },
        {
            "from": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "observability"}
                    }
                }
            ],
            "ports": [{"protocol": "TCP", "port": 8000}],
        },
    ]


def test_helm_test_pod_script_checks_a_real_server(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """Run the `helm test` pod's own script here, against a real `dcsa serve`."""
    (pod,) = [d for d in rendered["default"] if d["kind"] == "Pod"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["python", "-c"]
    env = {
        **os.environ,
        **{e["name"]: e["value"] for e in container["env"]},
        "TEST_GRPC_PORT": str(free_port()),
        "DCSA_METRICS_PORT": str(free_port()),
    }
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = venv_bin + os.pathsep + env["PATH"]
    proc = run([sys.executable, "-c", container["args"][0]], env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "health 'manager.v1beta1.Suggestion': SERVING" in proc.stdout
    assert "metrics: ok" in proc.stdout


def test_release_namespace_is_used(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for d in rendered["default"]:
        if d["kind"] in {"Role", "RoleBinding"}:
            assert d["metadata"]["namespace"] == "kubeflow"
        elif d["kind"] != "NetworkPolicy" or d["metadata"]["name"] == "dcsa-deny-ingress":
            assert d["metadata"]["namespace"] == RELEASE_NS


def test_checkov_helm_framework_on_the_chart_directory(tmp_path: Path) -> None:
    """checkov's own Helm runner on helm/dcsa (default values). Besides the skips in
    .checkov.yaml it needs CKV_K8S_21 ("default namespace"): that runner renders into the
    `default` namespace, while a real install uses -n dcsa-system (the scan above renders with
    it and passes CKV_K8S_21)."""
    checkov = need_tool("checkov")
    helm = need_tool("helm")
    env = {
        **os.environ,
        "PATH": str(Path(helm).parent) + os.pathsep + os.environ["PATH"],
        "BC_SKIP_MAPPING": "TRUE",
    }
    proc = run(
        [
            checkov,
            "-d",
            str(CHART),
            "--framework",
            "helm",
            "--skip-download",
            "-o",
            "json",
            "--skip-check",
            "CKV_K8S_43,CKV_K8S_15,CKV_K8S_21",
        ],
        check=False,
        timeout=300,
        env=env,
    )
    report = yaml.safe_load(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [
        (c["check_id"], c["resource"]) for r in reports for c in r["results"]["failed_checks"]
    ]
    assert failed == [], failed
    assert sum(r["summary"]["passed"] for r in reports) > 100
