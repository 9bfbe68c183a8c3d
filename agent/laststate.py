"""The last explicit report, kept in the runtime directory so that it survives a crash.

After a crash or SIGKILL and a restart (systemd `Restart=`), the daemon's first observation
would report idle over an explicit `complete` the agent's hook sent before: the rules hold a
complete or failed against idle, but only in memory. The daemon saves such a report here and
restores it at start. The file is written atomically (a private temporary file, then a rename)
with mode 0600, read without following a symlink, and removed once the report no longer holds.
A file that cannot be read or parsed is ignored (and logged): it must never stop the daemon.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import structlog

from agent.models import AppState, AppStatus

log = structlog.get_logger("agent.laststate")
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
    """The report saved at `path`, or None (no file, or one that is not a report)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("last_report_unreadable", path=str(path), error=str(exc))
        return None
    try:
        with os.fdopen(fd, "rb") as file:
            raw = json.loads(file.read(_MAX_BYTES))
        status = AppStatus(AppState(raw["state"]), str(raw["message"]), str(raw.get("uri", "")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("last_report_unreadable", path=str(path), error=type(exc).__name__)
        return None
    return status


def clear(path: Path) -> None:
    """Forget the saved report (it no longer holds)."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("last_report_not_cleared", path=str(path), error=str(exc))
