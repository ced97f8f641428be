"""Health under load (issue 12, section 4): probes never wait behind suggestions, and concurrent
Suggestion calls are bounded (RESOURCE_EXHAUSTED beyond ``max_concurrent_rpcs``)."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from suggestion_service._generated import api_pb2 as pb
from suggestion_service._generated import api_pb2_grpc as pb_grpc
from suggestion_service.core import engine
from suggestion_service.server import ServerConfig, SuggestionServer

from .helpers import pb_experiment, pb_request

WORKERS, LIMIT = 2, 3


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SuggestionServer, dict[str, Any]]]:
    """A server whose GetSuggestions runs ``behaviour['work']`` instead of the engine."""
    behaviour: dict[str, Any] = {"work": lambda: None, "running": 0}
    lock = threading.Lock()
    real = engine.suggest

    def fake(req: engine.SuggestRequest, **kw: Any) -> engine.SuggestResponse:
        with lock:
            behaviour["running"] += 1
        try:
            behaviour["work"]()
        finally:
            with lock:
                behaviour["running"] -= 1
        return real(req, **kw)

    srv = SuggestionServer(
        ServerConfig(
            host="127.0.0.1", port=0, metrics_port=-1, workers=WORKERS, max_concurrent_rpcs=LIMIT
        )
    )
    srv.start()  # warms up with the real engine first
    monkeypatch.setattr(engine, "suggest", fake)
    yield srv, behaviour
    srv.stop(0)


def _flood(port: int, n: int) -> tuple[list[threading.Thread], list[grpc.StatusCode]]:
    codes: list[grpc.StatusCode] = []

    def one() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            req = pb_request(pb_experiment(algorithm="random"), [], 1)
            try:
                pb_grpc.SuggestionStub(channel).GetSuggestions(req, timeout=60)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as err:
                codes.append(err.code())

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    return threads, codes


def _probe_latencies(port: int, n: int, pause: float = 0.02) -> list[float]:
    out = []
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)  # connect first
        for _ in range(n):
            start = time.perf_counter()
            reply = stub.Check(
                health_pb2.HealthCheckRequest(service="manager.v1beta1.Suggestion"), timeout=1
            )
            out.append(time.perf_counter() - start)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            time.sleep(pause)
    return out


def _wait_for(cond: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_calls_beyond_the_bound_are_refused_and_probes_still_answer(
    server: tuple[SuggestionServer, dict[str, Any]],
) -> None:
    srv, behaviour = server
    release = threading.Event()
    behaviour["work"] = lambda: release.wait(30)
    threads, codes = _flood(srv.port, 8)
    # WORKERS compute (blocked), LIMIT - WORKERS wait for a worker, the rest are refused at once
    _wait_for(lambda: behaviour["running"] == WORKERS and len(codes) == 8 - LIMIT)
    assert codes == [grpc.StatusCode.RESOURCE_EXHAUSTED] * (8 - LIMIT)
    latencies = _probe_latencies(srv.port, 10)
    assert max(latencies) < 0.1, latencies
    # Katib counts any ValidateAlgorithmSettings code but INVALID_ARGUMENT, UNKNOWN and
    # UNAVAILABLE as "valid": a busy Validate must be UNAVAILABLE, which it retries
    with (
        grpc.insecure_channel(f"127.0.0.1:{srv.port}") as channel,
        pytest.raises(grpc.RpcError) as err,
    ):
        pb_grpc.SuggestionStub(channel).ValidateAlgorithmSettings(
            pb.ValidateAlgorithmSettingsRequest(experiment=pb_experiment()), timeout=5
        )
    assert err.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "busy" in (err.value.details() or "")
    release.set()
    for t in threads:
        t.join(30)
    assert codes.count(grpc.StatusCode.OK) == LIMIT
    refused = srv.metrics.rejected.labels("GetSuggestions")._value.get()
    assert refused == 8 - LIMIT
    assert srv.metrics.rejected.labels("ValidateAlgorithmSettings")._value.get() == 1


def test_probes_answer_while_workers_hold_the_gil(
    server: tuple[SuggestionServer, dict[str, Any]],
) -> None:
    """Pure-Python work holds the GIL: the probe still gets a thread and a turn quickly."""
    srv, behaviour = server

    def spin() -> None:
        end = time.perf_counter() + 3.0
        x = 0
        while time.perf_counter() < end:
            x += 1

    behaviour["work"] = spin
    threads, codes = _flood(srv.port, 6)
    _wait_for(lambda: behaviour["running"] == WORKERS)
    latencies = _probe_latencies(srv.port, 20, pause=0.05)
    for t in threads:
        t.join(30)
    assert max(latencies) < 1.0, latencies  # Kubernetes' probe timeout
    assert statistics.median(latencies) < 0.1, latencies
    assert codes.count(grpc.StatusCode.OK) == LIMIT
