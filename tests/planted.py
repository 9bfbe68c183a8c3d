"""What another user could plant where a file is read: one table, run against every reader.

Each plant puts something at `path` in place of a good file: a link to a good file, a FIFO, a
directory, a socket, a good file of another user's or writable by others, in a directory of
another user's or open to all, or a file of ours holding what no reader can use (too large,
nested past any parser's limit, not UTF-8, empty). Every reader of a file from a shared place
(agent.reportsocket.trust.read_trusted and its callers) must ignore each one with a warning and
go on. `good` is content the reader accepts, so a test can show the same path works without
the plant; `cap` is the reader's size cap.

Plants that give a file or a directory to another user need root (os.chown): the tests run as
root here and in CI; elsewhere they are skipped, saying why.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

# nobody: a user that is neither us nor root.
OTHER_UID = 65534
# Deeper than Python's recursion limit and pydantic's nesting limit, smaller than any cap.
NESTING = 20_000


@dataclass(frozen=True)
class Plant:
    """One thing planted at a reader's path."""

    name: str
    make: Callable[[Path, bytes, int], None]
    # Gives something to another user: needs root.
    needs_root: bool = False
    # Passes the trust check (a file of ours): only the reader's parser can refuse it.
    content_only: bool = False

    def plant(self, path: Path, good: bytes, cap: int) -> None:
        """Put the plant at `path` (its directory exists)."""
        if self.needs_root and os.geteuid() != 0:
            pytest.skip(f"{self.name}: giving a file to another user needs root")
        self.make(path, good, cap)


def _symlink(path: Path, good: bytes, cap: int) -> None:
    target = path.with_name(path.name + ".target")
    target.write_bytes(good)
    os.symlink(target, path)


def _fifo(path: Path, good: bytes, cap: int) -> None:
    os.mkfifo(path, 0o600)


def _directory(path: Path, good: bytes, cap: int) -> None:
    path.mkdir(mode=0o700)


def _socket(path: Path, good: bytes, cap: int) -> None:
    # Bound through its directory's descriptor: a test's path may pass AF_UNIX's 108 bytes.
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.bind(f"/proc/self/fd/{directory}/{path.name}")
    finally:
        os.close(directory)


def _other_owner(path: Path, good: bytes, cap: int) -> None:
    path.write_bytes(good)
    os.chmod(path, 0o644)
    os.chown(path, OTHER_UID, OTHER_UID)


def _writable_by(mode: int) -> Callable[[Path, bytes, int], None]:
    def make(path: Path, good: bytes, cap: int) -> None:
        path.write_bytes(good)
        os.chmod(path, mode)

    return make


def _directory_of_another_user(path: Path, good: bytes, cap: int) -> None:
    # They made the directory first; the file in it even looks like ours.
    path.write_bytes(good)
    os.chmod(path.parent, 0o755)  # noqa: S103 - the plant under test
    os.chown(path.parent, OTHER_UID, OTHER_UID)


def _directory_open_to_all(path: Path, good: bytes, cap: int) -> None:
    path.write_bytes(good)
    # No sticky bit: anyone could have replaced the file.
    os.chmod(path.parent, 0o777)  # noqa: S103 - the plant under test


def _oversize(path: Path, good: bytes, cap: int) -> None:
    # Good content, padded with whitespace that every parser here ignores: only the cap refuses.
    # Past a mebibyte the padding is a hole (a sparse file): the size alone is refused.
    with path.open("wb") as file:
        file.write(good)
        if cap < 1 << 20:
            file.write(b" " * (cap + 1 - len(good)))
        else:
            file.truncate(cap + 1)


def _nested(path: Path, good: bytes, cap: int) -> None:
    path.write_bytes(b"[" * NESTING + b"]" * NESTING)


def _not_utf8(path: Path, good: bytes, cap: int) -> None:
    path.write_bytes(b"\xff\xfe" + good)


def _empty(path: Path, good: bytes, cap: int) -> None:
    path.write_bytes(b"")


PLANTS = (
    Plant("symlink to a good file", _symlink),
    Plant("FIFO", _fifo),
    Plant("directory", _directory),
    Plant("socket", _socket),
    Plant("file of another user", _other_owner, needs_root=True),
    Plant("group-writable file", _writable_by(0o664)),
    Plant("world-writable file", _writable_by(0o646)),
    Plant("directory of another user", _directory_of_another_user, needs_root=True),
    Plant("directory open to all", _directory_open_to_all),
    Plant("oversize", _oversize),
    Plant("deeply nested JSON", _nested, content_only=True),
    Plant("invalid UTF-8", _not_utf8, content_only=True),
    Plant("empty", _empty, content_only=True),
)
TRUST_PLANTS = tuple(p for p in PLANTS if not p.content_only)


def each(plants: tuple[Plant, ...] = PLANTS) -> pytest.MarkDecorator:
    """Parametrize a test's `plant` argument with `plants`, each named."""
    return pytest.mark.parametrize("plant", plants, ids=[p.name for p in plants])
