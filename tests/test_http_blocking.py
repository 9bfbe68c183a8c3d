"""The blocking HTTP helper (agent.http_blocking) against real servers on loopback.

The fault suites run the whole stop path against real servers; these pin the helper's own
promises: one overall deadline however the server behaves (silent, trickling, never closing),
the caps (a huge answer is refused, not read), what is sent, TLS by agent.wire's rules, and the
error tree's words.
"""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
import trustme
from anyio.streams.tls import TLSStream

from agent import http_blocking
from agent.errors import BadResponse, ConfigError, NotSent, OutcomeUnknown, TLSRefused
from agent.http_blocking import Answer, request
from agent.wire import MAX_CA_FILE_BYTES, tls_context
from standins.http import Request, Response
from tests.faults.servers import Scripted, serve_on_loopback

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
    call = functools.partial(request, f"http://127.0.0.1:{port}{prefix}", "GET", path, **settings)
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
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nok",
        b"",
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


async def test_nothing_listening_is_not_sent(refused_url: str) -> None:
    with anyio.fail_after(20):
        call = functools.partial(
            request,
            refused_url,
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
        "http://coder.invalid:3000",
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


async def test_a_name_the_idna_codec_refuses_is_not_sent_and_raises_in_no_thread() -> None:
    # The lookup's thread raised UnicodeError: a traceback past the boundary (pytest turns an
    # exception in a thread into a failure), and the caller waited out the deadline.
    call = functools.partial(
        request,
        "http://a..b:3000",
        "GET",
        "/",
        service="Test",
        what="GET /",
        timeout=600.0,
        max_body=10,
        error_body=10,
    )
    with anyio.fail_after(30), pytest.raises(NotSent, match="not a name that can be looked up"):
        await anyio.to_thread.run_sync(call)


async def test_a_silent_server_times_out() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def silent(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await anyio.sleep_forever()

    call = functools.partial(
        request,
        f"http://127.0.0.1:{port}",
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


@asynccontextmanager
async def serving(handle: Any) -> AsyncIterator[str]:
    """A TCP server on loopback port 0 running `handle` per connection; its base URL."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, handle)
        yield f"http://127.0.0.1:{port}"
        group.cancel_scope.cancel()


def call(url: str, **options: Any) -> functools.partial[Answer]:
    settings: dict[str, Any] = {
        "service": "Test",
        "what": "GET /messages",
        "timeout": 0.5,
        "max_body": 1024,
        "error_body": 16,
        **options,
    }
    return functools.partial(request, url, "GET", "/messages", **settings)


@pytest.mark.parametrize(
    ("head", "piece"),
    [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"1\r\nx\r\n"),  # the body
        (b"HTTP/1.1 200 OK\r\n", b"X"),  # the head
    ],
    ids=["body", "head"],
)
async def test_a_trickling_answer_is_cut_at_the_one_deadline(head: bytes, piece: bytes) -> None:
    # A byte at a time, each well within any per-read timeout, for ever: only an overall
    # deadline ends it (the test's own bound is the hang it would otherwise be).
    async def trickle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()
            await stream.send(head)
            while True:
                await stream.send(piece)
                await anyio.sleep(0.05)

    with anyio.fail_after(20):
        async with serving(trickle) as url:
            with pytest.raises(TimeoutError):
                await anyio.to_thread.run_sync(call(url))


async def test_a_huge_answer_is_refused_and_not_read() -> None:
    sent = 0

    async def huge(stream: anyio.abc.SocketStream) -> None:
        nonlocal sent
        async with stream:
            await stream.receive()
            await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 300000000\r\n\r\n")
            try:
                while True:
                    await stream.send(b"x" * 65536)
                    sent += 65536
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                return

    with anyio.fail_after(20):
        async with serving(huge) as url:
            with pytest.raises(BadResponse, match="exceeds 1024 bytes"):
                await anyio.to_thread.run_sync(call(url, timeout=5.0))
    assert sent < 300_000_000


async def test_an_undeclared_huge_answer_is_read_to_the_cap_only() -> None:
    async def endless(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()
            await stream.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
            try:
                while True:
                    await stream.send(b"x" * 65536)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                return

    with anyio.fail_after(20):
        async with serving(endless) as url:
            with pytest.raises(BadResponse, match="exceeds 1024 bytes"):
                await anyio.to_thread.run_sync(call(url, timeout=5.0))


async def test_a_refused_connection_is_not_sent_and_says_so() -> None:
    async with serving(lambda stream: stream.aclose()) as url:
        pass  # closed: the port now refuses
    with anyio.fail_after(20), pytest.raises(NotSent, match="ConnectError: "):
        await anyio.to_thread.run_sync(call(url))


# -- TLS: a real HTTPS server on loopback with a certificate from a CA made here ----------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def stored(request: Request) -> Response:
    return Response(status=204)


@asynccontextmanager
async def tls_server(ca: trustme.CA, server: Scripted) -> AsyncIterator[str]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    async with anyio.create_task_group() as group:
        port = await group.start(
            lambda task_status: serve_on_loopback(
                server.handle, tls=context, task_status=task_status
            )
        )
        yield f"https://127.0.0.1:{port}"
        group.cancel_scope.cancel()


async def test_an_unknown_certificate_is_refused_before_anything_is_sent(ca: trustme.CA) -> None:
    server = Scripted(stored)
    with anyio.fail_after(20):
        async with tls_server(ca, server) as url:
            context = tls_context(verify=True, trust_env=False)
            # TLSRefused: a retry within the deadline cannot fix it (agent.retry gives up at once).
            with pytest.raises(TLSRefused, match="CERTIFICATE_VERIFY_FAILED"):
                await anyio.to_thread.run_sync(call(url, tls=context, timeout=5.0))
    assert server.requests == []


async def test_a_ca_from_ssl_cert_file_is_trusted(ca: trustme.CA, tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    server = Scripted(stored)
    with anyio.fail_after(20):
        async with tls_server(ca, server) as url:
            context = tls_context(verify=True, trust_env=True, cert_file=str(bundle))
            answer = await anyio.to_thread.run_sync(call(url, tls=context, timeout=5.0))
    assert answer.status == 204
    assert len(server.requests) == 1


def test_a_ca_source_that_cannot_be_loaded_names_its_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SSL_CERT_FILE"):
        tls_context(verify=True, trust_env=True, cert_file=str(tmp_path / "none.pem"))


async def test_a_corrupt_tls_record_after_the_handshake_is_an_unknown_outcome(
    ca: trustme.CA, tmp_path: Path
) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)

    async def corrupt(raw: anyio.abc.SocketStream) -> None:
        async with raw:
            try:
                tls = await TLSStream.wrap(
                    raw, server_side=True, ssl_context=context, standard_compatible=False
                )
                await tls.receive()
                await raw.send(b"\x17\x03\x03\x00\x20" + b"x" * 32)  # under the TLS layer
                await raw.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError, ssl.SSLError, OSError):
                return

    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    client = tls_context(verify=True, trust_env=True, cert_file=str(bundle))
    with anyio.fail_after(20):
        async with serving(corrupt) as url:
            https = url.replace("http://", "https://")
            with pytest.raises(OutcomeUnknown):
                await anyio.to_thread.run_sync(call(https, tls=client, timeout=5.0))


def test_an_https_host_is_named_as_https_names_it() -> None:
    # The TLS socket is carried by a plain HTTPConnection (agent.http_blocking._open wraps it):
    # `Host` must still leave the scheme's own port out, as HTTPSConnection does (`coder.example`,
    # never `coder.example:443`, which a virtual host may not match).
    connection, target = http_blocking._connection("https://coder.example/base/", "/x", query=None)
    assert (connection.host, connection.port, connection.default_port) == (
        "coder.example",
        443,
        443,
    )
    assert target == "/base/x"
    connection, _ = http_blocking._connection("https://coder.example:8443", "/x", query=None)
    assert (connection.port, connection.default_port) == (8443, 443)


@pytest.mark.parametrize("kind", ["fifo", "huge"])
def test_a_ca_file_that_is_no_regular_file_or_too_large_is_refused_not_read(
    tmp_path: Path, kind: str
) -> None:
    # A FIFO nobody writes to: OpenSSL's open of it would never return (a hook, the daemon's
    # start). A huge file: read whole.
    path = tmp_path / "ca.pem"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        with path.open("wb") as file:
            file.truncate(MAX_CA_FILE_BYTES + 1)  # sparse: costs nothing on disk
    with pytest.raises(ConfigError, match="SSL_CERT_FILE") as caught:
        tls_context(verify=True, trust_env=True, cert_file=str(path))
    assert ("not a regular file" if kind == "fifo" else "larger than") in str(caught.value)
