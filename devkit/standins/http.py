"""A small HTTP/1.1 server on anyio sockets and h11, for the stand-ins.

h11 already comes with httpx (through httpcore), so the stand-ins need no web framework: every
workspace that installs the daemon would otherwise carry one it never uses. The server is only
meant for loopback traffic from tests and the demo: one handler coroutine per request,
keep-alive, fixed-length and streamed (chunked) responses, and a bounded request body.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import anyio.abc
import h11
from anyio.streams.tls import TLSListener

# 64 MiB: enough for any realistic request the stand-ins see (a 10 MB upload, a huge snapshot
# attempt), small enough that a runaway client cannot exhaust memory.
MAX_REQUEST_BODY = 64 * 1024 * 1024
_READ_CHUNK = 65536


@dataclass(frozen=True)
class Request:
    """One parsed request; header names are lower-case."""

    method: str
    target: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """Decode the body as JSON (raises ValueError on malformed input)."""
        return json.loads(self.body)


@dataclass
class Response:
    """A response: a fixed body, or a stream of chunks when `stream` is set."""

    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    stream: AsyncIterator[bytes] | None = None


Handler = Callable[[Request], Awaitable[Response]]


def json_response(
    payload: Any, status: int = 200, headers: Iterable[tuple[str, str]] = ()
) -> Response:
    """A compact JSON response."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(
        status=status,
        body=body,
        headers=[("content-type", "application/json"), *headers],
    )


def text_response(text: str, status: int = 200, content_type: str = "text/plain") -> Response:
    """A plain-text (or other textual) response."""
    return Response(
        status=status,
        body=text.encode(),
        headers=[("content-type", f"{content_type}; charset=utf-8")],
    )


async def serve(
    handler: Handler,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: ssl.SSLContext | None = None,
    reuse_port: bool = False,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `handler` on host:port until cancelled; reports the bound port through task_status.

    With `tls` (a server context), HTTPS: a client that refuses the certificate is dropped.
    `reuse_port`: SO_REUSEPORT, so that a test can keep the port bound once the server is gone
    (a socket of its own joins the port's group and never listens: connections are refused).
    """
    listener = await anyio.create_tcp_listener(
        local_host=host, local_port=port, reuse_port=reuse_port
    )
    async with listener:
        bound = listener.extra(anyio.abc.SocketAttribute.local_port)
        task_status.started(bound)
        if tls is None:
            await listener.serve(lambda stream: _serve_connection(stream, handler))
        else:
            secure = TLSListener(listener, tls, standard_compatible=False)
            await secure.serve(lambda stream: _serve_connection(stream, handler))


async def _serve_connection(stream: anyio.abc.ByteStream, handler: Handler) -> None:
    conn = h11.Connection(h11.SERVER)
    async with stream:
        try:
            while True:
                request = await _read_request(conn, stream)
                if request is None:
                    return
                try:
                    response = await handler(request)
                except Exception as exc:  # noqa: BLE001 - a stand-in answers 500 and keeps serving
                    response = text_response(f"internal error: {exc!r}", status=500)
                await _send_response(conn, stream, response)
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                if conn.our_state is not h11.DONE:
                    return
                try:
                    conn.start_next_cycle()
                except h11.LocalProtocolError:
                    return
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream):
            return
        except h11.RemoteProtocolError:
            await _send_simple(conn, stream, 400, b"bad request")


async def _read_request(conn: h11.Connection, stream: anyio.abc.ByteStream) -> Request | None:
    head: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            try:
                data = await stream.receive(_READ_CHUNK)
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                data = b""
            conn.receive_data(data)
            continue
        if isinstance(event, h11.ConnectionClosed):
            return None
        if isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_REQUEST_BODY:
                await _send_simple(conn, stream, 413, b"request body too large")
                return None
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None  # noqa: S101 - h11 always yields the head first
            target = head.target.decode("latin-1")
            parts = urlsplit(target)
            return Request(
                method=head.method.decode("ascii"),
                target=target,
                path=parts.path,
                query=parse_qs(parts.query, keep_blank_values=True),
                headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in head.headers},
                body=bytes(body),
            )


async def _send_response(
    conn: h11.Connection, stream: anyio.abc.ByteStream, response: Response
) -> None:
    headers = list(response.headers)
    if response.stream is None:
        headers.append(("content-length", str(len(response.body))))
    await stream.send(conn.send(h11.Response(status_code=response.status, headers=headers)))
    if response.stream is None:
        if response.body:
            await stream.send(conn.send(h11.Data(data=response.body)))
    else:
        async for chunk in response.stream:
            if chunk:
                await stream.send(conn.send(h11.Data(data=chunk)))
    await stream.send(conn.send(h11.EndOfMessage()))


async def _send_simple(
    conn: h11.Connection, stream: anyio.abc.ByteStream, status: int, body: bytes
) -> None:
    if conn.our_state is not h11.SEND_RESPONSE:
        return
    headers = [("content-length", str(len(body))), ("connection", "close")]
    try:
        await stream.send(conn.send(h11.Response(status_code=status, headers=headers)))
        await stream.send(conn.send(h11.Data(data=body)))
        await stream.send(conn.send(h11.EndOfMessage()))
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, h11.LocalProtocolError):
        return
