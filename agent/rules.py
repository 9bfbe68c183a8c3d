"""The reporting rules: which app status the task should show, as a pure function.

No I/O, no clock: every observation carries its own time, and `next_deadline` tells the caller
when to come back with a `Tick` (the working debounce). The daemon feeds observations in and
hands `RulesState.wanted` to the reporter, which delivers the latest one.

The rules (numbers as in the issue):
1. The first status observation is reported: `running` -> working, `stable` -> idle.
2. A new user message (a user id higher than any seen) -> working at once, with the message's
   first line (shortened) as the status message. User messages seen before the first status
   observation are history: they set the baseline. A later whole history (`HistorySeen`: a
   `/messages` answer, or an `/events` replay after a reconnect) keeps that baseline, so a prompt
   sent while the stream was down is reported with its text; only a history that proves AgentAPI
   restarted (ids went backwards, or the first user message is not the one known) starts a new
   baseline, and then its user messages are new (they were sent to the restarted server).
3. `running` without a new user message (a person typing, a spinner) -> working only once it has
   lasted `debounce` seconds; a shorter blip reports nothing. Only a *change* to `running`
   starts that clock: a poller reads `running` again every interval, a stream says it once, and
   both must give the same result (an explicit complete is not undone by a repeated reading).
4. `stable` -> idle, except that an explicit complete or failed stays until the agent is
   observed working again (rule 2 or 3). Right after a new user message, a `stable` reading is
   not taken as the end of the turn until the agent was seen running or `debounce` passed: the
   agent has not started yet, and reporting idle then would flap working -> idle -> working.
5. An explicit report sets state, message and uri as given.
6. (Delivery) a report identical to the last delivered one is not sent: see agent.daemon.reporter.
7. A report from the agent's lifecycle hooks (agent.hooks.events) is an explicit report, except
   that its idle does not replace an explicit complete or failed (rule 4 holds for hooks too);
   and a `stable` reading does not replace an idle already shown, so a hook's words ("Turn
   finished", "Waiting for permission to use Bash") stay instead of flapping to "Waiting for input".
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Protocol

from agent.models import AgentStatus, AppState, AppStatus, first_line

WORKING_MESSAGE = "Working"
IDLE_MESSAGE = "Waiting for input"


@dataclass(frozen=True)
class StatusSeen:
    """AgentAPI's status was observed."""

    status: AgentStatus
    at: float


@dataclass(frozen=True)
class UserMessageSeen:
    """A user message with this id and content was observed."""

    id: int
    content: str
    at: float


class MessageLike(Protocol):
    """What the rules read of a message (AgentAPI's `Message` has these)."""

    @property
    def id(self) -> int: ...

    @property
    def role(self) -> str: ...

    @property
    def content(self) -> str: ...


@dataclass(frozen=True)
class HistorySeen:
    """The whole conversation as AgentAPI holds it now (`/messages`, or an `/events` replay).

    Only what the rules need of it: the highest id, the first user message (its id and a digest
    of its text: user messages are never rewritten, so a continuation keeps it) and the newest
    user message. Build it with `history_of` or `HistoryBuilder`.
    """

    last_id: int | None
    first_user: tuple[int, str] | None
    newest_user: tuple[int, str] | None
    at: float


class HistoryBuilder:
    """Accumulates a history message by message (an `/events` replay arrives one at a time)."""

    def __init__(self) -> None:
        self._last_id: int | None = None
        self._first_user: tuple[int, str] | None = None
        self._newest_user: tuple[int, str] | None = None

    def add(self, message_id: int, role: str, content: str) -> None:
        """Take one message of the history (any order, rewrites allowed)."""
        if self._last_id is None or message_id > self._last_id:
            self._last_id = message_id
        if role != "user":
            return
        if self._first_user is None or message_id <= self._first_user[0]:
            self._first_user = (message_id, digest(content))
        if self._newest_user is None or message_id >= self._newest_user[0]:
            self._newest_user = (message_id, content)

    def seen(self, at: float) -> HistorySeen:
        """The observation of the history accumulated so far."""
        return HistorySeen(self._last_id, self._first_user, self._newest_user, at)


def history_of(messages: Iterable[MessageLike], at: float) -> HistorySeen:
    """The observation of a whole `/messages` answer."""
    builder = HistoryBuilder()
    for message in messages:
        builder.add(message.id, message.role, message.content)
    return builder.seen(at)


def digest(text: str) -> str:
    """A short, stable fingerprint of a message text (text from outside may hold surrogates)."""
    data = text.encode("utf-8", errors="surrogatepass")
    return hashlib.blake2b(data, digest_size=12).hexdigest()


@dataclass(frozen=True)
class ExplicitReport:
    """Somebody (the agent's hook) reported a status explicitly."""

    status: AppStatus
    at: float
    # From the agent's lifecycle hooks (`hook claude-code`, `hook codex`): rule 7.
    from_hook: bool = False


@dataclass(frozen=True)
class Tick:
    """Time passed; lets a pending debounce come due."""

    at: float


Observation = StatusSeen | UserMessageSeen | HistorySeen | ExplicitReport | Tick


@dataclass(frozen=True)
class RulesState:
    """What the rules remember between observations."""

    agent_status: AgentStatus | None = None
    # Highest user message id known; None until one is seen.
    last_user_id: int | None = None
    # Highest message id of any role known from a history or a user message.
    last_id: int | None = None
    # The first user message of the conversation: (id, digest). A history without it, or with
    # a different one, is another conversation: AgentAPI restarted.
    first_user: tuple[int, str] | None = None
    # How many AgentAPI restarts the histories proved (the daemon logs each).
    restarts: int = 0
    # True until the first status observation: user ids seen until then are the baseline.
    replaying: bool = True
    # When the current `running` stretch began, if it has not yet been reported as working.
    running_since: float | None = None
    # When the newest user message was seen, until the agent is observed running after it.
    prompt_pending_since: float | None = None
    # An explicit complete or failed holds against idle (rule 4).
    sticky: bool = False
    # What the task should show now; None until something was observed.
    wanted: AppStatus | None = None


def step(state: RulesState, observation: Observation, debounce: float) -> RulesState:
    """Apply one observation; the result's `wanted` is what the task should show."""
    match observation:
        case ExplicitReport(status=status, from_hook=from_hook):
            if from_hook and status.state is AppState.IDLE and state.sticky:
                return state
            sticky = status.state in (AppState.COMPLETE, AppState.FAILED)
            return replace(state, wanted=status, sticky=sticky, running_since=None)
        case UserMessageSeen(id=user_id, content=content, at=at):
            return _user_message(state, user_id, content, at)
        case HistorySeen():
            return _history(state, observation)
        case StatusSeen(status=status, at=at):
            return _due(_status(state, status, at), at, debounce)
        case Tick(at=at):
            return _due(state, at, debounce)
    raise AssertionError(f"unknown observation {observation!r}")  # pragma: no cover


def next_deadline(state: RulesState, debounce: float) -> float | None:
    """When a Tick could change `wanted` (a debounce or a pending prompt comes due), if ever."""
    times = [
        t + debounce for t in (state.running_since, state.prompt_pending_since) if t is not None
    ]
    return min(times) if times else None


def restarted(state: RulesState, history: HistorySeen) -> bool:
    """True when `history` cannot be a continuation of what the rules have seen."""
    if state.last_id is None:
        return False
    if history.last_id is None or history.last_id < state.last_id:
        return True  # ids went backwards (a fresh AgentAPI counts from 0 again)
    return state.first_user is not None and history.first_user != state.first_user


def _history(state: RulesState, history: HistorySeen) -> RulesState:
    fresh = restarted(state, history)
    if fresh:
        state = replace(
            state,
            last_user_id=None,
            last_id=None,
            first_user=None,
            restarts=state.restarts + 1,
        )
    last_id = history.last_id
    if state.last_id is not None and (last_id is None or last_id < state.last_id):
        last_id = state.last_id
    state = replace(state, last_id=last_id, first_user=state.first_user or history.first_user)
    if history.newest_user is None:
        return state
    user_id, content = history.newest_user
    if fresh:
        # A restarted AgentAPI's user messages were all sent after the restart: new work.
        return _new_prompt(state, user_id, content, history.at)
    return _user_message(state, user_id, content, history.at)


def _user_message(state: RulesState, user_id: int, content: str, at: float) -> RulesState:
    if state.last_id is None or user_id > state.last_id:
        state = replace(state, last_id=user_id)
    if state.first_user is None:
        state = replace(state, first_user=(user_id, digest(content)))
    known = state.last_user_id
    if state.replaying or (known is not None and user_id <= known):
        newest = user_id if known is None else max(known, user_id)
        return replace(state, last_user_id=newest)
    return _new_prompt(state, user_id, content, at)


def _new_prompt(state: RulesState, user_id: int, content: str, at: float) -> RulesState:
    return replace(
        state,
        last_user_id=user_id,
        wanted=AppStatus(AppState.WORKING, first_line(content, WORKING_MESSAGE)),
        sticky=False,
        running_since=None,
        prompt_pending_since=at,
    )


def _status(state: RulesState, status: AgentStatus, at: float) -> RulesState:
    first = state.agent_status is None
    unchanged = state.agent_status == status
    state = replace(state, agent_status=status, replaying=False)
    if first and state.wanted is None:
        wanted = AppState.WORKING if status == "running" else AppState.IDLE
        return replace(state, wanted=AppStatus(wanted, _default_message(wanted)))
    if unchanged:
        # A repeated reading (a poll, a replay) is no transition: rule 3's clock starts only on
        # a change, so polling and the event stream decide alike.
        return state
    if status == "running":
        state = replace(state, prompt_pending_since=None)
        if _showing_working(state) or state.running_since is not None:
            return state
        return replace(state, running_since=at)
    # stable
    state = replace(state, running_since=None)
    if state.prompt_pending_since is not None or state.sticky or _showing_idle(state):
        return state
    return replace(state, wanted=AppStatus(AppState.IDLE, IDLE_MESSAGE))


def _due(state: RulesState, at: float, debounce: float) -> RulesState:
    if state.running_since is not None and at >= state.running_since + debounce:
        state = replace(
            state,
            running_since=None,
            sticky=False,
            wanted=AppStatus(AppState.WORKING, WORKING_MESSAGE),
        )
    if state.prompt_pending_since is not None and at >= state.prompt_pending_since + debounce:
        state = replace(state, prompt_pending_since=None)
        if state.agent_status == "stable" and not state.sticky:
            state = replace(state, wanted=AppStatus(AppState.IDLE, IDLE_MESSAGE))
    return state


def _showing_idle(state: RulesState) -> bool:
    return state.wanted is not None and state.wanted.state is AppState.IDLE


def _showing_working(state: RulesState) -> bool:
    return state.wanted is not None and state.wanted.state is AppState.WORKING


def _default_message(state: AppState) -> str:
    return WORKING_MESSAGE if state is AppState.WORKING else IDLE_MESSAGE
