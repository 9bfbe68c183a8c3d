"""Explicit reports: `python -m agent report STATE "summary"` and the daemon's report socket.

The agent's own hooks call the report command; it hands the report to the running daemon over a
Unix socket so that one writer applies the reporting rules (an explicit complete is not then
overwritten by idle, nothing is sent twice). The socket lives in a directory only the daemon's
user can enter (systemd's RuntimeDirectory, `$XDG_RUNTIME_DIR/coder-task-agent`, or
`/tmp/coder-task-agent-UID` created 0700), is itself mode 0600, and the daemon also checks the
peer's uid. This module is the server; the client (`report`, `snapshot`) is
`agent.reportclient`, which also holds the protocol and the trust checks both sides share.

Protocol: one JSON line each way. Request `{"state": ..., "message": ..., "uri": ...}`;
answer `{"ok": true}` or `{"ok": false, "error": "..."}`. `{"request": "snapshot"}` runs the
daemon's stop-path upload now (`_serve_snapshot`).
"""

from __future__ import annotations

import json
import os
import socket
import stat
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import structlog

from agent.errors import ConfigError, UsageError
from agent.models import AppStatus
from agent.reportclient import make_private_dir, parse_report

log = structlog.get_logger("agent.control")

# A report is a state, 160 bytes of message and a URI: 16 KiB is generous.
MAX_REQUEST_BYTES = 16 * 1024
REQUEST_TIMEOUT = 2.0
# `snapshot` asks the daemon to save the conversation now: an async callable returning the
# stop path's outcome word and exit code (see `_serve_snapshot`).
SnapshotNow = Callable[[], Awaitable[tuple[str, int]]]


def prepare_socket_dir(path: Path) -> None:
    """Create the socket's directory (0700) or check that an existing one is private to us.

    The same checks as the client's (`agent.reportclient`), none following a symlink.
    """
    try:
        make_private_dir(path.parent)
    except ConfigError:
        raise
    except OSError as exc:
        raise ConfigError(
            "CODER_TASK_AGENT_SOCKET", f"cannot use {str(path.parent)!r}: {exc}"
        ) from None


async def serve_reports(
    path: Path,
    on_report: Callable[[AppStatus], None],
    *,
    on_snapshot: SnapshotNow | None = None,
    on_hook_report: Callable[[AppStatus], None] | None = None,
    task_status: anyio.abc.TaskStatus[Path] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on `path` until cancelled, handing each valid report to `on_report`.

    A report marked `"source": "hook"` (from `hook claude-code` / `hook codex`) goes to
    `on_hook_report` instead, when given: the rules treat a hook's idle differently.

    A snapshot request runs `on_snapshot` (refused when None) and answers with its exit code.
    """
    _prepare(path)
    old_mask = os.umask(0o177)
    try:
        listener = await anyio.create_unix_listener(path)
    finally:
        os.umask(old_mask)
    try:
        async with listener:
            os.chmod(path, 0o600)
            task_status.started(path)
            await listener.serve(
                lambda stream: _handle(stream, on_report, on_snapshot, on_hook_report)
            )
    finally:
        _remove(path)


def _prepare(path: Path) -> None:
    prepare_socket_dir(path)
    if stat.S_ISSOCK(_lstat_mode(path)):
        path.unlink()  # left over from a process that is gone (we hold the private directory)


def _lstat_mode(path: Path) -> int:
    try:
        return os.lstat(path).st_mode
    except FileNotFoundError:
        return 0


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


async def _handle(
    stream: anyio.abc.SocketStream,
    on_report: Callable[[AppStatus], None],
    on_snapshot: SnapshotNow | None = None,
    on_hook_report: Callable[[AppStatus], None] | None = None,
) -> None:
    async with stream:
        try:
            peer_uid = _peer_uid(stream)
            if peer_uid not in (os.getuid(), 0):
                log.warning("report_refused", reason="peer is another user", peer_uid=peer_uid)
                await _reply(stream, {"ok": False, "error": "permission denied"})
                return
            with anyio.fail_after(REQUEST_TIMEOUT):
                raw = await _read_line(stream)
            if _is_snapshot_request(raw):
                await _serve_snapshot(stream, on_snapshot)
                return
            status, from_hook = _parse_request(raw)
        except (ValueError, UsageError, TimeoutError) as exc:
            log.warning("report_refused", reason=str(exc) or type(exc).__name__)
            await _reply(stream, {"ok": False, "error": str(exc) or "timed out"})
            return
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return
        source = "hook" if from_hook else "report"
        log.info("report_received", state=str(status.state), message=status.message, source=source)
        (on_hook_report if from_hook and on_hook_report is not None else on_report)(status)
        await _reply(stream, {"ok": True})


# -- "snapshot now": `python -m agent snapshot` with a daemon running ----------------------


def _is_snapshot_request(raw: bytes) -> bool:
    try:
        request = json.loads(raw)
    except (ValueError, RecursionError):
        return False
    return isinstance(request, dict) and request.get("request") == "snapshot"


async def _serve_snapshot(stream: anyio.abc.SocketStream, on_snapshot: SnapshotNow | None) -> None:
    """Run the daemon's stop-path upload now and answer with its outcome.

    The peer was checked like any report's. The daemon's own deadline bounds the run.
    """
    if on_snapshot is None:
        await _reply(stream, {"ok": False, "error": "this daemon cannot snapshot on request"})
        return
    log.info("snapshot_requested")
    outcome, code = await on_snapshot()
    await _reply(stream, {"ok": True, "outcome": outcome, "exit_code": code})


def _parse_request(raw: bytes) -> tuple[AppStatus, bool]:
    """The report, and whether it came from the agent's hooks (`"source": "hook"`)."""
    request = json.loads(raw)
    if not isinstance(request, dict):
        raise UsageError("request", "must be a JSON object")
    status = parse_report(
        _field(request, "state"), _field(request, "message"), _field(request, "uri")
    )
    return status, request.get("source") == "hook"


def _field(request: dict[str, Any], key: str) -> str:
    value = request.get(key, "")
    if not isinstance(value, str):
        raise UsageError(key, "must be a string")
    return value


def _peer_uid(stream: anyio.abc.SocketStream) -> int:
    sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


async def _read_line(stream: anyio.abc.ByteReceiveStream) -> bytes:
    data = bytearray()
    while b"\n" not in data:
        try:
            chunk = await stream.receive(4096)
        except anyio.EndOfStream:
            break
        data += chunk
        if len(data) > MAX_REQUEST_BYTES:
            raise ValueError("request too large")
    return bytes(data.split(b"\n", 1)[0])


async def _reply(stream: anyio.abc.ByteSendStream, answer: dict[str, object]) -> None:
    try:
        await stream.send(json.dumps(answer).encode() + b"\n")
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        return
