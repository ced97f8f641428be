"""Fixtures for the deployment tests: real tools (helm, promtool, checkov, kubernetes-validate),
a real kube-apiserver + etcd and a real Prometheus, all on 127.0.0.1.

Tools come from ``scripts/install/deploy.sh`` (cache ``$DCSA_TOOLS_DIR``, default
``~/.cache/dcsa-tools``) or from PATH; a test whose tool is missing skips and says which script
installs it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "dcsa"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
FIXTURES = Path(__file__).resolve().parent / "fixtures"
TOOLS = Path(os.environ.get("DCSA_TOOLS_DIR", Path.home() / ".cache" / "dcsa-tools"))
INSTALL_HINT = "run scripts/install/deploy.sh"
RELEASE_NS = "dcsa-system"


def find_tool(name: str) -> str | None:
    """A tool from the tools cache, the venv's bin directory or PATH."""
    for candidate in (
        TOOLS / "bin" / name,
        TOOLS / "checkov-venv" / "bin" / name,
        Path(sys.executable).parent / name,
    ):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


def need_tool(name: str) -> str:
    path = find_tool(name)
    if path is None:
        pytest.skip(f"{name} not installed ({INSTALL_HINT})")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(
    cmd: list[str],
    *,
    check: bool = True,
    timeout: float = 120,
    env: dict[str, str] | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=env, input=input, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


@pytest.fixture(scope="session")
def helm() -> str:
    return need_tool("helm")


def helm_template(helm: str, *args: str, release: str = "dcsa") -> list[dict[str, Any]]:
    out = run([helm, "template", release, str(CHART), "-n", RELEASE_NS, *args]).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.fixture(scope="session")
def rendered(helm: str) -> dict[str, list[dict[str, Any]]]:
    """``helm template`` output for every ci/*-values.yaml, by file stem."""
    return {
        p.name.removesuffix("-values.yaml"): helm_template(helm, "-f", str(p)) for p in CI_VALUES
    }


# --- kube-apiserver ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiServer:
    kubeconfig: Path
    url: str
    state_dir: Path

    def kubectl(
        self,
        *args: str,
        check: bool = True,
        kubeconfig: Path | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return run(
            [need_tool("kubectl"), "--kubeconfig", str(kubeconfig or self.kubeconfig), *args],
            check=check,
            input=input,
        )


@pytest.fixture(scope="session")
def kube_apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """A real kube-apiserver 1.20 + etcd built by scripts/kube-apiserver/build.sh."""
    bin_dir = Path(os.environ.get("KUBE_APISERVER_BIN", TOOLS / "kube-apiserver-1.20" / "bin"))
    if not (bin_dir / "kube-apiserver").is_file() or not (bin_dir / "etcd").is_file():
        pytest.skip(f"kube-apiserver not built in {bin_dir} ({INSTALL_HINT})")
    need_tool("kubectl")
    state = tmp_path_factory.mktemp("kube")
    port, etcd_port, peer_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "BIN": str(bin_dir),
        "D": str(state),
        "PORT": str(port),
        "ETCD_PORT": str(etcd_port),
        "PEER_PORT": str(peer_port),
    }
    proc = run(
        ["bash", str(REPO / "scripts" / "kube-apiserver" / "start.sh")],
        env=env,
        check=False,
        timeout=120,
    )
    try:
        if proc.returncode != 0:
            log = (
                (state / "apiserver.log").read_text()[-3000:]
                if (state / "apiserver.log").exists()
                else ""
            )
            raise AssertionError(f"kube-apiserver did not start: {proc.stderr}\n{log}")
        yield ApiServer(
            kubeconfig=state / "kubeconfig", url=f"https://127.0.0.1:{port}", state_dir=state
        )
    finally:
        for name in ("apiserver.pid", "etcd.pid"):
            pid_file = state / name
            if pid_file.exists():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
        time.sleep(0.5)


@pytest.fixture(scope="session")
def cluster(kube_apiserver: ApiServer) -> ApiServer:
    """The API server with what Katib's install leaves: namespace kubeflow, Katib-like CRDs
    and a katib-config ConfigMap holding Katib's stock entries (tests/deploy/fixtures)."""
    api = kube_apiserver
    api.kubectl("create", "namespace", "kubeflow")
    api.kubectl("apply", "-f", str(FIXTURES / "katib-crds.yaml"))
    api.kubectl(
        "-n",
        "kubeflow",
        "create",
        "configmap",
        "katib-config",
        f"--from-file=katib-config.yaml={FIXTURES / 'katib-config.yaml'}",
    )
    return api


# --- suggestion server and Prometheus ---------------------------------------------------------


@dataclass(frozen=True)
class Server:
    grpc_port: int
    metrics_port: int


@pytest.fixture(scope="session")
def suggestion_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``dcsa serve`` as a subprocess on free loopback ports."""
    grpc_port, metrics_port = free_port(), free_port()
    log = (tmp_path_factory.mktemp("server") / "server.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "suggestion_service",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(grpc_port),
            "--metrics-port",
            str(metrics_port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    try:
        wait_http(f"http://127.0.0.1:{metrics_port}/metrics", proc, timeout=60)
        yield Server(grpc_port=grpc_port, metrics_port=metrics_port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def wait_http(url: str, proc: subprocess.Popen[Any] | None, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return str(resp.read().decode())
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"process for {url} exited with {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not answer within {timeout} s") from None
            time.sleep(0.3)


@dataclass(frozen=True)
class Prometheus:
    url: str
    config: Path


#: Pod metadata Prometheus' Kubernetes discovery would attach to three suggestion pod ports.
#: Debian's Prometheus has no Kubernetes discovery, so static targets carry the same labels and
#: the chart's own relabel rules decide which of them are scraped.
RELABEL_TARGETS = {
    "ours": {
        "deployment": "e1-dcsa-bo",
        "port_name": "metrics",
        "pod": "e1-dcsa-bo-5d9c7b8f6-x7k2p",
        "experiment": "e1",
    },
    "katibs": {
        "deployment": "e2-random",
        "port_name": "metrics",
        "pod": "e2-random-5d9c7b8f6-abcde",
        "experiment": "e2",
    },
    "grpc-port": {
        "deployment": "e1-dcsa-bo",
        "port_name": "suggestion-api",
        "pod": "e1-dcsa-bo-5d9c7b8f6-x7k2p",
        "experiment": "e1",
    },
}


def _chart_scrape_job(server: Server) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The chart's plain scrape job (static targets) and alert rule groups, if helm exists."""
    binary = find_tool("helm")
    if binary is None:
        return None, []
    docs = helm_template(
        binary,
        "--set",
        "metrics.scrapeConfig.enabled=true",
        "--set",
        "metrics.prometheusRule.enabled=true",
    )
    (cm,) = [
        d
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-scrape-config")
    ]
    (job,) = yaml.safe_load(cm["data"]["scrape-config.yaml"])
    job.pop("kubernetes_sd_configs")
    job["scrape_interval"] = job["scrape_timeout"] = "1s"
    job["static_configs"] = []
    for meta in RELABEL_TARGETS.values():
        port = server.metrics_port if meta["port_name"] == "metrics" else server.grpc_port
        job["static_configs"].append(
            {
                "targets": [f"127.0.0.1:{port}"],
                "labels": {
                    "__meta_kubernetes_pod_label_katib_kubeflow_org_suggestion": meta["experiment"],
                    "__meta_kubernetes_pod_label_katib_kubeflow_org_experiment": meta["experiment"],
                    "__meta_kubernetes_pod_label_deployment": meta["deployment"],
                    "__meta_kubernetes_pod_container_port_name": meta["port_name"],
                    "__meta_kubernetes_namespace": "team-a",
                    "__meta_kubernetes_pod_name": meta["pod"],
                },
            }
        )
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    return job, list(rule["spec"]["groups"])


@pytest.fixture(scope="session")
def prometheus(
    suggestion_server: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    """A real Prometheus scraping the suggestion server every second: a plain static job, and
    (when helm is installed) the chart's own scrape job and alert rules."""
    binary = need_tool("prometheus")
    work = tmp_path_factory.mktemp("prometheus")
    chart_job, groups = _chart_scrape_job(suggestion_server)
    rules = work / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": groups}))
    config = work / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules)] if groups else [],
                "scrape_configs": [
                    {
                        "job_name": "static",
                        "scrape_interval": "1s",
                        "scrape_timeout": "1s",
                        "static_configs": [
                            {
                                "targets": [f"127.0.0.1:{suggestion_server.metrics_port}"],
                                "labels": {"namespace": "test", "experiment": "prom-test"},
                            }
                        ],
                    },
                    *([chart_job] if chart_job else []),
                ],
            }
        )
    )
    port = free_port()
    log = (work / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/-/ready", proc, timeout=60)
        yield Prometheus(url=f"http://127.0.0.1:{port}", config=config)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
