"""Every metric the service exports, on an injected registry (README lists them all)."""

from __future__ import annotations

import platform
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from .. import __version__

# Suggestions must finish inside Katib's 60 s deadline; buckets resolve milliseconds to a minute.
LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    20.0,
    30.0,
    45.0,
    60.0,
)


@dataclass(frozen=True)
class Metrics:
    """The service's metrics. Label values are bounded vocabularies, never trial or user text."""

    registry: CollectorRegistry
    rpc_started: Counter
    rpc_handled: Counter
    rpc_seconds: Histogram
    suggestion_seconds: Histogram
    fit_seconds: Histogram
    suggestions: Counter
    fallbacks: Counter
    trials: Gauge
    history_issues: Counter
    best_objective: Gauge
    group_importance: Gauge
    policy_share: Gauge
    rejected: Counter
    search_space_exhausted: Counter
    build_info: Info


def create_metrics(registry: CollectorRegistry | None = None) -> Metrics:
    """Create (and register) every metric on ``registry`` (a fresh one by default)."""
    reg = registry if registry is not None else CollectorRegistry()
    rpc_labels = ("grpc_service", "grpc_method")
    metrics = Metrics(
        registry=reg,
        rpc_started=Counter(
            "grpc_server_started_total", "RPCs started on the server.", rpc_labels, registry=reg
        ),
        rpc_handled=Counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, by status code.",
            (*rpc_labels, "grpc_code"),
            registry=reg,
        ),
        rpc_seconds=Histogram(
            "grpc_server_handling_seconds",
            "Time to handle an RPC, by status code.",
            (*rpc_labels, "grpc_code"),
            buckets=LATENCY_BUCKETS,
            registry=reg,
        ),
        suggestion_seconds=Histogram(
            "dcsa_suggestion_duration_seconds",
            "Time to compute one GetSuggestions answer.",
            ("algorithm",),
            buckets=LATENCY_BUCKETS,
            registry=reg,
        ),
        fit_seconds=Histogram(
            "dcsa_model_fit_duration_seconds",
            "Time to fit the surrogate model.",
            ("algorithm",),
            buckets=LATENCY_BUCKETS,
            registry=reg,
        ),
        suggestions=Counter(
            "dcsa_suggestions_total",
            "Suggested trials, by where they came from (initial, random, bo, dc, sa, fallback, "
            "promotion).",
            ("algorithm", "origin"),
            registry=reg,
        ),
        fallbacks=Counter(
            "dcsa_fallbacks_total",
            "Suggestions filled quasi-randomly instead of by the model, by reason "
            "(deadline, model_error, no_candidate, slot_limit).",
            ("algorithm", "reason"),
            registry=reg,
        ),
        trials=Gauge(
            "dcsa_trials",
            "Trials in the latest GetSuggestions request, by state.",
            ("algorithm", "state"),
            registry=reg,
        ),
        history_issues=Counter(
            "dcsa_history_issues_total",
            "Trials tolerated with a problem (missing, non-numeric or "
            "non-finite metric; assignment outside the space).",
            ("reason",),
            registry=reg,
        ),
        best_objective=Gauge(
            "dcsa_best_objective_value",
            "Best objective value among completed trials of the latest request "
            "(in the experiment's own direction).",
            ("algorithm",),
            registry=reg,
        ),
        group_importance=Gauge(
            "dcsa_group_importance",
            "SA's share of importance per subnetwork group in the latest request (sums to 1).",
            ("algorithm", "group"),
            registry=reg,
        ),
        policy_share=Gauge(
            "dcsa_policy_share",
            "dcsa-bo's mix in the latest request: the share of slots each policy (bo, sa, dc) "
            "gets (adaptive) or won over the last mix_window model-based trials (joint: bo, "
            "dc).",
            ("algorithm", "policy"),
            registry=reg,
        ),
        rejected=Counter(
            "dcsa_rejected_calls",
            "Suggestion calls refused (GetSuggestions: RESOURCE_EXHAUSTED, "
            "ValidateAlgorithmSettings: UNAVAILABLE) because max_concurrent_rpcs calls were "
            "already in progress (Katib retries them).",
            ("method",),
            registry=reg,
        ),
        search_space_exhausted=Counter(
            "dcsa_search_space_exhausted",
            "GetSuggestions calls refused with FAILED_PRECONDITION because a finite search space "
            "has no unseen point left (Katib keeps retrying; the Experiment stays Running).",
            ("algorithm",),
            registry=reg,
        ),
        build_info=Info("dcsa_build", "Version of the running service.", registry=reg),
    )
    metrics.build_info.info({"version": __version__, "python": platform.python_version()})
    return metrics
