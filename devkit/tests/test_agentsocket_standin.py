"""The agent-socket stand-in is faithful to contracts.md section 4: raw bytes in, raw bytes out.

Requests are written out by hand (see tests/test_drpc.py for how each byte is worked out); the
answers are read with the framing module, whose own tests use hand-made vectors.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import pytest

from agent.coder import drpc
from agent.coder.agentsocket import AgentSocketClient
from standins.agentsocket import AgentSocketStandIn, SocketFault, run_agent_socket_standin
from standins.coder.store import Store, Task
from tests.fakes import wait_until
from tests.test_drpc import PING_CLOSE_SEND, PING_INVOKE, PING_MESSAGE, UPDATE_PATH

pytestmark = pytest.mark.anyio
PING_CALL = PING_INVOKE + PING_MESSAGE + PING_CLOSE_SEND
# UpdateAppStatus on stream 1: slug "agent", state idle, message "Turn finished" (24 bytes).
UPDATE_CALL = (
    b"\x03\x01\x01\x31"
    + UPDATE_PATH
    + b"\x05\x01\x02\x18\x0a\x05agent\x10\x01\x1a\x0dTurn finished"
    + b"\x0d\x01\x03\x00"
)
TASK = "0b7e3c2a-1d4f-4a5b-8c6d-7e8f9a0b1c2d"


@asynccontextmanager
async def serving(tmp_path: Path, standin: AgentSocketStandIn) -> AsyncIterator[Path]:
    path = tmp_path / "agent.sock"
    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            await group.start(run_agent_socket_standin, standin, path)
            yield path
            group.cancel_scope.cancel()
    assert not path.exists()


class Reader:
    """The client side of one raw connection: writes bytes, reads whole packets."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream
        self.parser = drpc.FrameParser()
        self.packets = drpc.PacketAssembler()
        self.frames: list[drpc.Frame] = []
        self.pending: list[drpc.Frame] = []

    async def packet(self) -> drpc.Packet:
        while True:
            while self.pending:
                frame = self.pending.pop(0)
                self.frames.append(frame)
                packet = self.packets.add(frame)
                if packet is not None:
                    return packet
            self.pending = self.parser.feed(await self.stream.receive())

    async def closed(self) -> bool:
        try:
            await self.stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return True
        return False


async def test_answers_a_ping_in_pieces(tmp_path: Path) -> None:
    standin = AgentSocketStandIn(chunk=1)
    async with serving(tmp_path, standin) as path:
        stream = await anyio.connect_unix(path)
        async with stream:
            # The request itself split at every byte: the stand-in reassembles it.
            for index in range(len(PING_CALL)):
                await stream.send(PING_CALL[index : index + 1])
            reader = Reader(stream)
            assert await reader.packet() == drpc.Packet(drpc.Kind.MESSAGE, 1, 1, b"")
            assert await reader.packet() == drpc.Packet(drpc.Kind.CLOSE_SEND, 1, 2, b"")
    assert [c.method for c in standin.calls] == ["Ping"]


async def test_relays_a_status_into_the_store_and_splits_its_error_frames(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "coder.db")
    store.ensure_task(Task(TASK, "me", "t", "active", ("agent",), "http://127.0.0.1:9"))
    standin = AgentSocketStandIn(store=store, frame_size=4)
    try:
        async with serving(tmp_path, standin) as path:
            stream = await anyio.connect_unix(path)
            async with stream:
                await stream.send(UPDATE_CALL)
                reader = Reader(stream)
                assert (await reader.packet()).kind == drpc.Kind.MESSAGE
                assert (await reader.packet()).kind == drpc.Kind.CLOSE_SEND
                # Stream 2: an unknown slug is coderd's 400, as an Error split into frames.
                body = b"\x0a\x04nope\x10\x01"
                await stream.send(b"\x03\x02\x01\x31" + UPDATE_PATH)
                await stream.send(b"\x05\x02\x02" + bytes([len(body)]) + body)
                error = await reader.packet()
                assert error.kind == drpc.Kind.ERROR
                text = drpc.decode_error(error.data).text
                assert text.startswith("unexpected status code 400: Failed to get workspace app.")
                assert 'No app found with slug "nope"' in text
                assert len([f for f in reader.frames if f.kind == drpc.Kind.ERROR]) > 1
        rows = store.statuses()
        assert [(r["state"], r["message"]) for r in rows] == [("idle", "Turn finished")]
    finally:
        store.close()


@pytest.mark.parametrize(
    ("request_bytes", "problem"),
    [
        (b"\x03\x00\x01\x00", "backwards"),  # stream 0
        # A second Invoke on stream 1 (a newer message id, so the framing allows it).
        (PING_CALL + b"\x03\x01\x05\x00", "invoke on stream 1 after 1"),
        (PING_CALL[:42] + PING_CALL, "backwards"),  # Invoke (1, 1) twice
        (b"\x05\x01\x02\x00", "without its invoke"),  # a Message before any Invoke
        (b"\x05\x01\x01" + b"\x80" * 10 + b"\x01", "longer than 10"),
        (b"\x05\x01\x01\x81\x80\x80\x02", "limit"),  # a message over 4 MiB announced
        (b"\x29\x01\x01\x00", "unknown packet kind"),  # kind 20 without the control flag
    ],
)
async def test_a_malformed_request_ends_the_connection(
    tmp_path: Path, request_bytes: bytes, problem: str
) -> None:
    standin = AgentSocketStandIn()
    async with serving(tmp_path, standin) as path:
        stream = await anyio.connect_unix(path)
        async with stream:
            await stream.send(request_bytes)
            reader = Reader(stream)
            while not await reader.closed():
                pass
    assert len(standin.protocol_errors) == 1
    assert problem in standin.protocol_errors[0]


async def test_ignores_unknown_control_frames(tmp_path: Path) -> None:
    standin = AgentSocketStandIn()
    async with serving(tmp_path, standin) as path:
        stream = await anyio.connect_unix(path)
        async with stream:
            # A control frame of unknown kind 20 (0xa9) takes message id 3 of stream 1; ids
            # still only go up, so the CloseSend comes as message 4.
            await stream.send(PING_INVOKE + PING_MESSAGE + b"\xa9\x01\x03\x00\x0d\x01\x04\x00")
            reader = Reader(stream)
            assert (await reader.packet()).kind == drpc.Kind.MESSAGE
            assert (await reader.packet()).kind == drpc.Kind.CLOSE_SEND
            # The connection carries on: a Ping on stream 2.
            await stream.send(b"\x03\x02\x01\x26" + PING_INVOKE[4:] + b"\x05\x02\x02\x00")
            assert await reader.packet() == drpc.Packet(drpc.Kind.MESSAGE, 2, 1, b"")
    assert standin.protocol_errors == []


async def test_unknown_methods_and_fault_switches(tmp_path: Path) -> None:
    standin = AgentSocketStandIn(
        methods=("Ping",),
        faults=[SocketFault("drop")],
    )
    async with serving(tmp_path, standin) as path:
        async with AgentSocketClient(path, 5.0) as client:
            await client.ping()
        stream = await anyio.connect_unix(path)
        async with stream:
            await stream.send(UPDATE_CALL)
            error = await Reader(stream).packet()
        assert drpc.decode_error(error.data).text == (
            'protocol error: unknown rpc: "/coder.agentsocket.v1.AgentSocket/UpdateAppStatus"'
        )
        standin.methods = ("Ping", "UpdateAppStatus")
        standin.faults = [SocketFault("drop")]
        stream = await anyio.connect_unix(path)
        async with stream:
            await stream.send(UPDATE_CALL)
            assert await Reader(stream).closed()
        standin.always = "not_connected"
        stream = await anyio.connect_unix(path)
        async with stream:
            await stream.send(UPDATE_CALL)
            error = await Reader(stream).packet()
        assert drpc.decode_error(error.data).text == "agent not connected to coderd"
    assert [c.answer.split(":")[0] for c in standin.calls] == ["ok", "error", "dropped", "error"]


async def test_the_socket_is_private(tmp_path: Path) -> None:
    async with serving(tmp_path, AgentSocketStandIn()) as path:
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600


async def test_the_command(tmp_path: Path) -> None:
    path = tmp_path / "agent.sock"
    process = await anyio.open_process(
        [sys.executable, "-m", "standins", "agent-socket", "--path", str(path), "--old-agent"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        with anyio.fail_after(30):
            await wait_until(path.exists, within=25)
            async with AgentSocketClient(path, 5.0) as client:
                await client.ping()
            process.send_signal(signal.SIGTERM)
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
        # Closes the stderr pipe too: left open, a failure here would fail an unrelated test
        # later with a ResourceWarning.
        with anyio.CancelScope(shield=True):
            await process.aclose()
    assert not path.exists()
