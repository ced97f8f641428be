"""Warm start on a drifted objective: does last night's run make tonight's run faster?

The TuningSchedule scenario (docs/schedule.md): yesterday a run tuned ``f``; overnight the
objective drifted a little (``f'``, the same problem with its optimum shifted by 3 % of each
range); tonight's run tunes ``f'``. We compare, per seed:

- ``cold``: tonight's run from scratch (40 trials);
- ``warm``: tonight's run with the ``warm_start`` setting built from yesterday's 40 trials by the
  operator's own code (``suggestion_service.k8s.warm_start_payload``: Katib Trial objects in,
  best ``maxTrials`` that fit the space out; values are yesterday's, on ``f``).

Reported: the trial at which each run first reaches the cold run's final best (lower is
better; the cold run needs ``n_cold`` trials by definition), and both runs' final bests.
The runs go through the controller loop the suite, the tests and ``dcsa run`` share
(``suggestion_service.local.controller.run_synchronous``, parallelTrialCount 1), with the
service called in process: reply settings merged back as Katib merges them, labels never sent
back.

Usage::

    python -m benchmarks.warm_start [--algorithm dcsa-bo] [--seeds 5] [--trials 40]

Writes benchmarks/results/warm_start.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._suite_drive import in_process
from benchmarks.synthetic import PROBLEMS, Problem
from suggestion_service.core.space import SearchSpace, make_parameter, make_space
from suggestion_service.k8s.warm_start_payload import build_payload, trial_observations
from suggestion_service.local import controller as ctl

RESULTS = Path(__file__).resolve().parent / "results"
METRIC = "loss"
DRIFT = 0.03  # fraction of each parameter's range the optimum moves overnight


def space_of(problem: Problem) -> SearchSpace:
    return make_space(
        [
            make_parameter(
                name=name, type_name="double", min_text=str(lo), max_text=str(hi), where=name
            )
            for name, lo, hi in problem.parameters()
        ]
    )


def drift(problem: Problem, seed: int = 0) -> dict[str, float]:
    """A fixed shift per parameter: +-DRIFT of its range (signs from ``seed``)."""
    rng = np.random.default_rng(seed)
    return {
        name: float(rng.choice([-1.0, 1.0])) * DRIFT * (hi - lo)
        for name, lo, hi in problem.parameters()
    }


def objective(problem: Problem, shift: Mapping[str, float]) -> Any:
    def f(x: Mapping[str, float]) -> float:
        return problem.value({k: v - shift.get(k, 0.0) for k, v in x.items()})

    return f


def run(
    *,
    algorithm: str,
    space: SearchSpace,
    f: Any,
    seed: int,
    trials: int,
    name: str,
    warm_start: str | None = None,
) -> list[tuple[dict[str, str], float]]:
    """One Experiment, one trial at a time, through the controller loop the suite, the tests
    and ``dcsa run`` share (the service in process); returns (assignments, value) per trial."""
    settings = {"random_state": str(seed)}
    if warm_start is not None:
        settings["warm_start"] = warm_start
    exp = ctl.experiment_of_space(
        name, space, algorithm=algorithm, settings=settings, metric=METRIC
    )
    objective = ctl.Objective(type="minimize", metric=METRIC, strategies={METRIC: "min"})
    out: list[tuple[dict[str, str], float]] = []

    def evaluate(made: ctl.Assignment, _i: int) -> ctl.TrialView:
        assignments = dict(made.assignments)
        value = f({k: float(v) for k, v in assignments.items()})
        out.append((assignments, value))
        return ctl.succeeded(made, objective, repr(value))

    ctl.run_synchronous(exp, in_process, evaluate, parallel=1, max_trials=trials)
    return out


def katib_trials(history: Sequence[tuple[dict[str, str], float]]) -> list[dict[str, Any]]:
    """Yesterday's run as Katib Trial objects (what the operator lists)."""
    return [
        {
            "spec": {"parameterAssignments": [{"name": k, "value": v} for k, v in a.items()]},
            "status": {
                "conditions": [{"type": "Succeeded", "status": "True"}],
                "observation": {
                    "metrics": [{"name": METRIC, "min": repr(y), "max": repr(y), "latest": repr(y)}]
                },
            },
        }
        for a, y in history
    ]


def curve(history: Sequence[tuple[dict[str, str], float]]) -> list[float]:
    return [float(v) for v in np.minimum.accumulate([y for _, y in history])]


def first_reach(best_so_far: Sequence[float], target: float) -> int | None:
    """1-based trial at which ``best_so_far`` is at or below ``target``; None if never."""
    for i, v in enumerate(best_so_far, start=1):
        if v <= target + 1e-12:
            return i
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algorithm", default="dcsa-bo")
    parser.add_argument("--problem", default="unequal", choices=sorted(PROBLEMS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--max-warm", type=int, default=50, help="warmStart.maxTrials")
    parser.add_argument("--out", type=Path, default=RESULTS / "warm_start")
    ns = parser.parse_args(argv)

    problem = PROBLEMS[ns.problem]
    space = space_of(problem)
    f_yesterday = objective(problem, {})
    f_tonight = objective(problem, drift(problem))
    rows = []
    started = time.monotonic()
    for seed in range(ns.seeds):
        yesterday = run(
            algorithm=ns.algorithm,
            space=space,
            f=f_yesterday,
            seed=seed,
            trials=ns.trials,
            name=f"nightly-{seed}-day1",
        )
        payload = build_payload(
            trial_observations(
                katib_trials(yesterday), metric=METRIC, strategy="min", dropped=Counter()
            ),
            space=space,
            maximize=False,
            max_trials=ns.max_warm,
        )
        cold = run(
            algorithm=ns.algorithm,
            space=space,
            f=f_tonight,
            seed=seed,
            trials=ns.trials,
            name=f"nightly-{seed}-day2",
        )
        warm = run(
            algorithm=ns.algorithm,
            space=space,
            f=f_tonight,
            seed=seed,
            trials=ns.trials,
            name=f"nightly-{seed}-day2",
            warm_start=payload.to_json(),
        )
        c, w = curve(cold), curve(warm)
        target = c[-1]
        row = {
            "seed": seed,
            "carried": len(payload.trials),
            "cold_final": c[-1],
            "warm_final": w[-1],
            "cold_reach": first_reach(c, target),
            "warm_reach": first_reach(w, target),
            "cold_curve": c,
            "warm_curve": w,
            "yesterday_best": min(y for _, y in yesterday),
        }
        rows.append(row)
        print(
            f"seed {seed}: cold final {c[-1]:.4f} (reached at {row['cold_reach']}), warm "
            f"reaches it at {row['warm_reach']}, warm final {w[-1]:.4f} "
            f"[{time.monotonic() - started:.0f} s]",
            flush=True,
        )
    write(ns, rows, time.monotonic() - started)
    return 0


def write(ns: argparse.Namespace, rows: list[dict[str, Any]], seconds: float) -> None:
    ns.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "algorithm": ns.algorithm,
        "problem": ns.problem,
        "drift": DRIFT,
        "seeds": ns.seeds,
        "trials": ns.trials,
        "max_warm": ns.max_warm,
        "seconds": round(seconds, 1),
        "command": (
            f"python -m benchmarks.warm_start --algorithm {ns.algorithm} --problem {ns.problem} "
            f"--seeds {ns.seeds} --trials {ns.trials} --max-warm {ns.max_warm}"
        ),
    }
    ns.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "runs": rows}, indent=1))
    never = ns.trials + 1  # a run that never reaches the target counts as trials + 1
    warm_reach = [r["warm_reach"] or never for r in rows]
    cold_reach = [r["cold_reach"] for r in rows]
    lines = [
        f"# Warm start on a drifted objective ({ns.algorithm}, `{ns.problem}`, "
        f"optimum shifted {DRIFT:.0%} of each range)",
        "",
        f"Command: `{meta['command']}` ({seconds / 60:.1f} min on this machine).",
        "",
        "Trial at which each run first reaches the cold run's final best (minimise; lower is "
        f"better; '>{ns.trials}' = never within {ns.trials} trials):",
        "",
        "| seed | carried | cold reaches its final best at | warm reaches it at | cold final | "
        "warm final |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        wr = r["warm_reach"] if r["warm_reach"] is not None else f">{ns.trials}"
        lines.append(
            f"| {r['seed']} | {r['carried']} | {r['cold_reach']} | {wr} | "
            f"{r['cold_final']:.4f} | {r['warm_final']:.4f} |"
        )
    lines += [
        "",
        f"Median trial to reach the cold run's final best: cold {np.median(cold_reach):g}, "
        f"warm {np.median(warm_reach):g}; warm is faster in "
        f"{sum(w < c for w, c in zip(warm_reach, cold_reach, strict=True))} of {len(rows)} "
        "seeds.",
        "",
    ]
    ns.out.with_suffix(".md").write_text("\n".join(lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6.5, 4))
    x = np.arange(1, ns.trials + 1)
    for key, color, label in (
        ("cold_curve", "tab:gray", "cold"),
        ("warm_curve", "tab:blue", "warm start"),
    ):
        curves = np.array([r[key] for r in rows])
        ax.plot(x, np.median(curves, axis=0), color=color, label=f"{label} (median)")
        ax.fill_between(x, curves.min(axis=0), curves.max(axis=0), color=color, alpha=0.15)
    ax.set_xlabel("trial")
    ax.set_ylabel("best objective so far (lower is better)")
    ax.set_yscale("log")
    ax.set_title(f"{ns.algorithm} on drifted '{ns.problem}', {len(rows)} seeds")
    ax.legend()
    fig.tight_layout()
    fig.savefig(ns.out.with_suffix(".png"), dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
