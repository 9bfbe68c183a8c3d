"""`python -m agent run`: the long-running daemon.

The daemon orchestrates: it owns the lifecycle, the supervision of its tasks and the stop path,
and it is where observations meet the rules. One task group holds the tasks: the AgentAPI
watcher (`agent.daemon.watchers`: the `/events` stream, or polling, feeding observations back
here), the
debounce ticker, the status reporter, the report socket, the systemd watchdog and the task that
keeps the snapshot body ready. Every read of the time and every wait goes through one injected
`Clock`, so tests drive it by hand. A signal task outside that group turns the first
SIGTERM/SIGINT into the stop path, which runs in its own scope under one deadline (the shutdown
budget); a second signal cancels that scope too ("hurry": the upload is abandoned). SIGHUP is
logged and ignored: the configuration is read once at start, so a restart is the way to change
it.

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
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import anyio
import anyio.abc
import httpx
import structlog

from agent import boundary
from agent import lastreport as laststate
from agent.agentapi import AgentAPIClient, Message
from agent.clock import SYSTEM_CLOCK, Clock
from agent.coder.httpapi import CoderClient
from agent.coder.route import StatusSender, open_sender, planned_transport
from agent.config import Environment, Settings
from agent.daemon.mirror import Mirror
from agent.daemon.reporter import Reporter
from agent.daemon.sdnotify import Notifier
from agent.daemon.watchers import watcher_for
from agent.errors import ConfigError
from agent.http_async import agentapi_http, coder_http
from agent.models import AppStatus
from agent.reportsocket.server import SocketInUse, check_socket_free, serve_reports
from agent.retry import RECONNECT_BACKOFF
from agent.rules import ExplicitReport, Observation, RulesState, Tick, next_deadline, step
from agent.snapshot import Snapshot
from agent.stop import early as earlystop
from agent.stop.upload import Outcome, SnapshotUploader, save_snapshot

log = structlog.get_logger("agent.daemon.daemon")

# Seconds the mirror must stay unchanged before its snapshot body is built ahead of a stop:
# AgentAPI sends an update for every change of the screen while the agent writes (several a
# second), so a pause this long means the agent stopped writing; a build costs at most a few ms.
PREPARE_AFTER = 0.1
# Seconds the watchers keep running after the stop signal while the upload's first attempt has
# neither ended nor failed (a hung connect): then they are torn down beside it all the same.
TEARDOWN_GRACE = 0.1


class Daemon:
    """The daemon's state and tasks; `run` returns the exit code."""

    def __init__(
        self,
        settings: Settings,
        agentapi: AgentAPIClient,
        coder: CoderClient | None,
        notifier: Notifier | None = None,
        clock: Clock = SYSTEM_CLOCK,
        *,
        sender: StatusSender | None = None,
        environment: Environment | None = None,
    ) -> None:
        self.settings = settings
        # Read for the start-up warnings only (settings come read and checked).
        self._environment = environment
        self.agentapi = agentapi
        # The snapshot goes up through the Coder client, on the connection it keeps. There is
        # none for a daemon without Coder HTTP (hooks mode through the agent's socket only): it
        # has no snapshot to upload.
        self.uploader: SnapshotUploader | None = coder
        self.notifier = notifier or Notifier()
        self.clock = clock
        self.rules = RulesState()
        self._mirror_changed = anyio.Event()
        self.mirror = Mirror(on_change=self._on_mirror_change)
        # The status transport (agent socket or HTTP); plain HTTP when none is given.
        if sender is None:
            if coder is None:
                raise ValueError("a daemon without a Coder client needs its sender")
            sender = StatusSender("http", None, socket=None, http=coder.patch_app_status)
        self.sender = sender
        self.reporter = Reporter(self.sender, on_delivered=self._show_status, clock=clock)
        self.reporting = settings.app_slug is not None
        # The last explicit complete/failed, kept where a restart after a crash finds it.
        socket_path = settings.socket_path
        self._last_report = (
            Path(socket_path).parent / laststate.FILE_NAME if socket_path is not None else None
        )
        self._rules_changed = anyio.Event()
        self._agentapi_failing = False
        self._watch_scope = anyio.CancelScope()
        self._stop_scope = anyio.CancelScope()
        self.ready = anyio.Event()
        self._outcome: Outcome | None = None
        self._stop_requested = anyio.Event()
        self._stop_deadline = 0.0  # on the clock, set by the stop: the shutdown budget from then
        self._attempted = anyio.Event()  # the upload's first attempt is over
        self._watchers_down = anyio.Event()
        self._wound_down = anyio.Event()
        # What the stop signal captured: the mirror's snapshot when the stream was current
        # (uploaded as it was at that instant), and its messages (the fallback of a fetch).
        self._live_at_stop: Snapshot | None = None
        self._mirrored_at_stop: list[Message] | None = None

    # -- observations -------------------------------------------------------------------------

    def observe(self, observation: Observation) -> None:
        """Feed one observation to the rules and hand the wanted status to the reporter."""
        before = self.rules
        self.rules = step(before, observation, self.settings.working_debounce)
        if self.rules.restarts != before.restarts:
            log.info("agentapi_restart_detected", restarts=self.rules.restarts)
        if self._last_report is not None and (before.sticky, before.wanted) != (
            self.rules.sticky,
            self.rules.wanted,
        ):
            if self.rules.sticky and self.rules.wanted is not None:
                laststate.save(self._last_report, self.rules.wanted)
            elif before.sticky:
                laststate.clear(self._last_report)
        if self.reporting:
            self.reporter.want(self.rules.wanted)
        self._rules_changed.set()

    def explicit_report(self, status: AppStatus) -> None:
        """A report from the report socket."""
        self.observe(ExplicitReport(status, self.clock.now()))

    def hook_report(self, status: AppStatus) -> None:
        """A report from the agent's lifecycle hooks (rule 7 in agent.rules)."""
        self.observe(ExplicitReport(status, self.clock.now(), from_hook=True))

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self, handle_signals: bool = True) -> int:
        """Watch until SIGTERM/SIGINT (or `request_stop`), then save the snapshot.

        Returns the exit code (the stop path's Outcome's).
        """
        self._restore_last_report()
        async with anyio.create_task_group() as outer:
            if handle_signals:
                # Handlers first: a SIGTERM during start-up must take the stop path too.
                await outer.start(self._signals)
            outer.start_soon(self._watch)
            # Started now and waiting, so that the signal spawns nothing before the upload.
            outer.start_soon(self._wind_down)
            await self._stop_requested.wait()
            with self._stop_scope:
                self._outcome = await self._contained_save(
                    self._stop_deadline,
                    live=self._live_at_stop,
                    fallback=self._mirrored_at_stop,
                    attempted=self._attempted,
                )
                self._attempted.set()  # also when nothing was to upload (hooks mode)
                await self._wound_down.wait()  # the final status too, within the same budget
            outer.cancel_scope.cancel()
        # Set as soon as the stop path knows it: a second signal arriving after the upload
        # finished must not turn a saved snapshot into "interrupted".
        outcome = Outcome.INTERRUPTED if self._outcome is None else self._outcome
        log.info("daemon_stopped", outcome=outcome.value, exit_code=int(outcome.exit_code))
        return int(outcome.exit_code)

    def _restore_last_report(self) -> None:
        """After a crash: the explicit complete/failed sent before it holds again."""
        if self._last_report is None:
            return
        try:
            status = laststate.load(self._last_report)
        except Exception as exc:  # noqa: BLE001 - a bad memory file must not stop the start
            log.error(boundary.EVENT, task="restore_last_report", **boundary.describe(exc))
            return
        if status is None:
            return
        log.info("last_report_restored", state=status.state.value, message=status.message)
        self.observe(ExplicitReport(status, self.clock.now()))

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
            if not self.ready.is_set():
                self._watch_scope.cancel()  # still starting: nothing to hold the upload up
            log.info("stop_requested", reason=reason)
        else:
            log.warning("stop_hurried", reason=reason)
            self._stop_scope.cancel()

    async def _signals(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
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

    async def _watch(self) -> None:
        try:
            with self._watch_scope:
                # Supervised as its tasks are: whatever escapes the watching (a bug, a library's
                # surprise) restarts it; the daemon ends only through the stop path.
                await self._supervised(self._watch_all)
        finally:
            self._watchers_down.set()

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
                            clock=self.clock,
                        ),
                        Path(socket_path),
                        self.explicit_report,
                    )
                except SocketInUse as exc:
                    # Lost a race with another daemon starting at the same moment: that one
                    # serves reports; this one still watches and saves the snapshot.
                    log.error("report_socket_in_use", error=str(exc))
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
            hooks_only = self.settings.hooks_mode
            if self.settings.mode == "events" and self.settings.task_id is not None:
                # Only a current stream's mirror is uploaded as it is (polling fetches at stop).
                group.start_soon(self._supervised, self._prepare_snapshot)
            if not hooks_only:
                watcher = watcher_for(self.settings, self.agentapi, self, self.mirror, self.clock)
                group.start_soon(self._supervised, watcher.run)
            transport = await self.sender.choose() if self.reporting else None
            missing = task_id_warning(self.settings, self._environment or Environment())
            if missing is not None:
                log.warning("task_id_missing", **missing)
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
        """Run `task`, restarting it after an unexpected error: the loop never dies of a bug.

        The error is one `unexpected_error` line (agent.boundary: type, masked message, where),
        never a traceback; the restart waits the reconnect backoff.
        """
        failures = 0
        while True:
            try:
                await task()
            except Exception as exc:  # noqa: BLE001 - logged, then restarted
                failures += 1
                wait = RECONNECT_BACKOFF.wait(failures)
                log.error(
                    boundary.EVENT,
                    task=_name(task),
                    failures=failures,
                    restart_in=round(wait, 3),
                    **boundary.describe(boundary.first_leaf(exc)),
                )
                await self.clock.sleep(wait)
            else:
                return

    async def _wind_down(self) -> None:
        """From the stop on, beside the upload: tell systemd, tear the watchers down, flush the
        final status.

        All of it once the upload's first attempt is over (or TEARDOWN_GRACE after the signal
        when it hangs): the watchers' unwinding would otherwise delay the request on the one
        event loop. The flush waits for the reporter's own task to end: one send at a time.
        """
        await self._stop_requested.wait()
        await self.clock.wait(self._attempted, TEARDOWN_GRACE)
        self.notifier.notify(STOPPING="1", STATUS="stopping: saving the conversation")
        self._watch_scope.cancel()
        if self.reporting:
            await self._flush_reports(self._stop_deadline)
        self._wound_down.set()

    async def snapshot_now(self) -> tuple[str, int]:
        """`snapshot` run beside the daemon: the stop path's upload now; watching goes on.

        Returns the outcome's word and exit code for the report socket's answer.
        """
        deadline = self.clock.now() + self.settings.shutdown_budget
        mirrored = len(self.mirror) > 0
        outcome = await self._contained_save(
            deadline,
            live=self.mirror.snapshot() if mirrored and self.mirror.current else None,
            fallback=self.mirror.messages() if mirrored else None,
        )
        return outcome.value, int(outcome.exit_code)

    async def _contained_save(
        self,
        deadline: float,
        *,
        live: Snapshot | None,
        fallback: list[Message] | None,
        attempted: anyio.Event | None = None,
    ) -> Outcome:
        """`_save_snapshot`, an unexpected error in it logged and counted as not delivered."""
        try:
            return await self._save_snapshot(
                deadline, live=live, fallback=fallback, attempted=attempted
            )
        except Exception as exc:  # noqa: BLE001 - the stop path ends with an outcome
            log.error(boundary.EVENT, task="save_snapshot", **boundary.describe(exc))
            log.error("snapshot_failed", reason="an unexpected error (the line above)")
            return Outcome.UNDELIVERED

    async def _save_snapshot(
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
        the fallback when the fetch fails.
        """
        if self.settings.hooks_mode:
            log.info("snapshot_skipped", reason="there is no AgentAPI (hooks mode) to read it from")
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

    async def _flush_reports(self, deadline: float) -> None:
        """Confirm the final status within the budget; never fails the stop path.

        Runs once the watchers are down, so the reporter's own task no longer sends. Pending
        includes a status whose send was cut off in flight by that teardown (its outcome is
        unknown), so such a PATCH is sent again here rather than trusted.
        """
        try:
            with self.clock.move_on_after(deadline - self.clock.now()):
                await self._watchers_down.wait()
                if await self.reporter.flush(deadline):
                    return
        except Exception:  # the snapshot beside this must be saved whatever a report does
            log.exception("status_flush_failed")
        pending = self.reporter.pending
        if pending is not None:
            log.warning(
                "status_not_delivered_at_stop", state=pending.state.value, message=pending.message
            )

    # -- what the watchers tell (agent.daemon.watchers.Observer) ----------------------------

    def agentapi_problem(self, error: Exception) -> None:
        """AgentAPI failed: logged once per outage, shown in systemd's status line."""
        text = str(error) or type(error).__name__
        if not self._agentapi_failing:
            self._agentapi_failing = True
            log.warning("agentapi_unavailable", error=text)
            self.notifier.notify(STATUS=self._status_text())
        else:
            log.debug("agentapi_still_unavailable", error=text)

    def agentapi_ok(self) -> None:
        """AgentAPI answered again."""
        if self._agentapi_failing:
            self._agentapi_failing = False
            log.info("agentapi_recovered")
            self.notifier.notify(STATUS=self._status_text())

    # -- the snapshot body, kept ready ----------------------------------------------------------

    def _on_mirror_change(self) -> None:
        self._mirror_changed.set()

    async def _prepare_snapshot(self) -> None:
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

    # -- timers -------------------------------------------------------------------------------

    async def _ticker(self) -> None:
        """Feed a Tick when a debounce comes due."""
        while True:
            self._rules_changed = anyio.Event()
            due = next_deadline(self.rules, self.settings.working_debounce)
            if due is None:
                await self._rules_changed.wait()
                continue
            await self.clock.wait(self._rules_changed, due - self.clock.now())
            if self.clock.now() >= due:
                self.observe(Tick(self.clock.now()))

    async def _watchdog(self) -> None:
        interval = self.notifier.watchdog_interval
        if interval is None:
            return
        while True:
            self.notifier.notify(WATCHDOG="1")
            await self.clock.sleep(interval)

    def _show_status(self, delivered: AppStatus) -> None:
        self.notifier.notify(STATUS=self._status_text())

    def _status_text(self) -> str:
        source = f"watching {self.settings.agentapi_url} ({self.settings.mode})"
        if self.settings.hooks_mode:
            source = "status from the agent's hooks (no AgentAPI)"
        if self._agentapi_failing:
            source += ", AgentAPI not answering"
        delivered = self.reporter.delivered
        last = f"{delivered.state.value} {delivered.message!r}" if delivered else "nothing yet"
        return f"{source}; status via {self.sender.transport}; last delivered: {last}"


def _name(task: Callable[..., object]) -> str:
    owner = getattr(task, "__self__", None)
    name = getattr(task, "__name__", repr(task))
    return f"{type(owner).__name__}.{name}" if owner is not None else name


def task_id_warning(settings: Settings, environment: Environment) -> dict[str, str] | None:
    """The start-up warning of a daemon watching AgentAPI without a task id, else None.

    Without one the stop path has no task to save the conversation to, and would say so only
    at stop (`snapshot_skipped`): said at start, a misspelt variable is found while the task
    runs. Names the variable that sets it, and any set variable that looks like a misspelling.
    """
    if settings.hooks_mode or settings.task_id is not None:
        return None
    warning = {
        "problem": "CODER_TASK_ID is not set: at stop the conversation is not saved "
        "as the task's log snapshot",
        "fix": "set CODER_TASK_ID to the task's id (the template's data.coder_task.me.id)",
    }
    lookalikes = environment.lookalikes("CODER_TASK_ID")
    if lookalikes:
        warning["misspelt"] = f"set but not read (a misspelling?): {', '.join(lookalikes)}"
    return warning


async def run_daemon(settings: Settings, clock: Clock = SYSTEM_CLOCK) -> int:
    """Build the clients from settings and run the daemon on `clock`; returns the exit code."""
    if settings.hooks_mode and planned_transport(settings) == "socket":
        # No snapshot to upload, and the status goes by the agent's socket without a token
        # (Coder >= v2.32): a workspace whose processes get no agent token can run the daemon.
        alone = settings.replace(status_transport="socket")
        return await _run_socket_only(alone, settings, clock)
    url, token = settings.require_coder()
    _check_report_socket(settings)
    async with (
        agentapi_http(settings) as agentapi,
        coder_http(settings, url, token) as coder,
    ):
        client = CoderClient(coder, settings.app_slug, clock=clock)
        async with open_sender(settings, client.patch_app_status, clock) as sender:
            return await _run(settings, agentapi, client, sender, clock)


async def _run_socket_only(settings: Settings, asked: Settings, clock: Clock) -> int:
    """A daemon in hooks mode whose status goes through the agent's socket, nothing by HTTP."""
    if asked.status_transport == "auto":
        missing = "CODER_AGENT_URL" if not asked.coder_url else "CODER_AGENT_TOKEN"
        log.warning(
            "status_socket_only",
            reason=f"{missing} is not set: the status goes through the agent's socket "
            f"({settings.agent_socket_path}) only, with no HTTP fallback",
        )
    _check_report_socket(settings)
    async with agentapi_http(settings) as agentapi, open_sender(settings, clock=clock) as sender:
        return await _run(settings, agentapi, None, sender, clock)


async def _run(
    settings: Settings,
    agentapi: httpx.AsyncClient,
    client: CoderClient | None,
    sender: StatusSender,
    clock: Clock,
) -> int:
    daemon = Daemon(
        settings,
        AgentAPIClient(agentapi, clock=clock),
        client,
        Notifier.for_settings(settings),
        clock,
        sender=sender,
    )
    return await daemon.run()


def _check_report_socket(settings: Settings) -> None:
    if settings.socket_path is not None:
        # A second daemon for the same socket refuses to start (exit 2, naming the socket and
        # the other process) instead of taking reports away from the live one.
        try:
            check_socket_free(Path(settings.socket_path))
        except SocketInUse:
            raise
        except ConfigError:
            pass  # an unusable path is not fatal: the socket server logs it and goes on
