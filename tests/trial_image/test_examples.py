"""The example Experiments are valid Katib v1beta1 Experiments the trial's CLI accepts."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.trial_image import katib
from tests.trial_image.conftest import Run
from trial_image import checkpoint
from trial_image.data import BUILTIN_TASKS
from trial_image.hparams import GROUP_SEPARATOR, HEAD_GROUP
from trial_image.train import build_parser

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "manifests" / "examples"
FILES = sorted(EXAMPLES.glob("*.yaml"))
PLACEHOLDER = re.compile(r"\$\{trialParameters\.([^}]+)\}")
METRICS = {
    "classification": {"val-accuracy", "val-loss", "train-loss"},
    "regression": {"val-mse", "val-mae", "val-loss", "train-loss"},
}


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    tt = doc["spec"]["trialTemplate"]
    pod = tt["trialSpec"]["spec"]["template"]["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == tt["primaryContainerName"]]
    return dict(container)


def _task(doc: dict[str, Any]) -> str:
    (flag,) = [a for a in _container(doc)["command"] if a.startswith("--task=")]
    return str(flag.split("=", 1)[1])


def _sample(param: dict[str, Any]) -> str:
    space = param["feasibleSpace"]
    if "list" in space:
        return str(space["list"][-1])
    return str(space["max"])


def test_the_expected_examples_exist() -> None:
    names = {p.name for p in FILES}
    assert {"digits-quickstart.yaml", "digits.yaml", "diabetes.yaml", "mnist1d.yaml"} <= names
    assert any(_gpu_limit(_load(p)) == 1 for p in FILES)
    assert {_task(_load(p)) for p in FILES} == set(BUILTIN_TASKS)


def _gpu_limit(doc: dict[str, Any]) -> Any:
    return _container(doc).get("resources", {}).get("limits", {}).get("nvidia.com/gpu")


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_example_is_a_katib_experiment_for_dcsa_bo(path: Path) -> None:
    doc = _load(path)
    assert doc["apiVersion"] == "kubeflow.org/v1beta1"
    assert doc["kind"] == "Experiment"
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])
    spec = doc["spec"]
    assert spec["algorithm"]["algorithmName"] == "dcsa-bo"
    assert spec["metricsCollectorSpec"]["collector"]["kind"] == "StdOut"
    assert spec["maxTrialCount"] <= 12 and 2 <= spec["parallelTrialCount"] <= 3
    objective = spec["objective"]
    task_type = BUILTIN_TASKS[_task(doc)][0]
    names = {objective["objectiveMetricName"], *objective.get("additionalMetricNames", [])}
    assert names <= METRICS[task_type]  # every metric is one the trial prints
    for strategy in objective.get("metricStrategies", []):
        assert strategy["name"] in names and strategy["value"] in ("min", "max", "latest")


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_trial_parameters_placeholders_and_parameters_match(path: Path) -> None:
    doc = _load(path)
    params = {p["name"] for p in doc["spec"]["parameters"]}
    trial_params = {
        tp["name"]: tp["reference"] for tp in doc["spec"]["trialTemplate"]["trialParameters"]
    }
    command = _container(doc)["command"]
    used = {m for arg in command for m in PLACEHOLDER.findall(arg)}
    assert used == set(trial_params)  # every placeholder defined, every trialParameter used
    assert set(trial_params.values()) == params  # every parameter reaches the trial
    # A local runner executes command + args as a process: no image paths, no shell.
    assert command[:3] == ["python", "-m", "trial_image.train"]
    assert "args" not in _container(doc)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_partition_follows_the_naming_convention(path: Path) -> None:
    doc = _load(path)
    branches = BUILTIN_TASKS[_task(doc)][1]
    params = [p["name"] for p in doc["spec"]["parameters"]]
    groups = {n.split(GROUP_SEPARATOR, 1)[0] for n in params if GROUP_SEPARATOR in n}
    assert groups <= {*branches, HEAD_GROUP}
    assert len(groups) >= 2  # a multi-subnetwork search space
    settings = {
        s["name"]: s["value"] for s in doc["spec"]["algorithm"].get("algorithmSettings", [])
    }
    if "subnetworks" in settings:
        partition = json.loads(settings["subnetworks"])
        listed = [p for names in partition.values() for p in names]
        assert len(listed) == len(set(listed)) and set(listed) <= set(params)
        for group, names in partition.items():
            assert all(n.startswith(group + GROUP_SEPARATOR) for n in names)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_rendered_command_is_accepted_by_the_trial(path: Path) -> None:
    doc = _load(path)
    values = {p["name"]: _sample(p) for p in doc["spec"]["parameters"]}
    refs = {tp["name"]: tp["reference"] for tp in doc["spec"]["trialTemplate"]["trialParameters"]}
    argv = [
        PLACEHOLDER.sub(lambda m: values[refs[m.group(1)]], arg)
        for arg in _container(doc)["command"][3:]
    ]
    parser = build_parser(BUILTIN_TASKS[_task(doc)][1])
    ns, extra = parser.parse_known_args(argv)
    assert extra == []
    for name, value in values.items():
        parsed = getattr(ns, name)
        assert parsed == value if isinstance(parsed, str) else parsed == float(value)


def test_gpu_variant_requests_one_gpu_and_shows_scheduling() -> None:
    gpu = [_load(p) for p in FILES if _gpu_limit(_load(p)) is not None]
    assert gpu
    for doc in gpu:
        assert _gpu_limit(doc) == 1
        pod = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
        assert pod["nodeSelector"] and pod["tolerations"]
        container = _container(doc)
        assert container["image"].endswith("-cuda")
        # auto: CUDA on the GPU node, CPU under the local runner on a laptop.
        assert "--device=auto" in container["command"]


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_trial_container_is_hardened(path: Path) -> None:
    container = _container(_load(path))
    ctx = container["securityContext"]
    assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] > 0
    assert ctx["allowPrivilegeEscalation"] is False and ctx["readOnlyRootFilesystem"] is True
    assert ctx["capabilities"]["drop"] == ["ALL"]
    assert {"requests", "limits"} <= set(container["resources"])
    assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])


def test_the_local_runner_validator_accepts_every_example() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "suggestion_service", "validate", "--no-service", str(EXAMPLES)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(": valid") == len(FILES)


def test_quickstart_trial_prints_its_objective(run_trial: Callable[..., Run]) -> None:
    doc = _load(EXAMPLES / "digits-quickstart.yaml")
    values = {p["name"]: _sample(p) for p in doc["spec"]["parameters"]}
    argv = [
        PLACEHOLDER.sub(lambda m: values[m.group(1)], arg) for arg in _container(doc)["command"][3:]
    ]
    run = run_trial(*argv, "--max-samples=400")
    assert run.code == 0, run.err
    objective = doc["spec"]["objective"]["objectiveMetricName"]
    assert len(katib.series(run.out, objective)) == 2  # --epochs=2: a two-point series


def test_the_asha_example_shares_a_checkpoint_claim_between_trials() -> None:
    doc = _load(EXAMPLES / "digits-asha.yaml")
    settings = {s["name"]: s["value"] for s in doc["spec"]["algorithm"]["algorithmSettings"]}
    assert settings["resource_name"] == "epochs"
    (budget,) = [p for p in doc["spec"]["parameters"] if p["name"] == "epochs"]
    assert budget["parameterType"] == "int"
    container = _container(doc)
    assert "--epochs=${trialParameters.epochs}" in container["command"]
    env = {e["name"]: e["value"] for e in container["env"]}
    path = env[checkpoint.ENV_VAR]
    pod = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    }
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts[path] in claims  # the checkpoint directory is the claim, not the emptyDir
    assert not any(m.get("readOnly") for m in container["volumeMounts"] if m["mountPath"] == path)
    assert pod["securityContext"]["fsGroup"] == container["securityContext"]["runAsUser"]
