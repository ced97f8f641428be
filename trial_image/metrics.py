"""Metrics the Katib way: ``name=value`` lines on stdout, TensorBoard event files, push.

- StdOut / File collectors: Katib's default filter is ``KATIB_METRIC_REGEX`` below. Each epoch
  prints one ``name=value`` line per metric, optionally preceded by an RFC3339 timestamp and a
  space (the collector takes a leading timestamp as the time of the line). Values are always
  finite and written so the regex captures the whole number.
- TensorFlowEvent collector: :class:`EventFileWriter` writes ``events.out.tfevents.*`` records
  with tensor-valued scalar summaries (Katib's collector reads the ``tensors`` tag type, not the
  legacy ``simple_value``), tagged with the same metric names. No TensorFlow or TensorBoard
  package is needed to write them.
- Push collector: ``kubeflow.katib.report_metrics`` from the Katib SDK, imported only when asked.
"""

from __future__ import annotations

import importlib
import math
import os
import re
import socket
import struct
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

KATIB_METRIC_REGEX = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
"""The default ``metricsFormat`` filter of Katib's StdOut and File (TEXT) collectors."""

_NAME = re.compile(r"^[\w-]+$")


def format_value(value: float) -> str:
    """Write a finite number so Katib's regex captures all of it (``0.125``, ``1.5e-07``).

    Raises:
        ValueError: for NaN or infinity, which the regex cannot read.
    """
    if not math.isfinite(value):
        raise ValueError(f"metric value {value} is not finite")
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.8g}"


def rfc3339_now() -> str:
    """The current UTC time as RFC3339 with microseconds, e.g. ``2026-11-22T18:00:00.123456Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_metric_lines(metrics: Mapping[str, float], timestamp: str | None = None) -> list[str]:
    """One ``name=value`` line per metric, each optionally prefixed by ``timestamp``.

    Args:
        metrics: metric name to finite value; names use letters, digits, ``_`` and ``-``.
        timestamp: RFC3339 time, or None.

    Returns:
        The lines, without newlines.

    Raises:
        ValueError: a name the regex cannot capture whole, or a non-finite value.
    """
    prefix = f"{timestamp} " if timestamp else ""
    lines = []
    for name, value in metrics.items():
        if not _NAME.match(name):
            raise ValueError(f"metric name {name!r} must use letters, digits, '_' and '-'")
        lines.append(f"{prefix}{name}={format_value(value)}")
    return lines


# --- TensorBoard event files (TFRecord framing around hand-encoded Event protos) -------------

_CRC32C_TABLE: list[int] = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC32C_TABLE.append(_c)


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``, as TFRecord files use."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        bits = n & 0x7F
        n >>= 7
        if n:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    key = _varint((number << 3) | wire)
    if wire == 2:
        return key + _varint(len(payload)) + payload
    return key + payload


def _event(wall_time: float, step: int, body: bytes) -> bytes:
    # Event: wall_time = 1 (double), step = 2 (int64), file_version = 3, summary = 5.
    return _field(1, 1, struct.pack("<d", wall_time)) + _field(2, 0, _varint(step)) + body


def _scalar_value(tag: str, value: float) -> bytes:
    # TensorProto: dtype = 1 (DT_FLOAT = 1), tensor_shape = 2 (empty: a scalar), float_val = 5.
    tensor = _field(1, 0, _varint(1)) + _field(2, 2, b"") + _field(5, 2, struct.pack("<f", value))
    # SummaryMetadata.plugin_data = 1 -> PluginData.plugin_name = 1: the scalars plugin.
    metadata = _field(1, 2, _field(1, 2, b"scalars"))
    # Summary.Value: tag = 1, tensor = 8, metadata = 9.
    return _field(1, 2, tag.encode()) + _field(8, 2, tensor) + _field(9, 2, metadata)


class EventFileWriter:
    """Append scalar summaries to a TensorBoard event file in ``logdir``.

    Args:
        logdir: the folder (created if missing); Katib's TensorFlowEvent collector reads every
            file under its ``fileSystemPath``.
    """

    def __init__(self, logdir: str | Path) -> None:
        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        now = time.time()
        name = f"events.out.tfevents.{int(now)}.{socket.gethostname()}.{os.getpid()}.0"
        self.path = self.logdir / name
        self._file = self.path.open("ab")
        self._write(_event(now, 0, _field(3, 2, b"brain.Event:2")))

    def _write(self, record: bytes) -> None:
        header = struct.pack("<Q", len(record))
        self._file.write(header + struct.pack("<I", _masked_crc(header)))
        self._file.write(record + struct.pack("<I", _masked_crc(record)))
        self._file.flush()

    def add_scalars(self, metrics: Mapping[str, float], step: int) -> None:
        """Write one event holding every metric as a scalar at ``step``."""
        summary = b"".join(_field(1, 2, _scalar_value(k, v)) for k, v in metrics.items())
        self._write(_event(time.time(), step, _field(5, 2, summary)))

    def close(self) -> None:
        """Close the file."""
        self._file.close()


# --- Push collector --------------------------------------------------------------------------


def load_push_function() -> Callable[[dict[str, Any]], None]:
    """Import ``kubeflow.katib.report_metrics`` (the Katib SDK is not a hard dependency).

    Raises:
        ImportError: with an install hint when the SDK is missing.
    """
    try:
        module = importlib.import_module("kubeflow.katib")
    except ImportError as exc:
        raise ImportError(
            "the Katib SDK (kubeflow.katib, which provides report_metrics) is not "
            "installed: pip install kubeflow-katib"
        ) from exc
    push: Callable[[dict[str, Any]], None] = module.report_metrics
    return push


class MetricsReporter:
    """Send one epoch's metrics to every configured sink.

    Args:
        stream: where the ``name=value`` lines go; None means the current ``sys.stdout``.
        timestamps: prefix each line with an RFC3339 timestamp.
        event_writer: optional TensorBoard event file writer.
        push: optional ``report_metrics`` function of the Katib SDK.
    """

    def __init__(
        self,
        *,
        stream: TextIO | None = None,
        timestamps: bool = False,
        event_writer: EventFileWriter | None = None,
        push: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self._stream = stream
        self._timestamps = timestamps
        self._events = event_writer
        self._push = push

    def report(self, metrics: Mapping[str, float], step: int) -> None:
        """Print, write and push ``metrics`` for ``step`` (the epoch number)."""
        stamp = rfc3339_now() if self._timestamps else None
        stream = self._stream or sys.stdout
        for line in format_metric_lines(metrics, stamp):
            stream.write(line + "\n")
        stream.flush()
        if self._events is not None:
            self._events.add_scalars(metrics, step)
        if self._push is not None:
            self._push({k: float(v) for k, v in metrics.items()})

    def close(self) -> None:
        """Close the event file, if any."""
        if self._events is not None:
            self._events.close()
