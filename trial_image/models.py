"""The multi-branch model: one subnetwork per input, joined by a fusion head.

Each branch maps its input to a flat feature vector; the head concatenates the vectors and maps
them to the outputs (class logits or regression targets).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from trial_image.hparams import BranchConfig, HeadConfig, ModelConfig

_ACTIVATIONS: Mapping[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
}


def _activation(name: str) -> nn.Module:
    return _ACTIVATIONS[name]()


def _dense_norm(norm: str, width: int) -> list[nn.Module]:
    if norm == "batch":
        return [nn.BatchNorm1d(width)]
    if norm == "layer":
        return [nn.LayerNorm(width)]
    return []


def _conv_norm(norm: str, channels: int, dims: int) -> list[nn.Module]:
    if norm == "batch":
        return [nn.BatchNorm1d(channels) if dims == 1 else nn.BatchNorm2d(channels)]
    if norm == "layer":
        # Layer norm over (channels, positions) of each sample: a one-group GroupNorm.
        return [nn.GroupNorm(1, channels)]
    return []


def mlp(
    in_features: int, layers: int, units: int, dropout: float, activation: str, norm: str
) -> nn.Sequential:
    """Hidden layers of a feed-forward network: (linear, norm, activation, dropout) x layers.

    Args:
        in_features: input width.
        layers: number of hidden layers (0 gives an identity).
        units: width of every hidden layer.
        dropout: dropout probability after each layer.
        activation: activation name.
        norm: ``none``, ``batch`` or ``layer``.

    Returns:
        The network; its output width is ``units`` (``in_features`` when ``layers`` is 0).
    """
    mods: list[nn.Module] = []
    width = in_features
    for _ in range(layers):
        mods += [nn.Linear(width, units), *_dense_norm(norm, units), _activation(activation)]
        if dropout > 0:
            mods.append(nn.Dropout(dropout))
        width = units
    return nn.Sequential(*mods)


def conv_stack(in_shape: tuple[int, ...], cfg: BranchConfig) -> nn.Sequential:
    """Convolution blocks for a 1-D (``C, L``) or 2-D (``C, H, W``) input, then a flatten.

    Each block is conv (same padding), norm, activation, 2x max-pool along every axis still
    longer than one, and dropout.

    Args:
        in_shape: per-sample input shape.
        cfg: the branch's hyperparameters.

    Returns:
        The network; its output is ``(N, features)``.
    """
    dims = len(in_shape) - 1
    conv: type[nn.Conv1d] | type[nn.Conv2d] = nn.Conv1d if dims == 1 else nn.Conv2d
    channels, spatial = in_shape[0], list(in_shape[1:])
    mods: list[nn.Module] = []
    for _ in range(cfg.layers):
        mods += [
            conv(channels, cfg.width, cfg.kernel, padding="same"),
            *_conv_norm(cfg.norm, cfg.width, dims),
            _activation(cfg.activation),
        ]
        pool = tuple(2 if s >= 2 else 1 for s in spatial)
        if any(p > 1 for p in pool):
            mods.append(nn.MaxPool1d(pool[0]) if dims == 1 else nn.MaxPool2d(pool))
            spatial = [s // p for s, p in zip(spatial, pool, strict=True)]
        if cfg.dropout > 0:
            mods.append(nn.Dropout(cfg.dropout))
        channels = cfg.width
    mods.append(nn.Flatten())
    return nn.Sequential(*mods)


def branch_network(in_shape: tuple[int, ...], cfg: BranchConfig) -> tuple[nn.Module, int]:
    """Build one branch and return it with its output width.

    Args:
        in_shape: per-sample input shape: ``(F,)`` dense, ``(C, L)`` 1-D CNN, ``(C, H, W)`` 2-D.
        cfg: the branch's hyperparameters.

    Returns:
        The module and the width of its flat output.
    """
    if cfg.kind == "dense":
        net = mlp(math.prod(in_shape), cfg.layers, cfg.width, cfg.dropout, cfg.activation, cfg.norm)
        return nn.Sequential(nn.Flatten(), net), cfg.width
    stack = conv_stack(in_shape, cfg)
    with torch.no_grad():
        stack.eval()
        width = int(stack(torch.zeros(1, *in_shape)).shape[1])
        stack.train()
    return stack, width


class MultiBranchNet(nn.Module):
    """Branches (one per named input) joined by a fusion head.

    Args:
        input_shapes: branch name to per-sample input shape, in input order.
        config: the hyperparameters; ``config.branches`` has the same names.
        num_outputs: classes (logits) or regression targets.
    """

    def __init__(
        self, input_shapes: Mapping[str, tuple[int, ...]], config: ModelConfig, num_outputs: int
    ) -> None:
        super().__init__()
        self.branches = nn.ModuleDict()
        fused = 0
        for name, shape in input_shapes.items():
            module, width = branch_network(shape, config.branches[name])
            self.branches[name] = module
            fused += width
        head: HeadConfig = config.head
        self.head = mlp(fused, head.layers, head.units, head.dropout, head.activation, head.norm)
        self.out = nn.Linear(head.units if head.layers > 0 else fused, num_outputs)

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Map named inputs (each ``(N, ...)``) to outputs ``(N, num_outputs)``."""
        feats = [branch(inputs[name]) for name, branch in self.branches.items()]
        out: torch.Tensor = self.out(self.head(torch.cat(feats, dim=1)))
        return out
