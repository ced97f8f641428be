"""Fixtures of the trial image tests; registers the ``gpu`` marker and nothing global."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from trial_image.train import main

# Small data and one thread so one epoch takes well under a second after torch's warm-up.
TINY = ("--epochs=1", "--num-threads=1", "--batch-size=32", "--lr=0.01")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "gpu: needs a CUDA device (skipped without one; run with -m gpu on a GPU node)"
    )


@dataclass(frozen=True)
class Run:
    """Exit code and captured output of one in-process trial."""

    code: int
    out: str
    err: str


@pytest.fixture
def run_trial(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """Call ``trial_image.train.main`` with the given arguments and capture its output."""

    def run(*args: str) -> Run:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run
