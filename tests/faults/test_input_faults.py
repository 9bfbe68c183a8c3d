"""Slow and huge answers, tolerant /messages, servers echoing the token (real subprocesses).

Every wait has an overall deadline (a server trickling a byte at a time cannot hold the daemon),
every body a size cap, a history with one bad message still saves the others, and nothing a
server sends reaches the output unredacted, whichever command printed it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import anyio
import anyio.abc
import pytest

from standins.http import Request, Response, json_response
from tests.e2e.conftest import TOKEN, Peers, finish, peers, start_agent, terminate
from tests.fakes import TIME, wait_until
from tests.faults.servers import Scripted, answer, serve_on_loopback, sse
from tests.faults.test_agentapi_faults import daemon_against, stop_daemon
from tests.faults.test_coder_faults import ENDS_ON_ITS_OWN, named

pytestmark = pytest.mark.anyio
_ = peers

WELCOME = {"id": 0, "role": "agent", "content": "Welcome", "time": TIME}


def trickle(status: int = 200) -> Response:
    """Headers at once, then one byte every 0.2 s for ever: no read ever times out."""

    async def body() -> AsyncIterator[bytes]:
        yield b"{"
        while True:
            await anyio.sleep(0.2)
            yield b" "

    return Response(status=status, headers=[("content-type", "application/json")], stream=body())


async def test_a_trickling_status_before_a_reconnect_does_not_keep_events_closed(
    peers: Peers,
) -> None:
    events_connections = 0

    async def behaviour(request: Request) -> Response:
        nonlocal events_connections
        if request.path == "/status":
            return trickle()
        if request.path == "/messages":
            return json_response({"messages": [WELCOME]})
        events_connections += 1
        # Each connection replays and ends: the daemon asks /status, then reconnects.
        return await sse(
            (
                "message_update",
                {**{k: v for k, v in WELCOME.items() if k != "content"}, "message": "Welcome"},
            ),
            ("status_change", {"status": "stable", "agent_type": "x"}),
        )(request)

    async with daemon_against(peers, behaviour) as (_server, process):
        # AGENTAPI_TIMEOUT is 1 s: each trickling /status is cut there, overall.
        await wait_until(lambda: events_connections >= 3, within=30)
        assert peers.states() == ["idle"]
        code, stderr = await stop_daemon(process)
    assert code == 0, stderr
    assert len(peers.snapshot_requests()) == 1


async def test_a_huge_answer_from_coder_is_not_read_whole(peers: Peers) -> None:
    served: list[int] = []

    async def huge(request: Request) -> Response:
        applied = await peers.coder.handle(request)
        if request.method != "PATCH":
            return applied  # a 204 carries no body at all

        async def body() -> AsyncIterator[bytes]:
            chunk = b" " * (1 << 20)
            for _ in range(400):  # 400 MB, if anyone read it all
                served.append(len(chunk))
                yield chunk

        headers = [(k, v) for k, v in applied.headers if k.lower() != "content-length"]
        return Response(status=applied.status, headers=headers, stream=body())

    async with anyio.create_task_group() as group:
        port = await group.start(serve_on_loopback, Scripted(huge).handle)
        process = await start_agent(["run"], peers.env(CODER_AGENT_URL=f"http://127.0.0.1:{port}"))
        await wait_until(lambda: peers.states() == ["idle"], within=20)
        await wait_until(lambda: bool(served), within=20)
        with open(f"/proc/{process.pid}/status") as status:  # noqa: ASYNC230 - /proc, instant
            peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
        terminate(process)
        code, stderr = await finish(process)
        group.cancel_scope.cancel()
    assert code == 0, stderr
    assert peak_kb < 150 * 1024, f"peak RSS {peak_kb} kB: the body was read"
    assert sum(served) < 100 * (1 << 20), "the daemon stopped reading"
    assert len(named(stderr, "status_delivered")) == 1, "a 2xx is a delivery, whatever follows"
    assert not named(stderr, "status_delivery_failed")
    assert len(peers.snapshot_requests()) == 1


async def test_one_bad_message_or_old_role_names_still_save_the_rest(peers: Peers) -> None:
    history = {
        "$schema": "x",
        "messages": [
            {"id": 0, "type": "output", "content": "Welcome", "time": TIME},
            {"id": 1, "type": "input", "content": "Fix the tests", "time": TIME},
            {"id": 2, "role": "agent", "content": 42, "time": TIME},
            {"id": 3, "role": "system", "content": "no such role", "time": TIME},
            {"id": 4, "role": "agent", "content": "All green", "time": TIME},
        ],
    }

    async def behaviour(request: Request) -> Response:
        if request.path == "/status":
            return json_response({"status": "stable", "agent_type": "x"})
        if request.path == "/messages":
            return json_response(history)
        return await answer(404, {"title": "Not Found"})(request)  # no /events: poll mode

    async with daemon_against(peers, behaviour, CODER_TASK_AGENT_POLL_INTERVAL="0.1") as (
        server,
        process,
    ):
        await wait_until(lambda: peers.states() == ["idle"], within=20)
        await wait_until(lambda: any(r.path == "/messages" for r in server.requests), within=20)
        code, stderr = await stop_daemon(process)
    assert code == 0, stderr
    assert len(peers.snapshot_requests()) == 1
    body = peers.snapshot()
    assert body is not None
    assert [(m["id"], m["role"], m["content"]) for m in body["messages"]] == [
        (0, "agent", "Welcome"),
        (1, "user", "Fix the tests"),
        (4, "agent", "All green"),
    ]
    dropped = named(stderr, "agentapi_messages_dropped")
    assert dropped
    assert dropped[0]["dropped"] == 2


def echo(status: int) -> Scripted:
    """A proxy that answers with every request header it received, the token among them."""

    async def behaviour(request: Request) -> Response:
        headers = dict(request.headers)
        if status >= 500:
            text = "upstream said: " + "; ".join(f"{k}={v}" for k, v in headers.items())
            return Response(status=status, body=text.encode(), headers=[("x-echo", TOKEN)])
        return json_response({"message": "bad request", "detail": json.dumps(headers)}, status)

    return Scripted(behaviour)


async def run(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    process = await start_agent(args, env)
    assert process.stdout is not None
    out = bytearray()

    async def drain_stdout() -> None:
        assert process.stdout is not None
        async for chunk in process.stdout:
            out.extend(chunk)

    async with anyio.create_task_group() as group:
        group.start_soon(drain_stdout)
        code, stderr = await finish(process)  # asserts the token is not in stderr
    assert TOKEN.encode() not in out, "the token reached stdout"
    return code, stderr


@pytest.mark.parametrize("status", [400, 500])
async def test_a_proxy_echoing_the_token_cannot_put_it_in_the_output(
    peers: Peers, status: int
) -> None:
    server = echo(status)
    async with anyio.create_task_group() as group:
        port = await group.start(serve_on_loopback, server.handle)
        url = f"http://127.0.0.1:{port}"
        # A 500 is retried until the deadline: a direct report's is twice the request timeout
        # (10 s by default), 4 s here; the echo is answered at once, so no attempt times out.
        # A 400 ends each command on its own: budgets no loaded machine exhausts.
        short = {"CODER_TASK_AGENT_SHUTDOWN_BUDGET": "2", "CODER_TASK_AGENT_REQUEST_TIMEOUT": "2"}
        env = peers.env(CODER_AGENT_URL=url, **(short if status >= 500 else ENDS_ON_ITS_OWN))
        # The direct report path (no daemon listening), then the snapshot command.
        code, stderr = await run(["report", "complete", "Done"], env)
        assert code in (4, 5), stderr
        assert "coder-session-token" in stderr, "the echo was printed (redacted), not hidden"
        code, stderr = await run(["snapshot"], env)
        assert code in (4, 5), stderr
        # The daemon: its status reports and its stop snapshot both meet the echo.
        before = len(server.requests)
        process = await start_agent(["run"], env)
        await wait_until(lambda: len(server.requests) > before, within=20)  # the status PATCH
        terminate(process)
        code, stderr = await finish(process)
        group.cancel_scope.cancel()
    assert code in (4, 5), stderr
    assert any(TOKEN in json.dumps(dict(r.headers)) for r in server.requests), "it was echoed"
