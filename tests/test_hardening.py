"""Adversarial inputs (issue 12, section 2): every one a clear INVALID_ARGUMENT, never INTERNAL."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from decimal import Decimal

import grpc
import grpc_testing
import pytest

from suggestion_service._generated import api_pb2 as pb
from suggestion_service._generated import api_pb2_grpc as pb_grpc
from suggestion_service.core.errors import InvalidSettingError
from suggestion_service.core.settings import SettingsTable, float_setting, greater_than, int_setting
from suggestion_service.katib.convert import MAX_TOTAL_REQUESTS
from suggestion_service.katib.servicer import SuggestionServicer
from suggestion_service.observability.metrics import create_metrics
from suggestion_service.server import ServerConfig, SuggestionServer

from .helpers import pb_experiment, pb_request, trial

SERVICE = pb.DESCRIPTOR.services_by_name["Suggestion"]


@pytest.fixture(scope="module")
def stub() -> Iterator[pb_grpc.SuggestionStub]:
    srv = SuggestionServer(ServerConfig(host="127.0.0.1", port=0, metrics_port=-1))
    srv.start()
    with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
        yield pb_grpc.SuggestionStub(channel)
    srv.stop(0)


def _rejects(stub: pb_grpc.SuggestionStub, req: pb.GetSuggestionsRequest, field: str) -> str:
    """Both RPCs refuse the experiment with INVALID_ARGUMENT naming ``field``."""
    for call in (
        lambda: stub.ValidateAlgorithmSettings(
            pb.ValidateAlgorithmSettingsRequest(experiment=req.experiment), timeout=30
        ),
        lambda: stub.GetSuggestions(req, timeout=30),
    ):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
        assert err.value.details().startswith(field + ":"), err.value.details()
    return str(err.value.details())


# ---- overflow: inputs that used to reach the core and raise OverflowError (INTERNAL) -------
@pytest.mark.parametrize(
    ("row", "field"),
    [
        (
            ("a", "int", "-1e308", "1e308", "", (), "uniform"),
            "spec.parameters[0].feasibleSpace.min",
        ),
        (
            ("a", "double", "0", "1e10", "1e-300", (), "uniform"),
            "spec.parameters[0].feasibleSpace.step",
        ),
        (("a", "double", "-1e308", "1e308", "", (), "uniform"), "spec.parameters[0].feasibleSpace"),
        (
            ("a", "double", "1e10", "2e10", "1e-7", (), "uniform"),
            "spec.parameters[0].feasibleSpace.step",
        ),
        (
            ("a", "discrete", "", "", "", ("-1e308", "1e308"), "normal"),
            "spec.parameters[0].feasibleSpace.list",
        ),
    ],
)
@pytest.mark.parametrize("algorithm", ["random", "gp-bo"])
def test_unrepresentable_spaces_are_invalid_argument(
    stub: pb_grpc.SuggestionStub, row: tuple[object, ...], field: str, algorithm: str
) -> None:
    _rejects(stub, pb_request(pb_experiment([row], algorithm=algorithm), [], 2), field)


def test_grid_values_keep_the_digits_of_min() -> None:
    """min=0.00000001 step=0.1 is the grid 0.00000001, 0.10000001: never '0' or '0.1'."""
    rows = [("a", "double", "0.00000001", "0.15", "0.1", (), "uniform")]
    servicer = SuggestionServicer(create_metrics())
    reply, code, details = _invoke(
        servicer, pb_request(pb_experiment(rows, algorithm="random"), [], 2)
    )
    assert code is grpc.StatusCode.OK, details
    values = sorted(a.assignments[0].value for a in reply.parameter_assignments)
    assert values == ["0.00000001", "0.10000001"]
    for v in values:
        k = (Decimal(v) - Decimal("0.00000001")) / Decimal("0.1")
        assert k == k.to_integral_value() and Decimal(v) >= Decimal("0.00000001")


# ---- memory bounds ------------------------------------------------------------------------
@pytest.mark.parametrize("total", [MAX_TOTAL_REQUESTS + 1, 30_000_000, 2**31 - 1])
def test_huge_total_request_number_is_refused(total: int) -> None:
    req = pb_request(pb_experiment(algorithm="random"), [], 1, total=total)
    _, code, details = _invoke(SuggestionServicer(create_metrics()), req)
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("total_request_number:"), details


def test_total_request_number_at_the_bound_is_answered() -> None:
    req = pb_request(pb_experiment(algorithm="random"), [], 1, total=MAX_TOTAL_REQUESTS)
    reply, code, details = _invoke(SuggestionServicer(create_metrics()), req)
    assert code is grpc.StatusCode.OK, details
    assert len(reply.parameter_assignments) == 1


def test_settings_helpers_take_a_maximum() -> None:
    table = SettingsTable(
        (
            int_setting("n_candidates", 1024, "doc", minimum=1, maximum=65536),
            float_setting("budget", 20.0, "doc", greater_than(0), maximum=60.0),
        )
    )
    assert table.parse({"n_candidates": "65536", "budget": "60"}, algorithm="a") == {
        "n_candidates": 65536,
        "budget": 60.0,
    }
    assert table.settings[0].maximum == 65536 and table.settings[1].maximum == 60.0
    for name, text, allowed in [
        ("n_candidates", "100000000", "must be in [1, 65536]"),
        ("n_candidates", "0", "must be in [1, 65536]"),
        ("budget", "1e9", "must be <= 60.0"),
        ("budget", "0", "must be > 0"),
    ]:
        with pytest.raises(InvalidSettingError) as err:
            table.parse({name: text}, algorithm="a")
        assert err.value.field == f"spec.algorithm.algorithmSettings[{name}]"
        assert allowed in err.value.message


# ---- deep JSON ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("algorithm", "setting"), [("gp-bo", "warm_start"), ("dcsa-bo", "subnetworks")]
)
def test_deeply_nested_json_setting_is_invalid_argument(
    stub: pb_grpc.SuggestionStub, algorithm: str, setting: str
) -> None:
    deep = '{"a":' * 5000 + "1" + "}" * 5000
    exp = pb_experiment(
        [("x", "double", "0", "1", "", (), "uniform")],
        algorithm=algorithm,
        settings={setting: deep},
    )
    details = _rejects(stub, pb_request(exp, [], 1), f"spec.algorithm.algorithmSettings[{setting}]")
    assert "nested too deeply" in details


# ---- echoed values are cut --------------------------------------------------------------------
HUGE = "9" * 20_000


@pytest.mark.parametrize(
    ("rows", "settings", "field"),
    [
        (
            [("x", "double", "0", "1", HUGE + "x", (), "uniform")],
            {},
            "spec.parameters[0].feasibleSpace.step",
        ),
        (
            [("x", "int", HUGE, "1", "", (), "uniform")],
            {},
            "spec.parameters[0].feasibleSpace.min",
        ),
        (
            [("x", "categorical", "", "", "", ("a", "b"), "uniform")],
            {"acquisition": HUGE},
            "spec.algorithm.algorithmSettings[acquisition]",
        ),
        (
            [("x", "categorical", "", "", "", ("a", "b"), "uniform")],
            {"warm_start": json.dumps({"trials": [{"assignments": {"x": HUGE}, "value": 1}]})},
            "spec.algorithm.algorithmSettings[warm_start]",
        ),
    ],
)
def test_a_huge_bad_value_is_echoed_short(
    stub: pb_grpc.SuggestionStub,
    rows: list[tuple[object, ...]],
    settings: dict[str, str],
    field: str,
) -> None:
    """A 20 kB value used to overflow the status metadata (RESOURCE_EXHAUSTED at the client)."""
    details = _rejects(stub, pb_request(pb_experiment(rows, settings=settings), [], 1), field)
    assert len(details) < 1000, len(details)
    assert "more characters" in details


def test_huge_unknown_setting_name_is_cut(stub: pb_grpc.SuggestionStub) -> None:
    exp = pb_experiment(settings={"z" * 20_000: "1"})
    with pytest.raises(grpc.RpcError) as err:
        stub.GetSuggestions(pb_request(exp, [], 1), timeout=30)
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert len(err.value.details()) < 1000


# ---- one log summary per call ------------------------------------------------------------------
def test_off_space_trials_give_one_summary_line(caplog: pytest.LogCaptureFixture) -> None:
    rows = [("x", "double", "0", "1", "", (), "uniform")]
    history = [trial(f"t{i}", {"x": str(5 + i)}, loss=1.0) for i in range(50)]
    history += [trial("ok", {"x": "0.5"}, loss=1.0), trial("nan", {"x": "0.25"}, loss="nan")]
    req = pb_request(pb_experiment(rows, algorithm="random"), history, 1)
    with caplog.at_level(logging.WARNING, logger="suggestion_service.katib.servicer"):
        _, code, details = _invoke(SuggestionServicer(create_metrics()), req)
    assert code is grpc.StatusCode.OK, details
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name == "suggestion_service.katib.servicer"
    ]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("51 trial(s) tolerated in the history")
    assert "non_finite_metric=1" in warnings[0] and "off_space=50" in warnings[0]
    assert "(and 48 more)" in warnings[0]


def test_history_issue_details_are_cut() -> None:
    rows = [("x", "double", "0", "1", "", (), "uniform")]
    history = [trial("big", {"x": "9" * 50_000}, loss=1.0)]
    req = pb_request(pb_experiment(rows, algorithm="random"), history, 1)
    _, code, details = _invoke(SuggestionServicer(create_metrics()), req)
    assert code is grpc.StatusCode.OK, details
    # the issue summary is what the servicer logs; it stays short whatever the trial held
    from suggestion_service.core.history import HistoryIssue, summarize_issues

    line = summarize_issues([HistoryIssue("big", "off_space", "9" * 50_000)])
    assert line is not None and len(line) < 400


def _invoke(
    servicer: SuggestionServicer, request: pb.GetSuggestionsRequest
) -> tuple[pb.GetSuggestionsReply, grpc.StatusCode, str]:
    server = grpc_testing.server_from_dictionary(
        {SERVICE: servicer}, grpc_testing.strict_real_time()
    )
    rpc = server.invoke_unary_unary(SERVICE.methods_by_name["GetSuggestions"], (), request, 60)
    response, _, code, details = rpc.termination()
    return response, code, details


def test_json_roundtrip_of_warm_start_still_works(stub: pb_grpc.SuggestionStub) -> None:
    """The deep-JSON guard does not refuse ordinary payloads."""
    rows = [("x", "double", "0", "1", "", (), "uniform")]
    warm = json.dumps({"trials": [{"assignments": {"x": "0.5"}, "value": 1.0}]})
    exp = pb_experiment(rows, algorithm="gp-bo", settings={"warm_start": warm})
    reply = stub.GetSuggestions(pb_request(exp, [], 1), timeout=30)
    assert len(reply.parameter_assignments) == 1


def test_exhausted_space_is_counted_for_the_alert() -> None:
    """FAILED_PRECONDITION, and dcsa_search_space_exhausted_total (the chart alerts on it:
    Katib keeps retrying and the Experiment stays Running)."""
    rows = [("a", "categorical", "", "", "", ("x", "y"), "uniform")]
    history = [trial("t0", {"a": "x"}, loss=1.0), trial("t1", {"a": "y"}, loss=2.0)]
    metrics = create_metrics()
    req = pb_request(pb_experiment(rows, algorithm="random"), history, 1)
    _, code, details = _invoke(SuggestionServicer(metrics), req)
    assert code is grpc.StatusCode.FAILED_PRECONDITION
    assert "the search space has 2 distinct points" in details
    assert metrics.search_space_exhausted.labels("random")._value.get() == 1
