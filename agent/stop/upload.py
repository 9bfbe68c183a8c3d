"""The daemon's stop path (the blocking one is `agent.stop.oneshot`), in one deadline.

Its steps, endings and log lines are `agent.stop.outcome`'s. The daemon passes its mirror's
snapshot as `live` when the event stream was connected and current (nothing is fetched then),
and the mirror's messages as the fallback otherwise, so that a dead or blocked AgentAPI at stop
still leaves the newest messages saved.
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
    """What uploads the snapshot (`agent.coder.httpapi.CoderClient`, or a test's fake): one
    attempt per call, errors from the `agent.errors` tree; `client` as `snapshot_started` logs."""

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
    except (TimeoutError, RemoteError) as exc:
        steps.fetch_missed(log, within, exc, fallback)
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
    """Fetch, build and upload the snapshot before `deadline`; every ending an Outcome, logged.

    `live`: current messages, or their snapshot: nothing fetched. `attempted` is set once the
    first attempt ended or there is nothing to upload (the daemon's watchers go down then).
    """
    try:
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
    finally:
        if attempted is not None:
            attempted.set()
