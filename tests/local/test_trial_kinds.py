"""``dcsa validate`` accepts what Katib accepts: Experiments of every trial kind Katib runs (Job,
Tekton PipelineRun, Argo Workflow, Kubeflow TrainJob, XGBoostJob), Katib's defaults applied
first; what only the local runner cannot run is reported apart and refused by ``dcsa run``.
The Experiments are written for these tests."""

from __future__ import annotations

import copy
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from suggestion_service.local.commands import run_command, validate_command
from suggestion_service.local.experiment import Document, parse_experiment
from suggestion_service.local.validate import local_problems, validate_all, validate_document

from .conftest import write_yaml

Body = dict[str, Any]
LONG = "echo " + "x" * 90  # long strings are folded by a YAML dump, never by Katib's JSON


def experiment(trial_spec: Body, *, primary: str = "train", **template: Any) -> Body:
    """A small Experiment around ``trial_spec`` that uses ${trialParameters.learningRate}."""
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": "kinds", "namespace": "ml"},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"},
            "maxTrialCount": 4,
            "parallelTrialCount": 2,
            "parameters": [
                {
                    "name": "lr",
                    "parameterType": "double",
                    "feasibleSpace": {"min": "0.001", "max": "0.1"},
                }
            ],
            "trialTemplate": {
                "primaryContainerName": primary,
                "trialParameters": [{"name": "learningRate", "reference": "lr"}],
                "trialSpec": trial_spec,
                **template,
            },
        },
    }


def tekton() -> Body:
    step = {
        "name": "train",
        "image": "python:3.12-slim",
        "script": f'#!/bin/sh\n{LONG} && python -c \'print("loss=" + str('
        "${trialParameters.learningRate}))'\n",
    }
    return experiment(
        {
            "apiVersion": "tekton.dev/v1",
            "kind": "PipelineRun",
            "spec": {"pipelineSpec": {"tasks": [{"name": "t", "taskSpec": {"steps": [step]}}]}},
        },
        primary="step-train",
        successCondition='status.conditions.#(type=="Succeeded")#|#(status=="True")#',
        failureCondition='status.conditions.#(type=="Succeeded")#|#(status=="False")#',
        primaryPodLabels={"tekton.dev/pipelineTask": "t"},
    )


def argo() -> Body:
    return experiment(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "spec": {
                "entrypoint": "fit",
                "templates": [
                    {
                        "name": "fit",
                        "container": {
                            "image": "python:3.12-slim",
                            "command": ["python", "-c"],
                            "args": ["print('loss=' + '${trialParameters.learningRate}')"],
                        },
                    }
                ],
            },
        },
        primary="main",
        successCondition='status.[@this].#(phase=="Succeeded")#',
        failureCondition='status.[@this].#(phase=="Failed")#',
        primaryPodLabels={"katib.kubeflow.org/model-training": "true"},
    )


def train_job() -> Body:
    return experiment(
        {
            "apiVersion": "trainer.kubeflow.org/v1alpha1",
            "kind": "TrainJob",
            "spec": {
                "runtimeRef": {"name": "torch-distributed"},
                "trainer": {
                    "numNodes": 1,
                    "command": ["python", "fit.py", "--lr=${trialParameters.learningRate}"],
                },
            },
        },
        primary="node",
    )


def xgboost_job() -> Body:
    master = {
        "replicas": 1,
        "template": {
            "spec": {
                "containers": [
                    {
                        "name": "xgboost",
                        "image": "example.org/xgb:1",  # its entrypoint trains: no command
                        "args": ["--learning_rate=${trialParameters.learningRate}"],
                    }
                ]
            }
        },
    }
    return experiment(
        {
            "apiVersion": "kubeflow.org/v1",
            "kind": "XGBoostJob",
            "spec": {"xgbReplicaSpecs": {"Master": master, "Worker": copy.deepcopy(master)}},
        },
        primary="xgboost",
    )


KINDS = {"PipelineRun": tekton, "Workflow": argo, "TrainJob": train_job, "XGBoostJob": xgboost_job}


@pytest.mark.parametrize("kind", list(KINDS))
def test_katib_trial_kinds_are_valid(kind: str, stub: Any) -> None:
    doc = Document("k.yaml", KINDS[kind]())
    assert validate_document(doc) == []
    assert validate_all(doc, lambda: stub) == []
    # ... but the local runner cannot run them as processes
    [limit] = local_problems(parse_experiment(doc))
    assert limit.field.startswith("spec.trialTemplate.")


def test_tekton_without_conditions_is_refused_as_katib_does() -> None:
    body = tekton()
    del body["spec"]["trialTemplate"]["successCondition"]
    assert [str(p) for p in validate_document(Document("k.yaml", body))] == [
        "spec.trialTemplate: Required value: successCondition and failureCondition must be "
        "specified"
    ]


def test_file_collector_gets_katibs_defaults() -> None:
    body = train_job()
    body["spec"]["metricsCollectorSpec"] = {"collector": {"kind": "File"}}
    doc = Document("k.yaml", body)
    assert validate_document(doc) == []
    collector = parse_experiment(doc).collector
    assert (collector.path, collector.file_format) == ("/var/log/katib/metrics.log", "TEXT")


def test_nas_and_config_map_are_runner_limits() -> None:
    body = argo()
    spec = body["spec"]
    spec["trialTemplate"].pop("trialSpec")
    spec["trialTemplate"]["configMap"] = {
        "configMapName": "templates",
        "configMapNamespace": "ml",
        "templatePath": "fit.yaml",
    }
    doc = Document("k.yaml", body)
    assert validate_document(doc) == []
    assert [p.field for p in local_problems(parse_experiment(doc))] == [
        "spec.trialTemplate.configMap"
    ]


def test_validate_says_valid_for_katib_and_run_refuses(tmp_path: Path) -> None:
    path = tmp_path / "xgb.yaml"
    write_yaml(path, xgboost_job())
    out = io.StringIO()
    assert validate_command([path], service=False, out=out) == 0
    assert out.getvalue() == (
        f"{path} (kinds): valid for Katib; dcsa run cannot run it:\n"
        "  - spec.trialTemplate.trialSpec: container 'xgboost' sets no command: the local "
        "runner runs the command, it cannot run an image's entrypoint\n"
    )
    out = io.StringIO()
    assert run_command([path], state_dir=tmp_path / "state", live=False, out=out) == 1
    assert "valid for Katib; dcsa run cannot run it:" in out.getvalue()
    assert not (tmp_path / "state").exists()


def test_run_without_the_local_extra_says_what_to_install(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['rich'] = None\n"
        "from suggestion_service.cli import main\n"
        "sys.exit(main(['validate', '--no-service', 'x.yaml']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'dcsa[local]'" in proc.stderr
