"""A worker's own listening socket (http/accept.py), with real sockets on the loopback."""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import Iterator

import pytest

from chatgate.http.accept import own_listening_socket

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reuse-port groups are Linux's here")


@contextlib.contextmanager
def bound_like_uvicorn() -> Iterator[socket.socket]:
    """The socket uvicorn's parent binds for its workers: SO_REUSEADDR, bound, not listening."""
    shared = socket.socket()
    shared.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    shared.bind(("127.0.0.1", 0))
    try:
        yield shared
    finally:
        shared.close()


def test_each_worker_gets_a_socket_of_its_own_on_the_shared_address() -> None:
    with bound_like_uvicorn() as shared:
        first, second = own_listening_socket(shared), own_listening_socket(shared)
        with first, second:
            assert first is not shared and second is not shared
            assert first.getsockname() == second.getsockname() == shared.getsockname()
            first.listen()
            second.listen()  # both listen: one reuse-port group


def test_a_worker_that_cannot_bind_its_own_accepts_on_the_shared_socket() -> None:
    with bound_like_uvicorn() as shared:
        # Something that took the address while the shared socket allowed it, and listens.
        squatter = socket.socket()
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(shared.getsockname())
        squatter.listen()
        with squatter:
            assert own_listening_socket(shared) is shared


def test_the_shared_socket_no_longer_lets_a_plain_socket_bind_beside_it() -> None:
    with bound_like_uvicorn() as shared:
        with own_listening_socket(shared):
            pass  # the worker's socket is gone again: only the parent's remains
        with socket.socket() as intruder:
            intruder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with pytest.raises(OSError):
                intruder.bind(shared.getsockname())
