"""Real-task arm of the benchmark (issue 5): dcsa-bo against gp-bo and random on the trial image's
built-in ``digits`` and ``diabetes`` tasks, run end to end with the local runner.

For each task the example Experiment in ``manifests/examples/<task>.yaml`` is read, and per run
(task x seed x arm) only these fields are changed: ``metadata.name``, ``algorithm.algorithmName``,
the ``random_state`` setting (the seed; settings the arm does not declare, such as dcsa-bo's
``subnetworks``, are dropped), ``maxTrialCount``, ``parallelTrialCount``, ``maxFailedTrialCount``
(= the budget, so that a failed trial costs budget but never ends a run early), the BO arms'
``n_initial_points`` (``--n-initial``, default 4: the service's default of 10 would leave only 2
model-guided trials of a 12-trial budget), and, when asked with ``--epochs``, the trial's
``--epochs`` flag (by default the example's own: digits 3, diabetes 8); ``--num-threads=1`` is
enforced. The full data set is used (an example's ``--max-samples``, which mnist1d's sets to keep
the cluster demo short, is removed), so the accuracies and errors are the honest validation
scores of the example Experiments' models. The run goes through
``suggestion_service.local``'s ``run_command`` (the in-process service over gRPC, trials as
local processes, exactly as ``dcsa run FILE --plain --state-dir DIR``); the per-trial values are
read back from the state directory's ``state.json``.

Arms are interleaved per seed (seed 0: random, gp-bo, dcsa-bo; seed 1: ...) so that machine noise
hits every arm alike. ``runs.json`` is rewritten after every run; ``--resume`` skips runs already
in it (same task, arm, seed, trials, parallel, epochs and n_initial) and only rewrites the reports.

Outputs in ``--out``: ``runs.json`` (every trial of every run), ``table.md`` (per task x arm:
median and IQR over seeds of the final best objective, median best after half the budget, wall
time), ``convergence-<task>.png`` (median best-so-far against the trial number, IQR band).

    python -m benchmarks.real_tasks --seeds 3 --trials 12 --parallel 2
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import math
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from suggestion_service.core.registry import get_strategy
from suggestion_service.local.commands import run_command

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "manifests" / "examples"
TASKS = ("digits", "diabetes")
ARMS = ("random", "gp-bo", "dcsa-bo")
ARM_SHORT = {"random": "rnd", "gp-bo": "gp", "dcsa-bo": "dcsa"}
COLORS = {"random": "tab:gray", "gp-bo": "tab:blue", "dcsa-bo": "tab:red"}
SUCCEEDED = "Succeeded"


@dataclass(frozen=True)
class RunSpec:
    task: str
    arm: str
    seed: int
    trials: int
    parallel: int
    epochs: int | None
    n_initial: int | None

    @property
    def name(self) -> str:
        name = f"rt-{self.task}-{ARM_SHORT[self.arm]}-s{self.seed}"
        assert len(name) <= 40, name
        return name

    def key(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "arm": self.arm,
            "seed": self.seed,
            "trials": self.trials,
            "parallel": self.parallel,
            "epochs": self.epochs,
            "n_initial": self.n_initial,
        }


def load_example(task: str) -> dict[str, Any]:
    with open(EXAMPLES / f"{task}.yaml", encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    if not isinstance(doc, dict) or doc.get("kind") != "Experiment":
        raise SystemExit(f"{EXAMPLES / f'{task}.yaml'}: not an Experiment")
    return doc


def _primary_container(doc: Mapping[str, Any]) -> dict[str, Any]:
    spec = doc["spec"]["trialTemplate"]
    primary = spec["primaryContainerName"]
    containers = spec["trialSpec"]["spec"]["template"]["spec"]["containers"]
    for c in containers:
        if c["name"] == primary:
            return dict(c)
    raise SystemExit(f"no primary container {primary!r} in the trial template")


def _cut_flag(command: Sequence[str], flag: str) -> tuple[list[str], list[int]]:
    """``command`` without ``--flag=V`` / ``--flag V``, and where in what is left each
    occurrence stood."""
    out: list[str] = []
    at: list[int] = []
    skip = False
    for i, arg in enumerate(command):
        if skip:
            skip = False
        elif arg.startswith(flag + "=") or (arg == flag and i + 1 < len(command)):
            at.append(len(out))
            skip = arg == flag
        else:
            out.append(arg)
    return out, at


def _set_flag(command: Sequence[str], flag: str, value: str) -> list[str]:
    """Replace ``--flag=V`` / ``--flag V`` in ``command``, or append ``--flag=value``."""
    out, at = _cut_flag(command, flag)
    for k in reversed(at):
        out.insert(k, f"{flag}={value}")
    if not at:
        out.append(f"{flag}={value}")
    return out


def _drop_flag(command: Sequence[str], flag: str) -> list[str]:
    """``command`` without ``--flag=V`` / ``--flag V``."""
    return _cut_flag(command, flag)[0]


def _get_flag(command: Sequence[str], flag: str) -> str | None:
    for i, arg in enumerate(command):
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
        if arg == flag and i + 1 < len(command):
            return command[i + 1]
    return None


def make_experiment(base: Mapping[str, Any], run: RunSpec) -> dict[str, Any]:
    """The example Experiment with this run's name, arm, seed, budget and cheap trials."""
    doc: dict[str, Any] = copy.deepcopy(dict(base))
    doc["metadata"] = {**doc.get("metadata", {}), "name": run.name}
    spec = doc["spec"]
    allowed = set(get_strategy(run.arm).settings.names())
    settings = [
        s
        for s in spec["algorithm"].get("algorithmSettings", []) or []
        if s["name"] in allowed and s["name"] != "random_state"
    ]
    settings.insert(0, {"name": "random_state", "value": str(run.seed)})
    if run.n_initial is not None and "n_initial_points" in allowed:
        settings = [s for s in settings if s["name"] != "n_initial_points"]
        settings.append({"name": "n_initial_points", "value": str(run.n_initial)})
    spec["algorithm"] = {"algorithmName": run.arm, "algorithmSettings": settings}
    spec["maxTrialCount"] = run.trials
    spec["parallelTrialCount"] = run.parallel
    spec["maxFailedTrialCount"] = run.trials
    tspec = spec["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    primary = spec["trialTemplate"]["primaryContainerName"]
    for c in tspec["containers"]:
        if c["name"] != primary:
            continue
        command = [str(a) for a in c["command"]]
        if run.epochs is not None:
            command = _set_flag(command, "--epochs", str(run.epochs))
        command = _drop_flag(_set_flag(command, "--num-threads", "1"), "--max-samples")
        c["command"] = command
    return doc


def trial_records(state: Mapping[str, Any], metric: str) -> list[dict[str, Any]]:
    """Every trial of a state.json, in creation order, with its objective (None unless
    Succeeded)."""
    out = []
    for i, t in enumerate(state["trials"]):
        metrics = {m["name"]: m["value"] for m in t.get("metrics", [])}
        value: float | None = None
        if t["condition"] == SUCCEEDED and metric in metrics:
            v = float(metrics[metric])
            value = v if math.isfinite(v) else None
        out.append(
            {
                "index": i,
                "name": t["name"],
                "condition": t["condition"],
                "objective": value,
                "metrics": metrics,
                "assignments": {a["name"]: a["value"] for a in t["assignments"]},
                "labels": t.get("labels", {}),
                "seconds": t.get("seconds"),
                "exit_code": t.get("exitCode"),
                "start_time": t.get("startTime"),
                "completion_time": t.get("completionTime"),
            }
        )
    return out


def best_so_far(values: Sequence[float | None], maximize: bool, n: int) -> np.ndarray:
    """Best objective after each of the first ``n`` trials (NaN before the first success)."""
    out = np.full(n, np.nan)
    best = math.nan
    for i in range(n):
        v = values[i] if i < len(values) else None
        if v is not None and (math.isnan(best) or (v > best if maximize else v < best)):
            best = v
        out[i] = best
    return out


def execute(run: RunSpec, base: Mapping[str, Any], workdir: Path, tmp: Path) -> dict[str, Any]:
    return {**run.key(), **execute_doc(make_experiment(base, run), workdir, tmp)}


def execute_doc(doc: Mapping[str, Any], workdir: Path, tmp: Path) -> dict[str, Any]:
    """Run one prepared Experiment (``dcsa run``) with its state in ``tmp/<name>``; its record
    without the run's key (``execute`` adds it; benchmarks/real_mf.py prepares its own
    documents). The state directory, trial logs included, stays in ``tmp``."""
    name = str(doc["metadata"]["name"])
    exp_file = tmp / f"{name}.yaml"
    exp_file.write_text(yaml.safe_dump(dict(doc), sort_keys=False), encoding="utf-8")
    state_dir = tmp / name
    buf = io.StringIO()
    t0 = time.monotonic()
    code = run_command([exp_file], state_dir=state_dir, workdir=workdir, live=False, out=buf)
    wall = time.monotonic() - t0
    state_file = state_dir / "state.json"
    if not state_file.exists():
        sys.stderr.write(buf.getvalue())
        raise SystemExit(f"{name}: no state.json (exit code {code})")
    state = json.loads(state_file.read_text(encoding="utf-8"))
    objective = doc["spec"]["objective"]
    metric = objective["objectiveMetricName"]
    command = _primary_container(doc)["command"]
    return {
        "name": name,
        "objective_metric": metric,
        "objective_type": objective["type"],
        "exit_code": code,
        "status": state.get("status"),
        "stop_reason": state.get("stopReason"),
        "wall_seconds": wall,
        "trial_command": command,
        "algorithm_settings": doc["spec"]["algorithm"]["algorithmSettings"],
        "trials_run": trial_records(state, metric),
    }


def _fmt(v: float, task: str) -> str:
    if math.isnan(v):
        return "n/a"
    return f"{v:.4f}" if task == "digits" else f"{v:.1f}"


def summarize(
    runs: Sequence[Mapping[str, Any]], tasks: Sequence[str], arms: Sequence[str]
) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for task in tasks:
        for arm in arms:
            rs = sorted(
                (r for r in runs if r["task"] == task and r["arm"] == arm),
                key=lambda r: int(r["seed"]),
            )
            if not rs:
                continue
            maximize = rs[0]["objective_type"] == "maximize"
            n = max(r["trials"] for r in rs)
            curves = np.array(
                [best_so_far([t["objective"] for t in r["trials_run"]], maximize, n) for r in rs]
            )
            finals = curves[:, -1]
            half = curves[:, max(0, n // 2 - 1)]
            walls = np.array([r["wall_seconds"] for r in rs])
            failed = sum(t["condition"] != SUCCEEDED for r in rs for t in r["trials_run"])
            out[(task, arm)] = {
                "maximize": maximize,
                "metric": rs[0]["objective_metric"],
                "seeds": sorted(r["seed"] for r in rs),
                "n": n,
                "curves": curves,
                "final": finals,
                "half": half,
                "walls": walls,
                "failed": failed,
                "trials_total": sum(len(r["trials_run"]) for r in rs),
            }
    return out


def shared_prefix(runs: Sequence[Mapping[str, Any]]) -> list[int]:
    """Per seed: how many leading trials had the same parameters in every arm."""
    out = []
    for seed in sorted({r["seed"] for r in runs}):
        seqs = [[t["assignments"] for t in r["trials_run"]] for r in runs if r["seed"] == seed]
        n = 0
        while all(len(q) > n for q in seqs) and all(q[n] == seqs[0][n] for q in seqs):
            n += 1
        out.append(n)
    return out


def _span(xs: Sequence[int]) -> str:
    if not xs:
        return "0"
    return str(min(xs)) if min(xs) == max(xs) else f"{min(xs)}-{max(xs)}"


def origins(runs: Sequence[Mapping[str, Any]], arm: str) -> str:
    counts: dict[str, int] = {}
    for r in runs:
        if r["arm"] == arm:
            for t in r["trials_run"]:
                o = str(t["labels"].get("dcsa.io/origin", "?"))
                counts[o] = counts.get(o, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def _q(a: np.ndarray, q: float) -> float:
    a = a[~np.isnan(a)]
    return float(np.percentile(a, q)) if a.size else math.nan


def write_table(
    path: Path,
    summary: Mapping[tuple[str, str], Mapping[str, Any]],
    runs: Sequence[Mapping[str, Any]],
    command: str,
    total_wall: float,
) -> None:
    lines = [
        "# Real tasks: dcsa-bo vs gp-bo vs random (local runner)",
        "",
        "Produced by:",
        "",
        "```sh",
        command,
        "```",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared with other jobs "
        "while this ran, so wall times are noisy). Wall time of the benchmark (sum over its "
        f"{len(runs)} runs, one after another): {total_wall / 60:.1f} min.",
        "",
        "With a handful of seeds, differences smaller than the spread between seeds (the IQR "
        "and per-seed columns) are not evidence of a difference between arms.",
        "",
    ]
    tasks = list(dict.fromkeys(t for t, _a in summary))
    for task in tasks:
        rows = [(a, s) for (t, a), s in summary.items() if t == task]
        first = rows[0][1]
        direction = "maximise" if first["maximize"] else "minimise"
        task_runs = [r for r in runs if r["task"] == task]
        cmd = shlex.join(task_runs[0]["trial_command"]) if task_runs else ""
        shared = shared_prefix(task_runs)
        settings = {
            r["arm"]: ", ".join(
                f"{x['name']}={' '.join(str(x['value']).split())}" for x in r["algorithm_settings"]
            )
            for r in task_runs
            if r["seed"] == 0
        }
        lines += [
            f"## {task}: {direction} `{first['metric']}`",
            "",
            f"Trial command (from manifests/examples/{task}.yaml, full data set): `{cmd}`",
            "",
            f"{first['n']} trials per run, seeds {first['seeds']}. Best = best objective among "
            "the succeeded trials so far, trials in creation order. IQR = 25th-75th percentile "
            "over seeds.",
            "",
            "Algorithm settings (seed 0): "
            + "; ".join(f"{a}: `{v}`" for a, v in settings.items())
            + ". Other settings are the service's defaults.",
            "",
            f"Same seed, same start: the first {_span(shared)} trials of a seed had identical "
            "parameters in every arm (one seeded quasi-random sequence), so the arms differ "
            "only after that. Suggestion origins (label `dcsa.io/origin`, all seeds): "
            + "; ".join(f"{a}: {origins(task_runs, a)}" for a, _s in rows)
            + ".",
            "",
            "| arm | median best (final) | IQR (final) | median best after "
            f"{max(1, first['n'] // 2)} trials | median wall / run (s) | failed trials |",
            "|---|---|---|---|---|---|",
        ]
        for arm, s in rows:
            fin = s["final"]
            lines.append(
                f"| {arm} | {_fmt(_q(fin, 50), task)} | "
                f"{_fmt(_q(fin, 25), task)} - {_fmt(_q(fin, 75), task)} | "
                f"{_fmt(_q(s['half'], 50), task)} | {float(np.median(s['walls'])):.0f} | "
                f"{s['failed']} / {s['trials_total']} |"
            )
        lines += ["", "Per seed (final best):", ""]
        lines += ["| arm | " + " | ".join(f"seed {x}" for x in first["seeds"]) + " |"]
        lines += ["|---|" + "---|" * len(first["seeds"])]
        for arm, s in rows:
            per_seed = dict(zip(s["seeds"], s["final"], strict=True))
            lines.append(
                f"| {arm} | "
                + " | ".join(_fmt(per_seed.get(x, math.nan), task) for x in first["seeds"])
                + " |"
            )
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


def write_figure(
    path: Path,
    task: str,
    summary: Mapping[tuple[str, str], Mapping[str, Any]],
    n_initial: int | None,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    metric = ""
    maximize = True
    n_seeds = 0
    for (t, arm), s in summary.items():
        if t != task:
            continue
        metric, maximize = s["metric"], s["maximize"]
        curves = s["curves"]
        n_seeds = max(n_seeds, curves.shape[0])
        x = np.arange(1, curves.shape[1] + 1)
        with np.errstate(all="ignore"):
            med = np.nanmedian(curves, axis=0)
            lo = np.nanpercentile(curves, 25, axis=0)
            hi = np.nanpercentile(curves, 75, axis=0)
        color = COLORS.get(arm)
        ax.plot(x, med, label=arm, color=color, marker="o", markersize=3)
        ax.fill_between(x, lo, hi, color=color, alpha=0.2)
    if n_initial is not None:
        ax.axvline(n_initial + 0.5, color="k", linestyle=":", linewidth=1)
        ax.annotate(
            f" BO arms: model-guided after {n_initial}",
            (n_initial + 0.5, 0.02),
            xycoords=("data", "axes fraction"),
            fontsize=8,
        )
    ax.set_xlabel("trial (creation order)")
    ax.set_ylabel(f"best {metric} so far ({'higher' if maximize else 'lower'} is better)")
    ax.set_title(f"{task}: median best-so-far over {n_seeds} seeds, IQR band")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def command_line(module: str, argv: Sequence[str] | None) -> str:
    """The command that produced a run set, without ``--resume`` (it only reuses finished runs;
    the runs are those of the command without it)."""
    given = list(argv) if argv is not None else sys.argv[1:]
    return f"python -m {module} " + shlex.join([a for a in given if a != "--resume"])


def previous_runs(out: Path, *, resume: bool) -> tuple[Path, list[dict[str, Any]]]:
    """``out/runs.json`` (the directory created) and, with ``resume``, the runs it holds."""
    out.mkdir(parents=True, exist_ok=True)
    runs_file = out / "runs.json"
    if resume and runs_file.exists():
        return runs_file, list(json.loads(runs_file.read_text(encoding="utf-8"))["runs"])
    return runs_file, []


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--parallel", type=int, default=2)
    p.add_argument(
        "--epochs", type=int, default=None, help="override the example's --epochs (default: keep)"
    )
    p.add_argument(
        "--n-initial",
        type=int,
        default=4,
        help="n_initial_points of the BO arms (default 4; the service's default of 10 would "
        "leave only 2 model-guided trials of 12); 0 keeps the service default",
    )
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/real_tasks"))
    p.add_argument("--resume", action="store_true", help="skip runs already in OUT/runs.json")
    args = p.parse_args(argv)
    command = command_line("benchmarks.real_tasks", argv)
    runs_file, runs = previous_runs(args.out, resume=args.resume)
    key_fields = ("task", "arm", "seed", "trials", "parallel", "epochs", "n_initial")
    n_initial = args.n_initial if args.n_initial > 0 else None
    done = {json.dumps({k: r[k] for k in key_fields}, sort_keys=True) for r in runs}
    bases = {task: load_example(task) for task in args.tasks}

    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dcsa-real-tasks-") as tmp:
        for task in args.tasks:
            for seed in range(args.seeds):
                for arm in args.arms:
                    run = RunSpec(
                        task, arm, seed, args.trials, args.parallel, args.epochs, n_initial
                    )
                    if json.dumps(run.key(), sort_keys=True) in done:
                        print(f"{run.name}: in {runs_file}, skipped", flush=True)
                        continue
                    rec = execute(run, bases[task], REPO, Path(tmp))
                    runs.append(rec)
                    vals = [t["objective"] for t in rec["trials_run"]]
                    best = best_so_far(vals, rec["objective_type"] == "maximize", len(vals))
                    print(
                        f"{run.name}: {rec['status']} ({rec['stop_reason']}), "
                        f"{len(vals)} trials, best {best[-1] if len(best) else math.nan:.4f}, "
                        f"{rec['wall_seconds']:.0f} s; elapsed "
                        f"{(time.monotonic() - t_start) / 60:.1f} min",
                        flush=True,
                    )
                    runs_file.write_text(
                        json.dumps({"command": command, "runs": runs}, indent=1) + "\n",
                        encoding="utf-8",
                    )

    selected = [
        r
        for r in runs
        if r["task"] in args.tasks
        and r["arm"] in args.arms
        and r["seed"] < args.seeds
        and r["trials"] == args.trials
        and r["parallel"] == args.parallel
        and r["epochs"] == args.epochs
        and r["n_initial"] == n_initial
    ]
    summary = summarize(selected, args.tasks, args.arms)
    total_wall = sum(float(r["wall_seconds"]) for r in selected)
    write_table(args.out / "table.md", summary, selected, command, total_wall)
    for task in args.tasks:
        write_figure(args.out / f"convergence-{task}.png", task, summary, n_initial)
    print((args.out / "table.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
