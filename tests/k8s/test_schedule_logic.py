"""TuningSchedule decisions as pure functions: spec checks, cron due times and the CronJob
catch-up rule, concurrency, history pruning, names, run summaries and the warm-start payload."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections import Counter
from typing import Any

import pytest

from suggestion_service.core.errors import InvalidArgumentError
from suggestion_service.core.space import Distribution
from suggestion_service.core.warm_start import WarmTrial
from suggestion_service.k8s.schedule import (
    Action,
    ConcurrencyPolicy,
    RunRef,
    ScheduleSpecError,
    decide,
    due_time,
    experiment_name,
    is_permanent,
    merge_runs,
    parse_spec,
    summarize,
    to_prune,
)
from suggestion_service.k8s.warm_start_payload import (
    WarmStartError,
    build_payload,
    search_space,
    trial_observations,
    with_setting,
)
from suggestion_service.katib import convert

UTC = dt.UTC


def t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


TEMPLATE: dict[str, Any] = {
    "spec": {
        "objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
        "algorithm": {"algorithmName": "dcsa-bo"},
        "parameters": [
            {
                "name": "lr",
                "parameterType": "double",
                "feasibleSpace": {"min": "0.001", "max": "0.1"},
            },
            {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "4"}},
            {
                "name": "opt",
                "parameterType": "categorical",
                "feasibleSpace": {"list": ["sgd", "adam"]},
            },
        ],
        "maxTrialCount": 10,
    }
}


def spec(**overrides: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "schedule": "0 2 * * *",
        "experimentTemplate": copy.deepcopy(TEMPLATE),
        "warmStart": {"enabled": True},
    }
    out.update(overrides)
    return out


# ---- spec ------------------------------------------------------------------------------------


def test_defaults() -> None:
    s = parse_spec(spec())
    assert s.schedule == "0 2 * * *"
    assert s.concurrency_policy is ConcurrencyPolicy.FORBID
    assert (s.suspend, s.history_limit, s.starting_deadline_seconds) == (False, 3, None)
    assert (s.warm_start.enabled, s.warm_start.max_trials, s.warm_start.from_runs) == (True, 50, 1)


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"schedule": "every night"}, "spec.schedule", "not a cron expression"),
        ({"schedule": "61 * * * *"}, "spec.schedule", "not a valid cron expression"),
        ({"schedule": "0 0 2 * * *"}, "spec.schedule", "5 fields"),
        ({"schedule": ""}, "spec.schedule", "must be a cron expression"),
        ({"concurrencyPolicy": "Allow"}, "spec.concurrencyPolicy", "not Forbid or Replace"),
        ({"historyLimit": -1}, "spec.historyLimit", "integer in [0, 100]"),
        ({"suspend": "yes"}, "spec.suspend", "true or false"),
        ({"startingDeadlineSeconds": 0}, "spec.startingDeadlineSeconds", "positive"),
        ({"warmStart": {"enabled": True, "maxTrials": 0}}, "spec.warmStart.maxTrials", "[1, 1000]"),
        ({"experimentTemplate": None}, "spec.experimentTemplate", "Experiment `spec`"),
        (
            {"experimentTemplate": {"spec": {}}},
            "spec.experimentTemplate.spec.objective",
            "objectiveMetricName",
        ),
    ],
)
def test_bad_spec_names_the_field(overrides: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ScheduleSpecError) as err:
        parse_spec(spec(**overrides))
    assert err.value.field == field
    assert words in err.value.message


def test_template_space_is_checked_as_the_service_checks_it() -> None:
    bad = spec()
    bad["experimentTemplate"]["spec"]["parameters"][0]["feasibleSpace"] = {"min": "1", "max": "0"}
    with pytest.raises(ScheduleSpecError) as err:
        parse_spec(bad)
    assert err.value.field == "spec.experimentTemplate.spec.parameters[0].feasibleSpace"
    assert "min (1) must be less than max (0)" in err.value.message


def test_warm_start_needs_one_of_our_algorithms() -> None:
    s = spec()
    s["experimentTemplate"]["spec"]["algorithm"]["algorithmName"] = "random"
    with pytest.raises(ScheduleSpecError, match="does not accept a warm start"):
        parse_spec(s)
    s["warmStart"] = {"enabled": False}
    assert parse_spec(s).warm_start.enabled is False


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("{not json", "not valid JSON"),
        ('{"trials": 3}', '{"trials"'),
        ('{"trials": [{"assignments": {"lr": "0.01"}, "value": 1}]}', "missing values"),
        (
            '{"trials": [{"assignments": {"lr": "0.5", "layers": "2", "opt": "sgd"}, "value": 1}]}',
            "outside [0.001, 0.1]",
        ),
        (
            '{"trials": [{"assignments": {"lr": "0.01", "layers": "2", "opt": "sgd"}, '
            '"value": "x"}]}',
            "must be a number",
        ),
    ],
)
def test_handwritten_warm_start_setting_is_refused_when_malformed(value: str, words: str) -> None:
    s = spec()
    s["experimentTemplate"]["spec"]["algorithm"]["algorithmSettings"] = [
        {"name": "warm_start", "value": value}
    ]
    with pytest.raises(ScheduleSpecError) as err:
        parse_spec(s)
    assert err.value.field == "spec.experimentTemplate.spec.algorithm.algorithmSettings[0]"
    assert words in err.value.message


# ---- due times -------------------------------------------------------------------------------


def test_not_due_before_the_first_start_time() -> None:
    due = due_time(
        "0 2 * * *", last_schedule=None, created=t("2026-01-01T03:00"), now=t("2026-01-02T01:59")
    )
    assert due.scheduled is None and due.missed == 0
    assert due.next_time == t("2026-01-02T02:00")


def test_due_exactly_at_the_start_time() -> None:
    due = due_time(
        "0 2 * * *", last_schedule=None, created=t("2026-01-01T03:00"), now=t("2026-01-02T02:00")
    )
    assert due.scheduled == t("2026-01-02T02:00") and due.missed == 1
    assert due.next_time == t("2026-01-03T02:00")


def test_not_due_again_after_running() -> None:
    due = due_time(
        "0 2 * * *",
        last_schedule=t("2026-01-02T02:00"),
        created=t("2026-01-01T03:00"),
        now=t("2026-01-02T09:00"),
    )
    assert due.scheduled is None


def test_after_an_outage_only_the_most_recent_missed_time_runs() -> None:
    due = due_time(
        "0 2 * * *",
        last_schedule=t("2026-01-02T02:00"),
        created=t("2026-01-01T03:00"),
        now=t("2026-01-06T12:00"),
    )
    assert due.scheduled == t("2026-01-06T02:00")  # one catch-up, the latest
    assert due.missed == 4  # 3rd, 4th, 5th, 6th: all but the 6th are skipped
    # and once it ran, nothing else is due until the next start time
    after = due_time(
        "0 2 * * *",
        last_schedule=due.scheduled,
        created=t("2026-01-01T03:00"),
        now=t("2026-01-06T12:01"),
    )
    assert after.scheduled is None


def test_starting_deadline_skips_a_run_that_is_too_late() -> None:
    kwargs: dict[str, Any] = {
        "last_schedule": t("2026-01-02T02:00"),
        "created": t("2026-01-01T00:00"),
    }
    late = due_time("0 2 * * *", now=t("2026-01-03T02:30"), starting_deadline_seconds=600, **kwargs)
    assert late.scheduled is None and late.too_late == t("2026-01-03T02:00")
    in_time = due_time(
        "0 2 * * *", now=t("2026-01-03T02:05"), starting_deadline_seconds=600, **kwargs
    )
    assert in_time.scheduled == t("2026-01-03T02:00") and in_time.too_late is None


def test_missed_count_is_capped() -> None:
    due = due_time(
        "* * * * *", last_schedule=None, created=t("2026-01-01T00:00"), now=t("2026-01-02T00:00")
    )
    assert due.scheduled == t("2026-01-02T00:00") and due.missed == 100


def test_macros() -> None:
    due = due_time(
        "@hourly", last_schedule=None, created=t("2026-01-01T00:30"), now=t("2026-01-01T01:00")
    )
    assert due.scheduled == t("2026-01-01T01:00")


# ---- concurrency and history -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("due", "suspend", "active", "policy", "action"),
    [
        (False, False, None, ConcurrencyPolicy.FORBID, Action.NOTHING),
        (False, False, "a", ConcurrencyPolicy.REPLACE, Action.NOTHING),
        (True, True, None, ConcurrencyPolicy.FORBID, Action.SUSPENDED),
        (True, True, "a", ConcurrencyPolicy.REPLACE, Action.SUSPENDED),
        (True, False, None, ConcurrencyPolicy.FORBID, Action.CREATE),
        (True, False, None, ConcurrencyPolicy.REPLACE, Action.CREATE),
        (True, False, "a", ConcurrencyPolicy.FORBID, Action.WAIT),
        (True, False, "a", ConcurrencyPolicy.REPLACE, Action.REPLACE),
    ],
)
def test_decide(
    due: bool, suspend: bool, active: str | None, policy: ConcurrencyPolicy, action: Action
) -> None:
    assert decide(due=due, suspend=suspend, active=active, policy=policy) is action


def test_prune_keeps_the_newest_finished_runs_and_never_the_active_one() -> None:
    runs = [
        RunRef(name="n-3", scheduled=t("2026-01-03T00:00"), finished=True),
        RunRef(name="n-1", scheduled=t("2026-01-01T00:00"), finished=True),
        RunRef(name="n-4", scheduled=t("2026-01-04T00:00"), finished=False),
        RunRef(name="n-2", scheduled=t("2026-01-02T00:00"), finished=True),
    ]
    assert to_prune(runs, 1) == ["n-1", "n-2"]
    assert to_prune(runs, 3) == []
    assert to_prune(runs, 0) == ["n-1", "n-2", "n-3"]


def test_experiment_names_are_unique_per_time_and_fit_katib() -> None:
    a = experiment_name("nightly", t("2026-01-02T02:00"))
    assert a == f"nightly-{int(t('2026-01-02T02:00').timestamp()) // 60}"
    assert a == experiment_name("nightly", t("2026-01-02T02:00"))
    assert a != experiment_name("nightly", t("2026-01-03T02:00"))
    long = experiment_name("a-very-long-schedule-name-for-our-model-x", t("2026-01-02T02:00"))
    assert len(long) <= 40 and "--" not in long


def test_permanent_errors() -> None:
    assert is_permanent(400) and is_permanent(422) and is_permanent(403)
    assert not any(is_permanent(c) for c in (409, 429, 500, 503))


# ---- run summaries ---------------------------------------------------------------------------


def experiment(name: str, *, finished: bool, best: float | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": [{"type": "Running", "status": "True"}]}
    if finished:
        status["conditions"] = [
            {"type": "Running", "status": "False"},
            {
                "type": "Succeeded",
                "status": "True",
                "reason": "ExperimentMaxTrialsReached",
                "message": "Experiment has succeeded because max trial count has reached",
            },
        ]
        status["completionTime"] = "2026-01-02T04:00:00Z"
    if best is not None:
        status["currentOptimalTrial"] = {
            "bestTrialName": f"{name}-abc",
            "parameterAssignments": [{"name": "lr", "value": "0.01"}],
            "observation": {
                "metrics": [{"name": "accuracy", "min": "0.5", "max": str(best), "latest": "0.7"}]
            },
        }
    return {
        "metadata": {
            "name": name,
            "annotations": {"dcsa.io/scheduled-time": "2026-01-02T02:00:00Z"},
        },
        "spec": TEMPLATE["spec"],
        "status": status,
    }


def test_summary_of_a_finished_run() -> None:
    s = summarize(experiment("n-1", finished=True, best=0.9))
    assert s == {
        "name": "n-1",
        "scheduledTime": "2026-01-02T02:00:00Z",
        "phase": "Succeeded",
        "stopReason": "ExperimentMaxTrialsReached",
        "message": "Experiment has succeeded because max trial count has reached",
        "completionTime": "2026-01-02T04:00:00Z",
        "bestObjective": 0.9,  # max for maximize, Katib's default metric strategy
        "bestTrialName": "n-1-abc",
        "bestParameters": {"lr": "0.01"},
    }
    assert summarize(experiment("n-2", finished=False)) == {
        "name": "n-2",
        "scheduledTime": "2026-01-02T02:00:00Z",
        "phase": "Running",
    }


def test_merge_runs_keeps_pruned_summaries_and_is_bounded() -> None:
    old = [
        {"name": f"n-{i:02}", "scheduledTime": f"2026-01-{i:02}T02:00:00Z"} for i in range(1, 10)
    ]
    new = [
        {"name": "n-09", "scheduledTime": "2026-01-09T02:00:00Z", "phase": "Succeeded"},
        {"name": "n-10", "scheduledTime": "2026-01-10T02:00:00Z", "phase": "Running"},
        {"name": "n-11", "scheduledTime": "2026-01-11T02:00:00Z", "phase": "Running"},
    ]
    runs = merge_runs(old, new)
    assert [r["name"] for r in runs] == [f"n-{i:02}" for i in range(2, 12)]
    assert runs[-3]["phase"] == "Succeeded"


# ---- warm-start payload ----------------------------------------------------------------------


def trial(
    lr: str, layers: str, opt: str, acc: str | None, cond: str = "Succeeded"
) -> dict[str, Any]:
    metrics = [] if acc is None else [{"name": "accuracy", "min": "0", "max": acc, "latest": acc}]
    return {
        "spec": {
            "parameterAssignments": [
                {"name": "lr", "value": lr},
                {"name": "layers", "value": layers},
                {"name": "opt", "value": opt},
            ]
        },
        "status": {
            "conditions": [{"type": cond, "status": "True"}],
            "observation": {"metrics": metrics},
        },
    }


def test_observations_of_finished_trials_only() -> None:
    dropped: Counter[str] = Counter()
    trials = [
        trial("0.01", "2", "sgd", "0.8"),
        trial("0.02", "3", "adam", "0.9", cond="EarlyStopped"),
        trial("0.03", "1", "sgd", "0.7", cond="Failed"),
        trial("0.04", "1", "sgd", None),
        trial("0.05", "1", "sgd", "0.6", cond="Running"),
    ]
    obs = trial_observations(trials, metric="accuracy", strategy="max", dropped=dropped)
    assert obs == [
        WarmTrial({"lr": "0.01", "layers": "2", "opt": "sgd"}, 0.8),
        WarmTrial({"lr": "0.02", "layers": "3", "opt": "adam"}, 0.9),
    ]
    assert dropped == Counter({"not finished": 2, "no objective value": 1})


# ---- the template's search space: the service's parser ---------------------------------------

_ALL_TYPES = [
    {
        "name": "lr",
        "parameterType": "double",
        "feasibleSpace": {"min": "1e-4", "max": "0.1", "distribution": "logUniform"},
    },
    {"name": "drop", "parameterType": "double", "feasibleSpace": {"min": 0, "max": 0.5}},
    {
        "name": "layers",
        "parameterType": "int",
        "feasibleSpace": {"min": 2, "max": 8, "step": 2, "distribution": "uniform"},
    },
    {
        "name": "batch",
        "parameterType": "discrete",
        "feasibleSpace": {"list": [64, "16", 32.5], "distribution": "logNormal"},
    },
    {"name": "width", "parameterType": "discrete", "feasibleSpace": {"list": ["1", "3"]}},
    {"name": "opt", "parameterType": "categorical", "feasibleSpace": {"list": ["sgd", "adam"]}},
]


def _with(i: int, **fs: Any) -> list[dict[str, Any]]:
    out = copy.deepcopy(_ALL_TYPES)
    out[i]["feasibleSpace"] = fs
    return out


@pytest.mark.parametrize(
    "parameters",
    [
        pytest.param(TEMPLATE["spec"]["parameters"], id="template"),
        pytest.param(_ALL_TYPES, id="every-type"),
        pytest.param(_with(1, min="0", max="0.5", distribution="normal"), id="normal"),
        pytest.param(_with(0, min="0", max="1", distribution="logUniform"), id="log-min-0"),
        pytest.param(_with(1, min="0.5", max="0.5"), id="min-is-max"),
        pytest.param(_with(2, min="1", max="8", step="1.5"), id="int-step-1.5"),
        pytest.param(_with(3, list=["1", "1.0"]), id="a-number-twice"),
        pytest.param(_with(5, list=[]), id="no-choices"),
        pytest.param(_with(1, min="0"), id="no-max"),
        pytest.param([*_ALL_TYPES, _ALL_TYPES[0]], id="a-name-twice"),
        pytest.param(
            [{"name": "", "parameterType": "double", "feasibleSpace": {"min": 0, "max": 1}}],
            id="no-name",
        ),
    ],
)
def test_operator_and_service_parse_a_template_alike(parameters: list[dict[str, Any]]) -> None:
    """The operator filters warm-start trials with the space the service will build from the
    Experiment it creates (Katib's conversion, then the service's parser): same space, or the
    same error at the same field."""
    spec = {**TEMPLATE["spec"], "parameters": parameters}
    try:
        expected = convert.to_space(convert.experiment_to_pb("e", spec).spec)
    except InvalidArgumentError as exc:
        with pytest.raises(WarmStartError) as err:
            search_space(spec)
        assert (err.value.field, err.value.message) == (exc.field, exc.message)
    else:
        assert search_space(spec) == expected


def test_a_missing_distribution_is_uniform() -> None:
    space = search_space({"parameters": _ALL_TYPES})
    by_name = {p.name: p for p in space.parameters}
    assert by_name["drop"].distribution is Distribution.UNIFORM
    assert by_name["width"].distribution is Distribution.UNIFORM
    explicit = _with(1, min=0, max=0.5, distribution="uniform")
    assert search_space({"parameters": explicit}) == space


@pytest.mark.parametrize(
    ("parameters", "field", "words"),
    [
        (None, "spec.parameters", "must list at least one parameter"),
        ([], "spec.parameters", "must list at least one parameter"),
        ({"name": "lr"}, "spec.parameters", "must list at least one parameter"),
        ([*_ALL_TYPES[:1], "lr"], "spec.parameters[1]", "must be an object"),
        (
            [{"name": "lr", "parameterType": "double", "feasibleSpace": ["0", "1"]}],
            "spec.parameters[0].feasibleSpace",
            "must be an object",
        ),
        (
            [*_ALL_TYPES[:2], {**_ALL_TYPES[2], "parameterType": "integer"}],
            "spec.parameters[2].parameterType",
            "'integer' is not a known type; allowed: ['double', 'int', 'discrete', 'categorical']",
        ),
        (
            [{"name": "lr", "feasibleSpace": {"min": 0, "max": 1}}],
            "spec.parameters[0].parameterType",
            "'' is not a known type",
        ),
        # Katib's conversion would make these uniform: the webhook refuses them, so must we
        (
            _with(1, min=0, max=1, distribution="loguniform"),
            "spec.parameters[1].feasibleSpace.distribution",
            "'loguniform' is not a known distribution; allowed: ['uniform', 'logUniform', "
            "'normal', 'logNormal']",
        ),
        (
            _with(5, list=["a", "b"], distribution="gaussian"),
            "spec.parameters[5].feasibleSpace.distribution",
            "'gaussian' is not a known distribution",
        ),
    ],
)
def test_a_template_space_katib_would_refuse_names_the_field(
    parameters: Any, field: str, words: str
) -> None:
    with pytest.raises(WarmStartError) as err:
        search_space({"parameters": parameters})
    assert err.value.field == field
    assert words in err.value.message


def test_payload_keeps_the_best_that_fit_and_reports_the_rest() -> None:
    space = search_space(TEMPLATE["spec"])
    cands = [
        WarmTrial({"lr": "0.01", "layers": "2", "opt": "sgd"}, 0.5),
        WarmTrial({"lr": "0.2", "layers": "2", "opt": "sgd"}, 0.99),  # outside the new range
        WarmTrial({"lr": "0.01", "layers": "2", "opt": "rmsprop"}, 0.98),  # choice removed
        WarmTrial({"lr": "0.01", "layers": "2", "opt": "sgd", "old": "1"}, 0.97),  # param gone
        WarmTrial({"lr": "0.02", "layers": "3", "opt": "adam"}, 0.9),
        WarmTrial({"lr": "0.01", "layers": "2", "opt": "sgd"}, 0.7),  # same point, better
        WarmTrial({"lr": "0.03", "layers": "1", "opt": "adam"}, 0.6),
    ]
    p = build_payload(cands, space=space, maximize=True, max_trials=2, dropped={"not finished": 1})
    assert [t.value for t in p.trials] == [0.9, 0.7]
    assert p.dropped == {
        "beyond maxTrials": 1,
        "does not fit the search space": 3,
        "duplicate point": 1,
        "not finished": 1,
    }
    assert p.n_dropped == 6
    assert json.loads(p.to_json()) == {
        "trials": [
            {"assignments": {"layers": "3", "lr": "0.02", "opt": "adam"}, "value": 0.9},
            {"assignments": {"layers": "2", "lr": "0.01", "opt": "sgd"}, "value": 0.7},
        ]
    }
    low = build_payload(cands, space=space, maximize=False, max_trials=1)
    assert [t.value for t in low.trials] == [0.5]  # minimize: the lowest, not the duplicate's 0.7


def test_with_setting_replaces_only_warm_start() -> None:
    base = {
        "algorithm": {
            "algorithmName": "gp-bo",
            "algorithmSettings": [
                {"name": "random_state", "value": "3"},
                {"name": "warm_start", "value": "old"},
            ],
        }
    }
    out = with_setting(base, '{"trials":[]}')
    assert out["algorithm"]["algorithmSettings"] == [
        {"name": "random_state", "value": "3"},
        {"name": "warm_start", "value": '{"trials":[]}'},
    ]
    assert with_setting(base, None)["algorithm"]["algorithmSettings"] == [
        {"name": "random_state", "value": "3"}
    ]
    assert base["algorithm"]["algorithmSettings"][1]["value"] == "old"  # not mutated
