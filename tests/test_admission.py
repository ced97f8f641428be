"""Health under load (issue 12, section 4): probes never wait behind suggestions, and concurrent
Suggestion calls are bounded (RESOURCE_EXHAUSTED beyond ``max_concurrent_rpcs``)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

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


#: The probe runs in its own process, as the kubelet's does: a client in the test's process
#: would compete with the server's threads for the GIL and measure itself, not the server.
_PROBER = r"""
import json, sys, time
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

port, n, pause = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
    stub = health_pb2_grpc.HealthStub(channel)
    stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)  # connect first
    print("ready", flush=True)
    sys.stdin.readline()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        reply = stub.Check(
            health_pb2.HealthCheckRequest(service="manager.v1beta1.Suggestion"), timeout=1
        )
        out.append(time.perf_counter() - start)
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            sys.exit(f"status {reply.status}")
        time.sleep(pause)
print(json.dumps(out), flush=True)
"""


class _Prober:
    """A health-probe client in a subprocess, connected before the load starts."""

    def __init__(self, port: int, n: int, pause: float = 0.02) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _PROBER, str(port), str(n), str(pause)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.proc.kill()
            raise AssertionError(f"prober did not connect: {line!r} {self.proc.stderr.read()}")

    def measure(self) -> list[float]:
        """Probe now; the latency of each Check, in seconds."""
        out, err = self.proc.communicate("go\n", timeout=60)
        assert self.proc.returncode == 0, err
        return [float(v) for v in json.loads(out)]


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
    prober = _Prober(srv.port, 10)
    threads, codes = _flood(srv.port, 8)
    # WORKERS compute (blocked), LIMIT - WORKERS wait for a worker, the rest are refused at once
    _wait_for(lambda: behaviour["running"] == WORKERS and len(codes) == 8 - LIMIT)
    assert codes == [grpc.StatusCode.RESOURCE_EXHAUSTED] * (8 - LIMIT)
    latencies = prober.measure()
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

    done = threading.Event()

    def spin() -> None:  # until every probe has answered (at most 30 s)
        end = time.perf_counter() + 30.0
        x = 0
        while not done.is_set() and time.perf_counter() < end:
            x += 1

    behaviour["work"] = spin
    prober = _Prober(srv.port, 20, pause=0.05)
    threads, codes = _flood(srv.port, 6)
    _wait_for(lambda: behaviour["running"] == WORKERS)
    try:
        latencies = prober.measure()
    finally:
        done.set()
    for t in threads:
        t.join(30)
    assert max(latencies) < 1.0, latencies  # Kubernetes' probe timeout
    assert statistics.median(latencies) < 0.1, latencies
    assert codes.count(grpc.StatusCode.OK) == LIMIT
