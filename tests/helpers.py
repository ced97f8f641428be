"""Builders shared by the tests: Katib-shaped requests in core and protobuf form."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from suggestion_service._generated import api_pb2 as pb
from suggestion_service.core.engine import SuggestRequest, SuggestResponse, suggest
from suggestion_service.core.history import Goal, Objective, TrialRecord, TrialState
from suggestion_service.core.space import SearchSpace, make_parameter, make_space
from suggestion_service.katib import convert
from suggestion_service.katib.servicer import answer
from suggestion_service.local import controller as ctl

# name, type, min, max, step, list, distribution
MIXED = [
    ("lr", "double", "0.0001", "0.1", "", (), "logUniform"),
    ("momentum", "double", "-1", "1", "", (), "uniform"),
    ("units", "int", "8", "256", "8", (), "uniform"),
    ("layers", "int", "1", "5", "", (), "uniform"),
    ("dropout", "double", "0", "0.5", "0.05", (), "uniform"),
    ("batch", "discrete", "", "", "", ("16", "32", "64", "128"), "uniform"),
    ("optimizer", "categorical", "", "", "", ("sgd", "adam", "rmsprop"), "uniform"),
    ("wd", "double", "0.000001", "0.01", "", (), "logNormal"),
    ("scale", "double", "0", "10", "", (), "normal"),
]


def space_from(rows: Sequence[tuple[Any, ...]]) -> SearchSpace:
    return make_space(
        [
            make_parameter(
                name=n,
                type_name=t,
                min_text=lo,
                max_text=hi,
                step_text=st,
                choices=list(ch),
                distribution=d,
                where=f"spec.parameters[{i}]",
            )
            for i, (n, t, lo, hi, st, ch, d) in enumerate(rows)
        ]
    )


def objective(goal: Goal = Goal.MINIMIZE) -> Objective:
    return Objective(goal=goal, metric="loss")


def trial(
    name: str,
    values: Mapping[str, str],
    state: TrialState = TrialState.SUCCEEDED,
    loss: float | str | None = None,
    labels: Mapping[str, str] | None = None,
) -> TrialRecord:
    metrics = {} if loss is None else {"loss": str(loss)}
    return TrialRecord(
        name=name, assignments=dict(values), state=state, metrics=metrics, labels=dict(labels or {})
    )


def run_loop(
    algorithm: str,
    space: SearchSpace,
    f: Callable[[Mapping[str, str]], float],
    *,
    budget: int,
    batch: int = 1,
    seed: int = 0,
    goal: Goal = Goal.MINIMIZE,
    settings: Mapping[str, str] | None = None,
    experiment: str = "exp",
) -> list[TrialRecord]:
    """Drive the service in process with Katib's controller rules (the loop the benchmarks and
    ``dcsa run`` share): all trials every call, reply settings merged back, labels never sent
    back. Returns the trials as the core sees them, in order."""
    maximize = goal is Goal.MAXIMIZE
    exp = ctl.experiment_of_space(
        experiment,
        space,
        algorithm=algorithm,
        settings={"random_state": str(seed), **(settings or {})},
        type="maximize" if maximize else "minimize",
        parallel=batch,
        max_trials=budget,
    )
    view_objective = ctl.Objective(
        type="maximize" if maximize else "minimize",
        metric="loss",
        strategies={"loss": "max" if maximize else "min"},
    )
    out: list[TrialRecord] = []

    def evaluate(made: ctl.Assignment, _i: int) -> ctl.TrialView:
        loss = str(f(dict(made.assignments)))
        out.append(trial(made.name, dict(made.assignments), loss=loss))
        return ctl.succeeded(made, view_objective, loss)

    ctl.run_synchronous(
        exp, lambda req: answer(req)[2], evaluate, parallel=batch, max_trials=budget
    )
    return out


def best(trials: Sequence[TrialRecord], goal: Goal = Goal.MINIMIZE) -> float:
    vals = [float(t.metrics["loss"]) for t in trials]
    return min(vals) if goal is Goal.MINIMIZE else max(vals)


def call(
    algorithm: str,
    space: SearchSpace,
    trials: Sequence[TrialRecord],
    n: int,
    *,
    total: int | None = None,
    settings: Mapping[str, str] | None = None,
    time_limit: float | None = None,
    goal: Goal = Goal.MINIMIZE,
) -> SuggestResponse:
    return suggest(
        SuggestRequest(
            algorithm=algorithm,
            experiment="exp",
            space=space,
            objective=objective(goal),
            settings=dict(settings or {}),
            trials=trials,
            n=n,
            total_requested=total if total is not None else len(trials) + n,
        ),
        time_limit=time_limit,
    )


def random_trials(
    space: SearchSpace,
    n: int,
    seed: int = 0,
    f: Callable[[Mapping[str, str]], float] | None = None,
    state: TrialState = TrialState.SUCCEEDED,
    prefix: str = "t",
) -> list[TrialRecord]:
    rng = np.random.default_rng(seed)
    rows = space.from_latent(rng.random((n, len(space))))
    out = []
    for i, row in enumerate(rows):
        values = space.to_strings(row)
        loss = None if state is not TrialState.SUCCEEDED else (f(values) if f else float(i))
        out.append(trial(f"{prefix}{i}", values, state, loss))
    return out


# ---- protobuf builders ---------------------------------------------------------------------
_PB_TYPES = {
    "double": pb.DOUBLE,
    "int": pb.INT,
    "discrete": pb.DISCRETE,
    "categorical": pb.CATEGORICAL,
}
_PB_DIST = {
    "uniform": pb.UNIFORM,
    "logUniform": pb.LOG_UNIFORM,
    "normal": pb.NORMAL,
    "logNormal": pb.LOG_NORMAL,
}


def pb_experiment(
    rows: Sequence[tuple[Any, ...]] = MIXED,
    *,
    algorithm: str = "gp-bo",
    settings: Mapping[str, str] | None = None,
    name: str = "exp",
    maximize: bool = False,
    metric: str = "loss",
) -> pb.Experiment:
    exp = pb.Experiment(name=name)
    spec = exp.spec
    for n, t, lo, hi, st, ch, d in rows:
        p = spec.parameter_specs.parameters.add(name=n, parameter_type=_PB_TYPES.get(t, 99))
        p.feasible_space.min = lo
        p.feasible_space.max = hi
        p.feasible_space.step = st
        p.feasible_space.list.extend(ch)
        p.feasible_space.distribution = _PB_DIST.get(d, 0)
    spec.objective.type = pb.MAXIMIZE if maximize else pb.MINIMIZE
    spec.objective.objective_metric_name = metric
    spec.algorithm.algorithm_name = algorithm
    for k, v in (settings or {}).items():
        spec.algorithm.algorithm_settings.add(name=k, value=v)
    return exp


def pb_trial(t: TrialRecord) -> pb.Trial:
    """The trial as Katib sends it, through the service's own converter."""
    return convert.from_trial(t)


def pb_request(
    exp: pb.Experiment, trials: Sequence[TrialRecord], n: int, total: int | None = None
) -> pb.GetSuggestionsRequest:
    req = pb.GetSuggestionsRequest(
        experiment=exp,
        current_request_number=n,
        total_request_number=total if total is not None else len(trials) + n,
    )
    req.trials.extend(pb_trial(t) for t in trials)
    return req


def assert_likelihood_gradient(model: Any, theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
    """``model.neg_log_posterior``'s analytic gradient at ``theta`` matches central finite
    differences (step 1e-6) in every coordinate, to rel 1e-4 / abs 1e-5."""
    import pytest

    _, grad = model.neg_log_posterior(theta, x, y)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = 1e-6
        up = model.neg_log_posterior(theta + e, x, y)[0]
        down = model.neg_log_posterior(theta - e, x, y)[0]
        assert grad[i] == pytest.approx((up - down) / 2e-6, rel=1e-4, abs=1e-5), i
