"""A Katib-equivalent ``bayesianoptimization`` suggestion server, for the latency benchmark.

It answers ``api.v1.beta1.Suggestion/GetSuggestions`` the way Katib's skopt service
(``pkg/suggestion/v1beta1/skopt``) does on its first call after a (re)start: build a
``skopt.Optimizer`` with Katib's defaults (``base_estimator="GP"``, ``n_initial_points=10``,
``acq_func="gp_hedge"``, ``acq_optimizer="auto"``, ``random_state`` unset), map the parameters
as Katib does (double and int: ``Real`` / ``Integer`` with a uniform or log-uniform prior from the
distribution, int steps ignored; discrete and categorical: ``Categorical`` of the listed strings),
``tell`` it every SUCCEEDED trial that has the objective metric (negated for maximise), then
``ask(n_points=current_request_number)``. Katib keeps the optimizer in memory between calls, but
skopt's ``tell`` refits the GP on all points anyway, so a warm call costs about as much.

The distribution mapping follows Katib's current code; older releases forced every double to
log-uniform, which fails on ``min <= 0`` (this benchmark's ``dropout`` and ``warmup`` start at 0),
so those would not run this space at all.

Written for this benchmark from Katib's documented behaviour; it is not Katib's code and it
does not reproduce Katib's bugs beyond what the latency depends on.

Run: ``python -m benchmarks.skopt_service --port 0``; it logs ``listening on 127.0.0.1:<port>``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import grpc
import skopt

from benchmarks._peer_server import serve
from suggestion_service._generated import api_pb2 as pb
from suggestion_service._generated import api_pb2_grpc as pb_grpc

ALGORITHM = "bayesianoptimization"
#: Katib's defaults for the skopt service's settings.
DEFAULTS: dict[str, Any] = {
    "base_estimator": "GP",
    "n_initial_points": 10,
    "acq_func": "gp_hedge",
    "acq_optimizer": "auto",
    "random_state": None,
}
_INT_SETTINGS = ("n_initial_points", "random_state")


def optimizer_settings(spec: pb.ExperimentSpec) -> dict[str, Any]:
    """Katib's defaults overridden by the experiment's algorithm settings."""
    out = dict(DEFAULTS)
    for s in spec.algorithm.algorithm_settings:
        if s.name not in DEFAULTS:
            raise ValueError(f"unknown setting {s.name} for algorithm {ALGORITHM}")
        out[s.name] = int(s.value) if s.name in _INT_SETTINGS else s.value
    return out


def dimensions(spec: pb.ExperimentSpec) -> list[Any]:
    """skopt dimensions, mapped as Katib maps them."""
    dims: list[Any] = []
    for p in spec.parameter_specs.parameters:
        fs = p.feasible_space
        if p.parameter_type in (pb.INT, pb.DOUBLE):
            if fs.distribution in (pb.UNIFORM, pb.DISTRIBUTION_UNSPECIFIED):
                prior = "uniform"
            elif fs.distribution == pb.LOG_UNIFORM:
                prior = "log-uniform"
            else:
                raise ValueError(f"unsupported distribution for parameter {p.name}")
            if p.parameter_type == pb.INT:
                dims.append(skopt.space.Integer(int(fs.min), int(fs.max), prior, name=p.name))
            else:
                dims.append(skopt.space.Real(float(fs.min), float(fs.max), prior, name=p.name))
        elif p.parameter_type in (pb.CATEGORICAL, pb.DISCRETE):
            dims.append(skopt.space.Categorical(list(fs.list), name=p.name))
        else:
            raise ValueError(f"unsupported type for parameter {p.name}")
    return dims


def observations(request: pb.GetSuggestionsRequest) -> tuple[list[list[Any]], list[float]]:
    """Points and losses of the SUCCEEDED trials that carry the objective metric."""
    spec = request.experiment.spec
    metric = spec.objective.objective_metric_name
    sign = -1.0 if spec.objective.type == pb.MAXIMIZE else 1.0
    types = [(p.name, p.parameter_type) for p in spec.parameter_specs.parameters]
    xs: list[list[Any]] = []
    ys: list[float] = []
    for t in request.trials:
        if t.status.condition != pb.TrialStatus.SUCCEEDED:
            continue
        values = [m.value for m in t.status.observation.metrics if m.name == metric]
        if not values:
            continue
        given = {a.name: a.value for a in t.spec.parameter_assignments.assignments}
        row: list[Any] = []
        for name, kind in types:
            text = given[name]
            row.append(int(text) if kind == pb.INT else float(text) if kind == pb.DOUBLE else text)
        xs.append(row)
        ys.append(sign * float(values[-1]))
    return xs, ys


def suggest(request: pb.GetSuggestionsRequest) -> list[list[Any]]:
    """A fresh optimizer, ``tell`` all completed trials, ``ask`` for the requested number."""
    spec = request.experiment.spec
    opt = skopt.Optimizer(dimensions(spec), **optimizer_settings(spec))
    xs, ys = observations(request)
    if xs:
        opt.tell(xs, ys)
    return list(opt.ask(n_points=request.current_request_number))


class SkoptSuggestion(pb_grpc.SuggestionServicer):
    """``api.v1.beta1.Suggestion`` backed by skopt, as Katib's ``bayesianoptimization``."""

    def GetSuggestions(  # noqa: N802 - gRPC method name
        self, request: pb.GetSuggestionsRequest, context: grpc.ServicerContext
    ) -> pb.GetSuggestionsReply:
        try:
            points = suggest(request) if request.current_request_number > 0 else []
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        names = [p.name for p in request.experiment.spec.parameter_specs.parameters]
        reply = pb.GetSuggestionsReply()
        for point in points:
            item = reply.parameter_assignments.add()
            for name, value in zip(names, point, strict=True):
                item.assignments.add(name=name, value=str(value))
        return reply

    def ValidateAlgorithmSettings(  # noqa: N802 - gRPC method name
        self, request: pb.ValidateAlgorithmSettingsRequest, context: grpc.ServicerContext
    ) -> pb.ValidateAlgorithmSettingsReply:
        try:
            optimizer_settings(request.experiment.spec)
            dimensions(request.experiment.spec)
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return pb.ValidateAlgorithmSettingsReply()


def main(argv: Sequence[str] | None = None) -> int:
    return serve(SkoptSuggestion(), argv, description=__doc__.splitlines()[0], max_workers=4)


if __name__ == "__main__":
    sys.exit(main())
