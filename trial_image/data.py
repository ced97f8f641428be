"""Data for the trial: built-in offline tasks and user data from a ``.npz`` file.

All loaders return a :class:`TaskData`: one input array per branch (named), a target, and a
fixed train/validation split. The split depends only on ``split_seed`` (never on the training
seed), so every trial of an Experiment is scored on the same validation set.

User data (``--data file.npz``) holds:

- ``x_<branch>``: the input of branch ``<branch>``, one array per branch. Its shape picks the
  branch kind: ``(N, F)`` a dense network, ``(N, C, L)`` a 1-D CNN, ``(N, C, H, W)`` a 2-D CNN.
  Real numbers (float or integer dtypes), all finite.
- ``y``: the target, ``(N,)``; integer class labels ``0..K-1`` for classification, real numbers
  (``(N,)`` or ``(N, T)``) for regression.
- optionally ``val_x_<branch>`` and ``val_y``: an explicit validation set (all or none);
  otherwise ``val_fraction`` of the rows are held out.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from trial_image.hparams import GROUP_SEPARATOR, HEAD_GROUP, BranchKind

TaskType = Literal["classification", "regression"]
TASK_TYPES: tuple[TaskType, ...] = ("classification", "regression")
FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

BUILTIN_TASKS: Mapping[str, tuple[TaskType, Mapping[str, BranchKind]]] = {
    "digits": ("classification", {"top": "cnn2d", "bottom": "cnn2d"}),
    "diabetes": ("regression", {"demo": "dense", "serum": "dense"}),
    "mnist1d": ("classification", {"signal": "cnn1d", "summary": "dense"}),
}
"""Built-in task name to (task type, branch name to branch kind)."""

INPUT_PREFIX = "x_"
TARGET = "y"
VAL_PREFIX = "val_"
_BRANCH_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_KIND_BY_NDIM: Mapping[int, BranchKind] = {2: "dense", 3: "cnn1d", 4: "cnn2d"}


class DataError(Exception):
    """The data cannot be used; the message names the file or array and what is wrong."""


@dataclass(frozen=True)
class TaskData:
    """Inputs and targets of one task, already split.

    Attributes:
        name: the task name (built-in name or the file name).
        task_type: classification or regression.
        branches: branch name to branch kind, in input order.
        x_train: branch name to training inputs, float32, first axis the sample.
        y_train: training targets: int64 labels, or float32 of shape (N, T).
        x_val: branch name to validation inputs.
        y_val: validation targets.
        num_outputs: number of classes, or regression targets T.
    """

    name: str
    task_type: TaskType
    branches: Mapping[str, BranchKind]
    x_train: Mapping[str, FloatArray]
    y_train: npt.NDArray[np.generic]
    x_val: Mapping[str, FloatArray]
    y_val: npt.NDArray[np.generic]
    num_outputs: int

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-sample input shape of each branch."""
        return {name: tuple(x.shape[1:]) for name, x in self.x_train.items()}


def _split_indices(n: int, val_fraction: float, seed: int) -> tuple[IntArray, IntArray]:
    n_val = round(n * val_fraction)
    if not 1 <= n_val < n:
        raise DataError(
            f"--val-fraction {val_fraction:g} leaves {n_val} validation rows out of {n}; "
            "need at least one row on each side"
        )
    order = np.random.default_rng(seed).permutation(n)
    return order[n_val:], order[:n_val]


def _subsample(n: int, max_samples: int | None, seed: int) -> IntArray:
    """Row indices to keep, in order; all rows when ``max_samples`` is None or larger."""
    if max_samples is None or max_samples >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed + 1).permutation(n)[:max_samples])


def _finish(
    *,
    name: str,
    task_type: TaskType,
    branches: Mapping[str, BranchKind],
    x: Mapping[str, FloatArray],
    y: npt.NDArray[np.generic],
    val_fraction: float,
    split_seed: int,
    max_samples: int | None,
) -> TaskData:
    n = len(y)
    keep = _subsample(n, max_samples, split_seed)
    train, val = _split_indices(len(keep), val_fraction, split_seed)
    tr, va = keep[train], keep[val]
    num_outputs = int(y.max()) + 1 if task_type == "classification" else _targets(y)
    return TaskData(
        name=name,
        task_type=task_type,
        branches=dict(branches),
        x_train={b: x[b][tr] for b in branches},
        y_train=y[tr],
        x_val={b: x[b][va] for b in branches},
        y_val=y[va],
        num_outputs=num_outputs,
    )


def _targets(y: npt.NDArray[np.generic]) -> int:
    return 1 if y.ndim == 1 else int(y.shape[1])


def load_builtin(
    task: str, *, val_fraction: float = 0.2, split_seed: int = 0, max_samples: int | None = None
) -> TaskData:
    """Load a built-in task; none of them needs the network.

    Args:
        task: ``digits``, ``diabetes`` or ``mnist1d``.
        val_fraction: share of rows held out for validation (digits, diabetes).
        split_seed: seed of the subsample and the split.
        max_samples: keep at most this many rows before splitting (fast runs).

    Returns:
        The task's data.

    Raises:
        DataError: unknown task, or a missing optional package.
    """
    if task not in BUILTIN_TASKS:
        raise DataError(f"unknown task {task!r}; built-in tasks: {', '.join(BUILTIN_TASKS)}")
    task_type, branches = BUILTIN_TASKS[task]
    if task == "mnist1d":
        return _mnist1d(branches, split_seed=split_seed, max_samples=max_samples)
    from sklearn import datasets  # type: ignore[import-untyped]

    x: dict[str, FloatArray]
    y: npt.NDArray[np.generic]
    if task == "digits":
        # 8x8 images with values 0..16: the top and bottom halves are two 1x4x8 inputs.
        bunch = datasets.load_digits()
        images = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]
        x = {"top": images[:, :, :4, :], "bottom": images[:, :, 4:, :]}
        y = bunch.target.astype(np.int64)
    else:
        # Ten standardised features: demographics/body (age, sex, bmi, bp) and six blood serum
        # measurements (s1..s6); the target is disease progression after a year.
        bunch = datasets.load_diabetes()
        data = bunch.data.astype(np.float32)
        x = {"demo": data[:, :4], "serum": data[:, 4:]}
        y = bunch.target.astype(np.float32)
    return _finish(
        name=task,
        task_type=task_type,
        branches=branches,
        x=x,
        y=y,
        val_fraction=val_fraction,
        split_seed=split_seed,
        max_samples=max_samples,
    )


def summary_features(signals: FloatArray) -> FloatArray:
    """Hand-made summary features of 1-D signals, input of mnist1d's dense branch.

    Args:
        signals: ``(N, L)`` array.

    Returns:
        ``(N, 16)`` float32: mean, std, min, max, argmin and argmax positions (as a fraction of
        the length), mean absolute difference, zero-crossing rate, and the magnitudes of the
        first eight Fourier coefficients after the constant one.
    """
    n, length = signals.shape
    diffs = np.diff(signals, axis=1)
    crossings = (np.signbit(signals[:, 1:]) != np.signbit(signals[:, :-1])).mean(axis=1)
    spectrum = np.abs(np.fft.rfft(signals, axis=1))[:, 1:9] / length
    stats = np.stack(
        [
            signals.mean(axis=1),
            signals.std(axis=1),
            signals.min(axis=1),
            signals.max(axis=1),
            signals.argmin(axis=1) / length,
            signals.argmax(axis=1) / length,
            np.abs(diffs).mean(axis=1),
            crossings,
        ],
        axis=1,
    )
    out: FloatArray = np.concatenate([stats, spectrum], axis=1).astype(np.float32)
    assert out.shape == (n, 16)
    return out


def _mnist1d(
    branches: Mapping[str, BranchKind], *, split_seed: int, max_samples: int | None
) -> TaskData:
    try:
        from mnist1d.data import get_dataset_args, make_dataset  # type: ignore[import-untyped]
    except ImportError as exc:
        raise DataError(
            "task mnist1d needs the mnist1d package: pip install mnist1d (or dcsa[trial])"
        ) from exc
    # make_dataset generates the data locally (the package's get_dataset downloads it, which
    # fails offline). It reseeds numpy's global generator; training reseeds afterwards.
    args = get_dataset_args()
    args.seed = 42 + split_seed
    if max_samples is not None:
        args.num_samples = max(max_samples, 50)
    raw = make_dataset(args)
    signals = np.concatenate([raw["x"], raw["x_test"]]).astype(np.float32)
    y = np.concatenate([raw["y"], raw["y_test"]]).astype(np.int64)
    n_train = len(raw["y"])
    feats = summary_features(signals)
    mean, std = feats[:n_train].mean(axis=0), feats[:n_train].std(axis=0) + 1e-6
    feats = ((feats - mean) / std).astype(np.float32)
    x = {"signal": signals[:, None, :], "summary": feats}
    keep = _subsample(len(y), max_samples, split_seed)
    tr, va = keep[keep < n_train], keep[keep >= n_train]
    return TaskData(
        name="mnist1d",
        task_type="classification",
        branches=dict(branches),
        x_train={b: x[b][tr] for b in branches},
        y_train=y[tr],
        x_val={b: x[b][va] for b in branches},
        y_val=y[va],
        num_outputs=10,
    )


def load_npz(
    path: str | Path,
    *,
    task_type: TaskType | None = None,
    val_fraction: float = 0.2,
    split_seed: int = 0,
    max_samples: int | None = None,
) -> TaskData:
    """Load user data from a ``.npz`` file (see the module docstring for the array names).

    Args:
        path: the file, e.g. on a volume mounted into the trial pod.
        task_type: classification or regression; None infers it from ``y``'s dtype (integers:
            classification, floats: regression).
        val_fraction: share of rows held out when the file has no ``val_*`` arrays.
        split_seed: seed of the subsample and the split.
        max_samples: keep at most this many training rows (fast runs).

    Returns:
        The task's data.

    Raises:
        DataError: missing file or arrays, wrong dtypes or shapes, non-finite values, bad
            labels; the message names the array.
    """
    p = Path(path)
    where = f"--data {p}"
    if not p.is_file():
        raise DataError(f"{where}: no such file")
    try:
        with np.load(p, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{where}: not a readable .npz file ({exc})") from exc

    branch_names = [k[len(INPUT_PREFIX) :] for k in arrays if k.startswith(INPUT_PREFIX)]
    if not branch_names:
        raise DataError(
            f"{where}: no input arrays; expected one 'x_<branch>' array per branch "
            f"(found: {', '.join(sorted(arrays)) or 'nothing'})"
        )
    if TARGET not in arrays:
        raise DataError(f"{where}: missing target array 'y'")
    for b in branch_names:
        if not _BRANCH_NAME.match(b) or GROUP_SEPARATOR in b or b == HEAD_GROUP:
            raise DataError(
                f"{where}: array 'x_{b}': branch names start with a letter, use letters, digits "
                f"and single underscores, contain no '__' and are not '{HEAD_GROUP}'"
            )
    y = arrays[TARGET]
    kind = task_type or _infer_task_type(y, where)
    y = _check_target(y, kind, where, TARGET)
    branches: dict[str, BranchKind] = {}
    x: dict[str, FloatArray] = {}
    for b in branch_names:
        branches[b], x[b] = _check_input(arrays[INPUT_PREFIX + b], len(y), where, INPUT_PREFIX + b)

    val_keys = [k for k in arrays if k.startswith(VAL_PREFIX)]
    expected_val = {VAL_PREFIX + INPUT_PREFIX + b for b in branch_names} | {VAL_PREFIX + TARGET}
    unknown = sorted(
        set(arrays) - expected_val - {INPUT_PREFIX + b for b in branch_names} - {TARGET}
    )
    if unknown:
        raise DataError(
            f"{where}: unexpected array {unknown[0]!r}; validation arrays are named "
            f"'val_x_<branch>' and 'val_y' for the branches {', '.join(branch_names)}"
        )
    if not val_keys:
        return _finish(
            name=p.name,
            task_type=kind,
            branches=branches,
            x=x,
            y=y,
            val_fraction=val_fraction,
            split_seed=split_seed,
            max_samples=max_samples,
        )
    missing = sorted(expected_val - set(val_keys))
    if missing:
        raise DataError(f"{where}: missing array {missing[0]!r} (validation arrays: all or none)")
    y_val = _check_target(arrays[VAL_PREFIX + TARGET], kind, where, VAL_PREFIX + TARGET)
    x_val: dict[str, FloatArray] = {}
    for b in branch_names:
        name = VAL_PREFIX + INPUT_PREFIX + b
        _, x_val[b] = _check_input(arrays[name], len(y_val), where, name)
        if x_val[b].shape[1:] != x[b].shape[1:]:
            raise DataError(
                f"{where}: array {name!r} has per-sample shape {x_val[b].shape[1:]}, "
                f"but 'x_{b}' has {x[b].shape[1:]}"
            )
    if kind == "regression" and y_val.shape[1:] != y.shape[1:]:
        raise DataError(f"{where}: array 'val_y' has shape {y_val.shape}, 'y' has {y.shape}")
    keep = _subsample(len(y), max_samples, split_seed)
    n_out = max(int(y.max()), int(y_val.max())) + 1 if kind == "classification" else _targets(y)
    return TaskData(
        name=p.name,
        task_type=kind,
        branches=branches,
        x_train={b: x[b][keep] for b in branch_names},
        y_train=y[keep],
        x_val=x_val,
        y_val=y_val,
        num_outputs=n_out,
    )


def _infer_task_type(y: npt.NDArray[np.generic], where: str) -> TaskType:
    if np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_):
        return "classification"
    if np.issubdtype(y.dtype, np.floating):
        return "regression"
    raise DataError(
        f"{where}: array 'y' has dtype {y.dtype}; expected integer labels (classification) "
        "or floats (regression)"
    )


def _check_target(
    y: npt.NDArray[np.generic], kind: TaskType, where: str, name: str
) -> npt.NDArray[np.generic]:
    if kind == "classification":
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(
                f"{where}: array {name!r} has dtype {y.dtype}; classification needs integer "
                "class labels 0..K-1"
            )
        if y.ndim != 1:
            raise DataError(f"{where}: array {name!r} has shape {y.shape}; expected (N,)")
        if len(y) == 0:
            raise DataError(f"{where}: array {name!r} is empty")
        if int(y.min()) < 0:
            raise DataError(f"{where}: array {name!r} has negative labels; expected 0..K-1")
        return y.astype(np.int64)
    if not (np.issubdtype(y.dtype, np.floating) or np.issubdtype(y.dtype, np.integer)):
        raise DataError(
            f"{where}: array {name!r} has dtype {y.dtype}; regression needs real numbers"
        )
    if y.ndim not in (1, 2) or len(y) == 0:
        raise DataError(f"{where}: array {name!r} has shape {y.shape}; expected (N,) or (N, T)")
    out = y.astype(np.float32)
    if not np.isfinite(out).all():
        raise DataError(f"{where}: array {name!r} contains NaN or infinity")
    return out


def _check_input(
    a: npt.NDArray[np.generic], n: int, where: str, name: str
) -> tuple[BranchKind, FloatArray]:
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise DataError(
            f"{where}: array {name!r} has dtype {a.dtype}; inputs must be real numbers "
            "(float or integer)"
        )
    if a.ndim not in _KIND_BY_NDIM:
        raise DataError(
            f"{where}: array {name!r} has shape {a.shape}; expected (N, F) for a dense branch, "
            "(N, C, L) for a 1-D CNN or (N, C, H, W) for a 2-D CNN"
        )
    if a.shape[0] != n:
        raise DataError(
            f"{where}: array {name!r} has {a.shape[0]} rows but the target has {n}; "
            "every input needs one row per target"
        )
    if 0 in a.shape[1:]:
        raise DataError(f"{where}: array {name!r} has shape {a.shape}; no axis may be empty")
    out = a.astype(np.float32)
    if not np.isfinite(out).all():
        raise DataError(f"{where}: array {name!r} contains NaN or infinity")
    return _KIND_BY_NDIM[a.ndim], out
