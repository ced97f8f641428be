"""``dcsa run`` with ASHA (algorithm setting ``resource_name``): the rung line of the live view,
the convergence plot's budget series, and one real run that promotes."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from rich.console import Console

from suggestion_service.core import provenance
from suggestion_service.local.display import (
    LiveReporter,
    PlainReporter,
    rung_line,
    status_line,
    summary_table,
)
from suggestion_service.local.experiment import Document, parse_experiment
from suggestion_service.local.runner import RungTracker, Runner, RunOptions, Snapshot
from suggestion_service.local.state import (
    Budget,
    TrialRow,
    budget_series,
    write_plot,
)

from .conftest import tiny_experiment

Body = dict[str, Any]

PARAMETERS = [
    {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}},
    {"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "27"}},
]
ASHA = {
    "algorithmName": "random",
    "algorithmSettings": [
        {"name": "random_state", "value": "3"},
        {"name": "resource_name", "value": "epochs"},
        {"name": "eta", "value": "3"},
    ],
}


def _experiment(
    record: Path, *, goal: str = "minimize", asha: bool = True, promotion: str | None = None
) -> Any:
    body = tiny_experiment(record, parameters=PARAMETERS)
    if asha:
        body["spec"]["algorithm"] = json.loads(json.dumps(ASHA))
        if promotion is not None:
            setting = {"name": "promotion", "value": promotion}
            body["spec"]["algorithm"]["algorithmSettings"].append(setting)
    body["spec"]["objective"]["type"] = goal
    return parse_experiment(Document("x.yaml", body))


def _row(
    name: str, x: str, epochs: str, condition: str, loss: str | None = None, done: str = ""
) -> TrialRow:
    return TrialRow(
        name=name,
        assignments={"x": x, "epochs": epochs},
        condition=condition,
        metrics={} if loss is None else {"loss": loss},
        completion_time=done or None,
    )


# six configurations completed on rung 0 (epochs=1), one running there, one failed and one
# queued; the two best (lowest loss) went up: one completed on rung 1, one runs there
TRIALS = (
    _row("t-a", "0.1", "1", "Succeeded", "0.10"),
    _row("t-b", "0.2", "1", "Succeeded", "0.20"),
    _row("t-c", "0.3", "1", "Succeeded", "0.30"),
    _row("t-d", "0.4", "1", "Succeeded", "0.40"),
    _row("t-e", "0.5", "1", "Succeeded", "0.50"),
    _row("t-f", "0.6", "1", "Succeeded", "0.60"),
    _row("t-g", "0.7", "1", "Running"),
    _row("t-h", "0.8", "1", "Failed"),
    _row("t-i", "0.9", "1", "Created"),
    # Katib sends no MetricsUnavailable trial to the service: on no rung, as the service sees it
    _row("t-k", "0.85", "1", "MetricsUnavailable"),
    _row("t-p1-aaaaaaaa", "0.1", "3", "Succeeded", "0.05"),
    _row("t-p1-bbbbbbbb", "0.2", "3", "Running"),
)


def _snapshot(tracker: RungTracker, trials: tuple[TrialRow, ...]) -> Snapshot:
    return Snapshot(
        experiment="tiny",
        algorithm="random",
        max_trials=20,
        succeeded=7,
        failed=1,
        killed=0,
        running=2,
        queued=1,
        best=None,
        best_value=None,
        metric="loss",
        elapsed=3.0,
        resource=tracker.resource,
        rungs=tracker.views(trials),
    )


def test_rung_line_counts_every_rung(record: Path) -> None:
    tracker = RungTracker(_experiment(record))
    assert tracker.resource == "epochs"
    views = tracker.views(TRIALS)
    assert [v.label for v in views] == ["1", "3", "9", "27"]
    assert [(v.completed, v.pending, v.failed, v.promoted) for v in views] == [
        (6, 2, 1, 2),
        (1, 1, 0, 0),
        (0, 0, 0, 0),
        (0, 0, 0, 0),
    ]
    # minimizing, the top 6 // 3 = 2 of rung 0 (0.1 and 0.2) are already up: nothing promotable
    assert [v.promotable for v in views] == [0, 0, 0, 0]
    snap = _snapshot(tracker, TRIALS)
    assert rung_line(snap) == (
        "rungs  epochs=1: 6 done 2 run 1 failed (2 up) | 3: 1 done 1 run | 9: 0 | 27: 0"
    )
    # the status line is unchanged: rungs are a line of their own, in both views
    assert "rungs" not in status_line(snap)
    plain = io.StringIO()
    reporter = PlainReporter(plain, every=0)
    reporter.progress(snap)
    assert plain.getvalue().splitlines() == [status_line(snap), rung_line(snap)]
    buf = io.StringIO()
    live = LiveReporter(Console(file=buf, force_terminal=True, width=120))
    live.progress(snap)
    live.close()
    assert "rungs  epochs=1: 6 done 2 run 1 failed (2 up)" in buf.getvalue()


def test_rungs_rank_by_the_objectives_direction(record: Path) -> None:
    # maximizing, rung 0's best two are 0.6 and 0.5, which are on no higher rung yet: ASHA's
    # rule promotes them; the default delayed rule does not, as 6 // 3 = 2 are already up
    asha = RungTracker(_experiment(record, goal="maximize", promotion="asha")).views(TRIALS)
    assert [v.promotable for v in asha] == [2, 0, 0, 0]
    assert asha[0].promoted == 2  # promoted counts configurations present higher, any value
    delayed = RungTracker(_experiment(record, goal="maximize")).views(TRIALS)
    assert [v.promotable for v in delayed] == [0, 0, 0, 0]


def test_rungs_are_recomputed_only_when_the_trials_change(record: Path) -> None:
    tracker = RungTracker(_experiment(record))
    first = tracker.views(TRIALS)
    assert tracker.views(TRIALS) is first  # same trials tuple: cached
    more = (*TRIALS, _row("t-j", "0.95", "1", "Running"))
    assert tracker.views(more)[0].pending == 3


def test_no_rungs_without_resource_name(record: Path) -> None:
    tracker = RungTracker(_experiment(record, asha=False))
    assert tracker.resource is None and tracker.budget is None
    assert tracker.views(TRIALS) == ()
    assert rung_line(_snapshot(tracker, TRIALS)) is None


def test_budget_series_is_total_budget_and_best_at_full_budget() -> None:
    budget = Budget(name="epochs", full=9.0, label="9")
    trials = [
        # listed out of completion order on purpose
        _row("c", "0.3", "3", "Succeeded", "0.30", done="2026-01-01T00:00:03Z"),
        _row("a", "0.1", "1", "Succeeded", "0.50", done="2026-01-01T00:00:01Z"),
        _row("b", "0.2", "1", "Failed", done="2026-01-01T00:00:02Z"),
        _row("d", "0.3", "9", "Succeeded", "0.25", done="2026-01-01T00:00:04Z"),
        _row("e", "0.4", "1", "Succeeded", "0.05", done="2026-01-01T00:00:05Z"),  # low budget
        _row("f", "0.1", "9", "Succeeded", "0.20", done="2026-01-01T00:00:06Z"),
        _row("g", "0.5", "9", "Succeeded", "0.40", done="2026-01-01T00:00:07Z"),
        _row("h", "0.6", "9", "Running"),  # not finished: spent nothing yet
    ]
    series = budget_series(trials, "loss", maximize=False, budget=budget)
    assert [p.trial.name for p in series] == ["a", "b", "c", "d", "e", "f", "g"]
    assert [p.spent for p in series] == [1, 2, 5, 14, 15, 24, 33]
    assert [p.full for p in series] == [False, False, False, True, False, True, True]
    assert [p.best for p in series] == [None, None, None, 0.25, 0.25, 0.20, 0.20]
    maxed = budget_series(trials, "loss", maximize=True, budget=budget)
    assert [p.best for p in maxed] == [None, None, None, 0.25, 0.25, 0.25, 0.40]


def test_plot_with_and_without_budget(tmp_path: Path) -> None:
    trials = [
        _row("a", "0.1", "1", "Succeeded", "0.5", done="2026-01-01T00:00:01Z"),
        _row("b", "0.1", "3", "Succeeded", "0.2", done="2026-01-01T00:00:02Z"),
    ]
    budget = Budget(name="epochs", full=3.0, label="3")
    kw: dict[str, Any] = {"metric": "loss", "maximize": False, "title": "t"}
    assert write_plot(tmp_path / "asha.png", trials, budget=budget, **kw)
    assert write_plot(tmp_path / "plain.png", trials, **kw)
    assert (tmp_path / "asha.png").stat().st_size > 0
    assert (tmp_path / "plain.png").read_bytes() != (tmp_path / "asha.png").read_bytes()
    assert not write_plot(tmp_path / "none.png", trials[:0], budget=budget, **kw)


# ---- a real run ------------------------------------------------------------------------------
# loss falls with epochs, so a configuration's rank at 1 epoch is its rank at 9
TRIAL = (
    "import sys; x, e = float(sys.argv[1]), int(sys.argv[2]); "
    "print(f'loss={(x - 0.3) ** 2 + 1 / e}')"
)


def _real_body(record: Path) -> Body:
    body = tiny_experiment(record)
    spec = body["spec"]
    spec["parameters"] = [
        PARAMETERS[0],
        {"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "9"}},
    ]
    spec["algorithm"] = ASHA
    spec["maxTrialCount"] = 10
    spec["parallelTrialCount"] = 2
    spec["trialTemplate"]["trialParameters"] = [
        {"name": "xValue", "reference": "x"},
        {"name": "epochs", "reference": "epochs"},
    ]
    container = spec["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = ["python", "-c", TRIAL]
    container["args"] = ["${trialParameters.xValue}", "${trialParameters.epochs}"]
    container.pop("env")
    return body


def test_a_real_run_promotes_and_plots(stub: Any, record: Path, tmp_path: Path) -> None:
    exp = parse_experiment(Document("x.yaml", _real_body(record)))
    opts = RunOptions(state_dir=tmp_path / "state", workdir=tmp_path, poll_interval=0.02)
    runner = Runner(exp, stub, opts)
    result = runner.run()
    assert (result.status, result.reason) == ("Succeeded", "ExperimentMaxTrialsReached")
    assert result.resource == "epochs"

    state = json.loads((tmp_path / "state" / "state.json").read_text())
    trials = state["trials"]
    assert len(trials) == 10
    assert all(t["condition"] == "Succeeded" for t in trials)
    epochs = {
        t["name"]: {a["name"]: a["value"] for a in t["assignments"]}["epochs"] for t in trials
    }
    promoted = [name for name in epochs if "-p1-" in name]
    assert promoted, sorted(epochs)
    rungs = {"1": 0, "3": 1, "9": 2}
    for name, value in epochs.items():
        origin = provenance.parse("tiny", name)
        assert origin is not None, name
        # new configurations start at rung 0; a promotion to rung k runs at rung k's budget
        want = origin.number if origin.origin == "promotion" else 0
        assert rungs[value] == want, (name, value)
    assert (tmp_path / "state" / "convergence.png").stat().st_size > 0

    views = runner.snapshot().rungs
    assert [v.label for v in views] == ["1", "3", "9"]
    assert views[0].promoted == len(promoted)
    assert sum(v.completed for v in views) == 10
    line = rung_line(runner.snapshot())
    assert line is not None and line.startswith("rungs  epochs=1: ")
    # the final table shows each trial's budget
    table = summary_table(result, metric="loss", maximize=False)
    assert [c.header for c in table.columns][:4] == ["#", "trial", "loss", "epochs"]


def test_the_plot_budget_is_the_top_rung(record: Path) -> None:
    tracker = RungTracker(_experiment(record))
    assert tracker.budget == Budget(name="epochs", full=27.0, label="27")
