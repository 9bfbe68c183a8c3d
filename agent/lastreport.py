"""The last explicit report, kept in the runtime directory so that it survives a crash.

The rules hold a complete or failed against idle only in memory: after a crash and a restart
(systemd `Restart=`) the daemon's first observation would report idle over it, so the daemon
saves such a report here and restores it at start. The direct path (`report` or a hook with no
daemon listening) keeps the same file through `DirectMemory`, deciding by the daemon's own rule
(`agent.rules.step`): without it Claude Code's `Stop` after the agent's `report complete` would
turn the task back to idle. The daemon saves a report when the rules want it, before Coder has
it, and marks it confirmed once Coder does: a report the daemon died before delivering is not
shown, so the direct path sends it instead of holding against it (rule 7 keeps the report, and
Coder must get it). Written atomically, mode 0600, and read through the one trust
check (agent.reportsocket.trust.read_trusted), so another user cannot plant a `complete`. A
file refused or unparsable is ignored and logged: it must never stop the daemon or a hook.
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


def save(path: Path, status: AppStatus, *, confirmed: bool = True) -> None:
    """Write `status` to `path` atomically, mode 0600; a failure is logged, not raised.
    `confirmed`: Coder has it (False: wanted, not yet delivered)."""
    fields = {"state": status.state.value, "message": status.message, "uri": status.uri}
    body = json.dumps(
        {**fields, "confirmed": confirmed},
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
    """The report saved at `path`, or None; never raises (anything else is one warning)."""
    saved = _load(path)
    return None if saved is None else saved[0]


def _load(path: Path) -> tuple[AppStatus, bool] | None:
    """The report saved at `path` and whether Coder confirmed it, or None."""
    body = read_trusted(path, max_bytes=_MAX_BYTES, log=log, what="the last explicit report")
    if body is None:
        return None
    try:
        raw = json.loads(body)
        status = AppStatus(AppState(raw["state"]), str(raw["message"]), str(raw.get("uri", "")))
        confirmed = raw.get("confirmed", True) is not False  # older files: confirmed ones only
    # Any text at all: invalid UTF-8 or JSON, nesting past the recursion limit, a wrong shape.
    except (ValueError, LookupError, TypeError, RecursionError, MemoryError) as exc:
        log.warning("last_report_unreadable", path=str(path), error=type(exc).__name__)
        return None
    return status, confirmed


def clear(path: Path) -> None:
    """Forget the saved report (it no longer holds)."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("last_report_not_cleared", path=str(path), error=str(exc))


class DirectMemory:
    """The reporting rules' memory for reports sent straight to Coder (no daemon listens)."""

    def __init__(self, directory: Path | None) -> None:
        # The report socket's directory: the daemon's own file, shared both ways.
        self.path = None if directory is None else directory / FILE_NAME
        saved = None if self.path is None else _load(self.path)
        self._saved = None if saved is None else saved[0]
        # False: a daemon wanted it and stopped before Coder confirmed it (Coder may not show it).
        self.confirmed = saved is None or saved[1]

    def _after(self, status: AppStatus, from_hook: bool) -> tuple[RulesState, RulesState]:
        saved = self._saved
        sticky = saved is not None and saved.state in (AppState.COMPLETE, AppState.FAILED)
        before = RulesState(wanted=saved, sticky=sticky)
        return before, step(before, ExplicitReport(status, 0.0, from_hook=from_hook), 0.0)

    def held(self, status: AppStatus, *, from_hook: bool) -> AppStatus | None:
        """What the rules keep instead of `status` (Coder shows it when `confirmed`; else it is
        to be sent in its place), or None when `status` is to be sent."""
        before, after = self._after(status, from_hook)
        return before.wanted if after is before else None

    def delivered(self, status: AppStatus, *, from_hook: bool) -> None:
        """Coder confirmed `status` (one not delivered changes nothing): remember it while it
        holds, forget the old one otherwise."""
        if self.path is None:
            return
        _, after = self._after(status, from_hook)
        if after.sticky:
            # Nothing is written into a directory that is not ours: another user could read it.
            try:
                make_private_dir(self.path.parent)
            except (OSError, Untrusted) as exc:
                log.warning("last_report_not_saved", path=str(self.path.parent), error=str(exc))
            else:
                save(self.path, status)
        elif self._saved is not None:
            clear(self.path)
        self._saved = status if after.sticky else None
