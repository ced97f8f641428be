"""A benchmark's published record (``runs.json``) read back for ``--report-only``.

A clean clone has the committed ``runs.json`` but no checkpoint (it is gitignored), so a report
made there must come from the record; before it did, ``--report-only`` rewrote the record with
no runs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Container, Mapping, Sequence
from pathlib import Path
from typing import Any


def read_record(
    path: Path, key: Callable[[Mapping[str, Any]], str], wanted: Container[str]
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The record's runs whose ``key`` is ``wanted`` and that did not fail, by key, and its
    meta; both empty when there is no record. A record that is not JSON stops the report with
    its path named (and is left as it was)."""
    if not path.exists():
        return {}, {}
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--report-only: {path} is not a JSON record of runs ({exc})") from exc
    runs = {key(r): r for r in record.get("runs", []) if not r["error"]}
    return {k: r for k, r in runs.items() if k in wanted}, record.get("meta", {})


def nothing_to_report(places: Sequence[object]) -> int:
    """Say that no planned run was found in ``places`` and that nothing was written; exit 2."""
    print(
        f"--report-only: no planned run in {', '.join(map(str, places))}; nothing written",
        file=sys.stderr,
    )
    return 2
