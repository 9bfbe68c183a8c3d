"""The daemon's end of the report socket: one writer applies the reporting rules to every report.

The socket lives in a directory private to the daemon's user (docs/report.md), is mode 0600, and
each peer's uid is checked. The client and the protocol: `agent.reportsocket.client`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import stat
from collections.abc import Awaitable, Callable, Coroutine
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

# A report (160 bytes of message, a URI of at most 8 KiB) in JSON with ASCII escapes is at worst
# three times its UTF-8 size: 64 KiB holds any valid one, and bounds each client's memory.
MAX_REQUEST_BYTES = 64 * 1024
REQUEST_TIMEOUT = 2.0
# Runs the stop path's upload now; returns its outcome word and exit code.
SnapshotNow = Callable[[], Awaitable[tuple[str, int]]]
# Clients served at once; more wait in the listen backlog (a report takes milliseconds).
MAX_CLIENTS = 32
# A check that something listens on an existing socket: a live daemon answers at once.
PROBE_TIMEOUT = 1.0
_FIELDS = ("state", "message", "uri")


def prepare_socket_dir(path: Path) -> None:
    """Create the socket's directory (0700) or check that an existing one is private to us."""
    try:
        make_private_dir(path.parent)
    except OSError as exc:
        raise ConfigError(SOCKET_VARIABLE, f"cannot use {str(path.parent)!r}: {exc}") from None


def check_socket_free(path: Path) -> None:
    """Raise SocketInUse when a live daemon serves `path` (run at start; a stale socket is fine)."""
    prepare_socket_dir(path)
    os.close(_lock(path))
    _check_existing(path)


async def serve_reports(
    path: Path,
    on_report: Callable[[AppStatus], None],
    *,
    on_snapshot: SnapshotNow | None = None,
    on_hook_report: Callable[[AppStatus], None] | None = None,
    clock: Clock = SYSTEM_CLOCK,
    closing: anyio.Event | None = None,
    task_status: anyio.abc.TaskStatus[Path] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on `path` until cancelled or `closing` is set, handing each valid report to
    `on_report`.

    A `"source": "hook"` report goes to `on_hook_report` when given (the rules treat a hook's idle
    differently); a snapshot request runs `on_snapshot` (refused when None). Raises SocketInUse
    when a live daemon serves `path`. A failing client is dropped, a failing accept (EMFILE) backs
    off on `clock`: nothing a client does ends the server. Once `closing` is set, a new connection
    is refused (its client reports straight to Coder) and the server returns when every client
    already connected was answered: none is cut off with its report taken but unanswered.
    """
    prepare_socket_dir(path)
    # Held for the server's life, released by the kernel however it dies: locked means alive.
    lock = _lock(path)
    try:
        _check_existing(path)
        old_mask = os.umask(0o177)  # 0600 from the bind on, not only after the chmod
        try:
            listener = await anyio.create_unix_listener(path, mode=0o600)
        finally:
            os.umask(old_mask)
        ours = os.lstat(path).st_ino
        try:
            async with listener:
                task_status.started(path)
                await _accept_loop(
                    listener,
                    lambda stream: _handle(stream, on_report, on_snapshot, on_hook_report, clock),
                    clock,
                    closing,
                )
        finally:
            with contextlib.suppress(FileNotFoundError):
                if os.lstat(path).st_ino == ours:  # still the socket we bound, never another's
                    os.unlink(path)
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
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(PROBE_TIMEOUT)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            path.unlink(missing_ok=True)  # left by a daemon that is gone
            return
        except OSError:
            raise SocketInUse(path, None) from None  # a full backlog or a timeout: busy, alive
        # Served by a process that does not hold the lock (an older daemon): still not ours.
        raise SocketInUse(path, peer_of(probe)[0] or None)


async def _accept_loop(
    listener: anyio.abc.SocketListener,
    handle: Callable[[anyio.abc.SocketStream], Awaitable[None]],
    clock: Clock,
    closing: anyio.Event | None = None,
) -> None:
    # MAX_CLIENTS at once, the rest in the kernel's backlog: held connections cannot take all fds.
    slots = anyio.Semaphore(MAX_CLIENTS)

    async def serve(stream: anyio.abc.SocketStream) -> None:
        try:
            await handle(stream)
        except Exception as exc:  # noqa: BLE001 - a bad client is dropped, never the server's end
            # The type only: the text or a traceback could carry the client's bytes.
            log.warning("report_client_failed", error=type(exc).__name__)
        finally:
            slots.release()

    async def close_when_told(accepting: anyio.CancelScope, closing: anyio.Event) -> None:
        await closing.wait()
        accepting.cancel()

    async with anyio.create_task_group() as group:  # left once every client was served
        with anyio.CancelScope() as accepting:
            if closing is not None:
                group.start_soon(close_when_told, accepting, closing)
            await _accept_until_cancelled(listener, serve, slots, clock, group)
        # Closing: connecting is refused from now on, and the clients queued before are served
        # (closing the listener would reset them, their reports taken by nobody).
        raw = listener.extra(anyio.abc.SocketAttribute.raw_socket)
        raw.shutdown(socket.SHUT_RD)
        while True:
            try:
                queued, _ = raw.accept()
            except OSError:  # BlockingIOError once none is left
                break
            await slots.acquire()
            group.start_soon(serve, await anyio.abc.UNIXSocketStream.from_socket(queued))


async def _accept_until_cancelled(
    listener: anyio.abc.SocketListener,
    serve: Callable[[anyio.abc.SocketStream], Coroutine[Any, Any, None]],
    slots: anyio.Semaphore,
    clock: Clock,
    group: anyio.abc.TaskGroup,
) -> None:
    failures = 0
    while True:
        await slots.acquire()
        try:
            stream = await listener.accept()
        except (OSError, anyio.BrokenResourceError) as exc:
            # accept()'s EMFILE, ENFILE, ENOBUFS... (anyio wraps them): the listener is fine.
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
        group.start_soon(serve, stream)


async def _handle(
    stream: anyio.abc.SocketStream,
    on_report: Callable[[AppStatus], None],
    on_snapshot: SnapshotNow | None,
    on_hook_report: Callable[[AppStatus], None] | None,
    clock: Clock,
) -> None:
    async with stream:
        try:
            peer_uid = peer_of(stream.extra(anyio.abc.SocketAttribute.raw_socket))[1]
            if peer_uid not in (os.getuid(), 0):
                log.warning("report_refused", reason="peer is another user", peer_uid=peer_uid)
                await _reply(stream, {"ok": False, "error": "permission denied"})
                return
            with clock.fail_after(REQUEST_TIMEOUT):
                request, status = _parse_request(await _read_line(stream))
            if status is None:
                await _serve_snapshot(stream, on_snapshot)
                return
        except (ValueError, UsageError, TimeoutError) as exc:
            log.warning("report_refused", reason=str(exc) or type(exc).__name__)
            await _reply(stream, {"ok": False, "error": str(exc) or "timed out"})
            return
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return
        from_hook = request.get("source") == "hook"
        source = "hook" if from_hook else "report"
        log.info("report_received", state=str(status.state), message=status.message, source=source)
        (on_hook_report if from_hook and on_hook_report is not None else on_report)(status)
        await _reply(stream, {"ok": True})


def _parse_request(raw: bytes) -> tuple[dict[str, Any], AppStatus | None]:
    """The request, and its report unless it asks for a snapshot."""
    try:
        request = json.loads(raw)
    except RecursionError:
        # Deeply nested JSON under the size limit: json raises this, not a ValueError.
        raise ValueError("request nested too deeply") from None
    if not isinstance(request, dict):
        raise UsageError("request", "must be a JSON object")
    if request.get("request") == "snapshot":
        return request, None
    for key in _FIELDS:
        if not isinstance(request.get(key, ""), str):
            raise UsageError(key, "must be a string")
    return request, parse_report(*(request.get(key, "") for key in _FIELDS))


async def _serve_snapshot(stream: anyio.abc.SocketStream, on_snapshot: SnapshotNow | None) -> None:
    """`python -m agent snapshot` with a daemon running; the daemon's own deadline bounds it."""
    if on_snapshot is None:
        await _reply(stream, {"ok": False, "error": "this daemon cannot snapshot on request"})
        return
    log.info("snapshot_requested")
    outcome, code = await on_snapshot()
    await _reply(stream, {"ok": True, "outcome": outcome, "exit_code": code})


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
