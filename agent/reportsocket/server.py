"""Explicit reports: `python -m agent report STATE "summary"` and the daemon's report socket.

The agent's own hooks call the report command; it hands the report to the running daemon over a
Unix socket so that one writer applies the reporting rules (an explicit complete is not then
overwritten by idle, nothing is sent twice). The socket lives in a directory only the daemon's
user can enter (systemd's RuntimeDirectory, `$XDG_RUNTIME_DIR/coder-task-agent`, or
`/tmp/coder-task-agent-UID` created 0700), is itself mode 0600, and the daemon also checks the
peer's uid. This module is the server; the client (`report`, `snapshot`) is
`agent.reportsocket.client`, which also holds the protocol and the trust checks both sides share.

Protocol: one JSON line each way. Request `{"state": ..., "message": ..., "uri": ...}`;
answer `{"ok": true}` or `{"ok": false, "error": "..."}`. `{"request": "snapshot"}` runs the
daemon's stop-path upload now (`_serve_snapshot`).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import structlog

from agent.clock import SYSTEM_CLOCK, Clock
from agent.errors import ConfigError, UsageError
from agent.models import AppStatus
from agent.reportsocket import SOCKET_VARIABLE
from agent.reportsocket.client import parse_report
from agent.reportsocket.trust import make_private_dir, peer_of
from agent.retry import ACCEPT_BACKOFF

log = structlog.get_logger("agent.reportsocket.server")

# A report is a state, 160 bytes of message and a URI of at most 8 KiB (MAX_URI_BYTES), written
# as JSON with ASCII escapes: at worst three times its UTF-8 size (a 3-byte character becomes a
# 6-character escape). 64 KiB holds any valid report; memory stays bounded per client.
MAX_REQUEST_BYTES = 64 * 1024
REQUEST_TIMEOUT = 2.0
# `snapshot` asks the daemon to save the conversation now: an async callable returning the
# stop path's outcome word and exit code (see `_serve_snapshot`).
SnapshotNow = Callable[[], Awaitable[tuple[str, int]]]
# Clients served at once; more wait in the listen backlog (a report takes milliseconds).
MAX_CLIENTS = 32
# A check that something listens on an existing socket: a live daemon answers at once.
PROBE_TIMEOUT = 1.0


def prepare_socket_dir(path: Path) -> None:
    """Create the socket's directory (0700) or check that an existing one is private to us.

    The same checks as the client's (`agent.reportsocket.trust`), none following a symlink.
    """
    try:
        make_private_dir(path.parent)
    except ConfigError:
        raise
    except OSError as exc:
        raise ConfigError(SOCKET_VARIABLE, f"cannot use {str(path.parent)!r}: {exc}") from None


def check_socket_free(path: Path) -> None:
    """Raise SocketInUse when a live daemon serves `path` (a stale socket is not an error).

    Run at start, before anything else, so a second daemon refuses to start instead of taking
    the socket over; `serve_reports` repeats the check under its lock.
    """
    prepare_socket_dir(path)
    lock = _lock(path)
    os.close(lock)
    _check_existing(path)


async def serve_reports(
    path: Path,
    on_report: Callable[[AppStatus], None],
    *,
    on_snapshot: SnapshotNow | None = None,
    on_hook_report: Callable[[AppStatus], None] | None = None,
    clock: Clock = SYSTEM_CLOCK,
    task_status: anyio.abc.TaskStatus[Path] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on `path` until cancelled, handing each valid report to `on_report`.

    A report marked `"source": "hook"` (from `hook claude-code` / `hook codex`) goes to
    `on_hook_report` instead, when given: the rules treat a hook's idle differently.

    A snapshot request runs `on_snapshot` (refused when None) and answers with its exit code.

    Raises SocketInUse when another live daemon serves `path`; a socket left by a daemon that
    is gone is replaced. Nothing a client does ends the server: a failing client is logged and
    dropped, a failing accept (EMFILE: descriptors exhausted) backs off and goes on. Request
    timeouts and backoffs are on `clock`.
    """
    prepare_socket_dir(path)
    # Held for the server's life: the kernel releases it when the process dies, however it
    # dies, so "locked" means "a live daemon" and a killed daemon leaves nothing to clean up.
    lock = _lock(path)
    try:
        _check_existing(path)
        old_mask = os.umask(0o177)
        try:
            listener = await anyio.create_unix_listener(path)
        finally:
            os.umask(old_mask)
        ours = os.lstat(path).st_ino
        try:
            async with listener:
                # Not follow_symlinks=False: glibc before 2.32 refuses that even for a socket; the
                # path was bound by us a moment ago in our private directory.
                os.chmod(path, 0o600)
                task_status.started(path)
                await _accept_loop(
                    listener,
                    lambda stream: _handle(stream, on_report, on_snapshot, on_hook_report, clock),
                    clock,
                )
        finally:
            _remove(path, ours)
    finally:
        os.close(lock)


class SocketInUse(ConfigError):
    """Another live daemon serves the report socket; this one must not take it over."""

    def __init__(self, path: Path, pid: int | None) -> None:
        owner = f"daemon (pid {pid})" if pid else "daemon"
        super().__init__(
            SOCKET_VARIABLE,
            f"{str(path)!r} is served by another running {owner}; stop it first, "
            "or give this one another socket",
        )
        self.path = path
        self.pid = pid


def _lock(path: Path) -> int:
    """Take the socket's lock file (beside it, never through a link); raises SocketInUse."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise ConfigError(SOCKET_VARIABLE, f"cannot use {str(lock_path)!r}: {exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _read_pid(fd)
        os.close(fd)
        raise SocketInUse(path, pid) from None
    except OSError as exc:
        os.close(fd)
        raise ConfigError(SOCKET_VARIABLE, f"cannot lock {str(lock_path)!r}: {exc}") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isascii() and text.isdigit() else None


def _check_existing(path: Path) -> None:
    """Remove a stale socket at `path`; refuse a live one, a link or anything else."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise ConfigError(SOCKET_VARIABLE, f"{str(path)!r} is a symbolic link; not replacing it")
    if not stat.S_ISSOCK(info.st_mode):
        raise ConfigError(SOCKET_VARIABLE, f"{str(path)!r} exists and is not a socket")
    live, pid = _probe(path)
    if live:
        # Served by a process that does not hold the lock (an older daemon): still not ours.
        raise SocketInUse(path, pid)
    path.unlink(missing_ok=True)  # left by a daemon that is gone


def _probe(path: Path) -> tuple[bool, int | None]:
    """Whether something accepts connections on `path`, and its pid when the kernel says."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(PROBE_TIMEOUT)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return False, None
        except OSError:
            return True, None  # a full backlog or a timeout: a live but busy server
        pid = peer_of(probe)[0]
        return True, pid or None


def _remove(path: Path, inode: int) -> None:
    """Remove the socket if it is still the one this server bound (never another's)."""
    try:
        if os.lstat(path).st_ino == inode:
            path.unlink()
    except FileNotFoundError:
        return


async def _accept_loop(
    listener: anyio.abc.SocketListener,
    handle: Callable[[anyio.abc.SocketStream], Awaitable[None]],
    clock: Clock,
) -> None:
    # At most MAX_CLIENTS connections are served at once; the others wait in the kernel's
    # backlog, so clients holding connections cannot take every descriptor of the daemon.
    slots = anyio.Semaphore(MAX_CLIENTS)
    failures = 0
    async with anyio.create_task_group() as group:
        while True:
            await slots.acquire()
            try:
                stream = await listener.accept()
            except (OSError, anyio.BrokenResourceError) as exc:
                # anyio wraps accept()'s OSError (EMFILE, ENFILE, ENOBUFS...) in
                # BrokenResourceError; the listening socket itself is still fine.
                slots.release()
                failures += 1
                if failures == 1:
                    cause = exc.__cause__ or exc
                    log.error("report_accept_failed", error=f"{type(cause).__name__}: {cause}")
                await clock.sleep(ACCEPT_BACKOFF.wait(failures))
                continue
            if failures:
                log.info("report_accept_recovered", failures=failures)
                failures = 0
            group.start_soon(_serve_client, stream, handle, slots)


async def _serve_client(
    stream: anyio.abc.SocketStream,
    handle: Callable[[anyio.abc.SocketStream], Awaitable[None]],
    slots: anyio.Semaphore,
) -> None:
    """One client, supervised: whatever it sends, the server goes on."""
    try:
        await handle(stream)
    except Exception as exc:  # noqa: BLE001 - a bad client is dropped, never the server's end
        # The type only: the text or a traceback could carry the client's bytes.
        log.warning("report_client_failed", error=type(exc).__name__)
    finally:
        slots.release()


async def _handle(
    stream: anyio.abc.SocketStream,
    on_report: Callable[[AppStatus], None],
    on_snapshot: SnapshotNow | None = None,
    on_hook_report: Callable[[AppStatus], None] | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> None:
    async with stream:
        try:
            peer_uid = _peer_uid(stream)
            if peer_uid not in (os.getuid(), 0):
                log.warning("report_refused", reason="peer is another user", peer_uid=peer_uid)
                await _reply(stream, {"ok": False, "error": "permission denied"})
                return
            with clock.fail_after(REQUEST_TIMEOUT):
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
    try:
        request = json.loads(raw)
    except RecursionError:
        # Deeply nested JSON under the size limit: json raises this, not a ValueError.
        raise ValueError("request nested too deeply") from None
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
    return peer_of(stream.extra(anyio.abc.SocketAttribute.raw_socket))[1]


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
