"""Katib's own published client stubs (PyPI kubeflow-katib) against our server, on the wire.

kubeflow-katib pins protobuf<5 in its metadata but its generated code runs with protobuf 5.29 and
grpcio 1.85, so it is installed with --no-deps into its own virtualenv (cached in .cache/) and the
client runs there as a subprocess. Both files are called api.proto, so they cannot share a
process's descriptor pool anyway.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import venv
from collections.abc import Iterator

import pytest

from suggestion_service._generated import api_pb2 as pb
from suggestion_service.server import ServerConfig, SuggestionServer

from .descriptor_table import descriptor_table

ROOT = pathlib.Path(__file__).resolve().parent.parent
VENV = ROOT / ".cache" / "katib-stubs-venv"
PINS = ["kubeflow-katib==0.19.0", "protobuf==5.29.5", "grpcio==1.85.1", "typing-extensions==4.15.0"]


def katib_python() -> pathlib.Path:
    python = VENV / "bin" / "python"
    marker = VENV / "installed.txt"
    if not marker.exists() or marker.read_text() != " ".join(PINS):
        venv.create(VENV, with_pip=True, clear=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", *PINS], check=True)
        marker.write_text(" ".join(PINS))
    return python


@pytest.fixture(scope="module")
def katib_result(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    try:
        python = katib_python()
    except subprocess.CalledProcessError as exc:  # pragma: no cover - needs PyPI
        pytest.skip(f"cannot install kubeflow-katib from PyPI: {exc}")
    server = SuggestionServer(ServerConfig(host="127.0.0.1", port=0, metrics_port=-1))
    port = server.start()
    out = tmp_path_factory.mktemp("katib") / "result.json"
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        subprocess.run(
            [
                str(python),
                str(ROOT / "tests" / "katib_stub_client.py"),
                f"127.0.0.1:{port}",
                str(out),
            ],
            check=True,
            timeout=120,
            env=env,
        )
        yield json.loads(out.read_text())
    finally:
        server.stop(0)
    assert sys.executable  # keep the import used


def test_validate_through_katib_stubs(katib_result: dict[str, object]) -> None:
    assert katib_result["validate_ok"] is True
    code, details = katib_result["validate_bad"]  # type: ignore[misc]
    assert code == "INVALID_ARGUMENT"
    assert "spec.algorithm.algorithmSettings[bogus]" in details


def test_get_suggestions_through_katib_stubs(katib_result: dict[str, object]) -> None:
    sugs = katib_result["suggestions"]
    assert isinstance(sugs, list) and len(sugs) == 3
    seen = {
        ("0.01", "2", "adam"),
        ("0.05", "1", "sgd"),
        ("0.002", "4", "adam"),
        ("0.02", "3", "sgd"),
    }
    for s in sugs:
        a = s["assignments"]
        assert set(a) == {"lr", "layers", "opt"}
        assert 0.001 <= float(a["lr"]) <= 0.1
        assert a["layers"] in {"1", "2", "3", "4"}
        assert a["opt"] in {"sgd", "adam"}
        assert (a["lr"], a["layers"], a["opt"]) not in seen
        assert s["trial_name"].startswith("katib-stubs-")
        assert s["labels"]["dcsa.io/algorithm"] == "gp-bo"
    assert katib_result["algorithm"] == {"name": "gp-bo", "settings": ["dcsa_suggested"]}


def test_wire_descriptor_matches_katibs_field_by_field(katib_result: dict[str, object]) -> None:
    ours, our_enums = descriptor_table(pb)
    theirs = katib_result["messages"]
    assert isinstance(theirs, dict)
    for name in (
        "api.v1.beta1.GetSuggestionsRequest",
        "api.v1.beta1.GetSuggestionsReply",
        "api.v1.beta1.Trial",
        "api.v1.beta1.TrialSpec",
        "api.v1.beta1.TrialStatus",
        "api.v1.beta1.ExperimentSpec",
        "api.v1.beta1.FeasibleSpace",
        "api.v1.beta1.ValidateAlgorithmSettingsRequest",
    ):
        assert name in ours
    missing = sorted(set(ours) - set(theirs))
    assert not missing, f"messages Katib does not have: {missing}"
    for name, fields in ours.items():
        assert fields == theirs[name], name
    their_enums = katib_result["enums"]
    assert isinstance(their_enums, dict)
    for name, values in our_enums.items():
        assert values == their_enums[name], name
