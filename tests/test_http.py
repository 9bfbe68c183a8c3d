"""The HTTP boundary: hostile headers, trickling answers, oversized bodies."""

from __future__ import annotations

import math
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import h11
import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agent.coder.httpapi import CoderClient
from agent.config import Environment, Secret, Settings
from agent.errors import BadResponse, NotSent, OutcomeUnknown
from agent.http_async import TRANSPORT_FAILURES, coder_http, request, transport_error
from agent.wire import MAX_RETRY_AFTER, parse_retry_after
from tests.manualclock import ManualClock

pytestmark = pytest.mark.anyio


def retry_after_seconds(response: httpx.Response, now: float | None = None) -> float | None:
    """The Retry-After of an answer as `status_error` reads it (through httpx's header decoding)."""
    return parse_retry_after(response.headers.get("retry-after"), now)


# Header bytes as a server can send them (anything but the line ends that frame headers).
header_bytes = st.binary(max_size=64).filter(lambda b: b"\r" not in b and b"\n" not in b)
# Digits of other scripts, written as escapes (they look like ASCII digits).
digits = st.sampled_from(
    ["\u0663", "\u06f3", "\u0969", "\uff13", "\u00b2", "\u2460", "\U0001d7d1", "1", "9"]
)


@given(header_bytes)
@example("٣٠".encode())  # Arabic-Indic digits: str.isdigit() says yes, float() would accept
@example("\uff13".encode())  # fullwidth 3
@example("²".encode())  # superscript: isdigit() True, float() raises
@example(b"9" * 400)
@example(b"-5")
@example(b"1e9")
@example(b"nan")
@example(b"inf")
@example(b"Wed, 21 Oct 2015 07:28:00 GMT")
@example(b"Wed, 21 Oct 99999 07:28:00 GMT")
@example(b"\xff\xfe")
@settings(max_examples=400, deadline=None)
def test_any_retry_after_is_a_bounded_delay_or_nothing(raw: bytes) -> None:
    response = httpx.Response(503, headers=[(b"retry-after", raw)])
    value = retry_after_seconds(response, now=1_700_000_000.0)
    assert value is None or (math.isfinite(value) and 0.0 <= value <= MAX_RETRY_AFTER)


@given(st.lists(digits, min_size=1, max_size=6).map("".join))
@settings(max_examples=200, deadline=None)
def test_only_ascii_digits_count_as_a_delay(text: str) -> None:
    response = httpx.Response(503, headers=[(b"retry-after", text.encode())])
    value = retry_after_seconds(response, now=0.0)
    if text.isascii():
        assert value == (float(text) if float(text) <= MAX_RETRY_AFTER else None)
    else:
        assert value is None


def test_retry_after_in_range() -> None:
    assert retry_after_seconds(httpx.Response(503, headers={"retry-after": " 7 "})) == 7.0
    too_long = httpx.Response(503, headers={"retry-after": str(int(MAX_RETRY_AFTER) + 1)})
    assert retry_after_seconds(too_long) is None


def streaming(chunks: AsyncIterator[bytes], status: int = 200) -> httpx.AsyncClient:
    async def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(status, stream=_Stream(chunks))

    return httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://x")


class _Stream(httpx.AsyncByteStream):
    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._chunks:
            yield chunk


async def test_a_trickling_answer_is_cut_at_the_overall_deadline() -> None:
    # Bytes keep coming (so no per-read timeout could ever fire); only the overall deadline,
    # on the injected clock, ends the call, and only once the clock reaches it.
    clock = ManualClock()
    failed: list[BaseException] = []
    # Unbuffered: each send returns only once the call has taken the byte.
    send, receive = anyio.create_memory_object_stream[bytes](0)

    async def trickle() -> AsyncIterator[bytes]:
        async with receive:
            async for chunk in receive:
                yield chunk

    async def call(http: httpx.AsyncClient) -> None:
        try:
            await request(http, "Coder", "GET", "/x", deadline=0.3, max_body=1 << 20, clock=clock)
        except OutcomeUnknown as exc:
            failed.append(exc)

    with anyio.fail_after(10):
        async with streaming(trickle()) as http, anyio.create_task_group() as group, send, receive:
            group.start_soon(call, http)
            for _ in range(3):
                await send.send(b" ")
            clock.advance(0.29)
            for _ in range(3):
                await send.send(b" ")
            assert failed == [], "not before the deadline"
            assert await clock.advance_to_next() == pytest.approx(0.3)
    assert len(failed) == 1
    assert "no full answer within 0.3 s" in str(failed[0])


async def test_an_oversized_answer_is_not_read_whole() -> None:
    produced: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        chunk = b"x" * 65536
        while True:
            produced.append(len(chunk))
            yield chunk

    async with streaming(endless()) as http:
        with anyio.fail_after(10), pytest.raises(BadResponse, match="exceeds"):
            await request(http, "AgentAPI", "GET", "/messages", deadline=5, max_body=1 << 20)
    assert sum(produced) <= (1 << 20) + 65536


async def test_an_oversized_error_answer_keeps_its_first_words() -> None:
    async def big() -> AsyncIterator[bytes]:
        yield b'{"message": "overloaded"}' + b" " * 200_000

    async with streaming(big(), status=503) as http:
        with anyio.fail_after(10):
            response = await request(http, "Coder", "PATCH", "/x", deadline=5, max_body=1024)
    assert response.status_code == 503
    assert response.content.startswith(b'{"message": "overloaded"}')
    assert len(response.content) <= 64 * 1024


async def test_a_success_cut_at_the_cap_is_accepted_when_the_body_does_not_matter() -> None:
    async def big() -> AsyncIterator[bytes]:
        yield b"n" * 100_000

    async with streaming(big()) as http:
        with anyio.fail_after(10):
            response = await request(
                http, "Coder", "PATCH", "/x", deadline=5, max_body=1024, whole_body=False
            )
    assert response.status_code == 200
    assert len(response.content) == 1024


def test_not_sent_versus_outcome_unknown() -> None:
    req = httpx.Request("PATCH", "http://x/")
    assert isinstance(
        transport_error("C", "w", httpx.ConnectError("refused", request=req)), NotSent
    )
    assert isinstance(transport_error("C", "w", httpx.ConnectTimeout("t", request=req)), NotSent)
    for late in (
        httpx.ReadTimeout("t", request=req),
        httpx.ReadError("reset", request=req),
        httpx.RemoteProtocolError("closed", request=req),
        httpx.WriteTimeout("t", request=req),
    ):
        assert isinstance(transport_error("C", "w", late), OutcomeUnknown)


def test_a_tls_error_after_the_handshake_is_an_unknown_outcome() -> None:
    # httpx lets a corrupt record's ssl.SSLError through bare; every client catches
    # TRANSPORT_FAILURES and translates it: the request had left.
    error = ssl.SSLError(1, "[SSL: DECRYPTION_FAILED_OR_BAD_RECORD_MAC] bad record mac")
    assert isinstance(error, TRANSPORT_FAILURES)
    translated = transport_error("AgentAPI", "GET /events", error)
    assert isinstance(translated, OutcomeUnknown)
    assert "TLS failed: [SSL: DECRYPTION_FAILED_OR_BAD_RECORD_MAC]" in str(translated)


# -- Coder's kept connection (agent.http_async.coder_http) --------------------------------------


class Counting:
    """A keep-alive HTTP/1.1 server on loopback that counts connections and can drop them."""

    def __init__(self) -> None:
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
                await stream.send(conn.send(h11.Response(status_code=204, headers=[])))
                await stream.send(conn.send(h11.EndOfMessage()))
                conn.start_next_cycle()
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            return
        finally:
            await stream.aclose()


TASK = "7a1c2f6e-52a4-4c57-9d8e-2b3c4d5e6f70"
BODY = b'{"messages":[]}'


@asynccontextmanager
async def coder_on_loopback() -> AsyncIterator[tuple[Counting, CoderClient]]:
    server = Counting()
    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            port = await group.start(server.serve)
            url = f"http://127.0.0.1:{port}"
            settings = Settings(coder_url=url, token=Secret("t0ken"), request_timeout=5.0)
            async with coder_http(settings, url, Secret("t0ken"), Environment({})) as http:
                yield server, CoderClient(http, "app")
            group.cancel_scope.cancel()


async def test_uploads_share_one_kept_connection() -> None:
    async with coder_on_loopback() as (server, coder):
        for _ in range(3):
            await coder.upload_log_snapshot(TASK, BODY)
    assert (server.connections, server.requests) == (1, 3)


async def test_a_connection_the_server_closed_while_idle_costs_no_failed_attempt() -> None:
    # httpcore finds the idle connection readable (the server's FIN) when the next request asks
    # for one: it is dropped and a new one opened before anything is sent, so the upload's
    # first attempt succeeds (the stop path's retry never sees it).
    async with coder_on_loopback() as (server, coder):
        await coder.upload_log_snapshot(TASK, BODY)
        await server.drop_all()
        await coder.upload_log_snapshot(TASK, BODY)
    assert (server.connections, server.requests) == (2, 2)
