"""The reporting rules: which app status the task should show, as a pure function.

No I/O, no clock: every observation carries its own time, and `next_deadline` tells the caller
when to come back with a `Tick` (the working debounce). The daemon feeds observations in and
hands `RulesState.wanted` to the reporter, which delivers the latest one.

The rules (numbers as in the issue):
1. The first status observation is reported: `running` -> working, `stable` -> idle.
2. A new user message (a user id higher than any seen) -> working at once, with the message's
   first line (shortened) as the status message. User messages seen before the first status
   observation, or during a reconnect's replay (see `resync`), are history: they set the baseline.
3. `running` without a new user message (a person typing, a spinner) -> working only once it has
   lasted `debounce` seconds; a shorter blip reports nothing.
4. `stable` -> idle, except that an explicit complete or failed stays until the agent is
   observed working again (rule 2 or 3). Right after a new user message, a `stable` reading is
   not taken as the end of the turn until the agent was seen running or `debounce` passed: the
   agent has not started yet, and reporting idle then would flap working -> idle -> working.
5. An explicit report sets state, message and uri as given.
6. (Delivery) a report identical to the last delivered one is not sent: see agent.reporter.
7. A report from the agent's lifecycle hooks (agent.hookmap) is an explicit report, except that
   its idle does not replace an explicit complete or failed (rule 4 holds for hooks too); and a
   `stable` reading does not replace an idle already shown, so a hook's words ("Turn finished",
   "Waiting for permission to use Bash") stay instead of flapping to "Waiting for input".
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from agent.models import AgentStatus, AppState, AppStatus, shorten

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


Observation = StatusSeen | UserMessageSeen | ExplicitReport | Tick


@dataclass(frozen=True)
class RulesState:
    """What the rules remember between observations."""

    agent_status: AgentStatus | None = None
    # Highest user message id known; None until one is seen.
    last_user_id: int | None = None
    # True until the first status observation after start or a resync: user ids are baseline.
    replaying: bool = True
    # When the current `running` stretch began, if it has not yet been reported as working.
    running_since: float | None = None
    # When the newest user message was seen, until the agent is observed running after it.
    prompt_pending_since: float | None = None
    # An explicit complete or failed holds against idle (rule 4).
    sticky: bool = False
    # What the task should show now; None until something was observed.
    wanted: AppStatus | None = None


def resync(state: RulesState) -> RulesState:
    """Start of a reconnect replay: user ids seen until the next status are history again.

    AgentAPI may have restarted (ids start over), so the baseline is rebuilt from the replay.
    """
    return replace(state, replaying=True, last_user_id=None)


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


def first_line(text: str) -> str:
    """The first non-blank line of a prompt, stripped and shortened for a status message."""
    for line in text.splitlines():
        if line.strip():
            return shorten(line.strip())
    return WORKING_MESSAGE


def _user_message(state: RulesState, user_id: int, content: str, at: float) -> RulesState:
    known = state.last_user_id
    if state.replaying or (known is not None and user_id <= known):
        newest = user_id if known is None else max(known, user_id)
        return replace(state, last_user_id=newest)
    return replace(
        state,
        last_user_id=user_id,
        wanted=AppStatus(AppState.WORKING, first_line(content)),
        sticky=False,
        running_since=None,
        prompt_pending_since=at,
    )


def _status(state: RulesState, status: AgentStatus, at: float) -> RulesState:
    first = state.agent_status is None
    state = replace(state, agent_status=status, replaying=False)
    if first and state.wanted is None:
        wanted = AppState.WORKING if status == "running" else AppState.IDLE
        return replace(state, wanted=AppStatus(wanted, _default_message(wanted)))
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
