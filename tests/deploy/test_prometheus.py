"""A real Prometheus scrapes a running suggestion service: after a GetSuggestions call, PromQL
over Prometheus' HTTP API returns our request and latency metrics; the chart's scrape job keeps
only our suggestion pods' metrics port; the chart's alert rules evaluate without errors."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from suggestion_service._generated import api_pb2 as pb
from suggestion_service._generated import api_pb2_grpc as pb_grpc

from .conftest import RELABEL_TARGETS, Prometheus, Server, find_tool

TIMEOUT_S = 45.0


def api(prom: Prometheus, path: str, **params: str) -> Any:
    url = f"{prom.url}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.loads(resp.read().decode())
    assert body["status"] == "success", body
    return body["data"]


def query(prom: Prometheus, promql: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = api(prom, "/api/v1/query", query=promql)["result"]
    return result


def eventually(check: Callable[[], Any], what: str, timeout: float = TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.5)


def get_suggestions(server: Server, n: int = 2) -> pb.GetSuggestionsReply:
    spec = pb.ExperimentSpec(
        parameter_specs=pb.ExperimentSpec.ParameterSpecs(
            parameters=[
                pb.ParameterSpec(
                    name="x",
                    parameter_type=pb.DOUBLE,
                    feasible_space=pb.FeasibleSpace(min="0", max="1", distribution=pb.UNIFORM),
                )
            ]
        ),
        objective=pb.ObjectiveSpec(type=pb.MINIMIZE, objective_metric_name="loss"),
        algorithm=pb.AlgorithmSpec(algorithm_name="random"),
        parallel_trial_count=n,
        max_trial_count=10,
    )
    request = pb.GetSuggestionsRequest(
        experiment=pb.Experiment(name="prom-test", spec=spec),
        current_request_number=n,
        total_request_number=n,
    )
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        reply: pb.GetSuggestionsReply = pb_grpc.SuggestionStub(channel).GetSuggestions(
            request, timeout=60
        )
    return reply


@pytest.fixture(scope="module")
def after_call(prometheus: Prometheus, suggestion_server: Server) -> Prometheus:
    """Two GetSuggestions calls with a scrape in between, so that rate() sees an increase
    (labelled series appear on their first observation, so Prometheus never sees them at 0)."""
    count = 'dcsa_suggestion_duration_seconds_count{job="static",algorithm="random"}'
    reply = get_suggestions(suggestion_server)
    assert len(reply.parameter_assignments) == 2
    eventually(lambda: query(prometheus, count), "the first call's metrics to be scraped")
    get_suggestions(suggestion_server)
    eventually(
        lambda: [s for s in query(prometheus, count) if value(s) >= 2],
        "the second call's metrics to be scraped",
    )
    return prometheus


def value(sample: dict[str, Any]) -> float:
    return float(sample["value"][1])


def test_request_metrics_are_queryable(after_call: Prometheus) -> None:
    handled = eventually(
        lambda: query(
            after_call,
            'grpc_server_handled_total{job="static",'
            'grpc_service="api.v1.beta1.Suggestion",'
            'grpc_method="GetSuggestions",grpc_code="OK"}',
        ),
        "grpc_server_handled_total for GetSuggestions",
    )
    assert value(handled[0]) >= 1
    assert handled[0]["metric"]["experiment"] == "prom-test"
    started = query(
        after_call, 'grpc_server_started_total{job="static",grpc_method="GetSuggestions"}'
    )
    assert started and value(started[0]) >= 1
    suggestions = eventually(
        lambda: query(
            after_call, 'sum by (origin) (dcsa_suggestions_total{job="static",algorithm="random"})'
        ),
        "dcsa_suggestions_total",
    )
    assert sum(value(s) for s in suggestions) >= 2


def test_latency_metrics_are_queryable(after_call: Prometheus) -> None:
    count = eventually(
        lambda: query(
            after_call, 'dcsa_suggestion_duration_seconds_count{job="static",algorithm="random"}'
        ),
        "dcsa_suggestion_duration_seconds_count",
    )
    assert value(count[0]) >= 1
    rpc = eventually(
        lambda: query(
            after_call,
            'grpc_server_handling_seconds_count{job="static",grpc_method="GetSuggestions"}',
        ),
        "grpc_server_handling_seconds_count",
    )
    assert value(rpc[0]) >= 1
    # The dashboard's latency query returns a finite number of seconds.
    p95 = eventually(
        lambda: [
            s
            for s in query(
                after_call,
                "histogram_quantile(0.95, sum by (algorithm, le) "
                '(rate(dcsa_suggestion_duration_seconds_bucket{job="static"}[1m])))',
            )
            if s["value"][1] not in ("NaN", "+Inf")
        ],
        "p95 latency",
    )
    assert 0 < value(p95[0]) < 60


def test_chart_scrape_job_keeps_only_our_metrics_port(after_call: Prometheus) -> None:
    if find_tool("helm") is None:
        pytest.skip("helm not installed (run scripts/install/deploy.sh)")

    def targets() -> Any:
        data = api(after_call, "/api/v1/targets", state="any")
        active = [t for t in data["activeTargets"] if t["scrapePool"] == "dcsa-suggestions"]
        return data if active and all(t["health"] == "up" for t in active) else None

    data = eventually(targets, "the chart's scrape job to be up")
    active = [t for t in data["activeTargets"] if t["scrapePool"] == "dcsa-suggestions"]
    dropped = [
        t for t in data["droppedTargets"] if t["discoveredLabels"].get("job") == "dcsa-suggestions"
    ]
    ours = RELABEL_TARGETS["ours"]
    assert [
        (t["labels"]["pod"], t["labels"]["experiment"], t["labels"]["namespace"]) for t in active
    ] == [(ours["pod"], ours["experiment"], "team-a")]
    assert sorted(
        (
            t["discoveredLabels"]["__meta_kubernetes_pod_label_deployment"],
            t["discoveredLabels"]["__meta_kubernetes_pod_container_port_name"],
        )
        for t in dropped
    ) == [("e1-dcsa-bo", "suggestion-api"), ("e2-random", "metrics")]
    series = eventually(
        lambda: query(
            after_call,
            'grpc_server_handled_total{job="dcsa-suggestions",grpc_method="GetSuggestions"}',
        ),
        "metrics through the chart's scrape job",
    )
    assert series[0]["metric"]["pod"] == ours["pod"]


def test_chart_alert_rules_evaluate_cleanly(after_call: Prometheus) -> None:
    if find_tool("helm") is None:
        pytest.skip("helm not installed (run scripts/install/deploy.sh)")

    def evaluated() -> Any:
        groups = api(after_call, "/api/v1/rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return (
            rules
            if rules
            and all(
                r.get("lastEvaluation", "").startswith("2")
                and not r["lastEvaluation"].startswith("0001")
                for r in rules
            )
            else None
        )

    rules = eventually(evaluated, "every alert rule to be evaluated")
    assert len(rules) == 8
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]
    # A healthy service fires nothing.
    assert [r["name"] for r in rules if r["state"] != "inactive"] == []
