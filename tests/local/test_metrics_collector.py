"""Metric parsing against Katib's StdOut rule, and the reduction by metric strategy."""

from __future__ import annotations

import pytest

from suggestion_service.local.metrics_collector import (
    DEFAULT_FILTER,
    MetricLog,
    parse_json_lines,
    parse_text,
    reduce_metrics,
)

NAMES = ("loss", "accuracy", "Score")


def test_default_filter_is_katibs() -> None:
    assert DEFAULT_FILTER == r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("loss=0.1", [MetricLog("loss", "0.1")]),
        ("accuracy=.98", [MetricLog("accuracy", ".98")]),
        ("Score=-7.53e-05", [MetricLog("Score", "-7.53e-05")]),
        ("loss = 3", [MetricLog("loss", "3")]),
        ("2026-03-04T05:06:07Z loss=0.25", [MetricLog("loss", "0.25", "2026-03-04T05:06:07Z")]),
        (
            "2026-03-04T05:06:07.123456+02:00 accuracy=0.5",
            [MetricLog("accuracy", "0.5", "2026-03-04T05:06:07.123456+02:00")],
        ),
        # other text around, a metric of another name, and a name that only contains ours
        (
            "epoch 3/10: loss = 0.25, val_loss=0.3 lr=0.01 accuracy=0.9 (done)",
            [MetricLog("loss", "0.25"), MetricLog("accuracy", "0.9")],
        ),
        # not a timestamp: the first word stays part of the line
        ("step-7 loss=1e3", [MetricLog("loss", "1e3")]),
        # lines without any metric name are not scanned at all
        ("lr=0.01 momentum=0.9", []),
        ("val_loss=0.3", []),
    ],
)
def test_stdout_rule(line: str, expected: list[MetricLog]) -> None:
    assert parse_text([line], NAMES) == expected


def test_series_in_order_and_trailing_newlines() -> None:
    lines = ["loss=0.5\n", "noise\n", "loss=0.2\r\n", "loss=0.3\n"]
    assert [m.value for m in parse_text(lines, ["loss"])] == ["0.5", "0.2", "0.3"]


def test_custom_filter_from_metrics_format() -> None:
    # Katib's own example of a metricsFormat filter: {metricName: loss, metricValue: 0.2}
    filters = [r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}"]
    lines = ["{metricName: loss, metricValue: 0.2}", "loss=0.9"]
    assert parse_text(lines, ["loss"], filters) == [MetricLog("loss", "0.2")]


def test_json_lines() -> None:
    lines = [
        '{"loss": "0.4", "accuracy": "0.8", "timestamp": "2026-01-01T00:00:00Z"}',
        "not json",
        '["a list"]',
        '{"loss": "0.3"}',
    ]
    assert parse_json_lines(lines, ["loss", "accuracy"]) == [
        MetricLog("loss", "0.4", "2026-01-01T00:00:00Z"),
        MetricLog("accuracy", "0.8", "2026-01-01T00:00:00Z"),
        MetricLog("loss", "0.3"),
    ]


def test_reduce_by_strategy() -> None:
    logs = [MetricLog("loss", v) for v in ("0.5", "0.2", "0.3")]
    logs += [MetricLog("accuracy", v) for v in ("0.7", "0.9", "0.8")]
    assert reduce_metrics(logs, {"loss": "min", "accuracy": "max"}) == {
        "loss": "0.2",
        "accuracy": "0.9",
    }
    assert reduce_metrics(logs, {"loss": "latest", "accuracy": "latest"}) == {
        "loss": "0.3",
        "accuracy": "0.8",
    }
    assert reduce_metrics(logs, {"loss": "max", "accuracy": "min"}) == {
        "loss": "0.5",
        "accuracy": "0.7",
    }


def test_reduce_skips_non_numbers() -> None:
    # the default regex accepts an empty value ("loss=" then text); NaN is not an observation
    logs = parse_text(["loss=abc", "loss=", "loss=nan"], ["loss"])
    assert [m.value for m in logs] == ["", "", ""]
    assert reduce_metrics(logs, {"loss": "min"}) == {}
    assert reduce_metrics([MetricLog("loss", "inf"), MetricLog("loss", "2")], {"loss": "min"}) == {
        "loss": "2"
    }
