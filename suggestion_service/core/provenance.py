"""Where a trial came from, carried in the trial's name.

Katib never sends a trial's labels back: the controller copies a reply's labels onto the Trial's
metadata, but builds the next request from ``Trial.spec.labels``, which nothing sets. What does
come back is the trial name, which the service chooses. So every piece of state a strategy needs
about a trial's origin is written into its name::

    <experiment>-<tag>-<8 characters>

where ``tag`` is the origin's letter plus an optional number: ``i`` initial design, ``r``
random, ``b`` model-based BO, ``f`` fallback, ``s<k>`` SA's move in group k (partition order),
``d<r>`` DC round r. The labels stay, for people and dashboards; nothing reads them back.

Experiment names are at most 40 characters in Katib, so names stay within 63 characters (a
Kubernetes label value, which Katib uses for the trial's pods) for round numbers below 10^11.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LETTERS = {"initial": "i", "random": "r", "bo": "b", "fallback": "f", "sa": "s", "dc": "d"}
_ORIGINS = {v: k for k, v in _LETTERS.items()}
_TAG = re.compile(r"^([irbfsd])(\d{0,12})$")


@dataclass(frozen=True)
class Provenance:
    """A trial's origin and its number (DC round or SA group index), if any."""

    origin: str
    number: int | None = None

    @property
    def tag(self) -> str:
        return _LETTERS[self.origin] + ("" if self.number is None else str(self.number))


def parse(experiment: str, name: str) -> Provenance | None:
    """The provenance written into ``name``, or None for a name the service did not write."""
    prefix = f"{experiment}-"
    if not name.startswith(prefix):
        return None
    parts = name[len(prefix) :].split("-")
    if len(parts) != 2 or len(parts[1]) != 8:
        return None
    match = _TAG.match(parts[0])
    if match is None:
        return None
    letter, digits = match.groups()
    return Provenance(_ORIGINS[letter], int(digits) if digits else None)
