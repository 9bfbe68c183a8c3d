"""The reporting rules, a pure function: observations in, the status the task should show out.

No I/O, no clock: every observation carries its time, and `next_deadline` says when to come
back with a `Tick`. The rules (docs/rules.md says them word for word, tests/test_docs.py):

1. The first status observation is reported: `running` -> working, `stable` -> idle.
2. A new user message (an id higher than any seen) -> working at once, with the prompt's text
   (rule 9). User messages seen before the first status observation set the baseline. A later
   whole history (`HistorySeen`: a `/messages` answer, or an `/events` replay after a
   reconnect) keeps it, so a prompt sent while the stream was down is reported with its text;
   only a history proving AgentAPI restarted (ids went backwards, or the first user message is
   not the one known) starts a new baseline, and its user messages are new.
3. `running` without a new user message (a person typing, a spinner) -> working only once it
   has lasted `debounce` seconds. Only a *change* to `running` starts that clock, so a poller
   (which reads `running` every interval) and a stream (which says it once) agree.
4. `stable` -> idle whenever the task shows working, repeated readings included: a working
   never outlives the agent's idleness, whoever reported it. Two exceptions:
   - 4a. An explicit complete or failed stays until the agent is seen working again (rule 2
     or 3): `stable` is what "done" looks like.
   - 4b. Right after a new user message, or an explicit working while AgentAPI reads `stable`,
     the agent has not started yet: `stable` ends the turn only once the agent was seen
     running or `debounce` passed; then the `Tick` reports the idle, with no further reading
     needed, for a stream and a poller alike.
5. An explicit report sets state, message and uri as given (the uri as in rule 8).
6. (Delivery) a report identical to the last delivered one is not sent: see agent.daemon.reporter.
7. A report from the agent's lifecycle hooks (agent.hooks.events) is an explicit report, except
   that its idle does not replace an explicit complete or failed (rule 4a), and a `stable`
   reading does not replace an idle already shown, so a hook's words ("Turn finished") stay
   instead of flapping to "Waiting for input". A hook's idle while AgentAPI reads `running`
   (handed over late, or a permission granted before AgentAPI read `stable`) yields to working
   once that `running` lasts `debounce` seconds from it, as rule 3 says.
8. The last reported uri (a PR link) stays on derived statuses (rules 1 to 4) and on the hooks'
   reports until an explicit report carries another; an explicit report with a message but no
   uri clears it, one with neither keeps it (as Coder's own reporter does).
9. Derived texts: working by rule 1 or 3 says "Working"; by a prompt (rule 2), the prompt's
   first non-blank line, stripped and shortened to Coder's 160 UTF-8 bytes (ending in "…"
   when cut), or "Working" when there is none; idle by rule 1 or 4 says "Waiting for input".
10. Where Coder's own reporter (`coder exp mcp server`, its `TestExpMcpReporter` cases, which
    tests/test_modes.py replays in both modes) differs, on purpose:
    - 10a. Working from `running` waits out the debounce (rule 3), and the idle after a prompt
      or an explicit working waits as rule 4b says; Coder reports both at once, so a person
      typing or a spinner reports working, and a prompt flaps working -> idle -> working.
    - 10b. A derived status says what was derived (rule 9); Coder repeats the agent's last
      summary ("doing work" on an idle task is stale).
    - 10c. An explicit idle stands (a hook's until `running` outlasts the debounce, rule 7);
      Coder turns an agent's idle into working at once while it watches AgentAPI, since its
      reports come from the model's tool calls (ours: hooks or `report`).
    - 10d. An explicit complete or failed holds against `stable` (rule 4a); Coder replaces it
      with idle, so the user never sees that the task ended or failed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from agent.models import AgentStatus, AppState, AppStatus, first_line

if TYPE_CHECKING:
    from agent.snapshot import SnapshotMessage

WORKING_MESSAGE = "Working"
IDLE_MESSAGE = "Waiting for input"


@dataclass(frozen=True)
class StatusSeen:
    status: AgentStatus
    at: float


@dataclass(frozen=True)
class UserMessageSeen:
    id: int
    content: str
    at: float


@dataclass(frozen=True)
class HistorySeen:
    """The whole conversation as AgentAPI holds it now (`/messages`, or an `/events` replay).

    Only what the rules need: the highest id, the first user message (id and digest: user
    messages are never rewritten, so a continuation keeps it) and the newest user message.
    """

    last_id: int | None
    first_user: tuple[int, str] | None
    newest_user: tuple[int, str] | None
    at: float


class HistoryBuilder:
    """A HistorySeen built message by message (an `/events` replay arrives one at a time)."""

    def __init__(self) -> None:
        self._last_id: int | None = None
        self._first_user: tuple[int, str] | None = None
        self._newest_user: tuple[int, str] | None = None

    def add(self, message_id: int, role: str, content: str) -> None:
        """Take one message (any order, rewrites allowed)."""
        if self._last_id is None or message_id > self._last_id:
            self._last_id = message_id
        if role != "user":
            return
        if self._first_user is None or message_id <= self._first_user[0]:
            self._first_user = (message_id, digest(content))
        if self._newest_user is None or message_id >= self._newest_user[0]:
            self._newest_user = (message_id, content)

    def seen(self, at: float) -> HistorySeen:
        return HistorySeen(self._last_id, self._first_user, self._newest_user, at)


def history_of(messages: Iterable[SnapshotMessage], at: float) -> HistorySeen:
    builder = HistoryBuilder()
    for message in messages:
        builder.add(message.id, message.role, message.content)
    return builder.seen(at)


def digest(text: str) -> str:
    """A short, stable fingerprint of a text (text from outside may hold lone surrogates)."""
    data = text.encode("utf-8", errors="surrogatepass")
    return hashlib.blake2b(data, digest_size=12).hexdigest()


@dataclass(frozen=True)
class ExplicitReport:
    status: AppStatus
    at: float
    from_hook: bool = False


@dataclass(frozen=True)
class Tick:
    """Time passed: a pending debounce may come due."""

    at: float


Observation = StatusSeen | UserMessageSeen | HistorySeen | ExplicitReport | Tick


@dataclass(frozen=True)
class RulesState:
    """What the rules remember between observations; `wanted` is what the task should show."""

    agent_status: AgentStatus | None = None
    last_user_id: int | None = None
    last_id: int | None = None  # of any role, from a history or a user message
    first_user: tuple[int, str] | None = None  # (id, digest): a history with another restarted
    restarts: int = 0  # AgentAPI restarts the histories proved (the daemon logs each)
    replaying: bool = True  # until the first status: user ids seen are the baseline (rule 2)
    running_since: float | None = None  # a `running` stretch not yet reported (rule 3)
    unconfirmed_since: float | None = None  # a working the agent has not confirmed (rule 4b)
    sticky: bool = False  # an explicit complete or failed (rule 4a)
    uri: str = ""  # rule 8
    wanted: AppStatus | None = None


def step(state: RulesState, observation: Observation, debounce: float) -> RulesState:
    """Apply one observation."""
    match observation:
        case ExplicitReport(status=status, from_hook=from_hook, at=at):
            return _explicit(state, status, from_hook, at)
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
    """When a Tick could change `wanted` (a debounce comes due), if ever."""
    times = [t + debounce for t in (state.running_since, state.unconfirmed_since) if t is not None]
    return min(times) if times else None


def restarted(state: RulesState, history: HistorySeen) -> bool:
    """True when `history` cannot be a continuation of what the rules have seen."""
    if state.last_id is None:
        return False
    if history.last_id is None or history.last_id < state.last_id:
        return True  # ids went backwards (a fresh AgentAPI counts from 0 again)
    return state.first_user is not None and history.first_user != state.first_user


def _explicit(state: RulesState, status: AppStatus, from_hook: bool, at: float) -> RulesState:
    if from_hook and status.state is AppState.IDLE and state.sticky:
        return state
    uri = status.uri
    if not uri and (from_hook or not status.message):
        uri = state.uri  # rule 8: a hook knows no link; an empty report is no new one either
    if uri != status.uri:
        status = AppStatus(status.state, status.message, uri)
    unconfirmed = (
        at if status.state is AppState.WORKING and state.agent_status == "stable" else None
    )
    # Rule 7: a hook's idle while AgentAPI reads `running` (handed over late, or a permission
    # granted before AgentAPI read `stable`) restarts rule 3's clock: no change would.
    yields = from_hook and status.state is AppState.IDLE and state.agent_status == "running"
    return replace(
        state,
        wanted=status,
        uri=uri,
        sticky=status.state in (AppState.COMPLETE, AppState.FAILED),
        running_since=at if yields else None,
        unconfirmed_since=unconfirmed,
    )


def _history(state: RulesState, history: HistorySeen) -> RulesState:
    fresh = restarted(state, history)
    if fresh:
        state = replace(
            state, last_user_id=None, last_id=None, first_user=None, restarts=state.restarts + 1
        )
    last_id = max((i for i in (history.last_id, state.last_id) if i is not None), default=None)
    state = replace(state, last_id=last_id, first_user=state.first_user or history.first_user)
    if history.newest_user is None:
        return state
    user_id, content = history.newest_user
    if fresh:
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
        wanted=AppStatus(AppState.WORKING, first_line(content, WORKING_MESSAGE), state.uri),
        sticky=False,
        running_since=None,
        unconfirmed_since=at,
    )


def _status(state: RulesState, status: AgentStatus, at: float) -> RulesState:
    first = state.agent_status is None
    changed = state.agent_status != status
    state = replace(state, agent_status=status, replaying=False)
    if first and state.wanted is None:
        wanted = AppState.WORKING if status == "running" else AppState.IDLE
        return replace(state, wanted=_derived(state, wanted))
    if status == "running":
        if not changed:
            return state  # a repeated reading is no change (rule 3)
        state = replace(state, unconfirmed_since=None)
        if _showing_working(state) or state.running_since is not None:
            return state
        return replace(state, running_since=at)
    state = replace(state, running_since=None)
    if _showing_working(state) and state.unconfirmed_since is None:
        return replace(state, wanted=_derived(state, AppState.IDLE))
    return state


def _due(state: RulesState, at: float, debounce: float) -> RulesState:
    if state.running_since is not None and at >= state.running_since + debounce:
        state = replace(
            state, running_since=None, sticky=False, wanted=_derived(state, AppState.WORKING)
        )
    if state.unconfirmed_since is not None and at >= state.unconfirmed_since + debounce:
        state = replace(state, unconfirmed_since=None)
        if state.agent_status == "stable" and _showing_working(state):
            state = replace(state, wanted=_derived(state, AppState.IDLE))
    return state


def _showing_working(state: RulesState) -> bool:
    return state.wanted is not None and state.wanted.state is AppState.WORKING


def _derived(state: RulesState, app_state: AppState) -> AppStatus:
    message = WORKING_MESSAGE if app_state is AppState.WORKING else IDLE_MESSAGE
    return AppStatus(app_state, message, state.uri)
