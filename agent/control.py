"""Explicit reports: `python -m agent report STATE "summary"` and the daemon's report socket.

The agent's own hooks call the report command; it hands the report to the running daemon over a
Unix socket so that one writer applies the reporting rules (an explicit complete is not then
overwritten by idle, nothing is sent twice). The socket lives in a directory only the daemon's
user can enter (systemd's RuntimeDirectory, `$XDG_RUNTIME_DIR/coder-task-agent`, or
`/tmp/coder-task-agent-UID` created 0700), is itself mode 0600, and the daemon also checks the
peer's uid. With no daemon listening, the command reports straight to Coder and says so.

Protocol: one JSON line each way. Request `{"state": ..., "message": ..., "uri": ...}`;
answer `{"ok": true}` or `{"ok": false, "error": "..."}`.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import structlog

from agent.coder import CoderClient
from agent.errors import ConfigError, Rejected, RemoteError, Unsupported, UsageError
from agent.models import AppState, AppStatus, ExitCode
from agent.retry import deliver
from agent.settings import Settings

log = structlog.get_logger("agent.control")

# A report is a state, 160 bytes of message and a URI: 16 KiB is generous.
MAX_REQUEST_BYTES = 16 * 1024
REQUEST_TIMEOUT = 2.0
_NEEDS_SUMMARY = (AppState.COMPLETE, AppState.FAILED)


def parse_report(state: str, summary: str, uri: str = "") -> AppStatus:
    """Validate a report's parts; raises UsageError naming the bad one."""
    try:
        app_state = AppState(state.strip().lower())
    except ValueError:
        allowed = ", ".join(s.value for s in AppState)
        raise UsageError("state", f"must be one of {allowed}; got {state!r}") from None
    summary = summary.strip()
    if not summary and app_state in _NEEDS_SUMMARY:
        raise UsageError("summary", f"is required for {app_state.value}: say what happened")
    uri = uri.strip()
    if uri and not uri.startswith(("http://", "https://")):
        raise UsageError("--uri", f"must be an http(s) URL; got {uri!r}")
    return AppStatus(app_state, summary, uri)


def prepare_socket_dir(path: Path) -> None:
    """Create the socket's directory (0700) or check that an existing one is private to us."""
    directory = path.parent
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.stat()
    except OSError as exc:
        raise ConfigError(
            "CODER_TASK_AGENT_SOCKET", f"cannot use {str(directory)!r}: {exc}"
        ) from None
    if info.st_uid != os.getuid():
        raise ConfigError("CODER_TASK_AGENT_SOCKET", f"{str(directory)!r} belongs to another user")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            "CODER_TASK_AGENT_SOCKET", f"{str(directory)!r} is writable by other users"
        )


async def serve_reports(
    path: Path,
    on_report: Callable[[AppStatus], None],
    *,
    task_status: anyio.abc.TaskStatus[Path] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on `path` until cancelled, handing each valid report to `on_report`."""
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
            await listener.serve(lambda stream: _handle(stream, on_report))
    finally:
        _remove(path)


def _prepare(path: Path) -> None:
    prepare_socket_dir(path)
    if path.is_socket():
        path.unlink()  # left over from a process that is gone (we hold the private directory)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


async def _handle(stream: anyio.abc.SocketStream, on_report: Callable[[AppStatus], None]) -> None:
    async with stream:
        try:
            peer_uid = _peer_uid(stream)
            if peer_uid not in (os.getuid(), 0):
                log.warning("report_refused", reason="peer is another user", peer_uid=peer_uid)
                await _reply(stream, {"ok": False, "error": "permission denied"})
                return
            with anyio.fail_after(REQUEST_TIMEOUT):
                raw = await _read_line(stream)
            status = _parse_request(raw)
        except (ValueError, UsageError, TimeoutError) as exc:
            log.warning("report_refused", reason=str(exc) or type(exc).__name__)
            await _reply(stream, {"ok": False, "error": str(exc) or "timed out"})
            return
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return
        log.info("report_received", state=str(status.state), message=status.message)
        on_report(status)
        await _reply(stream, {"ok": True})


def _parse_request(raw: bytes) -> AppStatus:
    request = json.loads(raw)
    if not isinstance(request, dict):
        raise UsageError("request", "must be a JSON object")
    return parse_report(
        _field(request, "state"), _field(request, "message"), _field(request, "uri")
    )


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


async def send_to_daemon(path: Path, status: AppStatus) -> dict[str, Any] | None:
    """Hand `status` to the daemon; None when no daemon listens at `path`."""
    request = {"state": status.state.value, "message": status.message, "uri": status.uri}
    try:
        with anyio.fail_after(REQUEST_TIMEOUT):
            stream = await anyio.connect_unix(path)
            async with stream:
                await stream.send(json.dumps(request).encode() + b"\n")
                answer = json.loads(await _read_line(stream))
    except (OSError, TimeoutError, ValueError, anyio.BrokenResourceError):
        return None
    return answer if isinstance(answer, dict) else None


async def report_command(settings: Settings, status: AppStatus) -> int:
    """The `report` command: through the daemon, or straight to Coder when none listens."""
    path = settings.socket_path
    if path is not None:
        answer = await send_to_daemon(path, status)
        if answer is not None:
            if answer.get("ok") is True:
                return 0
            print(
                f"coder-task-agent: the daemon refused the report: {answer.get('error')}",
                file=sys.stderr,
            )
            return ExitCode.REJECTED
    print(
        f"coder-task-agent: no daemon listening on {path}; reporting straight to Coder",
        file=sys.stderr,
    )
    return await _report_direct(settings, status)


async def _report_direct(settings: Settings, status: AppStatus) -> int:
    from agent.transport import coder_http  # noqa: PLC0415

    url, token = settings.require_coder()
    if settings.app_slug is None:
        raise ConfigError("CODER_MCP_APP_STATUS_SLUG", "is required to report a status")
    async with coder_http(settings, url, token) as http:
        client = CoderClient(http, settings.app_slug)
        deadline = anyio.current_time() + 2 * settings.request_timeout
        try:
            await deliver(lambda: client.patch_app_status(status), deadline=deadline)
        except Unsupported as exc:
            print(f"coder-task-agent: {exc}", file=sys.stderr)
            return ExitCode.REJECTED
        except Rejected as exc:
            print(f"coder-task-agent: report not delivered: {exc}", file=sys.stderr)
            return ExitCode.REJECTED
        except RemoteError as exc:
            print(f"coder-task-agent: report not delivered: {exc}", file=sys.stderr)
            return ExitCode.UNDELIVERED
    return ExitCode.OK
