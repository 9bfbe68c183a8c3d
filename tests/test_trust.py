"""The one trust check for files another user could have planted, and every reader that uses it.

The table of plants (tests.planted) runs against the check itself and against each reader of a
file from a shared place: the last-report memory (read at the daemon's start, see
tests/test_daemon.py, and by the direct hook path), the stop hook's PID file and AgentAPI's
state file. Each plant is ignored with one warning naming the file, and the reader goes on;
none may block (a FIFO would, opened the usual way): every read runs in a worker thread under
a bound, so a hang fails the test instead of hanging the run.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest
from structlog.testing import capture_logs

from agent import lastreport
from agent.conversation import MAX_MESSAGES_BYTES
from agent.models import AppState, AppStatus
from agent.reportsocket.trust import Untrusted, read_checked, read_trusted
from agent.stop import process
from agent.stop.hook import _from_state_file
from agent.stop.inputs import StopHookInputs
from agent.stop.process import Unusable, find_process, read_pid, read_state_file, signal_refusal
from tests.manualclock import ManualClock
from tests.planted import OTHER_UID, PLANTS, TRUST_PLANTS, Plant, each

T = TypeVar("T")
# A bound on a read that must take microseconds: only a hang (a FIFO opened blocking) reaches it.
HANG = 10.0

DONE = AppStatus(AppState.COMPLETE, "Opened PR #12", "https://git.example/pr/12")
IDLE = AppStatus(AppState.IDLE, "Turn finished")
STATE_FILE = (
    b'{"version":1,"messages":[{"id":0,"message":"Welcome","role":"agent",'
    b'"time":"2026-01-01T10:00:00Z"}],"initial_prompt":"","initial_prompt_sent":true}'
)


def bounded(call: Callable[[], T]) -> T:
    """`call()` in a worker thread; fails the test if it has not returned within HANG s."""
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(call).result(timeout=HANG)
    finally:
        pool.shutdown(wait=False)


class Warnings:
    """A log (the `Warns` protocol) that keeps what it is told."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, /, **fields: Any) -> None:
        self.lines.append((event, fields))


def memory_path(tmp_path: Path) -> Path:
    directory = tmp_path / "run"
    directory.mkdir(mode=0o700)
    return directory / lastreport.FILE_NAME


def good_memory() -> bytes:
    return b'{"state": "complete", "message": "Opened PR #12", "uri": "https://git.example/pr/12"}'


# -- the check itself ---------------------------------------------------------------------


def test_a_good_file_is_read(tmp_path: Path) -> None:
    path = memory_path(tmp_path)
    path.write_bytes(b"x" * 100)
    log = Warnings()
    assert bounded(lambda: read_trusted(path, max_bytes=100, log=log, what="test")) == b"x" * 100
    assert log.lines == []


@each(TRUST_PLANTS)
def test_every_plant_is_refused_with_one_warning(tmp_path: Path, plant: Plant) -> None:
    path = memory_path(tmp_path)
    plant.plant(path, b"good", 100)
    log = Warnings()
    assert bounded(lambda: read_trusted(path, max_bytes=100, log=log, what="the test file")) is None
    ((event, fields),) = log.lines
    assert event == "untrusted_file_ignored"
    assert fields["file"] == str(path)
    assert fields["what"] == "the test file"
    assert str(path.parent) in fields["problem"], "the problem names the file or its directory"


def test_no_file_is_no_warning(tmp_path: Path) -> None:
    log = Warnings()
    assert read_trusted(tmp_path / "absent", max_bytes=10, log=log, what="t") is None
    assert read_trusted(tmp_path / "no" / "absent", max_bytes=10, log=log, what="t") is None
    assert log.lines == []
    with pytest.raises(FileNotFoundError):
        read_checked(tmp_path / "absent", max_bytes=10)


def test_the_cap_is_inclusive(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"x" * 64)
    assert read_checked(path, max_bytes=64) == b"x" * 64
    with pytest.raises(Untrusted, match="larger than 63 bytes"):
        read_checked(path, max_bytes=63)


def test_a_file_of_ours_in_a_sticky_shared_directory_is_trusted(tmp_path: Path) -> None:
    # As in /tmp: others may create files beside it, but only its owner can replace it.
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # noqa: S103 - /tmp's mode, sticky
    (shared / "agentapi.pid").write_bytes(b"4242\n")
    assert read_checked(shared / "agentapi.pid", max_bytes=64) == b"4242\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a symlink to another user needs root")
@pytest.mark.parametrize("where", ["link/file", "link/below/file"])
def test_a_symlinked_directory_of_another_user_is_refused(tmp_path: Path, where: str) -> None:
    (tmp_path / "real" / "below").mkdir(parents=True)
    (tmp_path / "real" / "file").write_bytes(b"good")
    (tmp_path / "real" / "below" / "file").write_bytes(b"good")
    os.symlink(tmp_path / "real", tmp_path / "link")
    assert read_checked(tmp_path / where, max_bytes=10) == b"good"  # root's link: followed
    os.lchown(tmp_path / "link", OTHER_UID, OTHER_UID)
    with pytest.raises(Untrusted, match="symlink"):
        read_checked(tmp_path / where, max_bytes=10)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
@pytest.mark.parametrize("root_ok", [False, True])
def test_root_ok_admits_root_not_others(tmp_path: Path, root_ok: bool) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"good")
    os.chown(path, 0, 0)
    assert read_checked(path, max_bytes=10, root_ok=root_ok) == b"good"  # root is us here
    os.chown(path, OTHER_UID, OTHER_UID)
    with pytest.raises(Untrusted, match=f"another user \\(uid {OTHER_UID}\\)"):
        read_checked(path, max_bytes=10, root_ok=root_ok)


# -- the last-report memory ---------------------------------------------------------------


def test_the_memory_reads_a_good_file(tmp_path: Path) -> None:
    path = memory_path(tmp_path)
    path.write_bytes(good_memory())
    os.chmod(path, 0o600)
    assert bounded(lambda: lastreport.load(path)) == DONE
    assert lastreport.DirectMemory(path.parent).held(IDLE, from_hook=True) == DONE


@each()
def test_the_memory_ignores_every_plant(tmp_path: Path, plant: Plant) -> None:
    path = memory_path(tmp_path)
    plant.plant(path, good_memory(), 64 * 1024)
    with capture_logs() as logs:
        assert bounded(lambda: lastreport.load(path)) is None
    (warning,) = [e for e in logs if e["log_level"] == "warning"]
    assert warning["event"] in ("untrusted_file_ignored", "last_report_unreadable")
    assert str(path) in str(warning.get("file", warning.get("path")))


@each()
def test_the_direct_hook_path_sends_the_idle_over_every_plant(tmp_path: Path, plant: Plant) -> None:
    # A planted complete would hold the hook's idle back (rule 7): ignored, the idle goes out.
    path = memory_path(tmp_path)
    plant.plant(path, good_memory(), 64 * 1024)
    memory = bounded(lambda: lastreport.DirectMemory(path.parent))
    assert memory.held(IDLE, from_hook=True) is None


@pytest.mark.parametrize(
    "content",
    [b"[1, 2]", b'"complete"', b"null", b'{"state": "done", "message": "x"}', b'{"state": 3}'],
)
def test_the_memory_ignores_json_that_is_not_a_report(tmp_path: Path, content: bytes) -> None:
    path = memory_path(tmp_path)
    path.write_bytes(content)
    with capture_logs() as logs:
        assert lastreport.load(path) is None
    assert [e["event"] for e in logs] == ["last_report_unreadable"]


def test_nothing_is_saved_into_a_directory_that_is_not_private(tmp_path: Path) -> None:
    shared = tmp_path / "run"
    shared.mkdir()
    os.chmod(shared, 0o777)  # noqa: S103 - a shared directory, on purpose
    with capture_logs() as logs:
        lastreport.DirectMemory(shared).delivered(DONE, from_hook=False)
    assert not (shared / lastreport.FILE_NAME).exists()
    assert [e["event"] for e in logs] == ["last_report_not_saved"]


# -- the stop hook's PID file -------------------------------------------------------------


@each()
def test_the_pid_file_refuses_every_plant(tmp_path: Path, plant: Plant) -> None:
    path = tmp_path / "module" / "agentapi.pid"
    path.parent.mkdir()
    good = f"{os.getpid() + 1}\n".encode()
    plant.plant(path, good, process.PID_FILE_MAX_BYTES)
    with pytest.raises(Unusable) as refused:
        bounded(lambda: read_pid(path))
    assert str(path.parent) in str(refused.value)


def test_an_unusable_pid_file_is_one_warning_and_no_process(tmp_path: Path) -> None:
    path = tmp_path / "agentapi.pid"
    os.mkfifo(path)
    with capture_logs() as logs:
        assert bounded(lambda: find_process(StopHookInputs(pid_file=path))) is None
    assert [(e["event"], e["log_level"]) for e in logs] == [("agentapi_pid_refused", "warning")]
    assert str(path) in logs[0]["problem"]


def test_signal_refusal_never_lets_our_own_processes_through() -> None:
    for pid in (os.getpid(), os.getppid(), os.getpgrp(), os.getsid(0)):
        assert signal_refusal(pid) is not None, pid
    for pid in (1, 0, -1, -os.getpgrp(), 2**31, 2**63, process.pid_max() + 1):
        assert signal_refusal(pid) is not None, pid
    assert signal_refusal(process.pid_max()) is None  # the largest PID the kernel gives
    assert signal_refusal(2) is None  # the kernel's kthreadd on Linux: range alone decides


def test_the_last_guard_before_a_signal(monkeypatch: pytest.MonkeyPatch) -> None:
    # Were a refused PID ever to reach a process object, nothing is sent to it.
    own = process.AgentAPIProcess(os.getpid())
    try:
        assert own.send(signal.SIGKILL) is False
    finally:
        own.close()


def test_pid_max_is_the_kernels_or_the_limit() -> None:
    assert 1 < process.pid_max() <= process.PID_MAX_LIMIT


# -- AgentAPI's state file ----------------------------------------------------------------


def test_the_state_file_reads_a_good_file(tmp_path: Path) -> None:
    path = tmp_path / "agentapi-state.json"
    path.write_bytes(STATE_FILE)
    messages, age = bounded(lambda: read_state_file(path))
    assert [m.content for m in messages] == ["Welcome"]
    assert age is not None


@each()
def test_the_state_file_refuses_every_plant(tmp_path: Path, plant: Plant) -> None:
    path = tmp_path / "module" / "agentapi-state.json"
    path.parent.mkdir()
    plant.plant(path, STATE_FILE, MAX_MESSAGES_BYTES)
    with pytest.raises(Unusable) as refused:
        bounded(lambda: read_state_file(path))
    assert str(path.parent) in str(refused.value)


def test_every_plant_is_in_the_table() -> None:
    # The readers above run the whole table: a plant added later runs against all of them.
    assert {p.name for p in TRUST_PLANTS} < {p.name for p in PLANTS}
    assert len(PLANTS) >= 13


@pytest.mark.anyio
async def test_the_stop_hook_falls_back_past_an_unusable_state_file(tmp_path: Path) -> None:
    # The state file is read when `/messages` could not be: unusable, there is no conversation
    # (one warning), and the stop goes on.
    path = tmp_path / "agentapi-state.json"
    os.mkfifo(path, 0o600)
    clock = ManualClock()
    with capture_logs() as logs, anyio.fail_after(HANG):
        assert await _from_state_file(path, None, clock.now() + 5, clock) is None
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("agentapi_state_file_unusable", "warning")
    ]
    assert "FIFO" in logs[0]["error"]
