"""AgentAPI misbehaving under the daemon: it keeps running, reports only what it observed,
recovers, and still saves the conversation at stop."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from standins.agentapi import AgentAPIStandIn, run_agentapi_standin
from standins.http import Request, Response, text_response
from tests.e2e.conftest import (
    TASK_ID,
    TOKEN,
    Peers,
    finish,
    peers,
    start_agent,
    terminate,
)
from tests.fakes import TIME, wait_until
from tests.faults.servers import Behaviour, Scripted, answer, relay, serve_on_loopback, sse
from tests.faults.test_coder_faults import (
    ENDS_ON_ITS_OWN,
    named,
    stop_path_seconds,
)

pytestmark = pytest.mark.anyio
_ = peers
# The fetch timeout is the one meant to run out: the product's default, not peers.env's.
ENDS_ON_ITS_OWN_BUT_THE_FETCH = {**ENDS_ON_ITS_OWN, "CODER_TASK_AGENT_STOP_FETCH_TIMEOUT": "1.5"}


async def run_daemon_against(peers: Peers, agentapi_url: str, **env: str) -> anyio.abc.Process:
    return await start_agent(
        ["run"],
        peers.env(
            CODER_MCP_AI_AGENTAPI_URL=agentapi_url, CODER_TASK_AGENT_AGENTAPI_TIMEOUT="1", **env
        ),
    )


@asynccontextmanager
async def daemon_against(
    peers: Peers, behaviour: Behaviour, **env: str
) -> AsyncIterator[tuple[Scripted, anyio.abc.Process]]:
    """A scripted AgentAPI on loopback and a daemon watching it."""
    server = Scripted(behaviour)
    async with anyio.create_task_group() as group:
        port = await group.start(serve_on_loopback, server.handle)
        yield server, await run_daemon_against(peers, f"http://127.0.0.1:{port}", **env)
        group.cancel_scope.cancel()


async def stop_daemon(process: anyio.abc.Process) -> tuple[int, str]:
    terminate(process)
    return await finish(process)


async def test_agentapi_not_started_then_up(peers: Peers) -> None:
    # AgentAPI's port is the test's for the whole test (bound to port 0, never let go): before
    # AgentAPI is up it drops every connection, and the daemon's tries are seen; once up, it
    # relays each connection to the stand-in (on a port of its own).
    tries: list[int] = []
    upstream: int | None = None

    async def front(stream: anyio.abc.SocketStream) -> None:
        if upstream is not None:
            await relay(stream, upstream)
            return
        tries.append(1)
        await stream.aclose()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    late = AgentAPIStandIn()
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, front)
        process = await run_daemon_against(peers, f"http://127.0.0.1:{port}")
        await wait_until(lambda: len(tries) >= 2, within=20)
        assert peers.states() == [], "nothing reported before anything was observed"
        upstream = await group.start(
            lambda task_status: run_agentapi_standin(late, task_status=task_status)
        )
        await wait_until(lambda: peers.states() == ["idle"], within=20)
        code, stderr = await stop_daemon(process)
        group.cancel_scope.cancel()
    assert code == 0, stderr
    assert len(named(stderr, "agentapi_unavailable")) == 1, "logged once, not once per retry"
    assert len(named(stderr, "agentapi_recovered")) == 1


@pytest.mark.parametrize(
    ("name", "behaviour"),
    [
        ("500", answer(500, {"title": "Internal Server Error", "status": 500})),
        ("invalid JSON", answer(200, None)),
        ("wrong types", answer(200, {"status": 42, "messages": "many"})),
        ("Host 400", lambda request: _host_refusal()),
    ],
)
async def test_garbage_is_survived_and_never_reported(
    peers: Peers, name: str, behaviour: Behaviour
) -> None:
    async with daemon_against(
        peers, behaviour, CODER_TASK_AGENT_MODE="poll", CODER_TASK_AGENT_POLL_INTERVAL="0.1"
    ) as (server, process):
        await wait_until(lambda: len(server.requests) >= 3, within=20)
        assert process.returncode is None, f"{name}: the daemon keeps running"
        assert peers.states() == [], f"{name}: no state that was not observed"
        code, stderr = await stop_daemon(process)
    assert code == 3, "no conversation could be read and there was no mirror"
    assert len(named(stderr, "agentapi_unavailable")) == 1


async def _host_refusal() -> Response:
    return text_response("Invalid host header", status=400)


async def test_hostile_event_stream_is_survived(peers: Peers) -> None:
    frames = [
        ("message_update", {"id": 0, "role": "agent", "message": "hello", "time": TIME}),
        ("brand_new_event", {"anything": True}),
        ("message_update", {"id": "zero", "role": 5}),
        ("message_update", {"id": 1, "role": "user", "message": "x" * 10_000_000, "time": TIME}),
        ("status_change", {"status": "stable", "agent_type": "claude"}),
    ]
    async with daemon_against(peers, sse(*frames, end=False)) as (_, process):
        await wait_until(lambda: peers.states() == ["idle"], within=20)
        code, stderr = await stop_daemon(process)
    assert code == 0, stderr
    body = peers.snapshot()
    assert body is not None
    stored = peers.coder.store.snapshot(TASK_ID)
    assert stored is not None
    assert len(stored[0]) <= 65536
    assert body["messages"][-1]["content"].endswith("x" * 1000), "the huge message's tail"
    assert len(named(stderr, "agentapi_event_malformed")) == 1


async def test_stream_dies_mid_replay_then_reconnects(peers: Peers) -> None:
    connections = 0

    async def behaviour(request: Request) -> Response:
        nonlocal connections
        if request.path == "/status":
            return await answer(200, {"status": "stable", "agent_type": "x"})(request)
        if request.path == "/messages":
            return await answer(200, {"messages": []})(request)
        connections += 1
        if connections == 1:  # dies mid-replay: half a frame, then the end
            return await sse(raw=b'event: message_update\ndata: {"id": 0')(request)
        return await sse(
            ("message_update", {"id": 0, "role": "agent", "message": "ok", "time": TIME}),
            ("status_change", {"status": "running", "agent_type": "x"}),
            end=False,
        )(request)

    async with daemon_against(peers, behaviour) as (server, process):
        await wait_until(lambda: peers.states() == ["idle", "working"], within=20)
        code, stderr = await stop_daemon(process)
    assert code == 0, stderr
    # Down before any status: polled as poll mode starts (the status, then the history).
    paths = [r.path for r in server.requests]
    assert paths[:4] == ["/events", "/status", "/messages", "/events"]


async def test_messages_blocking_at_stop_uses_the_mirror(peers: Peers) -> None:
    async def behaviour(request: Request) -> Response:
        if request.path == "/messages":
            await anyio.sleep(20)
        return await sse(
            ("message_update", {"id": 0, "role": "agent", "message": "mirrored", "time": TIME}),
            ("status_change", {"status": "stable", "agent_type": "x"}),
            end=False,
        )(request)

    # The blocked /messages is given up for the mirror, then the upload ends the stop on its
    # own: a budget no load exhausts.
    async with daemon_against(peers, behaviour, **ENDS_ON_ITS_OWN_BUT_THE_FETCH) as (_, process):
        await wait_until(lambda: peers.states() == ["idle"], within=20)
        code, stderr = await stop_daemon(process)
    assert code == 0, stderr
    # By the process's own clock: it did not wait the 20 s /messages was held.
    elapsed, _ = stop_path_seconds(stderr, start="stop_requested")
    assert elapsed < 20, f"the stop path took {elapsed:.2f} s"
    body = peers.snapshot()
    assert body is not None
    assert body["messages"][0]["content"] == "mirrored"
    assert TOKEN not in stderr


async def test_a_50_mb_message_at_stop(peers: Peers) -> None:
    peers.agentapi.put_message("agent", "tail-marker " + "m" * 50_000_000 + " THE END")
    # The Python stand-in serialises 50 MB far slower than AgentAPI (Go): on a loaded machine
    # that takes longer than the default 1.5 s fetch; the tail is what is under test.
    env = peers.env(CODER_TASK_AGENT_STOP_FETCH_TIMEOUT="30", CODER_TASK_AGENT_SHUTDOWN_BUDGET="40")
    code, stderr = await finish(await start_agent(["snapshot"], env), within=60)
    assert code == 0, stderr
    body = peers.snapshot()
    assert body is not None
    assert body["messages"][-1]["content"].endswith(" THE END")


async def test_an_oversized_event_is_skipped_and_the_stream_followed(peers: Peers) -> None:
    # One message over the 64 MiB frame cap in the replay: skipped and logged, the frames after
    # it are followed on the same connection (it used to reconnect, replay and hit it forever).
    from agent.agentapi import MAX_EVENT_BYTES  # noqa: PLC0415

    async def behaviour(request: Request) -> Response:
        if request.path == "/status":
            return await answer(200, {"status": "stable", "agent_type": "x"})(request)

        async def stream() -> AsyncIterator[bytes]:
            yield b'event: message_update\ndata: {"id": 0, "role": "agent", "message": "'
            piece = b"x" * (1024 * 1024)
            for _ in range(MAX_EVENT_BYTES // len(piece) + 1):
                yield piece
            yield b'", "time": "' + TIME.encode() + b'"}\n\n'
            for name, data in (
                ("status_change", {"status": "stable", "agent_type": "x"}),
                ("message_update", {"id": 1, "role": "user", "message": "after it", "time": TIME}),
                ("status_change", {"status": "running", "agent_type": "x"}),
            ):
                yield f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
            await anyio.sleep_forever()

        return Response(headers=[("content-type", "text/event-stream")], stream=stream())

    async with daemon_against(peers, behaviour) as (server, process):
        # (The reporter sends only the latest: idle may be superseded before it is sent.)
        await wait_until(lambda: peers.states()[-1:] == ["working"], within=60)
        code, stderr = await stop_daemon(process)
    assert code == 0, stderr
    assert [r.path for r in server.requests].count("/events") == 1, "no reconnect loop"
    skipped = named(stderr, "agentapi_event_malformed")
    assert len(skipped) == 1
    assert "limit" in str(skipped[0]["error"])
    assert peers.coder.store.statuses()[-1]["message"] == "after it"
