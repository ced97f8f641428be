"""Build the ``warm_start`` algorithm setting from earlier runs' Trials (pure functions).

The setting's value is compact JSON::

    {"trials": [{"assignments": {"lr": "0.01", "layers": "3"}, "value": 0.93}, ...]}

with each value in the Experiment's own direction, as Katib reports it. The suggestion service
refuses (INVALID_ARGUMENT, ``spec.algorithm.algorithmSettings[warm_start]``) a payload that does
not fit the search space, so the operator filters first, with the same parser the service uses
(``suggestion_service.katib.convert`` into ``suggestion_service.core.space``), and reports what it
dropped and why.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from suggestion_service.core.errors import InvalidArgumentError
from suggestion_service.core.space import SearchSpace
from suggestion_service.core.warm_start import WarmTrial, check_warm_start, parse_warm_start
from suggestion_service.katib import convert

SETTING = "warm_start"
#: Trial conditions whose observation counts (Katib sends EarlyStopped ones with metrics too).
USABLE_CONDITIONS = ("Succeeded", "EarlyStopped")


class WarmStartError(ValueError):
    """A template or payload that cannot be used; ``field`` names where."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class Payload:
    """What ``build_payload`` carries, and what it dropped (reason -> count)."""

    trials: tuple[WarmTrial, ...]
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def n_dropped(self) -> int:
        return sum(self.dropped.values())

    def to_json(self) -> str:
        """The setting's value: compact, deterministic JSON."""
        return json.dumps(
            {"trials": [{"assignments": t.assignments, "value": t.value} for t in self.trials]},
            separators=(",", ":"),
            sort_keys=True,
        )


def _text(value: object) -> str:
    return "" if value is None else str(value)


def search_space(spec: Mapping[str, Any]) -> SearchSpace:
    """The search space of a Katib Experiment spec (``parameters``), parsed as the service
    parses it: through the project's one Katib converter (``katib.convert``).

    Raises:
        WarmStartError: naming ``spec.parameters[i]...`` and what is wrong.
    """
    params = spec.get("parameters")
    if not isinstance(params, list) or not params:
        raise WarmStartError("spec.parameters", "must list at least one parameter")
    try:
        return convert.space_from_parameters(params)
    except InvalidArgumentError as exc:
        raise WarmStartError(exc.field, exc.message) from None


def fits(space: SearchSpace, assignments: Mapping[str, str]) -> str | None:
    """None if the assignment is a point of ``space``, else the reason (as the service says)."""
    try:
        space.parse_assignment(assignments, where="assignments")
    except InvalidArgumentError as exc:
        return f"{exc.field}: {exc.message}"
    return None


def parse_payload(text: object, space: SearchSpace) -> tuple[WarmTrial, ...]:
    """Check a ``warm_start`` value written by hand into a template, with the service's own
    parser (``suggestion_service.core.warm_start``).

    Raises:
        WarmStartError: the JSON is malformed or a trial does not fit ``space``.
    """
    if not isinstance(text, str):
        raise WarmStartError("value", "must be a JSON string")
    try:
        trials = parse_warm_start(text)
        check_warm_start(space, trials)
    except InvalidArgumentError as exc:
        raise WarmStartError("value", f"warm_start {exc.message}") from None
    return trials


def metric_value(metrics: object, name: str, strategy: str) -> float | None:
    """``observation.metrics[name].<strategy>`` as a finite float, or None."""
    for m in metrics if isinstance(metrics, list) else []:
        if isinstance(m, Mapping) and m.get("name") == name:
            for key in (strategy, "latest"):
                try:
                    value = float(m.get(key))  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    continue
                if math.isfinite(value):
                    return value
    return None


def _usable(trial: Mapping[str, Any]) -> bool:
    status = trial.get("status") or {}
    for cond in status.get("conditions") or []:
        if (
            isinstance(cond, Mapping)
            and cond.get("type") in USABLE_CONDITIONS
            and str(cond.get("status")) == "True"
        ):
            return True
    return False


def trial_observations(
    trials: Iterable[Mapping[str, Any]],
    *,
    metric: str,
    strategy: str,
    dropped: Counter[str],
) -> list[WarmTrial]:
    """Observations of finished Trials (Succeeded or EarlyStopped, with the objective metric).

    Args:
        trials: Katib Trial objects (``kubeflow.org/v1beta1``) as dicts.
        metric: the objective metric name.
        strategy: ``min``, ``max`` or ``latest`` (see ``schedule.metric_strategy``).
        dropped: counts of skipped trials by reason, updated in place.
    """
    out = []
    for trial in trials:
        if not _usable(trial):
            dropped["not finished"] += 1
            continue
        value = metric_value(
            ((trial.get("status") or {}).get("observation") or {}).get("metrics"),
            metric,
            strategy,
        )
        if value is None:
            dropped["no objective value"] += 1
            continue
        assignments = {
            _text(p.get("name")): _text(p.get("value"))
            for p in (trial.get("spec") or {}).get("parameterAssignments") or []
            if isinstance(p, Mapping)
        }
        out.append(WarmTrial(assignments, value))
    return out


def build_payload(
    candidates: Sequence[WarmTrial],
    *,
    space: SearchSpace,
    maximize: bool,
    max_trials: int,
    dropped: Mapping[str, int] | None = None,
) -> Payload:
    """Keep the best ``max_trials`` candidates that fit ``space`` (one per point, the best).

    Candidates are ranked in the objective's direction; ties keep the earlier candidate, so the
    result is deterministic.
    """
    counts: Counter[str] = Counter(dropped or {})
    best: dict[tuple[tuple[str, str], ...], tuple[int, WarmTrial]] = {}
    for i, trial in enumerate(candidates):
        if fits(space, trial.assignments) is not None:
            counts["does not fit the search space"] += 1
            continue
        key = tuple(sorted(trial.assignments.items()))
        held = best.get(key)
        if held is not None:
            counts["duplicate point"] += 1
            better = trial.value > held[1].value if maximize else trial.value < held[1].value
            if not better:
                continue
        best[key] = (i, trial)
    ranked = sorted(best.values(), key=lambda it: ((-1 if maximize else 1) * it[1].value, it[0]))
    if len(ranked) > max_trials:
        counts["beyond maxTrials"] += len(ranked) - max_trials
    kept = tuple(t for _, t in ranked[:max_trials])
    return Payload(kept, {k: v for k, v in sorted(counts.items()) if v})


def with_setting(spec: Mapping[str, Any], value: str | None) -> dict[str, Any]:
    """A copy of an Experiment spec whose ``warm_start`` setting is ``value`` (None: removed)."""
    out = json.loads(json.dumps(spec))
    algorithm = out.setdefault("algorithm", {})
    settings = [
        s
        for s in algorithm.get("algorithmSettings") or []
        if not (isinstance(s, Mapping) and s.get("name") == SETTING)
    ]
    if value is not None:
        settings.append({"name": SETTING, "value": value})
    algorithm["algorithmSettings"] = settings
    return dict(out)
