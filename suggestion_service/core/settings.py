"""Algorithm settings: one table per strategy drives validation, parsing and documentation."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import InvalidSettingError

SETTINGS_FIELD = "spec.algorithm.algorithmSettings"

#: Settings every strategy accepts. ``dcsa_suggested`` is the service's own small durable state:
#: it is written into GetSuggestionsReply.algorithm, which Katib stores and sends back merged into
#: the experiment's settings, so points suggested but not yet turned into trials are never repeated.
LEDGER_SETTING = "dcsa_suggested"


def parse_int(text: str) -> int:
    value = float(text)
    if not math.isfinite(value) or value != int(value):
        raise ValueError("not an integer")
    return int(value)


def parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("true", "1", "yes", "on"):
        return True
    if low in ("false", "0", "no", "off"):
        return False
    raise ValueError("not a boolean")


@dataclass(frozen=True, kw_only=True)
class Setting:
    """One algorithm setting.

    Attributes:
        name: the setting's name in ``algorithmSettings``.
        type_name: shown in errors and docs (``int``, ``float``, ``str``, ``bool``, ``json``).
        default: the parsed default; None means "derived" (explained in ``doc``).
        parse: turns Katib's string into the typed value; raises ValueError if malformed.
        check: returns None if the typed value is allowed, else a description of what is allowed.
        doc: one sentence for the README table.
    """

    name: str
    type_name: str
    default: Any
    parse: Callable[[str], Any]
    doc: str
    check: Callable[[Any], str | None] = lambda _v: None
    choices: tuple[str, ...] = ()


def at_least(low: float) -> Callable[[Any], str | None]:
    return lambda v: None if v >= low else f"must be >= {low}"


def greater_than(low: float) -> Callable[[Any], str | None]:
    return lambda v: None if v > low else f"must be > {low}"


def between(low: float, high: float) -> Callable[[Any], str | None]:
    return lambda v: None if low <= v <= high else f"must be in [{low}, {high}]"


def one_of(*choices: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in choices else f"must be one of {list(choices)}"


def int_setting(name: str, default: int | None, doc: str, *, minimum: int = 0) -> Setting:
    return Setting(
        name=name,
        type_name="int",
        default=default,
        parse=parse_int,
        doc=doc,
        check=at_least(minimum),
    )


def float_setting(
    name: str, default: float, doc: str, check: Callable[[Any], str | None]
) -> Setting:
    return Setting(
        name=name, type_name="float", default=default, parse=parse_float, doc=doc, check=check
    )


def choice_setting(name: str, default: str, doc: str, choices: Sequence[str]) -> Setting:
    return Setting(
        name=name,
        type_name="str",
        default=default,
        parse=str,
        doc=doc,
        check=one_of(*choices),
        choices=tuple(choices),
    )


@dataclass(frozen=True)
class SettingsTable:
    """The settings a strategy declares, in documentation order."""

    settings: tuple[Setting, ...]

    def names(self) -> list[str]:
        return [s.name for s in self.settings]

    def parse(self, raw: Mapping[str, str], *, algorithm: str) -> dict[str, Any]:
        """Parse and check Katib's string settings.

        Returns:
            Every declared setting, typed, with defaults filled in.

        Raises:
            InvalidSettingError: naming the setting and what is allowed.
        """
        table = {s.name: s for s in self.settings}
        out: dict[str, Any] = {s.name: s.default for s in self.settings}
        for name, text in raw.items():
            if name == LEDGER_SETTING:
                continue
            setting = table.get(name)
            if setting is None:
                raise InvalidSettingError(
                    f"{SETTINGS_FIELD}[{name}]",
                    f"unknown setting for algorithm {algorithm!r}; allowed: {self.names()}",
                )
            try:
                value = setting.parse(text)
            except (TypeError, ValueError) as exc:
                raise InvalidSettingError(
                    f"{SETTINGS_FIELD}[{name}]",
                    f"{text!r} is not a valid {setting.type_name} ({exc})",
                ) from None
            problem = setting.check(value)
            if problem is not None:
                raise InvalidSettingError(
                    f"{SETTINGS_FIELD}[{name}]", f"{text!r} is not allowed: {problem}"
                )
            out[name] = value
        return out
