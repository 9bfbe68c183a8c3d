"""Loopback servers that misbehave on command, for the fault-injection suite."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import anyio
import anyio.abc

from standins.http import Handler, Request, Response, json_response, serve

Behaviour = Callable[[Request], Awaitable[Response]]


@dataclass
class Scripted:
    """An HTTP server whose answers come from `behaviour`; records every request."""

    behaviour: Behaviour
    requests: list[Request] = field(default_factory=list)

    async def handle(self, request: Request) -> Response:
        self.requests.append(request)
        return await self.behaviour(request)


async def serve_on_loopback(
    handler: Handler, *, task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED
) -> None:
    await serve(handler, task_status=task_status)


def answer(
    status: int,
    body: object = None,
    headers: list[tuple[str, str]] | None = None,
    delay: float = 0.0,
) -> Behaviour:
    async def behaviour(request: Request) -> Response:
        if delay:
            await anyio.sleep(delay)
        response = json_response(body, status=status)
        response.headers += headers or []
        return response

    return behaviour


async def reset_server(
    *,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
    hits: list[int] | None = None,
) -> None:
    """Reads a request, starts an answer, then drops the connection mid-response."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            try:
                await stream.receive(65536)
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                # A client cut off by its deadline between connecting and sending: nothing to
                # answer (this raised out of the server and failed the test under load).
                return
            if hits is not None:
                hits.append(1)
            await stream.send(b'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{"partial')

    async with listener:
        task_status.started(listener.extra(anyio.abc.SocketAttribute.local_port))
        await listener.serve(handle)


def sse(*frames: tuple[str, object], end: bool = True, raw: bytes = b"") -> Behaviour:
    """An /events answer with these frames (then the stream ends, or stays open)."""

    async def behaviour(request: Request) -> Response:
        async def stream() -> AsyncIterator[bytes]:
            for name, data in frames:
                yield f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
            if raw:
                yield raw
            if not end:
                await anyio.sleep_forever()

        return Response(headers=[("content-type", "text/event-stream")], stream=stream())

    return behaviour
