"""The AgentAPI client against an in-process fake: models, errors, the SSE parser."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest

from agent.agentapi import (
    AgentAPIClient,
    AgentErrorEvent,
    MalformedEvent,
    MessageUpdate,
    StatusChange,
    UnknownEvent,
    _sse_frames,
)
from agent.errors import AgentBusy, BadResponse, Rejected, ServerError, TransportError
from tests.fakes import TIME, FakeAgentAPI

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
        b'{"messages": [{"id": "1", "role": "user", "content": "x", "time": "'
        + TIME.encode()
        + b'"}]}',
        b'{"messages": [{"id": 1, "role": "user", "content": "x", "time": "yesterday"}]}',
        b'{"messages": null}',
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
        if request.url.path == "/message":
            return httpx.Response(
                500, json=problem, headers={"content-type": "application/problem+json"}
            )
        if request.url.path == "/status":
            return httpx.Response(503, json={"title": "Unavailable", "detail": "restarting"})
        return httpx.Response(400, text="Invalid host header")

    client = client_for(httpx.MockTransport(handler))
    with pytest.raises(AgentBusy, match="waiting for user input"):
        await client.send_message("hi")
    with pytest.raises(ServerError, match="restarting"):
        await client.status()
    with pytest.raises(Rejected, match="Invalid host header") as caught:
        await client.messages()
    assert caught.value.status == 400


async def test_send_message_body() -> None:
    seen: list[object] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json={"$schema": "x", "ok": True})

    await client_for(httpx.MockTransport(handler)).send_message("fix the bug", "user")
    assert seen == [{"content": "fix the bug", "type": "user"}]


async def test_transport_error() -> None:
    fake = FakeAgentAPI()
    fake.down = True
    async with fake.client() as http:
        # The URL tried, not only the path: "which AgentAPI?" is the first question.
        with pytest.raises(TransportError, match="GET http://localhost:3284/status: ConnectError"):
            await AgentAPIClient(http).status()


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


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def collect(*parts: bytes) -> list[tuple[str, str]]:
    return [frame async for frame in _sse_frames(chunks(*parts))]


async def test_sse_parser_line_endings_and_split_chunks() -> None:
    frames = await collect(
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
    frames = await collect(*[text[i : i + 1] for i in range(len(text))])
    assert frames == [("message_update", '{"message":"héllo 👍"}')]


async def test_sse_parser_refuses_a_giant_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agent.agentapi.MAX_EVENT_BYTES", 100)
    with pytest.raises(BadResponse, match="size limit"):
        await collect(b"event: x\ndata: " + b"a" * 200)
    with pytest.raises(BadResponse, match="size limit"):
        await collect(b"event: x\n" + b"data: aaaaaaaaaaaaaaa\n" * 20)
