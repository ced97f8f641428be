"""Algorithm name -> strategy."""

from __future__ import annotations

from .errors import UnknownAlgorithmError
from .strategies.dcsa import DCBO, DCSABO, SABO
from .strategies.gp_bo import GPBO
from .strategies.random_search import RandomSearch
from .strategy import Strategy

_STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (RandomSearch, GPBO, DCBO, SABO, DCSABO)
}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Add a strategy class under its ``name`` (usable as a decorator)."""
    _STRATEGIES[cls.name] = cls
    return cls


def algorithm_names() -> list[str]:
    return sorted(_STRATEGIES)


def get_strategy(name: str) -> Strategy:
    """Instantiate the strategy called ``name``.

    Raises:
        UnknownAlgorithmError: naming the allowed algorithms.
    """
    try:
        return _STRATEGIES[name]()
    except KeyError:
        raise UnknownAlgorithmError(
            "spec.algorithm.algorithmName",
            f"{name!r} is not served here; allowed: {algorithm_names()}",
        ) from None
