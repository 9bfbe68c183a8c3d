"""The last explicit report, kept in the runtime directory so that it survives a crash.

After a crash or SIGKILL and a restart (systemd `Restart=`), the daemon's first observation
would report idle over an explicit `complete` the agent's hook sent before: the rules hold a
complete or failed against idle, but only in memory. The daemon saves such a report here and
restores it at start. The file is written atomically (a private temporary file, then a rename)
with mode 0600, and removed once the report no longer holds. It is read through the one trust
check (agent.reportsocket.trust.read_trusted): in a directory that is ours, a regular file of
ours that no one else can write, at most 64 KiB, never through a symlink, never waiting on a
FIFO. Another user who made the directory first cannot plant a `complete` there. A file that is
refused or cannot be parsed is ignored (and logged): it must never stop the daemon or a hook.

The direct path (`report` or a hook with no daemon listening) keeps the same file, in the same
directory, through `DirectMemory`: without it each hook process would start from nothing, and
Claude Code's `Stop` after the agent's own `report complete` would turn the task back to idle.
The decision is the daemon's own rule (`agent.rules.step`), applied to what the file holds.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import structlog

from agent.models import AppState, AppStatus
from agent.reportsocket.trust import Untrusted, make_private_dir, read_trusted
from agent.rules import ExplicitReport, RulesState, step

log = structlog.get_logger("agent.lastreport")
FILE_NAME = "last-report.json"
# A file far larger than any report is not ours to parse.
_MAX_BYTES = 64 * 1024


def save(path: Path, status: AppStatus) -> None:
    """Write `status` to `path` atomically, mode 0600; a failure is logged, not raised."""
    body = json.dumps(
        {"state": status.state.value, "message": status.message, "uri": status.uri},
        ensure_ascii=True,  # lone surrogates from outside become escapes, never an encode error
    ).encode("ascii")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except OSError as exc:
        log.warning("last_report_not_saved", path=str(path), error=str(exc))
        with contextlib.suppress(OSError):
            temporary.unlink()


def load(path: Path) -> AppStatus | None:
    """The report saved at `path`, or None (no file, or one not trusted or not a report).

    Never raises: whatever another user could have put there is ignored with one warning.
    """
    # Ours only, not root's: only our own daemon and hooks write this file.
    body = read_trusted(path, max_bytes=_MAX_BYTES, log=log, what="the last explicit report")
    if body is None:
        return None
    try:
        raw = json.loads(body)
        status = AppStatus(AppState(raw["state"]), str(raw["message"]), str(raw.get("uri", "")))
    # Any text at all: invalid UTF-8 or JSON (ValueError), nesting deep enough to exhaust the
    # recursion limit, a list or a string where an object was written, a wrong state.
    except (ValueError, LookupError, TypeError, RecursionError, MemoryError) as exc:
        log.warning("last_report_unreadable", path=str(path), error=type(exc).__name__)
        return None
    return status


def clear(path: Path) -> None:
    """Forget the saved report (it no longer holds)."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("last_report_not_cleared", path=str(path), error=str(exc))


def _sticky(status: AppStatus | None) -> bool:
    return status is not None and status.state in (AppState.COMPLETE, AppState.FAILED)


class DirectMemory:
    """The reporting rules' memory for reports sent straight to Coder (no daemon listens).

    `held(status, from_hook)` says whether the rules keep what Coder shows instead (a hook's
    idle after an explicit complete or failed); `delivered(status, from_hook)` records a report
    Coder confirmed. A report that was not delivered changes nothing: the file then still says
    what Coder was last known to show.
    """

    def __init__(self, directory: Path | None) -> None:
        # The report socket's directory: the daemon's own file, so a daemon started later
        # restores what the direct path recorded, and the other way round.
        self.path = None if directory is None else directory / FILE_NAME
        self._saved = None if self.path is None else load(self.path)

    def _after(self, status: AppStatus, from_hook: bool) -> tuple[RulesState, RulesState]:
        before = RulesState(wanted=self._saved, sticky=_sticky(self._saved))
        return before, step(before, ExplicitReport(status, 0.0, from_hook=from_hook), 0.0)

    def held(self, status: AppStatus, *, from_hook: bool) -> AppStatus | None:
        """What Coder keeps showing instead of `status`, or None when `status` is to be sent."""
        before, after = self._after(status, from_hook)
        return before.wanted if after is before else None

    def delivered(self, status: AppStatus, *, from_hook: bool) -> None:
        """Coder confirmed `status`: remember it while it holds, forget the old one otherwise."""
        if self.path is None:
            return
        _, after = self._after(status, from_hook)
        if after.sticky:
            if _make_private_dir(self.path.parent):
                save(self.path, status)
        elif self._saved is not None:
            clear(self.path)
        self._saved = status if after.sticky else None


def _make_private_dir(directory: Path) -> bool:
    """The daemon's directory checks (0700, ours); False, logged, when the directory fails them.

    Nothing is written into a directory that is not ours: another user could read it there.
    """
    try:
        make_private_dir(directory)
    except (OSError, Untrusted) as exc:
        log.warning("last_report_not_saved", path=str(directory), error=str(exc))
        return False
    return True
