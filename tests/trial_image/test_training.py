"""Training behaviour: NaN and divergence fail the trial, seeds make runs repeatable, models."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pytest
import torch

from tests.trial_image import katib
from tests.trial_image.conftest import TINY, Run
from trial_image import training
from trial_image.data import load_builtin
from trial_image.hparams import BranchConfig, BranchKind, GlobalConfig, HeadConfig, ModelConfig
from trial_image.metrics import MetricsReporter
from trial_image.models import MultiBranchNet, branch_network


def _without_timing(out: str) -> list[str]:
    return [line for line in out.splitlines() if not line.startswith("epoch-seconds=")]


def test_nan_loss_fails_the_trial_with_exit_4(
    monkeypatch: pytest.MonkeyPatch, run_trial: Callable[..., Run]
) -> None:
    # The model turns NaN in the second epoch (batch 5 of 4 per epoch).
    forward = MultiBranchNet.forward
    calls = 0

    def poisoned(self: MultiBranchNet, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        nonlocal calls
        calls += 1 if self.training else 0
        out = forward(self, inputs)
        return out * float("nan") if calls >= 5 else out

    monkeypatch.setattr(MultiBranchNet, "forward", poisoned)
    args = [a for a in TINY if not a.startswith("--epochs")]
    run = run_trial("--task=diabetes", "--max-samples=100", "--epochs=3", *args)
    assert run.code == 4
    assert "dcsa-train: error: training diverged: train-loss is nan in epoch 2;" in run.err
    # Epoch 1 reached Katib; the broken epoch 2 did not.
    assert katib.series(run.out, "epoch") == [1]
    assert len(katib.series(run.out, "val-loss")) == 1


def test_exploding_learning_rate_fails_the_trial(run_trial: Callable[..., Run]) -> None:
    args = [a for a in TINY if not a.startswith("--lr")]
    run = run_trial(
        "--task=diabetes", "--max-samples=100", "--optimizer=sgd", "--lr=1e6", "--momentum=0", *args
    )
    assert run.code == 4
    assert "training diverged: train-loss" in run.err
    assert katib.collect(run.out, ["val-mse"])[0].value == katib.UNAVAILABLE


def test_divergence_check_compares_with_the_first_batch() -> None:
    data = load_builtin("diabetes", max_samples=50)
    trainer = training.Trainer(
        data, _config(data.branches), training.RunOptions(divergence_factor=10), MetricsReporter()
    )
    trainer._check("train-loss", 9.9, 1, reference=1.0)  # within the factor: fine
    with pytest.raises(training.TrainingDivergedError, match="more than 10 times the first"):
        trainer._check("train-loss", 10.1, 1, reference=1.0)
    with pytest.raises(training.TrainingDivergedError, match="val-loss is nan in epoch 3"):
        trainer._check("val-loss", float("nan"), 3)
    off = training.Trainer(
        data, _config(data.branches), training.RunOptions(divergence_factor=0), MetricsReporter()
    )
    off._check("train-loss", 1e9, 1, reference=1.0)  # factor 0: only NaN and infinity fail
    with pytest.raises(training.TrainingDivergedError):
        off._check("train-loss", float("inf"), 1, reference=1.0)


@pytest.mark.parametrize("task", ["digits", "diabetes"])
def test_same_seed_same_metrics_other_seed_other_metrics(
    run_trial: Callable[..., Run], task: str
) -> None:
    args = ("--task", task, "--max-samples=150", *TINY)
    a = run_trial(*args, "--seed=7")
    b = run_trial(*args, "--seed=7")
    c = run_trial(*args, "--seed=8")
    assert a.code == b.code == c.code == 0
    assert _without_timing(a.out) == _without_timing(b.out)
    assert katib.series(a.out, "train-loss") != katib.series(c.out, "train-loss")


def _config(branches: Mapping[str, BranchKind], head_layers: int = 1) -> ModelConfig:
    return ModelConfig(
        globals=GlobalConfig(
            lr=1e-3, batch_size=16, epochs=1, weight_decay=0, optimizer="adam", momentum=0.9
        ),
        branches={
            name: BranchConfig(
                kind=kind, layers=2, width=4, kernel=3, dropout=0.1, activation="gelu", norm="batch"
            )
            for name, kind in branches.items()
        },
        head=HeadConfig(layers=head_layers, units=5, dropout=0.0, activation="tanh", norm="layer"),
    )


@pytest.mark.parametrize(
    ("kind", "shape", "width"),
    [
        ("dense", (7,), 4),
        ("cnn1d", (2, 9), 4 * 2),  # 9 -> 4 -> 2 positions after two pools
        ("cnn2d", (1, 4, 8), 4 * 1 * 2),  # 4x8 -> 2x4 -> 1x2
        ("cnn2d", (3, 1, 5), 4 * 1 * 1),  # an axis of length one is never pooled
    ],
)
def test_branch_output_width(kind: BranchKind, shape: tuple[int, ...], width: int) -> None:
    for norm in ("none", "batch", "layer"):
        cfg = BranchConfig(
            kind=kind,
            layers=2,
            width=4,
            kernel=3,
            dropout=0.2,
            activation="relu",
            norm=norm,
        )
        net, out = branch_network(shape, cfg)
        assert out == width
        assert net(torch.zeros(3, *shape)).shape == (3, width)


@pytest.mark.parametrize("head_layers", [0, 2])
def test_multi_branch_net_maps_named_inputs_to_outputs(head_layers: int) -> None:
    shapes = {"a": (1, 4, 8), "b": (2, 10), "c": (6,)}
    config = _config({"a": "cnn2d", "b": "cnn1d", "c": "dense"}, head_layers)
    net = MultiBranchNet(shapes, config, num_outputs=3)
    inputs = {k: torch.randn(5, *s) for k, s in shapes.items()}
    assert net(inputs).shape == (5, 3)
    assert list(net.branches) == ["a", "b", "c"]
    hidden = [m for m in net.head if isinstance(m, torch.nn.Linear)]
    assert len(hidden) == head_layers


def test_regression_metrics_are_in_the_targets_units(run_trial: Callable[..., Run]) -> None:
    # diabetes targets have a variance near 6000: val-mse is in those units, val-loss is not.
    run = run_trial("--task=diabetes", "--max-samples=120", *TINY)
    assert run.code == 0, run.err
    (mse,) = katib.series(run.out, "val-mse")
    (loss,) = katib.series(run.out, "val-loss")
    data = load_builtin("diabetes", max_samples=120)
    assert mse == pytest.approx(
        loss * float(np.var(np.asarray(data.y_train, np.float64))), rel=1e-3
    )
