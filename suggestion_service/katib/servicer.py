"""The thin Katib Suggestion servicer: convert, call the core, convert back, reply."""

from __future__ import annotations

import logging
import time
from typing import NoReturn

import grpc

from .._generated import api_pb2 as pb
from .._generated import api_pb2_grpc as pb_grpc
from ..core import engine
from ..core.errors import InvalidArgumentError, SearchSpaceExhaustedError, cut
from ..core.history import Goal, summarize_issues
from ..observability.metrics import Metrics
from . import convert
from .status import status_for

log = logging.getLogger(__name__)

#: Seconds kept back from the caller's deadline for serialising and sending the reply.
DEADLINE_MARGIN = 2.0


def answer(
    request: pb.GetSuggestionsRequest, *, time_limit: float | None = None
) -> tuple[engine.SuggestRequest, engine.SuggestResponse, pb.GetSuggestionsReply]:
    """GetSuggestions without gRPC: convert, call the core, convert back. The tests and the
    in-process benchmarks call it as the service; errors are the core's (see ``status_for``)."""
    core_request = convert.to_request(request)
    response = engine.suggest(core_request, time_limit=time_limit)
    return (
        core_request,
        response,
        convert.to_reply(response, request.experiment.spec.algorithm.algorithm_name),
    )


class SuggestionServicer(pb_grpc.SuggestionServicer):
    """Implements ``api.v1.beta1.Suggestion`` for every registered algorithm."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def ValidateAlgorithmSettings(  # noqa: N802 - gRPC method name
        self, request: pb.ValidateAlgorithmSettingsRequest, context: grpc.ServicerContext
    ) -> pb.ValidateAlgorithmSettingsReply:
        spec = request.experiment.spec
        try:
            space = convert.to_space(spec)
            objective = convert.to_objective(spec)
            engine.validate(
                spec.algorithm.algorithm_name, space, objective, convert.to_settings(spec)
            )
        except Exception as exc:  # every failure becomes a status, never a crash
            self._abort(context, exc, "ValidateAlgorithmSettings")
        return pb.ValidateAlgorithmSettingsReply()

    def GetSuggestions(  # noqa: N802 - gRPC method name
        self, request: pb.GetSuggestionsRequest, context: grpc.ServicerContext
    ) -> pb.GetSuggestionsReply:
        start = time.perf_counter()
        algorithm = request.experiment.spec.algorithm.algorithm_name
        try:
            remaining = context.time_remaining()
            limit = None if remaining is None else max(0.0, remaining - DEADLINE_MARGIN)
            core_request, response, reply = answer(request, time_limit=limit)
        except Exception as exc:
            if isinstance(exc, SearchSpaceExhaustedError):
                # Katib retries forever and the Experiment stays Running: count it so that the
                # chart's alert tells someone to stop or widen the Experiment
                self._m.search_space_exhausted.labels(algorithm or "unknown").inc()
            self._abort(context, exc, "GetSuggestions")
        self._record(algorithm, core_request, response, time.perf_counter() - start)
        return reply

    # ---- helpers -------------------------------------------------------------------------
    def _abort(self, context: grpc.ServicerContext, exc: Exception, method: str) -> NoReturn:
        code, message = status_for(exc)
        if isinstance(exc, InvalidArgumentError):
            log.warning("%s rejected: %s", method, message)
        elif code is grpc.StatusCode.INTERNAL:
            log.exception("%s failed", method)
        else:
            log.warning("%s failed: %s", method, message)
        context.abort(code, message)
        raise AssertionError("context.abort returned")  # pragma: no cover

    def _record(
        self,
        algorithm: str,
        req: engine.SuggestRequest,
        response: engine.SuggestResponse,
        seconds: float,
    ) -> None:
        m = self._m
        alg = algorithm if algorithm else "unknown"
        m.suggestion_seconds.labels(alg).observe(seconds)
        if response.fit_seconds is not None:
            m.fit_seconds.labels(alg).observe(response.fit_seconds)
        for s in response.suggestions:
            m.suggestions.labels(alg, s.origin).inc()
        for reason in response.fallbacks:
            m.fallbacks.labels(alg, reason).inc()
        for state, count in response.history.counts.items():
            m.trials.labels(alg, state.value).set(count)
        for issue in response.history.issues:
            m.history_issues.labels(issue.reason).inc()
        # one summary per call for the history's issues (the engine also lists each one among
        # the warnings: those are not repeated); anything else is logged as it comes
        per_trial = {f"trial {i.trial}: {i.reason}: {i.detail}" for i in response.history.issues}
        summary = summarize_issues(response.history.issues)
        if summary is not None:
            log.warning("%s", summary)
        for warning in response.warnings:
            if warning not in per_trial:
                log.warning("%s", cut(warning, 500))
        h = response.history
        if h.n_obs:
            best = float(h.y_obs.min())
            m.best_objective.labels(alg).set(-best if req.objective.goal is Goal.MAXIMIZE else best)
        total = sum(response.importance.values())
        for group, value in response.importance.items():
            # group names come from the Experiment's partition: few, and fixed per experiment
            m.group_importance.labels(alg, group).set(value / total if total > 0 else 0.0)
        for policy, share in response.shares.items():
            m.policy_share.labels(alg, policy).set(share)
        if response.fallbacks:
            log.warning(
                "%d of %d suggestions fell back to quasi-random points: %s",
                len(response.fallbacks),
                len(response.suggestions),
                sorted(set(response.fallbacks)),
            )
        log.info(
            "suggested %d trial(s) for %s with %s in %.3fs (%d trials in history)",
            len(response.suggestions),
            req.experiment,
            alg,
            seconds,
            h.n_trials,
        )
