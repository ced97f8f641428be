"""Trial metrics the way Katib's StdOut and File collectors read them, and their reduction.

Katib's rule (``pkg/metricscollector/v1beta1/file-metricscollector``): only lines that contain one
of the metric names are scanned; a line may start with an RFC3339 timestamp and a space, which is
split off; every match of each filter regex gives (name, value) from its first two groups, and a
match counts when the name is exactly one of the experiment's metric names. Repeated prints form a
time series, reduced per metric by ``min``, ``max`` or ``latest`` before the suggestion service
sees them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

#: Katib's default StdOut/File filter. ``\w`` is ASCII-only in Go, hence ``re.ASCII``.
DEFAULT_FILTER = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
STRATEGIES = ("min", "max", "latest")


@dataclass(frozen=True)
class MetricLog:
    """One reported value: ``timestamp`` is the line's RFC3339 prefix, or None; ``line`` the
    text it was read from (for messages: Katib's filter reads ``loss=nan`` as an empty value)."""

    name: str
    value: str
    timestamp: str | None = None
    line: str = field(default="", compare=False, repr=False)


def compile_filters(filters: Sequence[str] = ()) -> list[re.Pattern[str]]:
    """The experiment's ``metricsFormat`` regexes, or Katib's default when none are given."""
    return [re.compile(f, re.ASCII) for f in (filters or (DEFAULT_FILTER,))]


def parse_text(
    lines: Iterable[str], metric_names: Sequence[str], filters: Sequence[str] = ()
) -> list[MetricLog]:
    """Parse text output (the StdOut collector, or a File collector in TEXT format).

    Args:
        lines: the trial's output, one line per item (trailing newlines are ignored).
        metric_names: the objective metric and the additional metric names.
        filters: regexes with two groups (name, value); Katib's default when empty.

    Returns:
        Every matching (name, value) in output order, values exactly as printed.
    """
    patterns = compile_filters(filters)
    wanted = set(metric_names)
    out: list[MetricLog] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not any(m in line for m in wanted):
            continue
        timestamp: str | None = None
        head, sep, rest = line.partition(" ")
        if sep and _RFC3339.match(head):
            timestamp, line = head, rest
        for pattern in patterns:
            for match in pattern.finditer(line):
                if match.lastindex is None or match.lastindex < 2:
                    continue
                name, value = match.group(1).strip(), (match.group(2) or "").strip()
                if name in wanted:
                    out.append(MetricLog(name, value, timestamp, line[:120]))
    return out


def parse_json_lines(lines: Iterable[str], metric_names: Sequence[str]) -> list[MetricLog]:
    """Parse a File collector in JSON format: one object a line, optional ``timestamp`` key."""
    wanted = set(metric_names)
    out: list[MetricLog] = []
    for raw in lines:
        text = raw.strip()
        if not text:
            continue
        try:
            obj = json.loads(text)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        ts = obj.get("timestamp")
        timestamp = str(ts) if ts is not None else None
        for name, value in obj.items():
            if name in wanted:
                out.append(MetricLog(str(name), str(value), timestamp, text[:120]))
    return out


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def reduce_metrics(logs: Sequence[MetricLog], strategies: Mapping[str, str]) -> dict[str, str]:
    """Reduce each metric's series to one value, as Katib fills a trial's observation.

    Args:
        logs: parsed metric logs in output order.
        strategies: metric name -> ``min``, ``max`` or ``latest``; metrics not named use
            ``latest``.

    Returns:
        metric name -> value as printed. Values that are not finite numbers are skipped, so a
        metric only printed as ``loss=`` or ``loss=nan`` is absent.
    """
    series: dict[str, list[tuple[str, float]]] = {}
    for log in logs:
        value = _number(log.value)
        if value is None:
            continue
        series.setdefault(log.name, []).append((log.value, value))
    out: dict[str, str] = {}
    for name, values in series.items():
        strategy = strategies.get(name, "latest")
        if strategy == "min":
            out[name] = min(values, key=lambda v: v[1])[0]
        elif strategy == "max":
            out[name] = max(values, key=lambda v: v[1])[0]
        else:
            out[name] = values[-1][0]
    return out


def missing_metric_message(logs: Sequence[MetricLog], metric: str, where: str) -> str:
    """Why ``metric`` has no value: never printed, or printed only as non-numbers (what was
    seen, so ``loss=nan`` is not reported as "not found").

    Args:
        where: "output" or "file", for the message.
    """
    seen: list[str] = []
    for log in logs:
        if log.name != metric:
            continue
        shown = f"{metric}={log.value[:40]}" if log.value else f'"{log.line}"'
        if shown not in seen:
            seen.append(shown)
    if not seen:
        return f"objective metric {metric!r} not found in the trial's {where}"
    more = f" and {len(seen) - 3} more" if len(seen) > 3 else ""
    return (
        f"objective metric {metric!r} has no finite number in the trial's {where}: "
        f"saw {', '.join(seen[:3])}{more}"
    )
