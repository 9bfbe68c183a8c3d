"""Explicit reports: argument checks, the socket's privacy, malformed requests."""

from __future__ import annotations

import errno
import functools
import os
import socket
import stat
from pathlib import Path

import anyio
import anyio.abc
import anyio.to_thread
import pytest
from structlog.testing import capture_logs

from agent.errors import ConfigError, UsageError
from agent.models import AppState, AppStatus
from agent.reportsocket.client import MAX_URI_BYTES, exchange, parse_report
from agent.reportsocket.server import (
    MAX_CLIENTS,
    MAX_REQUEST_BYTES,
    REQUEST_TIMEOUT,
    SocketInUse,
    _accept_loop,
    check_socket_free,
    prepare_socket_dir,
    serve_reports,
)
from tests.fakes import wait_until
from tests.manualclock import ManualClock
from tests.socketclient import request, send_to_daemon

pytestmark = pytest.mark.anyio


def test_parse_report_accepts_the_four_states() -> None:
    assert parse_report("failed", "Tests fail", "https://ci/1") == AppStatus(
        AppState.FAILED, "Tests fail", "https://ci/1"
    )
    assert parse_report("WORKING", "") == AppStatus(AppState.WORKING, "")


@pytest.mark.parametrize(
    ("state", "summary", "uri", "argument"),
    [
        ("done", "x", "", "state"),
        ("failure", "x", "", "state"),
        ("complete", "  ", "", "summary"),
        ("failed", "", "", "summary"),
        ("idle", "x", "javascript:alert(1)", "--uri"),
        ("idle", "x", "https://example.com/" + "a" * 8200, "--uri"),
    ],
)
def test_parse_report_refuses_bad_input(state: str, summary: str, uri: str, argument: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_report(state, summary, uri)
    assert caught.value.variable == argument


def test_socket_dir_must_be_private(tmp_path: Path) -> None:
    private = tmp_path / "private" / "report.sock"
    prepare_socket_dir(private)
    assert stat.S_IMODE(private.parent.stat().st_mode) == 0o700
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    with pytest.raises(ConfigError, match="writable by other users"):
        prepare_socket_dir(shared / "report.sock")


async def test_socket_round_trip_and_permissions(tmp_path: Path) -> None:
    path = tmp_path / "run" / "report.sock"
    received: list[AppStatus] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            await group.start(serve_reports, path, received.append)
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            status = AppStatus(AppState.COMPLETE, "Done", "https://x/1")
            assert await send_to_daemon(path, status) == {"ok": True}
            group.cancel_scope.cancel()
    assert received == [status]
    assert not path.exists()


async def test_the_longest_uri_the_report_command_takes_reaches_the_daemon(
    tmp_path: Path,
) -> None:
    # The parser's limit and the socket's agree: the longest URI `parse_report` takes, in the
    # characters JSON escapes most, still arrives (the direct path would have sent it too).
    room = MAX_URI_BYTES - len("https://example.com/")
    uri = "https://example.com/" + "\u20ac" * (room // 3)
    status = parse_report("idle", "\u20ac" * 200, uri)
    path = tmp_path / "run" / "report.sock"
    received: list[AppStatus] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            await group.start(serve_reports, path, received.append)
            request = {"state": status.state.value, "message": status.message, "uri": status.uri}
            answer = await anyio.to_thread.run_sync(exchange, path, request, 2.0)
            group.cancel_scope.cancel()
    assert answer == {"ok": True}
    assert received == [status]


@pytest.mark.parametrize(
    ("request_bytes", "words"),
    [
        (b"not json\n", "Expecting value"),
        (b"[1, 2]\n", "JSON object"),
        (b'{"state": "done", "message": "x"}\n', "state"),
        (b'{"state": "idle", "message": 5}\n', "must be a string"),
        (b"x" * (MAX_REQUEST_BYTES + 1000), "too large"),
    ],
)
async def test_malformed_requests_are_refused(
    tmp_path: Path, request_bytes: bytes, words: str
) -> None:
    path = tmp_path / "report.sock"
    received: list[AppStatus] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            await group.start(serve_reports, path, received.append)
            stream = await anyio.connect_unix(path)
            async with stream:
                await stream.send(request_bytes)
                answer = await stream.receive()
            group.cancel_scope.cancel()
    assert b'"ok": false' in answer
    assert words.encode() in answer
    assert received == []


async def test_no_daemon_means_none(tmp_path: Path) -> None:
    assert await send_to_daemon(tmp_path / "nobody.sock", AppStatus(AppState.IDLE)) is None


async def test_a_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "report.sock"
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            await group.start(serve_reports, path, lambda status: None)
            group.cancel_scope.cancel()
        # simulate a crash that left the socket behind
        listener = await anyio.create_unix_listener(path)
        await listener.aclose()
        os.chmod(path.parent, 0o700)
        async with anyio.create_task_group() as group:
            await group.start(serve_reports, path, lambda status: None)
            assert await send_to_daemon(path, AppStatus(AppState.IDLE)) == {"ok": True}
            group.cancel_scope.cancel()


async def test_a_hook_report_goes_to_the_hook_handler(tmp_path: Path) -> None:
    path = tmp_path / "run" / "report.sock"
    explicit: list[AppStatus] = []
    hooks: list[AppStatus] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            await group.start(
                functools.partial(serve_reports, on_hook_report=hooks.append),
                path,
                explicit.append,
            )
            turn: dict[str, object] = {
                "state": "idle",
                "message": "Turn finished",
                "source": "hook",
            }
            assert await request(path, turn) == {"ok": True}
            assert await request(path, {"state": "complete", "message": "Done"}) == {"ok": True}
            group.cancel_scope.cancel()
    assert hooks == [AppStatus(AppState.IDLE, "Turn finished")]
    assert explicit == [AppStatus(AppState.COMPLETE, "Done")]


# -- a second daemon, a stale socket, links: the socket is claimed, never stolen ----------------


async def test_a_live_socket_is_not_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "run" / "report.sock"
    received: list[AppStatus] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            await group.start(serve_reports, path, received.append)
            with pytest.raises(SocketInUse) as caught:
                check_socket_free(path)
            assert caught.value.pid == os.getpid()
            assert str(path) in str(caught.value)
            assert f"pid {os.getpid()}" in str(caught.value)
            with pytest.raises(SocketInUse):
                await serve_reports(path, lambda status: None)
            # The live server still has its socket and still answers.
            assert await send_to_daemon(path, AppStatus(AppState.IDLE)) == {"ok": True}
            group.cancel_scope.cancel()
    assert received == [AppStatus(AppState.IDLE)]


async def test_a_live_socket_without_the_lock_is_not_taken_over(tmp_path: Path) -> None:
    # A server that does not hold the lock file (an older daemon): found by connecting.
    path = tmp_path / "report.sock"
    os.chmod(tmp_path, 0o700)
    with anyio.fail_after(5):
        listener = await anyio.create_unix_listener(path)
        async with listener:
            with pytest.raises(SocketInUse) as caught:
                check_socket_free(path)
    assert caught.value.pid == os.getpid()


@pytest.mark.parametrize("kind", ["symlink", "file"])
def test_something_else_at_the_socket_path_is_refused_and_kept(tmp_path: Path, kind: str) -> None:
    os.chmod(tmp_path, 0o700)
    path = tmp_path / "report.sock"
    target = tmp_path / "elsewhere"
    target.write_text("keep me")
    if kind == "symlink":
        path.symlink_to(target)
    else:
        path.write_text("keep me")
    with pytest.raises(ConfigError) as caught:
        check_socket_free(path)
    assert caught.value.variable == "CODER_TASK_AGENT_SOCKET"
    assert os.path.lexists(path)
    assert target.read_text() == "keep me"


# -- a bad client never ends the server --------------------------------------------------------


async def ask(path: Path, line: bytes) -> bytes:
    stream = await anyio.connect_unix(path)
    async with stream:
        await stream.send(line)
        answer = b""
        while not answer.endswith(b"\n"):
            try:
                answer += await stream.receive()
            except anyio.EndOfStream:
                break
        return answer


async def test_deeply_nested_json_is_refused_and_the_server_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "report.sock"
    received: list[AppStatus] = []
    nested = b"[" * 8000 + b"]" * 8000 + b"\n"  # under the size limit, deeper than json allows
    assert len(nested) < MAX_REQUEST_BYTES
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            await group.start(serve_reports, path, received.append)
            answer = await ask(path, nested)
            assert b'"ok": false' in answer
            assert b"nested too deeply" in answer
            assert await ask(path, b'{"state": "idle", "message": "after"}\n') == b'{"ok": true}\n'
            group.cancel_scope.cancel()
    assert received == [AppStatus(AppState.IDLE, "after")]


async def test_a_failing_handler_drops_that_client_only(tmp_path: Path) -> None:
    path = tmp_path / "report.sock"
    received: list[AppStatus] = []

    def on_report(status: AppStatus) -> None:
        if status.message == "boom":
            raise RuntimeError("a bug in the report handler")
        received.append(status)

    with capture_logs() as logs, anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            await group.start(serve_reports, path, on_report)
            assert await ask(path, b'{"state": "idle", "message": "boom"}\n') == b""
            assert await ask(path, b'{"state": "idle", "message": "ok"}\n') == b'{"ok": true}\n'
            group.cancel_scope.cancel()
    assert received == [AppStatus(AppState.IDLE, "ok")]
    assert [e["error"] for e in logs if e["event"] == "report_client_failed"] == ["RuntimeError"]


async def test_clients_holding_connections_do_not_block_the_next_report(tmp_path: Path) -> None:
    # More idle clients than served slots: the rest wait in the backlog until one times out
    # or leaves; here they leave, and the real report goes through.
    path = tmp_path / "report.sock"
    received: list[AppStatus] = []
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            await group.start(serve_reports, path, received.append)
            holders = [await anyio.connect_unix(path) for _ in range(MAX_CLIENTS + 5)]
            for holder in holders:
                await holder.aclose()
            assert await ask(path, b'{"state": "idle", "message": "x"}\n') == b'{"ok": true}\n'
            group.cancel_scope.cancel()
    assert received == [AppStatus(AppState.IDLE, "x")]


async def test_a_silent_client_is_refused_at_the_request_timeout_on_the_clock(
    tmp_path: Path,
) -> None:
    path = tmp_path / "report.sock"
    clock = ManualClock()
    received: list[AppStatus] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            await group.start(functools.partial(serve_reports, clock=clock), path, received.append)
            async with await anyio.connect_unix(path) as stream:
                await wait_until(lambda: clock.deadlines == 1)
                clock.advance(REQUEST_TIMEOUT * 0.9)
                await anyio.wait_all_tasks_blocked()
                assert clock.deadlines == 1, "still waiting for the request line"
                assert await clock.advance_to_next() == REQUEST_TIMEOUT
                answer = await stream.receive()
            group.cancel_scope.cancel()
    assert b'"ok": false' in answer
    assert b"timed out" in answer
    assert received == []


class FlakyListener(anyio.abc.SocketListener):
    """A real listener whose first `failures` accepts fail with EMFILE, as a full fd table does."""

    def __init__(self, real: anyio.abc.SocketListener, failures: int) -> None:
        self.real = real
        self.failures = failures
        self.accepts = 0

    async def accept(self) -> anyio.abc.SocketStream:
        self.accepts += 1
        if self.failures:
            self.failures -= 1
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        return await self.real.accept()

    async def aclose(self) -> None:
        await self.real.aclose()

    @property
    def _raw_socket(self) -> socket.socket:
        return self.real.extra(anyio.abc.SocketAttribute.raw_socket)


async def test_failing_accepts_back_off_on_the_clock_and_recover(tmp_path: Path) -> None:
    path = tmp_path / "report.sock"
    clock = ManualClock()
    served: list[int] = []

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            served.append(1)

    with capture_logs() as logs, anyio.fail_after(5):
        listener = FlakyListener(await anyio.create_unix_listener(path), failures=3)
        async with listener, anyio.create_task_group() as group:
            group.start_soon(_accept_loop, listener, handle, clock)
            for failed in range(1, 4):
                # Each failure waits its backoff on the clock; no new accept before it passed.
                await wait_until(lambda: clock.sleepers == 1)
                await anyio.wait_all_tasks_blocked()
                assert listener.accepts == failed
                await clock.advance_to_next()
            await wait_until(lambda: listener.accepts == 4)
            async with await anyio.connect_unix(path):
                await wait_until(lambda: served == [1])
            group.cancel_scope.cancel()
    events = [entry["event"] for entry in logs]
    assert events.count("report_accept_failed") == 1, "logged once per streak"
    assert "Too many open files" in next(
        entry["error"] for entry in logs if entry["event"] == "report_accept_failed"
    )
    assert events.count("report_accept_recovered") == 1


async def test_closing_refuses_new_clients_and_answers_those_connected(tmp_path: Path) -> None:
    # The daemon's stop closes the socket after its final flush: a client already connected is
    # answered (its report taken), a later one finds no daemon and reports straight to Coder.
    path = tmp_path / "report.sock"
    closing = anyio.Event()
    received: list[AppStatus] = []
    ended = anyio.Event()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:

            async def serve(*, task_status: anyio.abc.TaskStatus[Path]) -> None:
                await serve_reports(path, received.append, closing=closing, task_status=task_status)
                ended.set()

            await group.start(serve)
            async with await anyio.connect_unix(path) as early:
                await anyio.wait_all_tasks_blocked()  # taken: its handler waits for the line
                closing.set()
                await anyio.wait_all_tasks_blocked()
                with socket.socket(socket.AF_UNIX) as late, pytest.raises(ConnectionRefusedError):
                    late.connect(str(path))
                assert not ended.is_set(), "the connected client is still to be served"
                await early.send(b'{"state": "idle", "message": "Session ended"}\n')
                assert b'"ok": true' in await early.receive()
            await ended.wait()
    assert [s.message for s in received] == ["Session ended"]
    assert not path.exists()
