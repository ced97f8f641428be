"""Property-based fuzzing of GetSuggestions over request shapes, through a real gRPC server.

The property (issue 12): whatever the request, the reply is OK with an answer Katib accepts
(exact count, every parameter in order, each value in its feasible space and in Katib's string
form, no duplicates, nothing already in the history), or INVALID_ARGUMENT whose message starts
with the offending field, or FAILED_PRECONDITION for a finite space with nothing left. Never
INTERNAL, UNKNOWN or RESOURCE_EXHAUSTED.

Deterministic (``derandomize``) so that CI is repeatable; ``DCSA_FUZZ_EXAMPLES`` runs more.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Sequence
from decimal import Decimal, InvalidOperation, localcontext
from typing import TypeVar

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from suggestion_service._generated import api_pb2 as pb
from suggestion_service._generated import api_pb2_grpc as pb_grpc
from suggestion_service.core.errors import InvalidArgumentError
from suggestion_service.core.space import ParameterType, SearchSpace
from suggestion_service.katib import convert
from suggestion_service.server import ServerConfig, SuggestionServer

T = TypeVar("T")
EXAMPLES = int(os.environ.get("DCSA_FUZZ_EXAMPLES", "200"))

NUMBERS = [
    "0", "1", "-1", "2", "3", "10", "100", "0.5", "0.1", "0.15", "2.5", "-3.75", "0.00000001",
    "1e-8", "1e10", "1e300", "-1e308", "1e308", "1e-300", "5e-324", "9007199254740993",
    "nan", "inf", "-inf", "abc", "", " 1", "1_000", "0x10", "1" * 400,
]  # fmt: skip
NAMES = ["a", "b", "c", "conv__f", "conv__k", "dense__u", "", "a" * 300]
ALGORITHMS = ["random", "gp-bo", "dc-bo", "sa-bo", "dcsa-bo", "", "hyperband"]
# size-like settings stay small here: their upper bounds are declared by the strategies
SETTING_VALUES: dict[str, list[str]] = {
    "random_state": ["0", "7", "-1", "1.5", "1e30", "x"],
    "time_budget_seconds": ["1", "0", "-1", "nan", "2.5"],
    "n_initial_points": ["0", "1", "3", "-2", "many"],
    "acquisition": ["ei", "pi", "ucb", "EI", ""],
    "xi": ["0", "0.1", "-1", "inf"],
    "ucb_beta": ["2", "0", "-1"],
    "n_candidates": ["16", "32", "1", "0"],
    "max_fit_points": ["8", "64", "0"],
    "dc_top_m": ["2", "3", "1"],
    "dc_interval": ["1", "2", "0"],
    "dc_batch": ["1", "2", "0"],
    "dc_max_candidates": ["16", "64", "0"],
    "sa_epsilon": ["0.2", "0", "1", "2"],
    "sa_full_share": ["0.5", "0", "1", "-1"],
    "subnetworks": ['{"conv": ["conv__f"]}', "{}", "[1]", '{"x": ["nope"]}', "{"],
    "warm_start": [
        '{"trials": []}',
        '{"trials": [{"assignments": {"a": "0.5"}, "value": 1}]}',
        '{"trials": [{"assignments": {}, "value": "x"}]}',
        "[]",
        '{"a":' * 3000 + "1" + "}" * 3000,
    ],
    "dcsa_suggested": ['{"v":1,"s":[]}', "garbage", '{"v":1,"s":[["n",{"a":"1"}]]}'],
    "unknown_setting": ["1"],
}
STATES = list(pb.TrialStatus.TrialConditionType.values())


@st.composite
def wild_parameter(draw: st.DrawFn) -> pb.ParameterSpec:
    """Any combination of fields, most of them wrong."""
    p = pb.ParameterSpec(
        name=draw(st.sampled_from(NAMES)),
        parameter_type=pb.ParameterType.ValueType(draw(st.sampled_from([1, 1, 2, 3, 4, 0, 9]))),
    )
    fs = p.feasible_space
    if p.parameter_type in (pb.DISCRETE, pb.CATEGORICAL):
        pool = NUMBERS[:20] if p.parameter_type == pb.DISCRETE else ["x", "y", "z", "", "1"]
        fs.list.extend(draw(st.lists(st.sampled_from(pool), max_size=5)))
    else:
        fs.min = draw(st.sampled_from(NUMBERS))
        fs.max = draw(st.sampled_from(NUMBERS))
        fs.step = draw(st.sampled_from(["", "", "", *NUMBERS[:22]]))
    fs.distribution = pb.Distribution.ValueType(draw(st.sampled_from([0, 1, 2, 3, 4, 7])))
    return p


LOWS = ["0", "1", "-1", "0.00000001", "1e-8", "0.001", "-3.75", "100", "1e-300", "-1e300"]
WIDTHS = ["1", "0.15", "10", "1e-6", "1000", "1e10", "2.5", "0.3", "7", "1e300"]
STEPS = ["", "", "", "", "", "0.1", "1", "0.05", "1e-3", "3", "0.3", "0.7", "1e-300", "1e20"]


@st.composite
def sane_parameter(draw: st.DrawFn) -> pb.ParameterSpec:
    """A well-formed parameter with edge-case magnitudes (min < max, step > 0)."""
    kind = draw(st.sampled_from([pb.DOUBLE, pb.DOUBLE, pb.INT, pb.DISCRETE, pb.CATEGORICAL]))
    p = pb.ParameterSpec(name="", parameter_type=kind)
    fs = p.feasible_space
    fs.distribution = draw(st.sampled_from([pb.UNIFORM, pb.UNIFORM, pb.LOG_UNIFORM, pb.NORMAL]))
    if kind == pb.CATEGORICAL:
        fs.list.extend(
            draw(st.lists(st.sampled_from("abcdefg"), min_size=1, max_size=5, unique=True))
        )
        return p
    if kind == pb.DISCRETE:
        values = st.sampled_from(["1", "2", "4", "0.5", "1e-8", "16", "1e6", "3.25"])
        fs.list.extend(draw(st.lists(values, min_size=1, max_size=5, unique=True)))
        return p
    low = Decimal(draw(st.sampled_from(LOWS)))
    width = Decimal(draw(st.sampled_from(WIDTHS)))
    if kind == pb.INT:
        low, width = low.to_integral_value(), max(Decimal(1), width.to_integral_value())
    if fs.distribution == pb.LOG_UNIFORM and low <= 0:
        low = Decimal("0.001")
    with localcontext(prec=700):
        fs.min, fs.max = str(low), str(low + width)
    step = draw(st.sampled_from(STEPS))
    if kind == pb.INT and step:
        step = str(max(1, int(float(step))))
    fs.step = step
    return p


@st.composite
def parameter(draw: st.DrawFn) -> pb.ParameterSpec:
    wild = draw(st.integers(0, 2)) == 0
    p: pb.ParameterSpec = draw(wild_parameter() if wild else sane_parameter())
    return p


def pick(draw: st.DrawFn, wild: bool, good: Sequence[T], bad: Sequence[T]) -> T:
    """A good value, or (in a wild request, one time in four) a bad one."""
    if wild and draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from(bad))
    return draw(st.sampled_from(good))


@st.composite
def requests(draw: st.DrawFn) -> pb.GetSuggestionsRequest:
    """Half the requests are well-formed (with edge-case values); half carry wrong fields."""
    wild = draw(st.integers(0, 1)) == 1
    exp = pb.Experiment(name=draw(st.sampled_from(["exp", "e", "x" * 40])))
    spec = exp.spec
    params = draw(st.lists(parameter() if wild else sane_parameter(), min_size=1, max_size=4))
    for i, p in enumerate(params):
        if not p.name:  # sane parameters get unique names, some in subnetwork groups
            p.name = ["conv__f", "dense__u", "conv__k", "x"][i]
    spec.parameter_specs.parameters.extend(params)
    spec.objective.type = pick(
        draw, wild, [pb.MINIMIZE, pb.MAXIMIZE], [pb.ObjectiveType.Value("UNKNOWN")]
    )
    spec.objective.objective_metric_name = pick(draw, wild, ["loss"], [""])
    spec.algorithm.algorithm_name = pick(draw, wild, ALGORITHMS[:5], ALGORITHMS[5:])
    chosen = draw(st.lists(st.sampled_from(sorted(SETTING_VALUES)), max_size=2, unique=True))
    for name in chosen:
        values = SETTING_VALUES[name]
        value = draw(st.sampled_from(values)) if wild else values[0]
        spec.algorithm.algorithm_settings.add(name=name, value=value)
    req = pb.GetSuggestionsRequest(experiment=exp)
    for i in range(draw(st.integers(0, 8))):
        t = req.trials.add(name=f"t{i}")
        for p in spec.parameter_specs.parameters:
            fs = p.feasible_space
            good = [*fs.list, fs.min, fs.max]
            value = pick(draw, True, good, [*NUMBERS[:8], "x"])
            t.spec.parameter_assignments.assignments.add(name=p.name, value=value)
        t.status.condition = draw(st.sampled_from(STATES))
        if draw(st.booleans()):
            metric = pick(draw, True, ["1.5", "-2", "0", "1e300"], ["nan", "inf", "", "x"])
            t.status.observation.metrics.add(name="loss", value=metric)
    req.current_request_number = pick(draw, wild, [1, 1, 2, 3, 5], [0, -1, 2000])
    consistent = len(req.trials) + req.current_request_number
    total = pick(draw, wild, [consistent], [0, 5, 10**6, 2**31 - 1])
    req.total_request_number = total
    return req


@pytest.fixture(scope="module")
def stub() -> Iterator[pb_grpc.SuggestionStub]:
    srv = SuggestionServer(ServerConfig(host="127.0.0.1", port=0, metrics_port=-1))
    srv.start()
    with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
        yield pb_grpc.SuggestionStub(channel)
    srv.stop(0)


#: A field path as the service writes it: ``spec.parameters[0].feasibleSpace.step``,
#: ``spec.algorithm.algorithmSettings[xi]``, ``current_request_number``.
FIELD = re.compile(r"^[A-Za-z_][\w.]*(\[[^\]]*\][\w.]*)*: ")
DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(req=requests())
def test_every_reply_is_valid_or_names_the_field(
    stub: pb_grpc.SuggestionStub, req: pb.GetSuggestionsRequest
) -> None:
    req.experiment.spec.algorithm.algorithm_settings.add(name="time_budget_seconds", value="5")
    try:
        reply = stub.GetSuggestions(req, timeout=60)
    except grpc.RpcError as err:
        code, details = err.code(), err.details() or ""
        assert code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION), (
            code,
            details[:300],
        )
        assert len(details) <= 1100, len(details)
        if code is grpc.StatusCode.INVALID_ARGUMENT:
            assert FIELD.match(details), details[:300]
        else:
            space = convert.to_space(req.experiment.spec)
            assert space.cardinality is not None, details[:300]
        return
    _assert_contract_valid(req, reply)


def _assert_contract_valid(req: pb.GetSuggestionsRequest, reply: pb.GetSuggestionsReply) -> None:
    space = convert.to_space(req.experiment.spec)
    assert len(reply.parameter_assignments) == req.current_request_number
    history = {tuple(a.value for a in t.spec.parameter_assignments.assignments) for t in req.trials}
    seen: set[tuple[str, ...]] = set()
    for item in reply.parameter_assignments:
        assert [a.name for a in item.assignments] == list(space.names)
        key = tuple(a.value for a in item.assignments)
        assert key not in seen and key not in history, key
        seen.add(key)
        for a in item.assignments:
            _assert_in_space(space, a.name, a.value)


def _assert_in_space(space: SearchSpace, name: str, value: str) -> None:
    p = space.parameters[space.index(name)]
    if p.type in (ParameterType.CATEGORICAL, ParameterType.DISCRETE):
        assert value in p.labels, (name, value)
        return
    assert DECIMAL.match(value), (name, value)
    try:
        p.parse(value, where=name)
    except InvalidArgumentError as exc:  # pragma: no cover - the assertion's message
        raise AssertionError(f"{name}={value}: {exc}") from None
    x = Decimal(value)
    assert Decimal(repr(p.low)) <= x <= Decimal(repr(p.high)), (name, value, p.low, p.high)
    if p.step is not None:
        try:
            k = (x - Decimal(repr(p.low))) / Decimal(repr(p.step))
        except InvalidOperation:  # pragma: no cover
            raise AssertionError((name, value)) from None
        assert math.isclose(float(k), round(k), abs_tol=1e-6), (name, value, p.low, p.step)
