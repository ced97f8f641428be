"""Regenerate the README's settings and metrics tables from the code (the single source).

`python scripts/gen_docs.py` rewrites the blocks between the markers in README.md;
`python scripts/gen_docs.py --check` fails if they are stale (run by tests/test_docs.py).
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from suggestion_service.core.registry import algorithm_names, get_strategy  # noqa: E402
from suggestion_service.observability.metrics import create_metrics  # noqa: E402


def settings_table() -> str:
    """One row per setting; a default that differs between algorithms is shown per algorithm."""
    names = algorithm_names()
    seen: dict[str, tuple[str, str, dict[str, str]]] = {}
    for alg in names:
        for s in get_strategy(alg).settings.settings:
            default = "derived" if s.default is None else str(s.default)
            seen.setdefault(s.name, (s.type_name, s.doc, {}))[2][alg] = default
    lines = ["| setting | type | default | algorithms | meaning |", "|---|---|---|---|---|"]
    for name, (type_name, doc, defaults) in seen.items():
        algs = list(defaults)
        where = "all" if len(algs) == len(names) else ", ".join(algs)
        if len(set(defaults.values())) == 1:
            default = f"`{next(iter(defaults.values()))}`"
        else:
            default = ", ".join(f"`{d}` ({a})" for a, d in defaults.items())
        text = doc.replace("<", "&lt;").replace("|", "\\|")
        lines.append(f"| `{name}` | {type_name} | {default} | {where} | {text} |")
    return "\n".join(lines)


def metrics_table() -> str:
    m = create_metrics()
    lines = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    for metric in m.registry.collect():
        labels: set[str] = set()
        for sample in metric.samples:
            labels |= set(sample.labels)
        # label names of metrics without samples yet come from the collector objects
        for obj in vars(m).values():
            if getattr(obj, "_name", None) in (metric.name, metric.name + "_total"):
                labels |= set(getattr(obj, "_labelnames", ()))
        name = metric.name + ("_total" if metric.type == "counter" else "")
        if metric.type == "info":
            name = metric.name + "_info"
        lab = ", ".join(f"`{x}`" for x in sorted(labels)) or "-"
        lines.append(f"| `{name}` | {metric.type} | {lab} | {metric.documentation} |")
    return "\n".join(lines)


BLOCKS = {"settings": settings_table, "metrics": metrics_table}


def render(text: str) -> str:
    for key, fn in BLOCKS.items():
        pattern = re.compile(rf"(<!-- BEGIN {key} -->\n)(?:.*?\n)?(<!-- END {key} -->)", flags=re.S)
        if not pattern.search(text):
            raise SystemExit(f"README.md lacks the {key} markers")
        text = pattern.sub(lambda m, fn=fn: m.group(1) + fn() + "\n" + m.group(2), text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    ns = parser.parse_args()
    readme = ROOT / "README.md"
    old = readme.read_text()
    new = render(old)
    if ns.check:
        if new != old:
            print("README.md tables are stale: run python scripts/gen_docs.py", file=sys.stderr)
            return 1
        return 0
    readme.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
