"""Choosing the status transport: the agent's socket (real Unix socket, stand-in agent) or HTTP.

The HTTP side is a recording coroutine (the HTTP client has its own tests); the socket side is
the agent-socket stand-in served from the test's event loop.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import pytest
from structlog.testing import capture_logs

from agent.coder.agentsocket import AgentSocketClient
from agent.coder.route import StatusSender, needs_coder_http, open_sender, planned_transport
from agent.config import Secret, Settings, StatusTransport
from agent.daemon.reporter import Reporter
from agent.errors import (
    ConfigError,
    NotListening,
    Rejected,
    TransportError,
    TryAgain,
    Unsupported,
)
from agent.models import AppState, AppStatus
from agent.retry import Backoff
from standins.agentsocket import AgentSocketStandIn, SocketFault, run_agent_socket_standin
from tests.fakes import wait_until
from tests.manualclock import ManualClock

pytestmark = pytest.mark.anyio

WORKING = AppStatus(AppState.WORKING, "Working on it")
IDLE = AppStatus(AppState.IDLE, "Turn finished")
COMPLETE = AppStatus(AppState.COMPLETE, "Done", "https://example.com/pr/1")


class Http:
    """The HTTP way, recorded."""

    def __init__(self) -> None:
        self.sent: list[AppStatus] = []

    async def send(self, status: AppStatus) -> None:
        self.sent.append(status)


class Agent:
    """A stand-in agent socket that the test can stop and start again at the same path."""

    def __init__(self, path: Path, group: anyio.abc.TaskGroup) -> None:
        self.path = path
        self.group = group
        self.standin = AgentSocketStandIn()
        self._scope: anyio.CancelScope | None = None

    async def start(self, standin: AgentSocketStandIn | None = None) -> AgentSocketStandIn:
        self.standin = standin or AgentSocketStandIn()
        scope = anyio.CancelScope()
        self._scope = scope

        async def serve(*, task_status: anyio.abc.TaskStatus[Path]) -> None:
            with scope:
                await run_agent_socket_standin(self.standin, self.path, task_status=task_status)

        await self.group.start(serve)
        return self.standin

    async def stop(self) -> None:
        assert self._scope is not None
        self._scope.cancel()
        await wait_until(lambda: not self.path.exists())

    def sent(self) -> list[tuple[str, str, str]]:
        return [(s.state, s.message, s.uri) for s in self.standin.statuses]


@asynccontextmanager
async def setup(
    tmp_path: Path,
    mode: StatusTransport = "auto",
    *,
    timeout: float = 5.0,  # noqa: ASYNC109 - the client's per-call deadline, not this one's
    clock: ManualClock | None = None,
) -> AsyncIterator[tuple[Agent, StatusSender, Http]]:
    path = tmp_path / "coder-agent.sock"
    http = Http()
    clock = clock or ManualClock()
    with anyio.fail_after(20):
        async with (
            anyio.create_task_group() as group,
            # One clock for the sender and its socket client: a call times out only when the
            # test moves the clock (see `out_of_time`).
            AgentSocketClient(path, timeout, clock=clock) as client,
        ):
            sender = StatusSender(
                mode,
                "agent",
                socket=None if mode == "http" else client,
                http=http.send,
                clock=clock,
            )
            yield Agent(path, group), sender, http
            group.cancel_scope.cancel()


async def out_of_time(clock: ManualClock, call: Awaitable[None]) -> Exception | None:
    """Run `call` until it waits for an answer that does not come, then move the clock past
    its deadline; what it raised, or None."""
    raised: list[Exception | None] = []

    async def run() -> None:
        try:
            await call
        except Exception as exc:
            raised.append(exc)
        else:
            raised.append(None)

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        await wait_until(lambda: clock.deadlines > 0)
        await anyio.wait_all_tasks_blocked()
        assert raised == [], "the call waits for its answer until the clock moves"
        await clock.advance_to_next()
    return raised[0]


def wire(status: AppStatus) -> tuple[str, str, str]:
    return (status.state.wire, status.message, status.uri)


async def test_auto_without_a_socket_is_http(tmp_path: Path) -> None:
    async with setup(tmp_path) as (_agent, sender, http):
        assert sender.transport == "auto"
        with capture_logs() as logs:
            assert await sender.choose() == "http"
            await sender(WORKING)
    assert http.sent == [WORKING]
    assert logs[0]["event"] == "status_transport_chosen"
    assert logs[0]["transport"] == "http"
    assert "no agent socket" in logs[0]["reason"]


async def test_auto_prefers_the_socket(tmp_path: Path) -> None:
    async with setup(tmp_path) as (agent, sender, http):
        standin = await agent.start()
        assert await sender.choose() == "socket"
        for status in (WORKING, IDLE, COMPLETE):
            await sender(status)
        assert agent.sent() == [wire(WORKING), wire(IDLE), wire(COMPLETE)]
        # One Ping to decide, then the three calls, on one connection.
        assert [c.method for c in standin.calls] == ["Ping"] + ["UpdateAppStatus"] * 3
        assert standin.connections == 1
    assert http.sent == []


async def test_an_agent_without_the_method_means_http_without_asking_again(
    tmp_path: Path,
) -> None:
    async with setup(tmp_path) as (agent, sender, http):
        standin = await agent.start(AgentSocketStandIn(methods=("Ping",)))
        assert await sender.choose() == "socket"
        with capture_logs() as logs:
            await sender(WORKING)  # unknown rpc: not applied, so sent by HTTP at once
        assert sender.transport == "http"
        await sender(IDLE)
        assert [c.answer.split(":")[0] for c in standin.calls] == ["ok", "error"]
    assert http.sent == [WORKING, IDLE]
    changed = [e for e in logs if e["event"] == "status_transport_changed"]
    assert changed[0]["transport"] == "http"
    assert "unknown rpc" in changed[0]["reason"]


async def test_an_agent_without_ping_means_http(tmp_path: Path) -> None:
    async with setup(tmp_path) as (agent, sender, http):
        await agent.start(AgentSocketStandIn(methods=()))
        assert await sender.choose() == "http"
        await sender(WORKING)
    assert http.sent == [WORKING]


async def test_not_connected_is_try_again_on_the_socket(tmp_path: Path) -> None:
    async with setup(tmp_path) as (agent, sender, http):
        standin = await agent.start()
        standin.faults.append(SocketFault("not_connected"))
        with pytest.raises(TryAgain, match="agent not connected to coderd") as caught:
            await sender(WORKING)
        assert not isinstance(caught.value, TransportError)
        assert sender.transport == "socket"
        await sender(WORKING)
        assert agent.sent() == [wire(WORKING)]
    assert http.sent == []


async def test_a_validation_error_is_a_rejection(tmp_path: Path) -> None:
    async with setup(tmp_path) as (agent, sender, http):
        standin = await agent.start()
        standin.faults.append(SocketFault("reject"))
        with pytest.raises(Rejected, match="Message is too long") as caught:
            await sender(WORKING)
        assert caught.value.status == 400
    assert http.sent == []


async def test_a_drop_mid_call_is_try_again_then_the_socket_is_asked_again(
    tmp_path: Path,
) -> None:
    async with setup(tmp_path) as (agent, sender, http):
        standin = await agent.start()
        standin.faults.append(SocketFault("drop", apply=True))
        with pytest.raises(TransportError, match="closed the connection"):
            await sender(WORKING)
        # Applied before the drop: the server has it, but we cannot know; a retry sends it
        # again (the reporter decides what to retry; the sender never sends twice by itself).
        await sender(WORKING)
        assert [c.method for c in standin.calls] == [
            "Ping",
            "UpdateAppStatus",
            "Ping",
            "UpdateAppStatus",
        ]
        assert standin.connections == 2
    assert http.sent == []


async def test_a_slow_answer_times_out(tmp_path: Path) -> None:
    clock = ManualClock()
    async with setup(tmp_path, timeout=0.3, clock=clock) as (agent, sender, http):
        standin = await agent.start()
        standin.faults.append(SocketFault("slow", delay=3600.0))
        raised = await out_of_time(clock, sender(WORKING))
        assert isinstance(raised, TransportError)
        assert "no answer within 0.3 s" in str(raised)
        await sender(IDLE)  # a fresh connection; the stand-in answers Ping at once
        assert agent.sent() == [wire(IDLE)]
    assert http.sent == []


async def test_switches_when_the_socket_goes_and_comes_back(tmp_path: Path) -> None:
    async with setup(tmp_path) as (agent, sender, http):
        await agent.start()
        await sender(WORKING)
        first = agent.sent()
        await agent.stop()
        with capture_logs() as logs:
            await sender(IDLE)
            assert sender.transport == "http"
            await agent.start()  # an agent restart: a new socket file, asked afresh
            await sender(COMPLETE)
            assert sender.transport == "socket"
        assert first == [wire(WORKING)]
        assert agent.sent() == [wire(COMPLETE)]
    assert http.sent == [IDLE]
    changes = [e for e in logs if e["event"] == "status_transport_changed"]
    assert [(e["previous"], e["transport"]) for e in changes] == [
        ("socket", "http"),
        ("http", "socket"),
    ]


async def test_a_socket_that_does_not_answer_is_asked_again_only_later(tmp_path: Path) -> None:
    clock = ManualClock()
    accepted: list[int] = []
    async with setup(tmp_path, timeout=0.2, clock=clock) as (
        agent,
        sender,
        http,
    ):

        async def hang(stream: anyio.abc.SocketStream) -> None:
            accepted.append(1)
            async with stream:
                await anyio.sleep_forever()

        async def serve(*, task_status: anyio.abc.TaskStatus[None]) -> None:
            async with await anyio.create_unix_listener(agent.path) as listener:
                task_status.started()
                await listener.serve(hang)

        await agent.group.start(serve)
        assert await out_of_time(clock, sender(WORKING)) is None  # Ping times out: HTTP
        await sender(IDLE)  # within the minute: HTTP without asking
        assert len(accepted) == 1
        clock.advance(61)
        assert await out_of_time(clock, sender(COMPLETE)) is None  # asked again, no answer
        assert len(accepted) == 2
    assert http.sent == [WORKING, IDLE, COMPLETE]


@pytest.mark.skipif(os.getuid() != 0, reason="changing a file's owner needs root")
async def test_another_users_socket_is_refused_and_said_so(tmp_path: Path) -> None:
    async with setup(tmp_path) as (agent, sender, http):
        standin = await agent.start()
        os.chown(agent.path, 4242, -1)
        with capture_logs() as logs:
            assert await sender.choose() == "http"
            await sender(WORKING)
        assert standin.connections == 0
    assert http.sent == [WORKING]
    refused = [e for e in logs if e["event"] == "agent_socket_refused"]
    assert len(refused) == 1
    assert "belongs to uid 4242" in refused[0]["reason"]
    assert refused[0]["log_level"] == "warning"


async def test_forced_socket_never_uses_http(tmp_path: Path) -> None:
    async with setup(tmp_path, mode="socket") as (agent, sender, http):
        assert sender.transport == "socket"
        with capture_logs() as logs:
            assert await sender.choose() == "socket"
        assert logs[0]["event"] == "agent_socket_unavailable"
        with pytest.raises(NotListening):
            await sender(WORKING)
        standin = await agent.start()
        await sender(WORKING)
        standin.methods = ("Ping",)
        with pytest.raises(Unsupported):
            await sender(IDLE)
    assert http.sent == []


@pytest.mark.skipif(os.getuid() != 0, reason="changing a file's owner needs root")
async def test_forced_socket_refuses_another_users_socket_but_keeps_trying(
    tmp_path: Path,
) -> None:
    async with setup(tmp_path, mode="socket") as (agent, sender, http):
        standin = await agent.start()
        os.chown(agent.path, 4242, -1)
        with pytest.raises(TransportError, match="belongs to uid 4242"):
            await sender(WORKING)
        assert standin.connections == 0
    assert http.sent == []


async def test_forced_http_never_touches_the_socket(tmp_path: Path) -> None:
    async with setup(tmp_path, mode="http") as (agent, sender, http):
        standin = await agent.start()
        assert await sender.choose() == "http"
        await sender(WORKING)
        assert standin.connections == 0
    assert http.sent == [WORKING]


async def test_http_needed_but_not_configured(tmp_path: Path) -> None:
    sender = StatusSender("http", "agent", socket=None, http=None)
    with pytest.raises(ConfigError, match="CODER_AGENT_TOKEN"):
        await sender(WORKING)
    with pytest.raises(ValueError, match="needs the agent-socket client"):
        StatusSender("auto", "agent", socket=None, http=None)


async def test_open_sender_builds_http_only_when_needed(tmp_path: Path) -> None:
    settings = Settings(app_slug="agent", agent_socket_path=tmp_path / "none.sock")
    with anyio.fail_after(10):
        async with open_sender(settings) as sender:
            # No socket, and no Coder configured: the HTTP way says what is missing.
            with pytest.raises(ConfigError, match="CODER_AGENT_URL"):
                await sender(WORKING)
        async with open_sender(Settings(status_transport="http")) as sender:
            assert sender.transport == "http"


async def test_a_switch_mid_run_neither_resends_nor_loses(tmp_path: Path) -> None:
    # The reporter over the sender: each state delivered exactly once, by whichever way.
    async with setup(tmp_path) as (agent, sender, http):
        await agent.start()
        reporter = Reporter(sender, Backoff(base=0.001, cap=0.004))
        agent.group.start_soon(reporter.run)
        reporter.want(WORKING)
        await wait_until(lambda: reporter.delivered == WORKING)
        await agent.stop()
        reporter.want(IDLE)
        await wait_until(lambda: reporter.delivered == IDLE)
        standin = await agent.start()
        standin.faults.append(SocketFault("not_connected"))  # the agent still reconnecting
        reporter.want(COMPLETE)
        await wait_until(lambda: reporter.delivered == COMPLETE)
        assert agent.sent() == [wire(COMPLETE)]
    assert http.sent == [IDLE]


@pytest.mark.parametrize(
    ("mode", "transport", "url", "token", "exists", "planned", "daemon_needs", "report_needs"),
    [
        # A snapshot to upload: the daemon needs HTTP whatever the status does.
        ("events", "auto", None, None, True, "socket", True, False),
        ("hooks", "http", None, None, True, "http", True, True),  # asked for HTTP
        ("hooks", "auto", "https://c.example", "t", True, None, False, False),  # HTTP fallback
        ("hooks", "auto", None, "t", True, "socket", False, False),  # no URL: the socket alone
        ("hooks", "auto", "https://c.example", None, True, "socket", False, False),
        ("hooks", "socket", "https://c.example", "t", True, "socket", False, False),
        # No agent socket there (a direct report looks): HTTP is the only way.
        ("hooks", "auto", None, None, False, "http", True, True),
        ("hooks", "socket", None, None, False, "socket", False, False),
    ],
)
def test_the_way_and_the_need_for_coder_http_are_decided_before_anything_is_sent(  # noqa: PLR0917
    mode: str,
    transport: str,
    url: str | None,
    token: str | None,
    exists: bool,
    planned: str | None,
    daemon_needs: bool,
    report_needs: bool,
) -> None:
    settings = Settings(
        mode=mode, status_transport=transport, coder_url=url, token=Secret(token) if token else None
    )
    assert planned_transport(settings, agent_socket_exists=exists) == planned
    daemon = needs_coder_http(settings, uploads=not settings.hooks_mode, agent_socket_exists=exists)
    assert daemon is daemon_needs
    assert needs_coder_http(settings, uploads=False, agent_socket_exists=exists) is report_needs


async def drive(clock: ManualClock, done: Callable[[], bool], *, cut_calls: bool) -> None:
    """Move the clock from one due time to the next until `done`. A call in flight waits on the
    real socket, which a task blocked there does not show: its deadline is passed only with
    `cut_calls` (the agent never answers); else the clock waits for the call to end."""

    def movable() -> bool:
        return clock.next_due() is not None and (cut_calls or clock.deadlines == 0)

    with anyio.fail_after(10):
        while not done():
            await wait_until(lambda: done() or movable())
            await anyio.wait_all_tasks_blocked()
            if not done() and movable():
                await clock.advance_to_next()


@pytest.mark.parametrize(
    "fault",
    ["not_connected", "applied_then_dropped", "dropped", "no_answer", "agent_gone"],
)
async def test_while_the_socket_fails_the_state_changes_and_the_latest_arrives_once(
    tmp_path: Path, fault: str
) -> None:
    """Forced socket: idle confirmed; working, complete, idle again wanted while every call
    fails; when the agent answers again Coder shows the latest (idle), sent once at most (not
    at all when Coder still shows it), and nothing after it."""
    clock = ManualClock()
    async with setup(tmp_path, "socket", timeout=1.0, clock=clock) as (agent, sender, http):
        standins = [await agent.start()]
        reporter = Reporter(sender, Backoff(base=2, cap=2), clock=clock)
        agent.group.start_soon(reporter.run)
        reporter.want(IDLE)
        await drive(clock, lambda: reporter.delivered == IDLE, cut_calls=False)
        failing = {
            "not_connected": SocketFault("not_connected"),
            "applied_then_dropped": SocketFault("drop", apply=True),
            "dropped": SocketFault("drop"),
            "no_answer": SocketFault("slow", delay=3600.0),
        }.get(fault)
        if failing is None:
            await agent.stop()
        else:
            standins[0].faults.extend([failing] * 1000)
        for status in (WORKING, COMPLETE, IDLE):
            tried = clock.now()
            reporter.want(status)
            # A failed attempt and its retry's wait before the next change (none for an idle
            # equal to the one Coder holds when no attempt reached it).
            await drive(
                clock,
                lambda t=tried: reporter.pending is None or clock.now() > t + 2,  # type: ignore[misc]
                cut_calls=fault == "no_answer",
            )
        assert reporter.pending is None or reporter.in_doubt
        # The agent recovers between attempts, with no call of the outage still in flight.
        await drive(
            clock,
            lambda: clock.deadlines == 0 and (clock.sleepers > 0 or reporter.pending is None),
            cut_calls=fault == "no_answer",
        )
        before = [len(s.statuses) for s in standins]
        if failing is None:
            standins.append(await agent.start())
            before.append(0)
        else:
            standins[0].faults.clear()
        await drive(clock, lambda: reporter.pending is None, cut_calls=False)
        # Long after: nothing more is sent but, when a send of another status had an unknown
        # outcome, the latest once more (a late apply of it is overwritten: agent.daemon.reporter).
        for _ in range(2):
            clock.advance(60)
            await drive(clock, lambda: reporter.pending is None, cut_calls=False)
            await anyio.wait_all_tasks_blocked()
        after = [s.statuses[n:] for s, n in zip(standins, before, strict=True)]
        sent = [wire(AppStatus(AppState(s.state), s.message, s.uri)) for a in after for s in a]
        shown = next(s for s in reversed(standins) if s.statuses).statuses[-1]
        assert (shown.state, shown.message) == ("idle", IDLE.message), "Coder shows the latest"
        assert len(sent) <= 2, sent
        assert len(set(sent)) <= 1, sent
    assert http.sent == []
