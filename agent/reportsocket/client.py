"""The client side of the report socket: `report` and `snapshot` handed to a running daemon.

Standard library only: hooks run `report` at every step, and httpx, pydantic, structlog, anyio and
tenacity cost ten times the whole exchange (bench/README.md). `_socket` stands in for `socket`
(whose enums and `selectors` cost a third of Python's start), `trust.peer_credentials` for
`struct`. Only a checked socket is trusted (docs/report.md); a report goes straight to Coder
(`agent.direct`) when no daemon listens or the socket is untrusted, never after a daemon took it.

Protocol: one JSON line each way. Report `{"state", "message", "uri"}` (and `"source": "hook"`),
answer `{"ok": true}` or `{"ok": false, "error": "..."}`; `{"request": "snapshot"}`, answer
`{"ok": true, "outcome": "uploaded", "exit_code": 0}`.
"""

from __future__ import annotations

import _socket
import json
import os
import stat
import time

from agent.errors import UsageError
from agent.log import Writer, mask
from agent.models import AppState, AppStatus, ExitCode
from agent.reportsocket.trust import Untrusted, open_private_dir, peer_of

# A plain constant that type checkers treat as true: `typing` is not imported on this path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from agent.config import Settings

# How long the daemon has to answer a report: it only queues it, so this is generous.
REQUEST_TIMEOUT = 2.0
# A snapshot request waits for the daemon's whole stop-path upload: its budget plus this.
SNAPSHOT_MARGIN = 2.0
# An answer is a few words and an exit code.
MAX_LINE_BYTES = 16 * 1024
# A report's URI in UTF-8 bytes, one limit on every path (no report delivered one way and refused
# the other). Browsers and proxies treat URLs past 8 KiB as broken; a PR link is far shorter.
MAX_URI_BYTES = 8192
_NEEDS_SUMMARY = (AppState.COMPLETE, AppState.FAILED)
# AF_UNIX paths are limited to 108 bytes including the terminating NUL.
_SUN_PATH_MAX = 107


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
    size = len(uri.encode("utf-8", "surrogatepass"))
    if size > MAX_URI_BYTES:
        # Not echoed: it is long, and a URI may carry a token of its own.
        raise UsageError("--uri", f"is {size} bytes long; at most {MAX_URI_BYTES}")
    if uri and not uri.startswith(("http://", "https://")):
        raise UsageError("--uri", f"must be an http(s) URL; got {uri!r}")
    return AppStatus(app_state, summary, uri)


class NoDaemon(Exception):
    """Nothing listens at the socket path: the direct path is safe (no duplicate possible)."""


class Unanswered(Exception):
    """A daemon took the request (or holds the socket) but gave no usable answer."""


def _connect(path: str, timeout: float) -> _socket.socket:
    """A connected socket to the daemon at `path`, every check passed."""
    parent, name = os.path.split(os.path.abspath(path))
    try:
        fd = open_private_dir(parent)
    except FileNotFoundError:
        raise NoDaemon(f"{parent!r} does not exist") from None
    except OSError as exc:
        raise Unanswered(f"cannot open {parent!r}: {exc.strerror}") from None
    try:
        try:
            info = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            raise NoDaemon(f"no socket at {path!r}") from None
        if not stat.S_ISSOCK(info.st_mode):
            raise Untrusted(f"{path!r} is not a socket (a symlink is not followed)")
        if info.st_uid not in (os.getuid(), 0):
            raise Untrusted(f"{path!r} belongs to another user (uid {info.st_uid})")
        # Through the directory already checked: nothing can be swapped in between.
        through = f"/proc/self/fd/{fd}/{name}"
        usable = len(through) <= _SUN_PATH_MAX and os.path.isdir("/proc/self/fd")
        address = through if usable else path
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except OSError as exc:
            sock.close()
            if isinstance(exc, (FileNotFoundError, ConnectionRefusedError)):
                raise NoDaemon(f"nothing listens on {path!r}") from None
            if isinstance(exc, TimeoutError):
                raise Unanswered(f"the daemon did not accept within {timeout:g} s") from None
            raise Unanswered(f"cannot connect to {path!r}: {exc.strerror}") from None
    finally:
        os.close(fd)
    peer_uid = peer_of(sock)[1]
    if peer_uid not in (os.getuid(), 0):
        sock.close()
        raise Untrusted(f"{path!r} is served by another user (uid {peer_uid})")
    return sock


def exchange(
    path: str | os.PathLike[str], request: Mapping[str, object], timeout: float
) -> dict[str, Any]:
    """Send one request line to the daemon at `path` and return its answer, all within `timeout`.

    Raises NoDaemon, Untrusted, or Unanswered (the daemon may still act on the request).
    """
    deadline = time.monotonic() + timeout
    sock = _connect(os.fspath(path), timeout)
    try:  # `_socket.socket` is no context manager
        try:
            # What the connect left: a slow accept and a daemon not reading share one deadline.
            sock.settimeout(max(deadline - time.monotonic(), 1e-6))
            sock.sendall(json.dumps(request).encode() + b"\n")
            data = bytearray()
            while b"\n" not in data and len(data) <= MAX_LINE_BYTES:
                # One overall deadline, not one per read: a trickling answer cannot stretch it.
                sock.settimeout(max(deadline - time.monotonic(), 1e-6))
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            raise Unanswered(f"no answer from the daemon within {timeout:g} s") from None
        except OSError as exc:
            raise Unanswered(f"the daemon dropped the connection ({exc.strerror})") from None
    finally:
        sock.close()
    try:
        answer = json.loads(bytes(data.split(b"\n", 1)[0]))
    except (ValueError, RecursionError):
        answer = None
    if not isinstance(answer, dict):
        raise Unanswered("the daemon's answer is not a JSON object")
    return answer


def report(
    settings: Settings,
    status: AppStatus,
    *,
    timeout: float = REQUEST_TIMEOUT,
    writer: Writer | None = None,
    source: str = "report",
    within: float | None = None,
) -> ExitCode:
    """Deliver a report to the running daemon, or straight to Coder when none listens.

    The outcome is the exit code, logged once; raises ConfigError only when the direct path needs
    a setting. `within` bounds the whole call in seconds (a hook's budget).
    """
    end = None if within is None else time.monotonic() + within
    if within is not None:
        timeout = max(min(timeout, within), 1e-3)
    out = writer if writer is not None else Writer.for_settings(settings)
    for warning in settings.warnings:
        out.warning("configuration_warning", problem=warning)
    path = settings.socket_path
    reason = "no report socket configured"
    if path is not None:
        request = {"state": status.state.value, "message": status.message, "uri": status.uri}
        if source != "report":
            # `hook`: the daemon's rules let a hook's idle yield to an explicit complete.
            request["source"] = source
        try:
            answer = exchange(path, request, timeout)
        except NoDaemon as exc:
            reason = str(exc)
        except Untrusted as exc:
            out.warning("report_socket_untrusted", error=exc.problem, socket=os.fspath(path))
            reason = "the report socket is not trusted"
        except Unanswered as exc:
            out.error(
                "report_unconfirmed",
                error=str(exc),
                socket=os.fspath(path),
                note="the daemon may still deliver it; not sent a second time",
            )
            return ExitCode.UNDELIVERED
        else:
            if answer.get("ok") is True:
                out.debug("report_handed_to_daemon", state=status.state.value)
                return ExitCode.OK
            error = mask(str(answer.get("error", "")), out.secrets, limit=300)
            out.error("report_refused", error=error)
            return ExitCode.REJECTED
    # Not a line of its own: the direct path's one outcome line says it (`no_daemon`).
    out.debug("report_direct", reason=reason)
    from agent.direct import report_once  # noqa: PLC0415 - the heavy path, only when needed

    full = settings.full()
    left = None if end is None else end - time.monotonic()
    return report_once(full, status, from_hook=source == "hook", no_daemon=reason, within=left)


def snapshot(
    settings: Settings, *, timeout: float | None = None, writer: Writer | None = None
) -> ExitCode | None:
    """The exit code of the running daemon's stop-path upload, run now; None when no daemon
    listens or its socket is untrusted (the caller's one-shot upload just replaces the last)."""
    out = writer if writer is not None else Writer.for_settings(settings)
    path = settings.socket_path
    if path is None:
        return None
    wait = settings.shutdown_budget + SNAPSHOT_MARGIN if timeout is None else timeout
    try:
        answer = exchange(path, {"request": "snapshot"}, wait)
    except NoDaemon:
        return None
    except Untrusted as exc:
        out.warning("report_socket_untrusted", error=exc.problem, socket=os.fspath(path))
        return None
    except Unanswered as exc:
        out.error("snapshot_unconfirmed", error=str(exc), socket=os.fspath(path))
        return ExitCode.UNDELIVERED
    code = answer.get("exit_code")
    outcome = str(answer.get("outcome", ""))[:40]
    if answer.get("ok") is not True or not isinstance(code, int) or isinstance(code, bool):
        error = mask(str(answer.get("error", "")), out.secrets, limit=300)
        out.error("snapshot_refused", error=error)
        return ExitCode.REJECTED
    try:
        exit_code = ExitCode(code)
    except ValueError:
        out.error("snapshot_refused", error=f"unknown exit code {code}")
        return ExitCode.REJECTED
    level = out.info if exit_code is ExitCode.OK else out.error
    level("snapshot_by_daemon", outcome=outcome, exit_code=int(exit_code))
    return exit_code
