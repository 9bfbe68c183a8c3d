"""`Type=notify`: READY=1, STATUS=, STOPPING=1 and WATCHDOG=1 reach a real notify socket."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from agent.config import read as read_settings
from agent.daemon.sdnotify import Notifier
from tests.e2e.conftest import Peers, finish, peers, start_agent, terminate
from tests.fakes import wait_until

pytestmark = pytest.mark.anyio
_ = peers


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    try:
        yield str(path), sock
    finally:
        sock.close()


def drain(sock: socket.socket, into: list[str]) -> None:
    while True:
        try:
            into.append(sock.recv(65536).decode())
        except BlockingIOError:
            return


async def test_notifications_through_the_daemons_life(
    peers: Peers, notify_socket: tuple[str, socket.socket]
) -> None:
    address, sock = notify_socket
    received: list[str] = []
    env = peers.env(NOTIFY_SOCKET=address, WATCHDOG_USEC="200000")
    process = await start_agent(["run"], env)
    await wait_until(lambda: peers.states() == ["idle"], within=15)

    def pinged() -> bool:
        drain(sock, received)
        return sum("WATCHDOG=1" in m for m in received) >= 3

    await wait_until(pinged, within=15)
    terminate(process)
    code, stderr = await finish(process)
    drain(sock, received)
    assert code == 0, stderr
    ready = [m for m in received if "READY=1" in m]
    assert len(ready) == 1
    assert f"watching {peers.agentapi_url} (events)" in ready[0]
    assert any("last delivered: idle 'Waiting for input'" in m for m in received)
    assert sum("WATCHDOG=1" in m for m in received) >= 3, "pings at half the watchdog period"
    stopping = [i for i, m in enumerate(received) if "STOPPING=1" in m]
    assert stopping
    assert stopping[0] > received.index(ready[0])


def test_notifier_is_a_no_op_without_systemd() -> None:
    notifier = Notifier.for_settings(read_settings({}))
    assert notifier.enabled is False
    assert notifier.notify(READY="1") is False
    assert notifier.watchdog_interval is None


def test_watchdog_interval_and_abstract_addresses(tmp_path: Path) -> None:
    def notifier(env: dict[str, str]) -> Notifier:
        return Notifier.for_settings(read_settings(env))

    assert notifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval == 15.0
    assert notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}).watchdog_interval is None
    assert notifier({"WATCHDOG_USEC": "zero"}).watchdog_interval is None
    abstract = notifier({"NOTIFY_SOCKET": "@no-such-listener"})
    assert abstract.enabled is True
    assert abstract.notify(READY="1") is False, "a failed notification is logged, not raised"


def test_a_notify_socket_nobody_reads_never_blocks_the_daemon(
    notify_socket: tuple[str, socket.socket],
) -> None:
    # systemd stuck: its queue full, a blocking send would stop the daemon's event loop.
    address, _ = notify_socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as filler:
        filler.connect(address)
        filler.setblocking(False)
        with pytest.raises(BlockingIOError):  # noqa: PT012 - the queue fills after a few
            while True:
                filler.send(b"STATUS=filling")
        with capture_logs() as logs:
            assert Notifier(address).notify(WATCHDOG="1") is False
    assert [entry["event"] for entry in logs] == ["sd_notify_failed"]
