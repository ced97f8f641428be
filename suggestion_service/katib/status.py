"""Domain exceptions -> gRPC status codes, in one place."""

from __future__ import annotations

import grpc

from ..core.errors import DcsaError, InvalidArgumentError, SearchSpaceExhaustedError, cut

#: Longest status message sent. Values echoed in messages are cut at the source already; this is
#: the safety net that keeps any message far below gRPC's 8 kB metadata limit.
MAX_MESSAGE = 1000


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and the message to send (never a traceback).

    INVALID_ARGUMENT fails a Katib Experiment for good, so it is used only for bad input;
    an exhausted finite space is FAILED_PRECONDITION; anything unexpected is INTERNAL.
    """
    if isinstance(exc, InvalidArgumentError):
        return grpc.StatusCode.INVALID_ARGUMENT, cut(str(exc), MAX_MESSAGE)
    if isinstance(exc, SearchSpaceExhaustedError):
        return grpc.StatusCode.FAILED_PRECONDITION, cut(str(exc), MAX_MESSAGE)
    if isinstance(exc, DcsaError):
        return grpc.StatusCode.FAILED_PRECONDITION, cut(str(exc), MAX_MESSAGE)
    return grpc.StatusCode.INTERNAL, "internal error while computing suggestions; see server log"
