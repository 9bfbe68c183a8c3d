"""`python -m agent run`: the long-running daemon.

The daemon orchestrates: it owns the lifecycle and the supervision of its tasks, and it is where
observations meet the rules. One task group holds the tasks: the AgentAPI watcher
(`agent.daemon.watchers`: the `/events` stream, or polling, feeding observations back here), the
debounce ticker, the status reporter, the report socket, the systemd watchdog and the task that
keeps the snapshot body ready. Every read of the time and every wait goes through one injected
`Clock`, so tests drive it by hand. The stop path (`agent.daemon.stop`: the signals, the
snapshot upload, the teardown of that group and the final status) is its own concern beside it;
the daemon starts it and returns its outcome's exit code.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import anyio
import httpx
import structlog

from agent import boundary
from agent import lastreport as laststate
from agent.agentapi import AgentAPIClient
from agent.clock import SYSTEM_CLOCK, Clock
from agent.coder.httpapi import CoderClient
from agent.coder.route import StatusSender, open_sender, planned_transport
from agent.config import Environment, Settings
from agent.daemon.reporter import Reporter
from agent.daemon.sdnotify import Notifier
from agent.daemon.stop import StopPath, Watching
from agent.daemon.supervise import supervised
from agent.daemon.watchers import watcher_for
from agent.errors import ConfigError
from agent.http_async import agentapi_http, coder_http
from agent.models import AppStatus
from agent.reportsocket.server import SocketInUse, check_socket_free, serve_reports
from agent.rules import ExplicitReport, Observation, RulesState, Tick, next_deadline, step

log = structlog.get_logger("agent.daemon.daemon")


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
        self.notifier = notifier or Notifier()
        self.clock = clock
        self.rules = RulesState()
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
        self.ready = anyio.Event()
        self._watching = Watching(ready=self.ready, scope=anyio.CancelScope(), down=anyio.Event())
        # The snapshot goes up through the Coder client, on the connection it keeps (none
        # without Coder HTTP: hooks mode through the agent's socket only).
        self.stop_path = StopPath(
            settings,
            agentapi=agentapi,
            uploader=coder,
            reporter=self.reporter if self.reporting else None,
            notifier=self.notifier,
            clock=clock,
            watching=self._watching,
        )
        # The stop path's: the watchers keep it current.
        self.mirror = self.stop_path.mirror

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
        """Watch until SIGTERM/SIGINT (or `StopPath.request_stop`), then save the snapshot.

        Returns the exit code (the stop path's Outcome's).
        """
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
        if status is None:
            return
        log.info("last_report_restored", state=status.state.value, message=status.message)
        self.observe(ExplicitReport(status, self.clock.now()))

    async def _watch(self) -> None:
        try:
            with self._watching.scope:
                # Supervised as its tasks are: whatever escapes the watching (a bug, a library's
                # surprise) restarts it; the daemon ends only through the stop path.
                await supervised(self._watch_all, self.clock)
        finally:
            self._watching.down.set()

    async def _watch_all(self) -> None:
        async with anyio.create_task_group() as group:
            socket_path = self.settings.socket_path
            if socket_path is not None:
                try:
                    await group.start(
                        partial(
                            serve_reports,
                            on_snapshot=self.stop_path.snapshot_now,
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
                group.start_soon(supervised, self.reporter.run, self.clock)
            else:
                log.warning(
                    "status_reporting_disabled", reason="CODER_MCP_APP_STATUS_SLUG is not set"
                )
            group.start_soon(supervised, self._ticker, self.clock)
            group.start_soon(supervised, self._watchdog, self.clock)
            hooks_only = self.settings.hooks_mode
            if self.settings.mode == "events" and self.settings.task_id is not None:
                # Only a current stream's mirror is uploaded as it is (polling fetches at stop).
                group.start_soon(supervised, self.stop_path.prepare_snapshot, self.clock)
            if not hooks_only:
                watcher = watcher_for(self.settings, self.agentapi, self, self.mirror, self.clock)
                group.start_soon(supervised, watcher.run, self.clock)
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
