"""Builds the gRPC server: Suggestion servicer, health, metrics interceptor and /metrics port."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from types import FrameType
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry, start_http_server
from threadpoolctl import threadpool_limits

from . import __version__
from ._generated import api_pb2_grpc as pb_grpc
from .katib.servicer import SuggestionServicer
from .observability.interceptor import MetricsInterceptor
from .observability.metrics import Metrics, create_metrics

log = logging.getLogger(__name__)

#: Katib's readiness and liveness probes ask for this name, not the wire service name.
KATIB_HEALTH_SERVICE = "manager.v1beta1.Suggestion"
WIRE_SERVICE = "api.v1.beta1.Suggestion"
_MB = 1024 * 1024
#: Threads kept for health checks (and any other service) beyond the admitted Suggestion calls.
HEALTH_THREADS = 4


class AdmissionInterceptor(grpc.ServerInterceptor):
    """Bounds the Suggestion service's calls: ``workers`` compute, ``limit`` are admitted.

    A call beyond ``limit`` is refused at once (no thread is held, no memory is spent on it):
    GetSuggestions with RESOURCE_EXHAUSTED, ValidateAlgorithmSettings with UNAVAILABLE (both
    retried by Katib); an admitted call waits for one of the ``workers`` slots. Other
    services (health) pass straight through, so probes answer under any load.
    """

    def __init__(self, *, service: str, limit: int, workers: int, metrics: Metrics) -> None:
        self._prefix = f"/{service}/"
        self._admitted = threading.BoundedSemaphore(limit)
        self._working = threading.BoundedSemaphore(workers)
        self._limit = limit
        self._m = metrics

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        if (
            handler is None
            or handler.unary_unary is None
            or not handler_call_details.method.startswith(self._prefix)
        ):
            return handler
        inner = handler.unary_unary
        method = handler_call_details.method.rpartition("/")[2]

        # Katib's controller treats a ValidateAlgorithmSettings answer other than
        # INVALID_ARGUMENT, UNKNOWN or UNAVAILABLE as "valid": a busy refusal there must be
        # UNAVAILABLE (retried), never RESOURCE_EXHAUSTED (which would skip the validation).
        busy = (
            grpc.StatusCode.UNAVAILABLE
            if method == "ValidateAlgorithmSettings"
            else grpc.StatusCode.RESOURCE_EXHAUSTED
        )

        def admitted(request: Any, context: grpc.ServicerContext) -> Any:
            if not self._admitted.acquire(blocking=False):
                self._m.rejected.labels(method).inc()
                context.abort(
                    busy, f"busy: {self._limit} Suggestion calls in progress; retry later"
                )
            try:
                with self._working:
                    return inner(request, context)
            finally:
                self._admitted.release()

        return grpc.unary_unary_rpc_method_handler(
            admitted,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """Where and how to serve.

    Port 0 picks a free port (read it back from SuggestionServer.port / .metrics_port);
    a negative ``metrics_port`` disables the /metrics endpoint; ``metrics_host`` (default:
    ``host``) is the address the /metrics endpoint listens on.

    ``workers`` Suggestion calls compute at once; up to ``max_concurrent_rpcs`` (default: twice
    ``workers``) are admitted (the rest of them wait for a worker) and any beyond are refused at
    once with RESOURCE_EXHAUSTED,
    which Katib's controller retries. Health checks never wait behind them: they have threads
    of their own.
    """

    host: str = "0.0.0.0"
    port: int = 6789
    metrics_port: int = 8000
    metrics_host: str | None = None
    workers: int = 4
    max_concurrent_rpcs: int | None = None
    grace: float = 10.0
    max_message_mb: int = 64
    blas_threads: int | None = 1


class SuggestionServer:
    """A started-on-demand server; ``start()`` returns once health says SERVING."""

    def __init__(self, config: ServerConfig, registry: CollectorRegistry | None = None) -> None:
        self.config = config
        self.metrics: Metrics = create_metrics(registry)
        self.health = health.HealthServicer(experimental_non_blocking=True)
        opts = [
            ("grpc.max_receive_message_length", config.max_message_mb * _MB),
            ("grpc.max_send_message_length", config.max_message_mb * _MB),
        ]
        limit = config.max_concurrent_rpcs or 2 * config.workers
        if config.workers < 1 or limit < config.workers:
            raise ValueError(
                f"need 1 <= workers ({config.workers}) <= max_concurrent_rpcs ({limit})"
            )
        admission = AdmissionInterceptor(
            service=WIRE_SERVICE,
            limit=limit,
            workers=config.workers,
            metrics=self.metrics,
        )
        # One thread per admitted call plus threads that only health checks can use: a probe
        # never queues behind suggestions (Kubernetes' probe times out after 1 s).
        pool = futures.ThreadPoolExecutor(
            max_workers=limit + HEALTH_THREADS, thread_name_prefix="dcsa-rpc"
        )
        self._server = grpc.server(
            pool,
            interceptors=[MetricsInterceptor(self.metrics), admission],
            options=opts,
        )
        pb_grpc.add_SuggestionServicer_to_server(SuggestionServicer(self.metrics), self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        for name in ("", KATIB_HEALTH_SERVICE, WIRE_SERVICE):
            self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        self.port = 0
        self.metrics_port = 0
        self._metrics_http: object | None = None

    def start(self) -> int:
        """Bind, start serving, warm up, then report SERVING. Returns the gRPC port."""
        if self.config.blas_threads is not None:
            # Multithreaded BLAS on small GP matrices is slower, and collapses (25x measured on
            # 2 cores) when the cores are shared; one thread per call is the fast setting.
            threadpool_limits(limits=self.config.blas_threads, user_api="blas")
        self.port = self._server.add_insecure_port(f"{self.config.host}:{self.config.port}")
        if self.port == 0:
            raise RuntimeError(f"could not bind {self.config.host}:{self.config.port}")
        self._server.start()
        if self.config.metrics_port >= 0:
            self._start_metrics()
        _warm_up()
        for name in ("", KATIB_HEALTH_SERVICE, WIRE_SERVICE):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "dcsa %s serving Katib suggestions on %s:%d (metrics on :%d)",
            __version__,
            self.config.host,
            self.port,
            self.metrics_port,
        )
        return self.port

    def _start_metrics(self) -> None:
        host = self.config.metrics_host or self.config.host
        server, _thread = start_http_server(
            self.config.metrics_port, addr=host, registry=self.metrics.registry
        )
        self._metrics_http = server
        self.metrics_port = int(server.server_port)

    def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING first (so probes and clients back off), then a graceful stop."""
        self.health.enter_graceful_shutdown()
        self._server.stop(self.config.grace if grace is None else grace).wait()
        if self._metrics_http is not None:
            self._metrics_http.shutdown()  # type: ignore[attr-defined]
            self._metrics_http.server_close()  # type: ignore[attr-defined]

    def wait(self) -> None:
        self._server.wait_for_termination()


def _warm_up() -> None:
    """Run one tiny suggestion so the first real call pays no import or cache cost."""
    from .core.engine import SuggestRequest, suggest
    from .core.history import Goal, Objective, TrialRecord, TrialState
    from .core.space import make_parameter, make_space

    space = make_space(
        [make_parameter(name="x", type_name="double", min_text="0", max_text="1", where="warmup")]
    )
    trials = [
        TrialRecord(
            name=f"w{i}",
            assignments={"x": str(v)},
            state=TrialState.SUCCEEDED,
            metrics={"m": str(v * v)},
        )
        for i, v in enumerate((0.1, 0.5, 0.9))
    ]
    suggest(
        SuggestRequest(
            algorithm="gp-bo",
            experiment="warmup",
            space=space,
            objective=Objective(goal=Goal.MINIMIZE, metric="m"),
            settings={"n_initial_points": "1"},
            trials=trials,
            n=1,
            total_requested=4,
        )
    )


def serve_forever(config: ServerConfig) -> int:
    """Run until SIGTERM or SIGINT; then NOT_SERVING and a graceful stop. Returns exit code."""
    server = SuggestionServer(config)
    done = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info(
            "signal %s: health NOT_SERVING, stopping with %.0fs grace",
            signal.Signals(signum).name,
            config.grace,
        )
        done.set()

    # handlers first: a SIGTERM right after "serving" (a fast kubelet, a test) must stop
    # gracefully, not kill the process
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    done.wait()
    server.stop()
    log.info("stopped")
    return 0
