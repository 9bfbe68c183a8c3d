"""The same agent behaviour gives the same reports to Coder in events mode and in poll mode.

Each case is a script of what the agent and AgentAPI do (statuses, messages, explicit reports,
hook reports, a dropped `/events` stream, an outage of it) and the reports Coder should receive
after each step. The whole daemon runs it (watcher, rules, debounce ticker, reporter) against
the fake AgentAPI and Coder on a ManualClock, once per mode; after each step the clock moves
`SETTLE` seconds through every wait in order (longer than the debounce and the reconnect
backoff's ceiling), so each mode has seen everything by then, whatever its timing.

`CODER_CASES` replays the cases of Coder's own reporter test (`TestExpMcpReporter`, coder/coder
cli/exp_mcp_test.go) with the reports our rules give: the same sequence of states, with the
differences agent.rules rule 10 gives reasons for. Where Coder's fake AgentAPI does something
AgentAPI does not, the script does what AgentAPI does, and says so.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import pytest

from agent.agentapi import AgentAPIClient
from agent.coder.httpapi import CoderClient
from agent.coder.route import StatusSender
from agent.config import Secret, Settings
from agent.daemon.daemon import Daemon
from agent.models import AppState, AppStatus
from agent.rules import IDLE_MESSAGE, WORKING_MESSAGE
from tests.fakes import FakeAgentAPI, FakeCoder, message
from tests.manualclock import ManualClock

pytestmark = pytest.mark.anyio

DEBOUNCE = 3.0
INTERVAL = 1.0
# Longer than the debounce plus a poll, and than the reconnect backoff's ceiling (10 s) plus one.
SETTLE = 12.0
LINK = "https://dev.coder.com"

Mode = Literal["events", "poll", "hooks"]


# -- what the agent and AgentAPI do -------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    """AgentAPI's status becomes `status` (a `status_change` only when it changes, as AgentAPI)."""

    status: str


@dataclass(frozen=True)
class Say:
    """A message appears (or is rewritten, given an id), and nothing else changes."""

    role: str
    content: str
    id: int | None = None


@dataclass(frozen=True)
class Prompt:
    """A user message, and AgentAPI reads `running` as it types it into the agent's terminal.

    Coder's fake sends a user message with no status change; AgentAPI never does, and a poller
    reads `/messages` only when the status changes, so the script does what AgentAPI does.
    """

    content: str
    id: int | None = None


@dataclass(frozen=True)
class Report:
    """The agent reports explicitly (`report`, the report socket): Coder's tool call."""

    state: AppState
    message: str
    uri: str = ""


@dataclass(frozen=True)
class Hook:
    """A report from the agent's lifecycle hooks."""

    state: AppState
    message: str


@dataclass(frozen=True)
class Disconnect:
    """The `/events` stream ends (AgentAPI dropped a slow subscriber); the watcher reconnects.

    With `then`, AgentAPI changes while the stream is down, before the reconnect.
    """

    then: Status | None = None


@dataclass(frozen=True)
class Outage:
    """`/events` fails (503) from now on (`ends`: it serves again)."""

    ends: bool = False


@dataclass(frozen=True)
class Restart:
    """AgentAPI restarts without saved state: a new conversation from its startup screen."""


Action = Status | Say | Prompt | Report | Hook | Disconnect | Outage | Restart
Reported = tuple[AppState, str, str]


def reported(state: AppState, message: str, uri: str = "") -> Reported:
    return (state, message, uri)


WORKING = reported(AppState.WORKING, WORKING_MESSAGE)
IDLE = reported(AppState.IDLE, IDLE_MESSAGE)


@dataclass(frozen=True)
class Case:
    """A script: AgentAPI's state at start, what is reported at start, then each step's reports."""

    start: Sequence[Reported]
    steps: Sequence[tuple[Action, Sequence[Reported]]]
    status: str = "stable"
    messages: Sequence[dict[str, Any]] = (message(0, "agent", "Welcome"),)
    modes: Sequence[Mode] = ("events", "poll")


# -- running one -------------------------------------------------------------------------------


@dataclass
class Agent:
    """Plays a case's actions against AgentAPI and the daemon, moving the clock between them."""

    daemon: Daemon
    agentapi: FakeAgentAPI
    coder: FakeCoder
    clock: ManualClock
    reports: list[Reported] = field(default_factory=list)

    async def act(self, action: Action) -> None:
        agentapi = self.agentapi
        match action:
            case Status(status=status):
                await self._status(status)
            case Say(role=role, content=content, id=id_):
                await agentapi.put_message(role, content, id_)
            case Prompt(content=content, id=id_):
                await agentapi.put_message("user", content, id_)
                await self._status("running")
            case Report(state=state, message=text, uri=uri):
                self.daemon.explicit_report(AppStatus(state, text, uri))
            case Hook(state=state, message=text):
                self.daemon.hook_report(AppStatus(state, text))
            case Disconnect(then=then):
                await agentapi.end_streams()
                if then is not None:
                    # The clock has not moved: the reconnect, which waits on it, is still due.
                    await settled()
                    await self.act(then)
            case Outage(ends=ends):
                agentapi.events_status = 200 if ends else 503
                if not ends:
                    await agentapi.end_streams()
            case Restart():
                agentapi.messages = [message(0, "agent", "Welcome back")]
                agentapi.status = "stable"
                await agentapi.end_streams()

    async def _status(self, status: str) -> None:
        if self.agentapi.status != status:
            await self.agentapi.set_status(status)

    async def settle(self) -> list[Reported]:
        """Move the clock SETTLE seconds, through every wait in order; the reports meanwhile."""
        target = self.clock.now() + SETTLE
        with anyio.fail_after(10):
            while True:
                await settled()
                due = self.clock.next_due()
                if due is None or due > target:
                    self.clock.advance(target - self.clock.now())
                    await settled()
                    break
                await self.clock.advance_to_next()
        new = [_reported(body) for body in self.coder.statuses[len(self.reports) :]]
        self.reports.extend(new)
        return new


async def settled() -> None:
    with anyio.fail_after(5):
        await anyio.wait_all_tasks_blocked()


def _reported(body: dict[str, Any]) -> Reported:
    state = AppState.FAILED if body["state"] == "failure" else AppState(body["state"])
    return (state, body["message"], body["uri"])


@asynccontextmanager
async def daemon_in(mode: Mode, case: Case) -> AsyncIterator[Agent]:
    agentapi = FakeAgentAPI()
    agentapi.status = case.status
    agentapi.messages = [dict(m) for m in case.messages]
    coder = FakeCoder()
    clock = ManualClock()
    settings = Settings(
        coder_url="http://coder.test",
        token=Secret("t"),
        app_slug="claude",
        mode=mode,
        poll_interval=INTERVAL,
        working_debounce=DEBOUNCE,
        agentapi_timeout=5.0,
    )
    async with (
        agentapi.client() as agentapi_http,
        coder.client() as coder_http,
        anyio.create_task_group() as group,
    ):
        coder_client = CoderClient(coder_http, "claude", clock=clock)
        daemon = Daemon(
            settings,
            AgentAPIClient(agentapi_http, clock=clock),
            coder_client,
            StatusSender("http", None, socket=None, http=coder_client.patch_app_status),
            clock=clock,
        )
        group.start_soon(lambda: daemon.run(handle_signals=False))
        with anyio.fail_after(5):
            await daemon.ready.wait()
        yield Agent(daemon, agentapi, coder, clock)
        group.cancel_scope.cancel()


async def play(mode: Mode, case: Case) -> list[list[Reported]]:
    """The reports after the start and after each step."""
    async with daemon_in(mode, case) as agent:
        out = [await agent.settle()]
        for action, _ in case.steps:
            await agent.act(action)
            out.append(await agent.settle())
        return out


async def check(case: Case) -> None:
    expected = [list(case.start), *(list(reports) for _, reports in case.steps)]
    results = {mode: await play(mode, case) for mode in case.modes}
    for mode, got in results.items():
        assert got == expected, mode
    # And so, by construction, poll and events report the same sequence.


# -- Coder's reporter cases --------------------------------------------------------------------

CODER_CASES: dict[str, Case] = {
    # The agent reports working while it works (AgentAPI running; Coder's fake has no status
    # yet), then forgets to report that it finished.
    "Active": Case(
        status="running",
        start=[WORKING],
        steps=[
            (
                Report(AppState.WORKING, "doing work", LINK),
                [reported(AppState.WORKING, "doing work", LINK)],
            ),
            # The terminal goes quiet: idle, the link kept (rule 8; Coder keeps the summary too).
            (Status("stable"), [reported(AppState.IDLE, IDLE_MESSAGE, LINK)]),
            (Status("stable"), []),  # no change, nothing new
            # Active again without a prompt: working once it lasts the debounce (Coder: at once).
            (Status("running"), [reported(AppState.WORKING, WORKING_MESSAGE, LINK)]),
            (Say("agent", "Welcome, rewritten", id=0), []),  # agent messages are ignored
            (Status("running"), []),
            (Status("stable"), [reported(AppState.IDLE, IDLE_MESSAGE, LINK)]),
            # A new user message: working at once; an empty prompt says "Working" (rule 9).
            (Prompt("", id=1), [reported(AppState.WORKING, WORKING_MESSAGE, LINK)]),
            (Status("stable"), [reported(AppState.IDLE, IDLE_MESSAGE, LINK)]),
        ],
    ),
    # The agent never reports; only AgentAPI speaks.
    "Inactive": Case(
        status="running",
        messages=(),  # no startup screen: the first user message has id 0, as in Coder's case
        start=[WORKING],  # the first reading is reported, running or not (rule 1)
        steps=[
            (Status("stable"), [IDLE]),
            (Prompt("", id=0), [WORKING]),  # id 0 is a new user message too
            (Status("stable"), [IDLE]),
            (Prompt("", id=1), [WORKING]),
        ],
    ),
    # Coder overrides an agent's idle to working; ours stands (rule 10c). Final states are
    # trusted by both; ours holds them against `stable` (rule 10d), Coder's turns them idle.
    "IgnoreAgentState": Case(
        start=[IDLE],
        steps=[
            (Report(AppState.IDLE, "doing work"), [reported(AppState.IDLE, "doing work")]),
            (Report(AppState.IDLE, "finished"), [reported(AppState.IDLE, "finished")]),
            (Status("stable"), []),  # Coder: idle "finished", which ours already shows
            (
                Report(AppState.FAILED, "something broke"),
                [reported(AppState.FAILED, "something broke")],
            ),
            (Status("stable"), []),  # Coder: idle
        ],
    ),
    "AllowFinalStates": Case(
        status="running",
        start=[WORKING],
        steps=[
            (Report(AppState.WORKING, "doing work"), [reported(AppState.WORKING, "doing work")]),
            (Report(AppState.COMPLETE, "all done"), [reported(AppState.COMPLETE, "all done")]),
        ],
    ),
    # Without AgentAPI (hooks mode) the agent's reports are taken as they are.
    "KeepAgentState": Case(
        modes=("hooks",),
        start=[],
        steps=[
            (Report(AppState.WORKING, "doing work"), [reported(AppState.WORKING, "doing work")]),
            (Report(AppState.IDLE, "finished"), [reported(AppState.IDLE, "finished")]),
        ],
    ),
    # The stream drops and comes back with its replay (the same `stable` again); then the agent
    # reports working and never starts: the working ends at the agent's idleness all the same.
    "Reconnect": Case(
        status="running",
        start=[WORKING],
        steps=[
            (Report(AppState.WORKING, "doing work"), [reported(AppState.WORKING, "doing work")]),
            (Status("stable"), [IDLE]),
            (Disconnect(), []),
            # AgentAPI still reads stable and the agent never starts: idle once rule 4b's grace
            # is over, within this step. Coder expects that idle at its next step, a `stable`
            # its fake does not even send (nothing changed).
            (
                Report(AppState.WORKING, "reconnected"),
                [reported(AppState.WORKING, "reconnected"), IDLE],
            ),
            (Status("stable"), []),
        ],
    ),
    # The agent starts working while the stream is down: seen then (poll), not only at the
    # reconnect.
    "ReconnectStatusRecovery": Case(
        status="running",
        start=[WORKING],
        steps=[
            (Report(AppState.WORKING, "doing work"), [reported(AppState.WORKING, "doing work")]),
            (Status("stable"), [IDLE]),
            (Disconnect(then=Status("running")), [WORKING]),
        ],
    ),
    "WorkingTransition": Case(
        status="running",
        start=[WORKING],
        steps=[
            (Report(AppState.WORKING, "doing work"), [reported(AppState.WORKING, "doing work")]),
            (Status("stable"), [IDLE]),
            (Status("running"), [WORKING]),
            (Status("stable"), [IDLE]),
        ],
    ),
}


@pytest.mark.parametrize("name", sorted(CODER_CASES))
async def test_coder_reporter_cases(name: str) -> None:
    await check(CODER_CASES[name])


def test_the_reconnect_case_is_the_one_issue_20_found() -> None:
    """Before rule 4's change that case ended working: the replayed `stable` was no change."""
    reports = [r for _, step in CODER_CASES["Reconnect"].steps for r in step]
    assert reports[-2:] == [reported(AppState.WORKING, "reconnected"), IDLE]


# -- more behaviours: reconnects, outages, restarts, hooks -------------------------------------

PR = "https://git.example/pr/7"

CASES: dict[str, Case] = {
    "prompt_and_answer": Case(
        start=[IDLE],
        steps=[
            (
                Prompt("Fix the flaky test\nin CI"),
                [reported(AppState.WORKING, "Fix the flaky test")],
            ),
            (Say("agent", "Fixed."), []),
            (Status("stable"), [IDLE]),
        ],
    ),
    "a_whole_turn_during_an_outage": Case(
        start=[IDLE],
        steps=[
            (Outage(), []),
            (Prompt("Sent meanwhile"), [reported(AppState.WORKING, "Sent meanwhile")]),
            (Status("stable"), [IDLE]),
            (Outage(ends=True), []),
            (Prompt("After it"), [reported(AppState.WORKING, "After it")]),
            (Status("stable"), [IDLE]),
        ],
    ),
    "the_stream_drops_mid_turn": Case(
        start=[IDLE],
        steps=[
            (Prompt("Refactor"), [reported(AppState.WORKING, "Refactor")]),
            (Disconnect(then=Status("stable")), [IDLE]),
            (Prompt("Again"), [reported(AppState.WORKING, "Again")]),
            (Disconnect(), []),
            (Status("stable"), [IDLE]),
        ],
    ),
    "agentapi_restarts": Case(
        start=[IDLE],
        steps=[
            (Prompt("First task"), [reported(AppState.WORKING, "First task")]),
            (Status("stable"), [IDLE]),
            (Restart(), []),
            (Prompt("After the restart"), [reported(AppState.WORKING, "After the restart")]),
            (Status("stable"), [IDLE]),
        ],
    ),
    # The last turn's Stop hook handed over late, after the next prompt (or a permission granted
    # before AgentAPI read `stable`): the agent works on, AgentAPI reads `running` throughout.
    "a_hooks_idle_in_the_middle_of_a_turn": Case(
        start=[IDLE],
        steps=[
            (Prompt("Refactor"), [reported(AppState.WORKING, "Refactor")]),
            (
                Hook(AppState.IDLE, "Turn finished"),
                [reported(AppState.IDLE, "Turn finished"), WORKING],
            ),
            (Status("stable"), [IDLE]),
        ],
    ),
    "a_pr_link_stays_until_another_report": Case(
        start=[IDLE],
        steps=[
            (Prompt("Open a PR"), [reported(AppState.WORKING, "Open a PR")]),
            (
                Report(AppState.COMPLETE, "Opened PR #7", PR),
                [reported(AppState.COMPLETE, "Opened PR #7", PR)],
            ),
            (Hook(AppState.IDLE, "Turn finished"), []),  # rule 7: the complete holds
            (Status("stable"), []),
            (Prompt("Address the review"), [reported(AppState.WORKING, "Address the review", PR)]),
            (
                Hook(AppState.WORKING, "Running Bash"),
                [reported(AppState.WORKING, "Running Bash", PR)],
            ),
            (Status("stable"), [reported(AppState.IDLE, IDLE_MESSAGE, PR)]),
            # A report with a message and no link clears it; the agent never starts: idle.
            (Report(AppState.WORKING, "Next"), [reported(AppState.WORKING, "Next"), IDLE]),
        ],
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
async def test_poll_and_events_report_the_same(name: str) -> None:
    await check(CASES[name])
