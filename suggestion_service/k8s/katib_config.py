"""Merge our suggestion entries into Katib's katib-config, keeping everything else untouched.

Katib's ConfigMap ``katib-config`` holds one YAML file (key ``katib-config.yaml``) whose
``runtime.suggestions`` list names one container per algorithm. The file belongs to Katib's own
install, so we edit it surgically: our list items are cut out of, or spliced into, the text, and
every other byte (other entries, other keys, comments, quoting, key order) stays as it was. Adding
and then removing our entries gives back the original text exactly.

Which entries are ours is recorded outside the file, in an annotation on the ConfigMap (see
``OWNER_ANNOTATION``), so that ``remove`` never deletes an entry that someone else wrote, even if
it has one of our algorithm names, and ``add`` refuses to overwrite such an entry.

Every text edit is checked by parsing the result and comparing it with the structurally expected
document; if the text has a layout this module does not edit in place (flow-style lists, no
``suggestions`` key yet), the file is rewritten structurally instead (same data, normalised
formatting) and the result says so.

This module is pure (text in, text out); ``suggestion_service.k8s.configmap`` talks to the API.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

#: Annotation on the katib-config ConfigMap listing the algorithm names whose entries we wrote.
OWNER_ANNOTATION = "dcsa.io/katib-config-algorithms"

#: Algorithm names Katib accepts (they become part of DNS-1123 object names).
_ALGORITHM_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
#: Katib reserves the suggestion API port; an entry may not declare it.
_RESERVED_PORT = 6789
_RESERVED_PORT_NAME = "suggestion-api"


class KatibConfigError(ValueError):
    """The katib-config file or our entries cannot be merged as asked."""


class ForeignEntryError(KatibConfigError):
    """An entry with one of our algorithm names exists and was not written by us."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        super().__init__(
            "katib-config already has suggestion entries not written by dcsa for "
            f"{', '.join(repr(n) for n in names)}; not overwriting them. Remove those entries "
            "from katib-config yourself, or drop these names from the algorithms to register."
        )


@dataclass(frozen=True)
class MergeResult:
    """Outcome of an edit.

    Attributes:
        text: the new katib-config.yaml text.
        owned: algorithm names whose entries are ours after the edit (for OWNER_ANNOTATION).
        changed: whether ``text`` differs from the input.
        in_place: True when the text was edited surgically (all other bytes kept); False when
            it had to be rewritten structurally (same data, normalised formatting, comments lost).
    """

    text: str
    owned: tuple[str, ...]
    changed: bool
    in_place: bool


def parse_owned(annotation: str | None) -> tuple[str, ...]:
    """Parse the owner annotation value (comma-separated names) into a tuple of names."""
    if not annotation:
        return ()
    return tuple(n.strip() for n in annotation.split(",") if n.strip())


def format_owned(names: Iterable[str]) -> str:
    """Format names for the owner annotation (sorted, comma-separated)."""
    return ",".join(sorted(set(names)))


def validate_entries(entries: object) -> list[dict[str, Any]]:
    """Check our entries before they go into Katib's config.

    Args:
        entries: the parsed entries file: a list of mappings, each with ``algorithmName``,
            ``image`` and the other fields of a katib-config suggestion entry.

    Returns:
        The entries, typed.

    Raises:
        KatibConfigError: naming the entry and field that Katib would reject or that would harm
            the service (missing image or resources, a reserved port, duplicate names).
    """
    if not isinstance(entries, list) or not entries:
        raise KatibConfigError("entries must be a non-empty YAML list of suggestion entries")
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise KatibConfigError(f"entries[{i}] must be a mapping, got {type(entry).__name__}")
        name = entry.get("algorithmName")
        if not isinstance(name, str) or not _ALGORITHM_NAME.match(name):
            raise KatibConfigError(
                f"entries[{i}].algorithmName must be a DNS-1123 label, got {name!r}"
            )
        if name in seen:
            raise KatibConfigError(f"entries[{i}].algorithmName {name!r} appears twice")
        seen.add(name)
        if not isinstance(entry.get("image"), str) or not entry["image"]:
            raise KatibConfigError(f"entry {name!r}: image must be a non-empty string")
        resources = entry.get("resources")
        limits = resources.get("limits") if isinstance(resources, dict) else None
        if not isinstance(limits, dict) or "memory" not in limits:
            # Katib's default limit (100Mi) OOM-kills Python BO services.
            raise KatibConfigError(f"entry {name!r}: resources.limits.memory must be set")
        for port in entry.get("ports") or []:
            if not isinstance(port, dict):
                raise KatibConfigError(f"entry {name!r}: ports must be mappings")
            if (
                port.get("containerPort") == _RESERVED_PORT
                or port.get("name") == _RESERVED_PORT_NAME
            ):
                raise KatibConfigError(
                    f"entry {name!r}: port {port.get('name')!r}/{port.get('containerPort')} is "
                    f"reserved by Katib ({_RESERVED_PORT_NAME}, {_RESERVED_PORT})"
                )
        out.append(entry)
    return out


def add_entries(
    text: str, entries: Sequence[Mapping[str, Any]], owned: Collection[str]
) -> MergeResult:
    """Put ``entries`` into ``runtime.suggestions``, replacing our earlier ones.

    Entries we own (``owned``) are removed first, also those whose names are no longer in
    ``entries``; then ``entries`` are appended at the end of the list. Adding the same entries
    twice gives the same text.

    Args:
        text: the current katib-config.yaml text.
        entries: our entries (see ``validate_entries``).
        owned: algorithm names recorded as ours (from ``OWNER_ANNOTATION``).

    Returns:
        The merge result; ``owned`` is the names of ``entries``.

    Raises:
        ForeignEntryError: an entry with one of our names exists and is not ours.
        KatibConfigError: the text is not a katib-config document.
    """
    doc = _load(text)
    names = [str(e["algorithmName"]) for e in entries]
    current = _suggestions(doc)
    foreign = [n for n in names if n not in owned and any(_entry_name(e) == n for e in current)]
    if foreign:
        raise ForeignEntryError(foreign)
    drop = set(owned) | set(names)
    kept = [e for e in current if _entry_name(e) not in drop]
    expected = _with_suggestions(doc, [*kept, *(dict(e) for e in entries)])
    return _edit(text, doc, expected, drop=drop, append=entries, owned=tuple(names))


def remove_entries(text: str, owned: Collection[str]) -> MergeResult:
    """Remove the entries we own from ``runtime.suggestions``; leave everything else alone.

    Args:
        text: the current katib-config.yaml text.
        owned: algorithm names recorded as ours (from ``OWNER_ANNOTATION``).

    Returns:
        The merge result; ``owned`` is empty.

    Raises:
        KatibConfigError: the text is not a katib-config document.
    """
    doc = _load(text)
    current = _suggestions(doc)
    kept = [e for e in current if _entry_name(e) not in set(owned)]
    if len(kept) == len(current):
        return MergeResult(text=text, owned=(), changed=False, in_place=True)
    expected = _with_suggestions(doc, kept)
    return _edit(text, doc, expected, drop=set(owned), append=(), owned=())


def render_snippet(entries: Sequence[Mapping[str, Any]], indent: int = 4) -> str:
    """Render entries as list items to paste under ``runtime.suggestions`` by hand."""
    return _render_items(entries, indent)


# --- internals -------------------------------------------------------------------------------


def _load(text: str) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise KatibConfigError(f"katib-config.yaml is not valid YAML: {exc}") from exc
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise KatibConfigError("katib-config.yaml must be a YAML mapping")
    runtime = doc.get("runtime")
    if runtime is not None and not isinstance(runtime, dict):
        raise KatibConfigError("katib-config.yaml: runtime must be a mapping")
    if isinstance(runtime, dict):
        sugg = runtime.get("suggestions")
        if sugg is not None and not isinstance(sugg, list):
            raise KatibConfigError("katib-config.yaml: runtime.suggestions must be a list")
    return doc


def _suggestions(doc: Mapping[str, Any]) -> list[Any]:
    runtime = doc.get("runtime") or {}
    return list(runtime.get("suggestions") or [])


def _entry_name(entry: object) -> str | None:
    if isinstance(entry, dict):
        name = entry.get("algorithmName")
        return name if isinstance(name, str) else None
    return None


def _with_suggestions(doc: Mapping[str, Any], suggestions: list[Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(doc))
    runtime = out.get("runtime")
    if not isinstance(runtime, dict):
        runtime = {}
        out["runtime"] = runtime
    runtime["suggestions"] = suggestions
    return out


def _equal(new_text: str, expected: Mapping[str, Any], original: Mapping[str, Any]) -> bool:
    got = yaml.safe_load(new_text) or {}
    if got == expected:
        return True
    # An emptied list reads back as null; Katib treats both as "no entries".
    if _suggestions(expected) == [] and _suggestions(got) == []:
        return _with_suggestions(got, []) == expected
    return False


def _edit(
    text: str,
    doc: dict[str, Any],
    expected: dict[str, Any],
    *,
    drop: Collection[str],
    append: Sequence[Mapping[str, Any]],
    owned: tuple[str, ...],
) -> MergeResult:
    new_text = _edit_in_place(text, drop=drop, append=append)
    if new_text is not None and _equal(new_text, expected, doc):
        return MergeResult(text=new_text, owned=owned, changed=new_text != text, in_place=True)
    # Layout we do not edit in place: rewrite the whole file from the data.
    new_text = yaml.safe_dump(expected, sort_keys=False, default_flow_style=False)
    return MergeResult(text=new_text, owned=owned, changed=new_text != text, in_place=False)


@dataclass(frozen=True)
class _Item:
    name: str | None
    start: int  # first line (the one with the dash)
    end: int  # one past the last line that belongs to the item


def _edit_in_place(
    text: str, *, drop: Collection[str], append: Sequence[Mapping[str, Any]]
) -> str | None:
    """Cut dropped items out of the block list and append new ones; None if not possible."""
    located = _locate_items(text)
    if located is None:
        return None
    items, dash_col = located
    lines = text.splitlines(keepends=True)
    keep = [it for it in items if it.name not in drop]
    removed = {i for it in items if it.name in drop for i in range(it.start, it.end)}
    insert_at = max((it.end for it in keep), default=items[0].start)
    block = _render_items(append, dash_col) if append else ""
    out: list[str] = []
    for i, line in enumerate(lines):
        if i == insert_at:
            out.append(block)
        if i not in removed:
            out.append(line)
    if insert_at >= len(lines):
        if out and not out[-1].endswith("\n"):
            out.append("\n")
        out.append(block)
    return "".join(out)


def _locate_items(text: str) -> tuple[list[_Item], int] | None:
    """Find the line span of each item of a block-style ``runtime.suggestions`` list."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return None
    seq = _child(_child(root, "runtime"), "suggestions")
    if not isinstance(seq, yaml.SequenceNode) or seq.flow_style or not seq.value:
        return None
    lines = text.splitlines()
    starts: list[tuple[int, str | None]] = []
    dash_col: int | None = None
    for node in seq.value:
        line_no = node.start_mark.line
        line = lines[line_no]
        col = len(line) - len(line.lstrip(" "))
        # Only the usual layout: each item starts on its own line with "- ".
        if not line.lstrip(" ").startswith("- ") or col >= node.start_mark.column:
            return None
        if dash_col is None:
            dash_col = col
        elif col != dash_col:
            return None
        name_node = _child(node, "algorithmName")
        starts.append(
            (line_no, str(name_node.value) if isinstance(name_node, yaml.ScalarNode) else None)
        )
    assert dash_col is not None
    items: list[_Item] = []
    for idx, (start, name) in enumerate(starts):
        limit = starts[idx + 1][0] if idx + 1 < len(starts) else len(lines)
        end = start + 1
        for j in range(start + 1, limit):
            stripped = lines[j].strip()
            indent = len(lines[j]) - len(lines[j].lstrip(" "))
            if not stripped:
                continue
            if indent <= dash_col:
                break
            end = j + 1  # content (or a comment) indented under the item
        items.append(_Item(name=name, start=start, end=end))
    return items, dash_col


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            found: yaml.Node = v
            return found
    return None


class _IndentedDumper(yaml.SafeDumper):
    """Indents block lists under their key, as Katib's own file does."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _render_items(entries: Sequence[Mapping[str, Any]], indent: int) -> str:
    body = yaml.dump(
        [dict(e) for e in entries],
        Dumper=_IndentedDumper,
        sort_keys=False,
        default_flow_style=False,
        width=1000,
    )
    pad = " " * indent
    return "".join(pad + line if line.strip() else line for line in body.splitlines(keepends=True))
