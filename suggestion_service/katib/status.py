"""Domain exceptions -> gRPC status codes, in one place."""

from __future__ import annotations

import grpc

from ..core.errors import DcsaError, InvalidArgumentError, SearchSpaceExhaustedError


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and the message to send (never a traceback).

    INVALID_ARGUMENT fails a Katib Experiment for good, so it is used only for bad input;
    an exhausted finite space is FAILED_PRECONDITION; anything unexpected is INTERNAL.
    """
    if isinstance(exc, InvalidArgumentError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, SearchSpaceExhaustedError):
        return grpc.StatusCode.FAILED_PRECONDITION, str(exc)
    if isinstance(exc, DcsaError):
        return grpc.StatusCode.FAILED_PRECONDITION, str(exc)
    return grpc.StatusCode.INTERNAL, "internal error while computing suggestions; see server log"
