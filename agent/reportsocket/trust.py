"""The one answer to "is this ours?" for what another user could have placed: directories, files,
socket peers, processes.

On a shared `/tmp` another user can pre-create a directory, re-point a symlink, plant a socket, a
FIFO or a file. The report socket, the memory file (agent.lastreport) and the stop hook's PID and
state files (agent.stop) all ask (the plants tested: docs/faults.md). Standard library only,
without `socket`, `struct` or `json`: the hooks' fast path imports it.
"""

from __future__ import annotations

import _socket
import errno
import os
import stat
import sys

from agent.errors import ConfigError
from agent.reportsocket import SOCKET_VARIABLE

# A plain constant that type checkers treat as true: `typing` is not imported on this path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol

    class Warns(Protocol):
        """A structlog logger or the hooks' Writer."""

        def warning(self, event: str, /, **fields: Any) -> object: ...


# SO_PEERCRED answers a `struct ucred`: pid, uid and gid, 32 bits each.
_UCRED_BYTES = 12


class Untrusted(ConfigError):
    """Not ours: another user could fake it. A refused file is only logged (`read_trusted`)."""

    def __init__(self, problem: str) -> None:
        super().__init__(SOCKET_VARIABLE, problem)


def system_owners(uid_map: str, overflow_uid: int) -> tuple[int, ...]:
    """The uids that stand for root in directories above ours.

    In a partial user namespace (systemd's `PrivateUsers=yes`, rootless containers) root's `/run`
    shows the overflow uid (65534), like any unmapped owner: accepted above our own directory only.
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
    """Raise Untrusted unless every existing directory from `/` to `directory` is ours or root's,
    writable by others only with the sticky bit, and any symlink among them is root's."""
    uid = os.getuid()
    system = _system_owners()
    # abspath, not realpath: resolving would follow the very links checked here.
    current = ""
    for part in filter(None, os.path.abspath(directory).split("/")):
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
    """`directory`, followed while it is a root-owned symlink (systemd's `DynamicUser=` links
    `/run/NAME` to `/run/private/NAME`); where it leads is checked like any other."""
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


def open_private_dir(directory: str | os.PathLike[str], *, sticky_ok: bool = False) -> int:
    """A descriptor (the caller closes it) of `directory`, ours or root's, above it as
    `check_ancestors` says, writable by no one else (`sticky_ok`: unless sticky).

    Raises FileNotFoundError when it does not exist, Untrusted when it is refused.
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
    if info.st_uid not in (os.getuid(), 0):
        problem = f"{directory!r} belongs to another user (uid {info.st_uid})"
    elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (
        sticky_ok and info.st_mode & stat.S_ISVTX
    ):
        problem = f"{directory!r} is writable by other users"
    else:
        return fd
    os.close(fd)
    raise Untrusted(problem)


def make_private_dir(directory: str | os.PathLike[str]) -> None:
    """Create `directory` (0700, missing parents too) or check the existing one."""
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
    """The pid, uid and gid in a `struct ucred`, read without the `struct` module."""
    return (
        int.from_bytes(ucred[0:4], sys.byteorder, signed=True),  # pid_t
        int.from_bytes(ucred[4:8], sys.byteorder),  # uid_t
        int.from_bytes(ucred[8:12], sys.byteorder),  # gid_t
    )


def peer_of(sock: _socket.socket) -> tuple[int, int, int]:
    """The kernel's pid, uid and gid of the process at the other end of `sock` (SO_PEERCRED)."""
    return peer_credentials(sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, _UCRED_BYTES))


# Without following a link, without waiting for a FIFO's writer, never becoming our terminal.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def read_checked(path: str | os.PathLike[str], *, max_bytes: int, root_ok: bool = False) -> bytes:
    """The content of the regular file at `path`: ours (or root's if `root_ok`), writable by no
    one else, at most `max_bytes`, in a checked directory (others may write to it only if sticky).

    Raises FileNotFoundError, Untrusted (its `problem` names the file), OSError.
    """
    where = os.fspath(path)
    fd = _open_file(where)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((kind for test, kind in _KINDS if test(info.st_mode)), "something else")
            raise Untrusted(f"{where!r} is {kind}, not a regular file")
        if info.st_uid not in ((os.getuid(), 0) if root_ok else (os.getuid(),)):
            raise Untrusted(f"{where!r} belongs to another user (uid {info.st_uid})")
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise Untrusted(f"{where!r} is writable by other users")
        if info.st_size > max_bytes:
            raise Untrusted(f"{where!r} is larger than {max_bytes} bytes")
        # At most one byte past the cap, whatever the size said: the file may be growing.
        with open(fd, "rb", closefd=False) as file:
            data = file.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise Untrusted(f"{where!r} is larger than {max_bytes} bytes")
        return data
    finally:
        os.close(fd)


def _open_file(where: str) -> int:
    """A descriptor of the file `where`, opened through its checked directory."""
    directory, name = os.path.split(os.path.abspath(where))
    try:
        # Sticky: only its owner can replace a file, and it must be ours (or root's).
        dir_fd = open_private_dir(directory, sticky_ok=True)
    except Untrusted:
        if not os.path.lexists(where):
            # No file is the usual case: not worth a warning each time.
            raise FileNotFoundError(errno.ENOENT, "no such file", where) from None
        raise
    try:
        return os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Untrusted(f"{where!r} is a symlink (not followed)") from None
        if exc.errno == errno.ENXIO:  # a socket cannot be opened as a file
            raise Untrusted(f"{where!r} is a socket, not a regular file") from None
        raise Untrusted(f"{where!r} cannot be opened ({exc.strerror})") from None
    finally:
        os.close(dir_fd)


def read_trusted(
    path: str | os.PathLike[str],
    *,
    max_bytes: int,
    log: Warns,
    what: str,
) -> bytes | None:
    """`read_checked`, or None: silently when there is no file, else after one warning
    `untrusted_file_ignored` naming the file, `what` it is for and why."""
    try:
        return read_checked(path, max_bytes=max_bytes)
    except FileNotFoundError:
        return None
    except (Untrusted, OSError) as exc:
        problem = refusal(path, exc)
    log.warning("untrusted_file_ignored", what=what, file=os.fspath(path), problem=problem)
    return None


def refusal(path: str | os.PathLike[str], exc: Untrusted | OSError) -> str:
    """Why the file at `path` was not read, naming it: `read_checked` raised `exc`."""
    if isinstance(exc, Untrusted):
        return exc.problem
    return f"{os.fspath(path)!r} cannot be read ({exc.strerror or type(exc).__name__})"


def proc_stat(pid: int | str) -> list[str] | None:
    """`/proc/PID/stat` (or `self`) from field 3 (the state) on: field N of proc(5) at index
    N - 3; None when unreadable. They follow the last ')': the name may hold any."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            raw = stat_file.read(4096)  # one line of about 52 fields: far below this
    except OSError:
        return None
    return raw.rpartition(b")")[2].decode("ascii", "replace").split()
