"""Checkpoints for multi-fidelity tuning: a promoted trial continues where a shorter one stopped.

Under asynchronous successive halving a configuration first trains for a few epochs; a promoted
trial later trains the same configuration for more. With a checkpoint directory the first trial
saves everything an exact continuation needs, and the promoted one resumes from it and trains
only the extra epochs.

Layout: ``<dir>/<key>/epochs-<NNNNN>.pt``, one file per configuration and epoch count, so trials
of one configuration with different budgets never overwrite each other, and a trial asked for
``E`` epochs resumes from the file with the most epochs ``<= E`` (a longer one is never cut
back). ``key`` is the SHA-256 of the configuration without its budget (see :func:`identity`).

Safety: files are written to a temporary file in the same directory, fsynced and renamed over
the target (``os.replace``), so a reader sees the old file or the new one, never half of one;
two trials writing one file leave one of their (valid) files. Files are read with
``torch.load(weights_only=True)`` (tensors and plain containers only: a checkpoint cannot run
code) onto the CPU, whatever device wrote them. Anything wrong with a file raises
:class:`CheckpointError`, and the trainer then trains from scratch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

import trial_image
from trial_image.data import TaskData
from trial_image.hparams import ModelConfig

ENV_VAR = "DCSA_CHECKPOINT_DIR"
"""Environment variable naming the checkpoint directory (``--checkpoint-dir`` wins)."""

BUDGET = "epochs"
"""The hyperparameter that is the budget: left out of the key, it is what a resume extends."""

FORMAT = "dcsa-trial-checkpoint"
VERSION = 1
_FILE = re.compile(r"^epochs-(\d+)\.pt$")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_REQUIRED: Mapping[str, type] = {
    "model": dict,
    "optimizer": dict,
    "scaler": dict,
    "rng": dict,
    "first_loss": float,
    "history": list,
}


class CheckpointError(Exception):
    """A checkpoint cannot be used; the message says why, in one line."""


def data_digest(data: TaskData) -> str:
    """SHA-256 of the task's arrays (names, dtypes, shapes and bytes), train and validation.

    It stands for everything that shapes the data: the task or file, ``--max-samples``,
    ``--val-fraction``, ``--split-seed`` and ``--task-type``.
    """
    h = hashlib.sha256()
    parts = [
        *((f"x_train/{k}", v) for k, v in data.x_train.items()),
        ("y_train", data.y_train),
        *((f"x_val/{k}", v) for k, v in data.x_val.items()),
        ("y_val", data.y_val),
    ]
    for name, array in parts:
        a = np.ascontiguousarray(array)
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.reshape(-1).view(np.uint8).data)
    return h.hexdigest()


def identity(data: TaskData, config: ModelConfig, seed: int) -> dict[str, Any]:
    """What defines a configuration's training run, except its budget.

    Every hyperparameter but ``epochs``, the training seed, the data (name, type, branches and
    :func:`data_digest`) and the trial image's version. Not in it: how and where the run goes
    (device, precision, threads, determinism, the divergence check, metric outputs), so a
    checkpoint written on a GPU resumes on a CPU.

    Returns:
        A JSON-serialisable mapping.
    """
    hyper = {k: v for k, v in config.as_flat().items() if k != BUDGET}
    return {
        "format": FORMAT,
        "version": VERSION,
        "trial_image": trial_image.__version__,
        "data": {
            "name": data.name,
            "task_type": data.task_type,
            "branches": dict(data.branches),
            "digest": data_digest(data),
        },
        "hyperparameters": dict(sorted(hyper.items())),
        "seed": seed,
    }


def key_of(ident: Mapping[str, Any]) -> str:
    """The checkpoint key: SHA-256 (hex) of the identity as canonical JSON (sorted keys)."""
    text = json.dumps(ident, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` so that readers see the old file or the complete new one.

    Writes to a hidden temporary file in the same directory, fsyncs it, renames it over ``path``
    and fsyncs the directory. On failure the temporary file is removed and ``path`` is untouched.

    Args:
        path: the target file; its directory is created when missing.
        write: writes the content to the binary file it is given.

    Raises:
        OSError: the directory or file cannot be written (also anything ``write`` raises).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp's 0600 would hide the file from trials running under another UID.
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # The rename itself survives a node crash only once the directory is synced.
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def describe_error(exc: BaseException) -> str:
    """An exception as one short line: its type and the telling part of its message."""
    text = _ANSI.sub("", str(exc))
    # torch's weights-only refusal explains its options first; the reason follows this marker.
    marker = "WeightsUnpickler error:"
    refused = marker in text
    if refused:
        text = text.split(marker, 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    detail = lines[0] if lines else ""
    if refused:
        detail = "refused by the weights-only loader: " + detail.split(". ", 1)[0]
    detail = detail if len(detail) <= 200 else detail[:197] + "..."
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


class CheckpointStore:
    """The checkpoints of one configuration under a checkpoint directory.

    Args:
        root: the checkpoint directory (shared by every trial of an Experiment).
        ident: the configuration's :func:`identity`.
    """

    def __init__(self, root: str | Path, ident: Mapping[str, Any]) -> None:
        self.root = Path(root)
        self.identity = dict(ident)
        self.key = key_of(ident)
        self.directory = self.root / self.key

    def path(self, epochs: int) -> Path:
        """The file of the checkpoint after ``epochs`` epochs."""
        return self.directory / f"epochs-{epochs:05d}.pt"

    def candidates(self, max_epochs: int) -> list[tuple[int, Path]]:
        """Checkpoints with at most ``max_epochs`` epochs, most epochs first.

        Raises:
            CheckpointError: the directory exists but cannot be listed.
        """
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise CheckpointError(f"cannot list {self.directory}: {describe_error(exc)}") from None
        found = []
        for name in names:
            match = _FILE.match(name)
            if match and 1 <= int(match.group(1)) <= max_epochs:
                found.append((int(match.group(1)), self.directory / name))
        return sorted(found, reverse=True)

    def load(self, path: Path, epochs: int) -> dict[str, Any]:
        """Read a checkpoint onto the CPU and check its structure (not yet its shapes).

        Args:
            path: the file.
            epochs: the epoch count its name says.

        Returns:
            The checkpoint's fields.

        Raises:
            CheckpointError: unreadable, not a checkpoint, another configuration's, another
                epoch count than its name says, or a field missing or of the wrong type.
        """
        try:
            with warnings.catch_warnings():
                # torch warns about pickle protocols of files it then refuses: one line is enough.
                warnings.simplefilter("ignore")
                payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"cannot read it ({describe_error(exc)})") from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise CheckpointError("not a dcsa trial checkpoint")
        if payload.get("version") != VERSION:
            raise CheckpointError(
                f"checkpoint format version {payload.get('version')!r}, expected {VERSION}"
            )
        if payload.get("key") != self.key:
            raise CheckpointError("it belongs to another configuration (its key differs)")
        if payload.get("epoch") != epochs:
            raise CheckpointError(
                f"it holds epoch {payload.get('epoch')!r} but its name says {epochs}"
            )
        for name, kind in _REQUIRED.items():
            if not isinstance(payload.get(name), kind):
                raise CheckpointError(f"field {name!r} is missing or not a {kind.__name__}")
        return payload

    def save(self, epochs: int, state: Mapping[str, Any]) -> Path:
        """Write the checkpoint after ``epochs`` epochs atomically (see :func:`atomic_write`).

        Args:
            epochs: epochs trained.
            state: the trainer's state (model, optimizer, scaler, rng, first_loss, history...).

        Returns:
            The file written.

        Raises:
            OSError: it cannot be written.
            RuntimeError: torch cannot serialise it (also a full disk, as torch reports it).
        """
        payload = {
            **state,
            "format": FORMAT,
            "version": VERSION,
            "key": self.key,
            "identity": self.identity,
            "epoch": epochs,
        }
        target = self.path(epochs)
        atomic_write(target, lambda f: torch.save(payload, f))
        return target
