"""Real loopback stand-ins served from the test's event loop, and `python -m agent` subprocesses."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest

from standins.agentapi import AgentAPIStandIn, run_agentapi_standin
from standins.coder import CoderStandIn, RequestRecord, run_coder_standin
from standins.coder.store import Store, Task
from standins.environment import agent_environment

TOKEN = "e2e-token-7f3a9c2d41b8"  # recognisable: must never show in a log or argv
TASK_ID = "0b7e3c2a-1d4f-4a5b-8c6d-7e8f9a0b1c2d"
SLUG = "agent"


@dataclass
class Peers:
    agentapi: AgentAPIStandIn
    coder: CoderStandIn
    agentapi_url: str
    coder_url: str
    workdir: Path
    agentapi_scope: anyio.CancelScope
    held: contextlib.ExitStack

    def kill_agentapi(self) -> None:
        """Stop serving AgentAPI: its port refuses connections from now on, and stays the test's.

        A socket bound to the port joins the listener's SO_REUSEPORT group before the listener
        closes, and never listens: no other server can take the port while the daemon still
        knows it as AgentAPI's (closing and hoping would leave it to any port-0 bind)."""
        holder = self.held.enter_context(socket.socket())
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(("127.0.0.1", int(self.agentapi_url.rsplit(":", 1)[1])))
        self.agentapi.close_streams()
        self.agentapi_scope.cancel()

    def env(self, **extra: str) -> dict[str, str]:
        return agent_environment(
            coder_url=self.coder_url,
            agentapi_url=self.agentapi_url,
            token=TOKEN,
            task_id=TASK_ID,
            app_slug=SLUG,
            socket=self.workdir / "run" / "report.sock",
            **{
                "CODER_TASK_AGENT_WORKING_DEBOUNCE": "0.3",
                # A hook's budget is wall-clock time from its process's start, and a subprocess
                # on a loaded two-core machine can take a second to start: the tests of what a
                # hook delivers do not race it. The budget's own tests set it themselves.
                "CODER_TASK_AGENT_HOOK_BUDGET": "30",
                # Likewise the stop path's: the defaults (5 s, the fetch of /messages 1.5 s)
                # are wall-clock time a loaded machine can spend before the step under test.
                # A test whose outcome needs a budget to run out sets a short one itself
                # (tests/faults/__init__.py).
                "CODER_TASK_AGENT_SHUTDOWN_BUDGET": "60",
                "CODER_TASK_AGENT_STOP_FETCH_TIMEOUT": "60",
                **extra,
            },
        )

    def states(self) -> list[str]:
        return [row["state"] for row in self.coder.store.statuses()]

    def snapshot(self) -> dict[str, Any] | None:
        stored = self.coder.store.snapshot(TASK_ID)
        return None if stored is None else dict(json.loads(stored[0]))

    def snapshot_requests(self) -> list[RequestRecord]:
        return [r for r in self.coder.requests if r["path"].endswith("log-snapshot")]


@pytest.fixture
async def peers(tmp_path: Path) -> AsyncIterator[Peers]:
    agentapi = AgentAPIStandIn(speed=20.0)
    (tmp_path / "run").mkdir(mode=0o700)
    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            scope = anyio.CancelScope()

            async def serve_agentapi(*, task_status: anyio.abc.TaskStatus[int]) -> None:
                with scope:
                    await run_agentapi_standin(agentapi, reuse_port=True, task_status=task_status)

            agentapi_port = await group.start(serve_agentapi)
            agentapi_url = f"http://127.0.0.1:{agentapi_port}"
            task = Task(TASK_ID, "me", "e2e", "active", (SLUG,), agentapi_url)
            coder = CoderStandIn(Store(tmp_path / "coder.db"), TOKEN, [task])
            coder_port = await group.start(run_coder_standin, coder)
            with contextlib.ExitStack() as held:
                yield Peers(
                    agentapi,
                    coder,
                    agentapi_url,
                    f"http://127.0.0.1:{coder_port}",
                    tmp_path,
                    scope,
                    held,
                )
            group.cancel_scope.cancel()
        coder.store.close()


STARTED: list[anyio.abc.Process] = []
# The stop path's shell each started process must log in `snapshot_started` (checked by
# `finish`): the daemon's async one (httpx), or the blocking one of the short commands.
CLIENT: dict[int, str] = {}


async def start_agent(args: list[str], env: Mapping[str, str]) -> anyio.abc.Process:
    """`python -m agent ARGS` as a real subprocess; killed after the test if still running."""
    process = await anyio.open_process(
        [sys.executable, "-m", "agent", *args],
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    STARTED.append(process)
    if args[:1] in (["snapshot"], ["stop-hook"]):
        CLIENT[process.pid] = "stdlib"
    elif args[:1] == ["run"]:
        CLIENT[process.pid] = "httpx"
    return process


def reap() -> None:
    """Kill whatever `start_agent` started and is still running (a failed test's leftovers)."""
    while STARTED:
        process = STARTED.pop()
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()


async def finish(process: anyio.abc.Process, within: float = 20.0) -> tuple[int, str]:
    """Wait for the process; its exit code and everything it wrote to stderr."""
    chunks: list[bytes] = []

    async def drain() -> None:
        assert process.stderr is not None
        async for chunk in process.stderr:
            chunks.append(chunk)

    with anyio.fail_after(within):
        async with anyio.create_task_group() as group:
            group.start_soon(drain)
            code = await process.wait()
    stderr = b"".join(chunks).decode("utf-8", errors="replace")
    # Every daemon process of the end-to-end and fault suites runs with this recognisable
    # token: it must never reach a log line, whatever the test was about.
    assert TOKEN not in stderr, "the agent token leaked into the output"
    expected = CLIENT.pop(process.pid, None)
    for line in stderr.splitlines():
        if line.startswith("{") and '"snapshot_started"' in line:
            started = json.loads(line)
            if started.get("event") == "snapshot_started":
                assert started.get("client") == expected, f"not the {expected} path: {line}"
    return code, stderr


def terminate(process: anyio.abc.Process) -> None:
    process.send_signal(signal.SIGTERM)


async def http_get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5.0) as client:
        return await client.get(url)
