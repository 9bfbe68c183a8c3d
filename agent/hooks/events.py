"""What an agent's hook event says happened, in one vocabulary, and the status each one reports.

Ten agents name the same moments ten ways; each mapping module (agent.hooks.<agent>) translates
its payloads into these events, and `status_of` turns an event into a status, once for every
agent: the rules are docs/hooks.md's "The rules". No event reports complete or failed, and a
hook's idle never replaces an explicit one (rule 7, docs/rules.md). Pure, standard library only.
"""

from __future__ import annotations

from agent.models import AppState, AppStatus, first_line, shorten

WAITING_FOR_INPUT = "Waiting for input"


class HookEvent:
    """One moment of an agent's turn; an immutable value (not a dataclass: the hooks' fast path
    does not import `dataclasses`)."""

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
    """The status `event` reports, or None for none."""
    if isinstance(event, PromptSubmitted):
        return AppStatus(AppState.WORKING, first_line(event.text, "Working"))
    if isinstance(event, ToolStarting):
        tool = first_line(event.tool, "") or "a tool"  # from outside: may span lines
        return AppStatus(AppState.WORKING, shorten(f"Using {tool}"))
    if isinstance(event, AskingUser):
        return AppStatus(AppState.IDLE, first_line(event.text, WAITING_FOR_INPUT))
    if isinstance(event, PermissionWait):
        tool = first_line(event.tool, "")
        words = f"Waiting for permission to use {tool}" if tool else "Waiting for permission"
        return AppStatus(AppState.IDLE, shorten(words))
    if isinstance(event, TurnEnded):
        return AppStatus(AppState.IDLE, first_line(event.answer or "", "Turn finished"))
    if isinstance(event, TurnStopped):
        why = first_line(event.why, "")
        return AppStatus(AppState.IDLE, shorten(f"Turn stopped: {why}" if why else "Turn stopped"))
    if isinstance(event, SessionStarted):
        return AppStatus(AppState.IDLE, WAITING_FOR_INPUT)
    if isinstance(event, SessionEnded):
        return AppStatus(AppState.IDLE, "Session ended")
    return None
