"""CUDA runs: mixed precision, pinned memory, determinism; skipped without a CUDA device."""

from __future__ import annotations

from collections.abc import Callable

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
