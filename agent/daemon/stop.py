"""The daemon's stop path: from the stop signal to the snapshot stored and the final status sent.

Its own home because it is its own concern (issue 19): the daemon watches and reports, and this
ends it. A signal task turns the first SIGTERM/SIGINT into the stop path, which runs in its own
scope under one deadline (the shutdown budget); a second signal cancels that scope too ("hurry":
the upload is abandoned). SIGHUP is logged and ignored: the configuration is read once at start,
so a restart is the way to change it.

The stop path uploads straight from the live mirror when the `/events` stream was connected and
replayed at the moment of the stop (the mirror then *is* the fresh state, and re-fetching a
history of megabytes only delays the upload); otherwise it fetches `/messages` with its own call
and keeps the mirror as the fallback when AgentAPI does not answer in time. `snapshot` run beside
the daemon asks it (over the report socket) to do the same upload at once (`snapshot_now`).

The stop path is the measure of this daemon (SIGTERM to snapshot stored, issue 14), so what can
be done before the signal is: the mirror's snapshot body is built once the mirror has been quiet
for `PREPARE_AFTER` (nothing is built while nothing changes), and what the signal captures is
that body as it is at that instant. The watchers are torn down (the stream, the report socket,
the reporter: a millisecond or two of unwinding on the one event loop) only once the upload's
first attempt has ended, or `TEARDOWN_GRACE` after the signal when it hangs, so that they do not
delay the request; the final status is flushed after that, within the same deadline.
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

# Seconds the mirror must stay unchanged before its snapshot body is built ahead of a stop:
# AgentAPI sends an update for every change of the screen while the agent writes (several a
# second), so a pause this long means the agent stopped writing; a build costs at most a few ms.
PREPARE_AFTER = 0.1
# Seconds the watchers keep running after the stop signal while the upload's first attempt has
# neither ended nor failed (a hung connect): then they are torn down beside it all the same.
TEARDOWN_GRACE = 0.1


@dataclass(frozen=True)
class Watching:
    """The daemon's watching, as the stop path sees it: the daemon runs it, the stop ends it."""

    ready: anyio.Event  # set once every watcher has started
    scope: anyio.CancelScope  # the watchers run in it: cancelling it tears them down
    down: anyio.Event  # set once they are torn down


class StopPath:
    """The stop of one daemon: the signals, the snapshot upload, the wind-down of the watching.

    It owns the mirror: the watchers keep it current, and it exists for the stop path (the
    snapshot uploaded as it is, or the fallback of a fetch).
    """

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
        # None for a daemon without Coder HTTP (hooks mode through the agent's socket only): it
        # has no snapshot to upload.
        self.uploader = uploader
        # None when the daemon does not report a status: there is then no final one to flush.
        self.reporter = reporter
        self.notifier = notifier
        self.clock = clock
        self.watching = watching
        self._mirror_changed = anyio.Event()
        self.mirror = Mirror(on_change=self._on_mirror_change)
        self._stop_scope = anyio.CancelScope()
        self._outcome: Outcome | None = None
        self._stop_requested = anyio.Event()
        self._stop_deadline = 0.0  # on the clock, set by the stop: the shutdown budget from then
        self._attempted = anyio.Event()  # the upload's first attempt is over
        self._wound_down = anyio.Event()
        # What the stop signal captured: the mirror's snapshot when the stream was current
        # (uploaded as it was at that instant), and its messages (the fallback of a fetch).
        self._live_at_stop: Snapshot | None = None
        self._mirrored_at_stop: list[Message] | None = None

    async def run(self) -> Outcome:
        """Wait for the stop, then save the snapshot and wait for the wind-down, in budget.

        Returns the outcome, INTERRUPTED when a second signal abandoned the upload.
        """
        await self._stop_requested.wait()
        with self._stop_scope:
            self._outcome = await self._save(
                self._stop_deadline,
                live=self._live_at_stop,
                fallback=self._mirrored_at_stop,
                attempted=self._attempted,
            )
            self._attempted.set()  # also when nothing was to upload (hooks mode)
            await self._wound_down.wait()  # the final status too, within the same budget
        # Set as soon as the stop path knows it: a second signal arriving after the upload
        # finished must not turn a saved snapshot into "interrupted".
        return Outcome.INTERRUPTED if self._outcome is None else self._outcome

    def request_stop(self, reason: str = "requested") -> None:
        """First call: stop watching and save the snapshot. Second call: hurry, abandon it."""
        if not self._stop_requested.is_set():
            self._stop_deadline = self.clock.now() + self.settings.shutdown_budget
            # Captured now: the snapshot is the mirror at the signal (the watchers run on for a
            # moment), and live only when the stream was current (its end makes it stale).
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
        """From the stop on, beside the upload: tell systemd, tear the watchers down, flush the
        final status.

        All of it once the upload's first attempt is over (or TEARDOWN_GRACE after the signal
        when it hangs): the watchers' unwinding would otherwise delay the request on the one
        event loop. The flush waits for the reporter's own task to end: one send at a time.
        """
        await self._stop_requested.wait()
        await self.clock.wait(self._attempted, TEARDOWN_GRACE)
        self.notifier.notify(STOPPING="1", STATUS="stopping: saving the conversation")
        self.watching.scope.cancel()
        if self.reporter is not None:
            await self._flush_reports(self.reporter, self._stop_deadline)
        self._wound_down.set()

    async def snapshot_now(self) -> tuple[str, int]:
        """`snapshot` run beside the daemon: the stop path's upload now; watching goes on.

        Returns the outcome's word and exit code for the report socket's answer.
        """
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
        """Upload the live mirror's snapshot when the event stream is current; else fetch first.

        A connected, replayed `/events` stream makes the mirror the fresh state: re-fetching the
        whole history (megabytes) would only make the stop slower. The mirror's messages stay
        the fallback when the fetch fails. An unexpected error is logged and counted as not
        delivered: the stop path ends with an outcome.
        """
        try:
            if self.settings.hooks_mode:
                log.info(
                    "snapshot_skipped", reason="there is no AgentAPI (hooks mode) to read it from"
                )
                return Outcome.SKIPPED
            if self.uploader is None:  # only in hooks mode on the socket: for the type checker
                log.error("snapshot_skipped", reason="no Coder URL and token to upload it with")
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

    async def _flush_reports(self, reporter: Reporter, deadline: float) -> None:
        """Confirm the final status within the budget; never fails the stop path.

        Runs once the watchers are down, so the reporter's own task no longer sends. Pending
        includes a status whose send was cut off in flight by that teardown (its outcome is
        unknown), so such a PATCH is sent again here rather than trusted.
        """
        try:
            with self.clock.move_on_after(deadline - self.clock.now()):
                await self.watching.down.wait()
                if await reporter.flush(deadline):
                    return
        except Exception:  # the snapshot beside this must be saved whatever a report does
            log.exception("status_flush_failed")
        pending = reporter.pending
        if pending is not None:
            log.warning(
                "status_not_delivered_at_stop", state=pending.state.value, message=pending.message
            )

    # -- the snapshot body, kept ready ----------------------------------------------------------

    def _on_mirror_change(self) -> None:
        self._mirror_changed.set()

    async def prepare_snapshot(self) -> None:
        """Build the mirror's snapshot body once the mirror has been quiet for PREPARE_AFTER.

        Waits without a timer while the body is ready (or the stream is down: the stop path
        then fetches), and wakes at most once per PREPARE_AFTER while the mirror changes: no CPU
        while nothing happens, little while the agent writes.
        """
        while True:
            self._mirror_changed = anyio.Event()
            if self.mirror.snapshot_ready or not self.mirror.current:
                await self._mirror_changed.wait()
                continue
            version = self.mirror.version
            await self.clock.sleep(PREPARE_AFTER)
            if self.mirror.version == version:
                self.mirror.snapshot()
