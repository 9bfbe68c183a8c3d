"""The report client: trust checks on the socket's path, no fallback to a duplicate, output."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import Secret, Settings
from agent.errors import ConfigError
from agent.log import Writer
from agent.models import AppState, AppStatus, ExitCode
from agent.reportsocket.client import (
    NoDaemon,
    Unanswered,
    _connect,
    exchange,
    report,
    snapshot,
)
from agent.reportsocket.server import prepare_socket_dir
from agent.reportsocket.trust import Untrusted, make_private_dir, peer_credentials, system_owners

TOKEN = "rc-token-4b1e9d0c"
OTHER_UID = 65534  # nobody
as_root = pytest.mark.skipif(os.getuid() != 0, reason="needs root to make another user's files")


@pytest.fixture
def private(tmp_path: Path) -> Path:
    directory = tmp_path / "run"
    directory.mkdir(mode=0o700)
    return directory


@pytest.fixture
def listening(private: Path) -> Iterator[socket.socket]:
    """A real listening socket that accepts nothing and never answers: a hung daemon."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(private / "report.sock"))
    sock.listen(8)
    with sock:
        yield sock


def settings_for(path: Path, **extra: object) -> Settings:
    return Settings(socket_path=path, token=Secret(TOKEN), **extra)


REQUEST = {"state": "idle", "message": "", "uri": ""}


def test_no_directory_or_no_socket_means_no_daemon(tmp_path: Path, private: Path) -> None:
    with pytest.raises(NoDaemon):
        exchange(tmp_path / "absent" / "report.sock", REQUEST, 1.0)
    with pytest.raises(NoDaemon):
        exchange(private / "report.sock", REQUEST, 1.0)


def test_a_stale_socket_means_no_daemon(private: Path) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(private / "report.sock"))
    sock.close()  # the file stays, nobody listens: ECONNREFUSED
    with pytest.raises(NoDaemon):
        exchange(private / "report.sock", REQUEST, 1.0)


def test_a_hung_daemon_is_unanswered_not_absent(private: Path, listening: socket.socket) -> None:
    with pytest.raises(Unanswered, match="no answer"):
        exchange(private / "report.sock", REQUEST, 0.2)


def users_link(link: Path, target: Path) -> Path:
    """A symlink made by a user (not by root: root's links are the system's, see below)."""
    link.symlink_to(target)
    if os.getuid() == 0:
        os.lchown(link, OTHER_UID, OTHER_UID)
    return link


@as_root
def test_a_directory_the_system_links_is_followed(tmp_path: Path, private: Path) -> None:
    # systemd's DynamicUser= + RuntimeDirectoryPreserve=: /run/NAME -> private/NAME, root's link.
    link = tmp_path / "link"
    link.symlink_to(private)
    prepare_socket_dir(link / "report.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(private / "report.sock"))
    sock.listen(1)
    with sock:
        connected = _connect(str(link / "report.sock"), 1.0)
        connected.close()


def test_a_symlinked_directory_is_refused(tmp_path: Path, private: Path) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(private / "report.sock"))
    sock.listen(1)
    link = users_link(tmp_path / "link", private)
    with sock, pytest.raises(Untrusted, match="symlink"):
        exchange(link / "report.sock", REQUEST, 1.0)


def test_a_symlinked_socket_is_refused(private: Path, listening: socket.socket) -> None:
    (private / "other.sock").symlink_to(private / "report.sock")
    with pytest.raises(Untrusted, match="not a socket"):
        exchange(private / "other.sock", REQUEST, 1.0)


def test_a_symlink_higher_up_is_refused_unless_root_made_it(tmp_path: Path, private: Path) -> None:
    up = tmp_path / "up"
    up.symlink_to(tmp_path)
    if os.getuid() == 0:
        os.lchown(up, OTHER_UID, OTHER_UID)
    with pytest.raises(Untrusted, match="symlink"):
        exchange(up / "run" / "report.sock", REQUEST, 1.0)


def test_a_shared_directory_is_refused(private: Path, listening: socket.socket) -> None:
    private.chmod(0o770)
    with pytest.raises(Untrusted, match="writable by other users"):
        exchange(private / "report.sock", REQUEST, 1.0)


@as_root
def test_another_users_directory_is_refused(private: Path, listening: socket.socket) -> None:
    os.chown(private, OTHER_UID, OTHER_UID)
    with pytest.raises(Untrusted, match="another user"):
        exchange(private / "report.sock", REQUEST, 1.0)


@as_root
def test_another_users_socket_is_refused(private: Path, listening: socket.socket) -> None:
    os.chown(private / "report.sock", OTHER_UID, OTHER_UID)
    with pytest.raises(Untrusted, match="another user"):
        exchange(private / "report.sock", REQUEST, 1.0)


@as_root
def test_another_users_directory_higher_up_is_refused(tmp_path: Path) -> None:
    middle = tmp_path / "middle"
    middle.mkdir(mode=0o755)
    os.chown(middle, OTHER_UID, OTHER_UID)
    with pytest.raises(Untrusted, match="another user"):
        exchange(middle / "run" / "report.sock", REQUEST, 1.0)


def test_the_daemon_does_not_follow_a_symlinked_directory(tmp_path: Path, private: Path) -> None:
    link = users_link(tmp_path / "link", private)
    with pytest.raises(ConfigError, match="symlink"):
        prepare_socket_dir(link / "report.sock")


@as_root
def test_the_daemon_refuses_another_users_directory(private: Path) -> None:
    os.chown(private, OTHER_UID, OTHER_UID)
    with pytest.raises(ConfigError, match="another user"):
        prepare_socket_dir(private / "report.sock")


def test_the_daemon_creates_missing_parents_private(tmp_path: Path) -> None:
    make_private_dir(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").stat().st_mode & 0o777 == 0o700


def test_a_hung_daemon_gives_undelivered_and_no_direct_report(
    private: Path, listening: socket.socket, refused_url: str
) -> None:
    out = io.StringIO()
    # Coder is configured, so a fallback would be possible: it must not be taken.
    settings = settings_for(private / "report.sock", coder_url=refused_url, app_slug="agent")
    status = AppStatus(AppState.COMPLETE, "Done")
    code = report(settings, status, timeout=0.2, writer=Writer("debug", "json", (), out))
    assert code is ExitCode.UNDELIVERED
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["report_unconfirmed"]


def test_a_hung_daemon_snapshot_is_undelivered(private: Path, listening: socket.socket) -> None:
    out = io.StringIO()
    settings = settings_for(private / "report.sock")
    assert snapshot(settings, timeout=0.2, writer=Writer(stream=out)) is ExitCode.UNDELIVERED
    assert "snapshot_unconfirmed" in out.getvalue()


def test_an_untrusted_socket_with_no_coder_is_a_config_error(tmp_path: Path, private: Path) -> None:
    link = users_link(tmp_path / "link", private)
    out = io.StringIO()
    with pytest.raises(ConfigError, match="CODER_AGENT_URL"):
        report(
            settings_for(link / "report.sock"), AppStatus(AppState.IDLE), writer=Writer(stream=out)
        )
    assert "report_socket_untrusted" in out.getvalue()


@pytest.mark.parametrize(
    ("uid_map", "owners"),
    [
        ("         0          0 4294967295\n", (0,)),  # the initial namespace: root is root
        ("      1000       1000          1\n", (0, 65534)),  # systemd PrivateUsers=yes
        ("         0       1000          1\n         1     100000      65536\n", (0, 65534)),
    ],
    ids=["initial", "private-users", "rootless"],
)
def test_in_a_user_namespace_the_overflow_uid_stands_for_root_above_the_socket_dir(
    uid_map: str, owners: tuple[int, ...]
) -> None:
    assert system_owners(uid_map, 65534) == owners


@pytest.mark.parametrize("ids", [(1, 0, 0), (4242, 1000, 1000), (2**31 - 1, 65534, 65534)])
def test_peer_credentials_read_struct_ucred(ids: tuple[int, int, int]) -> None:
    assert peer_credentials(struct.pack("3i", *ids)) == ids


def test_peer_credentials_of_a_real_peer() -> None:
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        ucred = left.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    assert peer_credentials(ucred) == (os.getpid(), os.getuid(), os.getgid())


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        # An endless line: read to the cap (16 KiB and a piece), not to the deadline.
        (b"x" * (1 << 20), "not a JSON object"),
        # A byte at a time, never a line: the one deadline for the exchange ends it.
        (b"x", "no answer from the daemon within 0.5 s"),
    ],
)
def test_an_answer_past_the_cap_or_the_deadline_is_unanswered(
    private: Path, listening: socket.socket, answer: bytes, problem: str
) -> None:
    def daemon() -> None:
        connection, _ = listening.accept()
        with connection, contextlib.suppress(OSError):
            connection.recv(65536)
            while True:  # until the client hangs up
                connection.sendall(answer)
                if len(answer) == 1:
                    stop.wait(0.01)

    stop = threading.Event()
    thread = threading.Thread(target=daemon)
    thread.start()
    try:
        with pytest.raises(Unanswered, match=problem):
            exchange(private / "report.sock", REQUEST, 0.5)
    finally:
        stop.set()
        thread.join()
