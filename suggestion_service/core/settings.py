"""Algorithm settings: one table per strategy drives validation, parsing and documentation."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import InvalidSettingError, cut, echo

SETTINGS_FIELD = "spec.algorithm.algorithmSettings"

#: Settings every strategy accepts. ``dcsa_suggested`` is the service's own small durable state:
#: it is written into GetSuggestionsReply.algorithm, which Katib stores and sends back merged into
#: the experiment's settings, so points suggested but not yet turned into trials are never repeated.
LEDGER_SETTING = "dcsa_suggested"
#: dcsa-bo's current share of slots per policy (``bo=0.5,sa=0.3,dc=0.2``), written into the reply
#: for people and ``dcsa run``; Katib sends it back merged, and it is ignored on the way in.
MIX_SETTING = "dcsa_mix"
SERVICE_SETTINGS = frozenset({LEDGER_SETTING, MIX_SETTING})


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
        choices: the allowed values of a choice setting (for docs).
        maximum: the largest allowed value of a numeric setting (for docs; ``check`` enforces it).
    """

    name: str
    type_name: str
    default: Any
    parse: Callable[[str], Any]
    doc: str
    check: Callable[[Any], str | None] = lambda _v: None
    choices: tuple[str, ...] = ()
    maximum: float | None = None


def at_least(low: float) -> Callable[[Any], str | None]:
    return lambda v: None if v >= low else f"must be >= {low}"


def greater_than(low: float) -> Callable[[Any], str | None]:
    return lambda v: None if v > low else f"must be > {low}"


def between(low: float, high: float) -> Callable[[Any], str | None]:
    return lambda v: None if low <= v <= high else f"must be in [{low}, {high}]"


def one_of(*choices: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in choices else f"must be one of {list(choices)}"


def at_most(high: float) -> Callable[[Any], str | None]:
    return lambda v: None if v <= high else f"must be <= {high}"


def _both(
    first: Callable[[Any], str | None], second: Callable[[Any], str | None]
) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return first(v) or second(v)

    return check


def int_setting(
    name: str, default: int | None, doc: str, *, minimum: int = 0, maximum: int | None = None
) -> Setting:
    """An int setting in [minimum, maximum].

    ``maximum`` keeps an accepted request inside the service's memory and time limits: every
    setting that sizes an array or a loop should set one.
    """
    check = at_least(minimum) if maximum is None else between(minimum, maximum)
    return Setting(
        name=name,
        type_name="int",
        default=default,
        parse=parse_int,
        doc=doc,
        check=check,
        maximum=maximum,
    )


def float_setting(
    name: str,
    default: float,
    doc: str,
    check: Callable[[Any], str | None],
    *,
    maximum: float | None = None,
) -> Setting:
    """A float setting allowed by ``check`` and, if given, at most ``maximum``."""
    return Setting(
        name=name,
        type_name="float",
        default=default,
        parse=parse_float,
        doc=doc,
        check=check if maximum is None else _both(check, at_most(maximum)),
        maximum=maximum,
    )


def choice_setting(name: str, default: str | None, doc: str, choices: Sequence[str]) -> Setting:
    return Setting(
        name=name,
        type_name="str",
        default=default,
        parse=str,
        doc=doc,
        check=one_of(*choices),
        choices=tuple(choices),
    )


def spec(setting: Setting) -> Any:
    """A field of a typed settings dataclass, declared by its :class:`Setting`.

    The dataclass is the one place a strategy's settings are written: its fields give the
    validation, the parsed type and default, and the README's per-algorithm table.
    """
    return field(default=setting.default, metadata={"setting": setting})


@dataclass(frozen=True)
class SettingsTable:
    """The settings a strategy declares, in documentation order.

    Built from a frozen dataclass with :meth:`of`; :meth:`typed` parses Katib's strings once
    into an instance of it.
    """

    settings: tuple[Setting, ...]
    cls: type | None = None

    @classmethod
    def of(cls, settings_type: type) -> SettingsTable:
        rows = []
        for f in fields(settings_type):
            setting = f.metadata["setting"]
            if setting.name != f.name:
                raise TypeError(f"field {f.name} declares setting {setting.name}")
            rows.append(setting)
        return cls(tuple(rows), settings_type)

    def names(self) -> list[str]:
        return [s.name for s in self.settings]

    def typed(self, raw: Mapping[str, str], *, algorithm: str) -> Any:
        """:meth:`parse` into an instance of the settings dataclass."""
        if self.cls is None:
            raise TypeError("this table was not built from a settings dataclass")
        return self.cls(**self.parse(raw, algorithm=algorithm))

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
            if name in SERVICE_SETTINGS:
                continue
            setting = table.get(name)
            if setting is None:
                raise InvalidSettingError(
                    f"{SETTINGS_FIELD}[{cut(name, 100)}]",
                    f"unknown setting for algorithm {echo(algorithm)}; allowed: {self.names()}",
                )
            try:
                value = setting.parse(text)
            except (TypeError, ValueError) as exc:
                raise InvalidSettingError(
                    f"{SETTINGS_FIELD}[{name}]",
                    f"{echo(text)} is not a valid {setting.type_name} ({cut(str(exc))})",
                ) from None
            except RecursionError:
                raise InvalidSettingError(
                    f"{SETTINGS_FIELD}[{name}]", "is nested too deeply to parse"
                ) from None
            problem = setting.check(value)
            if problem is not None:
                raise InvalidSettingError(
                    f"{SETTINGS_FIELD}[{name}]", f"{echo(text)} is not allowed: {problem}"
                )
            out[name] = value
        return out
