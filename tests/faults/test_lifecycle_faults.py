"""Lifecycle faults of the daemon process: a stop before it is up, a crash and a restart."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from agent.models import AppState, AppStatus
from tests.e2e.conftest import Peers, finish, peers, start_agent, terminate
from tests.fakes import wait_until
from tests.faults.test_coder_faults import named
from tests.socketclient import send_to_daemon

pytestmark = pytest.mark.anyio
_ = peers


def catches(pid: int, signum: signal.Signals = signal.SIGTERM) -> bool:
    """True once process `pid` has a handler for `signum` (the kernel's SigCgt mask)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (signum - 1)))


def memory_map(pid: int) -> str:
    """The files the process has mapped (its loaded shared objects among them)."""
    return Path(f"/proc/{pid}/maps").read_text()


async def test_sigterm_right_after_exec_takes_the_stop_path(peers: Peers) -> None:
    peers.agentapi.put_message("user", "keep this conversation")
    process = await start_agent(["run"], peers.env())
    # The moment the process can catch SIGTERM at all: freeze it there and look at what it has
    # loaded. The handler must come before the slow imports (pydantic's compiled core is one).
    await wait_until(lambda: catches(process.pid), within=20)
    process.send_signal(signal.SIGSTOP)
    loaded = memory_map(process.pid)
    terminate(process)
    process.send_signal(signal.SIGCONT)
    assert "pydantic_core" not in loaded, "SIGTERM was not handled before the slow imports"
    code, stderr = await finish(process)
    assert code == 0, stderr
    assert named(stderr, "stop_requested")[0]["reason"] == "SIGTERM"
    assert not named(stderr, "daemon_started"), "stopped before it was up, and still saved"
    snapshot = peers.snapshot()
    assert snapshot is not None
    assert "keep this conversation" in [m["content"] for m in snapshot["messages"]]


async def test_a_sighup_before_the_daemon_is_up_does_not_end_it(peers: Peers) -> None:
    # Its default action ended the process (no stop path, no snapshot) until the daemon's own
    # handling, a few hundred milliseconds in, ignored it: a closing terminal sends it then too.
    process = await start_agent(["run"], peers.env())
    await wait_until(lambda: catches(process.pid), within=20)
    process.send_signal(signal.SIGSTOP)
    process.send_signal(signal.SIGHUP)
    process.send_signal(signal.SIGCONT)
    await wait_until(lambda: peers.states() == ["idle"], within=20)
    terminate(process)
    code, stderr = await finish(process)
    assert code == 0, stderr
    assert peers.snapshot() is not None


async def test_an_explicit_complete_survives_sigkill_and_restart(peers: Peers) -> None:
    socket_path = peers.workdir / "run" / "report.sock"
    first = await start_agent(["run"], peers.env())
    await wait_until(lambda: peers.states() == ["idle"], within=20)
    done = AppStatus(AppState.COMPLETE, "Opened PR #12", "https://git.example/pr/12")
    assert await send_to_daemon(socket_path, done) == {"ok": True}
    await wait_until(lambda: peers.states() == ["idle", "complete"], within=20)
    first.send_signal(signal.SIGKILL)  # a crash: no stop path, the runtime directory stays
    await finish(first)
    socket_path.unlink(missing_ok=True)  # (the stale socket; not what this test is about)
    second = await start_agent(["run"], peers.env())
    await wait_until(lambda: len(peers.states()) >= 3, within=20)
    terminate(second)
    code, stderr = await finish(second)
    assert code == 0, stderr
    assert "idle" not in peers.states()[2:], "idle was reported over the explicit complete"
    assert peers.states()[2] == "complete"
    assert named(stderr, "last_report_restored")[0]["state"] == "complete"
