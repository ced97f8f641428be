"""Katib's own Optuna suggestion service, run from a Katib source tree on a chosen port.

Katib's ``cmd/suggestion/optuna/v1beta1/main.py`` serves ``OptunaService`` on the fixed address
``0.0.0.0:6789``, one pod per experiment. This launcher serves the very same servicer class
(``pkg.suggestion.v1beta1.optuna.service.OptunaService``, imported unchanged from the checkout on
``PYTHONPATH``) on ``--host``/``--port`` instead, so that several can run side by side; it is
started once per experiment, like the pod. It runs in ``benchmarks/.venv-katib`` with the
versions of Katib's image (optuna 3.3.0, protobuf < 5; benchmarks/install_peers.sh), and imports
nothing from this project.

Run: ``python benchmarks/katib_optuna.py --port 0``; it logs ``listening on 127.0.0.1:<port>``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from concurrent import futures

import grpc
from pkg.apis.manager.health.python import health_pb2_grpc  # type: ignore[import-not-found]
from pkg.apis.manager.v1beta1.python import api_pb2_grpc  # type: ignore[import-not-found]
from pkg.suggestion.v1beta1.optuna.service import OptunaService  # type: ignore[import-not-found]

log = logging.getLogger("katib_optuna")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ns = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    # as Katib's main.py: ThreadPoolExecutor(max_workers=10), suggestion and health servicers
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=10))
    service = OptunaService()
    api_pb2_grpc.add_SuggestionServicer_to_server(service, server)
    health_pb2_grpc.add_HealthServicer_to_server(service, server)
    port = server.add_insecure_port(f"{ns.host}:{ns.port}")
    server.start()
    log.info("listening on %s:%d", ns.host, port)
    server.wait_for_termination()
    return 0


if __name__ == "__main__":
    sys.exit(main())
