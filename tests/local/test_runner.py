"""End to end through the real service over gRPC: parallel trials, a failing trial, a trial
without its metric, the goal, maxFailedTrialCount, Ctrl-C and resume."""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from suggestion_service._generated import api_pb2 as pb
from suggestion_service.local.controller import (
    GOAL_REACHED,
    MAX_FAILED,
    MAX_TRIALS,
    merge_settings,
)
from suggestion_service.local.experiment import Document, parse_experiment
from suggestion_service.local.runner import INTERRUPTED, Runner, RunOptions

from .conftest import runs

Body = dict[str, Any]


class RecordingStub:
    """Passes calls to the real stub and keeps every GetSuggestions request and reply."""

    def __init__(self, stub: Any) -> None:
        self.stub = stub
        self.calls: list[tuple[pb.GetSuggestionsRequest, pb.GetSuggestionsReply]] = []

    def GetSuggestions(  # noqa: N802 - the gRPC method name
        self,
        request: pb.GetSuggestionsRequest,
        **kw: Any,
    ) -> pb.GetSuggestionsReply:
        reply = self.stub.GetSuggestions(request, **kw)
        req = pb.GetSuggestionsRequest()
        req.CopyFrom(request)
        self.calls.append((req, reply))
        return reply


def make_runner(body: Body, stub: Any, tmp_path: Path, **options: Any) -> Runner:
    exp = parse_experiment(Document("x.yaml", body))
    opts = RunOptions(state_dir=tmp_path / "state", workdir=tmp_path, poll_interval=0.02, **options)
    return Runner(exp, stub, opts)


def load_state(tmp_path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((tmp_path / "state" / "state.json").read_text())
    return data


def seq_of(record: Path) -> dict[str, int]:
    """trial name -> the trial script's sequence number (latest start)."""
    return {r["trial"]: r["seq"] for r in runs(record) if r["event"] == "start"}


def metrics(row: dict[str, Any]) -> dict[str, str]:
    return {m["name"]: m["value"] for m in row["metrics"]}


def test_merge_settings_as_katib() -> None:
    base = [("random_state", "3"), ("xi", "0.1")]
    assert merge_settings(base, [("xi", "0.2"), ("dcsa_suggested", "L1")]) == (
        ("random_state", "3"),
        ("xi", "0.2"),
        ("dcsa_suggested", "L1"),
    )
    assert merge_settings(base, []) == tuple(base)


def test_end_to_end(
    make_body: Callable[..., Body], stub: Any, record: Path, tmp_path: Path
) -> None:
    body = make_body(extra_args=("--fail=1", "--silent=2", "--sleep=0.3"))
    rec = RecordingStub(stub)
    result = make_runner(body, rec, tmp_path).run()
    assert (result.status, result.reason, result.exit_code) == ("Succeeded", MAX_TRIALS, 0)
    assert result.message == "all 6 trials finished (maxTrialCount=6)"

    state = load_state(tmp_path)
    assert state["status"] == "Succeeded"
    assert state["stopReason"] == MAX_TRIALS
    assert state["totalRequested"] == 6
    trials = state["trials"]
    assert len(trials) == 6
    seqs = seq_of(record)
    assert sorted(seqs.values()) == list(range(6))
    ends = {r["trial"]: r for r in runs(record) if r["event"] == "end"}
    for row in trials:
        name, seq = row["name"], seqs[row["name"]]
        # names and labels come from the service
        # <experiment>-<8 chars>, or <experiment>-<tag>-<8 chars> with the service's provenance tag
        assert re.fullmatch(r"tiny-([a-z0-9]+-)?[a-z0-9]{8}", name), name
        assert row["labels"]["dcsa.io/algorithm"] == "random"
        assert row["attempts"] == 1
        x = row["assignments"][0]["value"]
        end = ends[name]
        assert f"--x={x}" in end["argv"]
        assert end["env"] == f"v-{name}"  # container env, substituted
        assert end["python"] == sys.executable  # `python` is this interpreter
        assert end["cwd"] == str(tmp_path)
        assert "seq=" in (tmp_path / "state" / "logs" / f"{name}.log").read_text()
        if seq == 1:
            assert (row["condition"], row["exitCode"], row["message"]) == (
                "Failed",
                3,
                "exit code 3",
            )
        elif seq == 2:
            assert (row["condition"], row["exitCode"], metrics(row)) == (
                "MetricsUnavailable",
                0,
                {},
            )
            assert row["message"] == "objective metric 'loss' not found in the trial's output"
        else:
            assert row["condition"] == "Succeeded"
            # the minimum of the printed series (minimize: strategy min), not the latest
            best = 1.0 / (seq + 1) + float(x) / 1000
            assert metrics(row) == {"loss": f"{best:.6f}", "other": "1"}

    # at most parallelTrialCount at once, and that many did overlap
    spans = sorted((r["start"], r["end"]) for r in ends.values())
    overlap = max(sum(s <= t < e for s, e in spans) for t, _ in spans)
    assert overlap == 2

    # requests as Katib's controller sends them
    calls = rec.calls
    assert calls[0][0].current_request_number == 2
    totals = [req.total_request_number for req, _ in calls]
    assert totals == sorted(totals) and totals[0] == 2 and totals[-1] == 6
    assert sum(req.current_request_number for req, _ in calls) == 6
    for (req, _), (_prev_req, prev_reply) in zip(calls[1:], calls, strict=False):
        settings = {s.name: s.value for s in req.experiment.spec.algorithm.algorithm_settings}
        assert settings["random_state"] == "3"
        sent = {s.name: s.value for s in prev_reply.algorithm.algorithm_settings}
        assert settings["dcsa_suggested"] == sent["dcsa_suggested"]
    for req, _ in calls:  # a MetricsUnavailable trial is left out, as Katib does
        assert all(t.status.condition != pb.TrialStatus.METRICSUNAVAILABLE for t in req.trials)
        # reply labels are the Trial's metadata labels: Katib never sends them back
        assert all(not t.spec.labels for t in req.trials)
        assert all(t.status.start_time.endswith("Z") for t in req.trials if t.status.start_time)
    last = calls[-1][0]
    by_name = {t["name"]: t for t in trials}
    for t in last.trials:
        if t.status.condition == pb.TrialStatus.SUCCEEDED:
            assert {m.name: m.value for m in t.status.observation.metrics} == metrics(
                by_name[t.name]
            )
    assert any(t.status.condition == pb.TrialStatus.FAILED for t in last.trials)

    # the files a person reads
    csv_text = (tmp_path / "state" / "trials.csv").read_text().splitlines()
    assert csv_text[0].startswith("name,condition,x,")
    assert csv_text[0].endswith(
        ",start_time,completion_time,seconds,exit_code,attempts,labels,message"
    )
    assert len(csv_text) == 7
    assert (tmp_path / "state" / "convergence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "tiny" in (tmp_path / "state" / "experiment.yaml").read_text()


def test_goal_reached_early(
    make_body: Callable[..., Body], stub: Any, record: Path, tmp_path: Path
) -> None:
    body = make_body(maxTrialCount=12, extra_args=("--sleep=0.1",))
    body["spec"]["objective"]["goal"] = 0.26  # seq 3 gives 0.25 + x/1000 <= 0.26
    result = make_runner(body, stub, tmp_path).run()
    assert (result.status, result.reason, result.exit_code) == ("Succeeded", GOAL_REACHED, 0)
    assert result.best is not None
    assert result.message == (
        f"loss={result.best.metrics['loss']} of trial {result.best.name} reached the goal (<= 0.26)"
    )
    trials = load_state(tmp_path)["trials"]
    assert len(trials) < 12
    assert {t["condition"] for t in trials} <= {"Succeeded", "Killed"}
    assert float(result.best.metrics["loss"]) <= 0.26


def test_max_failed_trials(make_body: Callable[..., Body], stub: Any, tmp_path: Path) -> None:
    body = make_body(
        parallelTrialCount=1,
        maxFailedTrialCount=1,
        extra_args=("--sleep=0", "--fail=" + ",".join(map(str, range(6)))),
    )
    result = make_runner(body, stub, tmp_path).run()
    assert (result.status, result.reason, result.exit_code) == ("Failed", MAX_FAILED, 1)
    assert result.message == "2 trials failed, more than maxFailedTrialCount=1"
    assert [t["condition"] for t in load_state(tmp_path)["trials"]] == ["Failed", "Failed"]


def test_stop_then_resume(
    make_body: Callable[..., Body],
    stub: Any,
    record: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = make_body(maxTrialCount=4)
    monkeypatch.setenv("DCSA_TEST_SLEEP", "30")
    runner = make_runner(body, stub, tmp_path, kill_grace=2.0)
    timer = threading.Timer(1.5, runner.request_stop)
    timer.start()
    result = runner.run()
    timer.cancel()
    assert (result.status, result.reason, result.exit_code) == ("Interrupted", INTERRUPTED, 130)
    state = load_state(tmp_path)
    assert state["status"] == "Interrupted"
    assert [(t["condition"], t["message"]) for t in state["trials"]] == [
        ("Created", "interrupted; rerun on resume")
    ] * 2
    for r in runs(record):  # terminated, not left running
        with pytest.raises(ProcessLookupError):
            os.kill(r["pid"], 0)
    names = [t["name"] for t in state["trials"]]

    monkeypatch.setenv("DCSA_TEST_SLEEP", "0.05")
    result = make_runner(body, stub, tmp_path).run()
    assert (result.status, result.reason) == ("Succeeded", MAX_TRIALS)
    trials = load_state(tmp_path)["trials"]
    assert [t["name"] for t in trials[:2]] == names  # the same trials, rerun
    assert [t["attempts"] for t in trials] == [2, 2, 1, 1]
    assert {t["condition"] for t in trials} == {"Succeeded"}


def test_changed_spec_is_refused(make_body: Callable[..., Body], stub: Any, tmp_path: Path) -> None:
    from suggestion_service.local.runner import RunError

    make_runner(make_body(maxTrialCount=2, extra_args=("--sleep=0",)), stub, tmp_path).run()
    # raising maxTrialCount continues (Katib lets it change) ...
    result = make_runner(
        make_body(maxTrialCount=3, extra_args=("--sleep=0",)), stub, tmp_path
    ).run()
    assert len(result.trials) == 3
    # ... anything else is another experiment
    with pytest.raises(RunError, match="holds experiment 'tiny' with a different spec"):
        make_runner(make_body(maxTrialCount=3, extra_args=("--sleep=1",)), stub, tmp_path).run()


@pytest.mark.parametrize("fmt", ["TEXT", "JSON"])
def test_file_collector(
    make_body: Callable[..., Body], stub: Any, record: Path, tmp_path: Path, fmt: str
) -> None:
    path = tmp_path / "metrics" / "out.txt"
    path.parent.mkdir()
    args = ("--sleep=0", f"--metrics-file={path}", *(("--json",) if fmt == "JSON" else ()))
    body = make_body(parallelTrialCount=1, maxTrialCount=3, extra_args=args)
    body["spec"]["metricsCollectorSpec"] = {
        "collector": {"kind": "File"},
        "source": {"fileSystemPath": {"kind": "File", "path": str(path), "format": fmt}},
    }
    # max: an earlier trial's lines (seq 0 printed 1.5) would win if a trial read them
    body["spec"]["objective"]["metricStrategies"] = [{"name": "loss", "value": "max"}]
    result = make_runner(body, stub, tmp_path).run()
    assert (result.status, result.reason) == ("Succeeded", MAX_TRIALS)
    seqs = seq_of(record)
    for row in load_state(tmp_path)["trials"]:
        x, seq = float(row["assignments"][0]["value"]), seqs[row["name"]]
        # each trial reads only the lines it appended
        assert metrics(row) == {"loss": f"{1.0 / (seq + 1) + x / 1000 + 0.5:.6f}", "other": "1"}
        assert "loss=" not in (tmp_path / "state" / "logs" / f"{row['name']}.log").read_text()


class NamelessStub(RecordingStub):
    """A service that names no trials (Katib then generates names)."""

    def GetSuggestions(  # noqa: N802 - the gRPC method name
        self, request: pb.GetSuggestionsRequest, **kw: Any
    ) -> pb.GetSuggestionsReply:
        reply = super().GetSuggestions(request, **kw)
        out = pb.GetSuggestionsReply()
        out.CopyFrom(reply)
        for item in out.parameter_assignments:
            item.trial_name = ""
        return out


def test_generated_names_when_the_reply_has_none(
    make_body: Callable[..., Body], stub: Any, tmp_path: Path
) -> None:
    import re

    body = make_body(maxTrialCount=4, extra_args=("--sleep=0",))
    result = make_runner(body, NamelessStub(stub), tmp_path).run()
    names = [t.name for t in result.trials]
    assert len(set(names)) == 4
    assert all(re.fullmatch(r"tiny-[a-z0-9]{8}", n) for n in names)
    assert all(t.labels.get("dcsa.io/algorithm") == "random" for t in result.trials)


def test_active_deadline_seconds_kills_the_trial(
    make_body: Callable[..., Body], stub: Any, tmp_path: Path
) -> None:
    body = make_body(maxTrialCount=2, extra_args=("--sleep=60",))
    body["spec"]["trialTemplate"]["trialSpec"]["spec"]["activeDeadlineSeconds"] = 1
    t0 = time.monotonic()
    result = make_runner(body, stub, tmp_path, kill_grace=1.0).run()
    assert time.monotonic() - t0 < 20  # not the trials' 60 s
    assert [t.condition for t in result.trials] == ["Failed", "Failed"]
    for t in result.trials:
        assert t.message == (
            "DeadlineExceeded: the trial ran longer than spec.activeDeadlineSeconds=1s "
            "and was killed"
        )
        assert t.seconds is not None and t.seconds < 10


def test_trial_timeout_option(make_body: Callable[..., Body], stub: Any, tmp_path: Path) -> None:
    body = make_body(maxTrialCount=1, parallelTrialCount=1, extra_args=("--sleep=60",))
    pod = body["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    pod["activeDeadlineSeconds"] = 30  # the smaller limit wins
    result = make_runner(body, stub, tmp_path, kill_grace=1.0, trial_timeout=0.5).run()
    [trial] = result.trials
    assert trial.condition == "Failed"
    assert "--trial-timeout=0.5s" in trial.message


def test_trial_timeout_flag_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    from suggestion_service.cli import main

    assert main(["run", "--trial-timeout", "0", "missing.yaml"]) == 2
    assert (
        "--trial-timeout must be a positive number of seconds, got 0.0" in capsys.readouterr().out
    )
