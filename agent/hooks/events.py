"""What an agent's hook event says happened, in one vocabulary, and the status each one reports.

Why: ten agents name the same moments ten ways (`UserPromptSubmit`, `BeforeAgent`,
`beforeSubmitPrompt`, `userPromptSubmitted`, `chat.message`...). Each agent's mapping module
(`agent.hooks.<agent>`) translates its payloads into the events below; the one function here,
`status_of`, turns an event into the status Coder shows. So the rules are written once, for every
agent, and a new agent only has to say which of its events is which. Pure: no I/O, and only the
standard library on the way (the hooks' fast path, see agent.hooks).

The rules (docs/hooks.md shows them with each agent's events):

- `PromptSubmitted(text)`: working, the prompt's first non-blank line, shortened to Coder's 160
  bytes ("Working" for an empty prompt).
- `ToolStarting(tool)`: working, "Using TOOL".
- `AskingUser(text)`: idle, the question's first line, else "Waiting for input". A tool whose
  purpose is to ask the user (Claude Code's AskUserQuestion and ExitPlanMode, Copilot's ask_user)
  is this, not `ToolStarting`, and so is a notification that the agent waits for the user.
- `PermissionWait(tool)`: idle, "Waiting for permission to use TOOL" ("Waiting for permission"
  when the payload does not name the tool). One wait is one status: where an agent announces the
  same wait twice (Claude Code's PermissionRequest, then its Notification `permission_prompt`
  six seconds later), the mapping reports only one of them, or both in identical words (the
  daemon sends a status only when it changes; Coder itself stores every report as a row).
- `TurnEnded(answer)`: idle, the first line of the agent's final answer when the payload carries
  it, else "Turn finished". Every Stop is a turn end, whatever `stop_hook_active` says: the flag
  only says an earlier stop hook made the turn go on (and Qwen Code sends it on every Stop); if
  the turn goes on again, its next event reports working.
- `TurnStopped(why)`: idle, "Turn stopped: WHY": the turn ended on an error, an interrupt or an
  abort.
- `SessionStarted()`: idle, "Waiting for input" (a new, resumed, cleared or forked session; not a
  compaction, which happens inside a turn).
- `SessionEnded()`: idle, "Session ended".
- `Nothing()`: no report. An error the agent goes on after (a failed tool, a recoverable error),
  compaction, subagents, after-tool events, streamed chunks, notifications about other
  (background) sessions and every event a mapping does not know.

No event reports complete or failed: only the agent itself (`coder-task-agent report`) knows the
task is done. And a hook's idle never replaces an explicit complete or failed: every report made
from a hook is marked as such, and the reporting rules (agent.rules, rule 7; agent.lastreport
when no daemon runs) hold the complete or failed against it.
"""

from __future__ import annotations

from agent.models import AppState, AppStatus, first_line, shorten

WORKING = "Working"
WAITING_FOR_INPUT = "Waiting for input"
TURN_FINISHED = "Turn finished"
SESSION_ENDED = "Session ended"


class HookEvent:
    """One moment of an agent's turn; immutable, equal when of one kind with equal fields.

    Written out rather than as dataclasses: the hooks' fast path does not import `dataclasses`.
    """

    __slots__: tuple[str, ...] = ()

    def __init__(self, *values: str | None) -> None:
        for name, value in zip(self.__slots__, values, strict=True):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash((self.__class__, self._fields()))

    def __repr__(self) -> str:
        args = ", ".join(repr(value) for value in self._fields())
        return f"{type(self).__name__}({args})"


class PromptSubmitted(HookEvent):
    """The user submitted a prompt: a turn starts."""

    __slots__ = ("text",)
    text: str

    def __init__(self, text: str) -> None:
        super().__init__(text)


class ToolStarting(HookEvent):
    """A tool is about to run (its name as the agent calls it; "" when the payload has none)."""

    __slots__ = ("tool",)
    tool: str

    def __init__(self, tool: str) -> None:
        super().__init__(tool)


class AskingUser(HookEvent):
    """The agent waits for the user's answer (a question, a plan to approve, a form)."""

    __slots__ = ("text",)
    text: str

    def __init__(self, text: str = "") -> None:
        super().__init__(text)


class PermissionWait(HookEvent):
    """The agent shows a permission prompt for `tool` ("" when the payload does not say)."""

    __slots__ = ("tool",)
    tool: str

    def __init__(self, tool: str = "") -> None:
        super().__init__(tool)


class TurnEnded(HookEvent):
    """The turn ended normally; `answer` is the agent's final message when the payload has it."""

    __slots__ = ("answer",)
    answer: str | None

    def __init__(self, answer: str | None = None) -> None:
        super().__init__(answer)


class TurnStopped(HookEvent):
    """The turn ended on an error, an interrupt or an abort; `why` in the agent's words."""

    __slots__ = ("why",)
    why: str

    def __init__(self, why: str) -> None:
        super().__init__(why)


class SessionStarted(HookEvent):
    """A session started (new, resumed, cleared or forked)."""

    __slots__ = ()


class SessionEnded(HookEvent):
    """The session ended."""

    __slots__ = ()


class Nothing(HookEvent):
    """An event that reports nothing."""

    __slots__ = ()


def status_of(event: HookEvent) -> AppStatus | None:
    """The status `event` reports (the rules in the module docstring), or None for none."""
    if isinstance(event, PromptSubmitted):
        return AppStatus(AppState.WORKING, first_line(event.text, WORKING))
    if isinstance(event, ToolStarting):
        return AppStatus(AppState.WORKING, shorten(f"Using {_one_line(event.tool) or 'a tool'}"))
    if isinstance(event, AskingUser):
        return AppStatus(AppState.IDLE, first_line(event.text, WAITING_FOR_INPUT))
    if isinstance(event, PermissionWait):
        tool = _one_line(event.tool)
        words = f"Waiting for permission to use {tool}" if tool else "Waiting for permission"
        return AppStatus(AppState.IDLE, shorten(words))
    if isinstance(event, TurnEnded):
        return AppStatus(AppState.IDLE, first_line(event.answer or "", TURN_FINISHED))
    if isinstance(event, TurnStopped):
        why = _one_line(event.why)
        return AppStatus(AppState.IDLE, shorten(f"Turn stopped: {why}" if why else "Turn stopped"))
    if isinstance(event, SessionStarted):
        return AppStatus(AppState.IDLE, WAITING_FOR_INPUT)
    if isinstance(event, SessionEnded):
        return AppStatus(AppState.IDLE, SESSION_ENDED)
    return None


def _one_line(text: str) -> str:
    # A tool name or an error text from outside could span lines; a status is one line.
    return first_line(text, "")
