"""`python -m agent run`: the long-running daemon.

One task group holds the watchers: the AgentAPI watcher (the `/events` stream, or polling), the
debounce ticker, the status reporter, the report socket and the systemd watchdog. A signal task
outside that group turns the first SIGTERM/SIGINT into cancellation of the watchers; the stop
path then runs in its own scope under one deadline (the shutdown budget), and a second signal
cancels that scope too ("hurry": the upload is abandoned). SIGHUP is logged and ignored: the
configuration is read once at start, so a restart is the way to change it.

The stop path uploads straight from the live mirror when the `/events` stream was connected and
replayed at the moment of the stop (the mirror then *is* the fresh state, and re-fetching a
history of megabytes only delays the upload); otherwise it fetches `/messages` with its own call
and keeps the mirror as the fallback when AgentAPI does not answer in time. `snapshot` run beside
the daemon asks it (over the report socket) to do the same upload at once (`snapshot_now`).
"""

from __future__ import annotations

import ctypes
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from functools import partial

import anyio
import anyio.abc
import structlog

from agent.agentapi import (
    AgentAPIClient,
    AgentErrorEvent,
    MalformedEvent,
    Message,
    MessageUpdate,
    StatusChange,
    UnknownEvent,
)
from agent.coder import CoderClient
from agent.control import serve_reports
from agent.errors import ConfigError, Rejected, RemoteError
from agent.mirror import Mirror
from agent.models import AppStatus
from agent.reporter import Reporter
from agent.retry import RECONNECT_BACKOFF
from agent.sdnotify import Notifier
from agent.sender import StatusSender, open_sender
from agent.settings import Settings
from agent.shutdown import Outcome, save_snapshot
from agent.status import (
    ExplicitReport,
    Observation,
    RulesState,
    StatusSeen,
    Tick,
    UserMessageSeen,
    next_deadline,
    resync,
    step,
)
from agent.transport import agentapi_http, coder_http

log = structlog.get_logger("agent.daemon")

# In poll mode, while the agent runs, refresh the mirror this often (its last message grows);
# otherwise `/messages` is fetched only when the status changes: histories reach megabytes.
POLL_MESSAGES_REFRESH = 5.0
# A `/messages` answer with more messages than this was megabytes of short-lived objects.
LARGE_HISTORY = 200


def release_heap() -> None:
    """Hand memory freed after a multi-megabyte answer back to the OS (glibc; else a no-op).

    The daemon keeps only ten messages, but the allocator keeps the pages the whole history
    needed while it was parsed: without this, one 4 MB poll leaves RSS ~10 MB higher for good.
    """
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        return


class Daemon:
    """The daemon's state and tasks; `run` returns the exit code."""

    def __init__(
        self,
        settings: Settings,
        agentapi: AgentAPIClient,
        coder: CoderClient,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = anyio.current_time,
        *,
        sender: StatusSender | None = None,
    ) -> None:
        self.settings = settings
        self.agentapi = agentapi
        self.coder = coder
        self.notifier = notifier or Notifier({})
        self.clock = clock
        self.rules = RulesState()
        self.mirror = Mirror()
        # The status transport (agent socket or HTTP); plain HTTP when none is given.
        self.sender = sender or StatusSender("http", None, socket=None, http=coder.patch_app_status)
        self.reporter = Reporter(self.sender, on_delivered=self._show_status)
        self.reporting = settings.app_slug is not None
        self._rules_changed = anyio.Event()
        self._agentapi_failing = False
        self._watch_scope = anyio.CancelScope()
        self._stop_scope = anyio.CancelScope()
        self.ready = anyio.Event()
        self._outcome: Outcome | None = None
        self._live_at_stop = False

    # -- observations -------------------------------------------------------------------------

    def observe(self, observation: Observation) -> None:
        """Feed one observation to the rules and hand the wanted status to the reporter."""
        self.rules = step(self.rules, observation, self.settings.working_debounce)
        if self.reporting:
            self.reporter.want(self.rules.wanted)
        self._rules_changed.set()

    def explicit_report(self, status: AppStatus) -> None:
        """A report from the report socket."""
        self.observe(ExplicitReport(status, self.clock()))

    def hook_report(self, status: AppStatus) -> None:
        """A report from the agent's lifecycle hooks (rule 7 in agent.status)."""
        self.observe(ExplicitReport(status, self.clock(), from_hook=True))

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self, handle_signals: bool = True) -> int:
        """Watch until SIGTERM/SIGINT (or `request_stop`), then save the snapshot.

        Returns the exit code (the stop path's Outcome's).
        """
        async with anyio.create_task_group() as outer:
            if handle_signals:
                # Handlers first: a SIGTERM during start-up must take the stop path too.
                await outer.start(self._signals)
            with self._watch_scope:
                await self._watch_all()
            with self._stop_scope:
                await self._stop()
            outer.cancel_scope.cancel()
        # Set as soon as the stop path knows it: a second signal arriving after the upload
        # finished must not turn a saved snapshot into "interrupted".
        outcome = Outcome.INTERRUPTED if self._outcome is None else self._outcome
        log.info("daemon_stopped", outcome=outcome.value, exit_code=int(outcome.exit_code))
        return int(outcome.exit_code)

    def request_stop(self, reason: str = "requested") -> None:
        """First call: stop watching and save the snapshot. Second call: hurry, abandon it."""
        if not self._watch_scope.cancel_called:
            log.info("stop_requested", reason=reason)
            # Judged now: cancelling the watchers ends the stream, which then is no longer live.
            self._live_at_stop = self.mirror.current
            self._watch_scope.cancel()
        else:
            log.warning("stop_hurried", reason=reason)
            self._stop_scope.cancel()

    async def _signals(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            task_status.started()
            async for signum in signals:
                name = signal.Signals(signum).name
                if signum == signal.SIGHUP:
                    log.info("signal_ignored", signal=name, reason="restart to reload settings")
                else:
                    self.request_stop(name)

    async def _watch_all(self) -> None:
        async with anyio.create_task_group() as group:
            socket_path = self.settings.socket_path
            if socket_path is not None:
                try:
                    await group.start(
                        partial(
                            serve_reports,
                            on_snapshot=self.snapshot_now,
                            on_hook_report=self.hook_report,
                        ),
                        socket_path,
                        self.explicit_report,
                    )
                except (ConfigError, OSError) as exc:
                    # Explicit reports then go straight to Coder; watching goes on regardless.
                    log.error("report_socket_unavailable", error=str(exc))
            if self.reporting:
                group.start_soon(self._supervised, self.reporter.run)
            else:
                log.warning(
                    "status_reporting_disabled", reason="CODER_MCP_APP_STATUS_SLUG is not set"
                )
            group.start_soon(self._supervised, self._ticker)
            group.start_soon(self._supervised, self._watchdog)
            hooks_only = self.settings.mode == "hooks"
            if not hooks_only:
                watch = self._watch_events if self.settings.mode == "events" else self._watch_poll
                group.start_soon(self._supervised, watch)
            transport = await self.sender.choose() if self.reporting else None
            log.info(
                "daemon_started",
                agentapi=None if hooks_only else self.settings.agentapi_url,
                mode=self.settings.mode,
                status_from=(
                    "the agent's hooks only (no AgentAPI)"
                    if hooks_only
                    else "AgentAPI and the agent's hooks"
                ),
                task_id=str(self.settings.task_id) if self.settings.task_id else None,
                app_slug=self.settings.app_slug,
                socket=str(socket_path) if socket_path else None,
                status_transport=transport,
            )
            self.notifier.notify(READY="1", STATUS=self._status_text())
            self.ready.set()

    async def _supervised(self, task: Callable[[], Awaitable[None]]) -> None:
        """Run `task`, restarting it after an unexpected error: the loop never dies of a bug."""
        failures = 0
        while True:
            try:
                await task()
            except Exception:  # logged with its traceback, then restarted
                failures += 1
                log.exception("task_failed", task=task.__name__, failures=failures)
                await anyio.sleep(RECONNECT_BACKOFF.wait(failures))
            else:
                return

    async def _stop(self) -> Outcome:
        self.notifier.notify(STOPPING="1", STATUS="stopping: saving the conversation")
        deadline = self.clock() + self.settings.shutdown_budget
        async with anyio.create_task_group() as group:
            if self.reporting and self.reporter.pending is not None:
                group.start_soon(self._flush_reports, deadline)
            outcome = await self._save_snapshot(deadline, live=self._live_at_stop)
            self._outcome = outcome
        return outcome

    async def snapshot_now(self) -> tuple[str, int]:
        """`snapshot` run beside the daemon: the stop path's upload now; watching goes on.

        Returns the outcome's word and exit code for the report socket's answer.
        """
        deadline = self.clock() + self.settings.shutdown_budget
        outcome = await self._save_snapshot(deadline, live=self.mirror.current)
        return outcome.value, int(outcome.exit_code)

    async def _save_snapshot(self, deadline: float, *, live: bool) -> Outcome:
        """Upload from the live mirror when the event stream is current; else fetch first.

        A connected, replayed `/events` stream makes the mirror the fresh state: re-fetching the
        whole history (megabytes) would only make the stop slower. The mirror stays the
        fallback when the fetch fails.
        """
        if self.settings.mode == "hooks":
            log.info("snapshot_skipped", reason="there is no AgentAPI (hooks mode) to read it from")
            return Outcome.SKIPPED
        messages = self.mirror.messages() if len(self.mirror) else None
        return await save_snapshot(
            task_id=self.settings.task_id,
            agentapi=self.agentapi,
            coder=self.coder,
            deadline=deadline,
            fetch_timeout=self.settings.stop_fetch_timeout,
            live=messages if live else None,
            fallback=messages,
        )

    async def _flush_reports(self, deadline: float) -> None:
        with anyio.move_on_after(max(0.0, deadline - self.clock())):
            if await self.reporter.flush(deadline):
                return
        pending = self.reporter.pending
        log.warning(
            "status_not_delivered_at_stop",
            state=pending.state.value if pending else None,
            message=pending.message if pending else None,
        )

    # -- watchers -----------------------------------------------------------------------------

    async def _watch_events(self) -> None:
        failures = 0
        first = True
        while True:
            if not first:
                await self._poll_status_once()
            first = False
            try:
                if await self._follow_events():
                    failures = 0
                log.info("agentapi_events_ended")
            except Rejected as exc:
                if exc.status in (404, 405):
                    log.warning("agentapi_events_unavailable", fallback="poll", error=str(exc))
                    await self._watch_poll()
                    return
                failures += 1
                self._agentapi_problem(exc)
            except (RemoteError, TimeoutError) as exc:
                failures += 1
                self._agentapi_problem(exc)
            finally:
                self.mirror.mark_stale()  # the stream is gone: the mirror may fall behind
            await anyio.sleep(RECONNECT_BACKOFF.wait(max(1, failures)))

    async def _follow_events(self) -> bool:
        """Follow one connection of `/events`; True when at least one event arrived."""
        self.rules = resync(self.rules)
        self.mirror.begin_replay()
        replaying = True
        got_any = False
        events = self.agentapi.events()
        async with aclosing(events):
            iterator: AsyncIterator[object] = aiter(events)
            # The replay starts at once on connect; silence here means a hung server.
            with anyio.fail_after(self.settings.agentapi_timeout):
                event = await anext(iterator, None)
            while event is not None:
                if not got_any:
                    got_any = True
                    self._agentapi_ok()
                if isinstance(event, StatusChange) and replaying:
                    replaying = False
                    self.mirror.end_replay()
                self._apply_event(event)
                event = await anext(iterator, None)
        return got_any

    def _apply_event(self, event: object) -> None:
        now = self.clock()
        match event:
            case MessageUpdate():
                message = event.as_message()
                self.mirror.update(message)
                if message.role == "user":
                    self.observe(UserMessageSeen(message.id, message.content, now))
            case StatusChange(status=status):
                self.observe(StatusSeen(status, now))
            case AgentErrorEvent(message=text, level=level):
                log.warning("agent_error", level=level, error=text[:500])
            case MalformedEvent(name=name, error=error):
                log.warning("agentapi_event_malformed", name=name, error=error)
            case UnknownEvent(name=name, size=size):
                log.debug("agentapi_event_unknown", name=name, size=size)

    async def _poll_status_once(self) -> None:
        """Before a reconnect: one `/status`, so no transition is missed while disconnected."""
        try:
            status = await self.agentapi.status()
        except RemoteError as exc:
            log.debug("agentapi_status_unavailable", error=str(exc))
            return
        self.observe(StatusSeen(status.status, self.clock()))

    async def _watch_poll(self) -> None:
        last_status: str | None = None
        last_fetch = float("-inf")
        failures = 0
        while True:
            try:
                status = (await self.agentapi.status()).status
                now = self.clock()
                refresh = status == "running" and now - last_fetch >= POLL_MESSAGES_REFRESH
                if status != last_status or refresh:
                    self._apply_messages(await self.agentapi.messages())
                    last_fetch = now
            except RemoteError as exc:
                failures += 1
                self._agentapi_problem(exc)
                await anyio.sleep(
                    max(self.settings.poll_interval, RECONNECT_BACKOFF.wait(failures))
                )
                continue
            failures = 0
            self._agentapi_ok()
            last_status = status
            self.observe(StatusSeen(status, self.clock()))
            await anyio.sleep(self.settings.poll_interval)

    def _apply_messages(self, messages: list[Message]) -> None:
        self.mirror.replace_all(messages)
        if len(messages) > LARGE_HISTORY:
            release_heap()
        users = [m for m in messages if m.role == "user"]
        if users:
            newest = max(users, key=lambda m: m.id)
            self.observe(UserMessageSeen(newest.id, newest.content, self.clock()))

    def _agentapi_problem(self, exc: Exception) -> None:
        if not self._agentapi_failing:
            self._agentapi_failing = True
            log.warning("agentapi_unavailable", error=str(exc) or type(exc).__name__)
            self.notifier.notify(STATUS=self._status_text())
        else:
            log.debug("agentapi_still_unavailable", error=str(exc) or type(exc).__name__)

    def _agentapi_ok(self) -> None:
        if self._agentapi_failing:
            self._agentapi_failing = False
            log.info("agentapi_recovered")
            self.notifier.notify(STATUS=self._status_text())

    # -- timers -------------------------------------------------------------------------------

    async def _ticker(self) -> None:
        """Feed a Tick when a debounce comes due."""
        while True:
            self._rules_changed = anyio.Event()
            due = next_deadline(self.rules, self.settings.working_debounce)
            if due is None:
                await self._rules_changed.wait()
                continue
            with anyio.move_on_after(max(0.0, due - self.clock())):
                await self._rules_changed.wait()
            if self.clock() >= due:
                self.observe(Tick(self.clock()))

    async def _watchdog(self) -> None:
        interval = self.notifier.watchdog_interval
        if interval is None:
            return
        while True:
            self.notifier.notify(WATCHDOG="1")
            await anyio.sleep(interval)

    def _show_status(self, delivered: AppStatus) -> None:
        self.notifier.notify(STATUS=self._status_text())

    def _status_text(self) -> str:
        source = f"watching {self.settings.agentapi_url} ({self.settings.mode})"
        if self.settings.mode == "hooks":
            source = "status from the agent's hooks (no AgentAPI)"
        if self._agentapi_failing:
            source += ", AgentAPI not answering"
        delivered = self.reporter.delivered
        last = f"{delivered.state.value} {delivered.message!r}" if delivered else "nothing yet"
        return f"{source}; status via {self.sender.transport}; last delivered: {last}"


async def run_daemon(settings: Settings) -> int:
    """Build the clients from settings and run the daemon; returns the exit code."""
    url, token = settings.require_coder()
    async with agentapi_http(settings) as agentapi, coder_http(settings, url, token) as coder:
        client = CoderClient(coder, settings.app_slug)
        async with open_sender(settings, client.patch_app_status) as sender:
            daemon = Daemon(settings, AgentAPIClient(agentapi), client, Notifier(), sender=sender)
            return await daemon.run()
