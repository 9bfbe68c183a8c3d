"""The daemon's stop path: from the stop signal to the snapshot stored and the final status sent.

The first SIGTERM/SIGINT starts it, in its own scope under the shutdown budget; a second one
cancels that scope ("hurry": the upload is abandoned). SIGHUP is ignored (settings are read once).
It is the measure of this daemon (issue 14), so what can be done before the signal is: the
mirror's snapshot body is built once the mirror is quiet, and when the `/events` stream is
current at the signal that body is uploaded as it is (re-fetching megabytes only delays it);
otherwise `/messages` is fetched, the mirror the fallback. The watchers are torn down only after
the upload's first attempt (or TEARDOWN_GRACE), so their unwinding does not delay the request.

The report socket outlives the watchers: it serves until the final flush is done, then closes.
A stop of the workspace stops the agent too, whose hooks fire now (Claude Code's `SessionEnd`).
Were the socket gone with the watchers, such a hook would report straight to Coder while the
flush may still be sending an older wanted status (held up by a slow Coder), and whichever
landed last would show for good. Kept open, every report of the stop reaches the rules and the
one reporter, which sends the latest once; a report after the close goes straight to Coder,
after the daemon's last send. So the order is one: the daemon's sends, then the direct ones.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

import anyio
import anyio.abc
import structlog

from agent import boundary
from agent.agentapi import AgentAPIClient, Message
from agent.clock import Clock
from agent.config import Settings
from agent.daemon.mirror import Mirror
from agent.daemon.reporter import Reporter
from agent.daemon.sdnotify import Notifier
from agent.snapshot import Snapshot
from agent.stop import early as earlystop
from agent.stop.upload import Outcome, SnapshotUploader, save_snapshot

log = structlog.get_logger("agent.daemon.stop")

# AgentAPI sends several updates a second while the agent writes: a pause this long means it
# stopped, and the snapshot body (a few ms to build) is built ahead of a stop.
PREPARE_AFTER = 0.1
# The watchers are torn down this long after the signal even while the upload's first attempt
# hangs (a hung connect).
TEARDOWN_GRACE = 0.1


@dataclass(frozen=True)
class Watching:
    """The daemon's watching, as the stop path sees it: the daemon runs it, the stop ends it."""

    ready: anyio.Event  # every watcher has started
    scope: anyio.CancelScope  # the watchers run in it
    down: anyio.Event  # they are torn down
    closing: anyio.Event  # the report socket is to close (it serves on until then)
    closed: anyio.Event  # it is closed, every client it took answered (or there is none)


class StopPath:
    """The stop of one daemon; it owns the mirror the watchers keep current."""

    def __init__(
        self,
        settings: Settings,
        *,
        agentapi: AgentAPIClient,
        uploader: SnapshotUploader | None,
        reporter: Reporter | None,
        notifier: Notifier,
        clock: Clock,
        watching: Watching,
    ) -> None:
        self.settings = settings
        self.agentapi = agentapi
        self.uploader = uploader  # None without Coder HTTP (hooks mode by the agent's socket)
        self.reporter = reporter  # None when the daemon reports no status
        self.notifier = notifier
        self.clock = clock
        self.watching = watching
        self._mirror_changed = anyio.Event()
        self.mirror = Mirror(on_change=self._on_mirror_change)
        self._stop_scope = anyio.CancelScope()
        self._outcome: Outcome | None = None
        self._stop_requested = anyio.Event()
        self._stop_deadline = 0.0  # on the clock: the shutdown budget from the stop
        self._attempted = anyio.Event()  # the upload's first attempt is over
        self._saved = anyio.Event()  # the stop's upload is over, its outcome known
        self._wound_down = anyio.Event()
        # Captured at the signal: the snapshot when the stream was current, and the messages.
        self._live_at_stop: Snapshot | None = None
        self._mirrored_at_stop: list[Message] | None = None

    async def run(self) -> Outcome:
        """Wait for the stop, save the snapshot, wait for the wind-down; INTERRUPTED when a
        second signal abandoned the upload."""
        await self._stop_requested.wait()
        with self._stop_scope:
            self._outcome = await self._save(
                self._stop_deadline,
                live=self._live_at_stop,
                fallback=self._mirrored_at_stop,
                attempted=self._attempted,
            )
            self._saved.set()
            self._attempted.set()  # also when nothing was to upload (hooks mode)
            await self._wound_down.wait()  # the final status too, within the same budget
        # Set as soon as the stop path knows it: a second signal arriving after the upload
        # finished must not turn a saved snapshot into "interrupted".
        return Outcome.INTERRUPTED if self._outcome is None else self._outcome

    def request_stop(self, reason: str = "requested") -> None:
        """First call: stop watching and save the snapshot. Second call: hurry, abandon it."""
        if not self._stop_requested.is_set():
            self._stop_deadline = self.clock.now() + self.settings.shutdown_budget
            # The watchers run on for a moment: the snapshot is the mirror at the signal.
            try:
                if len(self.mirror):
                    self._mirrored_at_stop = self.mirror.messages()
                    if self.mirror.current:
                        self._live_at_stop = self.mirror.snapshot()
            except Exception as exc:  # noqa: BLE001 - the stop path runs whatever: it fetches
                log.error(boundary.EVENT, task="capture_at_stop", **boundary.describe(exc))
            self._stop_requested.set()
            if not self.watching.ready.is_set():
                self.watching.scope.cancel()  # still starting: nothing to hold the upload up
            log.info("stop_requested", reason=reason)
        else:
            log.warning("stop_hurried", reason=reason)
            self._stop_scope.cancel()

    async def signals(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Turn SIGTERM/SIGINT into `request_stop`; log and ignore SIGHUP."""
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            task_status.started()
            early = earlystop.requested()
            if early is not None:
                # Arrived while Python was still importing: the stop path runs all the same.
                self.request_stop(early)
            async for signum in signals:
                name = signal.Signals(signum).name
                if signum == signal.SIGHUP:
                    log.info("signal_ignored", signal=name, reason="restart to reload settings")
                else:
                    self.request_stop(name)

    async def wind_down(self) -> None:
        """After the upload's first attempt (or TEARDOWN_GRACE): tell systemd, tear the watchers
        down, flush the final status, close the report socket, flush what it took as it closed;
        all within the budget (the socket is closed at its end whatever is left)."""
        await self._stop_requested.wait()
        await self.clock.wait(self._attempted, TEARDOWN_GRACE)
        self.notifier.notify(STOPPING="1", STATUS="stopping: saving the conversation")
        self.watching.scope.cancel()
        try:
            with self.clock.move_on_after(self._stop_deadline - self.clock.now()):
                await self.watching.down.wait()  # the reporter's task too: one send at a time
                await self._flush_reports()  # the socket serves on: reports now join this flush
                flushed = None if self.reporter is None else self.reporter.wanted
                self.watching.closing.set()
                await self.watching.closed.wait()
                if self.reporter is not None and self.reporter.wanted != flushed:
                    await self._flush_reports()  # taken as it closed: rarely any
        finally:
            self.watching.closing.set()
        if self.reporter is not None and (pending := self.reporter.pending) is not None:
            log.warning(
                "status_not_delivered_at_stop", state=pending.state.value, message=pending.message
            )
        self._wound_down.set()

    async def snapshot_now(self) -> tuple[str, int]:
        """`snapshot` beside the daemon: the stop path's upload now, watching goes on; the
        outcome's word and exit code. During the stop, the stop's own upload's outcome."""
        if self._stop_requested.is_set():
            await self._saved.wait()  # a second upload would only race the stop's
            outcome = Outcome.INTERRUPTED if self._outcome is None else self._outcome
            return outcome.value, int(outcome.exit_code)
        deadline = self.clock.now() + self.settings.shutdown_budget
        mirrored = len(self.mirror) > 0
        outcome = await self._save(
            deadline,
            live=self.mirror.snapshot() if mirrored and self.mirror.current else None,
            fallback=self.mirror.messages() if mirrored else None,
        )
        return outcome.value, int(outcome.exit_code)

    async def _save(
        self,
        deadline: float,
        *,
        live: Snapshot | None,
        fallback: list[Message] | None,
        attempted: anyio.Event | None = None,
    ) -> Outcome:
        """Upload `live`, else fetch with `fallback` kept; always an outcome."""
        try:
            # No uploader only in hooks mode (by the agent's socket alone).
            if self.settings.hooks_mode or self.uploader is None:
                reason = "there is no AgentAPI (hooks mode) to read it from"
                log.info("snapshot_skipped", reason=reason)
                return Outcome.SKIPPED
            return await save_snapshot(
                task_id=self.settings.task_id,
                agentapi=self.agentapi,
                coder=self.uploader,
                deadline=deadline,
                fetch_timeout=self.settings.stop_fetch_timeout,
                live=live,
                fallback=fallback,
                clock=self.clock,
                attempted=attempted,
            )
        except Exception as exc:  # noqa: BLE001 - the stop path ends with an outcome
            log.error(boundary.EVENT, task="save_snapshot", **boundary.describe(exc))
            log.error("snapshot_failed", reason="an unexpected error (the line above)")
            return Outcome.UNDELIVERED

    async def _flush_reports(self) -> None:
        """Confirm the latest wanted status within the budget (a send the reporter's task had in
        flight is in doubt, so sent again); a report handed over meanwhile is sent after it."""
        if self.reporter is None:
            return
        try:
            await self.reporter.flush(self._stop_deadline)
        except Exception as exc:  # noqa: BLE001 - the snapshot beside it is saved whatever
            log.error(boundary.EVENT, task="flush_reports", **boundary.describe(exc))

    def _on_mirror_change(self) -> None:
        self._mirror_changed.set()

    async def prepare_snapshot(self) -> None:
        """Build the mirror's snapshot body once it is quiet for PREPARE_AFTER; no timer while
        it is ready or the stream is down (the stop path then fetches)."""
        while True:
            self._mirror_changed = anyio.Event()
            if self.mirror.snapshot_ready or not self.mirror.current:
                await self._mirror_changed.wait()
                continue
            version = self.mirror.version
            await self.clock.sleep(PREPARE_AFTER)
            if self.mirror.version == version:
                self.mirror.snapshot()
