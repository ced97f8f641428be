"""What Katib's StdOut/File (TEXT) collector does with a trial's output, in Python.

Mirrors ``parseLogsInTextFormat`` of Katib's file metrics collector: a line is scanned only if it
contains a metric name; a first space-separated token that parses as RFC3339 becomes the
timestamp; the default filter regex finds ``name=value`` pairs and keeps exact name matches.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

KATIB_DEFAULT_FILTER = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class MetricLog:
    """One observation as Katib stores it."""

    timestamp: str | None
    name: str
    value: str


def _rfc3339(token: str) -> bool:
    try:
        datetime.fromisoformat(token.replace("Z", "+00:00"))
    except ValueError:
        return False
    return "T" in token


def collect(text: str, metrics: Sequence[str]) -> list[MetricLog]:
    """Parse ``text`` like Katib; an objective (``metrics[0]``) never seen gives one
    ``unavailable`` entry, as Katib reports it."""
    reg = re.compile(KATIB_DEFAULT_FILTER)
    logs: list[MetricLog] = []
    for line in text.split("\n"):
        if not any(m in line for m in metrics):
            continue
        parts = line.split(" ", 1)
        stamp = parts[0] if len(parts) == 2 and _rfc3339(parts[0]) else None
        for match in reg.finditer(line):
            name, value = match.group(1).strip(), match.group(2).strip()
            if name in metrics:
                logs.append(MetricLog(stamp, name, value))
    if not any(log.name == metrics[0] for log in logs):
        return [MetricLog(None, metrics[0], UNAVAILABLE)]
    return logs


def series(text: str, name: str) -> list[float]:
    """The values of one metric in order; fails if Katib would store a value it cannot read."""
    values = []
    for log in collect(text, [name]):
        assert log.value != UNAVAILABLE, f"Katib finds no {name} in the output"
        value = float(log.value)  # Katib's DB stores the string; the service parses it
        assert math.isfinite(value), f"{name}={log.value} is not a finite number"
        values.append(value)
    return values
