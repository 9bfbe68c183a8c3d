"""The report socket under hostile clients, and two daemons for one socket (real subprocesses).

Nothing but the stop path ends the daemon: a deeply nested request line, a client that breaks
off, and accept() failing with EMFILE (descriptors exhausted by clients holding connections)
are each logged and survived. A second daemon must not take a live socket over, and a socket
left by a killed daemon must be replaced.
"""

from __future__ import annotations

import json
import os
import resource
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import pytest

from agent.models import AppState, AppStatus
from agent.reportsocket.server import MAX_REQUEST_BYTES
from tests.e2e.conftest import TOKEN, Peers, finish, peers, start_agent, terminate
from tests.fakes import wait_until
from tests.socketclient import send_to_daemon

pytestmark = pytest.mark.anyio
_ = peers


class Log:
    """A daemon's stderr, read while it runs (JSON lines), checked for the token at the end."""

    def __init__(self) -> None:
        self.lines: list[dict[str, object]] = []
        self.raw = bytearray()

    def events(self, name: str) -> list[dict[str, object]]:
        return [line for line in self.lines if line.get("event") == name]

    async def read(self, process: anyio.abc.Process) -> None:
        assert process.stderr is not None
        pending = b""
        async for chunk in process.stderr:
            self.raw += chunk
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                if line.startswith(b"{"):
                    self.lines.append(json.loads(line))


@asynccontextmanager
async def daemon(peers: Peers, **env: str) -> AsyncIterator[tuple[anyio.abc.Process, Log]]:
    process = await start_agent(["run"], peers.env(**env))
    log = Log()
    async with anyio.create_task_group() as group:
        group.start_soon(log.read, process)
        yield process, log
        with anyio.fail_after(30):
            await process.wait()
        group.cancel_scope.cancel()
    assert TOKEN.encode() not in log.raw


def socket_path(peers: Peers) -> Path:
    return peers.workdir / "run" / "report.sock"


async def report(peers: Peers, status: AppStatus) -> None:
    assert await send_to_daemon(socket_path(peers), status) == {"ok": True}


async def raw_exchange(path: Path, line: bytes) -> bytes:
    stream = await anyio.connect_unix(path)
    async with stream:
        await stream.send(line)
        answer = b""
        with anyio.fail_after(10):
            while not answer.endswith(b"\n"):
                try:
                    answer += await stream.receive()
                except anyio.EndOfStream:
                    break
        return answer


async def test_hostile_clients_never_end_the_daemon(peers: Peers) -> None:
    async with daemon(peers) as (process, log):
        await wait_until(lambda: peers.states() == ["idle"], within=20)
        path = socket_path(peers)
        nested = b"[" * 8000 + b"]" * 8000 + b"\n"  # under the limit, deeper than json allows
        assert b"nested too deeply" in await raw_exchange(path, nested)
        assert b"too large" in await raw_exchange(path, b"x" * (MAX_REQUEST_BYTES + 1000))
        # A client that connects and leaves at once, one that sends half a line and leaves.
        for line in (b"", b'{"state": "comp'):
            stream = await anyio.connect_unix(path)
            await stream.send(line) if line else None
            await stream.aclose()
        await report(peers, AppStatus(AppState.COMPLETE, "Still here"))
        await wait_until(lambda: peers.states() == ["idle", "complete"], within=20)
        terminate(process)
    assert process.returncode == 0
    assert len(peers.snapshot_requests()) == 1
    assert not log.events("task_failed")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def test_accept_failing_with_emfile_backs_off_and_goes_on(peers: Peers) -> None:
    async with daemon(peers) as (process, log):
        await wait_until(lambda: peers.states() == ["idle"], within=20)
        # Leave the daemon a handful of descriptors: clients holding connections take them
        # and the next accept() fails with EMFILE ("too many open files").
        spare = 6
        soft, hard = resource.prlimit(process.pid, resource.RLIMIT_NOFILE)
        # Only the soft limit moves (raising a hard limit again needs privileges).
        resource.prlimit(process.pid, resource.RLIMIT_NOFILE, (fd_count(process.pid) + spare, hard))
        holders = [await anyio.connect_unix(socket_path(peers)) for _ in range(spare + 10)]
        await wait_until(lambda: bool(log.events("report_accept_failed")), within=20)
        assert process.returncode is None, "the daemon survived EMFILE"
        for holder in holders:
            await holder.aclose()
        # Descriptors come back; the daemon serves reports again without a restart.
        await report(peers, AppStatus(AppState.COMPLETE, "After the flood"))
        await wait_until(lambda: peers.states() == ["idle", "complete"], within=20)
        # Room for the stop path's own connections.
        resource.prlimit(process.pid, resource.RLIMIT_NOFILE, (soft, hard))
        terminate(process)
    assert process.returncode == 0
    assert len(peers.snapshot_requests()) == 1
    assert len(log.events("report_accept_failed")) == 1, "logged once per streak"
    assert log.events("report_accept_recovered")


async def test_a_second_daemon_refuses_a_live_socket(peers: Peers) -> None:
    async with daemon(peers) as (first, _log):
        await wait_until(lambda: peers.states() == ["idle"], within=20)
        second = await start_agent(["run"], peers.env())
        code, stderr = await finish(second)
        assert code == 2, stderr
        assert str(socket_path(peers)) in stderr
        assert f"pid {first.pid}" in stderr
        # The first daemon still owns its socket and applies reports.
        await report(peers, AppStatus(AppState.COMPLETE, "Through the first daemon"))
        await wait_until(lambda: peers.states() == ["idle", "complete"], within=20)
        terminate(first)
    assert first.returncode == 0
    assert len(peers.snapshot_requests()) == 1
    assert not socket_path(peers).exists(), "the socket is removed by its owner at stop"


async def test_a_socket_left_by_a_killed_daemon_is_replaced(peers: Peers) -> None:
    async with daemon(peers) as (killed, _log):
        await wait_until(lambda: peers.states() == ["idle"], within=20)
        killed.send_signal(signal.SIGKILL)
    assert socket_path(peers).is_socket(), "SIGKILL leaves the socket behind"
    async with daemon(peers) as (process, log):
        await wait_until(lambda: bool(log.events("daemon_started")), within=20)
        await report(peers, AppStatus(AppState.COMPLETE, "Through the new daemon"))
        await wait_until(lambda: peers.states()[-1] == "complete", within=20)
        terminate(process)
    assert process.returncode == 0
    assert not log.events("report_socket_unavailable")
    assert len(peers.snapshot_requests()) == 1
