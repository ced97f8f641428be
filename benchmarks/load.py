"""Load: GetSuggestions throughput and latency, and health-probe latency, under concurrent clients.

Starts ``dcsa serve`` on 127.0.0.1 as its own process, then for ``--duration`` seconds drives it
with ``--clients`` concurrent clients (threads, one channel each), each calling GetSuggestions in
a loop with a ``--trials``-trial history (mixed parameter types, two RUNNING trials,
``current_request_number=1``, a fresh experiment name per call so nothing is cached). A client
refused with RESOURCE_EXHAUSTED (the server's ``--max-concurrent-rpcs`` bound) backs off
``--backoff`` seconds and retries, as Katib's controller requeues a failed reconcile.

Meanwhile a separate probe process asks ``grpc.health.v1.Health/Check`` for
``manager.v1beta1.Suggestion`` every ``--probe-interval`` seconds with Kubernetes' default probe
timeout of 1 s, as the kubelet does. A probe fails when it errors, times out or is not SERVING.

Prints calls per second, the p50/p99 latency of answered calls, the refused share, and the probe
latency (p50, p99, max) with the number of failed probes; ``--out FILE`` also writes them as JSON.

Run from the repository root: ``python benchmarks/load.py`` (32 clients, 20 s, 4 workers).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import re
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as ``python benchmarks/load.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from suggestion_service._generated import api_pb2 as pb
from suggestion_service._generated import api_pb2_grpc as pb_grpc

PROBE_SERVICE = "manager.v1beta1.Suggestion"
PROBE_TIMEOUT = 1.0  # Kubernetes' default timeoutSeconds


def build_request(n_trials: int, seed: int, algorithm: str) -> pb.GetSuggestionsRequest:
    """A Katib-shaped request: mixed types, ``n_trials`` trials (two RUNNING), one new slot."""
    exp = pb.Experiment(name="load")
    spec = exp.spec
    spec.objective.type = pb.MINIMIZE
    spec.objective.objective_metric_name = "loss"
    spec.algorithm.algorithm_name = algorithm
    params = [
        ("conv__lr", pb.DOUBLE, "0.0001", "0.1", pb.LOG_UNIFORM),
        ("conv__filters", pb.INT, "8", "128", pb.UNIFORM),
        ("dense__dropout", pb.DOUBLE, "0", "0.5", pb.UNIFORM),
        ("dense__units", pb.INT, "16", "512", pb.UNIFORM),
    ]
    for name, kind, low, high, dist in params:
        p = spec.parameter_specs.parameters.add(name=name, parameter_type=kind)
        p.feasible_space.min, p.feasible_space.max = low, high
        p.feasible_space.distribution = dist
    opt = spec.parameter_specs.parameters.add(name="optimizer", parameter_type=pb.CATEGORICAL)
    opt.feasible_space.list.extend(["sgd", "adam", "rmsprop"])
    rng = np.random.default_rng(seed)
    req = pb.GetSuggestionsRequest(experiment=exp)
    for i in range(n_trials):
        t = req.trials.add(name=f"load-{i:05d}")
        lr = 10 ** rng.uniform(-4, -1)
        values = {
            "conv__lr": f"{lr:.6g}",
            "conv__filters": str(int(rng.integers(8, 129))),
            "dense__dropout": f"{rng.uniform(0, 0.5):.6g}",
            "dense__units": str(int(rng.integers(16, 513))),
            "optimizer": str(rng.choice(["sgd", "adam", "rmsprop"])),
        }
        for k, v in values.items():
            t.spec.parameter_assignments.assignments.add(name=k, value=v)
        running = i >= n_trials - 2
        t.status.condition = pb.TrialStatus.RUNNING if running else pb.TrialStatus.SUCCEEDED
        if not running:
            loss = (np.log10(lr) + 2.5) ** 2 + rng.normal(0, 0.05)
            t.status.observation.metrics.add(name="loss", value=f"{loss:.6g}")
    req.current_request_number = 1
    req.total_request_number = n_trials + 1
    return req


@dataclass
class Result:
    clients: int
    workers: int
    max_concurrent_rpcs: int | None
    trials: int
    algorithm: str
    duration_s: float
    answered: int
    refused: int
    other_errors: int
    calls_per_s: float
    latency_p50_s: float
    latency_p99_s: float
    probes: int
    failed_probes: int
    probe_p50_ms: float
    probe_p99_ms: float
    probe_max_ms: float
    probes_over_100ms: int
    cpus: int
    python: str


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen[str], int]:
    cmd = [
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
        "--workers",
        str(args.workers),
    ]
    if args.max_concurrent_rpcs:
        cmd += ["--max-concurrent-rpcs", str(args.max_concurrent_rpcs)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        m = re.search(r"serving Katib suggestions on 127\.0\.0\.1:(\d+)", line)
        if m:
            # keep draining the log so the server never blocks on a full pipe
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, int(m.group(1))
    proc.kill()
    raise SystemExit("the server did not start")


def probe_loop(port: int, interval: float, stop: Any, out: Any) -> None:
    """Runs in its own process, like the kubelet: latency in seconds, or None for a failure."""
    latencies: list[float | None] = []
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        stub.Check(health_pb2.HealthCheckRequest(service=PROBE_SERVICE), timeout=10)
        while not stop.is_set():
            start = time.perf_counter()
            try:
                reply = stub.Check(
                    health_pb2.HealthCheckRequest(service=PROBE_SERVICE), timeout=PROBE_TIMEOUT
                )
                ok = reply.status == health_pb2.HealthCheckResponse.SERVING
                latencies.append(time.perf_counter() - start if ok else None)
            except grpc.RpcError:
                latencies.append(None)
            stop.wait(interval)
    out.put(latencies)


def client_loop(
    port: int,
    request: pb.GetSuggestionsRequest,
    index: int,
    until: float,
    backoff: float,
    record: list[tuple[str, float]],
) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.SuggestionStub(channel)
        call = 0
        while time.monotonic() < until:
            request.experiment.name = f"load-{index}-{call}"
            call += 1
            start = time.perf_counter()
            try:
                stub.GetSuggestions(request, timeout=60)
                record.append(("OK", time.perf_counter() - start))
            except grpc.RpcError as err:
                code = err.code()
                record.append((code.name if code else "UNKNOWN", time.perf_counter() - start))
                if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
                    time.sleep(backoff)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def run(args: argparse.Namespace) -> Result:
    proc, port = start_server(args)
    try:
        ctx = mp.get_context("spawn")
        stop, out = ctx.Event(), ctx.Queue()
        prober = ctx.Process(target=probe_loop, args=(port, args.probe_interval, stop, out))
        prober.start()
        requests = [
            build_request(args.trials, seed, args.algorithm) for seed in range(args.clients)
        ]
        record: list[tuple[str, float]] = []
        start = time.monotonic()
        until = start + args.duration
        threads = [
            threading.Thread(
                target=client_loop, args=(port, requests[i], i, until, args.backoff, record)
            )
            for i in range(args.clients)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
        stop.set()
        probes: list[float | None] = out.get(timeout=30)
        prober.join(timeout=10)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    answered = [s for code, s in record if code == "OK"]
    refused = sum(1 for code, _ in record if code == "RESOURCE_EXHAUSTED")
    ok_probes = [s * 1000 for s in probes if s is not None]
    return Result(
        clients=args.clients,
        workers=args.workers,
        max_concurrent_rpcs=args.max_concurrent_rpcs,
        trials=args.trials,
        algorithm=args.algorithm,
        duration_s=round(elapsed, 2),
        answered=len(answered),
        refused=refused,
        other_errors=len(record) - len(answered) - refused,
        calls_per_s=round(len(answered) / elapsed, 2),
        latency_p50_s=round(percentile(answered, 50), 3),
        latency_p99_s=round(percentile(answered, 99), 3),
        probes=len(probes),
        failed_probes=sum(1 for s in probes if s is None),
        probe_p50_ms=round(percentile(ok_probes, 50), 1),
        probe_p99_ms=round(percentile(ok_probes, 99), 1),
        probe_max_ms=round(max(ok_probes, default=float("nan")), 1),
        probes_over_100ms=sum(1 for s in ok_probes if s > 100),
        cpus=os.cpu_count() or 0,
        python=platform.python_version(),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    parser.add_argument("--trials", type=int, default=200, help="trials in each request")
    parser.add_argument("--algorithm", default="gp-bo")
    parser.add_argument("--workers", type=int, default=4, help="the server's --workers")
    parser.add_argument(
        "--max-concurrent-rpcs", type=int, default=None, help="the server's bound (default 2x)"
    )
    parser.add_argument("--probe-interval", type=float, default=0.2)
    parser.add_argument("--backoff", type=float, default=0.5, help="after RESOURCE_EXHAUSTED")
    parser.add_argument("--out", type=Path, default=None, help="also write the result as JSON")
    args = parser.parse_args(argv)
    result = run(args)
    print(
        f"{result.clients} clients, {result.trials}-trial histories, {result.algorithm}, "
        f"server --workers {result.workers}, {result.duration_s:.0f} s on {result.cpus} CPUs\n"
        f"  GetSuggestions: {result.answered} answered ({result.calls_per_s:.2f}/s), "
        f"p50 {result.latency_p50_s:.3f} s, p99 {result.latency_p99_s:.3f} s; "
        f"{result.refused} refused (RESOURCE_EXHAUSTED), {result.other_errors} other errors\n"
        f"  health probes:  {result.probes} sent, {result.failed_probes} failed; "
        f"p50 {result.probe_p50_ms:.1f} ms, p99 {result.probe_p99_ms:.1f} ms, "
        f"max {result.probe_max_ms:.1f} ms, {result.probes_over_100ms} over 100 ms"
    )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(asdict(result), indent=2) + "\n")
    return 0 if result.failed_probes == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
