"""The suite's loop: what it sends is pinned, and in process it answers as over gRPC."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from benchmarks import _suite_drive as drive
from suggestion_service._generated import api_pb2_grpc as pb_grpc
from suggestion_service.server import ServerConfig, SuggestionServer

#: ``drive.loop_fingerprint()``: the hash of the requests of scripted runs. Stored benchmark runs
#: are keyed by it. If this test fails, the loop now sends other requests: every stored run
#: (HEBO's hours included) will re-run. Change the value only when that is meant.
LOOP_FINGERPRINT = "8460b01f5465a83b"


def test_the_loop_sends_what_the_stored_runs_were_made_with() -> None:
    assert drive.loop_fingerprint() == LOOP_FINGERPRINT


def test_the_loop_fingerprint_sees_a_changed_request(monkeypatch: pytest.MonkeyPatch) -> None:
    # one more minute between a trial's start and completion: same answers, other requests
    shifted = drive.trial_time
    monkeypatch.setattr(drive, "trial_time", lambda m: shifted(m + 1))
    assert drive.loop_fingerprint() != LOOP_FINGERPRINT


@pytest.fixture(scope="module")
def stub() -> Iterator[pb_grpc.SuggestionStub]:
    srv = SuggestionServer(
        ServerConfig(host="127.0.0.1", port=0, metrics_port=0, metrics_host="127.0.0.1")
    )
    srv.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            yield pb_grpc.SuggestionStub(channel)
    finally:
        srv.stop(0)


@pytest.mark.parametrize(("arm", "batch"), [("gp-bo", 1), ("dcsa-bo", 3), ("random", 2)])
def test_in_process_runs_answer_as_the_grpc_server(
    stub: pb_grpc.SuggestionStub, arm: str, batch: int
) -> None:
    # benchmarks.engine_tune screens defaults in process: its runs are the suite's runs
    task = drive.Task(problem="mixed4", arm=arm, batch=batch, seed=2, budget=16)
    over_grpc = drive.run_grpc(task, stub)
    in_process = drive.run_grpc(task, drive.InProcess())
    assert not over_grpc.error and not in_process.error
    assert len(over_grpc.values) == task.budget
    assert in_process.values == over_grpc.values
    assert in_process.origins == over_grpc.origins


def test_a_run_does_not_depend_on_its_budget() -> None:
    # what --prefix-budgets relies on: the first trials of a longer run are the shorter run
    for arm in ("gp-bo", "dcsa-bo"):
        short = drive.Task(problem="noisy-uneq", arm=arm, batch=2, seed=1, budget=14)
        long = drive.Task(problem="noisy-uneq", arm=arm, batch=2, seed=1, budget=22)
        a = drive.run_grpc(short, drive.InProcess()).values
        b = drive.run_grpc(long, drive.InProcess()).values
        assert len(b) == 22 and b[:14] == a
