"""Prometheus metrics and the gRPC server interceptor that records them."""
