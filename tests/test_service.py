"""The service through a real gRPC server on 127.0.0.1 and through grpc_testing."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import grpc
import grpc_testing
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from suggestion_service._generated import api_pb2 as pb
from suggestion_service._generated import api_pb2_grpc as pb_grpc
from suggestion_service.core.engine import parse_mix
from suggestion_service.core.history import TrialState
from suggestion_service.katib import convert
from suggestion_service.katib.servicer import SuggestionServicer
from suggestion_service.observability.metrics import create_metrics
from suggestion_service.server import ServerConfig, SuggestionServer

from .helpers import MIXED, pb_experiment, pb_request, random_trials, space_from

SPACE = space_from(MIXED)


@pytest.fixture(scope="module")
def server() -> Iterator[SuggestionServer]:
    srv = SuggestionServer(
        ServerConfig(host="127.0.0.1", port=0, metrics_port=0, metrics_host="127.0.0.1")
    )
    srv.start()
    yield srv
    srv.stop(0)


@pytest.fixture(scope="module")
def stub(server: SuggestionServer) -> Iterator[pb_grpc.SuggestionStub]:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield pb_grpc.SuggestionStub(channel)


@pytest.mark.parametrize("service", ["", "manager.v1beta1.Suggestion", "api.v1.beta1.Suggestion"])
def test_health_serving(server: SuggestionServer, service: str) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_get_suggestions_real_server(stub: pb_grpc.SuggestionStub) -> None:
    history = random_trials(SPACE, 12, seed=1, f=lambda v: float(v["momentum"]) ** 2)
    history += random_trials(SPACE, 2, seed=2, state=TrialState.RUNNING, prefix="r")
    reply = stub.GetSuggestions(pb_request(pb_experiment(), history, 3), timeout=60)
    assert len(reply.parameter_assignments) == 3
    names = {a.trial_name for a in reply.parameter_assignments}
    assert len(names) == 3
    for a in reply.parameter_assignments:
        assert [x.name for x in a.assignments] == list(SPACE.names)
        assert a.labels["dcsa.io/origin"] == "bo"
    assert [s.name for s in reply.algorithm.algorithm_settings] == ["dcsa_suggested"]


def test_large_history_is_accepted(stub: pb_grpc.SuggestionStub) -> None:
    history = random_trials(SPACE, 1000, seed=3, f=lambda v: float(v["scale"]))
    req = pb_request(pb_experiment(settings={"n_candidates": "64"}), history, 1)
    assert req.ByteSize() > 200_000
    reply = stub.GetSuggestions(req, timeout=60)
    assert len(reply.parameter_assignments) == 1


# ---- the status-code matrix: every bad input names its field -------------------------------
def _with(rows: list[tuple[object, ...]], i: int, **change: object) -> list[tuple[object, ...]]:
    keys = ["name", "type", "min", "max", "step", "list", "dist"]
    row = dict(zip(keys, rows[i], strict=True))
    row.update(change)
    out = list(rows)
    out[i] = tuple(row[k] for k in keys)
    return out


BAD_EXPERIMENTS = {
    "unknown algorithm": (pb_experiment(algorithm="hyperband"), "spec.algorithm.algorithmName"),
    "unknown setting": (
        pb_experiment(settings={"acq_func": "EI"}),
        "spec.algorithm.algorithmSettings[acq_func]",
    ),
    "malformed setting": (
        pb_experiment(settings={"n_initial_points": "ten"}),
        "spec.algorithm.algorithmSettings[n_initial_points]",
    ),
    "setting out of range": (
        pb_experiment(settings={"acquisition": "foo"}),
        "spec.algorithm.algorithmSettings[acquisition]",
    ),
    "min >= max": (
        pb_experiment(_with(MIXED, 1, min="1", max="1")),
        "spec.parameters[1].feasibleSpace",
    ),
    "empty list": (
        pb_experiment(_with(MIXED, 6, list=())),
        "spec.parameters[6].feasibleSpace.list",
    ),
    "step <= 0": (
        pb_experiment(_with(MIXED, 2, step="0")),
        "spec.parameters[2].feasibleSpace.step",
    ),
    "log with min <= 0": (
        pb_experiment(_with(MIXED, 1, dist="logUniform")),
        "spec.parameters[1].feasibleSpace.min",
    ),
    "unknown type": (
        pb_experiment(_with(MIXED, 0, type="float")),
        "spec.parameters[0].parameterType",
    ),
    "ASHA budget not a parameter": (
        pb_experiment(settings={"resource_name": "epochs"}),
        "spec.algorithm.algorithmSettings[resource_name]",
    ),
    "ASHA eta below 2": (
        pb_experiment(settings={"resource_name": "lr", "eta": "1"}),
        "spec.algorithm.algorithmSettings[eta]",
    ),
    "ASHA promotion unknown": (
        pb_experiment(settings={"resource_name": "lr", "promotion": "eager"}),
        "spec.algorithm.algorithmSettings[promotion]",
    ),
    "duplicate names": (pb_experiment(_with(MIXED, 1, name="lr")), "spec.parameters[1].name"),
    "missing objective metric": (pb_experiment(metric=""), "spec.objective.objectiveMetricName"),
    "no parameters": (pb_experiment([]), "spec.parameters"),
}


@pytest.mark.parametrize("case", sorted(BAD_EXPERIMENTS))
def test_validate_rejects_bad_input(stub: pb_grpc.SuggestionStub, case: str) -> None:
    exp, field = BAD_EXPERIMENTS[case]
    with pytest.raises(grpc.RpcError) as err:
        stub.ValidateAlgorithmSettings(
            pb.ValidateAlgorithmSettingsRequest(experiment=exp), timeout=10
        )
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(field + ":"), err.value.details()
    assert "Traceback" not in err.value.details()


@pytest.mark.parametrize("case", sorted(BAD_EXPERIMENTS))
def test_get_suggestions_rejects_the_same_input(stub: pb_grpc.SuggestionStub, case: str) -> None:
    exp, field = BAD_EXPERIMENTS[case]
    with pytest.raises(grpc.RpcError) as err:
        stub.GetSuggestions(pb_request(exp, [], 1), timeout=10)
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(field + ":")


def test_validate_accepts_a_good_experiment(stub: pb_grpc.SuggestionStub) -> None:
    exp = pb_experiment(settings={"random_state": "3", "acquisition": "ucb"})
    stub.ValidateAlgorithmSettings(pb.ValidateAlgorithmSettingsRequest(experiment=exp), timeout=10)


def test_negative_request_number(stub: pb_grpc.SuggestionStub) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub.GetSuggestions(pb_request(pb_experiment(), [], -1), timeout=10)
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "current_request_number" in err.value.details()


def test_garbage_history_does_not_crash(stub: pb_grpc.SuggestionStub) -> None:
    req = pb_request(pb_experiment(), random_trials(SPACE, 4, seed=5), 2)
    req.trials[0].status.observation.metrics[0].value = "NaN"
    req.trials[1].status.observation.metrics[0].value = "not-a-number"
    del req.trials[2].status.observation.metrics[:]
    req.trials[3].spec.parameter_assignments.assignments[0].value = "banana"
    reply = stub.GetSuggestions(req, timeout=30)
    assert len(reply.parameter_assignments) == 2


def test_exhausted_space_is_failed_precondition(stub: pb_grpc.SuggestionStub) -> None:
    rows = [("a", "categorical", "", "", "", ("x", "y"), "uniform")]
    trials = random_trials(space_from(rows), 0)
    exp = pb_experiment(rows, algorithm="random")
    first = stub.GetSuggestions(pb_request(exp, trials, 2), timeout=10)
    assert {a.assignments[0].value for a in first.parameter_assignments} == {"x", "y"}
    with pytest.raises(grpc.RpcError) as err:
        stub.GetSuggestions(pb_request(exp, [], 3), timeout=10)
    assert err.value.code() is grpc.StatusCode.FAILED_PRECONDITION


def test_metrics_endpoint(server: SuggestionServer, stub: pb_grpc.SuggestionStub) -> None:
    stub.GetSuggestions(pb_request(pb_experiment(algorithm="random"), [], 2), timeout=10)
    with pytest.raises(grpc.RpcError):
        stub.ValidateAlgorithmSettings(
            pb.ValidateAlgorithmSettingsRequest(experiment=pb_experiment(algorithm="nope")),
            timeout=10,
        )
    text = (
        urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5)
        .read()
        .decode()
    )

    def value(pattern: str) -> float:
        m = re.search(r"^" + pattern + r" ([0-9.e+-]+)$", text, re.M)
        assert m, pattern
        return float(m.group(1))

    assert (
        value(
            r'grpc_server_handled_total\{grpc_code="OK",grpc_method="GetSuggestions",'
            r'grpc_service="api.v1.beta1.Suggestion"\}'
        )
        >= 1
    )
    assert (
        value(
            r'grpc_server_handled_total\{grpc_code="INVALID_ARGUMENT",'
            r'grpc_method="ValidateAlgorithmSettings",'
            r'grpc_service="api.v1.beta1.Suggestion"\}'
        )
        >= 1
    )
    assert (
        value(
            r'grpc_server_handling_seconds_count\{grpc_code="OK",'
            r'grpc_method="GetSuggestions",grpc_service="api.v1.beta1.Suggestion"\}'
        )
        >= 1
    )
    assert value(r'dcsa_suggestion_duration_seconds_count\{algorithm="random"\}') >= 1
    assert value(r'dcsa_suggestions_total\{algorithm="random",origin="random"\}') >= 2
    assert value(r'dcsa_trials\{algorithm="gp-bo",state="Succeeded"\}') >= 0
    assert value(r'dcsa_model_fit_duration_seconds_count\{algorithm="gp-bo"\}') >= 1
    assert value(r'dcsa_best_objective_value\{algorithm="gp-bo"\}') >= 0
    assert re.search(r'^dcsa_build_info\{python="[0-9.]+",version="[^"]+"\} 1.0$', text, re.M)


# ---- grpc_testing: status codes without a network ------------------------------------------
SERVICE = pb.DESCRIPTOR.services_by_name["Suggestion"]


def _invoke(
    servicer: SuggestionServicer, method: str, request: object
) -> tuple[object, grpc.StatusCode, str]:
    server = grpc_testing.server_from_dictionary(
        {SERVICE: servicer}, grpc_testing.strict_real_time()
    )
    rpc = server.invoke_unary_unary(SERVICE.methods_by_name[method], (), request, 30)
    response, _, code, details = rpc.termination()
    return response, code, details


@pytest.mark.parametrize(
    ("method", "request_", "code"),
    [
        (
            "ValidateAlgorithmSettings",
            pb.ValidateAlgorithmSettingsRequest(experiment=pb_experiment()),
            grpc.StatusCode.OK,
        ),
        (
            "ValidateAlgorithmSettings",
            pb.ValidateAlgorithmSettingsRequest(experiment=pb_experiment(algorithm="x")),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            "ValidateAlgorithmSettings",
            pb.ValidateAlgorithmSettingsRequest(),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        ("GetSuggestions", pb_request(pb_experiment(), [], 2), grpc.StatusCode.OK),
        ("GetSuggestions", pb.GetSuggestionsRequest(), grpc.StatusCode.INVALID_ARGUMENT),
        (
            "GetSuggestions",
            pb_request(pb_experiment(settings={"random_state": "1.5"}), [], 1),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ],
)
def test_status_code_matrix(method: str, request_: object, code: grpc.StatusCode) -> None:
    _, got, details = _invoke(SuggestionServicer(create_metrics()), method, request_)
    assert got is code, details


def test_unexpected_error_is_internal_without_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    from suggestion_service.core import engine

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(engine, "suggest", boom)
    _, code, details = _invoke(
        SuggestionServicer(create_metrics()), "GetSuggestions", pb_request(pb_experiment(), [], 1)
    )
    assert code is grpc.StatusCode.INTERNAL
    assert "secret" not in details and "Traceback" not in details


# ---- process lifecycle -----------------------------------------------------------------------
def test_sigterm_stops_gracefully() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "suggestion_service",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--metrics-port",
            "-1",
            "--grace",
            "1",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    port = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        m = re.search(r"serving Katib suggestions on 127.0.0.1:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    assert port
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        status = (
            health_pb2_grpc.HealthStub(channel)
            .Check(health_pb2.HealthCheckRequest(service="manager.v1beta1.Suggestion"), timeout=5)
            .status
        )
    assert status == health_pb2.HealthCheckResponse.SERVING
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    assert proc.wait(timeout=30) == 0
    assert "NOT_SERVING" in rest and "stopped" in rest


def test_stop_reports_not_serving() -> None:
    srv = SuggestionServer(ServerConfig(host="127.0.0.1", port=0, metrics_port=-1))
    srv.start()
    srv.stop(0)
    reply = srv.health.Check(
        health_pb2.HealthCheckRequest(service="manager.v1beta1.Suggestion"), None
    )
    assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_dc_sa_labels_importance_and_mix_reach_the_metrics(
    server: SuggestionServer, stub: pb_grpc.SuggestionStub
) -> None:
    rows = [(f"{g}__x{i}", "double", "0", "1", "", (), "uniform") for g in "ab" for i in range(2)]
    space = space_from(rows)
    history = random_trials(space, 16, seed=11, f=lambda v: 5 * float(v["a__x0"]) ** 2)
    fixed = pb_experiment(rows, algorithm="dcsa-bo", name="dcsa", settings={"mix": "fixed"})
    reply = stub.GetSuggestions(pb_request(fixed, history, 4), timeout=60)
    origins = [a.labels["dcsa.io/origin"] for a in reply.parameter_assignments]
    assert origins[:2] == ["dc", "dc"]
    text = (
        urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5)
        .read()
        .decode()
    )
    assert re.search(r'^dcsa_suggestions_total\{algorithm="dcsa-bo",origin="dc"\} 2.0$', text, re.M)
    shares = [
        float(v)
        for v in re.findall(
            r'^dcsa_group_importance\{algorithm="dcsa-bo",group="[ab]"\} ([0-9.e+-]+)$', text, re.M
        )
    ]
    assert len(shares) == 2 and sum(shares) == pytest.approx(1.0)
    # the adaptive mix: its shares reach the reply's settings and the metrics
    adaptive = pb_experiment(rows, algorithm="dcsa-bo", name="dcsa", settings={"mix": "adaptive"})
    reply = stub.GetSuggestions(pb_request(adaptive, history, 2), timeout=60)
    mix = {s.name: s.value for s in reply.algorithm.algorithm_settings}["dcsa_mix"]
    assert set(parse_mix(mix)) == {"bo", "sa", "dc"}
    text = (
        urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5)
        .read()
        .decode()
    )
    policy = dict(
        re.findall(
            r'^dcsa_policy_share\{algorithm="dcsa-bo",policy="(\w+)"\} ([0-9.e+-]+)$', text, re.M
        )
    )
    assert set(policy) == {"bo", "sa", "dc"}
    assert sum(float(v) for v in policy.values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "rows",
    [
        MIXED,
        [
            ("i", "int", "-5", "40", "5", (), "uniform"),
            ("d", "double", "1e-7", "3", "", (), "logUniform"),
        ],
        [
            ("c", "categorical", "", "", "", ("b", "a", "c"), "uniform"),
            ("n", "discrete", "", "", "", ("0.5", "-2", "10"), "uniform"),
        ],
    ],
)
def test_space_to_pb_is_the_inverse_of_to_space(rows: list[tuple[object, ...]]) -> None:
    space = space_from(rows)
    spec = pb.ExperimentSpec()
    spec.parameter_specs.parameters.extend(convert.space_to_pb(space))
    assert convert.to_space(spec) == space
