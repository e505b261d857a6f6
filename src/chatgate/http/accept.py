"""An event loop whose worker processes each listen on a socket of their own.

uvicorn's worker processes all accept from one listening socket, and uvloop
(libuv) accepts connections in a loop until none is left: whichever worker
wakes first takes a whole burst. A client that opens its connections at once
(a proxy's pool, a load generator) lands 45 or 55 of 64 on one worker while
the other idles, and everything on the busy one waits longer. With
``SO_REUSEPORT`` each worker listens on a socket of its own bound to the same
address, and the kernel spreads new connections across them by their
addresses.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

import uvloop

# Linux spreads connections across a reuse-port group; other systems (macOS, the BSDs) hand
# them all to one socket of it, which would be worse than sharing one.
SPREADS_CONNECTIONS = sys.platform.startswith("linux")

log = logging.getLogger("chatgate")


def own_listening_socket(shared: socket.socket) -> socket.socket:
    """A socket bound where ``shared`` is, in one reuse-port group with the other workers'; ``shared``
    itself if that cannot be had."""
    shared.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # before any worker binds beside it
    # The parent's socket is bound but never listens now, and a bound socket with SO_REUSEADDR lets
    # anyone else's socket with SO_REUSEADDR bind beside it: while no worker is up (all died at once),
    # another user could take the port. Without it, only this user's reuse-port sockets can join.
    shared.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
    own = socket.socket(shared.family, shared.type)
    try:
        own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        own.bind(shared.getsockname())
    except OSError as exc:
        own.close()
        log.warning("worker %d accepts on the shared socket (no socket of its own: %s)", os.getpid(), exc)
        return shared
    return own


class ReusePortLoop(uvloop.Loop):
    """uvloop, except that a server handed an already bound socket listens on one of its own.

    uvicorn hands each worker the socket it bound when it runs several; a server that
    binds its own address (one process) is uvloop's.
    """

    async def create_server(  # type: ignore[override]
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: Any = None,
        port: Any = None,
        *,
        sock: socket.socket | None = None,
        **kwargs: Any,
    ) -> asyncio.AbstractServer:
        if sock is not None and SPREADS_CONNECTIONS and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock = own_listening_socket(sock)
        return await super().create_server(protocol_factory, host, port, sock=sock, **kwargs)
