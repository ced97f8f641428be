"""The pure optimization core: no grpc, protobuf, prometheus, kubernetes or environment access."""
