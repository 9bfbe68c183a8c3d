"""Trust checks for what sits where another user could have put it: directories, sockets' peers.

Why a module of its own: on a shared `/tmp` (or any place another user can write) another user
can pre-create the report socket's directory, re-point a symlink, plant a socket or serve one.
The report socket's client and server and the daemon's memory file all need the same answer to
"is this place ours?", and one answer it must stay. Standard library only, no `socket`, `struct`
or `json`: the hooks' fast path imports it (see agent.reportsocket.client).

- A directory is trusted when it belongs to us or root and no one else can write to it; every
  directory above it must belong to us or root (a world-writable one only with the sticky bit,
  as `/tmp`), and a symlink on the way is followed only when root owns it (`/var/run`): nobody
  else could have made it.
- A peer on a Unix socket is identified by the kernel's SO_PEERCRED, never by what it says.
"""

from __future__ import annotations

import _socket
import errno
import os
import stat
import sys

from agent.errors import ConfigError
from agent.reportsocket import SOCKET_VARIABLE

# SO_PEERCRED answers a `struct ucred`: pid, uid and gid, 32 bits each.
_UCRED_BYTES = 12


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
