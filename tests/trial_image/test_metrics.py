"""Metric output for each Katib collector: StdOut lines, TensorBoard event files, push."""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.trial_image import katib
from tests.trial_image.conftest import TINY, Run
from trial_image.metrics import (
    KATIB_METRIC_REGEX,
    EventFileWriter,
    crc32c,
    format_metric_lines,
    format_value,
)


def test_our_regex_is_katibs_default_filter() -> None:
    assert KATIB_METRIC_REGEX == katib.KATIB_DEFAULT_FILTER


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.125, "0.125"),
        (-2.5, "-2.5"),
        (3.0, "3"),
        (1.5e-07, "1.5e-07"),
        (123456789.123, "1.2345679e+08"),
        (0.98765432109, "0.98765432"),
    ],
)
def test_values_are_captured_whole_by_katibs_regex(value: float, text: str) -> None:
    assert format_value(value) == text
    (line,) = format_metric_lines({"val-loss": value})
    match = re.fullmatch(KATIB_METRIC_REGEX, line)
    assert match is not None and match.group(2) == text
    assert float(katib.collect(line, ["val-loss"])[0].value) == pytest.approx(value, rel=1e-7)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_values_are_never_printed(bad: float) -> None:
    # Katib's regex would read "val-loss=nan" as an empty value.
    with pytest.raises(ValueError, match="not finite"):
        format_metric_lines({"val-loss": bad})


def test_names_the_regex_would_cut_are_refused() -> None:
    with pytest.raises(ValueError, match="must use letters"):
        format_metric_lines({"val loss": 1.0})
    with pytest.raises(ValueError, match="must use letters"):
        format_metric_lines({"val.loss": 1.0})


def test_timestamp_prefix() -> None:
    lines = format_metric_lines({"a": 1.0, "b-c": 2.5}, "2026-01-02T03:04:05.000001Z")
    assert lines == ["2026-01-02T03:04:05.000001Z a=1", "2026-01-02T03:04:05.000001Z b-c=2.5"]
    logs = katib.collect("\n".join(lines), ["a", "b-c"])
    assert [(log.timestamp, log.name, log.value) for log in logs] == [
        ("2026-01-02T03:04:05.000001Z", "a", "1"),
        ("2026-01-02T03:04:05.000001Z", "b-c", "2.5"),
    ]


def test_crc32c_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the standard CRC-32C check value
    assert crc32c(b"") == 0


def _read_like_katib(logdir: Path, metric: str) -> list[tuple[int, float]]:
    """Read event files as Katib's TensorFlowEvent collector does (tensor summaries)."""
    # tensorboard is a test-only dependency (scripts/install/trial.sh installs it).
    from tensorboard.backend.event_processing import (  # type: ignore[import-untyped]
        event_accumulator as accumulator_mod,
    )
    from tensorboard.backend.event_processing.tag_types import (  # type: ignore[import-untyped]
        TENSORS,
    )
    from tensorboard.util import tensor_util  # type: ignore[import-untyped]

    found: list[tuple[int, float]] = []
    for path in sorted(logdir.rglob("events.out.tfevents.*")):
        acc = accumulator_mod.EventAccumulator(str(path), size_guidance={TENSORS: 0})
        acc.Reload()
        for tag in acc.Tags()[TENSORS]:
            if tag.startswith(metric):
                for event in acc.Tensors(tag):
                    found.append((event.step, float(tensor_util.make_ndarray(event.tensor_proto))))
    return found


def test_event_file_is_read_by_tensorboards_accumulator(tmp_path: Path) -> None:
    writer = EventFileWriter(tmp_path / "logs")
    writer.add_scalars({"val-loss": 0.5, "val-accuracy": 0.75}, step=1)
    writer.add_scalars({"val-loss": 0.25, "val-accuracy": 0.875}, step=2)
    writer.close()
    assert writer.path.name.startswith("events.out.tfevents.")
    assert _read_like_katib(tmp_path / "logs", "val-loss") == [(1, 0.5), (2, 0.25)]
    assert _read_like_katib(tmp_path / "logs", "val-accuracy") == [(1, 0.75), (2, 0.875)]


def test_event_file_records_are_framed_with_valid_checksums(tmp_path: Path) -> None:
    import struct

    writer = EventFileWriter(tmp_path)
    writer.add_scalars({"x": 1.0}, step=3)
    writer.close()
    data = writer.path.read_bytes()
    records, pos = 0, 0
    while pos < len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        body = data[pos + 12 : pos + 12 + length]
        (crc,) = struct.unpack_from("<I", data, pos + 12 + length)
        masked = (((crc32c(body) >> 15) | (crc32c(body) << 17)) + 0xA282EAD8) & 0xFFFFFFFF
        assert crc == masked
        pos += 12 + length + 4
        records += 1
    assert records == 2 and pos == len(data)


def test_tensorboard_dir_mirrors_the_stdout_metrics(
    tmp_path: Path, run_trial: Callable[..., Run]
) -> None:
    logdir = tmp_path / "tb"
    args = [a for a in TINY if not a.startswith("--epochs")]
    run = run_trial(
        "--task=digits", "--max-samples=100", "--epochs=2", f"--tensorboard-dir={logdir}", *args
    )
    assert run.code == 0, run.err
    stdout = katib.series(run.out, "val-accuracy")
    events = _read_like_katib(logdir, "val-accuracy")
    assert [step for step, _ in events] == [1, 2]
    assert [v for _, v in events] == pytest.approx(stdout, abs=1e-6)


def _fake_katib_sdk(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    pushed: list[dict[str, Any]] = []
    kubeflow = types.ModuleType("kubeflow")
    sdk = types.ModuleType("kubeflow.katib")
    sdk.report_metrics = pushed.append  # type: ignore[attr-defined]
    kubeflow.katib = sdk  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "kubeflow", kubeflow)
    monkeypatch.setitem(sys.modules, "kubeflow.katib", sdk)
    return pushed


def test_push_metrics_calls_report_metrics_each_epoch(
    monkeypatch: pytest.MonkeyPatch, run_trial: Callable[..., Run]
) -> None:
    pushed = _fake_katib_sdk(monkeypatch)
    args = [a for a in TINY if not a.startswith("--epochs")]
    run = run_trial("--task=diabetes", "--max-samples=100", "--epochs=2", "--push-metrics", *args)
    assert run.code == 0, run.err
    assert [p["epoch"] for p in pushed] == [1.0, 2.0]
    assert [p["val-mse"] for p in pushed] == pytest.approx(katib.series(run.out, "val-mse"))


def test_push_metrics_without_the_sdk_exits_2(
    monkeypatch: pytest.MonkeyPatch, run_trial: Callable[..., Run]
) -> None:
    monkeypatch.setitem(sys.modules, "kubeflow.katib", None)  # import fails
    run = run_trial("--task=diabetes", "--max-samples=100", "--push-metrics", *TINY)
    assert run.code == 2
    assert (
        "dcsa-train: error: argument --push-metrics: the Katib SDK (kubeflow.katib, which "
        "provides report_metrics) is not installed: pip install kubeflow-katib"
    ) in run.err
    assert run.out == ""
