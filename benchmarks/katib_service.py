"""Katib's own suggestion services (Optuna, skopt, hyperband), run from a Katib source tree.

Katib's ``cmd/suggestion/{optuna,skopt,hyperband}/v1beta1/main.py`` serve ``OptunaService`` /
``SkoptService`` / ``HyperbandService`` on the fixed address ``0.0.0.0:6789``, one pod per
experiment. This launcher serves the very same servicer class (imported unchanged from the
checkout on ``PYTHONPATH``) on ``--host``/``--port`` instead, so that several can run side by
side; it is started once per experiment, like the pod. It runs in the environment of the
service's image (``benchmarks/.venv-katib``: optuna 3.3.0; ``benchmarks/.venv-katib-skopt``:
numpy 1.23.5, scikit-learn <= 1.3.0, scikit-optimize; ``benchmarks/.venv-katib-hyperband``: its
image's requirements; all protobuf < 5; benchmarks/install_peers.sh) and imports nothing from
this project.

``--seed N`` seeds numpy's global generator before serving. Katib's hyperband draws its random
configurations from that unseeded global generator (``np.random.uniform``), so a run repeats only
when the process is seeded; the other two services take ``random_state`` from the settings and
ignore it.

Run: ``python benchmarks/katib_service.py --service optuna --port 0``; it logs
``listening on 127.0.0.1:<port>``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from concurrent import futures

import grpc
from pkg.apis.manager.health.python import health_pb2_grpc  # type: ignore[import-not-found]
from pkg.apis.manager.v1beta1.python import api_pb2_grpc  # type: ignore[import-not-found]

log = logging.getLogger("katib_service")


def servicer(name: str) -> object:
    if name == "hyperband":
        from pkg.suggestion.v1beta1.hyperband.service import (  # type: ignore[import-not-found]
            HyperbandService,
        )

        return HyperbandService()
    if name == "optuna":
        from pkg.suggestion.v1beta1.optuna.service import (  # type: ignore[import-not-found]
            OptunaService,
        )

        return OptunaService()
    from pkg.suggestion.v1beta1.skopt.service import (  # type: ignore[import-not-found]
        SkoptService,
    )

    return SkoptService()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--service", choices=("optuna", "skopt", "hyperband"), required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=None, help="seed numpy's global generator")
    ns = parser.parse_args()
    if ns.seed is not None:
        import numpy as np

        np.random.seed(ns.seed)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    # as Katib's main.py: ThreadPoolExecutor(max_workers=10), suggestion and health servicers
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=10))
    service = servicer(ns.service)
    api_pb2_grpc.add_SuggestionServicer_to_server(service, server)
    health_pb2_grpc.add_HealthServicer_to_server(service, server)
    port = server.add_insecure_port(f"{ns.host}:{ns.port}")
    server.start()
    log.info("listening on %s:%d", ns.host, port)
    server.wait_for_termination()
    return 0


if __name__ == "__main__":
    sys.exit(main())
