"""A gRPC server interceptor that records RPC counts and latency by method and status code."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc

from .metrics import Metrics


def _split(full_method: str) -> tuple[str, str]:
    # "/api.v1.beta1.Suggestion/GetSuggestions" -> ("api.v1.beta1.Suggestion", "GetSuggestions")
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service or "unknown", method or "unknown"


class MetricsInterceptor(grpc.ServerInterceptor):
    """Counts started and handled unary RPCs and observes their duration."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        service, method = _split(handler_call_details.method)
        inner = handler.unary_unary
        m = self._m

        def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
            m.rpc_started.labels(service, method).inc()
            start = time.perf_counter()
            code = "OK"
            try:
                response = inner(request, context)
                code = _code(context, "OK")
                return response
            except Exception:
                code = _code(context, "UNKNOWN")
                raise
            finally:
                m.rpc_handled.labels(service, method, code).inc()
                m.rpc_seconds.labels(service, method, code).observe(time.perf_counter() - start)

        return grpc.unary_unary_rpc_method_handler(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _code(context: grpc.ServicerContext, default: str) -> str:
    getter = getattr(context, "code", None)
    code = getter() if callable(getter) else None
    if isinstance(code, grpc.StatusCode) and not (code is grpc.StatusCode.OK and default != "OK"):
        return str(code.name)
    return default
