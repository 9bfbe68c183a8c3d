"""The reporting rules: which app status the task should show, as a pure function.

No I/O, no clock: every observation carries its own time, and `next_deadline` tells the caller
when to come back with a `Tick` (the working debounce). The daemon feeds observations in and
hands `RulesState.wanted` to the reporter, which delivers the latest one. This docstring is the
one place the rules are written down (docs/rules.md repeats it, same numbers, same words).

The rules:
1. The first status observation is reported: `running` -> working, `stable` -> idle.
2. A new user message (a user id higher than any seen) -> working at once, with the prompt's
   text (rule 9). User messages seen before the first status observation are history: they set
   the baseline. A later whole history (`HistorySeen`: a `/messages` answer, or an `/events`
   replay after a reconnect) keeps that baseline, so a prompt sent while the stream was down is
   reported with its text; only a history that proves AgentAPI restarted (ids went backwards, or
   the first user message is not the one known) starts a new baseline, and then its user
   messages are new (they were sent to the restarted server).
3. `running` without a new user message (a person typing, a spinner) -> working only once it has
   lasted `debounce` seconds; a shorter blip reports nothing. Only a *change* to `running`
   starts that clock: a poller reads `running` again every interval, a stream says it once, and
   both must give the same result (an explicit complete is not undone by a repeated reading).
4. `stable` -> idle whenever the task shows working, a repeated reading included (a poll reads
   it again, a replay after a reconnect says it again): a working never outlives the agent's
   idleness, whoever reported it. Two exceptions:
   - 4a. An explicit complete or failed stays until the agent is observed working again (rule
     2 or 3): `stable` is what "done" looks like, it does not contradict them.
   - 4b. Right after a new user message, or an explicit working reported while AgentAPI reads
     `stable`, the agent has not started yet: `stable` is not taken as the end of the turn
     until the agent was seen running or `debounce` passed. If it still reads `stable` then,
     -> idle, with no further reading needed (the `Tick` decides: a stream says `stable` once,
     a poller reads it every interval, and both report that idle at the same moment).
5. An explicit report sets state, message and uri as given (the uri as in rule 8).
6. (Delivery) a report identical to the last delivered one is not sent: see agent.daemon.reporter.
7. A report from the agent's lifecycle hooks (agent.hooks.events) is an explicit report, except
   that its idle does not replace an explicit complete or failed (rule 4a holds for hooks too);
   and a `stable` reading does not replace an idle already shown, so a hook's words ("Turn
   finished", "Waiting for permission to use Bash") stay instead of flapping to "Waiting for
   input".
8. The last reported uri (a PR link) stays on every status the rules derive (rules 1 to 4) and
   on the hooks' reports (they carry none), until an explicit report carries another. An
   explicit report with a message but no uri clears it; one with neither message nor uri keeps
   it. That is what Coder's own reporter does.
9. The texts of derived statuses: working by rule 1 or 3 says "Working"; working by a prompt
   (rule 2) says the prompt's first non-blank line, stripped and shortened to Coder's 160 UTF-8
   bytes (ending in "…" when cut), or "Working" when the prompt has no such line; idle by rule 1
   or 4 says "Waiting for input".
10. Where Coder's own reporter (`coder exp mcp server`, its `TestExpMcpReporter` cases) differs,
    on purpose (tests/test_modes.py replays those cases in both modes, with these differences):
    - 10a. Working from `running` waits out the debounce (rule 3), and the idle right after a
      prompt or an explicit working waits for the agent to start or the debounce (rule 4b);
      Coder reports both at once. Without the debounce a person typing in the terminal, or a
      spinner's blip, reports working; without 4b a prompt flaps working -> idle -> working.
    - 10b. A derived status says what was derived (rule 9); Coder repeats the agent's last
      summary ("doing work" on an idle task is stale). The uri is kept as Coder keeps it (rule
      8).
    - 10c. An explicit idle stands; Coder turns an agent's idle into working while it watches
      AgentAPI, because its reports come from the model's own tool calls. Ours come from the
      agent's lifecycle hooks or a deliberate `report`.
    - 10d. An explicit complete or failed holds against `stable` (rule 4a); Coder replaces it
      with idle at the next `stable`, so the user never sees that the task ended or failed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from agent.models import AgentStatus, AppState, AppStatus, first_line

if TYPE_CHECKING:
    # What the rules read of a message is a part of what the snapshot builder reads: one shape.
    from agent.snapshot import SnapshotMessage

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


def history_of(messages: Iterable[SnapshotMessage], at: float) -> HistorySeen:
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
    # When a working the agent has not yet confirmed by running began (a new user message, or
    # an explicit working while AgentAPI read stable): rule 4b.
    unconfirmed_since: float | None = None
    # An explicit complete or failed holds against idle (rule 4a).
    sticky: bool = False
    # The last reported uri, kept on derived statuses and hook reports (rule 8).
    uri: str = ""
    # What the task should show now; None until something was observed.
    wanted: AppStatus | None = None


def step(state: RulesState, observation: Observation, debounce: float) -> RulesState:
    """Apply one observation; the result's `wanted` is what the task should show."""
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
    """When a Tick could change `wanted` (a debounce or a pending prompt comes due), if ever."""
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
    return replace(
        state,
        wanted=status,
        uri=uri,
        sticky=status.state in (AppState.COMPLETE, AppState.FAILED),
        running_since=None,
        unconfirmed_since=unconfirmed,
    )


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
            # A repeated reading (a poll, a replay) is no transition: rule 3's clock starts
            # only on a change, so polling and the event stream decide alike.
            return state
        state = replace(state, unconfirmed_since=None)
        if _showing_working(state) or state.running_since is not None:
            return state
        return replace(state, running_since=at)
    # stable, changed or not (rule 4): a repeated reading ends a working just as a change does.
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
    """A status the rules derive from AgentAPI: rule 9's text, rule 8's kept uri."""
    message = WORKING_MESSAGE if app_state is AppState.WORKING else IDLE_MESSAGE
    return AppStatus(app_state, message, state.uri)
