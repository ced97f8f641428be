"""Fixtures for the local runner's tests: a tiny Experiment around ``trial_script.py``."""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from suggestion_service._generated import api_pb2_grpc as pb_grpc
from suggestion_service.local.service import suggestion_stub

SCRIPT = Path(__file__).with_name("trial_script.py")
REPO = Path(__file__).resolve().parents[2]
KATIB_EXAMPLE = Path("/work/shared/katib/bayesian-optimization.yaml")


def tiny_experiment(
    record: Path, *, extra_args: tuple[str, ...] = (), **spec: Any
) -> dict[str, Any]:
    """A valid Experiment whose trials run ``trial_script.py`` writing into ``record``."""
    body: dict[str, Any] = {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": "tiny", "namespace": "kubeflow"},
        "spec": {
            "objective": {
                "type": "minimize",
                "objectiveMetricName": "loss",
                "additionalMetricNames": ["other"],
            },
            "algorithm": {
                "algorithmName": "random",
                "algorithmSettings": [{"name": "random_state", "value": "3"}],
            },
            "parallelTrialCount": 2,
            "maxTrialCount": 6,
            "maxFailedTrialCount": 3,
            "parameters": [
                {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}},
            ],
            "trialTemplate": {
                "primaryContainerName": "main",
                "trialParameters": [
                    {"name": "xValue", "reference": "x"},
                    {"name": "trialName", "reference": "${trialSpec.Name}"},
                ],
                "trialSpec": {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "spec": {
                        "template": {
                            "spec": {
                                "containers": [
                                    {
                                        "name": "main",
                                        "image": "python:3.11-slim",
                                        "command": ["python", str(SCRIPT)],
                                        "args": [
                                            "--x=${trialParameters.xValue}",
                                            f"--record={record}",
                                            *extra_args,
                                        ],
                                        "env": [
                                            {
                                                "name": "DCSA_TEST_ENV",
                                                "value": "v-${trialParameters.trialName}",
                                            }
                                        ],
                                    }
                                ],
                                "restartPolicy": "Never",
                            }
                        }
                    },
                },
            },
        },
    }
    body["spec"].update(spec)
    return body


def write_yaml(path: Path, *bodies: Any) -> Path:
    path.write_text(yaml.safe_dump_all(list(bodies), sort_keys=False), encoding="utf-8")
    return path


def runs(record: Path) -> list[dict[str, Any]]:
    """The trial script's own records (start and end events)."""
    path = record / "runs.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


@pytest.fixture(scope="session")
def stub() -> Iterator[pb_grpc.SuggestionStub]:
    with suggestion_stub() as s:
        yield s


@pytest.fixture
def record(tmp_path: Path) -> Path:
    out = tmp_path / "record"
    out.mkdir()
    return out


@pytest.fixture
def make_body(record: Path) -> Callable[..., dict[str, Any]]:
    def make(**kw: Any) -> dict[str, Any]:
        return copy.deepcopy(tiny_experiment(record, **kw))

    return make


PYTHON = sys.executable
