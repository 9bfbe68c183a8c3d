"""Delivery when the outcome is unknown, hostile text, slow and huge answers (real subprocesses).

A PATCH that Coder applied but never answered leaves the server's state unknown: the daemon
must then send its next wanted status even when it equals the last confirmed one, and the stop
path must confirm the final one. Every test reads what the Coder stand-in stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import pytest

from agent.models import AppState, AppStatus
from tests.e2e.conftest import TOKEN, Peers, finish, peers, start_agent, terminate
from tests.fakes import wait_until
from tests.faults.servers import LossyCoder, collapse, serve_on_loopback
from tests.faults.test_coder_faults import named
from tests.socketclient import send_to_daemon

pytestmark = pytest.mark.anyio
_ = peers

DONE = AppStatus(AppState.COMPLETE, "Done")
FIXING = AppStatus(AppState.WORKING, "Fixing the build")


@asynccontextmanager
async def lossy(peers: Peers) -> AsyncIterator[tuple[LossyCoder, str]]:
    """The Coder stand-in behind a server that can withhold answers; its URL."""
    front = LossyCoder(peers.coder)
    async with anyio.create_task_group() as group:
        port = await group.start(serve_on_loopback, front.handle)
        yield front, f"http://127.0.0.1:{port}"
        front.released.set()
        group.cancel_scope.cancel()


async def report(peers: Peers, status: AppStatus) -> None:
    """An explicit report through the daemon's socket; returns once the daemon took it."""
    answer = await send_to_daemon(peers.workdir / "run" / "report.sock", status)
    assert answer == {"ok": True}


async def test_a_lost_answer_is_resent_even_when_equal_to_the_confirmed_state(
    peers: Peers,
) -> None:
    async with lossy(peers) as (front, url):
        process = await start_agent(
            ["run"], peers.env(CODER_AGENT_URL=url, CODER_TASK_AGENT_REQUEST_TIMEOUT="1")
        )
        await wait_until(lambda: peers.states() == ["idle"], within=20)
        await report(peers, DONE)
        await wait_until(lambda: peers.states() == ["idle", "complete"], within=20)
        front.losing = True
        await report(peers, FIXING)
        await wait_until(lambda: ("working", True) in front.states_seen(), within=20)
        # Back to exactly the confirmed report: Coder holds "working" now, so it must be sent.
        await report(peers, DONE)
        await wait_until(lambda: front.states_seen()[-1][0] == "complete", within=20)
        front.losing = False
        front.released.set()
        terminate(process)
        code, stderr = await finish(process)
    assert code == 0, stderr
    assert collapse(peers.states()) == ["idle", "complete", "working", "complete"]
    assert len(peers.snapshot_requests()) == 1
    failures = named(stderr, "status_delivery_failed")
    assert failures, "the lost answers were noticed"
    assert all(line["outcome"] == "unknown" for line in failures)


async def test_a_patch_in_flight_at_sigterm_is_confirmed_by_the_stop_path(peers: Peers) -> None:
    async with lossy(peers) as (front, url):
        process = await start_agent(
            ["run"],
            peers.env(
                CODER_AGENT_URL=url,
                # Long enough that "working" is still in flight when the stop comes.
                CODER_TASK_AGENT_REQUEST_TIMEOUT="60",
            ),
        )
        await wait_until(lambda: peers.states() == ["idle"], within=20)
        await report(peers, DONE)
        await wait_until(lambda: peers.states() == ["idle", "complete"], within=20)
        front.losing = True
        await report(peers, FIXING)
        await wait_until(lambda: ("working", True) in front.states_seen(), within=20)
        await report(peers, DONE)  # wanted again while "working" waits for its answer
        front.losing = False  # the stop path's own sends are answered
        terminate(process)
        code, stderr = await finish(process)
    assert code == 0, stderr
    assert peers.states()[-1] == "complete", "the server must not stay on the old state"
    assert collapse(peers.states()) == ["idle", "complete", "working", "complete"]
    assert len(peers.snapshot_requests()) == 1
    stop = [line["event"] for line in named(stderr, "stop_requested")]
    assert stop
    events = [line["event"] for line in _log(stderr)]
    assert "status_delivered" in events[events.index("stop_requested") :]


def _log(stderr: str) -> list[dict[str, object]]:
    from tests.faults.test_coder_faults import events  # noqa: PLC0415

    return events(stderr)


async def test_hostile_summary_is_replaced_on_every_path_and_the_stop_path_saves(
    peers: Peers,
) -> None:
    # A Latin-1 commit subject as an argument: Python hands it over as lone surrogates.
    latin1 = b"Fix caf\xe9 d\xe9j\xe0 vu"
    long = b"x" * 300
    process = await start_agent(["run"], peers.env())
    await wait_until(lambda: peers.states() == ["idle"], within=20)
    via_daemon = await start_agent_bytes(peers, [b"report", b"complete", latin1])
    code, stderr = await finish(via_daemon)
    assert code == 0, stderr
    await wait_until(lambda: peers.states() == ["idle", "complete"], within=20)
    code, stderr = await finish(await start_agent_bytes(peers, [b"report", b"failed", long]))
    assert code == 0, stderr
    await wait_until(lambda: peers.states()[-1] == "failure", within=20)
    terminate(process)
    code, stderr = await finish(process)
    assert code == 0, stderr
    assert len(peers.snapshot_requests()) == 1
    daemon_rows = peers.coder.store.statuses()[1:]
    # The same inputs with no daemon listening: the direct path must store the same bytes.
    for args in ([b"report", b"complete", latin1], [b"report", b"failed", long]):
        code, stderr = await finish(await start_agent_bytes(peers, args))
        assert code == 0, stderr
        assert '"no_daemon"' in stderr  # the direct path's one outcome line
    direct_rows = peers.coder.store.statuses()[3:]
    assert [r["message"] for r in daemon_rows] == [r["message"] for r in direct_rows]
    assert daemon_rows[0]["message"] == "Fix caf\ufffd d\ufffdj\ufffd vu"
    assert len(daemon_rows[1]["message"].encode()) == 160
    assert daemon_rows[1]["message"].endswith("…")


async def start_agent_bytes(peers: Peers, args: list[bytes]) -> anyio.abc.Process:
    """`python -m agent ARGS` with raw bytes in argv (not UTF-8, as a shell passes them)."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from tests.e2e.conftest import STARTED  # noqa: PLC0415

    env = {**peers.env(), "LC_ALL": "C.UTF-8", "PYTHONUTF8": "1"}
    process = await anyio.open_process(
        [sys.executable.encode(), b"-m", b"agent", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    STARTED.append(process)
    return process


assert TOKEN
