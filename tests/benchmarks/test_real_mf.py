"""The real-task multi-fidelity benchmark (issue 13): trial costs from the trial logs, the ratio
on hand-made runs, and one tiny end-to-end run with real trials and checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks import real_mf as mf
from benchmarks import real_tasks as rt

RESUMED = (
    "2026-01-01 00:00:00,000 INFO trial_image.training: checkpoint: resumed from "
    "/ck/abc/epochs-{k:05d}.pt ({span}); training {rest}\n"
)
SCRATCH = (
    "2026-01-01 00:00:00,000 INFO trial_image.training: checkpoint: training from scratch (no "
    "usable checkpoint of this configuration with at most {e} epochs in /ck/abc)\n"
)


def _epochs(first: int, last: int) -> str:
    return f"epoch {first}" if first == last else f"epochs {first}-{last}"


def log_text(
    epochs: int, *, resumed: int = 0, scratch: bool = False, stop: int | None = None
) -> str:
    """A trial log as the trial image writes it: the checkpoint line, then one ``epoch=N`` block
    per epoch (the resumed ones reported again), up to ``stop`` when it failed."""
    text = "INFO trial_image: hyperparameters: {}\n"
    if resumed:
        rest = _epochs(resumed + 1, epochs) if resumed < epochs else ""
        line = RESUMED.format(k=resumed, span=_epochs(1, resumed), rest=rest)
        if resumed == epochs:
            line = line.replace("training \n", "nothing left\n")
        text += line
    elif scratch:
        text += SCRATCH.format(e=epochs)
    for n in range(1, (stop if stop is not None else epochs) + 1):
        text += f"epoch={n}\ntrain-loss=0.5\nval-accuracy=0.9\nepoch-seconds=0.1\n"
    if stop is not None:
        text += "dcsa-train: error: training diverged: loss is nan\n"
    return text


def test_parse_log_reads_resume_scratch_and_epochs() -> None:
    info = mf.parse_log(log_text(9, resumed=3))
    assert info == mf.LogInfo("resumed", 3, 9)
    assert mf.parse_log(log_text(3, resumed=1)) == mf.LogInfo("resumed", 1, 3)  # "epoch 1"
    assert mf.parse_log(log_text(3, resumed=3)) == mf.LogInfo("resumed", 3, 3)  # nothing left
    assert mf.parse_log(log_text(9, scratch=True)) == mf.LogInfo("scratch", 0, 9)
    assert mf.parse_log(log_text(3)) == mf.LogInfo("off", 0, 3)
    assert mf.parse_log("") == mf.LogInfo("off", 0, None)


def test_trial_cost() -> None:
    # resumed: only the extra epochs; a replayed file (nothing left) costs nothing
    assert mf.trial_cost(9, True, mf.parse_log(log_text(9, resumed=3))) == 6
    assert mf.trial_cost(3, True, mf.parse_log(log_text(3, resumed=3))) == 0
    # a missing checkpoint: trained from scratch, full epochs
    assert mf.trial_cost(9, True, mf.parse_log(log_text(9, scratch=True))) == 9
    # no checkpoint directory, or no log at all: the trial's epochs
    assert mf.trial_cost(3, True, mf.parse_log(log_text(3))) == 3
    assert mf.trial_cost(3, True, None) == 3
    # failed in epoch 3 of 9 (2 completed): 2 + the interrupted one
    assert mf.trial_cost(9, False, mf.parse_log(log_text(9, stop=2))) == 3
    # failed after resuming at 3, in epoch 5 (4 reported): epochs 4 and 5
    assert mf.trial_cost(9, False, mf.parse_log(log_text(9, resumed=3, stop=4))) == 2
    # failed before any epoch: the one it was in; never more than its budget
    assert mf.trial_cost(9, False, mf.parse_log("boom\n")) == 1
    assert mf.trial_cost(1, False, mf.parse_log(log_text(1, stop=1))) == 1


def test_rungs() -> None:
    assert mf.rungs(1, 9, 3) == [1, 3, 9]
    assert mf.rungs(1, 3, 3) == [1, 3]
    assert mf.rungs(1, 10, 3) == [1, 3, 9, 10]


Trial = tuple[int, str, float | None, str | None]  # epochs, condition, objective, log (None: none)


def make_run(
    tmp: Path, arm: str, seed: int, trials: list[Trial], *, maximize: bool = True
) -> dict[str, Any]:
    """A run record as ``execute`` leaves it, annotated from logs written under ``tmp``."""
    state = tmp / f"{arm}-{seed}"
    (state / "logs").mkdir(parents=True)
    records = []
    for i, (epochs, condition, value, log) in enumerate(trials):
        name = f"t{i}"
        if log is not None:
            (state / "logs" / f"{name}.log").write_text(log)
        assignments = {"lr": "0.01"} if arm == mf.FULL else {"lr": "0.01", "epochs": str(epochs)}
        records.append(
            {
                "index": i,
                "name": name,
                "condition": condition,
                "objective": value if condition == rt.SUCCEEDED else None,
                "assignments": assignments,
            }
        )
    rec = {
        "task": "digits",
        "arm": arm,
        "seed": seed,
        "min_epochs": 1,
        "max_epochs": 3,
        "eta": 3,
        "trial_command": ["python", "-m", "trial_image.train", "--task=digits"],
        "epoch_rungs": [] if arm == mf.FULL else [1, 3],
        "objective_type": "maximize" if maximize else "minimize",
        "objective_metric": "val-accuracy",
        "wall_seconds": 10.0,
        "trials_run": records,
    }
    return mf.annotate(rec, state)


OK, FAILED = rt.SUCCEEDED, "Failed"


def hand_made_runs(tmp: Path) -> list[dict[str, Any]]:
    full: list[list[Trial]] = [
        # every trial at 3 epochs, no checkpoint directory: cost 3 each
        [(3, OK, 0.80, log_text(3)), (3, OK, 0.90, log_text(3))],
        [(3, OK, 0.85, log_text(3)), (3, OK, 0.88, log_text(3))],
        [(3, OK, 0.70, log_text(3)), (3, OK, 0.95, log_text(3))],
    ]
    asha: list[list[Trial]] = [
        # two 1-epoch trials, then the promoted one resumes after epoch 1: 1 + 1 + 2 = 4
        [
            (1, OK, 0.95, log_text(1, scratch=True)),  # a low rung's value: not a best
            (1, OK, 0.60, log_text(1, scratch=True)),
            (3, OK, 0.91, log_text(3, resumed=1)),
        ],
        # a failed 3-epoch trial in its 2nd epoch (cost 2) before the promotion: 1 + 2 + 2 = 5
        [
            (1, OK, 0.50, log_text(1, scratch=True)),
            (3, FAILED, None, log_text(3, scratch=True, stop=1)),
            (3, OK, 0.92, log_text(3, resumed=1)),
        ],
        # the promoted trial's checkpoint was missing: from scratch, 3 epochs: 1 + 1 + 3 = 5
        [
            (1, OK, 0.40, log_text(1, scratch=True)),
            (1, OK, 0.45, log_text(1, scratch=True)),
            (3, OK, 0.93, log_text(3, scratch=True)),
        ],
    ]
    nockpt: list[list[Trial]] = [
        # never reaches 0.90 at the full budget (a 1-epoch 0.97 does not count)
        [(1, OK, 0.97, log_text(1)), (1, OK, 0.5, log_text(1)), (3, OK, 0.85, log_text(3))],
        [(1, OK, 0.5, log_text(1)), (1, OK, 0.5, log_text(1)), (3, OK, 0.89, log_text(3))],
        [(1, OK, 0.5, log_text(1)), (1, OK, 0.5, None), (3, OK, 0.80, log_text(3))],
    ]
    runs = []
    for arm, per_seed in ((mf.FULL, full), (mf.ASHA, asha), (mf.NOCKPT, nockpt)):
        for seed, trials in enumerate(per_seed):
            runs.append(make_run(tmp, arm, seed, trials))
    return runs


def test_costs_of_hand_made_runs(tmp_path: Path) -> None:
    runs = hand_made_runs(tmp_path)
    by = {(r["arm"], r["seed"]): r for r in runs}
    assert [t["cost"] for t in by[(mf.ASHA, 0)]["trials_run"]] == [1, 1, 2]
    assert [t["checkpoint"] for t in by[(mf.ASHA, 0)]["trials_run"]] == [
        "scratch",
        "scratch",
        "resumed",
    ]
    assert [t["cost"] for t in by[(mf.ASHA, 1)]["trials_run"]] == [1, 2, 2]
    assert [t["cost"] for t in by[(mf.ASHA, 2)]["trials_run"]] == [1, 1, 3]
    assert [t["cost"] for t in by[(mf.NOCKPT, 2)]["trials_run"]] == [1, 1, 3]
    assert by[(mf.NOCKPT, 2)]["trials_run"][1]["checkpoint"] == "no log"
    assert [mf.total_cost(by[(mf.FULL, s)]) for s in range(3)] == [6, 6, 6]
    assert [mf.total_cost(by[(mf.ASHA, s)]) for s in range(3)] == [4, 5, 5]


def test_ratio_on_hand_made_runs(tmp_path: Path) -> None:
    runs = hand_made_runs(tmp_path)
    cells, facts = mf.summarise(runs, ["digits"])
    by = {c.arm: c for c in cells}
    # target: dcsa-bo's median final best (0.90, 0.88, 0.95 -> 0.90), its median curve
    # reaches it at 6 epochs (at 3 epochs the median is 0.80)
    assert facts["digits"]["target"] == pytest.approx(0.90)
    assert facts["digits"]["t_full"] == 6
    assert by[mf.FULL].ratio == pytest.approx(1.0)
    # ASHA with reuse: seeds 0 and 1 are at 0.91 / 0.92 after 4 and 5 epochs, seed 2 at 5:
    # the median reaches 0.90 at 5 epochs (at 4 only seed 0 has a full-budget value)
    assert by[mf.ASHA].reach == 5
    assert by[mf.ASHA].ratio == pytest.approx(6 / 5)
    assert by[mf.ASHA].final == pytest.approx(0.92)
    assert by[mf.ASHA].spent == [4, 5, 5]
    assert by[mf.ASHA].failed == 1
    assert by[mf.ASHA].resumed == 2
    assert by[mf.ASHA].promoted == 4  # the 3-epoch trials, the failed one included
    assert by[mf.ASHA].promoted_scratch == 2  # the failed one and seed 2's missing checkpoint
    # without reuse: never reaches it; said plainly, with the bound 6 / its largest total
    nock = by[mf.NOCKPT]
    assert nock.reach is None and nock.ratio is None
    assert nock.bound == pytest.approx(6 / 5)
    assert nock.ratio_text().startswith("not reached")
    assert nock.final == pytest.approx(0.85)  # the 1-epoch 0.97 is not a full-budget value
    # the report says it too
    table = tmp_path / "table.md"
    mf.write_table(table, cells, facts, runs, "python -m benchmarks.real_mf (hand-made)")
    text = table.read_text()
    assert "with checkpoint reuse (dcsa-bo-asha) 1.20x" in text
    assert "without reuse (dcsa-bo-asha-nockpt) not reached (< 1.20x)" in text


def test_epoch_budget_cuts_the_asha_runs_as_a_stop_would(tmp_path: Path) -> None:
    runs = hand_made_runs(tmp_path)
    by = {(r["arm"], r["seed"]): r for r in runs}
    # costs 1, 1, 2: the prefix within 2 epochs is the two 1-epoch trials
    two = mf.capped(by[(mf.ASHA, 0)], 2)
    assert [t["name"] for t in two["trials_run"]] == ["t0", "t1"] and two["cut_trials"] == 1
    # a cut stops the run: a later trial that would still fit does not come back
    run = make_run(
        tmp_path, mf.ASHA, 7, [(1, OK, 0.5, None), (3, OK, 0.9, None), (1, OK, 0.6, None)]
    )
    assert [t["name"] for t in mf.capped(run, 3)["trials_run"]] == ["t0"]
    whole = mf.capped(by[(mf.ASHA, 0)], 4)
    assert whole["trials_run"] == by[(mf.ASHA, 0)]["trials_run"] and whole["cut_trials"] == 0
    assert by[(mf.ASHA, 0)]["trials_run"][2]["name"] == "t2"  # the record itself is untouched
    # at 4 epochs, ASHA's seeds 1 and 2 (costs 1+2+2 and 1+1+3) lose their full-budget trial:
    # the median curve never reaches the target, whose bound is now over the budget
    cells, facts = mf.summarise(runs, ["digits"], epoch_budget=4)
    by_arm = {c.arm: c for c in cells}
    assert facts["digits"]["target"] == pytest.approx(0.90)  # the full arm is never cut
    assert by_arm[mf.FULL].spent == [6, 6, 6] and by_arm[mf.FULL].cut == [0, 0, 0]
    asha = by_arm[mf.ASHA]
    assert asha.spent == [4, 3, 2] and asha.cut == [0, 1, 1] and asha.trials == [3, 2, 2]
    assert asha.ratio is None and asha.bound == pytest.approx(6 / 4)
    assert asha.finals[0] == pytest.approx(0.91) and np.isnan(asha.finals[1])
    assert np.isnan(asha.final)  # two of three seeds have no full-budget value
    table = tmp_path / "table.md"
    mf.write_table(table, cells, facts, runs, "python -m benchmarks.real_mf (hand-made)")
    text = table.read_text()
    # the full arm spent 6: the table does not say that every arm got 4
    assert "The ASHA arms get 4 epochs (the full arm's runs, never cut, spent 6)" in text
    assert "| dcsa-bo-asha | 3 | 2-3 (0-1) |" in text
    # seed 2 ended at 5 epochs and seed 0 at 4: only a run below the budget with nothing cut
    mf.write_table(table, *mf.summarise(runs, ["digits"], epoch_budget=6), runs, "cmd")
    text = table.read_text()
    assert "Every arm gets 6 epochs" in text
    assert "Ended below the budget" in text and "dcsa-bo-asha seed 0 (4 epochs)" in text
    assert "dcsa-bo seed" not in text.split("Ended below the budget")[1].split("\n")[0]


def test_minimised_objective_and_no_full_budget_result(tmp_path: Path) -> None:
    full = [
        make_run(tmp_path, mf.FULL, s, [(3, OK, v, log_text(3))], maximize=False)
        for s, v in enumerate((10.0, 20.0, 30.0))
    ]
    # an arm whose full-budget trials all failed has no final best and never reaches the target
    asha = [
        make_run(
            tmp_path,
            mf.ASHA,
            s,
            [(1, OK, 1.0, log_text(1)), (3, FAILED, None, log_text(3, stop=0))],
            maximize=False,
        )
        for s in range(3)
    ]
    cells, facts = mf.summarise(full + asha, ["digits"])
    by = {c.arm: c for c in cells}
    assert facts["digits"]["target"] == pytest.approx(20.0)  # lower is better: the median
    assert facts["digits"]["t_full"] == 3
    assert np.isnan(by[mf.ASHA].final)
    assert by[mf.ASHA].ratio is None and by[mf.ASHA].spent == [2, 2, 2]


def test_experiments_of_the_three_arms(tmp_path: Path) -> None:
    base = rt.load_example("digits")
    run = mf.MFRun("digits", mf.ASHA, 1, 27, 2, 1, 9, 3, 4)
    doc = mf.make_experiment(base, run, tmp_path / "ck")
    spec = doc["spec"]
    command = mf._container(doc)["command"]
    assert doc["metadata"]["name"] == "rmf-digits-asha-s1"
    assert spec["parameters"][0] == {
        "name": "epochs",
        "parameterType": "int",
        "feasibleSpace": {"min": "1", "max": "9"},
    }
    assert spec["trialTemplate"]["trialParameters"][0]["reference"] == "epochs"
    settings = {s["name"]: s["value"] for s in spec["algorithm"]["algorithmSettings"]}
    assert settings == {
        "random_state": "1",
        "n_initial_points": "4",
        "resource_name": "epochs",
        "eta": "3",
    }
    assert spec["algorithm"]["algorithmName"] == "dcsa-bo"
    assert spec["maxTrialCount"] == 27 and spec["parallelTrialCount"] == 2
    assert "--epochs=${trialParameters.epochs}" in command
    assert f"--checkpoint-dir={tmp_path / 'ck'}" in command
    assert "--num-threads=1" in command
    nock = mf.make_experiment(base, mf.MFRun("digits", mf.NOCKPT, 1, 27, 2, 1, 9, 3, 4), None)
    assert "--checkpoint-dir=" in mf._container(nock)["command"]  # off, whatever the env says
    full = mf.make_experiment(base, mf.MFRun("digits", mf.FULL, 1, 6, 2, 1, 9, 3, 4, 200), None)
    fcmd = mf._container(full)["command"]
    assert "--epochs=9" in fcmd and "--max-samples=200" in fcmd
    assert all(p["name"] != "epochs" for p in full["spec"]["parameters"])
    fset = {s["name"] for s in full["spec"]["algorithm"]["algorithmSettings"]}
    assert "resource_name" not in fset
    assert full["spec"]["maxTrialCount"] == 6
    # the example itself is untouched
    assert all(p["name"] != "epochs" for p in base["spec"]["parameters"])


def test_tiny_end_to_end_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Real trials on digits (300 rows, epochs 1..3): the fifth ASHA trial is a promotion (the
    best of the first three completed 1-epoch trials), which resumes from its checkpoint."""
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    out = tmp_path / "out"
    args = [
        "--tasks", "digits", "--seeds", "1", "--arms", mf.FULL, mf.ASHA,
        "--trials", "5", "--full-trials", "1", "--max-epochs", "3", "--max-samples", "300",
        "--parallel", "2", "--n-initial", "2", "--out", str(out), "--no-plot",
    ]  # fmt: skip
    assert mf.main(args) == 0
    runs = json.loads((out / "runs.json").read_text())["runs"]
    by = {r["arm"]: r for r in runs}
    assert set(by) == {mf.FULL, mf.ASHA}
    full, asha = by[mf.FULL], by[mf.ASHA]
    assert [t["condition"] for t in full["trials_run"]] == [rt.SUCCEEDED]
    assert [(t["epochs"], t["cost"], t["checkpoint"]) for t in full["trials_run"]] == [
        (3, 3, "off")
    ]
    trials = asha["trials_run"]
    assert len(trials) == 5
    assert all(t["condition"] == rt.SUCCEEDED for t in trials), trials
    assert [t["epochs"] for t in trials[:4]] == [1, 1, 1, 1]
    promoted = [t for t in trials if t["epochs"] == 3]
    assert promoted and all(t["labels"].get("dcsa.io/origin") == "promotion" for t in promoted)
    for t in trials:
        assert 0 <= t["cost"] == t["epochs"] - t["resumed_epochs"]
        assert t["checkpoint"] in ("resumed", "scratch")
    assert any(t["checkpoint"] == "resumed" and t["resumed_epochs"] == 1 for t in promoted)
    assert mf.total_cost(asha) == sum(t["cost"] for t in trials) < sum(t["epochs"] for t in trials)
    table = (out / "table.md").read_text()
    assert "dcsa-bo-asha" in table and "python -m benchmarks.real_mf --tasks digits" in table
    # the table states the load it measured, not an assumed one
    assert all(r["load1_at_start"] >= 0 for r in runs)
    assert "1-minute load average at the runs' starts" in table
    # --resume runs nothing again and rewrites the same report
    capsys.readouterr()
    assert mf.main([*args, "--resume"]) == 0
    assert capsys.readouterr().out.count("skipped") == 2
    assert json.loads((out / "runs.json").read_text())["runs"] == runs


def test_reuse_twins_compares_the_two_asha_arms(tmp_path: Path) -> None:
    a = make_run(tmp_path, mf.ASHA, 0, [(1, OK, 0.5, None), (1, OK, 0.6, None), (3, OK, 0.7, None)])
    b = make_run(
        tmp_path, mf.NOCKPT, 0, [(1, OK, 0.5, None), (1, OK, 0.6, None), (3, OK, 0.75, None)]
    )
    for r, lrs in ((a, ("0", "1", "0")), (b, ("0", "2", "0"))):
        for t, lr in zip(r["trials_run"], lrs, strict=True):
            t["assignments"]["lr"] = lr
    twins = mf.reuse_twins([a, b])
    # (lr 0, 1 epoch) and (lr 0, 3 epochs) in both; only the first has the same value
    assert twins == {"pairs": 1, "common": 2, "equal": 1, "shared": [1]}


def test_load_note_reports_what_was_recorded() -> None:
    assert "not recorded" in mf.load_note([{"seed": 0}])
    note = mf.load_note([{"load1_at_start": 0.5}, {"load1_at_start": 2.25}])
    assert "0.5-2.2" in note and "not recorded" not in note


def test_mnist1d_runs_on_the_full_data_set() -> None:
    """mnist1d's example subsamples (``--max-samples=2000``, for the cluster demo); the
    benchmarks train on the full data set, so the flag goes, and comes back only when asked."""
    base = rt.load_example("mnist1d")
    assert "--max-samples=2000" in mf._container(base)["command"]
    doc = mf.make_experiment(base, mf.MFRun("mnist1d", mf.ASHA, 0, 27, 2, 1, 9, 3, 4), None)
    assert not any(a.startswith("--max-samples") for a in mf._container(doc)["command"])
    asked = mf.MFRun("mnist1d", mf.ASHA, 0, 27, 2, 1, 9, 3, 4, 300)
    assert "--max-samples=300" in mf._container(mf.make_experiment(base, asked, None))["command"]
    assert rt._drop_flag(["a", "--m", "1", "--m=2", "b", "--mm=3"], "--m") == ["a", "b", "--mm=3"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trials", "0"], "--trials must be at least 1"),
        (["--full-trials", "0"], "--full-trials must be at least 1"),
        (["--epoch-budget", "-1"], "--epoch-budget must be 0"),
    ],
)
def test_bad_budgets_are_refused_before_any_run(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        mf.main([*args, "--out", str(tmp_path)])
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "runs.json").exists()
