"""Every built-in task trains one short epoch on CPU and prints metrics Katib can read."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Callable
from importlib import import_module
from pathlib import Path

import pytest

from tests.trial_image import katib
from tests.trial_image.conftest import TINY, Run

ROOT = Path(__file__).resolve().parents[2]

CLASSIFICATION = ["epoch", "train-loss", "val-loss", "val-accuracy", "epoch-seconds"]
REGRESSION = ["epoch", "train-loss", "val-loss", "val-mse", "val-mae", "epoch-seconds"]


@pytest.mark.parametrize(
    ("task", "rows", "names", "groups"),
    [
        ("digits", 300, CLASSIFICATION, ("top", "bottom")),
        ("diabetes", 200, REGRESSION, ("demo", "serum")),
        ("mnist1d", 300, CLASSIFICATION, ("signal", "summary")),
    ],
)
def test_task_trains_one_epoch_and_katib_reads_every_metric(
    run_trial: Callable[..., Run], task: str, rows: int, names: list[str], groups: tuple[str, ...]
) -> None:
    run = run_trial("--task", task, f"--max-samples={rows}", *TINY)
    assert run.code == 0, run.err
    logs = katib.collect(run.out, names)
    assert [log.name for log in logs] == names  # one epoch: each metric once, in this order
    values = {log.name: float(log.value) for log in logs}
    assert values["epoch"] == 1
    assert values["train-loss"] > 0 and values["val-loss"] > 0
    if "val-accuracy" in values:
        assert 0 <= values["val-accuracy"] <= 1
    else:
        assert values["val-mse"] >= values["val-mae"] ** 2 > 0  # Jensen: E[e^2] >= E[|e|]^2
    # stdout is only metric lines; logs (stderr) carry the device and the partition.
    assert all("=" in line for line in run.out.splitlines())
    assert "device: cpu" in run.err
    for group in groups:
        assert f'"{group}__' in run.err
    assert "hyperparameters: {" in run.err


def test_validation_rows_do_not_depend_on_the_training_seed(
    run_trial: Callable[..., Run],
) -> None:
    # Katib compares trials, so every trial must be scored on the same validation rows.
    a = run_trial("--task", "diabetes", "--max-samples=120", "--seed=1", *TINY)
    b = run_trial("--task", "diabetes", "--max-samples=120", "--seed=2", *TINY)
    assert "96 training and 24 validation rows" in a.err
    assert "96 training and 24 validation rows" in b.err
    from trial_image.data import load_builtin

    one = load_builtin("diabetes", max_samples=120, split_seed=0)
    two = load_builtin("diabetes", max_samples=120, split_seed=0)
    other = load_builtin("diabetes", max_samples=120, split_seed=1)
    assert (one.y_val == two.y_val).all()
    assert not (one.y_val == other.y_val).all()


def test_metric_lines_with_rfc3339_timestamps(run_trial: Callable[..., Run]) -> None:
    run = run_trial("--task", "digits", "--max-samples=200", "--metrics-timestamps", *TINY)
    assert run.code == 0, run.err
    logs = katib.collect(run.out, ["val-accuracy", "val-loss"])
    assert len(logs) == 2
    assert all(log.timestamp is not None and log.timestamp.endswith("Z") for log in logs)
    # The same epoch's lines share one timestamp.
    assert logs[0].timestamp == logs[1].timestamp


def test_module_command_line_runs_as_a_process(tmp_path: Path) -> None:
    """The exact form the example Experiments use: ``python -m trial_image.train ...``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "trial_image.train", "--task=digits", "--max-samples=200", *TINY],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(katib.series(proc.stdout, "val-accuracy")) == 1


def test_console_script_is_declared_and_points_at_main() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    target = project["project"]["scripts"]["dcsa-train"]
    module, func = target.split(":")
    from trial_image.train import main

    assert getattr(import_module(module), func) is main
    assert "mnist1d" in " ".join(project["project"]["optional-dependencies"]["trial"])


def test_two_epochs_form_a_time_series(run_trial: Callable[..., Run]) -> None:
    args = [a for a in TINY if not a.startswith("--epochs")]
    run = run_trial("--task", "diabetes", "--max-samples=100", "--epochs=2", *args)
    assert run.code == 0, run.err
    assert katib.series(run.out, "epoch") == [1, 2]
    assert len(katib.series(run.out, "val-mse")) == 2
