"""Screening engine defaults on the TUNE problems, in process (a developer's tool, not the judge).

The suite (``benchmarks/suite.py``) is the judge: every arm through one Katib controller loop
over gRPC. Choosing a default needs many quick comparisons of one arm's variants, so this tool
runs the suite's own loop (``_suite_drive.run_grpc``: the same requests, the same answers) with
the service in process instead of behind gRPC, on the tune problems only, and appends one
line per variant to ``benchmarks/results/engine_tuning/screening.jsonl``. It refuses check
problems: a default chosen by looking at them would be a defect (docs/benchmarks.md).

    python -m benchmarks.engine_tune --algo gp-bo --seeds 10 --tag my-variant --set KEY=VALUE
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from multiprocessing import Pool
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from benchmarks import problems
from benchmarks._suite_drive import InProcess, Task, run_grpc

OUT = Path(__file__).resolve().parent / "results" / "engine_tuning" / "screening.jsonl"


def run(task: tuple[str, str, int, int, int, dict[str, str]]) -> tuple[str, int, float, float]:
    """One run; returns (problem, seed, best noise-free value, wall seconds)."""
    # one BLAS thread, as the service pins itself: multithreaded BLAS thrashes on small matrices
    threadpool_limits(limits=1, user_api="blas")
    name, algorithm, seed, budget, batch, settings = task
    result = run_grpc(
        Task(
            problem=name,
            arm=algorithm,
            batch=batch,
            seed=seed,
            budget=budget,
            settings=tuple(settings.items()),
        ),
        InProcess(),
    )
    if result.error:
        raise RuntimeError(f"{name} seed {seed}: {result.error}")
    return name, seed, min(result.true_values), result.wall_seconds


def compare(base_tag: str, new_tag: str, path: Path = OUT) -> str:
    """The screen's verdict on ``new_tag`` against ``base_tag`` (the last record of each):
    geometric mean over problems of the ratio of median final bests, and on how many seeds
    (same seed, same problem) and problems the new variant is lower."""
    records: dict[str, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        records[record["tag"]] = record

    def results(tags: str) -> dict[str, list[float]]:
        # "A + B": the seeds of screen A, then those of screen B (e.g. seeds 0-4 and 5-9)
        merged: dict[str, list[float]] = {}
        for tag in tags.split(" + "):
            if tag not in records:
                raise SystemExit(f"no screen tagged {tag!r} in {path}")
            for name, values in records[tag]["res"].items():
                merged.setdefault(name, []).extend(values)
        return merged

    base, new = results(base_tag), results(new_tag)
    common = [name for name in new if name in base]
    lines, logs, seeds_won, seeds, problems_won = [], [], 0, 0, 0
    for name in common:
        b, n = base[name], new[name]
        ratio = statistics.median(n) / max(statistics.median(b), 1e-12)
        logs.append(math.log(max(ratio, 1e-12)))
        won = sum(1 for x, y in zip(n, b, strict=False) if x < y)
        seeds_won += won
        seeds += min(len(n), len(b))
        problems_won += ratio < 1.0
        lines.append(
            f"  {name:20s} {statistics.median(b):.4f} -> {statistics.median(n):.4f}"
            f"  x{ratio:.3f}  lower on {won}/{min(len(n), len(b))} seeds"
        )
    geo = math.exp(sum(logs) / len(logs)) if logs else float("nan")
    lines.append(
        f"{new_tag!r} vs {base_tag!r}: geometric mean x{geo:.3f} over {len(common)} problems; "
        f"lower on {seeds_won}/{seeds} seeds and {problems_won}/{len(common)} problems"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.engine_tune", description=__doc__)
    p.add_argument("--algo", default="gp-bo")
    p.add_argument("--problems", nargs="+", default=list(problems.TUNE))
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument(
        "--first-seed", type=int, default=0, help="seeds FIRST..FIRST+SEEDS-1 (to extend a screen)"
    )
    p.add_argument("--budget", type=int, default=60)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    p.add_argument("--tag", default="")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument(
        "--compare",
        nargs=2,
        metavar=("BASE_TAG", "NEW_TAG"),
        help="print two stored screens side by side and run nothing",
    )
    ns = p.parse_args(argv)
    if ns.compare:
        print(compare(*ns.compare))
        return
    off = [name for name in ns.problems if name not in problems.TUNE]
    if off:
        p.error(f"not tune problems: {off} (check problems are only reported)")
    settings = dict(kv.split("=", 1) for kv in ns.set)
    tasks = [
        (name, ns.algo, s, ns.budget, ns.batch, settings)
        for s in range(ns.first_seed, ns.first_seed + ns.seeds)
        for name in ns.problems
    ]
    with Pool(ns.jobs) as pool:
        results = pool.map(run, tasks, chunksize=1)
    by_problem: dict[str, list[float]] = {}
    for name, _seed, value, _wall in results:
        by_problem.setdefault(name, []).append(value)
    tag = ns.tag or f"{ns.algo} {settings}"
    for name, values in by_problem.items():
        print(f"{tag}  {name:20s} median {statistics.median(values):.4f}")
    record: dict[str, Any] = {
        "tag": tag,
        "budget": ns.budget,
        "batch": ns.batch,
        "first_seed": ns.first_seed,
        "res": by_problem,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("a") as fh:
        fh.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
