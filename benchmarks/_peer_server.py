"""The command line and gRPC server that the benchmark's stand-alone peer services share
(``benchmarks/skopt_service.py`` and ``benchmarks/peer_service.py``): ``--host`` and ``--port``
(0 picks a free one), 64 MiB messages, and the ``listening on HOST:PORT`` line on stderr that
the benchmarks wait for (``_suite_workers.server_command``)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from concurrent import futures

import grpc

from suggestion_service._generated import api_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)
_MB = 1024 * 1024


def serve(
    servicer: pb_grpc.SuggestionServicer,
    argv: Sequence[str] | None,
    *,
    description: str,
    max_workers: int,
) -> int:
    """Parse ``argv``, serve ``servicer`` until the process is stopped."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ns = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    opts = [
        ("grpc.max_receive_message_length", 64 * _MB),
        ("grpc.max_send_message_length", 64 * _MB),
    ]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers), options=opts)
    pb_grpc.add_SuggestionServicer_to_server(servicer, server)
    port = server.add_insecure_port(f"{ns.host}:{ns.port}")
    server.start()
    log.info("listening on %s:%d", ns.host, port)
    server.wait_for_termination()
    return 0
