"""The daemon's own snapshot line (agent.coderline) against real servers on loopback.

Its promise is to behave exactly like the httpx path it replaces on the stop path
(`CoderClient.upload_log_snapshot`): the first half runs every case against both and compares
what they raise, word for word. The second half pins what only the line does: the kept
connection, warmed ahead, watched while idle, replaced when the server closed it.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import anyio
import anyio.abc
import h11
import pytest
import trustme
from anyio.streams.tls import TLSStream

from agent import coderline
from agent.coder.httpapi import CoderClient
from agent.coderline import CoderLine, line_for, open_coder_line
from agent.config import Environment, Secret, Settings
from agent.errors import NotSent, OutcomeUnknown, RemoteError
from agent.plainhttp import tls_context
from agent.transport import coder_http
from standins.http import Request, Response
from tests.fakes import wait_until
from tests.faults.servers import (
    Behaviour,
    Scripted,
    answer,
    raw_server,
    reset_server,
    serve_on_loopback,
)

pytestmark = pytest.mark.anyio

TOKEN = "line-test-token-0123456789"
TASK = "7a1c2f6e-52a4-4c57-9d8e-2b3c4d5e6f70"
BODY = b'{"messages":[{"id":1,"role":"user","content":"hello","time":"2026-01-01T00:00:00Z"}]}'
DEADLINE = 1.0
Upload = Callable[[str, bytes], Awaitable[None]]


async def stored(request: Request) -> Response:
    return Response(status=204)


def stored_late(delay: float) -> Behaviour:
    async def behaviour(request: Request) -> Response:
        await anyio.sleep(delay)
        return Response(status=204)

    return behaviour


@asynccontextmanager
async def uploader(kind: str, url: str) -> AsyncIterator[Upload]:
    """The httpx client's upload or the line's, configured alike."""
    if kind == "httpx":
        settings = Settings(coder_url=url, token=Secret(TOKEN), request_timeout=DEADLINE)
        async with coder_http(settings, url, Secret(TOKEN)) as http:
            yield CoderClient(http, "app").upload_log_snapshot
    else:
        async with open_coder_line(url, Secret(TOKEN), deadline=DEADLINE, tls=None) as line:
            yield line.upload_log_snapshot


async def outcome(kind: str, url: str) -> RemoteError | None:
    async with uploader(kind, url) as upload:
        try:
            await upload(TASK, BODY)
        except RemoteError as exc:
            return exc
    return None


Fingerprint = tuple[object, ...] | None


def fingerprint(error: RemoteError | None) -> Fingerprint:
    if error is None:
        return None
    assert TOKEN not in str(error)
    return (
        type(error),
        str(error),
        error.status,
        getattr(error, "retry_after", None),
    )


async def both(url: str) -> tuple[Fingerprint, Fingerprint]:
    return fingerprint(await outcome("httpx", url)), fingerprint(await outcome("line", url))


async def with_server(behaviour: Behaviour) -> tuple[Fingerprint, Fingerprint, Scripted]:
    server = Scripted(behaviour)
    async with anyio.create_task_group() as group:
        port = await group.start(serve_on_loopback, server.handle)
        result = await both(f"http://127.0.0.1:{port}")
        group.cancel_scope.cancel()
    return *result, server


# -- the same as httpx, case by case ------------------------------------------------------------


async def test_a_stored_snapshot_is_sent_as_the_httpx_path_sends_it() -> None:
    httpx_result, line_result, server = await with_server(stored)
    assert httpx_result is None
    assert line_result is None
    sent_by_httpx, sent_by_line = server.requests
    for request in (sent_by_httpx, sent_by_line):
        assert request.method == "POST"
        assert request.path == f"/api/v2/workspaceagents/me/tasks/{TASK}/log-snapshot"
        assert request.query == {"format": ["agentapi"]}
        assert request.headers["coder-session-token"] == TOKEN
        assert request.headers["content-type"] == "application/json"
        assert request.headers["user-agent"] == "coder-task-agent"
        assert request.body == BODY
    assert sent_by_line.headers["host"] == sent_by_httpx.headers["host"]


@pytest.mark.parametrize(
    "behaviour",
    [
        answer(500, {"message": "Internal error"}),
        answer(503, {"message": "Unavailable"}, [("retry-after", "3")]),
        answer(429, {"message": "rate limited"}, [("retry-after", "7")]),
        answer(401, {"message": "Invalid token"}),
        answer(400, {"message": "Failed to decode.", "validations": [{"detail": "required"}]}),
        answer(404, {"message": "Resource not found"}),
        answer(307, None, [("location", "http://127.0.0.2:1/steal")]),
        answer(500, {"message": "x" * 200_000}),
        stored_late(DEADLINE * 3),
    ],
    ids=["500", "503", "429", "401", "400", "404", "307", "huge error", "late"],
)
async def test_every_answer_reads_the_same_on_both_paths(behaviour: Behaviour) -> None:
    httpx_result, line_result, _ = await with_server(behaviour)
    assert httpx_result is not None
    assert line_result == httpx_result


async def test_a_refused_connection_reads_the_same() -> None:
    httpx_result, line_result = await both("http://127.0.0.1:9")
    assert httpx_result is not None
    assert httpx_result[0] is NotSent
    assert line_result == httpx_result


async def test_a_reset_in_the_middle_of_the_answer_reads_the_same() -> None:
    async with anyio.create_task_group() as group:
        port = await group.start(lambda task_status: reset_server(task_status=task_status))
        httpx_result, line_result = await both(f"http://127.0.0.1:{port}")
        group.cancel_scope.cancel()
    assert httpx_result is not None
    assert httpx_result[0] is OutcomeUnknown
    assert line_result == httpx_result


@pytest.mark.parametrize(
    "raw",
    [
        None,
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
        b"HTTP/1.1 abc\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nbusy!\r\n0\r\n\r\n",
        b"HTTP/1.1 502 Bad\r\n\r\nclose-delimited",
    ],
    ids=["silence", "short body", "bad status", "two lengths", "100", "chunked", "close-delimited"],
)
async def test_a_damaged_or_odd_answer_reads_the_same(raw: bytes | None) -> None:
    async with anyio.create_task_group() as group:
        port = await group.start(partial(raw_server, raw))
        httpx_result, line_result = await both(f"http://127.0.0.1:{port}")
        group.cancel_scope.cancel()
    assert line_result == httpx_result


# -- TLS ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


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


async def test_an_unknown_certificate_is_refused_as_httpx_refuses_it(ca: trustme.CA) -> None:
    server = Scripted(stored)
    async with tls_server(ca, server) as url:
        refused = None
        line_context = tls_context(verify=True, trust_env=False)
        async with open_coder_line(url, Secret(TOKEN), deadline=DEADLINE, tls=line_context) as line:
            with pytest.raises(NotSent) as refused:
                await line.upload_log_snapshot(TASK, BODY)
        httpx_result = await outcome("httpx", url)
    assert fingerprint(refused.value) == fingerprint(httpx_result)
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)
    assert server.requests == [], "nothing is sent before the certificate is checked"


async def test_a_trusted_certificate_uploads_and_keeps_the_connection(
    ca: trustme.CA, tmp_path: Path
) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    server = Scripted(stored)
    async with tls_server(ca, server) as url:
        context = tls_context(verify=True, trust_env=True, cert_file=str(bundle))
        async with open_coder_line(url, Secret(TOKEN), deadline=DEADLINE, tls=context) as line:
            line.warm_soon()
            await wait_until(lambda: line.warm)
            await line.upload_log_snapshot(TASK, BODY)
            # TLS 1.3 sends session tickets after the handshake: read while idle, they must not
            # be taken for a closing server.
            assert line.warm
            await line.upload_log_snapshot(TASK, BODY)
    assert len(server.requests) == 2


async def corrupt_after_the_handshake(
    context: ssl.SSLContext, *, task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED
) -> None:
    """An HTTPS server that reads the request, then writes a TLS record that cannot decrypt."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)

    async def handle(raw: anyio.abc.SocketStream) -> None:
        async with raw:
            try:
                tls = await TLSStream.wrap(
                    raw, server_side=True, ssl_context=context, standard_compatible=False
                )
                await tls.receive()
                await raw.send(b"\x17\x03\x03\x00\x20" + b"x" * 32)  # under the TLS layer
                await raw.receive()  # until the client gives up
            except (anyio.EndOfStream, anyio.BrokenResourceError, ssl.SSLError, OSError):
                return

    async with listener:
        task_status.started(listener.extra(anyio.abc.SocketAttribute.local_port))
        await listener.serve(handle)


async def test_a_corrupt_tls_record_after_the_handshake_reads_the_same(
    ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # httpcore maps TLS errors only during the handshake: later, httpx raised the bare
    # ssl.SSLError, outside the error tree. Both paths now say it is an unknown outcome.
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))  # httpx's client reads it
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    line_tls = tls_context(verify=True, trust_env=True, cert_file=str(bundle))
    async with anyio.create_task_group() as group:
        port = await group.start(partial(corrupt_after_the_handshake, context))
        url = f"https://127.0.0.1:{port}"
        httpx_result = fingerprint(await outcome("httpx", url))
        async with open_coder_line(url, Secret(TOKEN), deadline=DEADLINE, tls=line_tls) as line:
            with pytest.raises(OutcomeUnknown) as failed:
                await line.upload_log_snapshot(TASK, BODY)
        group.cancel_scope.cancel()
    assert httpx_result is not None
    assert httpx_result[0] is OutcomeUnknown
    assert "SSLError" in str(httpx_result[1])
    assert fingerprint(failed.value) == httpx_result


# -- the kept connection ------------------------------------------------------------------------


class Counting:
    """A keep-alive HTTP/1.1 server on loopback that counts connections and can drop them.

    `plan` answers the requests in order: an int is a status to answer, None closes the
    connection without answering, "silent" never answers and keeps the connection open (a peer
    gone without a word).
    """

    def __init__(self, plan: list[int | str | None] | None = None) -> None:
        self.plan = list(plan or [])
        self.connections = 0
        self.requests = 0
        self._open: list[anyio.abc.SocketStream] = []

    async def serve(self, task_status: anyio.abc.TaskStatus[int]) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        async with listener:
            task_status.started(listener.extra(anyio.abc.SocketAttribute.local_port))
            await listener.serve(self._handle)

    async def drop_all(self) -> None:
        """Close every open connection, as a server's idle timeout does."""
        for stream in self._open:
            await stream.aclose()

    async def _handle(self, stream: anyio.abc.SocketStream) -> None:
        self.connections += 1
        self._open.append(stream)
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive())
                    continue
                if isinstance(event, h11.ConnectionClosed):
                    return
                if not isinstance(event, h11.EndOfMessage):
                    continue
                self.requests += 1
                status = self.plan.pop(0) if self.plan else 204
                if status is None:
                    await stream.aclose()
                    return
                if status == "silent":
                    await anyio.sleep_forever()
                assert isinstance(status, int)
                await stream.send(conn.send(h11.Response(status_code=status, headers=[])))
                await stream.send(conn.send(h11.EndOfMessage()))
                conn.start_next_cycle()
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            return
        finally:
            await stream.aclose()


@asynccontextmanager
async def counted(
    plan: list[int | str | None] | None = None, deadline: float = DEADLINE
) -> AsyncIterator[tuple[Counting, CoderLine]]:
    server = Counting(plan)
    async with anyio.create_task_group() as group:
        port = await group.start(server.serve)
        url = f"http://127.0.0.1:{port}"
        async with open_coder_line(url, Secret(TOKEN), deadline=deadline, tls=None) as line:
            yield server, line
        group.cancel_scope.cancel()


async def test_uploads_share_one_connection() -> None:
    async with counted() as (server, line):
        for _ in range(3):
            await line.upload_log_snapshot(TASK, BODY)
    assert (server.connections, server.requests) == (1, 3)


async def test_warming_opens_the_connection_before_the_upload() -> None:
    async with counted() as (server, line):
        line.warm_soon()
        line.warm_soon()  # once at a time
        await wait_until(lambda: line.warm)
        assert (server.connections, server.requests) == (1, 0)
        await line.upload_log_snapshot(TASK, BODY)
    assert (server.connections, server.requests) == (1, 1)


async def test_a_connection_the_server_closed_while_idle_is_dropped_and_replaced() -> None:
    async with counted() as (server, line):
        await line.upload_log_snapshot(TASK, BODY)
        assert line.warm
        await server.drop_all()
        await wait_until(lambda: not line.warm)  # noticed by the idle watcher, not at the stop
        await line.upload_log_snapshot(TASK, BODY)
    assert (server.connections, server.requests) == (2, 2)


async def test_a_kept_connection_closed_as_the_request_goes_out_is_retried_on_a_new_one() -> None:
    # The first request on the kept connection meets a server closing it (no answer at all):
    # sent again at once on a new connection, without an error.
    async with counted([204, None, 204]) as (server, line):
        await line.upload_log_snapshot(TASK, BODY)
        await line.upload_log_snapshot(TASK, BODY)
    assert (server.connections, server.requests) == (2, 3)


async def test_a_kept_connection_gone_silent_is_left_for_a_new_one_within_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A NAT that forgot the flow, a host gone: the request goes out and nothing ever comes
    # back. The kept connection is given KEPT_ANSWER_WITHIN, not the whole deadline (by default
    # the whole stop budget), then the upload goes again on a new connection.
    monkeypatch.setattr(coderline, "KEPT_ANSWER_WITHIN", 0.05)
    # Without the bound the second upload would wait out its whole (long) deadline and fail.
    async with counted([204, "silent", 204], deadline=60) as (server, line):
        await line.upload_log_snapshot(TASK, BODY)
        with anyio.fail_after(30):
            await line.upload_log_snapshot(TASK, BODY)
    assert (server.connections, server.requests) == (2, 3)


async def test_a_slow_answer_on_a_new_connection_gets_the_whole_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The bound is for kept connections only: a new one waits for the answer until the deadline.
    monkeypatch.setattr(coderline, "KEPT_ANSWER_WITHIN", 0.01)
    async with anyio.create_task_group() as group:
        port = await group.start(serve_on_loopback, Scripted(stored_late(0.2)).handle)
        async with open_coder_line(
            f"http://127.0.0.1:{port}", Secret(TOKEN), deadline=DEADLINE * 10, tls=None
        ) as line:
            await line.upload_log_snapshot(TASK, BODY)
        group.cancel_scope.cancel()


async def test_a_kept_connection_is_probed_by_tcp_keepalive_while_idle() -> None:
    async with counted() as (_, line):
        line.warm_soon()
        await wait_until(lambda: line.warm)
        assert line._idle is not None
        sock = line._idle.stream.extra(anyio.abc.SocketAttribute.raw_socket)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        idle = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
        assert idle == coderline.KEEPALIVE_IDLE
        probes = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT)
        assert probes == coderline.KEEPALIVE_PROBES


async def test_a_new_connection_closed_without_an_answer_is_an_unknown_outcome() -> None:
    # Only a kept connection is tried again inside the call: on a new one the outcome is
    # unknown, and retrying is the caller's (`deliver`, with backoff, within the stop deadline).
    async with counted([None]) as (server, line):
        with pytest.raises(OutcomeUnknown, match="Server disconnected without sending"):
            await line.upload_log_snapshot(TASK, BODY)
        assert not line.warm
    assert (server.connections, server.requests) == (1, 1)


async def test_a_failed_answer_keeps_the_connection_when_http_allows() -> None:
    async with counted([503, 204]) as (server, line):
        with pytest.raises(RemoteError):
            await line.upload_log_snapshot(TASK, BODY)
        await line.upload_log_snapshot(TASK, BODY)
    assert (server.connections, server.requests) == (1, 2)


async def test_warming_against_nothing_listening_is_quiet_and_the_upload_says_why() -> None:
    async with open_coder_line(
        "http://127.0.0.1:9", Secret(TOKEN), deadline=DEADLINE, tls=None
    ) as line:
        line.warm_soon()
        await wait_until(lambda: not line._warming)
        assert not line.warm
        with pytest.raises(NotSent, match="ConnectError"):
            await line.upload_log_snapshot(TASK, BODY)


async def test_an_upload_racing_the_warm_up_still_succeeds() -> None:
    async with counted() as (server, line):
        line.warm_soon()
        async with anyio.create_task_group() as group:
            for _ in range(3):
                group.start_soon(line.upload_log_snapshot, TASK, BODY)
    assert server.requests == 3


# -- when the daemon uses it --------------------------------------------------------------------


def settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "coder_url": "http://127.0.0.1:9",
        "token": Secret(TOKEN),
        "task_id": TASK,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.mark.parametrize(
    ("overrides", "env", "used"),
    [
        ({}, {}, True),
        ({}, {"HTTPS_PROXY": "http://proxy:3128"}, False),
        ({}, {"no_proxy": "localhost"}, False),
        ({"mode": "hooks"}, {}, False),
        ({"task_id": None}, {}, False),
        ({"coder_url": "https://coder.example.com", "tls_verify": False}, {}, True),
    ],
    ids=["plain", "proxy", "no_proxy", "hooks mode", "no task", "https"],
)
async def test_the_daemon_uses_the_line_unless_httpx_must_upload(
    overrides: dict[str, object], env: dict[str, str], used: bool
) -> None:
    async with line_for(settings(**overrides), Environment(env)) as line:
        assert (line is not None) is used


async def test_the_servers_own_request_record_sees_the_same_headers() -> None:
    # A request the stand-ins' own server parses: h11 on both ends agrees with itself.
    seen: list[Request] = []

    async def record(request: Request) -> Response:
        seen.append(request)
        return Response(status=204)

    async with anyio.create_task_group() as group:
        port = await group.start(serve_on_loopback, record)
        async with open_coder_line(
            f"http://127.0.0.1:{port}/base", Secret(TOKEN), deadline=DEADLINE, tls=None
        ) as line:
            await line.upload_log_snapshot(TASK, BODY)
        group.cancel_scope.cancel()
    assert seen[0].path == f"/base/api/v2/workspaceagents/me/tasks/{TASK}/log-snapshot"
