"""Protobuf <-> core types. Katib's strings are parsed once here into typed objects and back."""

from __future__ import annotations

from collections.abc import Mapping

from .._generated import api_pb2 as pb
from ..core.engine import SuggestRequest, SuggestResponse
from ..core.errors import InvalidObjectiveError, InvalidRequestError, InvalidSearchSpaceError, echo
from ..core.history import Goal, Objective, TrialRecord, TrialState
from ..core.settings import LEDGER_SETTING
from ..core.space import SearchSpace, make_parameter, make_space

_TYPES = {
    pb.DOUBLE: "double",
    pb.INT: "int",
    pb.DISCRETE: "discrete",
    pb.CATEGORICAL: "categorical",
}
_DISTRIBUTIONS = {
    pb.DISTRIBUTION_UNSPECIFIED: "uniform",
    pb.UNIFORM: "uniform",
    pb.LOG_UNIFORM: "logUniform",
    pb.NORMAL: "normal",
    pb.LOG_NORMAL: "logNormal",
}
_STATES = {
    pb.TrialStatus.CREATED: TrialState.CREATED,
    pb.TrialStatus.RUNNING: TrialState.RUNNING,
    pb.TrialStatus.SUCCEEDED: TrialState.SUCCEEDED,
    pb.TrialStatus.KILLED: TrialState.KILLED,
    pb.TrialStatus.FAILED: TrialState.FAILED,
    pb.TrialStatus.METRICSUNAVAILABLE: TrialState.METRICS_UNAVAILABLE,
    pb.TrialStatus.EARLYSTOPPED: TrialState.EARLY_STOPPED,
    pb.TrialStatus.UNKNOWN: TrialState.UNKNOWN,
}


def to_space(spec: pb.ExperimentSpec) -> SearchSpace:
    """Parse ``spec.parameter_specs`` into a validated search space."""
    params = []
    for i, ps in enumerate(spec.parameter_specs.parameters):
        where = f"spec.parameters[{i}]"
        type_name = _TYPES.get(ps.parameter_type)
        if type_name is None:
            raise InvalidSearchSpaceError(
                f"{where}.parameterType",
                f"parameter {echo(ps.name)} has unknown type {ps.parameter_type}; allowed: "
                "double, int, discrete, categorical",
            )
        fs = ps.feasible_space
        dist = _DISTRIBUTIONS.get(fs.distribution)
        if dist is None:
            raise InvalidSearchSpaceError(
                f"{where}.feasibleSpace.distribution",
                f"unknown distribution {fs.distribution}; allowed: uniform, logUniform, normal, "
                "logNormal",
            )
        params.append(
            make_parameter(
                name=ps.name,
                type_name=type_name,
                min_text=fs.min,
                max_text=fs.max,
                step_text=fs.step,
                choices=list(fs.list),
                distribution=dist,
                where=where,
            )
        )
    return make_space(params)


def to_objective(spec: pb.ExperimentSpec) -> Objective:
    obj = spec.objective
    if obj.type == pb.MAXIMIZE:
        goal = Goal.MAXIMIZE
    elif obj.type == pb.MINIMIZE:
        goal = Goal.MINIMIZE
    else:
        raise InvalidObjectiveError("spec.objective.type", "must be minimize or maximize")
    if not obj.objective_metric_name:
        raise InvalidObjectiveError("spec.objective.objectiveMetricName", "must not be empty")
    # proto3 cannot tell an unset goal from 0; the core only reports it, so keep it as sent
    return Objective(goal=goal, metric=obj.objective_metric_name, target=obj.goal)


def to_settings(spec: pb.ExperimentSpec) -> dict[str, str]:
    """Algorithm settings by name (a later duplicate overrides, as Katib's merge does)."""
    return {s.name: s.value for s in spec.algorithm.algorithm_settings}


def to_trial(trial: pb.Trial) -> TrialRecord:
    return TrialRecord(
        name=trial.name,
        assignments={a.name: a.value for a in trial.spec.parameter_assignments.assignments},
        state=_STATES.get(trial.status.condition, TrialState.UNKNOWN),
        metrics={m.name: m.value for m in trial.status.observation.metrics},
        labels=dict(trial.spec.labels),
    )


#: Most suggestions an experiment may have requested (``total_request_number``). Quasi-random
#: sequences are generated up to this position, so memory grows with it: 100,000 costs about
#: 50 MB; Katib's own experiments stay far below (each trial is a pod).
MAX_TOTAL_REQUESTS = 100_000


def to_request(request: pb.GetSuggestionsRequest) -> SuggestRequest:
    spec = request.experiment.spec
    if request.total_request_number > MAX_TOTAL_REQUESTS:
        raise InvalidRequestError(
            "total_request_number",
            f"must be at most {MAX_TOTAL_REQUESTS}, got {request.total_request_number}",
        )
    return SuggestRequest(
        algorithm=spec.algorithm.algorithm_name,
        experiment=request.experiment.name or "experiment",
        space=to_space(spec),
        objective=to_objective(spec),
        settings=to_settings(spec),
        trials=[to_trial(t) for t in request.trials],
        n=request.current_request_number,
        total_requested=request.total_request_number,
    )


def to_reply(response: SuggestResponse, algorithm: str) -> pb.GetSuggestionsReply:
    """Build the reply; ``algorithm`` carries the ledger for Katib to store and send back."""
    reply = pb.GetSuggestionsReply()
    for s in response.suggestions:
        item = reply.parameter_assignments.add(trial_name=s.trial_name)
        for name, value in s.assignments.items():
            item.assignments.add(name=name, value=value)
        _copy_labels(item.labels, s.labels)
    reply.algorithm.algorithm_name = algorithm
    reply.algorithm.algorithm_settings.add(name=LEDGER_SETTING, value=response.ledger)
    return reply


def _copy_labels(target: object, labels: Mapping[str, str]) -> None:
    for k, v in labels.items():
        target[k] = v  # type: ignore[index]
