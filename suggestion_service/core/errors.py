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
