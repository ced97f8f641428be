"""Domain exceptions. The Katib adapter maps each to one gRPC status code, in one place."""

from __future__ import annotations


class DcsaError(Exception):
    """Base class of every error the core raises on purpose."""


class InvalidArgumentError(DcsaError):
    """Bad input: the message names the field and what is allowed.

    Args:
        field: dotted path of the offending field, in Katib's Experiment terms.
        message: what is wrong and what is allowed.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class InvalidSearchSpaceError(InvalidArgumentError):
    """A parameter or its feasible space is malformed."""


class InvalidSettingError(InvalidArgumentError):
    """An algorithm setting is unknown or malformed."""


class InvalidObjectiveError(InvalidArgumentError):
    """The objective is missing or malformed."""


class UnknownAlgorithmError(InvalidArgumentError):
    """The algorithm name is not one this service implements."""


class SearchSpaceExhaustedError(DcsaError):
    """Every point of a finite search space is already evaluated, pending or suggested."""


class InvalidRequestError(InvalidArgumentError):
    """The request itself is malformed (for example a non-positive request number)."""


#: Longest echo of a client's value in an error message or log line. A whole 20 kB value in a
#: gRPC status overflows the metadata limit (the client then sees RESOURCE_EXHAUSTED instead).
ECHO_LIMIT = 200


def cut(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text`` cut to about ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def echo(value: object, limit: int = ECHO_LIMIT) -> str:
    """``repr(value)`` cut to about ``limit`` characters (for values sent by a client)."""
    return cut(repr(value), limit)
