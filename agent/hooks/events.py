"""What an agent's hook event says happened, in one vocabulary, and the status each one reports.

Ten agents name the same moments ten ways; each mapping module (agent.hooks.<agent>) translates
its payloads into these events, and `status_of` turns an event into a status, once for every
agent: the rules are docs/hooks.md's "The rules". No event reports complete or failed, and a
hook's idle never replaces an explicit one (rule 7, docs/rules.md). Pure, standard library only.
"""

from __future__ import annotations

from agent.models import AppState, AppStatus, Frozen, first_line, shorten


class HookEvent(Frozen):
    """One moment of an agent's turn, with the agent's `words` for it where it has them."""

    __slots__ = ("words",)
    __match_args__ = ("words",)
    words: str | None

    def __init__(self, words: str | None = "") -> None:
        self._set(words=words)


class PromptSubmitted(HookEvent):
    """The user submitted a prompt (its text): a turn starts."""


class ToolStarting(HookEvent):
    """A tool is about to run (its name as the agent calls it)."""


class AskingUser(HookEvent):
    """The agent waits for the user's answer (its question, a plan to approve, a form)."""


class PermissionWait(HookEvent):
    """The agent shows a permission prompt (for the tool it names)."""


class TurnEnded(HookEvent):
    """The turn ended normally (the agent's final answer, when the payload has it)."""


class TurnStopped(HookEvent):
    """The turn ended on an error, an interrupt or an abort (why, in the agent's words)."""


class SessionStarted(HookEvent):
    """A session started (new, resumed, cleared or forked)."""


class SessionEnded(HookEvent):
    """The session ended."""


class Nothing(HookEvent):
    """An event that reports nothing."""


WAITING_FOR_INPUT = "Waiting for input"
# Per event: its state, its message with the first line of its words in it, and its message
# when it has no words.
RULES: dict[type[HookEvent], tuple[AppState, str, str]] = {
    PromptSubmitted: (AppState.WORKING, "{}", "Working"),
    ToolStarting: (AppState.WORKING, "Using {}", "Using a tool"),
    AskingUser: (AppState.IDLE, "{}", WAITING_FOR_INPUT),
    PermissionWait: (AppState.IDLE, "Waiting for permission to use {}", "Waiting for permission"),
    TurnEnded: (AppState.IDLE, "{}", "Turn finished"),
    TurnStopped: (AppState.IDLE, "Turn stopped: {}", "Turn stopped"),
    SessionStarted: (AppState.IDLE, WAITING_FOR_INPUT, WAITING_FOR_INPUT),
    SessionEnded: (AppState.IDLE, "Session ended", "Session ended"),
}


def status_of(event: HookEvent) -> AppStatus | None:
    """The status `event` reports, or None for none."""
    rule = RULES.get(type(event))
    if rule is None:
        return None
    state, words, without = rule
    line = first_line(event.words or "", "")  # from outside: may span lines, or be long
    return AppStatus(state, shorten(words.format(line)) if line else without)
