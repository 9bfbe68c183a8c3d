"""The last explicit report on disk: atomic, private, never followed through a symlink."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from agent import laststate
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
