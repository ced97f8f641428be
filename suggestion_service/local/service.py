"""The suggestion service to talk to: ours in-process on a free loopback port, or a running one."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from .._generated import api_pb2_grpc as pb_grpc
from ..server import ServerConfig, SuggestionServer

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """The suggestion service cannot be reached."""


@contextmanager
def suggestion_stub(
    address: str | None = None, *, connect_timeout: float = 15.0
) -> Iterator[pb_grpc.SuggestionStub]:
    """Yield a Suggestion stub, as Katib's controller would hold one.

    Args:
        address: ``host:port`` of a running service; None starts ours in-process on
            127.0.0.1 with a free port (and no metrics endpoint), stopped on exit.

    Raises:
        ServiceError: the address does not answer within ``connect_timeout`` seconds.
    """
    server: SuggestionServer | None = None
    if address is None:
        server = SuggestionServer(
            ServerConfig(host="127.0.0.1", port=0, metrics_port=-1, grace=1.0)
        )
        port = server.start()
        address = f"127.0.0.1:{port}"
        log.debug("in-process suggestion service on %s", address)
    channel = grpc.insecure_channel(
        address,
        options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ],
    )
    try:
        try:
            grpc.channel_ready_future(channel).result(timeout=connect_timeout)
        except grpc.FutureTimeoutError:
            raise ServiceError(
                f"no suggestion service answers on {address} (waited {connect_timeout:.0f}s)"
            ) from None
        yield pb_grpc.SuggestionStub(channel)
    finally:
        channel.close()
        if server is not None:
            server.stop(0)
