"""``dcsa run`` as a user runs it: killed with SIGKILL and resumed, and its non-terminal output."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from suggestion_service.local.commands import run_command
from suggestion_service.local.display import LiveReporter, status_line
from suggestion_service.local.runner import Snapshot
from suggestion_service.local.state import TrialRow

from .conftest import REPO, runs, write_yaml

Body = dict[str, Any]


def _state(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"trials": []}
    return data


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def _dcsa(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "suggestion_service", *args],
        cwd=REPO,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def test_kill_9_loses_no_completed_trial(
    make_body: Callable[..., Body], record: Path, tmp_path: Path
) -> None:
    exp = write_yaml(tmp_path / "exp.yaml", make_body(parallelTrialCount=1, maxTrialCount=6))
    state_file = tmp_path / "state" / "state.json"
    args = (
        "run",
        str(exp),
        "--state-dir",
        str(tmp_path / "state"),
        "--plain",
        "--workdir",
        str(tmp_path),
    )
    env = dict(os.environ, DCSA_TEST_SLEEP="0.6")
    proc = _dcsa(*args, env=env, log=tmp_path / "first.log")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        trials = _state(state_file)["trials"]
        done = [t for t in trials if t["condition"] == "Succeeded"]
        running = {t["name"] for t in trials if t["condition"] == "Running"}
        started = {r["trial"] for r in runs(record) if r["event"] == "start"}
        if len(done) >= 2 and running and running <= started:
            break
        time.sleep(0.05)
    else:
        proc.kill()
        raise AssertionError("no trial completed in time: " + (tmp_path / "first.log").read_text())
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    before = {t["name"]: t for t in _state(state_file)["trials"]}
    completed = {n: t for n, t in before.items() if t["condition"] == "Succeeded"}
    running = [n for n, t in before.items() if t["condition"] == "Running"]
    assert len(completed) >= 2 and len(running) == 1
    # the trial that was running dies with the runner (no orphan writing into its log)
    pid = next(r["pid"] for r in runs(record) if r["trial"] == running[0])
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)

    env["DCSA_TEST_SLEEP"] = "0.05"
    second = _dcsa(*args, env=env, log=tmp_path / "second.log")
    assert second.wait(timeout=120) == 0, (tmp_path / "second.log").read_text()
    out = (tmp_path / "second.log").read_text()
    assert f"resuming tiny: {len(completed)} finished trials kept, 1 interrupted to rerun" in out
    after = {t["name"]: t for t in _state(state_file)["trials"]}
    assert len(after) == 6
    for name, row in completed.items():
        assert after[name] == row  # kept as it was: same metrics, times, attempts
    assert after[running[0]]["attempts"] == 2
    assert after[running[0]]["condition"] == "Succeeded"
    starts = [r["trial"] for r in runs(record) if r["event"] == "start"]
    for name in completed:
        assert starts.count(name) == 1  # never rerun
    assert starts.count(running[0]) == 2


def test_non_terminal_output(make_body: Callable[..., Body], tmp_path: Path) -> None:
    exp = write_yaml(tmp_path / "exp.yaml", make_body(extra_args=("--sleep=0",)))
    out = io.StringIO()
    code = run_command(
        [exp], state_dir=tmp_path / "state", max_trials=4, parallel=1, workdir=tmp_path, out=out
    )
    text = out.getvalue()
    assert code == 0, text
    assert "\x1b" not in text  # no terminal control codes in a log
    lines = text.splitlines()
    assert lines[0] == (
        f"running tiny with random: 4 trials, 1 at a time; trials run in "
        f"{tmp_path}; state in {tmp_path / 'state'}/"
    )
    started = [
        ln for ln in lines if re.fullmatch(r"trial tiny-[a-z][0-9]*-[a-z0-9]{8} started: x=\S+", ln)
    ]
    finished = [
        ln
        for ln in lines
        if re.fullmatch(
            r"trial tiny-[a-z][0-9]*-[a-z0-9]{8} Succeeded: loss=\d\.\d{6} \(\d+\.\ds\)", ln
        )
    ]
    assert len(started) == 4 and len(finished) == 4
    assert "Best trials (min loss)" in text
    assert re.search(r"best trial: tiny-[a-z][0-9]*-[a-z0-9]{8} loss=\d\.\d{6} \(x=\S+\)", text)
    assert "trials: Succeeded 4" in lines
    assert (
        "stopped: Succeeded (ExperimentMaxTrialsReached): all 4 trials finished (maxTrialCount=4)"
    ) in lines
    # the same state dir again: nothing left to do, the same answer
    out2 = io.StringIO()
    assert (
        run_command([exp], state_dir=tmp_path / "state", max_trials=4, workdir=tmp_path, out=out2)
        == 0
    )
    assert "resuming tiny: 4 finished trials kept, 0 interrupted to rerun" in out2.getvalue()
    assert "started:" not in out2.getvalue()


def test_invalid_experiment_is_not_run(make_body: Callable[..., Body], tmp_path: Path) -> None:
    body = make_body(maxTrialCount=0)
    exp = write_yaml(tmp_path / "exp.yaml", body)
    out = io.StringIO()
    assert run_command([exp], state_dir=tmp_path / "state", out=out) == 1
    assert out.getvalue() == (
        f"{exp} (tiny): 3 problems\n"
        "  - spec.maxTrialCount: Invalid value: 0: must be greater than 0\n"
        "  - spec.maxFailedTrialCount: Invalid value: 3: should be less than or equal to "
        "spec.maxTrialCount\n"
        "  - spec.parallelTrialCount: Invalid value: 2: should be less than or equal to "
        "spec.maxTrialCount\n"
    )
    assert not (tmp_path / "state").exists()


def test_live_panel_renders_progress() -> None:
    row = TrialRow(
        name="tiny-abc", assignments={"x": "0.5"}, condition="Succeeded", metrics={"loss": "0.125"}
    )
    snap = Snapshot(
        experiment="tiny",
        algorithm="gp-bo",
        max_trials=10,
        succeeded=3,
        failed=1,
        killed=0,
        running=2,
        queued=0,
        best=row,
        best_value=0.125,
        metric="loss",
        elapsed=75.0,
    )
    assert status_line(snap) == (
        "tiny [gp-bo]  done 4/10  running 2  failed 1  best loss=0.125 (tiny-abc)  elapsed 0:01:15"
    )
    buf = io.StringIO()
    live = LiveReporter(Console(file=buf, force_terminal=True, width=120))
    live.event("trial tiny-abc Succeeded: loss=0.125 (1.0s)")
    live.progress(snap)
    live.close()
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buf.getvalue())
    assert "done 4/10  running 2  failed 1  best loss=0.125 (tiny-abc)" in plain
    assert "trial tiny-abc Succeeded: loss=0.125 (1.0s)" in plain


def test_ctrl_c_stops_cleanly(make_body: Callable[..., Body], record: Path, tmp_path: Path) -> None:
    exp = write_yaml(tmp_path / "exp.yaml", make_body())
    state_file = tmp_path / "state" / "state.json"
    env = dict(os.environ, DCSA_TEST_SLEEP="60")
    proc = _dcsa(
        "run",
        str(exp),
        "--state-dir",
        str(tmp_path / "state"),
        "--workdir",
        str(tmp_path),
        env=env,
        log=tmp_path / "out.log",
    )
    deadline = time.monotonic() + 60
    while len({r["trial"] for r in runs(record)}) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    out = (tmp_path / "out.log").read_text()
    assert "SIGINT: stopping; running trials are terminated and will rerun on resume" in out
    assert "stopped: Interrupted (Interrupted): stopped by the user; run again to resume" in out
    state = _state(state_file)
    assert state["status"] == "Interrupted"
    assert [t["condition"] for t in state["trials"]] == ["Created", "Created"]
    for r in runs(record):
        assert not _alive(r["pid"])


def test_run_refuses_bad_options_and_several_experiments(
    make_body: Callable[..., Body], tmp_path: Path
) -> None:
    one = write_yaml(tmp_path / "one.yaml", make_body())
    out = io.StringIO()
    assert run_command([one], parallel=0, out=out) == 2
    assert out.getvalue() == "error: --parallel must be at least 1, got 0\n"
    other = make_body()
    other["metadata"]["name"] = "other"
    two = write_yaml(tmp_path / "two.yaml", make_body(), other)
    out = io.StringIO()
    assert run_command([two], state_dir=tmp_path / "state", out=out) == 2
    assert out.getvalue() == (
        f"error: {two}#0 (tiny), {two}#1 (other): `dcsa run` runs one Experiment; give a file "
        "with only one\n"
    )


def test_quadratic_example_runs(tmp_path: Path) -> None:
    out = io.StringIO()
    exp = REPO / "examples" / "quadratic" / "experiment.yaml"
    code = run_command([exp], state_dir=tmp_path / "state", max_trials=4, workdir=REPO, out=out)
    assert code == 0, out.getvalue()
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert [t["condition"] for t in state["trials"]] == ["Succeeded"] * 4
    assert all(t["labels"]["dcsa.io/algorithm"] == "gp-bo" for t in state["trials"])
