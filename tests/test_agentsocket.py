"""The agent-socket client over a real Unix socket, against a server that speaks raw bytes.

The server here is scripted byte by byte (vectors worked out by hand, see test_drpc): it checks
what the client wrote and answers with bytes split across writes, so the client's framing is
tested against the wire description, not against our own encoder.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import pytest

from agent.coder.agentsocket import AgentSocketClient, check_socket, classify, socket_identity
from agent.coder.drpc import RemoteFailure
from agent.errors import (
    NotListening,
    RateLimited,
    Rejected,
    ServerError,
    TransportError,
    TryAgain,
    Unsupported,
    UntrustedSocket,
)
from agent.models import AppState, AppStatus
from tests.manualclock import ManualClock
from tests.test_drpc import ANSWER, PING_CLOSE_SEND, PING_INVOKE, PING_MESSAGE, UPDATE_PATH

PING_CALL = PING_INVOKE + PING_MESSAGE + PING_CLOSE_SEND
Handler = Callable[[anyio.abc.SocketStream], Awaitable[None]]
pytestmark = pytest.mark.anyio


async def read_exactly(stream: anyio.abc.SocketStream, count: int) -> bytes:
    data = b""
    while len(data) < count:
        data += await stream.receive(count - len(data))
    return data


async def send_in_pieces(stream: anyio.abc.SocketStream, data: bytes, size: int = 1) -> None:
    for index in range(0, len(data), size):
        await stream.send(data[index : index + size])


@asynccontextmanager
async def raw_server(path: Path, handler: Handler) -> AsyncIterator[list[bytes]]:
    """Serve `handler` on `path`; yields the list of connections' ids (one entry each)."""
    connections: list[bytes] = []
    listener = await anyio.create_unix_listener(path)

    async def handle(stream: anyio.abc.SocketStream) -> None:
        connections.append(b"")
        async with stream:
            await handler(stream)

    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, handle)
        yield connections
        group.cancel_scope.cancel()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "agent.sock"


async def test_ping_sends_the_three_frames_and_reads_a_split_answer(path: Path) -> None:
    received: list[bytes] = []

    async def handler(stream: anyio.abc.SocketStream) -> None:
        received.append(await read_exactly(stream, len(PING_CALL)))
        await send_in_pieces(stream, ANSWER)
        # The second call on the same connection is stream 2: 0x03 0x02 0x01 ...
        second = await read_exactly(stream, len(PING_CALL))
        received.append(second)
        await send_in_pieces(stream, b"\x05\x02\x01\x00\x0d\x02\x02\x00", size=3)
        await anyio.sleep_forever()

    with anyio.fail_after(10):
        async with raw_server(path, handler) as connections, AgentSocketClient(path, 5.0) as client:
            await client.ping()
            await client.ping()
    assert received[0] == PING_CALL
    assert (
        received[1] == b"\x03\x02\x01\x26" + PING_CALL[4:42] + b"\x05\x02\x02\x00\x0d\x02\x03\x00"
    )
    assert len(connections) == 1


async def test_update_app_status_bytes(path: Path) -> None:
    # Invoke (stream 1, message 1, 49 bytes), Message (message 2, 24 bytes), CloseSend.
    body = b"\x0a\x05agent\x10\x01\x1a\x0dTurn finished"
    expected = b"\x03\x01\x01\x31" + UPDATE_PATH + b"\x05\x01\x02\x18" + body + b"\x0d\x01\x03\x00"
    received: list[bytes] = []

    async def handler(stream: anyio.abc.SocketStream) -> None:
        received.append(await read_exactly(stream, len(expected)))
        # The answer split over two Message frames (0x04: not done), and an unknown control
        # frame (0xa9: control flag, kind 20) first, which must be ignored.
        await send_in_pieces(
            stream, b"\xa9\x01\x01\x00" + b"\x04\x01\x02\x00" + b"\x05\x01\x02\x00"
        )
        await send_in_pieces(stream, b"\x0d\x01\x03\x00")

    with anyio.fail_after(10):
        async with raw_server(path, handler), AgentSocketClient(path, 5.0) as client:
            await client.update_app_status("agent", AppStatus(AppState.IDLE, "Turn finished"))
    assert received == [expected]


def _error_frame(text: str) -> bytes:
    data = b"\x00" * 8 + text.encode()
    assert len(data) < 128
    return b"\x07\x01\x01" + bytes([len(data)]) + data  # 0x07: Error (kind 3), done


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('protocol error: unknown rpc: "/coder.agentsocket.v1.AgentSocket/Ping"', Unsupported),
        ("agent not connected to coderd", TryAgain),
        ("unexpected status code 400: Message is too long.", Rejected),
        ("Failed to get workspace app.: No app found with slug", Rejected),
        ("unexpected status code 500: Failed to insert workspace app status.", ServerError),
        ("manager closed: EOF", ServerError),
    ],
)
async def test_error_answers(path: Path, text: str, error: type[Exception]) -> None:
    async def handler(stream: anyio.abc.SocketStream) -> None:
        await read_exactly(stream, len(PING_CALL))
        await send_in_pieces(stream, _error_frame(text), size=5)
        await read_exactly(stream, len(PING_CALL))
        await stream.send(b"\x05\x02\x01\x00")
        await anyio.sleep_forever()

    with anyio.fail_after(10):
        async with raw_server(path, handler) as connections, AgentSocketClient(path, 5.0) as client:
            with pytest.raises(error) as caught:
                await client.ping()
            assert type(caught.value) is error
            assert "Coder agent socket Ping" in str(caught.value)
            # An Error answer ends the call, not the connection.
            await client.ping()
    assert len(connections) == 1


def test_classify_details() -> None:
    rejected = classify("X", RemoteFailure(0, "unexpected status code 400: Message\n\tError: long"))
    assert isinstance(rejected, Rejected)
    assert rejected.status == 400
    assert rejected.detail == "unexpected status code 400: Message Error: long"
    assert isinstance(classify("X", RemoteFailure(0, "status code 429: slow down")), RateLimited)
    assert isinstance(classify("X", RemoteFailure(0, "Invalid state provided.")), Rejected)
    long = classify("X", RemoteFailure(0, "x" * 1000))
    assert len(long.detail) == 300


async def test_a_dropped_connection_is_a_transport_error_then_a_fresh_connection(
    path: Path,
) -> None:
    async def handler(stream: anyio.abc.SocketStream) -> None:
        await read_exactly(stream, len(PING_CALL))
        if len(connections) == 1:
            await stream.send(b"\x05\x01")  # half a frame, then gone
            return
        await stream.send(ANSWER)
        await anyio.sleep_forever()

    with anyio.fail_after(10):
        async with raw_server(path, handler) as connections, AgentSocketClient(path, 5.0) as client:
            with pytest.raises(TransportError, match="closed the connection"):
                await client.ping()
            await client.ping()  # a new connection starts again at stream 1
    assert len(connections) == 2


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (b"\x05\x00\x01\x00", "backwards"),  # stream 0
        (b"\x05\x01\x01" + b"\x80" * 10 + b"\x01", "longer than 10"),
        (b"\x05\x01\x01\x81\x80\x80\x02", "limit"),  # a 4 MiB + 1 message announced
        (b"\x05\x02\x01\x00", "opened stream"),
        (b"\x29\x01\x01\x00", "unknown packet kind"),  # kind 20 without the control flag
        (b"\x0d\x01\x01\x00", "without an answer"),
    ],
)
async def test_a_malformed_answer_ends_the_connection(
    path: Path, answer: bytes, problem: str
) -> None:
    async def handler(stream: anyio.abc.SocketStream) -> None:
        await read_exactly(stream, len(PING_CALL))
        if len(connections) == 1:
            await stream.send(answer)
        else:
            await stream.send(ANSWER)
        await anyio.sleep_forever()

    with anyio.fail_after(10):
        async with raw_server(path, handler) as connections, AgentSocketClient(path, 5.0) as client:
            with pytest.raises(TransportError, match=problem):
                await client.ping()
            await client.ping()
    assert len(connections) == 2


async def test_no_answer_in_time(path: Path) -> None:
    async def handler(stream: anyio.abc.SocketStream) -> None:
        await read_exactly(stream, len(PING_CALL))
        received.set()
        await anyio.sleep_forever()

    received = anyio.Event()
    clock = ManualClock()
    failed: list[BaseException] = []
    with anyio.fail_after(10):
        async with (
            raw_server(path, handler),
            AgentSocketClient(path, 0.2, clock=clock) as client,
            anyio.create_task_group() as group,
        ):

            async def call() -> None:
                try:
                    await client.ping()
                except TransportError as exc:
                    failed.append(exc)

            group.start_soon(call)
            await received.wait()
            clock.advance(0.19)
            await anyio.wait_all_tasks_blocked()
            assert failed == [], "not before its timeout"
            assert await clock.advance_to_next() == pytest.approx(0.2)
    assert len(failed) == 1
    assert "no answer within 0.2 s" in str(failed[0])


async def test_cancelled_mid_call_drops_the_connection(path: Path) -> None:
    async def handler(stream: anyio.abc.SocketStream) -> None:
        await read_exactly(stream, len(PING_CALL))
        called.set()
        if len(connections) > 1:
            await stream.send(ANSWER)
        await anyio.sleep_forever()

    called = anyio.Event()
    with anyio.fail_after(10):
        async with raw_server(path, handler) as connections, AgentSocketClient(path, 5.0) as client:
            async with anyio.create_task_group() as group:

                async def cancel_once_called() -> None:
                    await called.wait()
                    group.cancel_scope.cancel()

                group.start_soon(cancel_once_called)
                await client.ping()  # cancelled while waiting for the answer
            await client.ping()
    assert len(connections) == 2


async def test_nothing_there_or_nobody_listening(path: Path) -> None:
    with anyio.fail_after(10):
        async with AgentSocketClient(path, 5.0) as client:
            with pytest.raises(NotListening, match="no socket"):
                await client.ping()
            with socket.socket(socket.AF_UNIX) as bound:
                bound.bind(str(path))  # a socket file nobody accepts on
                with pytest.raises(NotListening, match="refused"):
                    await client.ping()


async def test_refuses_what_is_not_our_socket(path: Path, tmp_path: Path) -> None:
    async def handler(stream: anyio.abc.SocketStream) -> None:
        await anyio.sleep_forever()

    with anyio.fail_after(10):
        async with raw_server(path, handler) as connections:
            link = tmp_path / "link.sock"
            link.symlink_to(path)
            async with AgentSocketClient(link, 5.0) as client:
                with pytest.raises(UntrustedSocket, match="symbolic link"):
                    await client.ping()
            plain = tmp_path / "file.sock"
            plain.write_text("")
            async with AgentSocketClient(plain, 5.0) as client:
                with pytest.raises(UntrustedSocket, match="not a socket"):
                    await client.ping()
            # Another user's socket: the owner check refuses it before connecting.
            async with AgentSocketClient(path, 5.0, uid=os.getuid() + 4242) as client:
                with pytest.raises(UntrustedSocket, match="belongs to uid"):
                    await client.ping()
        assert connections == []


@pytest.mark.skipif(os.getuid() != 0, reason="changing a file's owner needs root")
async def test_refuses_a_peer_running_as_another_user(path: Path) -> None:
    # The file says "ours" but the process behind it is not: the peer's credentials decide.
    other = os.getuid() + 4242
    accepted = anyio.Event()

    async def handler(stream: anyio.abc.SocketStream) -> None:
        accepted.set()
        await anyio.sleep_forever()

    with anyio.fail_after(10):
        async with raw_server(path, handler):
            os.chown(path, other, -1)
            async with AgentSocketClient(path, 5.0, uid=other) as client:
                with pytest.raises(UntrustedSocket, match="runs as uid"):
                    await client.ping()
            # Tear the server down only once it took the connection: cancelling anyio's
            # accept() while a connection is pending trips an asyncio InvalidStateError.
            await accepted.wait()


def test_check_socket_and_identity(path: Path) -> None:
    assert socket_identity(path) is None
    with socket.socket(socket.AF_UNIX) as bound:
        bound.bind(str(path))
        check_socket(path, os.getuid())
        info = os.lstat(path)
        assert socket_identity(path) == (info.st_dev, info.st_ino, info.st_ctime_ns)


async def test_a_trickled_answer_is_cut_at_the_calls_deadline(path: Path) -> None:
    # A Message frame announcing 4 MiB, its bytes sent one by one: a read gets data each time,
    # so only a deadline for the whole call (not one per read) ends it.
    async def handler(stream: anyio.abc.SocketStream) -> None:
        await read_exactly(stream, len(PING_CALL))
        await stream.send(b"\x05\x01\x02\x80\x80\x80\x02")
        async for byte in more:
            await stream.send(byte)
        await anyio.sleep_forever()

    send_more, more = anyio.create_memory_object_stream[bytes](0)
    clock = ManualClock()
    failed: list[BaseException] = []
    with anyio.fail_after(10):
        async with (
            send_more,
            more,
            raw_server(path, handler),
            AgentSocketClient(path, 0.2, clock=clock) as client,
            anyio.create_task_group() as group,
        ):

            async def call() -> None:
                try:
                    await client.ping()
                except TransportError as exc:
                    failed.append(exc)

            group.start_soon(call)
            for _ in range(3):
                await send_more.send(b"x")  # taken by the server: it was reading for more
                await anyio.wait_all_tasks_blocked()
                clock.advance(0.06)
            assert failed == [], "data kept coming, and the deadline is not yet there"
            assert await clock.advance_to_next() == pytest.approx(0.2)
    assert len(failed) == 1
    assert "no answer within 0.2 s" in str(failed[0])
