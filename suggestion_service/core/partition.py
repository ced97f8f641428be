"""Which parameters belong to which subnetwork.

Two ways to declare it:

- the naming convention ``<group>__<param>`` (double underscore): ``conv__filters`` belongs to
  group ``conv``; this is the default;
- the algorithm setting ``subnetworks``, a JSON object mapping group names to parameter names,
  ``{"conv": ["filters", "kernel"], "dense": ["units"]}``, which overrides the convention.

Parameters in no subnetwork form the ``global`` group (learning rate, batch size, fusion head...).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .errors import InvalidSettingError
from .settings import SETTINGS_FIELD
from .space import SearchSpace

GLOBAL = "global"
SEPARATOR = "__"
SUBNETWORKS_SETTING = "subnetworks"


@dataclass(frozen=True)
class Group:
    """One subnetwork: its name and parameter indices (also its GP feature columns)."""

    name: str
    params: tuple[int, ...]


@dataclass(frozen=True)
class Partition:
    groups: tuple[Group, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.groups)

    def feature_groups(self) -> list[list[int]]:
        return [list(g.params) for g in self.groups]


def parse_subnetworks(text: str | None) -> dict[str, list[str]] | None:
    """Parse the ``subnetworks`` setting (None when unset).

    Raises:
        InvalidSettingError: malformed JSON or not an object of string lists.
    """
    if text is None or text == "":
        return None
    field = f"{SETTINGS_FIELD}[{SUBNETWORKS_SETTING}]"
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidSettingError(field, f"is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not data:
        raise InvalidSettingError(
            field,
            "must be a non-empty JSON object of group -> [parameter names], e.g. "
            '{"conv": ["filters", "kernel"], "dense": ["units"]}',
        )
    out: dict[str, list[str]] = {}
    for name, members in data.items():
        if not name:
            raise InvalidSettingError(field, "group names must not be empty")
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise InvalidSettingError(
                field, f"group {name!r} must map to a list of parameter names"
            )
        if not members:
            raise InvalidSettingError(field, f"group {name!r} is empty")
        out[name] = members
    return out


def make_partition(space: SearchSpace, explicit: Mapping[str, Sequence[str]] | None) -> Partition:
    """Assign every parameter to exactly one group.

    Raises:
        InvalidSettingError: a group names an unknown parameter, or a parameter is in two groups.
    """
    field = f"{SETTINGS_FIELD}[{SUBNETWORKS_SETTING}]"
    owner: dict[str, str] = {}
    if explicit is not None:
        for group, members in explicit.items():
            for name in members:
                if name not in space.names:
                    raise InvalidSettingError(
                        field,
                        f"group {group!r} names unknown parameter {name!r}; parameters: "
                        f"{list(space.names)}",
                    )
                if name in owner:
                    raise InvalidSettingError(
                        field, f"parameter {name!r} is in two groups: {owner[name]!r} and {group!r}"
                    )
                owner[name] = group
    else:
        for name in space.names:
            head, sep, tail = name.partition(SEPARATOR)
            if sep and head and tail:
                owner[name] = head
    order: list[str] = []
    members_of: dict[str, list[int]] = {}
    for i, name in enumerate(space.names):
        group = owner.get(name, GLOBAL)
        if group not in members_of:
            order.append(group)
            members_of[group] = []
        members_of[group].append(i)
    groups = []
    for name in order:
        params = tuple(members_of[name])
        groups.append(Group(name, params))
    return Partition(tuple(groups))
