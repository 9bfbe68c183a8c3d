"""The last explicit report on disk: atomic, private, never followed through a symlink."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from agent import lastreport as laststate
from agent.models import AppState, AppStatus

DONE = AppStatus(AppState.COMPLETE, "Opened PR #12 \udcff", "https://git.example/pr/12")


def test_saved_privately_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / laststate.FILE_NAME
    laststate.save(path, DONE)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert laststate.load(path) == DONE
    assert [p.name for p in tmp_path.iterdir()] == [laststate.FILE_NAME], "no temporary left"
    laststate.clear(path)
    assert laststate.load(path) is None


def test_garbage_or_a_symlink_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / laststate.FILE_NAME
    path.write_text('{"state": "finished"}')
    assert laststate.load(path) is None
    path.unlink()
    target = tmp_path / "elsewhere.json"
    laststate.save(target, DONE)
    os.symlink(target, path)
    assert laststate.load(path) is None, "a symlink is not followed"


def test_an_unwritable_directory_is_logged_not_raised(tmp_path: Path) -> None:
    laststate.save(tmp_path / "missing" / laststate.FILE_NAME, DONE)


IDLE = AppStatus(AppState.IDLE, "Turn finished")
WORKING = AppStatus(AppState.WORKING, "Now the docs")
FAILED = AppStatus(AppState.FAILED, "Tests fail")


def test_direct_memory_holds_a_hooks_idle_after_an_explicit_complete(tmp_path: Path) -> None:
    run = tmp_path / "run"
    memory = laststate.DirectMemory(run)
    assert memory.held(IDLE, from_hook=True) is None  # nothing remembered: sent
    memory.delivered(DONE, from_hook=False)
    assert stat.S_IMODE(run.stat().st_mode) == 0o700, "the directory is made private"
    # A new process (the next hook) reads what the last one remembered.
    again = laststate.DirectMemory(run)
    assert again.held(IDLE, from_hook=True) == DONE
    # Not from a hook, an idle is an explicit report like any other: sent.
    assert again.held(IDLE, from_hook=False) is None
    # Anything but idle replaces it, and once delivered the hold is over.
    assert again.held(WORKING, from_hook=True) is None
    again.delivered(WORKING, from_hook=True)
    assert laststate.load(run / laststate.FILE_NAME) is None
    assert laststate.DirectMemory(run).held(IDLE, from_hook=True) is None


def test_direct_memory_keeps_the_newest_sticky_report(tmp_path: Path) -> None:
    memory = laststate.DirectMemory(tmp_path)
    memory.delivered(DONE, from_hook=False)
    memory.delivered(FAILED, from_hook=True)
    assert laststate.DirectMemory(tmp_path).held(IDLE, from_hook=True) == FAILED


def test_direct_memory_without_a_directory_remembers_nothing() -> None:
    memory = laststate.DirectMemory(None)
    memory.delivered(DONE, from_hook=False)
    assert memory.held(IDLE, from_hook=True) is None
