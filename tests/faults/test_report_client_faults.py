"""The report client against a hung daemon, a hostile socket path and a hostile Coder.

Real `python -m agent report` subprocesses, a real Coder stand-in and real Unix sockets.
"""

from __future__ import annotations

import os
import socket

import anyio
import pytest

from tests.e2e.conftest import TOKEN, Peers, finish, peers, start_agent
from tests.faults.servers import Scripted, answer, serve_on_loopback

pytestmark = pytest.mark.anyio
_ = peers  # the fixture, shared with the end-to-end tests


async def test_a_hung_daemon_causes_no_duplicate(peers: Peers) -> None:
    # A daemon that accepts the connection but never answers: it may still deliver the report
    # later, so the command must not deliver it a second time itself.
    hung = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    hung.bind(str(peers.workdir / "run" / "report.sock"))
    hung.listen(8)
    with hung:
        code, stderr = await finish(
            await start_agent(["report", "complete", "Shipped"], peers.env())
        )
    assert code == 5, stderr
    assert "report_unconfirmed" in stderr
    assert "report_direct" not in stderr
    assert peers.coder.store.statuses() == []


async def test_a_socket_reached_through_a_symlink_is_not_trusted(peers: Peers) -> None:
    # Someone else's directory behind a symlink at the configured path: the report goes
    # straight to Coder instead of into that socket, and says why.
    elsewhere = peers.workdir / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    trap = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    trap.bind(str(elsewhere / "report.sock"))
    trap.listen(8)
    link = peers.workdir / "link"
    link.symlink_to(elsewhere)
    if os.getuid() == 0:
        os.lchown(link, 65534, 65534)
    with trap:
        trap.setblocking(False)
        code, stderr = await finish(
            await start_agent(
                ["report", "failed", "Out of disk"],
                peers.env(CODER_TASK_AGENT_SOCKET=str(link / "report.sock")),
            )
        )
        with pytest.raises(BlockingIOError):
            trap.accept()  # nobody ever connected to the trap
    assert code == 0, stderr
    assert "report_socket_untrusted" in stderr
    assert '"no_daemon"' in stderr  # the direct path's one outcome line
    assert [row["state"] for row in peers.coder.store.statuses()] == ["failure"]


async def test_the_direct_path_prints_nothing_raw(peers: Peers) -> None:
    # A proxy that echoes request headers would put the token in its error body.
    echo = Scripted(
        answer(400, {"message": f"bad request; headers: Coder-Session-Token: {TOKEN}\x1b[31m"})
    )
    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            port = await group.start(serve_on_loopback, echo.handle)
            code, stderr = await finish(
                await start_agent(
                    ["report", "idle", "x"],
                    peers.env(CODER_AGENT_URL=f"http://127.0.0.1:{port}"),
                )
            )
            group.cancel_scope.cancel()
    assert code == 4, stderr
    assert len(echo.requests) == 1
    assert "report_failed" in stderr
    assert "[REDACTED]" in stderr
    assert "\x1b" not in stderr  # nothing a server sends reaches the terminal raw
