"""The daemon's stop path: read the conversation, build the snapshot, upload it, in one deadline.

The async shell (the daemon's SIGTERM, and `snapshot` handed to it over the report socket); the
blocking shell of the short-lived commands (`snapshot` without a daemon, `stop-hook`) is
`agent.stop.oneshot`. Both take their steps, endings and log lines from `agent.stop.outcome`,
their caps from `agent.conversation` and `agent.wire`. It depends on nothing but its arguments.
The daemon passes its mirror's snapshot as `live` when the event stream was connected and
current (then nothing is fetched or built: the upload starts at once), and the mirror's
messages as the fallback otherwise, so a dead or blocked AgentAPI at stop still leaves the
newest messages saved.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import anyio
import structlog

from agent.agentapi import AgentAPIClient, Message
from agent.clock import SYSTEM_CLOCK, Clock
from agent.errors import RemoteError
from agent.retry import deliver
from agent.snapshot import Snapshot
from agent.stop import outcome as steps
from agent.stop.outcome import Outcome

__all__ = ["Outcome", "SnapshotUploader", "fetch_messages", "save_snapshot"]

log = structlog.get_logger("agent.stop.upload")


class SnapshotUploader(Protocol):
    """What uploads the snapshot: `agent.coder.httpapi.CoderClient` (or a test's fake). One attempt
    per call, errors from the `agent.errors` tree; `client` names the path in `snapshot_started`."""

    @property
    def client(self) -> str: ...

    async def upload_log_snapshot(self, task_id: str, body: bytes) -> None: ...


async def fetch_messages(
    agentapi: AgentAPIClient,
    within: float,
    fallback: Sequence[Message] | None,
    clock: Clock = SYSTEM_CLOCK,
) -> Sequence[Message] | None:
    """A fresh `/messages`, or `fallback` when AgentAPI fails or does not answer `within` s."""
    try:
        with clock.fail_after(within):
            messages = await agentapi.messages(request_timeout=within)
    except TimeoutError:
        steps.fetch_timed_out(log, within, fallback)
        return fallback
    except RemoteError as exc:
        steps.fetch_failed(log, exc, fallback)
        return fallback
    steps.fetched(log, len(messages))
    return messages


async def save_snapshot(
    *,
    task_id: str | None,
    agentapi: AgentAPIClient,
    coder: SnapshotUploader,
    deadline: float,
    fetch_timeout: float,
    fallback: Sequence[Message] | None = None,
    live: Sequence[Message] | Snapshot | None = None,
    clock: Clock = SYSTEM_CLOCK,
    attempted: anyio.Event | None = None,
) -> Outcome:
    """Fetch, build and upload the task's log snapshot before `deadline` (on `clock`).

    `live`: messages known to be current (a connected event stream's mirror, or what the stop
    hook read before anything else), or their snapshot already built: uploaded without
    fetching. `attempted` is set once the first upload attempt has ended, whatever its outcome,
    or when there is nothing to upload (the daemon tears its watchers down then, rather than
    while the upload is being sent). Never raises for a remote failure: every ending is an
    Outcome, logged once (the steps and lines are `agent.stop.outcome`'s, shared with the
    standard-library one-shot path).
    """
    try:
        return await _save(
            task_id=task_id,
            agentapi=agentapi,
            coder=coder,
            deadline=deadline,
            fetch_timeout=fetch_timeout,
            fallback=fallback,
            live=live,
            clock=clock,
            attempted=attempted,
        )
    finally:
        if attempted is not None:
            attempted.set()


async def _save(
    *,
    task_id: str | None,
    agentapi: AgentAPIClient,
    coder: SnapshotUploader,
    deadline: float,
    fetch_timeout: float,
    fallback: Sequence[Message] | None,
    live: Sequence[Message] | Snapshot | None,
    clock: Clock,
    attempted: anyio.Event | None,
) -> Outcome:
    if task_id is None:
        return steps.no_task(log)
    steps.started(log, deadline - clock.now(), client=coder.client)
    if isinstance(live, Snapshot):
        snapshot: Snapshot | Outcome = live
    else:
        if live is not None:
            messages: Sequence[Message] | None = live
            log.debug("snapshot_from_live_mirror", count=len(live))
        else:
            within = steps.fetch_window(fetch_timeout, deadline - clock.now())
            messages = await fetch_messages(agentapi, within, fallback, clock)
        if messages is None:
            return steps.no_conversation(log)
        snapshot = steps.build(log, messages)
    if not isinstance(snapshot, Snapshot):
        return snapshot
    body = snapshot.body
    retries = 0

    def on_retry(exc: RemoteError, wait: float) -> None:
        nonlocal retries
        retries += 1
        if attempted is not None:
            attempted.set()
        steps.retrying(log, exc, wait, retries)

    try:
        await deliver(
            lambda: coder.upload_log_snapshot(task_id, body),
            deadline=deadline,
            clock=clock,
            on_retry=on_retry,
        )
    except RemoteError as exc:
        return steps.upload_failed(log, exc, retries)
    return steps.uploaded(log, task_id, snapshot, retries)
