"""Provenance from what Katib sends back (issue 11): trial names, never labels.

Katib copies a reply's labels onto the Trial's metadata but builds the next request from
``Trial.spec.labels``, which it never sets. These tests drive the service as Katib does (labels
never sent back, ``reply.algorithm`` merged by name) and check that DC rounds neither repeat nor
get lost, also across a restart of the server.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping

import grpc
import pytest

from suggestion_service._generated import api_pb2 as pb
from suggestion_service._generated import api_pb2_grpc as pb_grpc
from suggestion_service.core import provenance
from suggestion_service.core.provenance import Provenance
from suggestion_service.server import ServerConfig, SuggestionServer

from .helpers import pb_experiment, run_loop, space_from

ROWS = [(f"{g}__x{i}", "double", "0", "1", "", (), "uniform") for g in "abc" for i in range(2)]
SPACE = space_from(ROWS)


def _f(v: Mapping[str, str]) -> float:
    return sum((float(x) - 0.3) ** 2 for x in v.values())


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("exp-d12-abcdefgh", Provenance("dc", 12)),
        ("exp-s0-abcdefgh", Provenance("sa", 0)),
        ("exp-b-abcdefgh", Provenance("bo")),
        ("my-exp-i-0a1b2c3d", None),  # another experiment's prefix
        ("exp-abcdefgh", None),  # Katib's own naming: no tag
        ("exp-x3-abcdefgh", None),
        ("exp-d-abcdefg", None),
    ],
)
def test_names_parse_back(name: str, expected: Provenance | None) -> None:
    assert provenance.parse("exp", name) == expected
    if expected is not None:
        assert name == f"exp-{expected.tag}-{name[-8:]}"


def _dc_rounds(experiment: str, names: list[str]) -> Counter[int]:
    parsed = (provenance.parse(experiment, n) for n in names)
    return Counter(p.number for p in parsed if p is not None and p.origin == "dc")


def test_dc_rounds_neither_repeat_nor_get_lost_without_labels() -> None:
    settings = {"dc_interval": "5", "dc_batch": "2"}
    trials = run_loop("dc-bo", SPACE, _f, budget=40, seed=3, settings=settings)
    assert all(not t.labels for t in trials)  # nothing came back but names
    rounds = _dc_rounds("exp", [t.name for t in trials])
    # 7 initial points (6 parameters + 1); a round every 5 completed trials, 2 trials each
    assert sorted(rounds) == list(range(len(rounds)))
    assert len(rounds) >= 5
    assert all(count == 2 for r, count in rounds.items() if r < max(rounds))
    every = Counter(provenance.parse("exp", t.name).origin for t in trials)  # type: ignore[union-attr]
    assert every["initial"] == 7 and every["dc"] == sum(rounds.values())


def _drive(
    stub_for: Iterator[pb_grpc.SuggestionStub], *, budget: int, batch: int
) -> list[tuple[str, list[tuple[str, str]]]]:
    """Katib's controller in small: labels never sent back, reply.algorithm merged by name."""
    exp = pb_experiment(
        ROWS, algorithm="dcsa-bo", settings={"random_state": "5", "mix": "fixed"}, name="exp"
    )
    trials: list[pb.Trial] = []
    out = []
    total = 0
    while len(trials) < budget:
        stub = next(stub_for)
        n = min(batch, budget - len(trials))
        total += n
        req = pb.GetSuggestionsRequest(
            experiment=exp, trials=trials, current_request_number=n, total_request_number=total
        )
        reply = stub.GetSuggestions(req, timeout=60)
        merged = {s.name: s.value for s in exp.spec.algorithm.algorithm_settings}
        merged.update({s.name: s.value for s in reply.algorithm.algorithm_settings})
        del exp.spec.algorithm.algorithm_settings[:]
        for k, v in merged.items():
            exp.spec.algorithm.algorithm_settings.add(name=k, value=v)
        for a in reply.parameter_assignments:
            t = pb.Trial(name=a.trial_name)
            t.spec.parameter_assignments.assignments.extend(a.assignments)
            t.status.condition = pb.TrialStatus.SUCCEEDED
            values = {x.name: x.value for x in a.assignments}
            t.status.observation.metrics.add(name="loss", value=repr(_f(values)))
            trials.append(t)
            out.append((a.trial_name, sorted(values.items())))
    return out


def _servers(restart_every: int | None) -> Iterator[pb_grpc.SuggestionStub]:
    calls = 0
    while True:
        srv = SuggestionServer(ServerConfig(host="127.0.0.1", port=0, metrics_port=-1))
        srv.start()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
                stub = pb_grpc.SuggestionStub(channel)
                while restart_every is None or calls % restart_every or calls == 0:
                    calls += 1
                    yield stub
                calls += 1
                yield stub
        finally:
            srv.stop(0)


def test_dc_rounds_survive_a_server_restart() -> None:
    steady = _drive(_servers(None), budget=30, batch=2)
    restarted = _drive(_servers(4), budget=30, batch=2)
    assert restarted == steady
    rounds = _dc_rounds("exp", [name for name, _ in steady])
    assert rounds and max(rounds.values()) <= 2
