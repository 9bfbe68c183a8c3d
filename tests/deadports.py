"""Loopback ports that refuse every connection, held by the test for as long as it needs them.

A test whose premise is "nothing listens there" must not name a port and hope (port 9, or
AgentAPI's default 3284: anything on the machine may listen on them), nor bind port 0, close it
and reuse the number (another process may take it in between). It holds a socket bound to port
0 and never listening instead: the kernel refuses every connection to it (ECONNREFUSED), and
since the socket holds the port without SO_REUSEADDR, no other socket can bind it meanwhile.

The port is held on ::1 as well when the machine has IPv6, so that `localhost` (the stop hook's
AgentAPI host) refuses whichever address it resolves to first.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

_TRIES = 20  # how often to pick another port when ::1's twin of 127.0.0.1's is taken


def _bind(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


@contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port where every connection is refused until the block ends."""
    for _ in range(_TRIES):
        with ExitStack() as held:
            port = int(held.enter_context(_bind(socket.AF_INET, "127.0.0.1", 0)).getsockname()[1])
            try:
                held.enter_context(_bind(socket.AF_INET6, "::1", port))
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    continue  # ::1 has this port in use: another pair
                # Otherwise no IPv6 here: `localhost` cannot resolve to ::1 either.
            yield port
            return
    raise RuntimeError(f"no loopback port free on both 127.0.0.1 and ::1 in {_TRIES} tries")
