"""The chart's TuningSchedule operator: off by default, least-privilege RBAC rule by rule, a
structural CRD whose defaults are the operator's, and a hardened single-replica Deployment.
(Lint, kubernetes-validate --strict, checkov and the server-side dry run cover the operator's
ci/*-values.yaml files through tests/deploy/test_chart.py and test_apiserver.py.)"""

from __future__ import annotations

from typing import Any

from suggestion_service.k8s.schedule import ScheduleSpec, WarmStartSpec

from .conftest import RELEASE_NS, helm_template

COMPONENT = "app.kubernetes.io/component"
RULES = [
    {"apiGroups": ["dcsa.io"], "resources": ["tuningschedules"], "verbs": ["get", "list"]},
    {"apiGroups": ["dcsa.io"], "resources": ["tuningschedules/status"], "verbs": ["patch"]},
    {
        "apiGroups": ["kubeflow.org"],
        "resources": ["experiments"],
        "verbs": ["create", "get", "list", "delete"],
    },
    {"apiGroups": ["kubeflow.org"], "resources": ["trials"], "verbs": ["get", "list"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
]


def operator_docs(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        if d["metadata"]["labels"].get(COMPONENT) == "operator":
            out.setdefault(d["kind"], []).append(d)
    return out


def test_operator_is_off_by_default(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for name, docs in rendered.items():
        if not name.startswith("operator"):
            assert operator_docs(docs) == {}, name


def test_cluster_wide_rbac_is_exactly_what_the_operator_needs(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    by_kind = operator_docs(rendered["operator"])
    assert sorted(by_kind) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "Deployment",
        "ServiceAccount",
    ]
    (sa,) = by_kind["ServiceAccount"]
    assert sa["automountServiceAccountToken"] is False
    assert sa["metadata"]["namespace"] == RELEASE_NS
    (role,) = by_kind["ClusterRole"]
    assert role["rules"] == RULES
    (binding,) = by_kind["ClusterRoleBinding"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "dcsa-operator",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "dcsa-operator", "namespace": RELEASE_NS}
    ]


def test_namespaced_rbac_has_a_role_per_namespace_and_no_cluster_role(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    by_kind = operator_docs(rendered["operator-namespaced"])
    assert "ClusterRole" not in by_kind and "ClusterRoleBinding" not in by_kind
    assert sorted(r["metadata"]["namespace"] for r in by_kind["Role"]) == ["team-a", "team-b"]
    assert all(r["rules"] == RULES for r in by_kind["Role"])
    assert sorted(b["metadata"]["namespace"] for b in by_kind["RoleBinding"]) == [
        "team-a",
        "team-b",
    ]
    (dep,) = by_kind["Deployment"]
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == [
        "operator",
        "--interval=30",
        "--health-port=8080",
        "--namespace=team-a",
        "--namespace=team-b",
    ]


def test_operator_is_namespaced_unless_asked(helm: str) -> None:
    """Issue 12, section 6: enabled without more, the operator watches the release namespace
    with a Role there; a ClusterRole only with operator.clusterWide=true."""
    by_kind = operator_docs(helm_template(helm, "--set", "operator.enabled=true"))
    assert "ClusterRole" not in by_kind and "ClusterRoleBinding" not in by_kind
    assert [r["metadata"]["namespace"] for r in by_kind["Role"]] == [RELEASE_NS]
    assert [b["metadata"]["namespace"] for b in by_kind["RoleBinding"]] == [RELEASE_NS]
    (dep,) = by_kind["Deployment"]
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[-1] == f"--namespace={RELEASE_NS}"
    wide = operator_docs(
        helm_template(helm, "--set", "operator.enabled=true", "--set", "operator.clusterWide=true")
    )
    assert "Role" not in wide and [r["kind"] for r in wide["ClusterRole"]] == ["ClusterRole"]
    (dep,) = wide["Deployment"]
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not [a for a in args if a.startswith("--namespace")]


def _walk(schema: dict[str, Any], path: str, problems: list[str]) -> None:
    if "type" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        problems.append(path)
    for key, sub in (schema.get("properties") or {}).items():
        _walk(sub, f"{path}.{key}", problems)
    if isinstance(schema.get("items"), dict):
        _walk(schema["items"], f"{path}[]", problems)
    if isinstance(schema.get("additionalProperties"), dict):
        _walk(schema["additionalProperties"], f"{path}{{}}", problems)


def test_crd_is_structural_with_status_and_the_operators_defaults(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    (crd,) = operator_docs(rendered["operator"])["CustomResourceDefinition"]
    assert crd["metadata"]["name"] == "tuningschedules.dcsa.io"
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert crd["spec"]["scope"] == "Namespaced"
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    schema = version["schema"]["openAPIV3Schema"]
    problems: list[str] = []
    _walk(schema, "", problems)
    assert problems == []
    spec = schema["properties"]["spec"]["properties"]
    assert set(spec) == {
        "schedule",
        "concurrencyPolicy",
        "suspend",
        "historyLimit",
        "startingDeadlineSeconds",
        "warmStart",
        "experimentTemplate",
    }
    assert spec["concurrencyPolicy"]["enum"] == ["Forbid", "Replace"]
    # The API server's defaults and the operator's agree.
    defaults = ScheduleSpec(schedule="", template={})
    warm = WarmStartSpec()
    assert spec["concurrencyPolicy"]["default"] == defaults.concurrency_policy.value
    assert spec["historyLimit"]["default"] == defaults.history_limit
    assert spec["suspend"]["default"] is defaults.suspend
    ws = spec["warmStart"]["properties"]
    assert ws["enabled"]["default"] is warm.enabled
    assert ws["maxTrials"]["default"] == warm.max_trials
    assert ws["fromRuns"]["default"] == warm.from_runs
    status = schema["properties"]["status"]["properties"]
    assert {"lastScheduleTime", "active", "runs", "conditions", "warmStart"} <= set(status)
    run = status["runs"]["items"]["properties"]
    assert {"name", "stopReason", "bestObjective", "bestParameters"} <= set(run)


def test_deployment_is_one_replica_with_probes(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    (dep,) = operator_docs(rendered["operator"])["Deployment"]
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "dcsa-operator"
    assert pod["automountServiceAccountToken"] is True
    (c,) = pod["containers"]
    assert c["args"] == ["operator", "--interval=15", "--health-port=8080"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert c["ports"] == [{"name": "health", "containerPort": 8080, "protocol": "TCP"}]
    assert c["resources"]["limits"]["memory"] == "512Mi"
