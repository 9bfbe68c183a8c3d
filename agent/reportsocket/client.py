"""The client side of the report socket: `report` and `snapshot` handed to a running daemon.

Why a module of its own, importing the standard library only: agent hooks run `report` at every
step of a turn and `snapshot` at every stop, so the path that hands a request to a running
daemon must cost about what starting Python costs. Importing httpx, pydantic, structlog, anyio
and tenacity takes ten times longer than the whole exchange; none of them is imported here.
Nor are the standard library's wrappers that cost more than this path uses of them: `socket`
(`_socket` instead) and `struct` (`peer_credentials`). `json` is imported (and `re` with it): a
hand-written twin saved a few milliseconds and was a second JSON implementation to keep right.
Only when no daemon listens does a command take the direct path (`agent.direct`), which
imports what it needs and logs through the redacting structlog logger.

Trust nothing not checked (on a shared `/tmp` another user can pre-create the socket's
directory or re-point a symlink and swallow every report):
- the socket's directory is opened with O_NOFOLLOW and must belong to us (or root) and be
  writable by no one else; every directory above it must belong to us or root (a world-writable
  one only with the sticky bit, as `/tmp`), and a symlink above it is followed only when root
  owns it (`/var/run`): nobody else could have made it;
- the socket itself is looked at without following links, must be a socket owned by us or
  root, and is reached through the directory already opened, so nothing can be swapped between
  the check and the connect; the listening peer's uid (SO_PEERCRED) must be ours or root.
An untrusted socket is refused and logged; the report then goes straight to Coder (the daemon,
meeting the same directory, also refuses to listen there and sends reports itself).

No duplicates: the direct path is taken only when no daemon is listening (the socket or its
directory does not exist, or the connect is refused: ENOENT, ECONNREFUSED). A daemon that
accepted the request but does not answer in time may still deliver it, so the command then
exits UNDELIVERED (5) and says so, and does not send it a second time.

Protocol: one JSON line each way. Report `{"state": ..., "message": ..., "uri": ...}`, answer
`{"ok": true}` or `{"ok": false, "error": "..."}`. Snapshot `{"request": "snapshot"}`, answer
`{"ok": true, "outcome": "uploaded", "exit_code": 0}`.

Output goes through a tiny redacting writer that prints exactly what the structlog set-up in
`agent.logconfig` prints (JSON lines, or the console rendering on a terminal), token masked.
"""

from __future__ import annotations

# `_socket`, not `socket`: the module `socket` is a wrapper that converts the constants into
# enums (AddressFamily, SocketKind...) and imports `selectors` at import time; that cost as much
# as a third of starting the interpreter, for nothing this path uses. `_socket.socket` is the
# very type `socket.socket` subclasses, with the same methods and errors.
import _socket
import errno
import json
import os
import stat
import sys
import time

from agent.errors import ConfigError, UsageError
from agent.hookconfig import HookSettings
from agent.models import AppState, AppStatus, ExitCode
from agent.redaction import scrub

# A plain constant that type checkers treat as true: `typing` is not imported on this path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, ClassVar, TextIO

    from agent.settings import Settings

# How long the daemon has to answer a report: it only queues it, so this is generous.
REQUEST_TIMEOUT = 2.0
# A snapshot request waits for the daemon's whole stop-path upload: its budget plus this.
SNAPSHOT_MARGIN = 2.0
# An answer is a few words and an exit code (the daemon's request limit is control's).
MAX_LINE_BYTES = 16 * 1024
# A report's URI, in UTF-8 bytes: the same limit on every path (the report socket, straight to
# Coder), so that no report is delivered one way and refused the other. Browsers and proxies
# treat URLs past 8 KiB as broken; a link to a pull request or a preview is far shorter.
MAX_URI_BYTES = 8192
SOCKET_VARIABLE = "CODER_TASK_AGENT_SOCKET"
_NEEDS_SUMMARY = (AppState.COMPLETE, AppState.FAILED)
# AF_UNIX paths are limited to 108 bytes including the terminating NUL.
_SUN_PATH_MAX = 107
# SO_PEERCRED answers a `struct ucred`: pid, uid and gid, 32 bits each.
_UCRED_BYTES = 12


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


# -- trust checks (shared with the daemon, which must not follow symlinks either) -------------


class Untrusted(ConfigError):
    """The socket or a directory on its path is not ours: another user could read or fake it."""

    def __init__(self, problem: str) -> None:
        super().__init__(SOCKET_VARIABLE, problem)


def system_owners(uid_map: str, overflow_uid: int) -> tuple[int, ...]:
    """The uids that stand for the system (root) when looking at directories above ours.

    In a user namespace that maps only some ids (systemd's `PrivateUsers=yes`, rootless
    containers) every file of an unmapped owner, root's `/run` and `/run/user` included, shows
    the kernel's overflow uid (65534). Such a namespace cannot tell root from other unmapped
    users: the overflow uid is then accepted for the directories *above* the socket's own, which
    stays held to the strict rule (ours, private), and is reached through its opened descriptor.
    """
    full = uid_map.split() == ["0", "0", "4294967295"]
    return (0,) if full else (0, overflow_uid)


def _system_owners() -> tuple[int, ...]:
    # Read as bytes: a text read would import a codec for this alone.
    try:
        with open("/proc/self/uid_map", "rb") as uid_map:
            mapping = uid_map.read().decode("ascii")
        with open("/proc/sys/kernel/overflowuid", "rb") as overflow:
            overflow_uid = int(overflow.read())
    except (OSError, ValueError):
        return (0,)
    return system_owners(mapping, overflow_uid)


def check_ancestors(directory: str | os.PathLike[str]) -> None:
    """Check every existing directory from `/` down to `directory` (included), without links.

    Raises Untrusted for a component owned by another user (root, or what stands for root in
    a user namespace, excepted: see `system_owners`), a world- or group-writable one without
    the sticky bit, or a symlink that root does not own.
    """
    uid = os.getuid()
    system = _system_owners()
    # abspath, not realpath: resolving would follow the very links checked here.
    current = ""
    for part in os.path.abspath(directory).split("/")[1:]:
        if not part:
            continue
        current = f"{current}/{part}"
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(info.st_mode):
            if info.st_uid not in system:
                raise Untrusted(f"{current!r} is a symlink (not followed)")
            continue  # made by root: the lstat of the next component follows it
        if not stat.S_ISDIR(info.st_mode):
            raise Untrusted(f"{current!r} is not a directory")
        if info.st_uid != uid and info.st_uid not in system:
            raise Untrusted(f"{current!r} belongs to another user (uid {info.st_uid})")
        writable = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        if writable and not info.st_mode & stat.S_ISVTX:
            raise Untrusted(f"{current!r} is writable by other users")


def _through_system_links(directory: str) -> str:
    """`directory`, its last component followed while it is a symlink the system made.

    systemd's `DynamicUser=` with `RuntimeDirectoryPreserve=` keeps the runtime directory in
    `/run/private/` and links it from `/run/NAME` (the path `$RUNTIME_DIRECTORY` names). Only a
    link owned by root (see `system_owners`) is followed, as higher up the path; the directory
    it leads to is then held to the strict rule like any other.
    """
    system = _system_owners()
    for _ in range(8):  # a bounded walk: a loop of links ends as "not a directory" below
        try:
            info = os.lstat(directory)
        except OSError:
            return directory
        if not stat.S_ISLNK(info.st_mode) or info.st_uid not in system:
            return directory
        target = os.readlink(directory)
        directory = os.path.normpath(os.path.join(os.path.dirname(directory), target))
    return directory


def open_private_dir(directory: str | os.PathLike[str]) -> int:
    """A descriptor of the socket's directory after every check; the caller closes it.

    Raises FileNotFoundError when it does not exist, Untrusted when it is not private to us.
    """
    directory = _through_system_links(os.path.abspath(directory))
    check_ancestors(os.path.dirname(directory))
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(directory, flags)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise Untrusted(f"{directory!r} is a symlink or not a directory") from None
        raise
    info = os.fstat(fd)
    problem = None
    if info.st_uid not in (os.getuid(), 0):
        problem = f"{directory!r} belongs to another user (uid {info.st_uid})"
    elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problem = f"{directory!r} is writable by other users"
    if problem is not None:
        os.close(fd)
        raise Untrusted(problem)
    return fd


def make_private_dir(directory: str | os.PathLike[str]) -> None:
    """Create the socket's directory (0700, missing parents too) or check the existing one.

    The daemon's side of the checks above: nothing is followed through a symlink.
    """
    missing: list[str] = []
    current = os.path.abspath(directory)
    while not os.path.lexists(current) and current != os.path.dirname(current):
        missing.append(current)
        current = os.path.dirname(current)
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue  # made meanwhile by someone else: checked below like any existing one
    os.close(open_private_dir(directory))


def peer_credentials(ucred: bytes) -> tuple[int, int, int]:
    """The pid, uid and gid in SO_PEERCRED's answer (`struct ucred`: three 32-bit fields).

    Read without `struct`, whose extension module the hooks' path would load for this alone.
    """
    return (
        int.from_bytes(ucred[0:4], sys.byteorder, signed=True),  # pid_t
        int.from_bytes(ucred[4:8], sys.byteorder),  # uid_t
        int.from_bytes(ucred[8:12], sys.byteorder),  # gid_t
    )


def peer_of(sock: _socket.socket) -> tuple[int, int, int]:
    """The pid, uid and gid of the process at the other end of the Unix socket `sock`."""
    return peer_credentials(sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, _UCRED_BYTES))


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
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            raise NoDaemon(f"nothing listens on {path!r}") from None
        except TimeoutError:
            sock.close()
            raise Unanswered(f"the daemon did not accept within {timeout:g} s") from None
        except OSError as exc:
            sock.close()
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
    """Send one request line to the daemon at `path` and return its answer.

    Raises NoDaemon (nothing listens: safe to go direct), Untrusted, or Unanswered (a daemon
    is there but gave no answer within `timeout` s, overall: it may still act on the request).
    """
    deadline = time.monotonic() + timeout
    sock = _connect(os.fspath(path), timeout)
    try:  # `_socket.socket` is no context manager
        try:
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


# -- output -------------------------------------------------------------------------------


class Writer:
    """Log lines in the format `agent.logconfig` gives structlog, with the token masked.

    JSON lines when stderr is not a terminal, the console rendering on one; same keys, same
    order (fields, then event, level, timestamp, mono).
    """

    _LEVELS: ClassVar[dict[str, int]] = {"debug": 10, "info": 20, "warning": 30, "error": 40}

    def __init__(
        self,
        level: str = "info",
        fmt: str = "auto",
        secrets: tuple[str, ...] = (),
        stream: TextIO | None = None,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._threshold = self._LEVELS.get(level, 20)
        self._console = fmt == "console" or (fmt == "auto" and self._stream.isatty())
        self._secrets = tuple(s for s in secrets if s)

    @classmethod
    def for_settings(cls, settings: Settings | HookSettings) -> Writer:
        """The writer `settings` ask for, masking the token."""
        if isinstance(settings, HookSettings):
            secrets = settings.secrets
        else:
            secrets = (settings.token.reveal(),) if settings.token is not None else ()
        return cls(settings.log_level, settings.log_format, secrets)

    def debug(self, event: str, **fields: object) -> None:
        """Write a debug line."""
        self._emit("debug", event, fields)

    def info(self, event: str, **fields: object) -> None:
        """Write an info line."""
        self._emit("info", event, fields)

    def warning(self, event: str, **fields: object) -> None:
        """Write a warning line."""
        self._emit("warning", event, fields)

    def error(self, event: str, **fields: object) -> None:
        """Write an error line."""
        self._emit("error", event, fields)

    def _emit(self, level: str, event: str, fields: dict[str, object]) -> None:
        if self._LEVELS[level] < self._threshold:
            return
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
        stamp += f".{int(now % 1 * 1_000_000):06d}Z"
        record = {key: scrub(value, self._secrets) for key, value in fields.items()}
        if self._console:
            record["mono"] = round(time.monotonic(), 4)
            pairs = " ".join(f"{key}={_console_repr(record[key])}" for key in sorted(record))
            line = f"{stamp} [{level:<9}] {scrub(event, self._secrets):<30} {pairs}".rstrip()
        else:
            record.update(
                event=scrub(event, self._secrets),
                level=level,
                timestamp=stamp,
                mono=round(time.monotonic(), 4),
            )
            line = json.dumps(record)
        try:
            self._stream.write(line + "\n")
            self._stream.flush()
        except (OSError, ValueError):
            return  # stderr closed: nothing to tell


def _console_repr(value: object) -> str:
    if isinstance(value, str) and not set(value) & {" ", "\t", "=", "\r", "\n", '"', "'"}:
        return value
    return repr(value)


# -- the two commands ---------------------------------------------------------------------


def report(
    settings: Settings | HookSettings,
    status: AppStatus,
    *,
    timeout: float = REQUEST_TIMEOUT,
    writer: Writer | None = None,
    source: str = "report",
) -> ExitCode:
    """Deliver an explicit report: to the running daemon, or straight to Coder when none listens.

    The entry point for every caller (the `report` command, agent hooks). Never raises for a
    delivery problem: the outcome is the exit code, logged once. Raises ConfigError only when
    the direct path is needed and Coder is not configured.
    """
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
            out.error("report_refused", error=str(answer.get("error", ""))[:300])
            return ExitCode.REJECTED
    out.info("report_direct", reason=reason)
    from agent.direct import report_once  # noqa: PLC0415 - the heavy path, only when needed

    return report_once(full_settings(settings), status, from_hook=source == "hook")


def full_settings(settings: Settings | HookSettings) -> Settings:
    """The whole, validated configuration (the direct paths need it); raises ConfigError."""
    if not isinstance(settings, HookSettings):
        return settings
    from agent.settings import load_settings  # noqa: PLC0415 - only off the fast path

    return load_settings(flags=settings.flags)


def snapshot(
    settings: Settings | HookSettings, *, timeout: float | None = None, writer: Writer | None = None
) -> ExitCode | None:
    """Ask the running daemon to save the conversation now; None when no daemon listens.

    The daemon runs its stop-path upload from its live mirror and warm connections and answers
    with the outcome; its exit code is returned. An untrusted socket counts as no daemon (the
    caller then runs the one-shot snapshot, which is idempotent: each upload replaces the last).
    """
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
        out.error("snapshot_refused", error=str(answer.get("error", ""))[:300])
        return ExitCode.REJECTED
    try:
        exit_code = ExitCode(code)
    except ValueError:
        out.error("snapshot_refused", error=f"unknown exit code {code}")
        return ExitCode.REJECTED
    level = out.info if exit_code is ExitCode.OK else out.error
    level("snapshot_by_daemon", outcome=outcome, exit_code=int(exit_code))
    return exit_code
