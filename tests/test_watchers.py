"""Poll and events modes apply the same rules: each scenario runs through both watchers.

The watchers feed a recording observer that applies the pure rules; time is a ManualClock, so
a poll happens exactly when the test moves the clock by one interval and nothing waits for real
seconds. The scenarios are the outage and restart classes of docs/faults.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal

import anyio
import pytest

from agent.agentapi import AgentAPIClient
from agent.config import Settings
from agent.daemon.mirror import Mirror
from agent.daemon.watchers import EventsWatcher, PollWatcher
from agent.models import AppState, AppStatus
from agent.retry import Backoff
from agent.rules import (
    IDLE_MESSAGE,
    WORKING_MESSAGE,
    ExplicitReport,
    HistorySeen,
    Observation,
    RulesState,
    StatusSeen,
    Tick,
    step,
)
from tests.fakes import FakeAgentAPI, message, wait_until
from tests.manualclock import ManualClock

pytestmark = pytest.mark.anyio
DEBOUNCE = 3.0
INTERVAL = 1.0
IDLE = AppStatus(AppState.IDLE, IDLE_MESSAGE)
WORKING = AppStatus(AppState.WORKING, WORKING_MESSAGE)
COMPLETE = AppStatus(AppState.COMPLETE, "Opened PR #7")


class Fixed(Backoff):
    """The policy's ceiling every time: reconnect waits the test can count on."""

    def wait(self, attempt: int, rng: Callable[[], float] = lambda: 1.0) -> float:
        return self.cap


RECONNECT = Fixed(base=2.5 * INTERVAL, cap=2.5 * INTERVAL)


@dataclass
class RulesObserver:
    """Applies the rules to what the watcher sees; records every change of the wanted status."""

    rules: RulesState = field(default_factory=RulesState)
    seen: list[Observation] = field(default_factory=list)
    wanted: list[AppStatus] = field(default_factory=list)
    problems: int = 0

    def observe(self, observation: Observation) -> None:
        self.seen.append(observation)
        self.rules = step(self.rules, observation, DEBOUNCE)
        wanted = self.rules.wanted
        if wanted is not None and (not self.wanted or self.wanted[-1] != wanted):
            self.wanted.append(wanted)

    def agentapi_ok(self) -> None:
        pass

    def agentapi_problem(self, error: Exception) -> None:
        self.problems += 1

    def count(self, kind: type[object]) -> int:
        return sum(isinstance(o, kind) for o in self.seen)


Mode = Literal["events", "poll"]


@dataclass
class Driver:
    """Changes AgentAPI the same way in both modes and waits until the watcher has seen it."""

    mode: Mode
    agentapi: FakeAgentAPI
    observer: RulesObserver
    clock: ManualClock

    async def advance_until(self, predicate: Callable[[], bool]) -> None:
        """Move the clock an interval at a time (whenever the watcher waits) until `predicate`."""
        with anyio.fail_after(5):
            while not predicate():
                await wait_until(lambda: predicate() or self.clock.sleepers >= 1)
                if not predicate():
                    await self.clock.advance_to_next()

    async def poll(self) -> None:
        """Poll mode: one interval passes, and the poll it triggers is observed."""
        before = self.observer.count(StatusSeen)
        await wait_until(lambda: self.clock.sleepers >= 1)
        self.clock.advance(INTERVAL)
        await wait_until(lambda: self.observer.count(StatusSeen) > before)

    async def status(self, status: str) -> None:
        if self.mode == "poll":
            self.agentapi.status = status
            await self.poll()
            return
        before = self.observer.count(StatusSeen)
        await self.agentapi.set_status(status)
        await wait_until(lambda: self.observer.count(StatusSeen) > before)

    async def say(self, role: str, content: str) -> None:
        if self.mode == "poll":
            self.agentapi.messages.append(message(len(self.agentapi.messages), role, content))
            return  # seen with the next status change, as a poller sees it
        before = len(self.observer.seen)
        await self.agentapi.put_message(role, content)
        if role == "user":
            await wait_until(lambda: len(self.observer.seen) > before)

    async def tick(self, seconds: float) -> None:
        """Time passes: the poller reads the (same) status again; both get a Tick."""
        if self.mode == "poll":
            for _ in range(int(seconds / INTERVAL)):
                await self.poll()
        else:
            self.clock.advance(seconds)
        self.observer.observe(Tick(self.clock.now()))

    def explicit(self, status: AppStatus) -> None:
        self.observer.observe(ExplicitReport(status, self.clock.now()))

    async def restart(self) -> None:
        """AgentAPI restarts without saved state: ids start over from its startup screen."""
        self.agentapi.messages = [message(0, "agent", "Welcome back")]
        self.agentapi.status = "stable"
        if self.mode == "events":
            before = self.observer.count(HistorySeen)
            await self.agentapi.end_streams()
            await self.advance_until(lambda: self.observer.count(HistorySeen) > before)

    async def outage(self, during: Callable[[], None]) -> None:
        """The event stream is down while `during` changes AgentAPI; then it comes back."""
        if self.mode == "poll":
            during()
            return
        self.agentapi.events_status = 503
        before = self.observer.problems
        await self.agentapi.end_streams()
        await self.advance_until(lambda: self.observer.problems > before)
        during()
        self.agentapi.events_status = 200
        # Polled meanwhile (histories too), then reconnected: wait for the stream, then for
        # its replay to be read (every task blocked: the watcher waits on the stream).
        await self.advance_until(lambda: self.agentapi.subscribers >= 1)
        with anyio.fail_after(5):
            await anyio.wait_all_tasks_blocked()


@asynccontextmanager
async def watching(
    mode: Mode, agentapi: FakeAgentAPI, backoff: Backoff = RECONNECT
) -> AsyncIterator[Driver]:
    clock = ManualClock()
    observer = RulesObserver()
    settings = Settings(poll_interval=INTERVAL, working_debounce=DEBOUNCE, agentapi_timeout=5)
    kind = EventsWatcher if mode == "events" else PollWatcher
    with anyio.fail_after(10):
        async with agentapi.client() as http, anyio.create_task_group() as group:
            watcher = kind(
                AgentAPIClient(http), settings, observer, Mirror(), clock, backoff=backoff
            )
            group.start_soon(watcher.run)
            await wait_until(lambda: observer.count(StatusSeen) >= 1)
            yield Driver(mode, agentapi, observer, clock)
            group.cancel_scope.cancel()


Scenario = Callable[[Driver], object]


async def prompt_and_answer(d: Driver) -> None:
    await d.say("user", "Fix the flaky test\nin CI")
    await d.status("running")
    await d.say("agent", "Fixed.")
    await d.status("stable")
    await d.tick(DEBOUNCE)


async def complete_while_agentapi_still_says_running(d: Driver) -> None:
    await d.say("user", "Open a PR")
    await d.status("running")
    d.explicit(COMPLETE)
    await d.tick(2 * DEBOUNCE)  # AgentAPI keeps saying running (the screen still moves)
    await d.status("stable")
    await d.tick(DEBOUNCE)


async def restart_then_prompt(d: Driver) -> None:
    await d.say("user", "First task")
    await d.status("running")
    await d.status("stable")
    await d.tick(DEBOUNCE)
    await d.restart()
    await d.tick(INTERVAL)
    await d.say("user", "After the restart")
    await d.status("running")
    await d.status("stable")
    await d.tick(DEBOUNCE)


async def prompt_during_an_outage(d: Driver) -> None:
    def prompted() -> None:
        d.agentapi.messages.append(message(len(d.agentapi.messages), "user", "Sent meanwhile"))
        d.agentapi.status = "running"

    await d.outage(prompted)
    await d.status("running")
    await d.status("stable")
    await d.tick(DEBOUNCE)


SCENARIOS: dict[str, tuple[Scenario, Sequence[AppStatus]]] = {
    "prompt_and_answer": (
        prompt_and_answer,
        [IDLE, AppStatus(AppState.WORKING, "Fix the flaky test"), IDLE],
    ),
    "complete_while_agentapi_still_says_running": (
        complete_while_agentapi_still_says_running,
        [IDLE, AppStatus(AppState.WORKING, "Open a PR"), COMPLETE],
    ),
    "restart_then_prompt": (
        restart_then_prompt,
        [
            IDLE,
            AppStatus(AppState.WORKING, "First task"),
            IDLE,
            AppStatus(AppState.WORKING, "After the restart"),
            IDLE,
        ],
    ),
    "prompt_during_an_outage": (
        prompt_during_an_outage,
        [IDLE, AppStatus(AppState.WORKING, "Sent meanwhile"), IDLE],
    ),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_poll_and_events_modes_report_the_same(name: str) -> None:
    scenario, expected = SCENARIOS[name]
    results: dict[Mode, list[AppStatus]] = {}
    for mode in ("events", "poll"):
        async with watching(mode, FakeAgentAPI()) as driver:
            await scenario(driver)  # type: ignore[misc]
            results[mode] = list(driver.observer.wanted)
    assert results["events"] == list(expected)
    assert results["poll"] == results["events"]


async def test_status_is_observed_every_interval_while_the_stream_is_down() -> None:
    agentapi = FakeAgentAPI()
    # A reconnect backoff far longer than the poll interval: /status is still read every interval.
    async with watching("events", agentapi, Fixed(base=30.0, cap=30.0)) as driver:
        agentapi.events_status = 503
        await agentapi.end_streams()
        await driver.advance_until(lambda: driver.observer.problems >= 1)
        events = agentapi.requests.count("GET /events")
        failed_at = driver.clock.now()
        await driver.poll()
        agentapi.status = "running"
        await driver.poll()
        assert driver.observer.rules.agent_status == "running"
        for _ in range(3):
            await driver.poll()
        assert agentapi.requests.count("GET /events") == events, "no reconnect before 30 s"
        assert driver.clock.now() - failed_at == 5 * INTERVAL


async def test_an_outage_is_observed_as_poll_mode_observes() -> None:
    """While the stream is down: /messages on a status change, so each transition is reported
    within a poll interval (a prompt with its text, the idle after it without the debounce)."""
    agentapi = FakeAgentAPI()
    async with watching("events", agentapi, Fixed(base=30.0, cap=30.0)) as driver:
        agentapi.events_status = 503
        await agentapi.end_streams()
        await driver.advance_until(lambda: driver.observer.problems >= 1)
        fetches = agentapi.requests.count("GET /messages")
        await driver.poll()
        assert agentapi.requests.count("GET /messages") == fetches, "unchanged: not fetched"
        agentapi.messages.append(message(1, "user", "Sent meanwhile\nwith details"))
        agentapi.status = "running"
        await driver.poll()
        assert driver.observer.wanted[-1] == AppStatus(AppState.WORKING, "Sent meanwhile")
        assert agentapi.requests.count("GET /messages") == fetches + 1
        agentapi.messages.append(message(2, "agent", "Done."))
        agentapi.status = "stable"
        await driver.poll()
        assert driver.observer.wanted[-1] == IDLE, "at once: the agent was seen running"
        for _ in range(3):
            await driver.poll()
        assert agentapi.requests.count("GET /messages") == fetches + 2
        assert agentapi.requests.count("GET /events") == 2, "no reconnect before 30 s"


@pytest.mark.parametrize("mode", ["events", "poll"])
async def test_after_a_long_outage_the_idle_is_seen_within_a_poll_interval(mode: Mode) -> None:
    """AgentAPI unreachable for minutes while the agent worked, then back and idle: the working
    must not outlive the agent's idleness by a reconnect backoff (rule 4), in either mode."""
    agentapi = FakeAgentAPI()
    agentapi.status = "running"
    async with watching(mode, agentapi, Fixed(base=30.0, cap=30.0)) as driver:
        assert driver.observer.wanted == [WORKING]
        agentapi.down = True
        await agentapi.end_streams()
        await driver.advance_until(lambda: driver.observer.problems >= 1)
        down_at = driver.clock.now()
        await driver.advance_until(lambda: driver.clock.now() >= down_at + 120)
        agentapi.down = False
        agentapi.status = "stable"
        back_at = driver.clock.now()
        await driver.advance_until(lambda: driver.observer.wanted[-1] == IDLE)
        assert driver.clock.now() - back_at <= INTERVAL
