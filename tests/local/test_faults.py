"""The local runner's faults (issue 12, section 5, and the exhausted space of section 1): each is
one line naming the path and the cause, exit 2, never a traceback; the saved state survives."""

from __future__ import annotations

import errno
import io
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from suggestion_service.local import state as state_mod
from suggestion_service.local.commands import run_command
from suggestion_service.local.experiment import Document, parse_experiment
from suggestion_service.local.runner import EXHAUSTED, Runner, RunOptions

from .conftest import write_yaml

Body = dict[str, Any]


def _run(body: Body, tmp_path: Path, state_dir: Path) -> tuple[int, str]:
    out = io.StringIO()
    code = run_command(
        [write_yaml(tmp_path / "exp.yaml", body)],
        state_dir=state_dir,
        workdir=tmp_path,
        live=False,
        out=out,
    )
    return code, out.getvalue()


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert "Traceback" not in text, text
    return lines[-1]


@pytest.mark.parametrize(
    ("content", "shown"), [("[]", "holds []"), ("null", "holds null"), ("{", "not JSON")]
)
def test_state_file_that_is_not_a_saved_run(
    make_body: Callable[..., Body], tmp_path: Path, content: str, shown: str
) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "state.json").write_text(content)
    code, out = _run(make_body(), tmp_path, state_dir)
    line = _last_line(out)
    assert code == 2, out
    assert line.startswith(f"error: {state_dir / 'state.json'}: cannot read: "), line
    assert shown in line
    assert (state_dir / "state.json").read_text() == content  # left as it was


@pytest.mark.parametrize(
    ("where", "err", "cause"),
    [
        ("mkdir", errno.EROFS, "Read-only file system"),
        ("mkstemp", errno.EACCES, "Permission denied"),
        ("mkstemp", errno.ENOSPC, "No space left on device"),
    ],
)
def test_unwritable_state_directory(
    make_body: Callable[..., Body],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
    err: int,
    cause: str,
) -> None:
    """A read-only or full file system, injected where the runner first writes (the tests may
    run as root, for whom a chmod'ed directory stays writable)."""
    state_dir = tmp_path / "state"

    def fail(*_a: Any, **_k: Any) -> Any:
        raise OSError(err, os.strerror(err))

    if where == "mkdir":
        monkeypatch.setattr(Path, "mkdir", fail)
    else:
        monkeypatch.setattr(state_mod.tempfile, "mkstemp", fail)
    code, out = _run(make_body(), tmp_path, state_dir)
    line = _last_line(out)
    assert code == 2, out
    assert line.startswith(f"error: {state_dir}"), line
    assert line.endswith(cause) or f"{cause};" in line, line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_state_directory(make_body: Callable[..., Body], tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    (state_dir / "logs").mkdir(parents=True)
    state_dir.chmod(0o500)
    try:
        code, out = _run(make_body(), tmp_path, state_dir)
    finally:
        state_dir.chmod(0o700)
    assert code == 2, out
    assert _last_line(out).startswith(f"error: {state_dir}"), out
    assert "Permission denied" in _last_line(out)


def test_disk_full_in_the_middle_of_a_run(
    make_body: Callable[..., Body], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first writes succeed; then ENOSPC. The run stops with one line, the trials are
    stopped, and state.json is the last complete version (valid JSON, resumable)."""
    state_dir = tmp_path / "state"
    real = tempfile.mkstemp
    calls = {"n": 0}

    def mkstemp(*a: Any, **k: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > 8:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(*a, **k)

    monkeypatch.setattr(state_mod.tempfile, "mkstemp", mkstemp)
    body = make_body(extra_args=("--sleep=0.5",))
    code, out = _run(body, tmp_path, state_dir)
    line = _last_line(out)
    assert code == 2, out
    assert line.startswith("error: "), line
    assert str(state_dir) in line and "No space left on device" in line, line
    assert "the last saved state is kept" in line
    saved = json.loads((state_dir / "state.json").read_text())
    assert saved["trials"], saved
    monkeypatch.setattr(state_mod.tempfile, "mkstemp", real)
    code, out = _run(body, tmp_path, state_dir)  # resumes and finishes
    assert code == 0, out
    assert "resuming tiny" in out


def test_metrics_unavailable_says_what_was_seen(
    make_body: Callable[..., Body], stub: Any, tmp_path: Path
) -> None:
    body = make_body(extra_args=("--nan=0", "--silent=1"), parallelTrialCount=1, maxTrialCount=2)
    exp = parse_experiment(Document("x.yaml", body))
    opts = RunOptions(state_dir=tmp_path / "state", workdir=tmp_path, poll_interval=0.02)
    result = Runner(exp, stub, opts).run()
    messages = [t.message for t in result.trials]
    assert messages == [
        "objective metric 'loss' has no finite number in the trial's output: "
        'saw "loss=nan other=1"',
        "objective metric 'loss' not found in the trial's output",
    ]
    assert [t.condition for t in result.trials] == ["MetricsUnavailable"] * 2


def test_exhausted_search_space_stops_with_a_clear_line(
    make_body: Callable[..., Body], tmp_path: Path
) -> None:
    """Three points, six trials wanted: the service answers FAILED_PRECONDITION (Katib would
    keep the Experiment Running); `dcsa run` stops with the reason and what to do."""
    body = make_body(
        parameters=[
            {"name": "x", "parameterType": "int", "feasibleSpace": {"min": "0", "max": "2"}}
        ],
        maxTrialCount=6,
        parallelTrialCount=1,
    )
    state_dir = tmp_path / "state"
    code, out = _run(body, tmp_path, state_dir)
    text = " ".join(out.split())  # the summary is wrapped at 120 columns
    assert code == 0, out
    assert re.search(
        rf"stopped: Succeeded \({EXHAUSTED}\): GetSuggestions: FAILED_PRECONDITION: the search "
        r"space has 3 distinct points and 3 are already evaluated, pending or suggested; 1 more "
        r"were requested; in Katib the Experiment would stay Running \(alert "
        r"DcsaSearchSpaceExhausted\): lower maxTrialCount to the number of points or widen the "
        r"space elapsed:",
        text,
    ), out
    saved = json.loads((state_dir / "state.json").read_text())
    assert saved["stopReason"] == EXHAUSTED
    assert len(saved["trials"]) == 3
