"""One blocking HTTP request on `http.client`: the short-lived commands' (`agent.stop.oneshot`).

`snapshot` without a daemon and `stop-hook` must cost about what Coder's bash stop script costs;
an event loop and httpx cost more than that script. The rules are `agent.http_async`'s: one
overall deadline for the whole call (name lookup, connect, TLS, and every read gets only the time
left, so a trickling server cannot stretch it; TimeoutError, for the caller to word); the body
read through a cap (a declared length past it refused unread); no redirect followed (a 3xx is an
answer); TLS by the caller's `agent.wire.tls_context`; failures worded as httpx's are
(`agent.wire.transport_detail`): NotSent before the request left, OutcomeUnknown after.

Import cost: `http.client` imports `ssl` only to define HTTPSConnection, a third of its import,
paid for nothing on plain http (the usual case). So, unless `ssl` is loaded already, it is
imported with `ssl` hidden, and an https URL imports `ssl` afresh (`agent.wire.tls_context`).

Proxies: `http.client` reads no proxy variable. A `trust_env` request (Coder's) while one is set
goes to `agent.http_async.request` on a throwaway httpx client; AgentAPI is never proxied.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from functools import cache
from urllib.parse import urlencode, urlsplit  # http.client imports it anyway

from agent.config import Environment
from agent.errors import BadResponse, OutcomeUnknown, RemoteError
from agent.wire import USER_AGENT, answer_error, connect_error, transport_detail

if "ssl" in sys.modules or "http.client" in sys.modules:
    import http.client
else:
    sys.modules["ssl"] = None  # type: ignore[assignment]
    try:
        import http.client
    finally:
        del sys.modules["ssl"]

# A plain constant that type checkers treat as true: `typing` is not imported on this path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from collections.abc import Mapping, Sequence
    from typing import Any

    from _typeshed import WriteableBuffer

_READ = 65536
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HEADERS = {"Accept": "*/*", "Connection": "close", "User-Agent": USER_AGENT}


class Answer:
    """An answer with its body read through the cap (`complete` False when cut there)."""

    __slots__ = ("body", "complete", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes, complete: bool) -> None:
        self.status = status
        self.headers = headers  # lower-case names; a repeated header keeps its last value
        self.body = body
        self.complete = complete

    @property
    def ok(self) -> bool:
        """A 2xx answer."""
        return 200 <= self.status < 300

    def error(
        self,
        service: str,
        what: str,
        *,
        not_found_unsupported: bool = False,
        secrets: Sequence[str] = (),
    ) -> RemoteError:
        """The error for this answer outside 2xx (`agent.wire.answer_error`)."""
        return answer_error(
            service,
            what,
            self.status,
            self.body,
            self.headers.get("retry-after"),
            not_found_unsupported=not_found_unsupported,
            secrets=secrets,
        )


def url_of(base: str, path: str) -> str:
    """The URL of `path` under the base URL, as error messages name it (never with a query)."""
    return base.rstrip("/") + "/" + path.lstrip("/")


def request(
    base: str,
    method: str,
    path: str,
    *,
    service: str,
    what: str,
    timeout: float,
    max_body: int,
    error_body: int,
    whole_body: bool = True,
    headers: Sequence[tuple[str, str]] = (),
    query: Mapping[str, str] | None = None,
    body: bytes | None = None,
    tls: ssl.SSLContext | None = None,
    trust_env: bool = False,
) -> Answer:
    """One call to `path` under `base` within `timeout` s: a 2xx body through `max_body` (past
    it BadResponse with `whole_body`, else cut), any other through `error_body`."""
    if trust_env and Environment().proxies():
        return _through_httpx(
            base,
            tls,
            timeout,
            service=service,
            method=method,
            path=path,
            what=what,
            max_body=max_body,
            whole_body=whole_body,
            headers=dict(headers),
            params=query,
            content=body,
        )
    deadline = time.monotonic() + timeout
    connection, target = _connection(base, path, query=query)
    # Every socket of this call is opened here: within the deadline, reads bounded by it.
    connection._create_connection = (  # type: ignore[attr-defined]
        lambda address, _timeout, _source: _open(address, deadline, tls)
    )
    sock: socket.socket | None = None
    try:
        connection.connect()
        sock = connection.sock
        sock.settimeout(_left(deadline))
        connection.request(method, target, body=body, headers={**_HEADERS, **dict(headers)})
        response = connection.getresponse()
        ok = 200 <= response.status < 300
        limit = max_body if ok else error_body
        if ok and whole_body and response.length is not None and response.length > limit:
            raise BadResponse(service, what, f"the answer exceeds {max_body} bytes")
        read, complete = _read_capped(response, limit, keep_cut=not (ok and whole_body))
    except TimeoutError:
        raise
    except http.client.HTTPException as exc:
        detail = str(exc) or type(exc).__name__
        raise OutcomeUnknown(service, what, f"RemoteProtocolError: {detail}") from None
    except OSError as exc:
        if sock is None:  # no address, refused, unreachable, the TLS handshake
            raise connect_error(service, what, "ConnectError", exc) from None
        raise OutcomeUnknown(service, what, transport_detail("ReadError", exc)) from None
    finally:
        # Closed now: http.client leaves the descriptor open while a response still holds the
        # socket's file (a read that failed midway), and may have let go of the socket already.
        connection.close()
        if sock is not None and sock.fileno() != -1:
            os.close(sock.detach())
    if ok and whole_body and not complete:
        raise BadResponse(service, what, f"the answer exceeds {max_body} bytes")
    answer_headers = {name.lower(): value.strip() for name, value in response.getheaders()}
    return Answer(response.status, answer_headers, read, complete)


def _connection(
    base: str, path: str, *, query: Mapping[str, str] | None
) -> tuple[http.client.HTTPConnection, str]:
    """An unconnected HTTPConnection (for https too: `_open` makes its socket TLS), the target."""
    parts = urlsplit(base)
    target = parts.path.rstrip("/") + "/" + path.lstrip("/")
    if query:
        target += "?" + urlencode(query)
    default = _DEFAULT_PORTS[parts.scheme]
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port or default)
    # So that `Host` leaves the scheme's port out as HTTPSConnection does (`example.com`, never
    # `example.com:443`, which a virtual host may not match).
    connection.default_port = default
    return connection, target


def _read_capped(
    response: http.client.HTTPResponse, limit: int, *, keep_cut: bool
) -> tuple[bytes, bool]:
    """At most `limit` bytes of the body, and whether that was all; past it, what was read is
    kept only with `keep_cut` (a body to be refused is not copied: the cap may be 128 MiB)."""
    if response.length is not None and response.length <= limit:
        return response.read(), True  # one allocation, no copy
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = response.read1(min(_READ, limit + 1 - size))
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return (b"".join(chunks)[:limit] if keep_cut else b""), False


def _left(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError
    return remaining


class _DeadlineSocket(socket.socket):
    """A TCP socket whose every read waits only for the time left before the call's deadline."""

    deadline = float("inf")

    def recv_into(self, buffer: WriteableBuffer, nbytes: int = 0, flags: int = 0) -> int:
        self.settimeout(_left(self.deadline))
        return super().recv_into(buffer, nbytes, flags)


@cache
def _tls_socket_class() -> type[ssl.SSLSocket]:
    """The TLS socket class under the deadline (built when https is first used)."""
    import ssl  # noqa: PLC0415 - only for an https URL

    class _DeadlineTLSSocket(ssl.SSLSocket):
        """As _DeadlineSocket (the handshake has the timeout the connect left)."""

        deadline = float("inf")

        def recv_into(
            self, buffer: WriteableBuffer, nbytes: int | None = None, flags: int = 0
        ) -> int:
            self.settimeout(_left(self.deadline))
            return super().recv_into(buffer, nbytes, flags)

    return _DeadlineTLSSocket


def _open(address: tuple[str, int], deadline: float, tls: ssl.SSLContext | None) -> socket.socket:
    """A socket connected to `address` within the deadline, TLS done over it with `tls`."""
    host, port = address
    last: OSError | None = None
    for family, kind, proto, sockaddr in _resolve(host, port, deadline):
        sock = _DeadlineSocket(family, kind, proto)
        sock.deadline = deadline
        try:
            sock.settimeout(_left(deadline))
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            if isinstance(exc, TimeoutError):
                raise
            last = exc
            continue
        except BaseException:
            sock.close()
            raise
        sock.settimeout(_left(deadline))  # what the TLS handshake may take
        if tls is None:
            return sock
        # As HTTPSConnection.connect does; the TLS socket (closing the connection if the
        # handshake fails) is a new object, put under the deadline again.
        tls.sslsocket_class = _tls_socket_class()
        secure = tls.wrap_socket(sock, server_hostname=host)
        secure.deadline = deadline  # type: ignore[attr-defined]
        return secure
    raise last if last is not None else OSError("no address")


_Address = tuple[socket.AddressFamily, socket.SocketKind, int, tuple[object, ...]]


def _resolve(host: str, port: int, deadline: float) -> list[_Address]:
    """The addresses of `host` within the deadline (a name is looked up in a thread)."""
    stream = socket.SOCK_STREAM
    if host == "localhost":
        # Loopback by definition (RFC 6761), as curl and Go treat it: no lookup, no thread (it
        # is AgentAPI's default address). IPv4 first: many images map only 127.0.0.1.
        return [
            (socket.AF_INET, stream, 0, ("127.0.0.1", port)),
            (socket.AF_INET6, stream, 0, ("::1", port, 0, 0)),
        ]
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        address = (host, port) if family == socket.AF_INET else (host, port, 0, 0)
        return [(family, stream, 0, address)]
    import threading  # noqa: PLC0415 - only to bound a name lookup by the deadline

    found: list[list[_Address] | Exception] = []

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, port, 0, stream, 0, socket.AI_ADDRCONFIG)
            found.append([(f, k, p, tuple(a)) for f, k, p, _, a in infos])
        except UnicodeError as exc:  # the IDNA codec refuses the name (`a..b`): not looked up
            found.append(OSError(f"{host!r} is not a name that can be looked up ({exc})"))
        except Exception as exc:  # noqa: BLE001 - raised in the caller, inside the boundary
            # Whatever it is: escaping this thread, it would be a traceback on stderr, past
            # agent.boundary, and the caller would wait out its deadline for nothing.
            found.append(exc)

    thread = threading.Thread(target=lookup, daemon=True)
    thread.start()
    thread.join(_left(deadline))
    if not found:
        raise TimeoutError
    if isinstance(found[0], Exception):
        raise found[0]
    return found[0]


def _through_httpx(base: str, tls: ssl.SSLContext | None, timeout: float, **call: Any) -> Answer:
    """The same call through httpx, which honours the proxy variables; `call`: the arguments of
    `agent.http_async.request`. A body cut at its cap is not told apart (`whole_body` refuses)."""
    import anyio  # noqa: PLC0415 - only when a proxy variable is set
    import httpx  # noqa: PLC0415

    from agent import http_async  # noqa: PLC0415
    from agent.clock import SYSTEM_CLOCK  # noqa: PLC0415

    async def run() -> httpx.Response:
        async with httpx.AsyncClient(
            base_url=base,
            follow_redirects=False,
            trust_env=True,
            verify=tls if tls is not None else http_async.plain_http(),
            headers={"user-agent": USER_AGENT},
        ) as client:
            # This scope, not the request's own, ends the call: TimeoutError, as above.
            with SYSTEM_CLOCK.fail_after(timeout):
                return await http_async.request(client, deadline=timeout + 1.0, **call)

    response = anyio.run(run)
    headers = {name.lower(): value for name, value in response.headers.items()}
    return Answer(response.status_code, headers, response.content, complete=True)
