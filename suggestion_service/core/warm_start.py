"""The ``warm_start`` setting: observations from earlier runs, used by the surrogate.

Value: a JSON object ``{"trials": [{"assignments": {"lr": "0.01", ...}, "value": 0.93}, ...]}``
with each value in the experiment's own direction, as Katib reports it. Warm-start observations
inform the GP (and DC's top trials) from the first call and count towards
``n_initial_points``; they are not marked as evaluated in this run, so a point can be re-tried
when the objective has drifted.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from .errors import InvalidArgumentError, InvalidSettingError, cut, echo
from .settings import SETTINGS_FIELD, Setting
from .space import SearchSpace

WARM_START_SETTING = "warm_start"
FIELD = f"{SETTINGS_FIELD}[{WARM_START_SETTING}]"
MAX_TRIALS = 10_000


@dataclass(frozen=True)
class WarmTrial:
    assignments: dict[str, str]
    value: float


def parse_warm_start(text: str) -> tuple[WarmTrial, ...]:
    """Parse the payload's structure (the space is checked by :func:`check_warm_start`).

    Raises:
        InvalidSettingError: naming the setting, the trial index and what is wrong.
    """
    try:
        data: Any = json.loads(text)
    except ValueError as exc:
        raise InvalidSettingError(FIELD, f"is not valid JSON ({cut(str(exc))})") from None
    except RecursionError:
        raise InvalidSettingError(FIELD, "is nested too deeply to parse") from None
    if not isinstance(data, dict) or not isinstance(data.get("trials"), list):
        raise InvalidSettingError(
            FIELD, 'must be a JSON object {"trials": [{"assignments": {...}, "value": number}]}'
        )
    trials = data["trials"]
    if len(trials) > MAX_TRIALS:
        raise InvalidSettingError(FIELD, f"carries {len(trials)} trials; at most {MAX_TRIALS}")
    out = []
    for i, item in enumerate(trials):
        where = f"trials[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("assignments"), dict):
            raise InvalidSettingError(FIELD, f"{where} needs an 'assignments' object")
        assignments = item["assignments"]
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in assignments.items()):
            raise InvalidSettingError(
                FIELD, f"{where}.assignments must map parameter names to string values"
            )
        value = item.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidSettingError(FIELD, f"{where}.value must be a number, got {echo(value)}")
        if not math.isfinite(value):
            raise InvalidSettingError(FIELD, f"{where}.value must be finite, got {echo(value)}")
        out.append(WarmTrial(dict(assignments), float(value)))
    return tuple(out)


def check_warm_start(space: SearchSpace, trials: tuple[WarmTrial, ...] | None) -> None:
    """Every warm-start trial must fit the search space exactly."""
    for i, trial in enumerate(trials or ()):
        try:
            space.parse_assignment(trial.assignments, where=f"trials[{i}].assignments")
        except InvalidArgumentError as exc:
            raise InvalidSettingError(
                FIELD, f"{exc.field}: {exc.message} (the payload does not fit the search space)"
            ) from None


def warm_start_setting() -> Setting:
    return Setting(
        name=WARM_START_SETTING,
        type_name="json",
        default=None,
        parse=parse_warm_start,
        doc='Observations from earlier runs, {"trials": [{"assignments": {...}, "value": x}]}, '
        "used by the surrogate from the first call and counted towards n_initial_points "
        "(written by the TuningSchedule operator; must fit the search space).",
    )
