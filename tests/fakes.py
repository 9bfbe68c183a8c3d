"""In-process fakes of AgentAPI and Coder for unit tests, served through httpx.MockTransport.

They keep state and record requests; tests script them and assert on what they received.
End-to-end tests use the real loopback stand-ins in standins instead.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import httpx

from agent.wire import TOKEN_HEADER

TOKEN = "fake-token-3b1f9e6c"
TIME = "2025-06-01T10:00:00.123456789Z"


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Scripted:
    """One canned answer: status, body, headers; `delay` seconds before answering."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    transport_error: bool = False


class FakeCoder:
    """The agent-side Coder endpoints; answers from `script` first, then success."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.script: list[Scripted] = []
        self.statuses: list[dict[str, Any]] = []
        self.snapshots: list[bytes] = []

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url="http://coder.test",
            transport=self.transport(),
            headers={TOKEN_HEADER: TOKEN},
            timeout=httpx.Timeout(2.0),
        )

    async def handle(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.requests.append(
            Recorded(
                request.method,
                request.url.path,
                request.url.query.decode(),
                dict(request.headers),
                body,
            )
        )
        if self.script:
            answer = self.script.pop(0)
            if answer.delay:
                await anyio.sleep(answer.delay)
            if answer.transport_error:
                raise httpx.ConnectError("connection refused", request=request)
            return httpx.Response(answer.status, content=answer.body, headers=answer.headers)
        if request.method == "PATCH":
            self.statuses.append(json.loads(body))
            return httpx.Response(200, content=b"null")
        self.snapshots.append(body)
        return httpx.Response(204)


def message(id_: int, role: str, content: str, time: str = TIME) -> dict[str, Any]:
    return {"id": id_, "role": role, "content": content, "time": time}


class FakeAgentAPI:
    """AgentAPI's read side: status, messages, and an events stream fed by the test."""

    def __init__(self) -> None:
        self.status = "stable"
        self.messages: list[dict[str, Any]] = [message(0, "agent", "Welcome")]
        self.requests: list[str] = []
        self.down = False
        self.events_status = 200
        self.block_messages = False
        self._subscribers: list[anyio.abc.ObjectSendStream[bytes | None]] = []
        self.subscribed = anyio.Event()

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url="http://localhost:3284",
            transport=httpx.MockTransport(self.handle),
            timeout=httpx.Timeout(1.0),
        )

    # -- driving it --------------------------------------------------------------------------

    async def set_status(self, status: str) -> None:
        self.status = status
        await self._publish("status_change", {"status": status, "agent_type": "claude"})

    async def put_message(self, role: str, content: str, id_: int | None = None) -> None:
        if id_ is None:
            id_ = len(self.messages)
        entry = message(id_, role, content)
        if id_ < len(self.messages):
            self.messages[id_] = entry
        else:
            self.messages.append(entry)
        await self._publish(
            "message_update", {"id": id_, "role": role, "message": content, "time": TIME}
        )

    async def send_raw_event(self, frame: bytes) -> None:
        for stream in list(self._subscribers):
            await stream.send(frame)

    async def end_streams(self) -> None:
        for stream in list(self._subscribers):
            await stream.send(None)
        self._subscribers.clear()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    async def _publish(self, name: str, data: dict[str, Any]) -> None:
        await self.send_raw_event(_frame(name, data))

    # -- serving -------------------------------------------------------------------------------

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        path = request.url.path
        if path == "/status":
            return httpx.Response(
                200,
                json={
                    "$schema": "x",
                    "status": self.status,
                    "agent_type": "claude",
                    "transport": "pty",
                },
            )
        if path == "/messages":
            if self.block_messages:
                await anyio.sleep_forever()
            return httpx.Response(200, json={"$schema": "x", "messages": self.messages})
        if path == "/events":
            if self.events_status != 200:
                return httpx.Response(self.events_status, text="no events here")
            return httpx.Response(
                200, headers={"content-type": "text/event-stream"}, content=self._stream()
            )
        return httpx.Response(404, json={"title": "Not Found", "status": 404})

    async def _stream(self) -> AsyncIterator[bytes]:
        send, receive = anyio.create_memory_object_stream[bytes | None](10_000)
        replay = [
            _frame(
                "message_update",
                {"id": m["id"], "role": m["role"], "message": m["content"], "time": m["time"]},
            )
            for m in self.messages
        ]
        replay.append(_frame("status_change", {"status": self.status, "agent_type": "claude"}))
        self._subscribers.append(send)
        self.subscribed.set()
        try:
            for frame in replay:
                yield frame
            async with receive:
                async for item in receive:
                    if item is None:
                        return
                    yield item
        finally:
            send.close()
            if send in self._subscribers:
                self._subscribers.remove(send)


def _frame(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


async def wait_until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Poll `predicate` every millisecond until true; fails the test after `within` s."""
    with anyio.fail_after(within):
        while True:
            if predicate():
                return
            await anyio.sleep(0.001)
