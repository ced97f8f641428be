"""The suggestion service Dockerfile lints clean and keeps the house rules (no image is built
here: no container runtime on the test machine)."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ..dockerfiles import instructions as read_instructions
from .conftest import CHART, REPO, need_tool, run

DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    return read_instructions(DOCKERFILE)


def test_hadolint_is_clean() -> None:
    proc = run([need_tool("hadolint"), str(DOCKERFILE)], check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_multi_stage_pinned_non_root_exec_form() -> None:
    steps = instructions()
    bases = [args.split()[0] for word, args in steps if word == "FROM"]
    assert len(bases) == 2
    # pinned by digest: a tag can be pushed again
    digest = r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}"
    assert all(re.fullmatch(digest, b) for b in bases), bases
    last = steps[max(i for i, (w, _) in enumerate(steps) if w == "FROM") :]
    (user,) = [args for word, args in last if word == "USER"]
    uid = user.split(":")[0]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert int(uid) == values["suggestion"]["securityContext"]["runAsUser"] == 65532
    assert json.loads(dict(last)["ENTRYPOINT"]) == ["dcsa"]
    assert json.loads(dict(last)["CMD"]) == ["serve"]
    assert dict(last)["EXPOSE"].split() == ["6789", "8000"]
    runs = " ".join(args for word, args in steps if word == "RUN")
    # third-party packages only from the lock file, each checked against its hash
    assert "pip install --no-cache-dir --require-hashes -r requirements/service.txt" in runs
    assert "pip install --no-cache-dir --no-deps --no-build-isolation ." in runs
    installs = [a for a in runs.split("&&") if "pip install" in a]
    assert all("--require-hashes" in a or "--no-deps" in a for a in installs), installs
    # no installer left in the runtime image: the venv's and the base image's pip go
    assert "pip uninstall --yes --quiet setuptools wheel packaging pip" in runs
    final_runs = " ".join(args for word, args in last if word == "RUN")
    assert "python -m pip uninstall --yes --quiet pip setuptools wheel" in final_runs
    assert not [a for w, a in steps if w == "ENV" and "PYTHONPATH" in a]


def _requirement_pins(path: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) of a pip-compile --generate-hashes file."""
    pins: dict[str, tuple[str, int]] = {}
    name = ""
    for line in path.read_text().splitlines():
        if re.match(r"^[A-Za-z0-9]", line):
            req, _, version = line.split(" ")[0].partition("==")
            name = canonicalize_name(req)
            pins[name] = (version, 0)
        elif line.strip().startswith("--hash=sha256:") and name:
            version, hashes = pins[name]
            pins[name] = (version, hashes + 1)
    return pins


def test_service_lock_file_covers_the_service_and_nothing_of_the_local_extra() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = _requirement_pins(REPO / "requirements" / "service.txt")
    wanted = [
        Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["k8s"]
    ]
    for req in wanted:
        name = canonicalize_name(req.name)
        assert name in pins, f"{req} is not in requirements/service.txt: run scripts/lock.sh"
        version, _hashes = pins[name]
        assert req.specifier.contains(version, prereleases=True), (req, version)
    assert all(hashes > 0 for _v, hashes in pins.values()), "every pin needs its hashes"
    for absent in ("rich", "matplotlib", "pip", "setuptools"):
        assert absent not in pins, absent
    local = {
        canonicalize_name(Requirement(r).name) for r in project["optional-dependencies"]["local"]
    }
    assert local == {"rich", "matplotlib"}
    assert not local & {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    build = _requirement_pins(REPO / "requirements" / "build.txt")
    assert {"setuptools", "wheel"} <= set(build) and all(h > 0 for _v, h in build.values())


def test_serve_runs_without_the_local_extra() -> None:
    """`dcsa serve` imports neither rich nor matplotlib (nor pip): the image has none of them."""
    code = """
import sys
for name in ("rich", "matplotlib", "pip"):
    sys.modules[name] = None  # any import of them fails
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from suggestion_service import cli
from suggestion_service.server import ServerConfig, SuggestionServer
ns = cli.build_parser().parse_args(["serve", "--port", "0"])
assert ns.func.__name__ == "_serve"
server = SuggestionServer(ServerConfig(host="127.0.0.1", port=0, metrics_port=-1))
port = server.start()
try:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, reply
finally:
    server.stop(0)
loaded = sorted(m for m in sys.modules if m.startswith("suggestion_service.local"))
assert not loaded, loaded
print("ok")
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_dockerignore_keeps_what_the_build_copies() -> None:
    patterns = [
        p.strip()
        for p in (REPO / ".dockerignore").read_text().splitlines()
        if p.strip() and not p.startswith("#")
    ]
    copied = [
        "pyproject.toml",
        "README.md",
        "suggestion_service/server.py",
        "suggestion_service/k8s/katib_config.py",
        "trial_image/train.py",
    ]
    for path in copied:
        assert not any(
            fnmatch.fnmatch(path, p) or path.startswith(p.rstrip("/") + "/")
            for p in patterns
            if not p.startswith("!")
        ), path
    assert ".git" in patterns and ".venv" in patterns
