"""The training loop: device choice, seeding, mixed precision, divergence checks, metrics.

The loop works the same on a CPU laptop and a GPU node. On CUDA it trains under autocast
(bf16 where the GPU supports it, else fp16 with a gradient scaler), reads batches from pinned
memory and copies them without blocking.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trial_image.data import TaskData
from trial_image.hparams import GlobalConfig, ModelConfig
from trial_image.metrics import MetricsReporter
from trial_image.models import MultiBranchNet

logger = logging.getLogger(__name__)

Precision = Literal["auto", "fp32", "bf16", "fp16"]
PRECISIONS: tuple[Precision, ...] = ("auto", "fp32", "bf16", "fp16")


class TrainingDivergedError(Exception):
    """The loss became NaN or infinite, or grew far beyond its starting value."""


class DeviceUnavailableError(Exception):
    """The requested device or precision cannot be used on this machine."""


@dataclass(frozen=True)
class RunOptions:
    """How to train, apart from the hyperparameters.

    Attributes:
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda`` (``cuda:N`` also works).
        precision: ``auto`` (bf16 on CUDA where supported, else fp16 on CUDA, fp32 on CPU).
        seed: seed of initialisation, shuffling and dropout.
        deterministic: ask torch for deterministic kernels.
        divergence_factor: fail when an epoch's mean training loss exceeds this multiple of the
            first batch's loss; 0 turns the check off (NaN and infinity always fail).
        num_threads: CPU threads for torch; None keeps torch's default.
    """

    device: str = "auto"
    precision: Precision = "auto"
    seed: int = 0
    deterministic: bool = True
    divergence_factor: float = 100.0
    num_threads: int | None = None


@dataclass(frozen=True)
class EpochResult:
    """Metrics of one epoch, as reported."""

    epoch: int
    metrics: Mapping[str, float]


def resolve_device(request: str) -> torch.device:
    """Turn ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` into a device that exists here.

    Raises:
        DeviceUnavailableError: CUDA requested but not usable.
    """
    if request == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(request)
    except RuntimeError:
        device = torch.device("meta")  # rejected below with the same message
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"argument --device: {request} requested but CUDA is not available "
                f"(torch {torch.__version__}, built for CUDA {torch.version.cuda})"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceUnavailableError(
                f"argument --device: {request} requested but only "
                f"{torch.cuda.device_count()} CUDA device(s) exist"
            )
    elif device.type != "cpu":
        raise DeviceUnavailableError(
            f"argument --device: {request!r} is not auto, cpu, cuda or cuda:N"
        )
    return device


def resolve_precision(request: Precision, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for full fp32.

    Raises:
        DeviceUnavailableError: fp16 or bf16 asked for where it does not work.
    """
    if device.type != "cuda":
        if request == "fp16":
            raise DeviceUnavailableError("argument --precision: fp16 needs a CUDA device")
        return torch.bfloat16 if request == "bf16" else None
    if request == "fp32":
        return None
    bf16 = torch.cuda.is_bf16_supported()
    if request == "bf16" and not bf16:
        raise DeviceUnavailableError("argument --precision: this GPU does not support bf16")
    if request == "fp16" or (request == "auto" and not bf16):
        return torch.float16
    return torch.bfloat16


def seed_everything(seed: int, *, deterministic: bool, device: torch.device) -> None:
    """Seed Python, NumPy and torch (all devices); optionally ask for deterministic kernels.

    The CPU kernels these models use are deterministic for a fixed thread count already;
    ``torch.use_deterministic_algorithms`` costs about two seconds of start-up, so it is only
    switched on for CUDA, where it matters (atomics in cuDNN and cuBLAS).
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic and device.type == "cuda":
        # cuBLAS needs this set before its first use to be deterministic.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def _loader(
    data: Mapping[str, np.ndarray],
    y: np.ndarray,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    pin: bool,
    drop_last: bool = False,
) -> DataLoader[tuple[torch.Tensor, ...]]:
    tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in data.values()]
    dataset = TensorDataset(*tensors, torch.from_numpy(np.ascontiguousarray(y)))
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        pin_memory=pin,
        drop_last=drop_last,
    )


def _optimizer(model: nn.Module, cfg: GlobalConfig) -> torch.optim.Optimizer:
    params = model.parameters()
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    return torch.optim.RMSprop(
        params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )


class Trainer:
    """Train a :class:`MultiBranchNet` on a :class:`TaskData` and report each epoch.

    Args:
        data: the task.
        config: the hyperparameters.
        options: device, precision, seed and checks.
        reporter: where each epoch's metrics go.
    """

    def __init__(
        self,
        data: TaskData,
        config: ModelConfig,
        options: RunOptions,
        reporter: MetricsReporter,
    ) -> None:
        self.data = data
        self.config = config
        self.options = options
        self.reporter = reporter
        self.device = resolve_device(options.device)
        self.amp_dtype = resolve_precision(options.precision, self.device)
        if options.num_threads is not None:
            torch.set_num_threads(options.num_threads)
        self.branches = list(data.branches)
        self.classification = data.task_type == "classification"
        if self.classification:
            self._y_mean = np.zeros(1, np.float32)
            self._y_std = np.ones(1, np.float32)
        else:
            # Regression trains on standardised targets; val-mse is in the data's own units.
            y = np.asarray(data.y_train, np.float32).reshape(len(data.y_train), -1)
            self._y_mean = y.mean(axis=0)
            self._y_std = y.std(axis=0) + 1e-8

    def describe_device(self) -> str:
        """Device and precision in words, for the log."""
        if self.device.type == "cuda":
            name = torch.cuda.get_device_name(self.device)
            where = f"cuda ({name}, torch {torch.__version__}, CUDA {torch.version.cuda})"
        else:
            where = f"cpu ({torch.get_num_threads()} threads, torch {torch.__version__})"
        precision = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
        return f"{where}, precision {precision[self.amp_dtype]}"

    def _targets(self, y: np.ndarray) -> np.ndarray:
        if self.classification:
            return np.asarray(y, np.int64)
        y2 = np.asarray(y, np.float32).reshape(len(y), -1)
        return ((y2 - self._y_mean) / self._y_std).astype(np.float32)

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        if self.amp_dtype is None:
            yield
            return
        with torch.autocast(device_type=self.device.type, dtype=self.amp_dtype):
            yield

    def _move(self, batch: list[torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        moved = [t.to(self.device, non_blocking=True) for t in batch]
        return dict(zip(self.branches, moved[:-1], strict=True)), moved[-1]

    def run(self) -> list[EpochResult]:
        """Train for the configured epochs, reporting after each.

        Returns:
            The metrics of every epoch.

        Raises:
            TrainingDivergedError: NaN or infinite loss, or growth beyond ``divergence_factor``.
        """
        opts, g = self.options, self.config.globals
        seed_everything(opts.seed, deterministic=opts.deterministic, device=self.device)
        model = MultiBranchNet(self.data.input_shapes, self.config, self.data.num_outputs).to(
            self.device
        )
        logger.info(
            "model: %d parameters; branches %s",
            sum(p.numel() for p in model.parameters()),
            ", ".join(f"{b} ({k})" for b, k in self.data.branches.items()),
        )
        n_train = len(self.data.y_train)
        batch_size = min(g.batch_size, n_train)
        if batch_size < g.batch_size:
            logger.warning(
                "batch_size %d > %d training rows; using %d", g.batch_size, n_train, n_train
            )
        pin = self.device.type == "cuda"
        train = _loader(
            self.data.x_train,
            self._targets(self.data.y_train),
            batch_size=batch_size,
            shuffle=True,
            seed=opts.seed,
            pin=pin,
            # A last batch of one row breaks batch norm in training mode.
            drop_last=n_train % batch_size == 1,
        )
        val = _loader(
            self.data.x_val,
            self._targets(self.data.y_val),
            batch_size=max(batch_size, 256),
            shuffle=False,
            seed=opts.seed,
            pin=pin,
        )
        optimizer = _optimizer(model, g)
        scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        loss_fn: nn.Module = nn.CrossEntropyLoss() if self.classification else nn.MSELoss()
        first_loss: float | None = None
        results: list[EpochResult] = []
        for epoch in range(1, g.epochs + 1):
            start = time.perf_counter()
            model.train()
            total = torch.zeros((), device=self.device)
            rows = 0
            for batch in train:
                inputs, target = self._move(batch)
                with self._autocast():
                    out = model(inputs)
                loss = loss_fn(out.float(), target)
                if first_loss is None:
                    first_loss = float(loss.detach())
                    self._check("train-loss", first_loss, epoch)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                total += loss.detach() * len(target)
                rows += len(target)
            train_loss = float(total) / rows
            self._check("train-loss", train_loss, epoch, reference=first_loss)
            metrics = {"epoch": float(epoch), "train-loss": train_loss}
            metrics.update(self._evaluate(model, val, loss_fn, epoch))
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            metrics["epoch-seconds"] = time.perf_counter() - start
            self.reporter.report(metrics, step=epoch)
            results.append(EpochResult(epoch, metrics))
        return results

    def _check(self, name: str, value: float, epoch: int, reference: float | None = None) -> None:
        if not math.isfinite(value):
            raise TrainingDivergedError(
                f"{name} is {value} in epoch {epoch}; the trial fails (try a lower lr, a "
                "smaller batch or another optimizer)"
            )
        factor = self.options.divergence_factor
        if reference is not None and factor > 0 and value > factor * max(reference, 1e-12):
            raise TrainingDivergedError(
                f"{name} {value:.6g} in epoch {epoch} is more than {factor:g} times the first "
                f"batch's {reference:.6g}; training diverged and the trial fails (try a lower lr)"
            )

    @torch.no_grad()
    def _evaluate(
        self,
        model: nn.Module,
        loader: DataLoader[tuple[torch.Tensor, ...]],
        loss_fn: nn.Module,
        epoch: int,
    ) -> dict[str, float]:
        model.eval()
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        correct = torch.zeros((), device=self.device, dtype=torch.float64)
        sq = torch.zeros((), device=self.device, dtype=torch.float64)
        ab = torch.zeros((), device=self.device, dtype=torch.float64)
        rows = 0
        std = torch.as_tensor(self._y_std, device=self.device, dtype=torch.float64)
        for batch in loader:
            inputs, target = self._move(batch)
            with self._autocast():
                out = model(inputs)
            out = out.float()
            loss_sum += loss_fn(out, target).double() * len(target)
            rows += len(target)
            if self.classification:
                correct += (out.argmax(dim=1) == target).sum().double()
            else:
                err = (out.double() - target.double()) * std
                sq += (err**2).sum()
                ab += err.abs().sum()
        val_loss = float(loss_sum) / rows
        self._check("val-loss", val_loss, epoch)
        if self.classification:
            return {"val-loss": val_loss, "val-accuracy": float(correct) / rows}
        outputs = int(self.data.num_outputs)
        return {
            "val-loss": val_loss,
            "val-mse": float(sq) / (rows * outputs),
            "val-mae": float(ab) / (rows * outputs),
        }
