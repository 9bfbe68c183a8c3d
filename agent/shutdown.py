"""The stop path: read the conversation, build the snapshot, upload it, all inside one deadline.

Shared by the one-shot hook (`python -m agent snapshot`) and the daemon's SIGTERM handling. It
depends on nothing but its arguments. The daemon passes its mirror as `live` when the event
stream was connected and current (then nothing is fetched: the upload starts at once), and as
the fallback otherwise, so a dead or blocked AgentAPI at stop still leaves the newest messages
saved.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from uuid import UUID

import anyio
import structlog

from agent.agentapi import AgentAPIClient, Message
from agent.clock import SYSTEM_CLOCK, Clock
from agent.coder import CoderClient
from agent.errors import RemoteError, TryAgain, Unsupported
from agent.models import ExitCode
from agent.retry import deliver
from agent.snapshot import build_snapshot

log = structlog.get_logger("agent.shutdown")


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
        """The process exit code for this ending."""
        return _EXIT_CODES[self]


_EXIT_CODES = {
    Outcome.UPLOADED: ExitCode.OK,
    Outcome.SKIPPED: ExitCode.OK,
    Outcome.NO_CONVERSATION: ExitCode.NO_CONVERSATION,
    Outcome.REJECTED: ExitCode.REJECTED,
    Outcome.UNDELIVERED: ExitCode.UNDELIVERED,
    Outcome.INTERRUPTED: ExitCode.INTERRUPTED,
}


async def fetch_messages(
    agentapi: AgentAPIClient,
    within: float,
    fallback: Sequence[Message] | None,
) -> Sequence[Message] | None:
    """A fresh `/messages`, or `fallback` when AgentAPI fails or does not answer `within` s."""
    try:
        with anyio.fail_after(within):
            messages = await agentapi.messages(request_timeout=within)
    except TimeoutError:
        log.warning("agentapi_messages_timeout", timeout_s=within, fallback=fallback is not None)
        return fallback
    except RemoteError as exc:
        log.warning("agentapi_messages_failed", error=str(exc), fallback=fallback is not None)
        return fallback
    log.debug("agentapi_messages_fetched", count=len(messages))
    return messages


async def save_snapshot(
    *,
    task_id: UUID | None,
    agentapi: AgentAPIClient,
    coder: CoderClient,
    deadline: float,
    fetch_timeout: float,
    fallback: Sequence[Message] | None = None,
    live: Sequence[Message] | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Outcome:
    """Fetch, build and upload the task's log snapshot before `deadline` (on `clock`).

    `live`: messages known to be current (a connected event stream's mirror, or what the stop
    hook read before anything else): uploaded without fetching. Never raises for a remote
    failure: every ending is an Outcome, logged once.
    """
    if task_id is None:
        log.info("snapshot_skipped", reason="no task id (CODER_TASK_ID is not set)")
        return Outcome.SKIPPED
    # With the `mono` field of every line, this makes the stop path's duration checkable from
    # the process's own log (tests do, on a loaded machine, instead of timing from outside).
    log.info("snapshot_started", budget_s=round(deadline - clock.now(), 3))
    if live is not None:
        messages: Sequence[Message] | None = live
        log.debug("snapshot_from_live_mirror", count=len(live))
    else:
        remaining = deadline - clock.now()
        within = max(0.05, min(fetch_timeout, remaining))
        messages = await fetch_messages(agentapi, within, fallback)
    if messages is None:
        log.error(
            "snapshot_failed", reason="AgentAPI did not answer, so there is no conversation to save"
        )
        return Outcome.NO_CONVERSATION
    snapshot = build_snapshot(messages)
    if snapshot is None:
        log.info("snapshot_skipped", reason="no messages")
        return Outcome.SKIPPED
    retries = 0

    def on_retry(exc: RemoteError, wait: float) -> None:
        nonlocal retries
        retries += 1
        log.debug("snapshot_retry", error=str(exc), wait_s=round(wait, 3), attempt=retries)

    try:
        await deliver(
            lambda: coder.upload_log_snapshot(task_id, snapshot.body),
            deadline=deadline,
            clock=clock,
            on_retry=on_retry,
        )
    except Unsupported:
        log.info("snapshot_skipped", reason="unsupported by this server (404)")
        return Outcome.SKIPPED
    except TryAgain as exc:
        log.error(
            "snapshot_failed",
            reason="not delivered before the deadline",
            error=str(exc),
            retries=retries,
        )
        return Outcome.UNDELIVERED
    except RemoteError as exc:
        log.error("snapshot_failed", reason="rejected", error=str(exc), status=exc.status)
        return Outcome.REJECTED
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
