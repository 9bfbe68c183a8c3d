"""The standard-library HTTP client of the one-shot snapshot, against canned answers on loopback.

The fault suites run the whole path against real servers; these pin the HTTP/1.1 reading rules
(1xx, chunked, close-delimited, caps, malformed answers) and what is sent.
"""

from __future__ import annotations

import functools
from typing import Any

import anyio
import anyio.abc
import pytest

from agent.errors import BadResponse, NotSent, OutcomeUnknown
from agent.plainhttp import Answer, Origin, request

pytestmark = pytest.mark.anyio


async def exchange(
    canned: bytes, *, path: str = "/x", prefix: str = "", **options: Any
) -> tuple[Answer | BaseException, bytes]:
    """Serve `canned` once (then close), make one request; its answer (or error), what arrived."""
    received = bytearray()
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            while b"\r\n\r\n" not in received:
                received.extend(await stream.receive())
            await stream.send(canned)

    settings: dict[str, Any] = {
        "service": "Test",
        "what": "GET x",
        "timeout": 5.0,
        "max_body": 1024,
        "error_body": 16,
        **options,
    }
    call = functools.partial(
        request, Origin(f"http://127.0.0.1:{port}{prefix}"), "GET", path, **settings
    )
    with anyio.fail_after(20):
        async with listener, anyio.create_task_group() as group:
            group.start_soon(listener.serve, handle)
            try:
                result: Answer | BaseException = await anyio.to_thread.run_sync(call)
            except (BadResponse, NotSent, OutcomeUnknown, TimeoutError) as exc:
                result = exc
            group.cancel_scope.cancel()
    return result, bytes(received)


@pytest.mark.parametrize(
    ("canned", "status", "body"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, b"ok"),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            200,
            b"ok",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2;ext=1\r\nok\r\n3\r\n!!!\r\n0\r\nX-Trailer: 1\r\n\r\n",
            200,
            b"ok!!!",
        ),
        (b"HTTP/1.1 200 OK\r\n\r\nuntil the end", 200, b"until the end"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", 204, b""),
        (b"HTTP/1.0 503 Busy\r\nRetry-After: 3\r\nContent-Length: 0\r\n\r\n", 503, b""),
    ],
)
async def test_answers_are_read_whole(canned: bytes, status: int, body: bytes) -> None:
    answer, _ = await exchange(canned)
    assert isinstance(answer, Answer), answer
    assert (answer.status, answer.body, answer.complete) == (status, body, True)


async def test_headers_are_lower_case_and_the_last_repeat_wins() -> None:
    canned = b"HTTP/1.1 429 Slow\r\nRetry-After: 1\r\nretry-after:  7 \r\nContent-Length: 0\r\n\r\n"
    answer, _ = await exchange(canned)
    assert isinstance(answer, Answer)
    assert answer.headers["retry-after"] == "7"


async def test_a_success_past_the_cap_is_refused_or_cut() -> None:
    canned = b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n" + b"x" * 2000
    refused, _ = await exchange(canned)
    assert isinstance(refused, BadResponse)
    cut, _ = await exchange(canned, whole_body=False)
    assert isinstance(cut, Answer)
    assert (len(cut.body), cut.complete) == (1024, False)
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n" + b"x" * 2000
    cut, _ = await exchange(chunked + b"\r\n0\r\n\r\n", whole_body=False)
    assert isinstance(cut, Answer)
    assert (len(cut.body), cut.complete) == (1024, False)


async def test_an_error_answer_is_cut_to_its_own_cap() -> None:
    answer, _ = await exchange(b"HTTP/1.1 500 Oops\r\n\r\n" + b"e" * 100)
    assert isinstance(answer, Answer)
    assert (answer.status, answer.body, answer.complete) == (500, b"e" * 16, False)


@pytest.mark.parametrize(
    "canned",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-",
        b"",
        # h11 (the httpx path) refuses a blank line before the status line: so does this one.
        b"\r\nHTTP/1.0 503 Busy\r\nRetry-After: 3\r\nContent-Length: 0\r\n\r\n",
    ],
)
async def test_a_malformed_or_cut_answer_has_an_unknown_outcome(canned: bytes) -> None:
    answer, _ = await exchange(canned)
    assert isinstance(answer, OutcomeUnknown), answer
    assert "RemoteProtocolError" in str(answer)


async def test_what_is_sent() -> None:
    _, sent = await exchange(
        b"HTTP/1.1 204 No Content\r\n\r\n",
        path="/api/v2/x",
        prefix="/base/",
        headers=[("Coder-Session-Token", "t0k")],
        query={"format": "agentapi"},
    )
    head = sent.decode().split("\r\n")
    assert head[0] == "GET /base/api/v2/x?format=agentapi HTTP/1.1"
    assert head[1].startswith("Host: 127.0.0.1:")
    assert "Coder-Session-Token: t0k" in head
    assert "Accept-Encoding: identity" in head
    assert "Connection: close" in head


async def test_nothing_listening_is_not_sent() -> None:
    with anyio.fail_after(20):
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        await listener.aclose()
        call = functools.partial(
            request,
            Origin(f"http://127.0.0.1:{port}"),
            "GET",
            "/",
            service="Test",
            what="GET /",
            timeout=5.0,
            max_body=10,
            error_body=10,
        )
        with pytest.raises(NotSent):
            await anyio.to_thread.run_sync(call)


async def test_a_name_that_does_not_resolve_is_not_sent_within_the_deadline() -> None:
    # `.invalid` never resolves (RFC 6761); the lookup runs in a thread, bounded by the deadline.
    call = functools.partial(
        request,
        Origin("http://coder.invalid:3000"),
        "GET",
        "/",
        service="Test",
        what="GET /",
        timeout=10.0,
        max_body=10,
        error_body=10,
    )
    with anyio.fail_after(30), pytest.raises((NotSent, TimeoutError)):
        await anyio.to_thread.run_sync(call)


async def test_a_silent_server_times_out() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def silent(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await anyio.sleep_forever()

    call = functools.partial(
        request,
        Origin(f"http://127.0.0.1:{port}"),
        "GET",
        "/",
        service="Test",
        what="GET /",
        timeout=0.2,
        max_body=10,
        error_body=10,
    )
    with anyio.fail_after(20):
        async with listener, anyio.create_task_group() as group:
            group.start_soon(listener.serve, silent)
            with pytest.raises(TimeoutError):
                await anyio.to_thread.run_sync(call)
            group.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("url", "host", "port", "header", "target"),
    [
        ("http://LocalHost:3284", "localhost", 3284, "localhost:3284", "/messages"),
        ("https://coder.example.com", "coder.example.com", 443, "coder.example.com", "/messages"),
        (
            "http://coder.example.com:80/prefix/",
            "coder.example.com",
            80,
            "coder.example.com",
            "/prefix/messages",
        ),
        ("http://[::1]:8080", "::1", 8080, "[::1]:8080", "/messages"),
    ],
)
def test_origins(url: str, host: str, port: int, header: str, target: str) -> None:
    origin = Origin(url)
    assert (origin.host, origin.port, origin.host_header) == (host, port, header)
    assert origin.target("/messages") == target
