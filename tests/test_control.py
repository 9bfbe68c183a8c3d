"""Explicit reports: argument checks, the socket's privacy, malformed requests."""

from __future__ import annotations

import functools
import os
import stat
from pathlib import Path

import anyio
import pytest

from agent.control import prepare_socket_dir, serve_reports
from agent.errors import ConfigError, UsageError
from agent.models import AppState, AppStatus
from agent.reportclient import parse_report
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


@pytest.mark.parametrize(
    ("request_bytes", "words"),
    [
        (b"not json\n", "Expecting value"),
        (b"[1, 2]\n", "JSON object"),
        (b'{"state": "done", "message": "x"}\n', "state"),
        (b'{"state": "idle", "message": 5}\n', "must be a string"),
        (b"x" * 20_000, "too large"),
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
