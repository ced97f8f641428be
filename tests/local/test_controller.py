"""Golden tests of the controller's rules: the cases of Katib's own suggestionclient tests
(kubeflow/katib pkg/controller.v1beta1/suggestion/suggestionclient/suggestionclient_test.go),
rewritten here as Python fixtures, must give the request Katib's test expects."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from suggestion_service._generated import api_pb2 as pb
from suggestion_service.katib import convert
from suggestion_service.local import controller as ctl

# ---- fixtures: Katib's fake Experiment, Suggestion and Trials ---------------------------------
PARAMETERS: list[dict[str, Any]] = [
    {"name": "param1-name", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "5"}},
    {
        "name": "param2-name",
        "parameterType": "double",
        "feasibleSpace": {"min": "0.1", "max": "0.4", "step": "0.1"},
    },
]
OBJECTIVE_SPEC: dict[str, Any] = {
    "type": "maximize",
    "objectiveMetricName": "metric1-name",
    "additionalMetricNames": ["metric2-name"],
    "goal": 0.99,
    "metricStrategies": [{"name": "metric1-name", "value": "latest"}],
}
SPEC: dict[str, Any] = {
    "parallelTrialCount": 1,
    "maxTrialCount": 1,
    "algorithm": {
        "algorithmName": "algorithm-name",
        "algorithmSettings": [{"name": "overridden-name", "value": "value"}],
    },
    "earlyStopping": {
        "algorithmName": "early-stopping-name",
        "algorithmSettings": [{"name": "setting-name", "value": "value"}],
    },
    "objective": OBJECTIVE_SPEC,
    "parameters": PARAMETERS,
    "nasConfig": {
        "graphConfig": {"numLayers": 1, "inputSizes": [32, 32, 3], "outputSizes": [10]},
        "operations": [{"operationType": "operation-type", "parameters": PARAMETERS}],
    },
}
SUGGESTION = ctl.SuggestionState(
    requests=6,
    suggestions=tuple(ctl.Assignment(name=f"trial{i}-name", assignments=()) for i in range(1, 5)),
    algorithm_settings=(("overridden-name", "overridden-value"), ("new-setting", "value")),
)
OBJECTIVE = ctl.objective_from_spec(OBJECTIVE_SPEC)
TIME = datetime(2020, 1, 1, 15, 4, 5)
OBSERVED = (ctl.Metric(name="metric1-name", min="0.95", max="0.95", latest="0.95"),)
SUCCEEDED = (ctl.Condition("Succeeded", true=False),)  # Katib's fixture leaves status empty
EARLY_STOPPED = (ctl.Condition("EarlyStopped"),)


def assigned(p1: str, p2: str) -> tuple[tuple[str, str], ...]:
    return (("param1-name", p1), ("param2-name", p2))


TRIALS = (
    ctl.TrialView(
        name="trial1-name",
        objective=OBJECTIVE,
        assignments=assigned("1", "0.1"),
        conditions=SUCCEEDED,
        start_time=TIME,
        completion_time=TIME,
        observation=OBSERVED,
    ),
    ctl.TrialView(
        name="trial2-name",
        objective=OBJECTIVE,
        assignments=assigned("2", "0.2"),
        conditions=SUCCEEDED,
        observation=OBSERVED,
    ),
    ctl.TrialView(
        name="trial3-name",
        objective=ctl.Objective(type="", metric=""),
        assignments=(),
        conditions=(ctl.Condition("MetricsUnavailable"),),
    ),
    ctl.TrialView(
        name="trial4-name",
        objective=OBJECTIVE,
        assignments=assigned("4", "0.4"),
        conditions=EARLY_STOPPED,
    ),
    ctl.TrialView(
        name="trial5-name",
        objective=OBJECTIVE,
        assignments=assigned("5", "0.5"),
        conditions=EARLY_STOPPED,
        observation=OBSERVED,
    ),
)


def expected_request() -> pb.GetSuggestionsRequest:
    """Katib's expected request, built field by field."""
    params = [
        pb.ParameterSpec(
            name="param1-name",
            parameter_type=pb.INT,
            feasible_space=pb.FeasibleSpace(max="5", min="1"),
        ),
        pb.ParameterSpec(
            name="param2-name",
            parameter_type=pb.DOUBLE,
            feasible_space=pb.FeasibleSpace(max="0.4", min="0.1", step="0.1"),
        ),
    ]
    objective = pb.ObjectiveSpec(
        type=pb.MAXIMIZE,
        objective_metric_name="metric1-name",
        additional_metric_names=["metric2-name"],
        goal=0.99,
    )
    req = pb.GetSuggestionsRequest(current_request_number=2, total_request_number=6)
    req.experiment.name = "experiment-name"
    spec = req.experiment.spec
    spec.algorithm.algorithm_name = "algorithm-name"
    spec.algorithm.algorithm_settings.add(name="overridden-name", value="overridden-value")
    spec.algorithm.algorithm_settings.add(name="new-setting", value="value")
    spec.early_stopping.algorithm_name = "early-stopping-name"
    spec.early_stopping.algorithm_settings.add(name="setting-name", value="value")
    spec.objective.CopyFrom(objective)
    spec.parallel_trial_count = 1
    spec.max_trial_count = 1
    spec.parameter_specs.parameters.extend(params)
    spec.nas_config.graph_config.num_layers = 1
    spec.nas_config.graph_config.input_sizes.extend([32, 32, 3])
    spec.nas_config.graph_config.output_sizes.extend([10])
    op = spec.nas_config.operations.operation.add(operation_type="operation-type")
    op.parameter_specs.parameters.extend(params)
    for name, p1, p2, when, condition in (
        ("trial1-name", "1", "0.1", "2020-01-01T15:04:05Z", pb.TrialStatus.SUCCEEDED),
        ("trial2-name", "2", "0.2", "", pb.TrialStatus.SUCCEEDED),
        ("trial5-name", "5", "0.5", "", pb.TrialStatus.EARLYSTOPPED),
    ):
        t = req.trials.add(name=name)
        t.spec.objective.CopyFrom(objective)
        t.spec.parameter_assignments.assignments.add(name="param1-name", value=p1)
        t.spec.parameter_assignments.assignments.add(name="param2-name", value=p2)
        t.status.start_time = when
        t.status.completion_time = when
        t.status.condition = condition
        t.status.observation.metrics.add(name="metric1-name", value="0.95")
    return req


# ---- GetSuggestions request ------------------------------------------------------------------
def test_request_is_katibs_golden_request() -> None:
    exp = convert.experiment_to_pb("experiment-name", SPEC)
    req = ctl.build_request(exp, SUGGESTION, TRIALS)
    assert req == expected_request()


def test_no_call_when_the_suggestion_holds_enough() -> None:
    # Katib's "Negative request number": requests 4, 6 suggestions made
    state = ctl.SuggestionState(
        requests=4,
        suggestions=tuple(ctl.Assignment(name=f"t{i}", assignments=()) for i in range(6)),
    )
    assert ctl.build_request(convert.experiment_to_pb("e", SPEC), state, TRIALS) is None


def test_unused_suggestions_become_trials_without_a_call() -> None:
    state = ctl.SuggestionState(
        requests=3,
        suggestions=(
            ctl.Assignment(name="trial1-name", assignments=()),
            ctl.Assignment(name="late", assignments=(("param1-name", "3"),)),
            ctl.Assignment(name="later", assignments=(("param1-name", "4"),)),
        ),
    )
    trials = TRIALS[:1]
    assert [a.name for a in ctl.unused(state, trials)] == ["late", "later"]
    assert ctl.build_request(convert.experiment_to_pb("e", SPEC), state, trials) is None


def test_requests_leave_out_early_stopped_trials_without_observation() -> None:
    # five trials, one EarlyStopped without an observation (trial4), two to add
    assert ctl.requests_for(TRIALS, 2) == 6


def test_trials_to_add_fills_parallel_up_to_max_trials() -> None:
    assert ctl.trials_to_add(parallel=3, max_trials=10, active=1, completed=2) == 2
    assert ctl.trials_to_add(parallel=3, max_trials=4, active=1, completed=2) == 1
    assert ctl.trials_to_add(parallel=3, max_trials=4, active=3, completed=2) == 0
    assert ctl.trials_to_add(parallel=2, max_trials=None, active=0, completed=50) == 2


def test_only_the_last_condition_is_sent() -> None:
    trial = ctl.TrialView(
        name="t",
        objective=OBJECTIVE,
        assignments=(),
        conditions=(ctl.Condition("Created"), ctl.Condition("Running"), ctl.Condition("Failed")),
    )
    assert ctl.trial_to_pb(trial).status.condition == pb.TrialStatus.FAILED


@pytest.mark.parametrize(
    ("condition", "wire"),
    [
        ("Created", pb.TrialStatus.CREATED),
        ("Running", pb.TrialStatus.RUNNING),
        ("Succeeded", pb.TrialStatus.SUCCEEDED),
        ("Killed", pb.TrialStatus.KILLED),
        ("Failed", pb.TrialStatus.FAILED),
        ("EarlyStopped", pb.TrialStatus.EARLYSTOPPED),
        ("Unknown", pb.TrialStatus.UNKNOWN),
    ],
)
def test_condition_types(condition: str, wire: int) -> None:
    assert ctl.condition_to_pb(condition) == wire


# ---- observations ----------------------------------------------------------------------------
STRATEGIES = {"error": "min", "auc": "max", "accuracy": "latest"}


def observation(**override: str) -> list[ctl.Metric]:
    metrics = {
        "error": {"min": "0.01", "max": "0.08", "latest": "0.05"},
        "auc": {"min": "0.70", "max": "0.95", "latest": "0.90"},
        "accuracy": {"min": "0.8", "max": "0.94", "latest": "0.93"},
    }
    for key, value in override.items():
        name, field = key.split("__")
        metrics[name][field] = value
    return [ctl.Metric(name=n, **m) for n, m in metrics.items()]


def values(obs: pb.Observation) -> dict[str, str]:
    return {m.name: m.value for m in obs.metrics}


def test_metrics_by_strategy() -> None:
    got = values(ctl.observation_to_pb(STRATEGIES, observation()))
    assert got == {"error": "0.01", "auc": "0.95", "accuracy": "0.93"}


def test_unavailable_min_falls_back_to_latest() -> None:
    obs = observation(error__min=ctl.UNAVAILABLE)
    assert values(ctl.observation_to_pb(STRATEGIES, obs))["error"] == "0.05"


def test_unavailable_max_falls_back_to_latest() -> None:
    obs = observation(auc__max=ctl.UNAVAILABLE)
    assert values(ctl.observation_to_pb(STRATEGIES, obs))["auc"] == "0.90"


def test_metric_without_strategy_is_sent_empty() -> None:
    got = values(ctl.observation_to_pb({}, observation()))
    assert got == {"error": "", "auc": "", "accuracy": ""}


# ---- parameters ------------------------------------------------------------------------------
def test_feasible_space_without_distribution_is_unspecified() -> None:
    [p] = convert.parameters_to_pb(
        [
            {
                "name": "x",
                "parameterType": "int",
                "feasibleSpace": {"min": "1", "max": "10", "step": "1", "list": ["1", "2", "3"]},
            }
        ]
    )
    assert p.feasible_space == pb.FeasibleSpace(max="10", min="1", list=["1", "2", "3"], step="1")
    assert p.parameter_type == pb.INT


@pytest.mark.parametrize(
    ("name", "wire"),
    [
        ("uniform", pb.UNIFORM),
        ("logUniform", pb.LOG_UNIFORM),
        ("normal", pb.NORMAL),
        ("logNormal", pb.LOG_NORMAL),
        ("", pb.DISTRIBUTION_UNSPECIFIED),
    ],
)
def test_distributions(name: str, wire: int) -> None:
    [p] = convert.parameters_to_pb(
        [{"name": "x", "parameterType": "double", "feasibleSpace": {"distribution": name}}]
    )
    assert p.feasible_space.distribution == wire


@pytest.mark.parametrize(
    ("kind", "wire"),
    [
        ("discrete", pb.DISCRETE),
        ("categorical", pb.CATEGORICAL),
        ("double", pb.DOUBLE),
        ("int", pb.INT),
        ("", pb.UNKNOWN_TYPE),
    ],
)
def test_parameter_types(kind: str, wire: int) -> None:
    [p] = convert.parameters_to_pb([{"name": "x", "parameterType": kind}])
    assert p.parameter_type == wire


@pytest.mark.parametrize(
    ("goal", "wire"), [("maximize", pb.MAXIMIZE), ("minimize", pb.MINIMIZE), ("", pb.UNKNOWN)]
)
def test_objective_types(goal: str, wire: int) -> None:
    assert ctl.objective_to_pb(ctl.Objective(type=goal, metric="m")).type == wire


# ---- the reply -------------------------------------------------------------------------------
def reply(n: int, *, algorithm: bool = True) -> pb.GetSuggestionsReply:
    out = pb.GetSuggestionsReply()
    for i in range(n):
        item = out.parameter_assignments.add()
        item.assignments.add(name="param1-name", value=str(i + 1))
        item.assignments.add(name="param2-name", value=f"0.{i + 3}")
    if n:
        out.parameter_assignments[0].trial_name = "named-by-service"
        out.parameter_assignments[0].labels["origin"] = "model"
    if algorithm:
        out.algorithm.algorithm_settings.add(name="overridden-name", value="suggestion-value")
        out.algorithm.algorithm_settings.add(name="new-suggestion-setting-name", value="value")
    return out


def test_reply_appends_suggestions_and_merges_settings_by_name() -> None:
    req = expected_request()
    names = iter(["fresh-1"])
    state = ctl.accept_reply(SUGGESTION, req, reply(2), fresh_name=lambda _i: next(names))
    assert [s.name for s in state.suggestions[4:]] == ["named-by-service", "fresh-1"]
    assert state.suggestions[4].labels == {"origin": "model"}
    assert state.suggestion_count == 6
    assert state.algorithm_settings == (
        ("overridden-name", "suggestion-value"),
        ("new-setting", "value"),
        ("new-suggestion-setting-name", "value"),
    )
    # the next request: nothing left to ask for
    exp = convert.experiment_to_pb("experiment-name", SPEC)
    assert ctl.build_request(exp, state, TRIALS) is None


def test_reply_with_the_wrong_count_is_refused() -> None:
    with pytest.raises(ctl.ReplyError, match="unexpected trials: 1 assignments, 2 requested"):
        ctl.accept_reply(SUGGESTION, expected_request(), reply(1), fresh_name=lambda _i: "x")


def test_reply_labels_never_reach_the_next_request() -> None:
    req = expected_request()
    state = ctl.accept_reply(SUGGESTION, req, reply(2), fresh_name=lambda _i: "fresh")
    trial = ctl.TrialView(
        name=state.suggestions[4].name, objective=OBJECTIVE, assignments=assigned("1", "0.3")
    )
    sent = ctl.trial_to_pb(trial)
    assert dict(sent.spec.labels) == {}
    assert sent.status.condition == pb.TrialStatus.CREATED


def test_settings_from_the_status_overwrite_the_experiments() -> None:
    exp = convert.experiment_to_pb("e", SPEC)
    merged = ctl.with_settings(exp, [("overridden-name", "x"), ("new", "y")])
    assert [(s.name, s.value) for s in merged.spec.algorithm.algorithm_settings] == [
        ("overridden-name", "x"),
        ("new", "y"),
    ]
    # the Experiment itself is untouched (ValidateAlgorithmSettings sends it unmerged)
    assert [(s.name, s.value) for s in exp.spec.algorithm.algorithm_settings] == [
        ("overridden-name", "value")
    ]


def test_times_in_katibs_format() -> None:
    assert ctl.format_time(datetime(2006, 1, 2, 15, 4, 5)) == "2006-01-02T15:04:05Z"
    assert ctl.format_time(None) == ""
    assert ctl.parse_time("2006-01-02T15:04:05Z") == datetime(2006, 1, 2, 15, 4, 5)


# ---- stop conditions -------------------------------------------------------------------------
def test_stop_conditions() -> None:
    common: dict[str, Any] = {
        "metric": "loss",
        "target": 0.1,
        "maximize": False,
        "max_failed": 2,
        "max_trials": 5,
    }
    goal = ctl.stop_condition(best=("t1", "0.05", 0.05), failed=0, active=2, total=3, **common)
    assert goal is not None and goal.reason == ctl.GOAL_REACHED
    assert "loss=0.05 of trial t1 reached the goal (<= 0.1)" in goal.message
    failed = ctl.stop_condition(best=None, failed=3, active=1, total=4, **common)
    assert failed is not None and failed.reason == ctl.MAX_FAILED and failed.status == "Failed"
    done = ctl.stop_condition(best=("t", "0.5", 0.5), failed=0, active=0, total=5, **common)
    assert done is not None and done.reason == ctl.MAX_TRIALS
    assert ctl.stop_condition(best=("t", "0.5", 0.5), failed=2, active=1, total=5, **common) is None


# ---- the one converter: both directions agree ------------------------------------------------
def test_trial_round_trip_through_the_converter() -> None:
    wire = ctl.trial_to_pb(TRIALS[0])
    record = convert.to_trial(wire)
    back = convert.from_trial(record)
    assert back.name == wire.name
    assert back.spec.parameter_assignments == wire.spec.parameter_assignments
    assert back.status.condition == wire.status.condition
    assert back.status.observation == wire.status.observation
    assert dict(back.spec.labels) == {}


def test_experiment_yaml_to_wire_to_space() -> None:
    exp = convert.experiment_to_pb("experiment-name", SPEC)
    space = convert.to_space(exp.spec)
    assert [p.name for p in space.parameters] == ["param1-name", "param2-name"]
    assert convert.to_objective(exp.spec).metric == "metric1-name"


# ---- the synchronous loop (benchmarks, tests) --------------------------------------------------
class _Recorder:
    """A service that answers with numbered points, names every other trial, labels them and
    returns a setting per call; it keeps the requests."""

    def __init__(self) -> None:
        self.requests: list[pb.GetSuggestionsRequest] = []

    def __call__(self, request: pb.GetSuggestionsRequest) -> pb.GetSuggestionsReply:
        self.requests.append(request)
        out = pb.GetSuggestionsReply()
        for i in range(request.current_request_number):
            k = request.total_request_number - request.current_request_number + i
            item = out.parameter_assignments.add(trial_name=f"named-{k}" if k % 2 else "")
            item.assignments.add(name="param1-name", value=str(1 + k % 5))
            item.labels["origin"] = "model"
        out.algorithm.algorithm_settings.add(name="calls", value=str(len(self.requests)))
        return out


def _finished(made: ctl.Assignment, i: int) -> ctl.TrialView:
    return ctl.TrialView(
        name=made.name,
        objective=OBJECTIVE,
        assignments=made.assignments,
        conditions=(ctl.Condition("Succeeded"),),
        start_time=TIME,
        completion_time=TIME,
        observation=(ctl.Metric.reduced("metric1-name", str(i)),),
    )


def test_run_synchronous_asks_like_katib_and_never_sends_labels_back() -> None:
    exp = convert.experiment_to_pb("exp", SPEC)
    service = _Recorder()
    trials = ctl.run_synchronous(exp, service, _finished, parallel=3, max_trials=7)
    reqs = service.requests
    assert [(r.current_request_number, r.total_request_number) for r in reqs] == [
        (3, 3),
        (3, 6),
        (1, 7),  # the last round asks only for what maxTrialCount leaves
    ]
    assert [len(r.trials) for r in reqs] == [0, 3, 6]
    # trials named by the reply, else by the loop
    assert [t.name for t in trials] == [
        "exp-0000",
        "named-1",
        "exp-0002",
        "named-3",
        "exp-0004",
        "named-5",
        "exp-0006",
    ]
    for r in reqs[1:]:
        assert all(dict(t.spec.labels) == {} for t in r.trials)
        assert all(t.status.condition == pb.TrialStatus.SUCCEEDED for t in r.trials)
    # reply settings merged by name into the next request's Experiment
    settings = [
        [(s.name, s.value) for s in r.experiment.spec.algorithm.algorithm_settings] for r in reqs
    ]
    assert settings[0] == [("overridden-name", "value")]
    assert settings[2] == [("overridden-name", "value"), ("calls", "2")]


def test_run_synchronous_stops_on_a_reply_of_the_wrong_size() -> None:
    def short(request: pb.GetSuggestionsRequest) -> pb.GetSuggestionsReply:
        return pb.GetSuggestionsReply()

    with pytest.raises(ctl.ReplyError, match="0 assignments, 2 requested"):
        ctl.run_synchronous(
            convert.experiment_to_pb("exp", SPEC), short, _finished, parallel=2, max_trials=4
        )


def test_suggest_uses_unused_suggestions_before_calling() -> None:
    exp = convert.experiment_to_pb("exp", SPEC)
    state = ctl.SuggestionState(
        suggestions=(ctl.Assignment(name="left-over", assignments=(("param1-name", "2"),)),)
    )

    def never(request: pb.GetSuggestionsRequest) -> pb.GetSuggestionsReply:
        raise AssertionError("no call expected")

    step = ctl.suggest(exp, state, [], 1, never, fresh_name=lambda _i: "x")
    assert step.request is None
    assert [s.name for s in step.new] == ["left-over"]
