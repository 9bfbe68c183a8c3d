"""The stop path's endings, exit codes and log lines, apart from any I/O.

One place for both shells, `agent.stop.upload` (the daemon's: anyio, httpx) and
`agent.stop.oneshot` (blocking, the standard library), so that both end alike and say so alike.
Each step takes the shell's logger: structlog's, or `agent.log.Writer` (same events and fields).
Standard library only.
"""

from __future__ import annotations

import enum

from agent.errors import RemoteError, TLSRefused, TryAgain, Unsupported
from agent.models import ExitCode
from agent.snapshot import Snapshot, build_snapshot

# A plain constant that type checkers treat as true: `typing` is not imported on the hooks' path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, Protocol

    from agent.snapshot import SnapshotMessage

    class Log(Protocol):
        """What a step needs of a logger: structlog's loggers and the hooks' Writer fit."""

        def debug(self, event: str, **fields: Any) -> Any: ...
        def info(self, event: str, **fields: Any) -> Any: ...
        def warning(self, event: str, **fields: Any) -> Any: ...
        def error(self, event: str, **fields: Any) -> Any: ...


class Outcome(enum.StrEnum):
    """How the stop path ended, as logged (`outcome=skipped`); `exit_code` is the process's."""

    UPLOADED = "uploaded"
    SKIPPED = "skipped"  # no task id, no messages, or the server has no Coder Tasks
    NO_CONVERSATION = "no_conversation"  # AgentAPI did not answer and nothing held the messages
    REJECTED = "rejected"  # the server refused the upload (400, 401): retrying cannot help
    UNDELIVERED = "undelivered"  # not reached in time (down, 5xx, 429 until the end)
    INTERRUPTED = "interrupted"  # a second signal asked to hurry: the upload was abandoned

    @property
    def exit_code(self) -> ExitCode:
        """The process exit code for this ending: OK, or the ExitCode of the same name."""
        ok = self in (Outcome.UPLOADED, Outcome.SKIPPED)
        return ExitCode.OK if ok else ExitCode[self.name]


def no_task(log: Log) -> Outcome:
    log.info("snapshot_skipped", reason="no task id (CODER_TASK_ID is not set)")
    return Outcome.SKIPPED


def started(log: Log, budget: float, client: str) -> None:
    """The first line: with every line's `mono` field it makes the stop path's duration
    checkable from the log. `client`: the HTTP runtime (`httpx`, or `stdlib`)."""
    log.info("snapshot_started", budget_s=round(budget, 3), client=client)


def fetch_window(fetch_timeout: float, remaining: float) -> float:
    """Seconds the fresh `/messages` may take: its own timeout, within what the deadline left."""
    return max(0.05, min(fetch_timeout, remaining))


def fetch_missed(
    log: Log, within: float, error: TimeoutError | RemoteError, fallback: object | None
) -> None:
    """`/messages` did not answer within `within` s, or failed (refused, an error status, ...)."""
    if isinstance(error, RemoteError):
        log.warning("agentapi_messages_failed", error=str(error), fallback=fallback is not None)
    else:
        log.warning("agentapi_messages_timeout", timeout_s=within, fallback=fallback is not None)


def fetched(log: Log, count: int) -> None:
    log.debug("agentapi_messages_fetched", count=count)


def build(log: Log, messages: Sequence[SnapshotMessage] | None) -> Snapshot | Outcome:
    """The snapshot to upload, or the ending (logged): no conversation read (None), or no
    message worth saving."""
    if messages is None:
        log.error(
            "snapshot_failed", reason="AgentAPI did not answer, so there is no conversation to save"
        )
        return Outcome.NO_CONVERSATION
    snapshot = build_snapshot(messages)
    if snapshot is None:
        log.info("snapshot_skipped", reason="no messages")
        return Outcome.SKIPPED
    return snapshot


def retrying(log: Log, error: RemoteError, wait: float, attempt: int) -> None:
    """One failed attempt, retried after `wait` s (debug: the ending is the line that counts)."""
    log.debug("snapshot_retry", error=str(error), wait_s=round(wait, 3), attempt=attempt)


def upload_failed(log: Log, error: RemoteError, retries: int) -> Outcome:
    """The ending of an upload that raised `error` after `retries` retries, logged once."""
    if isinstance(error, Unsupported):
        log.info("snapshot_skipped", reason="unsupported by this server (404)")
        return Outcome.SKIPPED
    if isinstance(error, TryAgain):
        log.error(
            "snapshot_failed",
            reason="refused in the TLS handshake (not retried: a retry cannot fix it)"
            if isinstance(error, TLSRefused)
            else "not delivered before the deadline",
            error=str(error),
            retries=retries,
        )
        return Outcome.UNDELIVERED
    log.error("snapshot_failed", reason="rejected", error=str(error), status=error.status)
    return Outcome.REJECTED


def uploaded(log: Log, task_id: object, snapshot: Snapshot, retries: int) -> Outcome:
    log.info(
        "snapshot_uploaded",
        task_id=str(task_id),
        bytes=len(snapshot.body),
        messages=snapshot.message_count,
        truncated=snapshot.truncated,
        dropped=snapshot.dropped,
        retries=retries,
    )
    return Outcome.UPLOADED
