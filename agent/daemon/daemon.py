"""`python -m agent run`: the long-running daemon, where observations meet the rules.

It owns the lifecycle and runs its tasks supervised in one task group: the AgentAPI watcher, the
debounce ticker, the status reporter, the report socket, the systemd watchdog and the snapshot
body kept ready. Its stop path (`agent.daemon.stop`) is the only way it ends. Every read of the
time and every wait goes through one injected `Clock`, so tests drive it by hand.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path

import anyio
import anyio.abc
import structlog

from agent import boundary
from agent import lastreport as laststate
from agent import log as log_lines
from agent.agentapi import AgentAPIClient
from agent.clock import SYSTEM_CLOCK, Clock
from agent.coder.httpapi import CoderClient
from agent.coder.route import StatusSender, open_sender, planned_transport
from agent.config import Environment, Settings
from agent.daemon.reporter import Reporter
from agent.daemon.sdnotify import Notifier
from agent.daemon.stop import StopPath, Watching
from agent.daemon.watchers import EventsWatcher, PollWatcher
from agent.errors import ConfigError
from agent.http_async import agentapi_http, coder_http
from agent.models import AppStatus
from agent.reportsocket.server import SocketInUse, check_socket_free, serve_reports
from agent.retry import RECONNECT_BACKOFF
from agent.rules import ExplicitReport, Observation, RulesState, Tick, next_deadline, step

log = structlog.get_logger("agent.daemon.daemon")


class Daemon:
    """The daemon's state and tasks; `run` returns the exit code."""

    def __init__(
        self,
        settings: Settings,
        agentapi: AgentAPIClient,
        coder: CoderClient | None,
        sender: StatusSender,
        *,
        notifier: Notifier | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.settings = settings
        self.agentapi = agentapi
        self.sender = sender
        self.notifier = notifier or Notifier()
        self.clock = clock
        self.rules = RulesState()
        self.reporter = Reporter(
            sender,
            on_delivered=self._show_status,
            clock=clock,
            recheck_after=settings.request_timeout,
        )
        self.reporting = settings.app_slug is not None
        # The last explicit complete/failed, kept where a restart after a crash finds it.
        self._last_report: Path | None = None
        if settings.socket_path is not None:
            self._last_report = Path(settings.socket_path).parent / laststate.FILE_NAME
        self._rules_changed = anyio.Event()
        self._agentapi_failing = False
        self.ready = anyio.Event()
        self._watching = Watching(
            self.ready, anyio.CancelScope(), anyio.Event(), anyio.Event(), anyio.Event()
        )
        # The snapshot goes up on the Coder client's kept connection (none without Coder HTTP).
        self.stop_path = StopPath(
            settings,
            agentapi=agentapi,
            uploader=coder,
            reporter=self.reporter if self.reporting else None,
            notifier=self.notifier,
            clock=clock,
            watching=self._watching,
        )
        self.mirror = self.stop_path.mirror  # the watchers keep it current

    def observe(self, observation: Observation) -> None:
        """Feed one observation to the rules and hand the wanted status to the reporter."""
        before = self.rules
        self.rules = step(before, observation, self.settings.working_debounce)
        if self.rules.restarts != before.restarts:
            log.info("agentapi_restart_detected", restarts=self.rules.restarts)
        kept = (self.rules.sticky, self.rules.wanted)
        if self._last_report is not None and kept != (before.sticky, before.wanted):
            if self.rules.sticky and self.rules.wanted is not None:
                laststate.save(self._last_report, self.rules.wanted, confirmed=False)
            elif before.sticky:
                laststate.clear(self._last_report)
        if self.reporting:
            self.reporter.want(self.rules.wanted)
        self._rules_changed.set()

    def explicit_report(self, status: AppStatus) -> None:
        self.observe(ExplicitReport(status, self.clock.now()))

    def hook_report(self, status: AppStatus) -> None:
        """A report from the agent's lifecycle hooks (rule 7 in agent.rules)."""
        self.observe(ExplicitReport(status, self.clock.now(), from_hook=True))

    async def run(self, handle_signals: bool = True) -> int:
        """Watch until SIGTERM/SIGINT (or `StopPath.request_stop`), then save the snapshot."""
        self._restore_last_report()
        async with anyio.create_task_group() as outer:
            if handle_signals:
                # Handlers first: a SIGTERM during start-up must take the stop path too.
                await outer.start(self.stop_path.signals)
            outer.start_soon(self._watch)
            # Started now and waiting, so that the signal spawns nothing before the upload.
            outer.start_soon(self.stop_path.wind_down)
            outcome = await self.stop_path.run()
            outer.cancel_scope.cancel()
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
        if status is not None:
            log.info("last_report_restored", state=status.state.value, message=status.message)
            self.observe(ExplicitReport(status, self.clock.now()))

    async def _watch(self) -> None:
        try:
            async with anyio.create_task_group() as group:
                if self.settings.socket_path is not None:
                    await group.start(self._serve_reports)
                try:
                    with self._watching.scope:
                        # Whatever escapes the watching restarts it: only the stop ends the daemon.
                        await supervised(self._watch_all, self.clock)
                finally:
                    self._watching.down.set()
        finally:
            self._watching.closed.set()

    async def _serve_reports(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """The report socket, bound before the watchers start, served beside them and on through
        the stop until the final flush is done (why: agent.daemon.stop)."""
        started = Announce(task_status)
        serve = partial(
            serve_reports,
            Path(str(self.settings.socket_path)),
            self.explicit_report,
            on_snapshot=self.stop_path.snapshot_now,
            on_hook_report=self.hook_report,
            clock=self.clock,
            closing=self._watching.closing,
            task_status=started,
        )

        async def serve_or_say_why() -> None:
            try:
                await serve()
            except Exception as exc:
                if started.told:
                    raise  # a bug while serving: restarted, as every task is
                # Lost a race with another daemon starting at the same moment (that one serves
                # reports), or an unusable path: reports then go straight to Coder, and this
                # daemon still watches and saves the snapshot.
                in_use = isinstance(exc, SocketInUse)
                log.error(
                    "report_socket_in_use" if in_use else "report_socket_unavailable",
                    error=str(exc),
                )
                started.started()

        await supervised(serve_or_say_why, self.clock)

    async def _watch_all(self) -> None:
        settings = self.settings
        async with anyio.create_task_group() as group:
            if self.reporting:
                group.start_soon(supervised, self.reporter.run, self.clock)
            else:
                reason = "CODER_MCP_APP_STATUS_SLUG is not set"
                log.warning("status_reporting_disabled", reason=reason)
            group.start_soon(supervised, self._ticker, self.clock)
            group.start_soon(supervised, self._watchdog, self.clock)
            if settings.mode == "events" and settings.task_id is not None:
                # Only a current stream's mirror is uploaded as it is (polling fetches at stop).
                group.start_soon(supervised, self.stop_path.prepare_snapshot, self.clock)
            status_from = "the agent's hooks only (no AgentAPI)"
            if not settings.hooks_mode:
                kind = EventsWatcher if settings.mode == "events" else PollWatcher
                watcher = kind(self.agentapi, settings, self, self.mirror, self.clock)
                group.start_soon(supervised, watcher.run, self.clock)
                status_from = "AgentAPI and the agent's hooks"
            transport = await self.sender.choose() if self.reporting else None
            missing = task_id_warning(settings, Environment())
            if missing is not None:
                log.warning("task_id_missing", **missing)
            log.info(
                "daemon_started",
                agentapi=None if settings.hooks_mode else settings.agentapi_url,
                mode=settings.mode,
                status_from=status_from,
                task_id=str(settings.task_id) if settings.task_id else None,
                app_slug=settings.app_slug,
                socket=str(settings.socket_path) if settings.socket_path else None,
                status_transport=transport,
            )
            self.notifier.notify(READY="1", STATUS=self._status_text())
            self.ready.set()

    # -- what the watchers tell (agent.daemon.watchers.Observer) ----------------------------

    def agentapi_problem(self, error: Exception) -> None:
        text = str(error) or type(error).__name__
        if not self._agentapi_failing:
            self._agentapi_failing = True
            log.warning("agentapi_unavailable", error=text)
            self.notifier.notify(STATUS=self._status_text())
        else:
            log.debug("agentapi_still_unavailable", error=text)

    def agentapi_ok(self) -> None:
        if self._agentapi_failing:
            self._agentapi_failing = False
            log.info("agentapi_recovered")
            self.notifier.notify(STATUS=self._status_text())

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
        if self._last_report is not None and self.rules.sticky and delivered == self.rules.wanted:
            laststate.save(self._last_report, delivered)  # Coder has it now (agent.lastreport)
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


async def supervised(task: Callable[[], Awaitable[None]], clock: Clock) -> None:
    """Run `task`; whatever escapes it is one `unexpected_error` line (agent.boundary), never a
    traceback, then a restart after the reconnect backoff: a bug never ends the daemon."""
    failures = 0
    while True:
        try:
            await task()
        except Exception as exc:  # noqa: BLE001 - logged, then restarted
            failures += 1
            wait = RECONNECT_BACKOFF.wait(failures)
            owner = getattr(task, "__self__", None)
            name = getattr(task, "__name__", repr(task))
            log.error(
                boundary.EVENT,
                task=f"{type(owner).__name__}.{name}" if owner is not None else name,
                failures=failures,
                restart_in=round(wait, 3),
                **boundary.describe(boundary.first_leaf(exc)),
            )
            await clock.sleep(wait)
        else:
            return


class Announce:
    """A task's `task_status`, told once: a restart of the task after a bug is not announced."""

    def __init__(self, status: anyio.abc.TaskStatus[None]) -> None:
        self.status = status
        self.told = False

    def started(self, value: object = None) -> None:
        if not self.told:
            self.told = True
            self.status.started()


def task_id_warning(settings: Settings, environment: Environment) -> dict[str, str] | None:
    """The start-up warning of a daemon watching AgentAPI without a task id, else None.

    Said at start, not only at stop (`snapshot_skipped`), so a misspelt variable is found while
    the task runs; names any set variable that looks like a misspelling of it.
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
    """Build the clients from settings and run the daemon on `clock`; returns the exit code.

    Its log lines never wait for stderr: a stderr nobody reads froze the event loop, the status
    reports and the stop path with it (agent.log)."""
    with log_lines.background():
        return await _run_daemon(settings, clock)


async def _run_daemon(settings: Settings, clock: Clock) -> int:
    coder = None
    if settings.hooks_mode and planned_transport(settings) == "socket":
        # No snapshot to upload, and the status goes by the agent's socket without a token
        # (Coder >= v2.32): a workspace whose processes get no agent token can run the daemon.
        alone = settings.replace(status_transport="socket")
        if settings.status_transport == "auto":
            missing = "CODER_AGENT_URL" if not settings.coder_url else "CODER_AGENT_TOKEN"
            log.warning(
                "status_socket_only",
                reason=f"{missing} is not set: the status goes through the agent's socket "
                f"({alone.agent_socket_path}) only, with no HTTP fallback",
            )
        settings = alone
    else:
        coder = settings.require_coder()
    if settings.socket_path is not None:
        # A second daemon for the same socket refuses to start (exit 2, naming the other
        # process) rather than take reports from the live one; an unusable path is not fatal
        # (the socket server logs it and goes on).
        try:
            check_socket_free(Path(settings.socket_path))
        except ConfigError as exc:
            if isinstance(exc, SocketInUse):
                raise
    async with AsyncExitStack() as stack:
        agentapi = await stack.enter_async_context(agentapi_http(settings))
        client = None
        if coder is not None:
            http = await stack.enter_async_context(coder_http(settings, *coder))
            client = CoderClient(http, settings.app_slug, clock=clock)
        send = None if client is None else client.patch_app_status
        sender = await stack.enter_async_context(open_sender(settings, send, clock))
        notifier = Notifier.for_settings(settings)
        agentapi_client = AgentAPIClient(agentapi, clock=clock)
        daemon = Daemon(settings, agentapi_client, client, sender, notifier=notifier, clock=clock)
        return await daemon.run()
