"""The AgentAPI watchers: what AgentAPI says, as observations for the rules in `agent.rules`.

`EventsWatcher` follows `/events` (a replay of the whole history on every connect, then changes);
`PollWatcher` reads `/status` every interval and `/messages` when it matters. Both observe the
same way (a `HistorySeen` for a whole history, a `UserMessageSeen` for a live user message, a
`StatusSeen` for a status), so the modes agree by construction (tests/test_watchers.py). While
the stream is down the events watcher polls as the poll watcher does, so transitions arrive on
time however long the outage. Both keep the mirror current and never end on a failure.
"""

from __future__ import annotations

import ctypes
from contextlib import aclosing, suppress
from dataclasses import dataclass
from typing import Protocol

import structlog

from agent.agentapi import (
    AgentAPIClient,
    AgentErrorEvent,
    MalformedEvent,
    MessageUpdate,
    StatusChange,
    UnknownEvent,
)
from agent.clock import Clock
from agent.config import Settings
from agent.daemon.mirror import Mirror
from agent.errors import Rejected, RemoteError
from agent.retry import RECONNECT_BACKOFF, Backoff
from agent.rules import HistoryBuilder, Observation, StatusSeen, UserMessageSeen, history_of

log = structlog.get_logger("agent.daemon.watchers")

# While the agent runs, polling refreshes the history (its last message grows) this often;
# otherwise only on a status change: histories reach megabytes.
POLL_MESSAGES_REFRESH = 5.0
# A `/messages` answer with more messages than this was megabytes of short-lived objects.
LARGE_HISTORY = 200


class Observer(Protocol):
    """Where the watchers send what they see (the daemon)."""

    def observe(self, observation: Observation) -> None: ...

    def agentapi_ok(self) -> None:
        """AgentAPI answered (again)."""

    def agentapi_problem(self, error: Exception) -> None:
        """AgentAPI did not answer or answered nonsense."""


@dataclass
class PollState:
    """What polling remembers between reads."""

    last_status: str | None = None
    last_fetch: float = float("-inf")  # when `/messages` was fetched


class PollWatcher:
    """Reads `/status` every poll interval, `/messages` when it matters."""

    def __init__(
        self,
        agentapi: AgentAPIClient,
        settings: Settings,
        observer: Observer,
        mirror: Mirror,
        clock: Clock,
        *,
        backoff: Backoff = RECONNECT_BACKOFF,
    ) -> None:
        self._agentapi = agentapi
        self._settings = settings
        self._observer = observer
        self._mirror = mirror
        self._clock = clock
        self._backoff = backoff

    async def run(self) -> None:
        poll = PollState()
        while True:
            try:
                await self.poll_once(poll)
            except RemoteError as exc:
                self._observer.agentapi_problem(exc)
            # Every interval, failing or not (as the events watcher polls through an outage): a
            # reconnect backoff let a working outlive the agent's idleness by up to its cap once
            # AgentAPI was back. A poll of a loopback AgentAPI that is down costs nothing.
            await self._clock.sleep(self._settings.poll_interval)

    async def poll_once(self, poll: PollState) -> None:
        """Read `/status`, and `/messages` on a change (or while running, now and then); observe
        the history first, as the replay does. RemoteError leaves `poll` unchanged."""
        status = (await self._agentapi.status()).status
        now = self._clock.now()
        refresh = status == "running" and now - poll.last_fetch >= POLL_MESSAGES_REFRESH
        if status != poll.last_status or refresh:
            messages = await self._agentapi.messages()
            self._mirror.replace_all(messages)
            self._observer.observe(history_of(messages, self._clock.now()))
            if len(messages) > LARGE_HISTORY:
                # The allocator keeps the pages the parse needed: one 4 MB poll would leave RSS
                # ~10 MB higher for good. Handed back to the OS (glibc; else nothing).
                with suppress(OSError, AttributeError):
                    ctypes.CDLL("libc.so.6").malloc_trim(0)
            poll.last_fetch = now
        poll.last_status = status
        self._observer.agentapi_ok()
        self._observer.observe(StatusSeen(status, self._clock.now()))


class EventsWatcher(PollWatcher):
    """Follows `/events`, reconnecting with backoff and polling meanwhile (for good without
    `/events`); the replay after a reconnect is one `HistorySeen`: nothing said is lost."""

    async def run(self) -> None:
        failures = 0
        # The stream's last status: an outage's polling starts from it (no needless fetch).
        self._stream_status: str | None = None
        outage: PollState | None = None  # kept across the failed reconnects of one outage
        while True:
            error: Exception | None = None
            try:
                if await self._follow():
                    failures = 0
                    outage = None
                log.info("agentapi_events_ended")
            except Rejected as exc:
                if exc.status in (404, 405):
                    log.warning("agentapi_events_unavailable", fallback="poll", error=str(exc))
                    await super().run()
                    return
                error = exc
            except (RemoteError, TimeoutError) as exc:
                error = exc
            finally:
                self._mirror.mark_stale()  # the stream is gone: the mirror may fall behind
            if error is not None:
                failures += 1
                self._observer.agentapi_problem(error)
            if outage is None:
                # The history was current until the stream ended: fetch it again on a change.
                outage = PollState(self._stream_status, last_fetch=self._clock.now())
            await self._poll_until(
                self._clock.now() + self._backoff.next_wait(max(1, failures), error), outage
            )

    async def _poll_until(self, reconnect_at: float, poll: PollState) -> None:
        """Until the reconnect: poll every poll interval (at least once)."""
        while True:
            try:
                await self.poll_once(poll)
            except RemoteError as exc:
                log.debug("agentapi_poll_unavailable", error=str(exc))
            remaining = reconnect_at - self._clock.now()
            if remaining <= 0:
                return
            await self._clock.sleep(min(remaining, self._settings.poll_interval))
            if self._clock.now() >= reconnect_at:
                return

    async def _follow(self) -> bool:
        """Follow one connection; True when at least one event arrived."""
        self._mirror.begin_replay()
        replay: HistoryBuilder | None = HistoryBuilder()
        got_any = False
        events = self._agentapi.events(silence_timeout=self._settings.agentapi_timeout)
        async with aclosing(events):
            async for event in events:
                if not got_any:
                    got_any = True
                    self._observer.agentapi_ok()
                if isinstance(event, StatusChange) and replay is not None:
                    # The replay ends with the first status: the whole history is known.
                    self._mirror.end_replay()
                    self._observer.observe(replay.seen(self._clock.now()))
                    replay = None
                self._apply(event, replay)
        return got_any

    def _apply(self, event: object, replay: HistoryBuilder | None) -> None:
        now = self._clock.now()
        match event:
            case MessageUpdate():
                message = event.as_message()
                self._mirror.update(message)
                if replay is not None:
                    replay.add(message.id, message.role, message.content)
                elif message.role == "user":
                    self._observer.observe(UserMessageSeen(message.id, message.content, now))
            case StatusChange(status=status):
                self._stream_status = status
                self._observer.observe(StatusSeen(status, now))
            case AgentErrorEvent(message=text, level=level):
                log.warning("agent_error", level=level, error=text[:500])
            case MalformedEvent(name=name, error=error):
                log.warning("agentapi_event_malformed", name=name, error=error)
            case UnknownEvent(name=name, size=size):
                log.debug("agentapi_event_unknown", name=name, size=size)
