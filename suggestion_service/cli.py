"""Command line: argument parsing only; the work happens in the floors below.

Subcommands register themselves here, one line each.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out)


def configure_logging(level: str, fmt: str) -> None:
    """Configure the root logger once, in the entry point (text or JSON lines on stderr)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the Katib suggestion gRPC server")
    p.add_argument(
        "--host",
        default=os.environ.get("DCSA_HOST", "0.0.0.0"),
        help="address to listen on (env DCSA_HOST; default 0.0.0.0, as Katib needs)",
    )
    p.add_argument(
        "--port",
        type=int,
        default=_env_int("DCSA_PORT", 6789),
        help="gRPC port (env DCSA_PORT; default 6789, Katib's)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=_env_int("DCSA_METRICS_PORT", 8000),
        help="Prometheus /metrics port; 0 picks a free port, -1 disables "
        "(env DCSA_METRICS_PORT; default 8000)",
    )
    p.add_argument(
        "--metrics-host",
        default=os.environ.get("DCSA_METRICS_HOST") or None,
        help="address the /metrics endpoint listens on (env DCSA_METRICS_HOST; default: --host)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=_env_int("DCSA_WORKERS", 4),
        help="Suggestion calls computed at once (env DCSA_WORKERS; default 4)",
    )
    p.add_argument(
        "--max-concurrent-rpcs",
        type=int,
        default=_env_int("DCSA_MAX_CONCURRENT_RPCS", 0) or None,
        help="Suggestion calls admitted at once (computing or waiting for a worker); more are "
        "refused with RESOURCE_EXHAUSTED, which Katib retries (env DCSA_MAX_CONCURRENT_RPCS; "
        "default twice --workers; at least --workers)",
    )
    p.add_argument(
        "--grace",
        type=float,
        default=float(os.environ.get("DCSA_GRACE", "10")),
        help="seconds in-flight calls get to finish on SIGTERM (env DCSA_GRACE)",
    )
    p.add_argument(
        "--blas-threads",
        type=int,
        default=_env_int("DCSA_BLAS_THREADS", 1),
        help="BLAS/OpenMP threads for the model's linear algebra (env DCSA_BLAS_THREADS; "
        "default 1, fastest for these matrix sizes)",
    )
    p.set_defaults(func=_serve)


def _serve(ns: argparse.Namespace) -> int:
    from .server import ServerConfig, serve_forever

    return serve_forever(
        ServerConfig(
            host=ns.host,
            port=ns.port,
            metrics_port=ns.metrics_port,
            metrics_host=ns.metrics_host,
            workers=ns.workers,
            max_concurrent_rpcs=ns.max_concurrent_rpcs,
            grace=ns.grace,
            blas_threads=ns.blas_threads,
        )
    )


def _add_katib_config(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "katib-config",
        help="add or remove dcsa's suggestion entries in "
        "Katib's katib-config ConfigMap (what the Helm hook Job runs)",
    )
    p.add_argument("action", choices=["add", "remove"])
    p.add_argument(
        "--entries",
        default=None,
        help="YAML list of katib-config suggestion entries (needed by add)",
    )
    p.add_argument(
        "--namespace",
        default=os.environ.get("KATIB_NAMESPACE", "kubeflow"),
        help="Katib's namespace (env KATIB_NAMESPACE; default kubeflow)",
    )
    p.add_argument("--configmap", default="katib-config", help="ConfigMap name")
    p.add_argument("--key", default="katib-config.yaml", help="key holding the config file")
    p.add_argument(
        "--kubeconfig",
        default=None,
        help="kubeconfig file (default: in-cluster, else ~/.kube/config)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the resulting katib-config.yaml and change nothing",
    )
    p.add_argument("--retries", type=int, default=5, help="retries on conflicting updates")
    p.set_defaults(func=_katib_config)


def _katib_config(ns: argparse.Namespace) -> int:
    from pathlib import Path

    from .k8s.command import katib_config_command
    from .k8s.configmap import Target

    return katib_config_command(
        action=ns.action,
        entries_path=Path(ns.entries) if ns.entries else None,
        target=Target(namespace=ns.namespace, name=ns.configmap, key=ns.key),
        kubeconfig=ns.kubeconfig,
        dry_run=ns.dry_run,
        retries=ns.retries,
    )


def _add_operator(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "operator", help="run the TuningSchedule operator (scheduled tuning with warm start)"
    )
    p.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="namespace to watch, repeatable (default: env DCSA_WATCH_NAMESPACES, else all)",
    )
    p.add_argument("--interval", type=float, default=15.0, help="seconds between passes")
    p.add_argument(
        "--health-port", type=int, default=8080, help="/healthz port; -1 disables (default 8080)"
    )
    p.add_argument(
        "--kubeconfig",
        default=None,
        help="kubeconfig file (default: in-cluster, else ~/.kube/config)",
    )
    p.add_argument("--once", action="store_true", help="one pass over all schedules, then exit")
    p.set_defaults(func=_operator)


def _operator(ns: argparse.Namespace) -> int:
    from .k8s.operator import operator_command

    return operator_command(
        namespaces=ns.namespace,
        interval=ns.interval,
        health_port=ns.health_port,
        kubeconfig=ns.kubeconfig,
        once=ns.once,
    )


def _add_validate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "validate", help="check Katib Experiment YAML as Katib's webhook and the service would"
    )
    p.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="Experiment YAML files (multi-document allowed) or directories",
    )
    p.add_argument(
        "--suggestion-address",
        metavar="HOST:PORT",
        default=None,
        help="ask a running service (default: start one in-process)",
    )
    p.add_argument(
        "--no-service",
        action="store_true",
        help="only the webhook checks; skip ValidateAlgorithmSettings",
    )
    p.set_defaults(func=_validate)


def _local_extra_missing(exc: ModuleNotFoundError) -> int:
    """`dcsa run` and `dcsa validate` without the ``local`` extra: say what to install."""
    package = (exc.name or "").partition(".")[0]
    if package not in ("rich", "matplotlib"):
        raise exc
    sys.stderr.write(
        f"error: {package} is not installed; dcsa run and dcsa validate need the local extra: "
        "pip install 'dcsa[local]'\n"
    )
    return 2


def _validate(ns: argparse.Namespace) -> int:
    try:
        from .local.commands import validate_command
    except ModuleNotFoundError as exc:
        return _local_extra_missing(exc)

    return validate_command(ns.paths, address=ns.suggestion_address, service=not ns.no_service)


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run a Katib Experiment end to end on this machine")
    p.add_argument(
        "paths",
        nargs=1,
        type=Path,
        metavar="EXPERIMENT",
        help="the Experiment YAML you would kubectl apply",
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="results and resume state (default: dcsa-runs/<experiment name>); "
        "running again with the same directory resumes",
    )
    p.add_argument(
        "--parallel",
        type=int,
        default=None,
        metavar="N",
        help="trials at once (default: spec.parallelTrialCount)",
    )
    p.add_argument(
        "--max-trials",
        type=int,
        default=None,
        metavar="N",
        help="total trials (default: spec.maxTrialCount)",
    )
    p.add_argument(
        "--trial-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="kill a trial that runs longer and mark it Failed (the trial template's "
        "activeDeadlineSeconds applies too; the smaller wins)",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        metavar="DIR",
        help="directory trials run in (default: the current directory)",
    )
    p.add_argument(
        "--suggestion-address",
        metavar="HOST:PORT",
        default=None,
        help="use a running suggestion service (default: start one in-process)",
    )
    p.add_argument("--plain", action="store_true", help="plain progress lines even on a terminal")
    p.set_defaults(func=_run)


def _run(ns: argparse.Namespace) -> int:
    try:
        from .local.commands import run_command
    except ModuleNotFoundError as exc:
        return _local_extra_missing(exc)

    return run_command(
        ns.paths,
        state_dir=ns.state_dir,
        parallel=ns.parallel,
        max_trials=ns.max_trials,
        trial_timeout=ns.trial_timeout,
        workdir=ns.workdir,
        address=ns.suggestion_address,
        live=False if ns.plain else None,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dcsa", description="DC and SA Bayesian optimization for Kubeflow Katib."
    )
    parser.add_argument("--version", action="version", version=f"dcsa {__version__}")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("DCSA_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="log level (env DCSA_LOG_LEVEL)",
    )
    parser.add_argument(
        "--log-format",
        default=os.environ.get("DCSA_LOG_FORMAT", "text"),
        choices=["text", "json"],
        help="log format (env DCSA_LOG_FORMAT)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_serve(sub)
    _add_validate(sub)
    _add_run(sub)
    _add_katib_config(sub)
    _add_operator(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    configure_logging(ns.log_level, ns.log_format)
    return int(ns.func(ns))


if __name__ == "__main__":
    sys.exit(main())
