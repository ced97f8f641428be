"""User data from a ``.npz`` file: a round trip for each branch kind, and every error."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.trial_image import katib
from tests.trial_image.conftest import TINY, Run
from trial_image.data import DataError, load_npz

N = 60


def _arrays(n: int = N, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "x_img": rng.normal(size=(n, 1, 6, 6)).astype(np.float32),
        "x_sig": rng.normal(size=(n, 2, 12)),  # float64 is fine: converted to float32
        "x_tab": rng.integers(0, 5, size=(n, 5)),  # integer inputs are fine too
        "y": rng.integers(0, 3, size=n),
    }


def _save(tmp_path: Path, name: str = "data.npz", **arrays: Any) -> Path:
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def _hyperparameters(err: str) -> dict[str, Any]:
    match = re.search(r"hyperparameters: (\{.*\})", err)
    assert match, err
    parsed: dict[str, Any] = json.loads(match.group(1))
    return parsed


def test_classification_round_trip_builds_one_branch_per_array(
    tmp_path: Path, run_trial: Callable[..., Run]
) -> None:
    path = _save(tmp_path, **_arrays())
    run = run_trial(
        "--data", str(path), "--img__filters=4", "--sig__kernel=5", "--tab__units=8", *TINY
    )
    assert run.code == 0, run.err
    assert len(katib.series(run.out, "val-accuracy")) == 1
    assert "task data.npz (classification): 48 training and 12 validation rows" in run.err
    assert "branches img (cnn2d), sig (cnn1d), tab (dense)" in run.err
    hp = _hyperparameters(run.err)
    assert (hp["img__filters"], hp["sig__kernel"], hp["tab__units"]) == (4, 5, 8)


def test_regression_with_explicit_validation_arrays(
    tmp_path: Path, run_trial: Callable[..., Run]
) -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(50, 3)).astype(np.float32)
    va = rng.normal(size=(10, 3)).astype(np.float32)
    path = _save(
        tmp_path,
        x_a=a,
        y=np.stack([a.sum(1), a[:, 0]], axis=1),
        val_x_a=va,
        val_y=np.stack([va.sum(1), va[:, 0]], axis=1),
    )
    run = run_trial("--data", str(path), *TINY)
    assert run.code == 0, run.err
    assert "(regression): 50 training and 10 validation rows" in run.err
    assert len(katib.series(run.out, "val-mse")) == 1


def test_task_type_flag_overrides_the_dtype_guess(tmp_path: Path) -> None:
    arrays = _arrays()
    path = _save(tmp_path, **arrays)
    assert load_npz(path).task_type == "classification"
    regression = load_npz(path, task_type="regression")
    assert regression.task_type == "regression"
    assert regression.y_train.dtype == np.float32
    assert regression.num_outputs == 1


def test_loaded_arrays_keep_their_values(tmp_path: Path) -> None:
    arrays = _arrays()
    data = load_npz(_save(tmp_path, **arrays), val_fraction=0.25, split_seed=3)
    assert len(data.y_train) == 45 and len(data.y_val) == 15
    rows = np.concatenate([data.x_train["tab"], data.x_val["tab"]])
    expected = arrays["x_tab"].astype(np.float32)
    # Same rows, split without loss or duplication.
    assert sorted(map(tuple, rows)) == sorted(map(tuple, expected))
    assert data.input_shapes == {"img": (1, 6, 6), "sig": (2, 12), "tab": (5,)}
    assert data.num_outputs == int(arrays["y"].max()) + 1


def _bad(**changes: Any) -> dict[str, Any]:
    arrays = _arrays()
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    return arrays


BAD_CASES: list[tuple[str, dict[str, Any], str, str | None]] = [
    ("missing target", _bad(y=None), "missing target array 'y'", None),
    (
        "no inputs",
        {"y": np.zeros(4, np.int64)},
        "no input arrays; expected one 'x_<branch>' array per branch (found: y)",
        None,
    ),
    (
        "row mismatch",
        _bad(x_tab=np.zeros((N - 1, 5))),
        "array 'x_tab' has 59 rows but the target has 60",
        None,
    ),
    (
        "string input",
        _bad(x_tab=np.array([["a"] * 5] * N)),
        "array 'x_tab' has dtype <U1; inputs must be real numbers",
        None,
    ),
    ("bool input", _bad(x_tab=np.zeros((N, 5), bool)), "array 'x_tab' has dtype bool", None),
    (
        "5-D input",
        _bad(x_img=np.zeros((N, 1, 2, 2, 2))),
        "array 'x_img' has shape (60, 1, 2, 2, 2)",
        None,
    ),
    ("1-D input", _bad(x_tab=np.zeros(N)), "array 'x_tab' has shape (60,); expected (N, F)", None),
    ("empty axis", _bad(x_tab=np.zeros((N, 0))), "array 'x_tab' has shape (60, 0)", None),
    (
        "NaN input",
        _bad(x_tab=np.full((N, 5), np.nan)),
        "array 'x_tab' contains NaN or infinity",
        None,
    ),
    (
        "float labels for classification",
        _bad(y=np.linspace(0, 1, N)),
        "array 'y' has dtype float64; classification needs integer class labels 0..K-1",
        "classification",
    ),
    ("negative labels", _bad(y=np.arange(N) - 1), "array 'y' has negative labels", None),
    (
        "2-D labels",
        _bad(y=np.zeros((N, 2), np.int64)),
        "array 'y' has shape (60, 2); expected (N,)",
        None,
    ),
    (
        "string target",
        _bad(y=np.array(["a"] * N)),
        "array 'y' has dtype <U1; expected integer labels",
        None,
    ),
    (
        "infinite regression target",
        _bad(y=np.full(N, np.inf)),
        "array 'y' contains NaN or infinity",
        None,
    ),
    (
        "bad branch name",
        {**_arrays(), "x_a__b": np.zeros((N, 2))},
        "array 'x_a__b': branch names start with a letter",
        None,
    ),
    ("reserved branch name", {**_arrays(), "x_head": np.zeros((N, 2))}, "are not 'head'", None),
    (
        "unexpected array",
        {**_arrays(), "labels": np.zeros(N)},
        "unexpected array 'labels'; validation arrays are named 'val_x_<branch>' and 'val_y'",
        None,
    ),
    (
        "partial validation set",
        {**_arrays(), "val_y": np.zeros(5, np.int64)},
        "missing array 'val_x_img' (validation arrays: all or none)",
        None,
    ),
    (
        "validation shape differs",
        {
            **_arrays(),
            "val_y": np.zeros(5, np.int64),
            "val_x_img": np.zeros((5, 1, 6, 7)),
            "val_x_sig": np.zeros((5, 2, 12)),
            "val_x_tab": np.zeros((5, 5)),
        },
        "array 'val_x_img' has per-sample shape (1, 6, 7), but 'x_img' has (1, 6, 6)",
        None,
    ),
]


@pytest.mark.parametrize(
    ("arrays", "message", "task_type"),
    [case[1:] for case in BAD_CASES],
    ids=[case[0] for case in BAD_CASES],
)
def test_bad_npz_fails_with_exit_3_naming_the_array(
    tmp_path: Path,
    run_trial: Callable[..., Run],
    arrays: dict[str, Any],
    message: str,
    task_type: str | None,
) -> None:
    path = _save(tmp_path, **arrays)
    with pytest.raises(DataError) as excinfo:
        load_npz(path, task_type=task_type)  # type: ignore[arg-type]
    assert message in str(excinfo.value)
    assert str(excinfo.value).startswith(f"--data {path}: ")
    extra = ["--task-type", task_type] if task_type else []
    run = run_trial("--data", str(path), *extra, *TINY)
    assert run.code == 3
    assert f"dcsa-train: error: --data {path}: " in run.err
    assert message in run.err
    assert run.out == ""


def test_missing_file_and_not_an_npz(tmp_path: Path, run_trial: Callable[..., Run]) -> None:
    missing = tmp_path / "nope.npz"
    run = run_trial("--data", str(missing), *TINY)
    assert run.code == 3
    assert f"--data {missing}: no such file" in run.err
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip")
    run = run_trial("--data", str(garbage), *TINY)
    assert run.code == 3
    assert f"--data {garbage}: not a readable .npz file" in run.err


def test_pickled_object_arrays_are_refused(tmp_path: Path) -> None:
    # allow_pickle=False: a data file on a shared volume must not run code.
    path = tmp_path / "objects.npz"
    np.savez(path, x_a=np.array([{"a": 1}] * 4, dtype=object), y=np.zeros(4, np.int64))
    with pytest.raises(DataError, match=r"not a readable \.npz file"):
        load_npz(path)
