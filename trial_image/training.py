"""The training loop: device choice, seeding, mixed precision, divergence checks, metrics.

The loop works the same on a CPU laptop and a GPU node. On CUDA it trains under autocast
(bf16 where the GPU supports it, else fp16 with a gradient scaler), reads batches from pinned
memory and copies them without blocking. With a checkpoint store (:mod:`trial_image.checkpoint`)
a run resumes from the checkpoint of its configuration with the most epochs up to its budget and
saves one after its last epoch.
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
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trial_image.checkpoint import CheckpointError, CheckpointStore, describe_error
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


def _span(first: int, last: int) -> str:
    return f"epoch {first}" if first == last else f"epochs {first}-{last}"


def _generator(loader: DataLoader[tuple[torch.Tensor, ...]]) -> torch.Generator:
    generator = loader.generator
    assert isinstance(generator, torch.Generator)  # _loader always gives one
    return generator


@dataclass(frozen=True)
class _Setup:
    """What one run trains with; built afresh by :meth:`Trainer._build`."""

    model: MultiBranchNet
    train: DataLoader[tuple[torch.Tensor, ...]]
    val: DataLoader[tuple[torch.Tensor, ...]]
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler


@dataclass(frozen=True)
class _Progress:
    """Where training starts: epochs done, the first batch's loss and the metrics so far."""

    epoch: int
    first_loss: float | None
    history: list[dict[str, float]]


def _check_model_state(model: nn.Module, state: Mapping[str, Any]) -> None:
    # load_state_dict copies what fits before it raises: check everything first.
    own = model.state_dict()
    if set(state) != set(own):
        missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        raise CheckpointError(f"model tensors differ (missing {missing[:3]}, extra {extra[:3]})")
    for name, tensor in own.items():
        saved = state[name]
        if not isinstance(saved, torch.Tensor) or saved.shape != tensor.shape:
            shape = tuple(saved.shape) if isinstance(saved, torch.Tensor) else type(saved)
            raise CheckpointError(
                f"model tensor {name!r} has shape {shape}, expected {tuple(tensor.shape)}"
            )
        if saved.dtype != tensor.dtype:
            raise CheckpointError(
                f"model tensor {name!r} is {saved.dtype}, expected {tensor.dtype}"
            )


def _check_optimizer_state(optimizer: torch.optim.Optimizer, state: Mapping[str, Any]) -> None:
    # Optimizer.load_state_dict checks group sizes but not the shapes of its buffers, which
    # would only fail (or broadcast silently) in the first step.
    params = [p for group in optimizer.param_groups for p in group["params"]]
    groups = state.get("param_groups")
    per_param = state.get("state")
    if not isinstance(groups, list) or not isinstance(per_param, dict):
        raise CheckpointError("optimizer state is malformed")
    own_groups = optimizer.state_dict()["param_groups"]
    if len(groups) != len(own_groups) or any(
        not isinstance(g, dict) or set(g) != set(o) for g, o in zip(groups, own_groups, strict=True)
    ):
        raise CheckpointError("optimizer state is of another optimizer")
    for index, buffers in per_param.items():
        if not isinstance(index, int) or not 0 <= index < len(params):
            raise CheckpointError(f"optimizer state names parameter {index!r}")
        if not isinstance(buffers, dict):
            raise CheckpointError("optimizer state is malformed")
        for name, value in buffers.items():
            shape = params[index].shape
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != shape:
                raise CheckpointError(
                    f"optimizer buffer {name!r} of parameter {index} has shape "
                    f"{tuple(value.shape)}, expected {tuple(shape)}"
                )


def _check_history(history: list[Any], epochs: int) -> list[dict[str, float]]:
    out: list[dict[str, float]] = []
    for i, record in enumerate(history, start=1):
        if not isinstance(record, dict) or record.get("epoch") != float(i):
            raise CheckpointError(f"metric history entry {i} is malformed")
        values = {str(k): float(v) for k, v in record.items()}
        if not all(math.isfinite(v) for v in values.values()):
            raise CheckpointError(f"metric history entry {i} is not finite")
        out.append(values)
    if len(out) != epochs:
        raise CheckpointError(f"metric history has {len(out)} epochs, expected {epochs}")
    return out


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
        checkpoints: this configuration's checkpoints, or None to train without.
    """

    def __init__(
        self,
        data: TaskData,
        config: ModelConfig,
        options: RunOptions,
        reporter: MetricsReporter,
        *,
        checkpoints: CheckpointStore | None = None,
    ) -> None:
        self.data = data
        self.config = config
        self.options = options
        self.reporter = reporter
        self.checkpoints = checkpoints
        self._batch_size = min(config.globals.batch_size, len(data.y_train))
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

    def _build(self) -> _Setup:
        """Seed, then build model, loaders, optimizer and scaler as a fresh run does."""
        opts, g = self.options, self.config.globals
        seed_everything(opts.seed, deterministic=opts.deterministic, device=self.device)
        model = MultiBranchNet(self.data.input_shapes, self.config, self.data.num_outputs).to(
            self.device
        )
        pin = self.device.type == "cuda"
        n_train = len(self.data.y_train)
        train = _loader(
            self.data.x_train,
            self._targets(self.data.y_train),
            batch_size=self._batch_size,
            shuffle=True,
            seed=opts.seed,
            pin=pin,
            # A last batch of one row breaks batch norm in training mode.
            drop_last=n_train % self._batch_size == 1,
        )
        val = _loader(
            self.data.x_val,
            self._targets(self.data.y_val),
            batch_size=max(self._batch_size, 256),
            shuffle=False,
            seed=opts.seed,
            pin=pin,
        )
        optimizer = _optimizer(model, g)
        scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        return _Setup(model=model, train=train, val=val, optimizer=optimizer, scaler=scaler)

    def run(self) -> list[EpochResult]:
        """Train for the configured epochs, reporting after each.

        With a checkpoint store, first resume from the checkpoint of this configuration with the
        most epochs up to ``epochs`` (its epochs' metrics are reported again, as recorded), train
        the remaining epochs and save a checkpoint after the last one.

        Returns:
            The metrics of every epoch (resumed ones included).

        Raises:
            TrainingDivergedError: NaN or infinite loss, or growth beyond ``divergence_factor``.
        """
        g = self.config.globals
        n_train = len(self.data.y_train)
        if self._batch_size < g.batch_size:
            logger.warning(
                "batch_size %d > %d training rows; using %d", g.batch_size, n_train, n_train
            )
        setup = self._build()
        logger.info(
            "model: %d parameters; branches %s",
            sum(p.numel() for p in setup.model.parameters()),
            ", ".join(f"{b} ({k})" for b, k in self.data.branches.items()),
        )
        start = _Progress(epoch=0, first_loss=None, history=[])
        if self.checkpoints is not None:
            setup, start = self._resume(setup, self.checkpoints)
        results: list[EpochResult] = []
        for record in start.history:  # the resumed epochs, as the earlier trial reported them
            self.reporter.report(record, step=int(record["epoch"]))
            results.append(EpochResult(int(record["epoch"]), record))
        model, optimizer, scaler = setup.model, setup.optimizer, setup.scaler
        loss_fn: nn.Module = nn.CrossEntropyLoss() if self.classification else nn.MSELoss()
        first_loss = start.first_loss
        for epoch in range(start.epoch + 1, g.epochs + 1):
            begin = time.perf_counter()
            model.train()
            total = torch.zeros((), device=self.device)
            rows = 0
            for batch in setup.train:
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
            metrics.update(self._evaluate(model, setup.val, loss_fn, epoch))
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            metrics["epoch-seconds"] = time.perf_counter() - begin
            self.reporter.report(metrics, step=epoch)
            results.append(EpochResult(epoch, metrics))
        if self.checkpoints is not None and g.epochs > start.epoch and first_loss is not None:
            self._save(self.checkpoints, setup, first_loss, [dict(r.metrics) for r in results])
        return results

    def _resume(self, setup: _Setup, store: CheckpointStore) -> tuple[_Setup, _Progress]:
        """Restore the best usable checkpoint into ``setup``; a fresh start when there is none.

        Every unusable file gives one warning and the next older one is tried; a file that
        failed half-way through being applied leaves a rebuilt (fresh) ``setup`` behind.
        """
        budget = self.config.globals.epochs
        try:
            candidates = store.candidates(budget)
        except CheckpointError as exc:
            logger.warning("checkpoint: %s", exc)
            candidates = []
        for epochs, path in candidates:
            try:
                payload = store.load(path, epochs)
            except CheckpointError as exc:
                logger.warning("checkpoint: ignoring %s: %s", path, exc)
                continue
            try:
                progress = self._restore(setup, payload, epochs)
            except CheckpointError as exc:
                logger.warning("checkpoint: ignoring %s: %s", path, exc)
                setup = self._build()  # the model or optimizer may hold half of it
                continue
            rest = f"training {_span(epochs + 1, budget)}" if epochs < budget else "nothing left"
            logger.info("checkpoint: resumed from %s (%s); %s", path, _span(1, epochs), rest)
            return setup, progress
        logger.info(
            "checkpoint: training from scratch (no usable checkpoint of this configuration with "
            "at most %d epochs in %s)",
            budget,
            store.directory,
        )
        return setup, _Progress(epoch=0, first_loss=None, history=[])

    def _restore(self, setup: _Setup, payload: Mapping[str, Any], epochs: int) -> _Progress:
        """Load model, optimizer, scaler and random states; check shapes before loading.

        Raises:
            CheckpointError: anything does not fit this configuration.
        """
        try:
            _check_model_state(setup.model, payload["model"])
            _check_optimizer_state(setup.optimizer, payload["optimizer"])
            history = _check_history(payload["history"], epochs)
            first_loss = float(payload["first_loss"])
            if not math.isfinite(first_loss):
                raise CheckpointError(f"first_loss is {first_loss}")
            setup.model.load_state_dict(payload["model"])
            setup.optimizer.load_state_dict(payload["optimizer"])
            # A disabled scaler (CPU, bf16, fp32) saves {}; an enabled one keeps its defaults then.
            if setup.scaler.is_enabled() and payload["scaler"]:
                setup.scaler.load_state_dict(payload["scaler"])
            self._set_rng(setup, payload["rng"])
        except CheckpointError:
            raise
        except Exception as exc:
            raise CheckpointError(describe_error(exc)) from None
        return _Progress(epoch=epochs, first_loss=first_loss, history=history)

    def _set_rng(self, setup: _Setup, rng: Mapping[str, Any]) -> None:
        torch.set_rng_state(rng["torch"])
        # CUDA's generator (dropout on the GPU) only continues on CUDA; another device's
        # stream cannot be continued exactly anyway.
        if self.device.type == "cuda" and rng.get("cuda") is not None:
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        _generator(setup.train).set_state(rng["train_loader"])
        _generator(setup.val).set_state(rng["val_loader"])
        version, internal, gauss = rng["python"]
        random.setstate((int(version), tuple(int(v) for v in internal), gauss))
        np_rng = rng["numpy"]
        np.random.set_state(
            (
                "MT19937",
                np_rng["keys"].numpy().astype(np.uint32),
                int(np_rng["pos"]),
                int(np_rng["has_gauss"]),
                float(np_rng["cached_gaussian"]),
            )
        )

    def _save(
        self,
        store: CheckpointStore,
        setup: _Setup,
        first_loss: float,
        history: list[dict[str, float]],
    ) -> None:
        epochs = self.config.globals.epochs
        _, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state(legacy=True)
        state = {
            "model": setup.model.state_dict(),
            "optimizer": setup.optimizer.state_dict(),
            "scaler": setup.scaler.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": (
                    torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
                ),
                "train_loader": _generator(setup.train).get_state(),
                "val_loader": _generator(setup.val).get_state(),
                "python": random.getstate(),
                "numpy": {
                    "keys": torch.from_numpy(np.asarray(np_keys, np.int64)),
                    "pos": int(np_pos),
                    "has_gauss": int(np_has_gauss),
                    "cached_gaussian": float(np_cached),
                },
            },
            "first_loss": first_loss,
            "history": history,
            "saved_by": {
                "device": self.describe_device(),
                "torch": str(torch.__version__),  # TorchVersion is not a plain str
            },
        }
        try:
            path = store.save(epochs, state)
        except (OSError, RuntimeError) as exc:
            logger.warning(
                "checkpoint: cannot save epoch %d in %s (%s); this trial's metrics stand, a "
                "promoted trial will train from scratch",
                epochs,
                store.directory,
                describe_error(exc),
            )
            return
        logger.info("checkpoint: saved %s to %s", _span(1, epochs), path)

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
