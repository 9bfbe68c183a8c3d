"""Loopback servers that misbehave on command, for the fault-injection suite."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import anyio
import anyio.abc

from standins.coder import CoderStandIn
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
    handler: Handler,
    *,
    tls: ssl.SSLContext | None = None,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    await serve(handler, tls=tls, task_status=task_status)


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


def once_then_stored(behaviour: Behaviour) -> Behaviour:
    """`behaviour` for the first request, then 204 (stored) for every other: the process ends
    on its own, and its retry line proves the decision to retry whatever the machine's load."""
    calls = 0

    async def first(request: Request) -> Response:
        nonlocal calls
        calls += 1
        return await behaviour(request) if calls == 1 else Response(status=204)

    return first


async def raw_server(
    answer_with: bytes | None,
    *,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
    hits: list[int] | None = None,
    then: bytes | None = None,
) -> None:
    """Reads a request, sends `answer_with` as it is (None: nothing), then closes; with `then`,
    only the first time: every later request is answered `then` (a server that recovers)."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    seen: list[int] = []

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            try:
                await stream.receive(65536)
                seen.append(1)
                if hits is not None:
                    hits.append(1)
                answer = answer_with if then is None or len(seen) == 1 else then
                if answer is not None:
                    await stream.send(answer)
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                # A client cut off by its deadline between connecting and sending: nothing to
                # answer (this raised out of the server and failed the test under load).
                return

    async with listener:
        task_status.started(listener.extra(anyio.abc.SocketAttribute.local_port))
        await listener.serve(handle)


async def reset_server(
    *,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
    hits: list[int] | None = None,
    then: bytes | None = None,
) -> None:
    """Reads a request, starts an answer, then drops the connection mid-response (with
    `then`: the first time only, as `raw_server`)."""
    partial = b'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{"partial'
    await raw_server(partial, task_status=task_status, hits=hits, then=then)


async def relay(client: anyio.abc.SocketStream, port: int) -> None:
    """Pipe one connection to 127.0.0.1:`port` and back until either side ends it.

    A listener the test holds can then stand for a server that comes and goes: the port stays
    the test's while the server behind it changes.
    """
    async with client, await anyio.connect_tcp("127.0.0.1", port) as server:

        async def pipe(source: anyio.abc.SocketStream, sink: anyio.abc.SocketStream) -> None:
            try:
                async for chunk in source:
                    await sink.send(chunk)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass  # one side reset or closed: the connection is over either way
            group.cancel_scope.cancel()

        async with anyio.create_task_group() as group:
            group.start_soon(pipe, client, server)
            group.start_soon(pipe, server, client)


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


@dataclass
class LossyCoder:
    """In front of the Coder stand-in: every request reaches it (and is applied there); while
    `losing` is set, the answer is withheld: its headers go out, then its body trickles one
    byte every 0.2 s until `released` is set. What the daemon sees is a PATCH applied but never
    answered (with a per-read timeout the trickle would hold it for ever)."""

    coder: CoderStandIn
    losing: bool = False
    released: anyio.Event = field(default_factory=anyio.Event)
    # (state of a PATCH or "" for other routes, whether its answer was withheld)
    seen: list[tuple[str, bool]] = field(default_factory=list)

    def states_seen(self) -> list[tuple[str, bool]]:
        return [(state, lost) for state, lost in self.seen if state]

    async def handle(self, request: Request) -> Response:
        response = await self.coder.handle(request)
        state = ""
        if request.method == "PATCH":
            state = str(request.json().get("state", ""))
        lost = self.losing
        self.seen.append((state, lost))
        if not lost:
            return response
        released = self.released
        body = response.body

        async def trickle() -> AsyncIterator[bytes]:
            while not released.is_set():
                yield b" "
                with anyio.move_on_after(0.2):
                    await released.wait()
            yield body

        headers = [(k, v) for k, v in response.headers if k.lower() != "content-length"]
        return Response(status=response.status, headers=headers, stream=trickle())


def collapse(states: list[str]) -> list[str]:
    """`states` without immediate repeats (a re-send after a lost answer repeats one)."""
    out: list[str] = []
    for state in states:
        if not out or out[-1] != state:
            out.append(state)
    return out
