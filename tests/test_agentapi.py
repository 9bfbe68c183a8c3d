"""The AgentAPI client against an in-process fake: models, errors, the SSE parser."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from agent.agentapi import (
    MAX_EVENT_BYTES,
    AgentAPIClient,
    AgentErrorEvent,
    MalformedEvent,
    MessageUpdate,
    OversizedFrame,
    StatusChange,
    UnknownEvent,
    _SSEParser,
    parse_event,
    parse_messages,
)
from agent.errors import BadResponse, Rejected, ServerError, TransportError
from agent.wire import MAX_ERROR_BODY
from tests.fakes import TIME, FakeAgentAPI, wait_until
from tests.manualclock import ManualClock

pytestmark = pytest.mark.anyio


def client_for(handler: httpx.MockTransport) -> AgentAPIClient:
    return AgentAPIClient(
        httpx.AsyncClient(base_url="http://localhost:3284", transport=handler, timeout=1.0)
    )


async def test_status_and_messages_ignore_schema_and_unknown_keys() -> None:
    fake = FakeAgentAPI()
    async with fake.client() as http:
        client = AgentAPIClient(http)
        status = await client.status()
        messages = await client.messages()
    assert status.status == "stable"
    assert status.agent_type == "claude"
    assert [(m.id, m.role, m.content, m.time) for m in messages] == [(0, "agent", "Welcome", TIME)]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"status": "thinking"}',
        b'{"messages": null}',
        # A malformed message is not garbage as a whole: it is dropped alone (see below).
    ],
)
async def test_garbage_is_a_bad_response(body: bytes) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    client = client_for(transport)
    call = client.status if b"status" in body else client.messages
    with pytest.raises(BadResponse):
        await call()


async def test_problem_json_errors_carry_the_server_words() -> None:
    problem = {
        "title": "Internal Server Error",
        "status": 500,
        "detail": "Failed to send message",
        "errors": [
            {"message": "message can only be sent when the agent is waiting for user input"}
        ],
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/messages":
            return httpx.Response(
                500, json=problem, headers={"content-type": "application/problem+json"}
            )
        if request.url.path == "/status":
            return httpx.Response(503, json={"title": "Unavailable", "detail": "restarting"})
        return httpx.Response(400, text="Invalid host header")

    client = client_for(httpx.MockTransport(handler))
    with pytest.raises(ServerError, match="waiting for user input"):
        await client.messages()
    with pytest.raises(ServerError, match="restarting"):
        await client.status()
    with pytest.raises(Rejected, match="Invalid host header") as caught:
        async for _ in client.events():
            pass
    assert caught.value.status == 400


async def test_transport_error() -> None:
    fake = FakeAgentAPI()
    fake.down = True
    async with fake.client() as http:
        # The URL tried, not only the path: "which AgentAPI?" is the first question.
        with pytest.raises(TransportError, match="GET http://localhost:3284/status: ConnectError"):
            await AgentAPIClient(http).status()


class _Silent(httpx.AsyncByteStream):
    """An event stream that sends what the test puts in `chunks` and nothing else."""

    def __init__(self, chunks: anyio.abc.ObjectReceiveStream[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async with self._chunks:
            async for chunk in self._chunks:
                yield chunk


async def test_silence_before_the_first_event_is_cut_on_the_clock_and_only_then() -> None:
    clock = ManualClock()
    send, receive = anyio.create_memory_object_stream[bytes](0)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=_Silent(receive))

    seen: list[object] = []
    timed_out: list[float] = []
    with anyio.fail_after(10):
        async with (
            httpx.AsyncClient(
                base_url="http://localhost:3284", transport=httpx.MockTransport(handler)
            ) as http,
            send,
            receive,
            anyio.create_task_group() as group,
        ):

            async def consume() -> None:
                try:
                    async for event in AgentAPIClient(http, clock=clock).events(silence_timeout=5):
                        seen.append(event)
                except TimeoutError:
                    timed_out.append(clock.now())

            group.start_soon(consume)
            await wait_until(lambda: clock.deadlines == 1)
            clock.advance(4)
            # A piece of a frame (not yet an event) restarts the wait for the next piece.
            await send.send(b"event: status_change\n")
            await wait_until(lambda: clock.next_due() == 9.0)
            clock.advance(4)
            await anyio.wait_all_tasks_blocked()
            assert timed_out == [], "each gap was shorter than the silence timeout"
            assert await clock.advance_to_next() == 9.0
    assert timed_out == [9.0]
    assert seen == []


async def test_after_the_first_event_silence_is_the_callers_to_judge() -> None:
    clock = ManualClock()
    send, receive = anyio.create_memory_object_stream[bytes](0)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=_Silent(receive))

    seen: list[object] = []
    with anyio.fail_after(10):
        async with (
            httpx.AsyncClient(
                base_url="http://localhost:3284", transport=httpx.MockTransport(handler)
            ) as http,
            send,
            receive,
            anyio.create_task_group() as group,
        ):

            async def consume() -> None:
                async for event in AgentAPIClient(http, clock=clock).events(silence_timeout=5):
                    seen.append(event)

            group.start_soon(consume)
            await send.send(b'event: status_change\ndata: {"status":"stable","agent_type":"x"}\n\n')
            await wait_until(lambda: len(seen) == 1)
            await wait_until(lambda: clock.deadlines == 0)
            clock.advance(3600)
            await anyio.wait_all_tasks_blocked()
            group.cancel_scope.cancel()
    assert [type(event).__name__ for event in seen] == ["StatusChange"]


async def test_events_replay_then_changes_then_end() -> None:
    fake = FakeAgentAPI()
    fake.messages.append({"id": 1, "role": "user", "content": "hi", "time": TIME})
    received: list[object] = []
    with anyio.fail_after(5):
        async with fake.client() as http, anyio.create_task_group() as group:

            async def consume() -> None:
                async for event in AgentAPIClient(http).events():
                    received.append(event)

            group.start_soon(consume)
            await fake.subscribed.wait()
            await fake.put_message("agent", "working on it")
            await fake.send_raw_event(b"event: brand_new\ndata: {}\n\n")
            await fake.send_raw_event(b'event: status_change\ndata: {"status": 3}\n\n')
            await fake.send_raw_event(
                b'event: agent_error\ndata: {"message":"x","level":"warning","time":"'
                + TIME.encode()
                + b'"}\n\n'
            )
            await fake.set_status("running")
            await fake.end_streams()
    kinds = [type(e).__name__ for e in received]
    assert kinds == [
        "MessageUpdate",
        "MessageUpdate",
        "StatusChange",
        "MessageUpdate",
        "UnknownEvent",
        "MalformedEvent",
        "AgentErrorEvent",
        "StatusChange",
    ]
    update = received[3]
    assert isinstance(update, MessageUpdate)
    assert update.as_message().content == "working on it"
    assert isinstance(received[4], UnknownEvent)
    assert isinstance(received[5], MalformedEvent)
    assert isinstance(received[6], AgentErrorEvent)
    last = received[7]
    assert isinstance(last, StatusChange)
    assert last.status == "running"


async def test_events_unavailable_is_a_rejection() -> None:
    fake = FakeAgentAPI()
    fake.events_status = 404
    async with fake.client() as http:
        with pytest.raises(Rejected) as caught:
            async for _ in AgentAPIClient(http).events():
                pass
    assert caught.value.status == 404


def frames_of(
    *parts: bytes, limit: int = MAX_EVENT_BYTES
) -> list[tuple[str, str | OversizedFrame]]:
    parser = _SSEParser(limit)
    return [frame for part in parts for frame in parser.feed(part)]


async def test_sse_parser_line_endings_and_split_chunks() -> None:
    frames = frames_of(
        b"event: a\r\ndata: 1\r\n\r\n",
        b"event: b\rdata: 2\r\r",
        b": comment\nevent: c\nid: 7\nretry: 10\ndata:x\ndata: y\n",
        b"\n",
        b"event: d\ndata: 4\r",
        b"\n\r\n",
        b"data: only\n\n",
    )
    assert frames == [("a", "1"), ("b", "2"), ("c", "x\ny"), ("d", "4"), ("message", "only")]


async def test_sse_parser_byte_by_byte_and_utf8() -> None:
    text = 'event: message_update\ndata: {"message":"héllo 👍"}\n\n'.encode()
    frames = frames_of(*[text[i : i + 1] for i in range(len(text))])
    assert frames == [("message_update", '{"message":"héllo 👍"}')]


async def test_sse_parser_skips_a_giant_event_and_follows_on() -> None:
    after = b"event: b\ndata: 2\n\n"
    long_line = b"event: x\ndata: " + b"a" * 200 + b"\n\n"
    many_lines = b"event: y\n" + b"data: aaaaaaaaaaaaaaa\n" * 20 + b"\n"
    for giant in (long_line, many_lines):
        for size in (1, 7, 64, len(giant)):  # the giant frame in pieces of every size
            pieces = [giant[i : i + size] for i in range(0, len(giant), size)]
            frames = frames_of(*pieces, after, limit=100)
            assert [name for name, _ in frames] == [giant.split(b"\n")[0][7:].decode(), "b"]
            skipped = frames[0][1]
            assert isinstance(skipped, OversizedFrame)
            assert skipped.size > 100
            assert frames[1] == ("b", "2")


async def test_sse_parser_is_linear() -> None:
    # 32 MB in 4 KB chunks: the old parser rescanned the buffer per chunk (about 128 GB of
    # scanning here); a linear one needs well under a second of CPU. CPU time, not wall time,
    # so a busy machine does not matter.
    size, piece = 32 * 1024 * 1024, 4096
    payload = b"event: message_update\ndata: " + b"x" * size + b"\n\n"

    pieces = [payload[i : i + piece] for i in range(0, len(payload), piece)]
    started = time.process_time()
    frames = frames_of(*pieces, limit=64 * 1024 * 1024)
    assert time.process_time() - started < 10.0
    assert len(frames) == 1
    data = frames[0][1]
    assert isinstance(data, str)
    assert len(data) == size


@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=30))
@settings(max_examples=60, deadline=None)
def test_sse_parser_gives_the_same_frames_however_the_bytes_are_split(cuts: list[int]) -> None:
    stream = (
        b"event: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\r: c\ndata:x\ndata: y\n\n"
        b"event: big\ndata: " + b"z" * 150 + b"\n\nevent: d\ndata: 4\r\n\r\n"
    )
    pieces, at = [], 0
    for cut in cuts:
        pieces.append(stream[at : at + cut])
        at += cut
    pieces.append(stream[at:])

    frames = frames_of(*pieces, limit=100)
    assert [(n, d if isinstance(d, str) else "skipped") for n, d in frames] == [
        ("a", "1"),
        ("b", "2"),
        ("message", "x\ny"),
        ("big", "skipped"),
        ("d", "4"),
    ]


# -- tolerant /messages: every message that can be understood, roles as Coder reads them --------


def test_one_malformed_message_costs_only_itself() -> None:
    body = json.dumps(
        {
            "$schema": "x",
            "messages": [
                {"id": 0, "role": "agent", "content": "welcome", "time": TIME},
                {"id": "one", "role": "user", "content": "bad id", "time": TIME},
                {"id": 2, "role": "user", "content": "fix it", "time": "yesterday"},
                None,
                {"id": 3, "role": "robot", "content": "unknown role", "time": TIME},
                {"id": 4, "role": "user", "content": "kept", "time": TIME},
            ],
        }
    ).encode()
    with capture_logs() as logs:
        messages = parse_messages(body)
    assert [(m.id, m.role, m.content) for m in messages] == [
        (0, "agent", "welcome"),
        (3, "robot", "unknown role"),  # kept here, left out of any snapshot
        (4, "user", "kept"),
    ]
    (dropped,) = [e for e in logs if e["event"] == "agentapi_messages_dropped"]
    assert (dropped["dropped"], dropped["malformed"], dropped["kept"]) == (4, 3, 2)
    assert "fix it" not in json.dumps(dropped), "message bodies are not logged"


@pytest.mark.parametrize(
    ("given", "role"),
    [
        ({"type": "input"}, "user"),
        ({"type": "output"}, "agent"),
        ({"role": "User"}, "user"),
        ({"role": "assistant"}, "agent"),
        ({"role": "agent", "type": "input"}, "agent"),  # the current name wins
    ],
)
def test_old_role_names_are_normalised(given: dict[str, str], role: str) -> None:
    body = json.dumps({"messages": [{"id": 1, "content": "hello", "time": TIME, **given}]}).encode()
    (message,) = parse_messages(body)
    assert message.role == role


def test_a_message_update_with_an_old_role_name_is_normalised() -> None:
    event = parse_event(
        "message_update", json.dumps({"id": 1, "type": "output", "message": "x", "time": TIME})
    )
    assert isinstance(event, MessageUpdate)
    assert event.as_message().role == "agent"


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"messages": 5}', b"{}"])
def test_an_answer_that_is_not_a_history_is_refused(body: bytes) -> None:
    with pytest.raises(BadResponse):
        parse_messages(body)


async def test_messages_from_the_client_are_read_tolerantly() -> None:
    payload = {
        "messages": [
            {"id": 0, "type": "output", "content": "hi", "time": TIME},
            {"id": 1, "role": "user", "content": 7, "time": TIME},
        ]
    }

    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=payload)

    transport = httpx.MockTransport(handler)
    async with httpx.AsyncClient(transport=transport, base_url="http://agentapi") as http:
        with anyio.fail_after(5):
            messages = await AgentAPIClient(http).messages()
    assert [(m.id, m.role) for m in messages] == [(0, "agent")]


@asynccontextmanager
async def tcp_peer(answer: bytes) -> AsyncIterator[int]:
    """A loopback HTTP peer (port 0) that reads the request, sends `answer`, then holds the
    connection open and silent until the test ends; yields its port."""

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive(65536)
            if answer:
                await stream.send(answer)
            await anyio.sleep_forever()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, handle)
        yield listener.extra(anyio.abc.SocketAttribute.local_port)
        group.cancel_scope.cancel()


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(b"", id="no headers ever"),
        pytest.param(b"HTTP/1.1 200 OK\r\ncontent-type: text/", id="headers trickled"),
        pytest.param(
            b"HTTP/1.1 500 Oops\r\ncontent-length: 1000\r\n\r\nnot all", id="error body stalled"
        ),
    ],
)
async def test_events_that_never_open_are_cut_on_the_clock(answer: bytes) -> None:
    # The stream's own read timeout is off (events may be far apart): before the first event the
    # silence timeout bounds the opening too, error body included.
    clock = ManualClock()
    timed_out: list[float] = []
    with anyio.fail_after(10):
        async with (
            tcp_peer(answer) as port,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
            anyio.create_task_group() as group,
        ):

            async def consume() -> None:
                try:
                    async for _ in AgentAPIClient(http, clock=clock).events(silence_timeout=5):
                        pass
                except TimeoutError:
                    timed_out.append(clock.now())

            group.start_soon(consume)
            await wait_until(lambda: clock.deadlines == 1)
            assert await clock.advance_to_next() == 5.0
    assert timed_out == [5.0]


async def test_an_endless_error_answer_from_events_is_read_only_to_its_cap() -> None:
    # 500 and a body that never ends: the error is raised from its first 64 KiB.
    head = b"HTTP/1.1 500 Oops\r\ntransfer-encoding: chunked\r\n\r\n"
    chunk = b"%x\r\n%s\r\n" % (MAX_ERROR_BODY, b"x" * MAX_ERROR_BODY)
    with anyio.fail_after(10):
        async with (
            tcp_peer(head + chunk * 2) as port,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
        ):
            with pytest.raises(ServerError) as caught:
                async for _ in AgentAPIClient(http, clock=ManualClock()).events(silence_timeout=5):
                    pass
    assert caught.value.status == 500
