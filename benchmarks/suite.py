"""The benchmark suite: our strategies and peer optimizers on the problem set, through Katib's API.

Problems: ``benchmarks/problems.py`` (a tune set to choose defaults on, a check set to report).
Arms: ``random``, ``gp-bo``, ``dc-bo``, ``sa-bo``, ``dcsa-bo`` (``dcsa serve``), ``tpe`` and
``optuna-gp`` (Optuna 5), ``hebo`` and ``botorch`` (separate environment), ``katib-tpe`` (Katib's
own Optuna service, one process per experiment) and ``skopt`` (the Katib-equivalent
``bayesianoptimization``); every one is a Katib suggestion service driven by the controller loop
that ``dcsa run`` and the tests share (``suggestion_service.local.controller``, through
``benchmarks/_suite_drive.run_grpc``). Definitions of every number: docs/benchmarks.md.

Run from the repository root::

    python -m benchmarks.suite --preset quick                # a minute
    python -m benchmarks.suite --set tune --arms gp-bo gp-bo@x --arm-settings gp-bo@x:K=V
    python -m benchmarks.suite --preset check --jobs 2       # about an hour on 2 cores

Writes ``runs.json``, ``table.md``, ``ranks-*.png`` and ``convergence-*.png`` under ``--out``.
Completed runs are also appended to ``<out>/checkpoint.jsonl`` (and the slow peers' to
``benchmarks/results/peer_runs/``); a later invocation reuses every run whose fingerprint
(server code, the loop's requests, arm settings, problem) still matches (``--fresh`` ignores
the checkpoint), so an interrupted suite resumes and ``--deadline`` can stop it in time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import multiprocessing as mp
import os
import platform
import queue
import shlex
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as ``python benchmarks/suite.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _suite_drive as drive
from benchmarks import _suite_report as report
from benchmarks import _suite_workers as workers
from benchmarks import problems as problem_set
from benchmarks._record import nothing_to_report, read_record
from benchmarks._suite_drive import (
    ARMS,
    DCSA_ARMS,
    REPO,
    SKOPT,
    Task,
    arm_kind,
    base_arm,
    problem,
)
from benchmarks._suite_workers import worker_main

#: The fast arms: our strategies and the peers that answer in well under a second.
OUR_ARMS = DCSA_ARMS
FAST_PEERS = ("tpe", "optuna-gp", "katib-tpe")
#: Slow peers: run last, cut first by a deadline, curves kept in benchmarks/results/peer_runs/.
SLOW_PEERS = (SKOPT, "katib-skopt", "hebo", "botorch")


def slow_priority(prob: str) -> tuple[int, str]:
    """Order of a slow arm's cells: the check set first, in its listed order."""
    order = problem_set.CHECK + problem_set.TUNE
    return (order.index(prob) if prob in order else len(order), prob)


@dataclass(frozen=True, kw_only=True)
class Block:
    """Problems x batch sizes run with the same arms, seeds and budget."""

    problems: tuple[str, ...]
    batches: tuple[int, ...]


@dataclass(frozen=True, kw_only=True)
class Preset:
    blocks: tuple[Block, ...]
    arms: tuple[str, ...]
    seeds: int
    budgets: tuple[int, ...]
    slow_seeds: int | None = None  # cap on the slow peers' seeds; None: all
    doc: str = ""


TUNE, CHECK = problem_set.TUNE, problem_set.CHECK

PRESETS = {
    "quick": Preset(
        blocks=(Block(problems=("unequal", "mixed4"), batches=(1,)),),
        arms=("random", "gp-bo", "dcsa-bo", "tpe"),
        seeds=2,
        budgets=(30,),
        doc="two tune problems, random/gp-bo/dcsa-bo/tpe, 2 seeds, 30 trials, batch 1",
    ),
    "medium": Preset(
        blocks=(
            Block(
                problems=(
                    "unequal",
                    "equal",
                    "interaction-0",
                    "interaction-0.1",
                    "interaction-0.5",
                ),
                batches=(1,),
            ),
            Block(problems=("unequal",), batches=(4,)),
        ),
        arms=("random", "skopt", "tpe", "gp-bo", "dc-bo", "sa-bo", "dcsa-bo"),
        seeds=10,
        budgets=(100,),
        doc="the old suite's preset (README figures of 2026-11-22): the 5 old problems at batch 1 "
        "plus unequal at batch 4, 10 seeds, 100 trials",
    ),
    "tune": Preset(
        blocks=(Block(problems=TUNE, batches=(1,)),),
        arms=("random", "gp-bo", "dcsa-bo", "tpe", "optuna-gp"),
        seeds=10,
        budgets=(60,),
        doc="the tune set at batch 1: the problems to choose engine defaults on",
    ),
    "check": Preset(
        blocks=(Block(problems=CHECK, batches=(1,)),),
        arms=(*OUR_ARMS, *FAST_PEERS, "hebo"),
        seeds=10,
        budgets=(60,),
        slow_seeds=10,
        doc="the check set at batch 1, our arms and the fast peers, 10 seeds, 60 trials; "
        "HEBO 10 seeds, from its stored runs (missing ones run last)",
    ),
    "full": Preset(
        blocks=(Block(problems=CHECK, batches=(1, 4)),),
        arms=(*OUR_ARMS, *FAST_PEERS, *SLOW_PEERS),
        seeds=10,
        budgets=(60, 100),
        slow_seeds=5,
        doc="the check set at batch 1 and 4, 60 and 100 trials, every arm, 10 seeds (slow peers 5)",
    ),
}


def _setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    return name.strip(), value.strip()


def _arm_setting(text: str) -> tuple[str, list[tuple[str, str]]]:
    arm, sep, rest = text.partition(":")
    if not sep or not rest:
        raise argparse.ArgumentTypeError(f"{text!r}: expected ARM:KEY=VALUE[,KEY=VALUE...]")
    return arm.strip(), [_setting(kv) for kv in rest.split(",") if kv.strip()]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.suite",
        description="The benchmark suite through the Katib gRPC API (docs/benchmarks.md).",
    )
    p.add_argument("--preset", choices=sorted(PRESETS), default="check")
    p.add_argument(
        "--set",
        choices=sorted(problem_set.SETS),
        default=None,
        help="the problem set (replaces the preset's problems)",
    )
    p.add_argument("--problems", nargs="+", default=None, help="replace the preset's problems")
    p.add_argument(
        "--arms",
        nargs="+",
        default=None,
        help=f"arms: {', '.join(ARMS)}; a variant <arm>@<label> takes its own --arm-settings",
    )
    p.add_argument(
        "--setting",
        type=_setting,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an algorithm setting sent to every one of our arms (repeatable)",
    )
    p.add_argument(
        "--arm-settings",
        type=_arm_setting,
        action="append",
        default=[],
        metavar="ARM:KEY=VALUE[,KEY=VALUE]",
        help="settings for one arm, e.g. gp-bo@init12:n_initial_points=12 (repeatable; "
        "these win over --setting)",
    )
    p.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 per arm")
    p.add_argument("--budget", type=int, nargs="+", default=None, help="trials per run")
    p.add_argument("--batch", type=int, nargs="+", default=None, help="batch sizes")
    p.add_argument(
        "--slow-seeds", type=int, default=None, help="cap on the slow peers' seeds (skopt, hebo...)"
    )
    p.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    p.add_argument(
        "--deadline",
        default=None,
        help="UTC HH:MM: a run starts only if expected (median wall time of its arm and batch "
        "so far) to finish by then; the report covers what finished",
    )
    p.add_argument("--fresh", action="store_true", help="ignore the checkpoint's runs")
    p.add_argument("--report-only", action="store_true", help="no runs: report from the checkpoint")
    p.add_argument(
        "--no-peer-cache",
        action="store_true",
        help="neither read nor extend the stored runs of slow peers (benchmarks/results/peer_runs)",
    )
    p.add_argument(
        "--prefix-budgets",
        type=int,
        nargs="+",
        default=[],
        metavar="N",
        help="also report cells of N trials read from the first N trials of longer runs (no "
        "arm here reads maxTrialCount: the first 60 trials of 100-trial runs equal 60-trial runs)",
    )
    p.add_argument("--no-plot", action="store_true")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output directory (default benchmarks/results/suite/<preset or set>)",
    )
    ns = p.parse_args(argv)
    if ns.out is None:
        ns.out = REPO / "benchmarks" / "results" / "suite" / (ns.set or ns.preset)
    for name in ("seeds", "jobs"):
        value = getattr(ns, name)
        if value is not None and value < 1:
            p.error(f"--{name} must be at least 1")
    for value in (ns.budget or []) + (ns.batch or []):
        if value < 1:
            p.error("--budget and --batch must be at least 1")
    for name in ns.problems or ():
        try:
            problem(name)
        except KeyError as exc:
            p.error(str(exc))
    for arm in [*(ns.arms or ()), *(a for a, _ in ns.arm_settings)]:
        try:
            arm_kind(arm)
        except KeyError as exc:
            p.error(str(exc))
    return ns


def arm_settings(ns: argparse.Namespace, arm: str) -> tuple[tuple[str, str], ...]:
    """The settings an arm's experiments carry: ``--setting`` for our arms, then the arm's own
    ``--arm-settings`` (by name, the later wins)."""
    out: dict[str, str] = {}
    if arm_kind(arm).ours:
        out.update(ns.setting)
    for name, kvs in ns.arm_settings:
        if name == arm:
            out.update(kvs)
    return tuple(out.items())


# ---- the plan -----------------------------------------------------------------------------------
def plan(ns: argparse.Namespace) -> tuple[list[Task], dict[str, Any]]:
    """The runs of this invocation, seed-major and with the arms interleaved, so that a
    deadline cuts the last seeds of every arm alike and load on shared cores hits all arms."""
    preset = PRESETS[ns.preset]
    blocks = preset.blocks
    if ns.set or ns.problems or ns.batch:
        problems = tuple(
            ns.problems
            or (problem_set.SETS[ns.set] if ns.set else ())
            or dict.fromkeys(p for b in blocks for p in b.problems)
        )
        batches = tuple(ns.batch or dict.fromkeys(x for b in blocks for x in b.batches))
        blocks = (Block(problems=problems, batches=batches),)
    arms = tuple(ns.arms or preset.arms)
    seeds = ns.seeds or preset.seeds
    budgets = tuple(ns.budget or preset.budgets)
    slow_seeds = ns.slow_seeds if ns.slow_seeds is not None else preset.slow_seeds
    cells = [
        (p, b, n)
        for n in budgets
        for block in blocks
        for b in block.batches
        for p in block.problems
    ]
    fast = tuple(a for a in arms if base_arm(a) not in SLOW_PEERS)
    slow = tuple(a for a in arms if base_arm(a) in SLOW_PEERS)
    settings = {a: arm_settings(ns, a) for a in arms}
    tasks: list[Task] = []
    for seed in range(seeds):
        for i, (prob, batch, budget) in enumerate(cells):
            k = (seed + i) % max(len(fast), 1)
            for arm in fast[k:] + fast[:k]:  # rotate which arm goes first
                tasks.append(
                    Task(
                        problem=prob,
                        arm=arm,
                        batch=batch,
                        seed=seed,
                        budget=budget,
                        settings=settings[arm],
                    )
                )
    # The slow arms go last, so that a deadline cuts their seeds and nothing else.
    n_slow = seeds if slow_seeds is None else min(seeds, slow_seeds)
    # seed-major, so that a cut run still covers every problem with its first seeds
    for arm in slow:
        for seed in range(n_slow):
            for prob, batch, budget in sorted(
                cells, key=lambda c: (c[2], c[1], slow_priority(c[0]))
            ):
                tasks.append(
                    Task(
                        problem=prob,
                        arm=arm,
                        batch=batch,
                        seed=seed,
                        budget=budget,
                        settings=settings[arm],
                    )
                )
    info = {
        "preset": ns.preset,
        "preset_doc": preset.doc,
        "set": ns.set,
        "blocks": [{"problems": list(b.problems), "batches": list(b.batches)} for b in blocks],
        "arms": list(arms),
        "arm_settings": {a: dict(v) for a, v in settings.items() if v},
        "seeds": seeds,
        "budgets": list(budgets),
        "slow_seeds": slow_seeds,
    }
    return tasks, info


# ---- fingerprints and the checkpoint -----------------------------------------------------------
def _digest(paths: Iterable[Path], extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for path in sorted(paths):
        h.update(str(path.relative_to(REPO)).encode())
        h.update(path.read_bytes() if path.exists() else b"absent")
    return h.hexdigest()[:16]


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def _venv_packages(venv: Path) -> str:
    """The distributions installed in a separate environment (names with versions)."""
    return " ".join(sorted(p.name for p in venv.glob("lib/python*/site-packages/*.dist-info")))


def server_fingerprints() -> dict[str, str]:
    """What the answers of each kind of server depend on: its code and its libraries. The
    problems are fingerprinted apart (``Problem.fingerprint``), so a new problem re-runs
    nothing else."""
    bench = REPO / "benchmarks"
    # the loop by what it sends (the hash of scripted runs' requests), not by its files' text
    loop = f"loop {drive.loop_fingerprint()}"
    # What ``dcsa serve`` runs to answer GetSuggestions; the operator, the local runner and the
    # CLI's other commands do not change a suggestion.
    pkg = REPO / "suggestion_service"
    service = [
        p
        for part in ("core", "katib", "_generated")
        for p in (pkg / part).rglob("*.py")
        if "__pycache__" not in p.parts
    ] + [pkg / "server.py", pkg / "__init__.py"]
    katib_src = workers.KATIB_SRC / "pkg" / "suggestion" / "v1beta1"
    katib_code = sorted(katib_src.rglob("*.py")) if katib_src.is_dir() else []
    katib = hashlib.sha256(b"".join(p.read_bytes() for p in katib_code)).hexdigest()[:16]
    return {
        "dcsa": _digest(service, f"{loop} numpy {_version('numpy')} scipy {_version('scipy')}"),
        "skopt": _digest(
            [bench / "skopt_service.py"],
            f"{loop} skopt {_version('scikit-optimize')} sklearn {_version('scikit-learn')}",
        ),
        "peers": _digest(
            [bench / "peer_service.py"],
            f"{loop} optuna {_version('optuna')} torch {_version('torch')}",
        ),
        "peers-ext": _digest(
            [bench / "peer_service.py"], f"{loop} {_venv_packages(workers.PEER_VENV)}"
        ),
        "katib-optuna": _digest(
            [bench / "katib_service.py"],
            f"{loop} katib {katib} {_venv_packages(workers.KATIB_VENV)}",
        ),
        "katib-skopt": _digest(
            [bench / "katib_service.py"],
            f"{loop} katib {katib} {_venv_packages(workers.KATIB_SKOPT_VENV)}",
        ),
    }


class Fingerprints:
    """The fingerprint of a task: its server's code and libraries, the arm's settings and the
    problem's definition. A stored run is reused only when all three match."""

    def __init__(self) -> None:
        self.servers = server_fingerprints()
        self._problems: dict[str, str] = {}

    def __call__(self, task: Task) -> str:
        if task.problem not in self._problems:
            self._problems[task.problem] = problem(task.problem).fingerprint()
        settings = hashlib.sha256(json.dumps(task.settings).encode()).hexdigest()[:8]
        server = self.servers[arm_kind(task.arm).server]
        return f"{server}-{settings}-{self._problems[task.problem]}"


def load_runs(
    paths: Iterable[Path], tasks: Sequence[Task], prints: Fingerprints
) -> dict[str, dict[str, Any]]:
    """The runs stored in checkpoint files whose fingerprint matches a planned task's."""
    wanted = {t.key: prints(t) for t in tasks}
    done: dict[str, dict[str, Any]] = {}
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by an interrupted write
            run = entry["run"]
            if wanted.get(entry["key"]) == entry["fingerprint"] and not run["error"]:
                done[entry["key"]] = run
    return done


def peer_store(arm: str) -> Path:
    """The committed runs of a slow peer (its curves are deterministic per seed)."""
    return REPO / "benchmarks" / "results" / "peer_runs" / f"{arm.replace('@', '_')}.jsonl"


# ---- running ----------------------------------------------------------------------------------
def _deadline(text: str | None) -> float | None:
    """``HH:MM`` UTC today (tomorrow if already past) as a ``time.time()`` value."""
    if text is None:
        return None
    now = dt.datetime.now(dt.UTC)
    hh, mm = (int(x) for x in text.split(":"))
    at = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
    if at < now - dt.timedelta(hours=12):
        at += dt.timedelta(days=1)
    return at.timestamp()


def execute(
    tasks: Sequence[Task],
    *,
    jobs: int,
    checkpoint: Path,
    prints: dict[str, str],
    store_slow: bool = True,
    deadline: float | None,
    past: Iterable[dict[str, Any]] = (),
) -> tuple[dict[str, dict[str, Any]], int]:
    """Run ``tasks`` on ``jobs`` workers, appending each result to the checkpoint as it comes.

    With a ``deadline``, a task starts only if it is expected to finish by then: its expected
    duration is the median wall time of the runs of the same arm and batch seen so far (``past``
    runs, e.g. from the checkpoint, and this execution's). Returns the results by key and how
    many tasks were left unstarted."""
    ctx = mp.get_context("spawn")
    task_q: Any = ctx.Queue()
    result_q: Any = ctx.Queue()
    workers = [
        ctx.Process(target=worker_main, args=(task_q, result_q, i), daemon=True)
        for i in range(min(jobs, len(tasks)))
    ]
    for w in workers:
        w.start()
    pending = list(tasks)
    out: dict[str, dict[str, Any]] = {}
    in_flight = 0
    skipped: list[Task] = []
    started = time.monotonic()

    walls: dict[tuple[str, int], list[float]] = {}
    for run in past:
        walls.setdefault((run["arm"], run["batch"]), []).append(run["wall_seconds"])

    def dispatch() -> None:
        nonlocal in_flight
        while pending:
            task = pending.pop(0)
            seen = walls.get((task.arm, task.batch))
            expected = statistics.median(seen) if seen else 0.0
            if deadline is None or time.time() + expected < deadline:
                task_q.put(task)
                in_flight += 1
                return
            skipped.append(task)

    try:
        for _ in workers:
            dispatch()
        with checkpoint.open("a") as ck:
            while in_flight:
                try:
                    key, run = result_q.get(timeout=5.0)
                except queue.Empty:
                    if not any(w.is_alive() for w in workers):
                        raise RuntimeError("every worker died") from None
                    continue
                in_flight -= 1
                out[key] = run
                arm = run["arm"]
                if not run["error"]:
                    walls.setdefault((arm, run["batch"]), []).append(run["wall_seconds"])
                line = json.dumps({"key": key, "fingerprint": prints[key], "run": run})
                ck.write(line + "\n")
                ck.flush()
                if store_slow and base_arm(arm) in SLOW_PEERS and not run["error"]:
                    store = peer_store(arm)
                    store.parent.mkdir(parents=True, exist_ok=True)
                    with store.open("a") as f:
                        f.write(line + "\n")
                _progress(run, len(out), len(tasks), time.monotonic() - started)
                dispatch()
        for _ in workers:
            task_q.put(None)
        for w in workers:
            w.join(timeout=30)
    finally:
        for w in workers:
            if w.is_alive():
                w.terminate()
                w.join(timeout=30)
    return out, len(pending) + len(skipped)


def _progress(run: dict[str, Any], done: int, total: int, elapsed: float) -> None:
    vals = run["values"]
    best = min(vals) if vals else float("nan")
    eta = elapsed / done * (total - done)
    err = f" ERROR {run['error'].splitlines()[-1]}" if run["error"] else ""
    print(
        f"[{done}/{total} {elapsed / 60:5.1f} min, eta {eta / 60:5.1f} min] "
        f"{run['problem']:16s} b{run['batch']} {run['arm']:8s} s{run['seed']:<2d} "
        f"best {best:.4g} {run['wall_seconds']:7.1f} s load {run.get('load1_at_start', 0):.1f}"
        f"{err}",
        flush=True,
    )


# ---- outputs ----------------------------------------------------------------------------------
def command_line(argv: Sequence[str] | None) -> str:
    args = list(sys.argv[1:] if argv is None else argv)
    return shlex.join(["python", "-m", "benchmarks.suite", *args])


def seeds_per_arm(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, int]]:
    out: dict[str, Counter[str]] = {}
    for r in runs:
        if r["error"]:
            continue
        out.setdefault(f"{r['problem']} b{r['batch']}", Counter())[r["arm"]] += 1
    return {cell: dict(c) for cell, c in out.items()}


def prefix_runs(runs: Sequence[dict[str, Any]], budgets: Sequence[int]) -> list[dict[str, Any]]:
    """Runs of ``n`` trials read from the first ``n`` trials of longer runs, for each ``n`` in
    ``budgets`` where no run of ``n`` trials exists for that (problem, arm, batch, seed).

    Valid because no arm's answers depend on the Experiment's ``maxTrialCount`` (our strategies
    do not read it; the peers do not know it): a run's first ``n`` trials are the run of ``n``.
    """
    have = {(r["problem"], r["arm"], r["batch"], r["seed"], r["budget"]) for r in runs}
    out = []
    for n in budgets:
        for r in runs:
            key = (r["problem"], r["arm"], r["batch"], r["seed"], n)
            if r["error"] or r["budget"] <= n or len(r["values"]) < n or key in have:
                continue
            have.add(key)
            calls = -(-n // r["batch"])
            out.append(
                r
                | {
                    "budget": n,
                    "prefix_of": r["budget"],
                    **{k: r[k][:n] for k in ("values", "true_values", "origins")},
                    "call_seconds": r["call_seconds"][:calls],
                }
            )
    return out


def write_outputs(
    ns: argparse.Namespace,
    runs: list[dict[str, Any]],
    meta: dict[str, Any],
    argv: Sequence[str] | None,
) -> None:
    out = ns.out
    out.mkdir(parents=True, exist_ok=True)
    derived = prefix_runs(runs, ns.prefix_budgets)
    summaries = report.summarise([r for r in [*runs, *derived] if not r["error"]])
    (out / "runs.json").write_text(json.dumps({"meta": meta, "runs": runs}, separators=(",", ":")))
    lines = [
        "# Benchmark suite",
        "",
        "Produced by:",
        "",
        "```",
        meta["command"],
        "```",
        "",
        f"Preset `{meta['plan']['preset']}`: {meta['plan']['preset_doc']}. "
        f"Budgets {meta['plan']['budgets']} trials; seeds per arm below (slow peers' cap "
        f"{meta['plan']['slow_seeds']}); {meta['jobs']} worker(s) on {meta['cpus']} CPU(s), "
        f"suite wall time {meta['wall_seconds'] / 60:.1f} min"
        + (
            f" (+ {meta['reused_runs']} runs reused from the checkpoint, same code fingerprint)"
            if meta["reused_runs"]
            else ""
        )
        + (f"; {meta['unstarted']} runs not started (deadline)" if meta["unstarted"] else "")
        + f". Finished {meta['finished_utc']}."
        + (
            f" Cells of {ns.prefix_budgets} trials without runs of their own read the first "
            f"trials of longer runs ({len(derived)} runs; `--prefix-budgets`)."
            if derived
            else ""
        ),
        "",
        "Rank: 1 = the lowest median final best in the cell (problem, batch, trials) among the "
        "arms run. Efficiency vs B = T_B / T_arm, T = the first trial at which a median "
        "best-so-far curve reaches B's median final best; '< x' means the arm never reached it "
        "(bound). Wins vs random: seeds where the arm's final best is lower than random's with the "
        "same seed. AUC = mean of the median best-so-far curve (a uniform random point scores "
        "about 1). s/call = mean wall time of one GetSuggestions call; s/run = median wall time "
        "of a run. Only the check set judges the engine; the tune set is the one to choose "
        "defaults on. See docs/benchmarks.md.",
        "",
        "## Criteria on the check set (issue 10: gp-bo; issue 11: dcsa-bo)",
        "",
        *report.criteria(summaries, "check"),
        "",
        "## The same lines on the tune set (for tuning; not the criteria)",
        "",
        *report.criteria(summaries, "tune"),
        "",
        "## Median rank over problems",
        "",
        report.rank_table_md(summaries),
        "",
        "## Table",
        "",
        report.table_md(summaries),
    ]
    (out / "table.md").write_text("\n".join(lines))
    if not ns.no_plot:
        report.plot(summaries, out)
    start = lines.index("## Criteria on the check set (issue 10: gp-bo; issue 11: dcsa-bo)")
    print("\n".join(lines[start : lines.index("## Table")]))
    print(f"table and plots: {out}")


# what --report-only keeps from the record it reports: how and when its runs were made
RECORD_META = (
    "jobs",
    "cpus",
    "platform",
    "python",
    "versions",
    "fingerprints",
    "wall_seconds",
    "finished_utc",
    "reused_runs",
)


def main(argv: Sequence[str] | None = None) -> int:
    ns = parse_args(argv)
    tasks, info = plan(ns)
    ns.out.mkdir(parents=True, exist_ok=True)
    checkpoint = ns.out / "checkpoint.jsonl"
    fingerprint = Fingerprints()
    prints = {t.key: fingerprint(t) for t in tasks}
    stores = sorted({peer_store(t.arm) for t in tasks if base_arm(t.arm) in SLOW_PEERS})
    stores = [] if ns.no_peer_cache else stores
    done = {} if ns.fresh else load_runs([checkpoint], tasks, fingerprint)
    # the stored runs of slow peers are reused even with --fresh: they are deterministic
    done.update({k: v for k, v in load_runs(stores, tasks, fingerprint).items() if k not in done})
    recorded, record_meta = {}, {}
    if ns.report_only:
        # the published record first, then the checkpoint's runs of this code over it
        recorded, record_meta = read_record(
            ns.out / "runs.json",
            lambda r: Task(
                problem=r["problem"], arm=r["arm"], batch=r["batch"], seed=r["seed"],
                budget=r["budget"],
            ).key,
            {t.key for t in tasks},
        )  # fmt: skip
        done = {**recorded, **done}
        if not done:
            return nothing_to_report([checkpoint, ns.out / "runs.json", "the slow peers' stores"])
    todo = [t for t in tasks if t.key not in done]
    source = f"{checkpoint} and {ns.out / 'runs.json'}" if recorded else str(checkpoint)
    print(
        f"# {len(tasks)} runs planned, {len(tasks) - len(todo)} reused from {source}, "
        + (
            f"{len(todo)} without a run (--report-only runs none)"
            if ns.report_only
            else f"{len(todo)} to run on {ns.jobs} worker(s)"
        ),
        flush=True,
    )
    started = time.monotonic()
    fresh: dict[str, dict[str, Any]] = {}
    unstarted = 0
    if todo and not ns.report_only:
        fresh, unstarted = execute(
            todo,
            jobs=ns.jobs,
            checkpoint=checkpoint,
            prints=prints,
            store_slow=not ns.no_peer_cache,
            deadline=_deadline(ns.deadline),
            past=done.values(),
        )
    runs = [fresh.get(t.key) or done.get(t.key) for t in tasks]
    kept = [r for r in runs if r is not None]
    meta = {
        "command": command_line(argv),
        "plan": info,
        "jobs": ns.jobs,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            d: _version(d)
            for d in ("numpy", "scipy", "scikit-optimize", "optuna", "torch", "grpcio")
        },
        "fingerprints": fingerprint.servers,
        "wall_seconds": round(time.monotonic() - started, 1),
        "finished_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "reused_runs": sum(t.key in done and t.key not in fresh for t in tasks),
        "unstarted": unstarted + (len(todo) if ns.report_only else 0),
        "seeds_per_arm": seeds_per_arm(kept),
    }
    if recorded:
        # a report of runs made before: say when and how they were made, not this call's figures
        meta.update({k: record_meta[k] for k in RECORD_META if k in record_meta})
        record = (ns.out / "runs.json").resolve()
        meta["reported_from"] = str(
            record.relative_to(REPO) if record.is_relative_to(REPO) else record
        )
    write_outputs(ns, kept, meta, argv)
    failed = [r for r in fresh.values() if r["error"]]
    for r in failed:
        print(f"FAILED {r['problem']} {r['arm']} b{r['batch']} s{r['seed']}: {r['error']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
