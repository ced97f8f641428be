"""The chart's alert rules with a real promtool: syntax (check rules), behaviour (test rules
with synthetic series: each alert fires when it should and stays quiet when it should), and the
plain scrape job (check config)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import need_tool, run

SUGG = 'grpc_service="api.v1.beta1.Suggestion"'
OURS = 'namespace="team-a",pod="e1-dcsa-bo-5d9c7b8f6-x7k2p"'
SLOW = 'namespace="team-a",pod="e3-sa-bo-5d9c7b8f6-q8w4e"'
KATIBS = 'namespace="team-a",pod="e2-random-5d9c7b8f6-abcde"'
DONE = 'namespace="team-b",pod="e4-gp-bo-5d9c7b8f6-zz9yy"'
TEAM = {"team": "ml-platform"}


def rule_groups(rendered: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    (rule,) = [d for d in rendered["monitoring"] if d["kind"] == "PrometheusRule"]
    return list(rule["spec"]["groups"])


def test_check_rules(rendered: dict[str, list[dict[str, Any]]], tmp_path: Path) -> None:
    promtool = need_tool("promtool")
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule_groups(rendered)}))
    proc = run([promtool, "check", "rules", str(path)])
    assert "SUCCESS: 8 rules found" in proc.stdout, proc.stdout


def test_check_rules_without_pod_alerts(helm: str, tmp_path: Path) -> None:
    from .conftest import helm_template

    promtool = need_tool("promtool")
    docs = helm_template(
        helm,
        "--set",
        "metrics.prometheusRule.enabled=true",
        "--set",
        "metrics.prometheusRule.podAlerts=false",
    )
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    assert "SUCCESS: 6 rules found" in run([promtool, "check", "rules", str(path)]).stdout


def _series(name: str, labels: str, values: str) -> dict[str, str]:
    return {"series": f"{name}{{{labels}}}", "values": values}


def _histogram(labels: str, hot_le: str) -> list[dict[str, str]]:
    """One observation a minute, all of them in bucket ``hot_le`` (and above)."""
    les = [
        "0.005",
        "0.01",
        "0.025",
        "0.05",
        "0.1",
        "0.25",
        "0.5",
        "1.0",
        "2.5",
        "5.0",
        "10.0",
        "20.0",
        "30.0",
        "45.0",
        "60.0",
        "+Inf",
    ]
    hot = les.index(hot_le)
    return [
        _series(
            "dcsa_suggestion_duration_seconds_bucket",
            f'{labels},le="{le}"',
            "0+1x40" if i >= hot else "0+0x40",
        )
        for i, le in enumerate(les)
    ]


def _alert(labels: dict[str, str]) -> dict[str, Any]:
    return {"exp_labels": {**labels, **TEAM}}


def test_alerts_fire_when_they_should(
    rendered: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    promtool = need_tool("promtool")
    groups = copy.deepcopy(rule_groups(rendered))
    for g in groups:  # annotation templates are checked by `check rules`; compare labels here
        for r in g["rules"]:
            r.pop("annotations", None)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    series = [
        _series(
            "grpc_server_handled_total",
            f'{SUGG},grpc_method="GetSuggestions",grpc_code="INTERNAL",{OURS}',
            "0+1x40",
        ),
        _series(
            "grpc_server_handled_total",
            f'{SUGG},grpc_method="GetSuggestions",grpc_code="OK",{OURS}',
            "0+1x40",
        ),
        _series(
            "grpc_server_handled_total",
            f'{SUGG},grpc_method="ValidateAlgorithmSettings",grpc_code="INVALID_ARGUMENT",{SLOW}',
            "0 1 1 1 1 1 1 1 1 1 1",
        ),
        _series(
            "grpc_server_handled_total",
            f'{SUGG},grpc_method="GetSuggestions",grpc_code="OK",{SLOW}',
            "0+1x40",
        ),
        # an exhausted space: FAILED_PRECONDITION on every call, its own alert, not an RPC error
        _series(
            "grpc_server_handled_total",
            f'{SUGG},grpc_method="GetSuggestions",grpc_code="FAILED_PRECONDITION",{DONE}',
            "0+1x40",
        ),
        _series("dcsa_search_space_exhausted_total", f'{DONE},algorithm="gp-bo"', "0 0 0+1x40"),
        *_histogram(f'{OURS},algorithm="dcsa-bo"', "60.0"),  # ~59 s: warning and critical
        *_histogram(f'{SLOW},algorithm="sa-bo"', "45.0"),  # ~44 s: warning only
        _series(
            "dcsa_fallbacks_total",
            f'{OURS},algorithm="dcsa-bo",reason="deadline"',
            "0 0 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
        ),
        _series(
            "kube_pod_container_status_restarts_total",
            f'{OURS},container="suggestion"',
            "0 0 0 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
        ),
        _series(
            "kube_pod_container_status_last_terminated_reason",
            f'{OURS},container="suggestion",reason="OOMKilled"',
            "1+0x40",
        ),
        # Katib's own suggestion pod restarting and OOM-killed: not ours, no alert.
        _series(
            "kube_pod_container_status_restarts_total",
            f'{KATIBS},container="suggestion"',
            "0 0 0 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
        ),
        _series(
            "kube_pod_container_status_last_terminated_reason",
            f'{KATIBS},container="suggestion",reason="OOMKilled"',
            "1+0x40",
        ),
    ]
    ours = {"namespace": "team-a", "pod": "e1-dcsa-bo-5d9c7b8f6-x7k2p"}
    slow = {"namespace": "team-a", "pod": "e3-sa-bo-5d9c7b8f6-q8w4e"}
    done = {"namespace": "team-b", "pod": "e4-gp-bo-5d9c7b8f6-zz9yy"}
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": "2m", "alertname": "DcsaSuggestionRPCErrors", "exp_alerts": []},
                    {
                        "eval_time": "20m",
                        "alertname": "DcsaSuggestionRPCErrors",
                        "exp_alerts": [
                            _alert({**ours, "grpc_method": "GetSuggestions", "severity": "warning"})
                        ],
                    },
                    {"eval_time": "1m", "alertname": "DcsaSearchSpaceExhausted", "exp_alerts": []},
                    {
                        "eval_time": "5m",
                        "alertname": "DcsaSearchSpaceExhausted",
                        "exp_alerts": [
                            _alert({**done, "algorithm": "gp-bo", "severity": "warning"})
                        ],
                    },
                    {
                        "eval_time": "5m",
                        "alertname": "DcsaSuggestionInvalidSettings",
                        "exp_alerts": [_alert({**slow, "severity": "info"})],
                    },
                    {
                        "eval_time": "20m",
                        "alertname": "DcsaSuggestionLatencyHigh",
                        "exp_alerts": [
                            _alert({**ours, "algorithm": "dcsa-bo", "severity": "warning"}),
                            _alert({**slow, "algorithm": "sa-bo", "severity": "warning"}),
                        ],
                    },
                    {
                        "eval_time": "20m",
                        "alertname": "DcsaSuggestionLatencyCritical",
                        "exp_alerts": [
                            _alert({**ours, "algorithm": "dcsa-bo", "severity": "critical"})
                        ],
                    },
                    {"eval_time": "1m", "alertname": "DcsaSuggestionFallbacks", "exp_alerts": []},
                    {
                        "eval_time": "5m",
                        "alertname": "DcsaSuggestionFallbacks",
                        "exp_alerts": [
                            _alert(
                                {
                                    **ours,
                                    "algorithm": "dcsa-bo",
                                    "reason": "deadline",
                                    "severity": "warning",
                                }
                            )
                        ],
                    },
                    {
                        "eval_time": "10m",
                        "alertname": "DcsaSuggestionPodRestarting",
                        "exp_alerts": [_alert({**ours, "severity": "warning"})],
                    },
                    {
                        "eval_time": "10m",
                        "alertname": "DcsaSuggestionOOMKilled",
                        "exp_alerts": [_alert({**ours, "severity": "critical"})],
                    },
                    {"eval_time": "2m", "alertname": "DcsaSuggestionOOMKilled", "exp_alerts": []},
                ],
            }
        ],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    proc = run([promtool, "test", "rules", str(tmp_path / "tests.yaml")], check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_plain_scrape_config_is_valid_prometheus_config(
    rendered: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    promtool = need_tool("promtool")
    (cm,) = [
        d
        for d in rendered["monitoring"]
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-scrape-config")
    ]
    jobs = yaml.safe_load(cm["data"]["scrape-config.yaml"])
    assert [j["job_name"] for j in jobs] == ["dcsa-suggestions"]
    assert jobs[0]["kubernetes_sd_configs"] == [
        {"role": "pod", "namespaces": {"names": ["team-a", "team-b"]}}
    ]
    # Debian's Prometheus is built without Kubernetes discovery, so promtool checks the rest
    # of the job (relabel rules, regexes) with the discovery swapped for a static target.
    # test_prometheus.py runs these relabel rules in a real Prometheus.
    jobs[0].pop("kubernetes_sd_configs")
    jobs[0]["static_configs"] = [{"targets": ["127.0.0.1:8000"]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({"scrape_configs": jobs}))
    proc = run([promtool, "check", "config", str(tmp_path / "prometheus.yml")], check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "panel_metric",
    [
        "dcsa_suggestion_duration_seconds_bucket",
        "dcsa_trials",
        "dcsa_best_objective_value",
        "dcsa_suggestions_total",
        "dcsa_fallbacks_total",
        "dcsa_policy_share",
        "grpc_server_handled_total",
    ],
)
def test_dashboard_charts_the_service_metrics(
    rendered: dict[str, list[dict[str, Any]]], panel_metric: str
) -> None:
    import json

    (cm,) = [
        d
        for d in rendered["monitoring"]
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard")
    ]
    dash = json.loads(cm["data"]["dcsa.json"])
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert any(panel_metric in e for e in exprs)
    origins = [p for p in dash["panels"] if "origin" in p["title"]]
    assert origins and "by (origin)" in origins[0]["targets"][0]["expr"]
