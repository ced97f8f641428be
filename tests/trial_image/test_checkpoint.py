"""Checkpoints for promoted trials: exact resume, no retraining, corruption, atomic writes, key."""

from __future__ import annotations

import hashlib
import json
import pickle
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import pytest
import torch

from tests.trial_image import katib
from tests.trial_image.conftest import Run
from trial_image import checkpoint
from trial_image.data import BUILTIN_TASKS, load_builtin
from trial_image.hparams import config_from_namespace
from trial_image.models import MultiBranchNet
from trial_image.train import build_parser

# Batch norm (running statistics), dropout (the global RNG) and shuffling (the loader's RNG):
# everything an exact continuation has to carry over.
BASE = (
    "--device=cpu",
    "--task=diabetes",
    "--max-samples=150",
    "--num-threads=1",
    "--batch-size=32",
    "--lr=0.01",
    "--demo__norm=batch",
    "--serum__dropout=0.3",
    "--seed=5",
)


def _lines(out: str) -> list[str]:
    """The metric lines a run prints, without the wall times."""
    return [line for line in out.splitlines() if not line.startswith("epoch-seconds=")]


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if " WARNING " in line]


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _only_dir(root: Path) -> Path:
    (key_dir,) = [p for p in root.iterdir() if p.is_dir()]
    return key_dir


@pytest.fixture
def training_batches(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts forward passes in training mode (one per training batch)."""
    count = [0]
    forward = MultiBranchNet.forward

    def counted(self: MultiBranchNet, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        count[0] += 1 if self.training else 0
        return forward(self, inputs)

    monkeypatch.setattr(MultiBranchNet, "forward", counted)
    yield count


@pytest.mark.parametrize(
    "args",
    [
        BASE,
        # a CNN task, SGD with momentum buffers
        (
            "--device=cpu",
            "--task=digits",
            "--max-samples=150",
            "--num-threads=1",
            "--batch-size=32",
            "--lr=0.05",
            "--optimizer=sgd",
            "--top__norm=batch",
            "--seed=1",
        ),
    ],
    ids=["diabetes-adam-batchnorm", "digits-sgd"],
)
def test_three_then_six_epochs_equals_six_straight(
    run_trial: Callable[..., Run], tmp_path: Path, args: Sequence[str]
) -> None:
    straight = run_trial(*args, "--epochs=6")
    first = run_trial(*args, "--epochs=3", f"--checkpoint-dir={tmp_path}")
    resumed = run_trial(*args, "--epochs=6", f"--checkpoint-dir={tmp_path}")
    assert straight.code == first.code == resumed.code == 0, resumed.err
    # Every metric line, epochs 1-3 (replayed) and 4-6 (trained), is the straight run's.
    assert _lines(resumed.out) == _lines(straight.out)
    assert _lines(first.out) == _lines(straight.out)[: len(_lines(first.out))]
    assert katib.series(resumed.out, "epoch") == [1, 2, 3, 4, 5, 6]
    assert "checkpoint: training from scratch" in first.err
    assert "(epochs 1-3); training epochs 4-6" in resumed.err
    assert not _warnings(resumed.err)


def test_resume_trains_only_the_extra_epochs(
    run_trial: Callable[..., Run], tmp_path: Path, training_batches: list[int]
) -> None:
    ck = f"--checkpoint-dir={tmp_path}"
    assert run_trial(*BASE, "--epochs=3", ck).code == 0
    per_epoch = training_batches[0] // 3
    assert per_epoch == 4  # 120 training rows in batches of 32

    training_batches[0] = 0
    resumed = run_trial(*BASE, "--epochs=5", ck)
    assert resumed.code == 0, resumed.err
    assert training_batches[0] == 2 * per_epoch  # epochs 4 and 5 only
    resumed_lines = [line for line in resumed.err.splitlines() if "checkpoint: resumed" in line]
    assert len(resumed_lines) == 1
    assert "epochs-00003.pt (epochs 1-3); training epochs 4-5" in resumed_lines[0]

    # The same budget again (a retried trial): replayed, nothing trained, nothing rewritten.
    before = (_only_dir(tmp_path) / "epochs-00005.pt").stat().st_mtime_ns
    training_batches[0] = 0
    again = run_trial(*BASE, "--epochs=5", ck)
    assert again.code == 0
    assert training_batches[0] == 0
    assert _lines(again.out) == _lines(resumed.out)
    assert "(epochs 1-5); nothing left" in again.err
    assert (_only_dir(tmp_path) / "epochs-00005.pt").stat().st_mtime_ns == before


def test_a_longer_checkpoint_is_never_cut_back(
    run_trial: Callable[..., Run], tmp_path: Path, training_batches: list[int]
) -> None:
    ck = f"--checkpoint-dir={tmp_path}"
    assert run_trial(*BASE, "--epochs=2", ck).code == 0
    assert run_trial(*BASE, "--epochs=6", ck).code == 0
    names = [p.name for p in _files(tmp_path)]
    assert names == ["epochs-00002.pt", "epochs-00006.pt"]  # one file per budget

    # 4 epochs: the 6-epoch file is not used; the 2-epoch one is, and 2 epochs are trained.
    training_batches[0] = 0
    four = run_trial(*BASE, "--epochs=4", ck)
    assert four.code == 0
    assert "epochs-00002.pt (epochs 1-2); training epochs 3-4" in four.err
    assert training_batches[0] == 2 * 4
    assert _lines(four.out) == _lines(run_trial(*BASE, "--epochs=4").out)

    # 1 epoch: every checkpoint is longer, so a fresh start.
    one = run_trial(*BASE, "--epochs=1", ck)
    assert "checkpoint: training from scratch" in one.err
    assert _lines(one.out) == _lines(run_trial(*BASE, "--epochs=1").out)


def test_missing_directory_trains_from_scratch_and_creates_it(
    run_trial: Callable[..., Run], tmp_path: Path
) -> None:
    root = tmp_path / "not" / "there"
    run = run_trial(*BASE, "--epochs=2", f"--checkpoint-dir={root}")
    assert run.code == 0, run.err
    assert not _warnings(run.err)
    status = [line for line in run.err.splitlines() if "checkpoint: " in line]
    status = [line for line in status if "checkpoint: saved" not in line]
    assert len(status) == 1 and "training from scratch" in status[0]
    assert [p.name for p in _files(root)] == ["epochs-00002.pt"]


class _RunsCode:
    """Unpickling this would create a file: what a malicious checkpoint could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def _truncate(path: Path, _: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garbage(path: Path, _: Path) -> None:
    # seeded: which error torch raises depends on the first bytes (unpickling or decoding)
    path.write_bytes(np.random.default_rng(0).bytes(4096))


def _empty(path: Path, _: Path) -> None:
    path.write_bytes(b"")


def _unreadable(path: Path, _: Path) -> None:
    # A directory where the file should be: open() fails (chmod does not stop root).
    path.unlink()
    path.mkdir()


def _code(path: Path, tmp: Path) -> None:
    torch.save({"format": checkpoint.FORMAT, "evil": _RunsCode(tmp / "pwned")}, path)


def _plain_pickle(path: Path, _: Path) -> None:
    path.write_bytes(pickle.dumps({"format": checkpoint.FORMAT}))


def _edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    change(payload)
    torch.save(payload, path)


def _wrong_shapes(path: Path, tmp: Path) -> None:
    # Another configuration's weights (wider demo branch) under this configuration's key.
    other = torch.load(tmp / "other.pt", map_location="cpu", weights_only=True)
    mine = torch.load(path, map_location="cpu", weights_only=True)
    other["key"] = mine["key"]
    torch.save(other, path)


def _other_key(path: Path, tmp: Path) -> None:
    (tmp / "other.pt").replace(path)


def _bad_rng(path: Path, _: Path) -> None:
    # Fails after model and optimizer were loaded: the fresh start must not keep them.
    _edit(path, lambda p: p["rng"].__setitem__("train_loader", torch.zeros(3, dtype=torch.uint8)))


def _wrong_epoch(path: Path, _: Path) -> None:
    _edit(path, lambda p: p.__setitem__("epoch", 2))


def _short_history(path: Path, _: Path) -> None:
    _edit(path, lambda p: p.__setitem__("history", p["history"][:2]))


def _no_optimizer(path: Path, _: Path) -> None:
    _edit(path, lambda p: p.pop("optimizer"))


def _optimizer_buffer_shape(path: Path, _: Path) -> None:
    def change(p: dict[str, Any]) -> None:
        p["optimizer"]["state"][0]["exp_avg"] = torch.zeros(7)

    _edit(path, change)


def _future_version(path: Path, _: Path) -> None:
    _edit(path, lambda p: p.__setitem__("version", checkpoint.VERSION + 1))


CORRUPTIONS: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "truncated": (_truncate, "cannot read it"),
    "garbage": (_garbage, "cannot read it ("),
    "empty": (_empty, "cannot read it"),
    "unreadable": (_unreadable, "cannot read it (IsADirectoryError"),
    "runs-code": (_code, "refused by the weights-only loader: Unsupported global"),
    "plain-pickle": (_plain_pickle, "cannot read it"),
    "wrong-shapes": (_wrong_shapes, "has shape"),
    "other-config": (_other_key, "belongs to another configuration"),
    "bad-rng-state": (_bad_rng, "RuntimeError"),
    "wrong-epoch": (_wrong_epoch, "holds epoch 2 but its name says 3"),
    "short-history": (_short_history, "metric history has 2 epochs, expected 3"),
    "no-optimizer": (_no_optimizer, "field 'optimizer' is missing"),
    "optimizer-shape": (_optimizer_buffer_shape, "optimizer buffer 'exp_avg'"),
    "future-version": (_future_version, "checkpoint format version 2, expected 1"),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_unusable_checkpoint_trains_from_scratch_with_one_warning(
    run_trial: Callable[..., Run], tmp_path: Path, name: str
) -> None:
    corrupt, reason = CORRUPTIONS[name]
    root, other = tmp_path / "ck", tmp_path / "other"
    ck = f"--checkpoint-dir={root}"
    assert run_trial(*BASE, "--epochs=3", ck).code == 0
    assert run_trial(*BASE, "--epochs=3", "--demo__units=48", f"--checkpoint-dir={other}").code == 0
    _files(other)[0].replace(tmp_path / "other.pt")
    path = _only_dir(root) / "epochs-00003.pt"
    corrupt(path, tmp_path)

    run = run_trial(*BASE, "--epochs=5", ck)
    assert run.code == 0, run.err
    assert "Traceback" not in run.err
    (warning,) = _warnings(run.err)
    assert f"checkpoint: ignoring {path}: " in warning and reason in warning
    assert "checkpoint: training from scratch" in run.err
    assert not (tmp_path / "pwned").exists()
    # A fresh start is a fresh run: the same metrics as without any checkpoint.
    assert _lines(run.out) == _lines(run_trial(*BASE, "--epochs=5").out)
    assert (_only_dir(root) / "epochs-00005.pt").is_file()


def test_an_unusable_newest_checkpoint_falls_back_to_an_older_one(
    run_trial: Callable[..., Run], tmp_path: Path
) -> None:
    ck = f"--checkpoint-dir={tmp_path}"
    assert run_trial(*BASE, "--epochs=2", ck).code == 0
    assert run_trial(*BASE, "--epochs=4", ck).code == 0
    _truncate(_only_dir(tmp_path) / "epochs-00004.pt", tmp_path)
    run = run_trial(*BASE, "--epochs=6", ck)
    assert run.code == 0
    (warning,) = _warnings(run.err)
    assert "epochs-00004.pt: cannot read it" in warning
    assert "epochs-00002.pt (epochs 1-2); training epochs 3-6" in run.err
    assert _lines(run.out) == _lines(run_trial(*BASE, "--epochs=6").out)


def test_a_checkpoint_that_cannot_be_written_leaves_the_trial_green(
    run_trial: Callable[..., Run], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "replace", no_space)
    run = run_trial(*BASE, "--epochs=2", f"--checkpoint-dir={tmp_path}")
    assert run.code == 0
    (warning,) = _warnings(run.err)
    assert "checkpoint: cannot save epoch 2" in warning and "No space left" in warning
    assert katib.series(run.out, "epoch") == [1, 2]
    assert _files(tmp_path) == []  # no temporary file left behind


# ---- atomic writes --------------------------------------------------------------------------


def test_a_crash_before_the_rename_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "epochs-00003.pt"
    checkpoint.atomic_write(target, lambda f: f.write(b"old complete file"))

    def dies_half_way(f: IO[bytes]) -> None:
        f.write(b"new, half")
        raise KeyboardInterrupt  # the process is killed while writing

    with pytest.raises(KeyboardInterrupt):
        checkpoint.atomic_write(target, dies_half_way)
    assert target.read_bytes() == b"old complete file"
    assert _files(tmp_path) == [target]


def test_a_writer_killed_before_the_rename_leaves_only_a_hidden_temp_file(
    run_trial: Callable[..., Run], tmp_path: Path
) -> None:
    # What SIGKILL between write and rename leaves: a temporary file, which readers ignore.
    ck = f"--checkpoint-dir={tmp_path}"
    assert run_trial(*BASE, "--epochs=2", ck).code == 0
    key_dir = _only_dir(tmp_path)
    (key_dir / ".epochs-00004.pt.abc123.tmp").write_bytes(b"half of a chec")
    run = run_trial(*BASE, "--epochs=4", ck)
    assert not _warnings(run.err)
    assert "epochs-00002.pt (epochs 1-2)" in run.err


def test_concurrent_writers_of_one_key_leave_a_valid_file(tmp_path: Path) -> None:
    target = tmp_path / "epochs-00003.pt"
    n_writers, rounds = 4, 8
    errors: list[BaseException] = []
    seen: set[int] = set()
    done = threading.Event()

    def writer(i: int) -> None:
        payload = {"writer": i, "weights": torch.full((200_000,), float(i))}
        try:
            for _ in range(rounds):
                checkpoint.atomic_write(target, lambda f: torch.save(payload, f))
        except BaseException as exc:
            errors.append(exc)

    def reader() -> None:
        while not done.is_set():
            if not target.exists():
                continue
            try:
                got = torch.load(target, weights_only=True)
                assert torch.equal(got["weights"], torch.full((200_000,), float(got["writer"])))
                seen.add(got["writer"])
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(n_writers)]
    read = threading.Thread(target=reader)
    read.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    read.join()
    assert errors == []
    assert seen  # the reader did read while the writers wrote
    final = torch.load(target, weights_only=True)
    assert torch.equal(final["weights"], torch.full((200_000,), float(final["writer"])))
    assert _files(tmp_path) == [target]


# ---- the key --------------------------------------------------------------------------------


def _identity(*argv: str) -> dict[str, Any]:
    """The identity a trial computes from its command line."""
    first, _ = build_parser(add_help=False).parse_known_args(argv)
    ns = build_parser(BUILTIN_TASKS[first.task][1]).parse_args(argv)
    data = load_builtin(
        ns.task, val_fraction=ns.val_fraction, split_seed=ns.split_seed, max_samples=ns.max_samples
    )
    return checkpoint.identity(data, config_from_namespace(ns, data.branches), ns.seed)


def _key(*argv: str) -> str:
    return checkpoint.key_of(_identity(*argv))


KEY_ARGS = ("--task=diabetes", "--max-samples=100", "--lr=0.001", "--epochs=3")


def test_the_key_leaves_out_the_budget_and_how_the_run_goes() -> None:
    key = _key(*KEY_ARGS)
    assert _key(*KEY_ARGS, "--epochs=27") == key
    # run options: where and how, not what is trained
    assert _key(*KEY_ARGS, "--device=cpu", "--num-threads=2", "--precision=fp32") == key
    assert _key(*KEY_ARGS, "--no-deterministic", "--divergence-factor=0") == key
    assert _key(*KEY_ARGS, "--metrics-timestamps", "--log-level=ERROR") == key
    # spelling: the parsed values count, not the strings or their order
    assert _key("--lr=1e-3", "--epochs=1", "--max-samples=100", "--task=diabetes") == key
    assert _key(*KEY_ARGS, "--batch_size=64", "--demo__units=32") == key  # the defaults


@pytest.mark.parametrize(
    "change",
    [
        "--lr=0.002",
        "--batch-size=16",
        "--optimizer=sgd",
        "--weight-decay=0.1",
        "--momentum=0.5",
        "--demo__units=33",
        "--serum__activation=gelu",
        "--head__layers=2",
        "--head__dropout=0.2",
        "--seed=1",
        "--max-samples=101",
        "--split-seed=1",
        "--val-fraction=0.25",
    ],
)
def test_the_key_holds_everything_else(change: str) -> None:
    assert _key(*KEY_ARGS, change) != _key(*KEY_ARGS)


def test_the_key_tells_tasks_apart() -> None:
    assert _key("--task=digits", "--max-samples=100") != _key(
        "--task=diabetes", "--max-samples=100"
    )


def test_the_key_is_the_hash_of_the_identity_written_into_the_file(
    run_trial: Callable[..., Run], tmp_path: Path
) -> None:
    run = run_trial(*KEY_ARGS, "--num-threads=1", f"--checkpoint-dir={tmp_path}")
    assert run.code == 0
    ident = _identity(*KEY_ARGS)
    assert "epochs" not in ident["hyperparameters"] and "lr" in ident["hyperparameters"]
    canonical = json.dumps(ident, sort_keys=True, separators=(",", ":"))
    key = hashlib.sha256(canonical.encode()).hexdigest()
    assert f"checkpoint key {key}" in run.err
    path = tmp_path / key / "epochs-00003.pt"
    payload = torch.load(path, weights_only=True)
    assert payload["key"] == key and payload["identity"] == ident and payload["epoch"] == 3


# ---- flag and environment -------------------------------------------------------------------


def test_the_environment_variable_names_the_directory_and_the_flag_wins(
    run_trial: Callable[..., Run], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_dir, flag_dir = tmp_path / "env", tmp_path / "flag"
    monkeypatch.setenv(checkpoint.ENV_VAR, str(env_dir))
    assert run_trial(*BASE, "--epochs=1").code == 0
    assert [p.name for p in _files(env_dir)] == ["epochs-00001.pt"]
    assert run_trial(*BASE, "--epochs=2", f"--checkpoint-dir={flag_dir}").code == 0
    assert [p.name for p in _files(flag_dir)] == ["epochs-00002.pt"]
    assert [p.name for p in _files(env_dir)] == ["epochs-00001.pt"]
    off = run_trial(*BASE, "--epochs=3", "--checkpoint-dir=")
    assert off.code == 0 and "checkpoint" not in off.err
    assert len(_files(env_dir)) == 1


def test_without_a_directory_nothing_is_saved(
    run_trial: Callable[..., Run], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(checkpoint.ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    run = run_trial(*BASE, "--epochs=1")
    assert run.code == 0 and "checkpoint" not in run.err
    assert list(tmp_path.iterdir()) == []
