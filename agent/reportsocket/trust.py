"""Trust checks for what sits where another user could have put it: directories, files, peers.

Why a module of its own: on a shared `/tmp` (or any place another user can write) another user
can pre-create the report socket's directory, re-point a symlink, plant a socket, a FIFO or a
file of their own. The report socket's client and server, the memory file (agent.lastreport)
and the stop hook's PID and state files (agent.stop) all need the same answer to "is this ours?",
and one answer it must stay. Standard library only, no `socket`, `struct` or `json`: the hooks'
fast path imports it (see agent.reportsocket.client).

- A private directory (the report socket's) belongs to us or root and no one else can write to
  it; every directory above it belongs to us or root (a world-writable one only with the sticky
  bit, as `/tmp`), and a symlink on the way is followed only when root owns it (`/var/run`):
  nobody else could have made it.
- A file (`read_trusted`) is opened without following a symlink and without blocking (a FIFO
  cannot hang the reader), then checked on the open descriptor: a regular file, ours (or root's
  where the caller allows it), writable by no one else, no larger than the caller's cap; its
  directory passes the ancestors' rule above and belongs to us or root. A directory others can
  write to is enough there only with the sticky bit: then no one but a file's owner can replace
  it, and the file must be ours. Anything else is refused with one warning, never raised.
- A peer on a Unix socket is identified by the kernel's SO_PEERCRED, never by what it says; a
  process by the kernel's `/proc/PID/stat` (`proc_stat`: its state and start time).
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
        """What `read_trusted` logs through: a structlog logger or the hooks' Writer."""

        def warning(self, event: str, /, **fields: Any) -> object:
            """Write one warning line."""
            ...


# SO_PEERCRED answers a `struct ucred`: pid, uid and gid, 32 bits each.
_UCRED_BYTES = 12


class Untrusted(ConfigError):
    """The socket, a file or a directory on their path is not ours: another user could fake it.

    Raised as a configuration error for the report socket (it names the socket's variable); a
    refused file is only ever logged (`read_trusted`), its `problem` saying why.
    """

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
    return _open_checked_dir(os.path.abspath(directory), sticky_ok=False)


def _open_checked_dir(directory: str, *, sticky_ok: bool) -> int:
    """A descriptor of `directory` (absolute) once it passed the checks (module docstring): it
    and every directory above are ours or root's, it is writable by no one else (`sticky_ok`:
    unless it has the sticky bit). The caller closes it.

    Raises FileNotFoundError when it does not exist, Untrusted when it is refused.
    """
    directory = _through_system_links(directory)
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
    elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (
        sticky_ok and info.st_mode & stat.S_ISVTX
    ):
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


# -- files ----------------------------------------------------------------------------------

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
    """The content of the file at `path`, every check in the module docstring passed.

    `root_ok`: a file of root's is accepted too (the caller says where root legitimately writes
    it). Raises FileNotFoundError when there is no such file (or directory), Untrusted (its
    `problem` names the file and why) for anything refused, OSError when reading fails.
    """
    where = os.fspath(path)
    fd = _open_file(where)
    try:
        problem = _file_problem(os.fstat(fd), max_bytes=max_bytes, root_ok=root_ok)
        if problem is not None:
            raise Untrusted(f"{where!r} {problem}")
        # At most one byte past the cap, whatever the size said: the file may be growing.
        data = bytearray()
        while len(data) <= max_bytes:
            chunk = os.read(fd, max_bytes + 1 - len(data))
            if not chunk:
                break
            data += chunk
        if len(data) > max_bytes:
            raise Untrusted(f"{where!r} is larger than {max_bytes} bytes")
        return bytes(data)
    finally:
        os.close(fd)


def _open_file(where: str) -> int:
    """A descriptor of the file `where`, opened through its checked directory."""
    directory, name = os.path.split(os.path.abspath(where))
    try:
        # A directory others can write to only with the sticky bit (the module docstring).
        dir_fd = _open_checked_dir(directory, sticky_ok=True)
    except Untrusted:
        if not os.path.lexists(where):
            # Nothing to refuse: no file is the usual case, not worth a warning each time.
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


def _file_problem(info: os.stat_result, *, max_bytes: int, root_ok: bool) -> str | None:
    """Why a file with `info` (fstat of the open descriptor) is refused, or None."""
    owners = (os.getuid(), 0) if root_ok else (os.getuid(),)
    if not stat.S_ISREG(info.st_mode):
        kind = next((kind for test, kind in _KINDS if test(info.st_mode)), "something else")
        return f"is {kind}, not a regular file"
    if info.st_uid not in owners:
        return f"belongs to another user (uid {info.st_uid})"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return "is writable by other users"
    if info.st_size > max_bytes:
        return f"is larger than {max_bytes} bytes"
    return None


def read_trusted(
    path: str | os.PathLike[str],
    *,
    max_bytes: int,
    log: Warns,
    what: str,
    root_ok: bool = False,
) -> bytes | None:
    """The content of the file at `path` (see `read_checked`), or None; never raises.

    None when there is no such file (nothing logged: the usual case) or when it is refused or
    cannot be read: then one warning, `untrusted_file_ignored`, names the file, `what` it is for
    and why.
    """
    try:
        return read_checked(path, max_bytes=max_bytes, root_ok=root_ok)
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
    """`/proc/PID/stat` (`self` for this process) from field 3 (the state) on, or None when it
    cannot be read. The command name before them may hold spaces and parentheses: they follow
    the last ')'. Field N of proc(5) is at index N - 3."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            raw = stat_file.read(4096)  # one line of about 52 fields: far below this
    except OSError:
        return None
    return raw.rpartition(b")")[2].decode("ascii", "replace").split()
