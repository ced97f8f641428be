"""Where a trial came from, carried in the trial's name.

Katib never sends a trial's labels back: the controller copies a reply's labels onto the Trial's
metadata, but builds the next request from ``Trial.spec.labels``, which nothing sets. What does
come back is the trial name, which the service chooses. So every piece of state a strategy needs
about a trial's origin is written into its name::

    <experiment>-<tag>-<5 characters: sequence number><3 characters: hash>

where ``tag`` is the origin's letter plus an optional number: ``i`` initial design, ``r``
random, ``b`` model-based BO, ``f`` fallback, ``s<k>`` SA's move in group k (partition order),
``d<r>`` DC round r (``d`` alone: a DC slot of the adaptive mix), ``p<k>`` an ASHA promotion to
rung k. The sequence number is the
suggestion's position in the experiment (base 36, modulo 36^5), so the order in which trials were
suggested can be read back too (Katib lists trials by name, not by time); dcsa-bo's adaptive mix
credits each policy with what its trials improved on the incumbent of their time. The labels stay,
for people and dashboards; nothing reads them back.

Experiment names are at most 40 characters in Katib, so names stay within 63 characters (a
Kubernetes label value, which Katib uses for the trial's pods) for round numbers below 10^11.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LETTERS = {
    "initial": "i",
    "random": "r",
    "bo": "b",
    "fallback": "f",
    "sa": "s",
    "dc": "d",
    "promotion": "p",
}
_ORIGINS = {v: k for k, v in _LETTERS.items()}
_TAG = re.compile(r"^([irbfsdp])(\d{0,12})$")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
SEQUENCE_CHARS = 5
SEQUENCE_MODULUS = 36**SEQUENCE_CHARS


@dataclass(frozen=True)
class Provenance:
    """A trial's origin and its number (DC round or SA group index), if any."""

    origin: str
    number: int | None = None

    @property
    def tag(self) -> str:
        return _LETTERS[self.origin] + ("" if self.number is None else str(self.number))


def encode_sequence(sequence: int) -> str:
    """The name's first characters after the tag: ``sequence`` in base 36, fixed width."""
    x = sequence % SEQUENCE_MODULUS
    out = []
    for _ in range(SEQUENCE_CHARS):
        x, r = divmod(x, 36)
        out.append(_DIGITS[r])
    return "".join(reversed(out))


def _split(experiment: str, name: str) -> tuple[str, str] | None:
    prefix = f"{experiment}-"
    if not name.startswith(prefix):
        return None
    parts = name[len(prefix) :].split("-")
    if len(parts) != 2 or len(parts[1]) != 8:
        return None
    return parts[0], parts[1]


def parse(experiment: str, name: str) -> Provenance | None:
    """The provenance written into ``name``, or None for a name the service did not write."""
    parts = _split(experiment, name)
    if parts is None:
        return None
    match = _TAG.match(parts[0])
    if match is None:
        return None
    letter, digits = match.groups()
    return Provenance(_ORIGINS[letter], int(digits) if digits else None)


def sequence(experiment: str, name: str) -> int | None:
    """The suggestion's sequence number written into ``name`` (None if not one of ours)."""
    parts = _split(experiment, name)
    if parts is None or _TAG.match(parts[0]) is None:
        return None
    head = parts[1][:SEQUENCE_CHARS]
    if any(c not in _DIGITS for c in head):
        return None
    return int(head, 36)
