"""CUDA runs: mixed precision, pinned memory, determinism; skipped without a CUDA device."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.trial_image import katib
from tests.trial_image.conftest import TINY, Run
from trial_image import training

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

GPU = (*(a for a in TINY if not a.startswith("--num-threads")), "--device=cuda")


@pytest.mark.parametrize(
    ("task", "objective"),
    [("digits", "val-accuracy"), ("diabetes", "val-mse"), ("mnist1d", "val-accuracy")],
)
def test_each_task_trains_on_cuda(run_trial: Callable[..., Run], task: str, objective: str) -> None:
    run = run_trial("--task", task, "--max-samples=400", *GPU)
    assert run.code == 0, run.err
    assert len(katib.series(run.out, objective)) == 1
    expected = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    assert f"device: cuda ({torch.cuda.get_device_name(0)}" in run.err
    assert f"precision {expected}" in run.err


def test_auto_picks_cuda() -> None:
    assert training.resolve_device("auto").type == "cuda"
    assert training.resolve_precision("auto", torch.device("cuda")) in (
        torch.bfloat16,
        torch.float16,
    )


def test_fp16_with_gradient_scaler_trains(run_trial: Callable[..., Run]) -> None:
    run = run_trial("--task=digits", "--max-samples=300", "--precision=fp16", *GPU)
    assert run.code == 0, run.err
    assert "precision fp16" in run.err


def test_same_seed_same_metrics_on_cuda(run_trial: Callable[..., Run]) -> None:
    args = ("--task=diabetes", "--max-samples=200", "--seed=3", "--precision=fp32", *GPU)
    a, b = run_trial(*args), run_trial(*args)
    assert a.code == b.code == 0
    assert katib.series(a.out, "val-mse") == katib.series(b.out, "val-mse")
    assert katib.series(a.out, "train-loss") == katib.series(b.out, "train-loss")


def test_missing_device_index_is_a_usage_error(run_trial: Callable[..., Run]) -> None:
    index = torch.cuda.device_count()
    run = run_trial("--task=digits", "--max-samples=100", *GPU, f"--device=cuda:{index}")
    assert run.code == 2
    assert f"argument --device: cuda:{index} requested but only" in run.err


def test_checkpoint_saved_on_cuda_resumes_on_cuda_and_loads_on_cpu(
    run_trial: Callable[..., Run], tmp_path: Path
) -> None:
    base = ("--task=diabetes", "--max-samples=200", "--seed=3", "--precision=fp32")
    cuda = (*base, *(a for a in GPU if not a.startswith("--epochs")))
    ck = f"--checkpoint-dir={tmp_path}"
    first = run_trial(*cuda, "--epochs=2", ck)
    assert first.code == 0, first.err
    (saved,) = list(tmp_path.glob("*/epochs-00002.pt"))
    payload = torch.load(saved, weights_only=True)  # no map_location: where it was saved
    assert all(t.device.type == "cuda" for t in payload["model"].values())

    resumed = run_trial(*cuda, "--epochs=4", ck)
    assert resumed.code == 0, resumed.err
    assert "epochs-00002.pt (epochs 1-2); training epochs 3-4" in resumed.err
    straight = run_trial(*cuda, "--epochs=4")
    assert katib.series(resumed.out, "val-mse") == katib.series(straight.out, "val-mse")

    cpu = (*base, "--device=cpu", "--num-threads=1", "--batch-size=32", "--lr=0.01")
    on_cpu = run_trial(*cpu, "--epochs=5", ck)
    assert on_cpu.code == 0, on_cpu.err
    assert "epochs-00004.pt (epochs 1-4); training epoch 5" in on_cpu.err
    assert not [line for line in on_cpu.err.splitlines() if " WARNING " in line]
    assert katib.series(on_cpu.out, "val-mse")[:4] == katib.series(resumed.out, "val-mse")
    (cpu_file,) = list(tmp_path.glob("*/epochs-00005.pt"))
    assert all(t.device.type == "cpu" for t in torch.load(cpu_file)["model"].values())

    # and back: the CPU's checkpoint resumes on CUDA
    back = run_trial(*cuda, "--epochs=6", ck)
    assert back.code == 0, back.err
    assert "epochs-00005.pt (epochs 1-5); training epoch 6" in back.err
