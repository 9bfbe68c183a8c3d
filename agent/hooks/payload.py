"""Reading an agent's hook payload: its fields, never failing on their shape, and the builders
each agent's mapping table is made of.

Why a module: every mapping reads JSON written by another program, whose fields change between
versions (camelCase in one, snake_case in the next, a string where an object was). A field of
the wrong type is treated as absent, so a mapping never raises on odd input; these readers are
that rule, once. And every agent says the same few things (a prompt is in this field, the tool
in that one, the turn's answer in a third): each mapping module is a table from its event names
to the builders below, and writes out only what is its agent's alone. Pure and standard-library
only (the hooks' fast path).
"""

from __future__ import annotations

from agent.hooks.events import (
    AskingUser,
    HookEvent,
    Nothing,
    PermissionWait,
    PromptSubmitted,
    SessionEnded,
    SessionStarted,
    ToolStarting,
    TurnEnded,
    TurnStopped,
)

# A plain constant that type checkers treat as true: `typing` is not imported on this path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    Payload = Mapping[str, object]
    # How one event of an agent becomes an event of agent.hooks.events: a row of its table.
    Build = Callable[[Payload], HookEvent]
    # An agent's `event_of(payload, name)`: `name` is "" when the payload names the event.
    EventOf = Callable[[Payload, str], HookEvent]


def text(payload: Payload, *keys: str) -> str:
    """The first of `keys` whose value is a string; "" when none is.

    A key may be a dotted path into nested objects (`"conversation.agentTextResponse"`).
    """
    for key in keys:
        value = value_at(payload, key)
        if isinstance(value, str):
            return value
    return ""


def value_at(payload: Payload, path: str) -> object:
    """The value at the dotted `path`, or None when any step is missing or not an object."""
    first, *rest = path.split(".")
    value = payload.get(first)
    for step in rest:
        if not isinstance(value, dict):
            return None
        value = value.get(step)
    return value


def flag(payload: Payload, *keys: str) -> bool | None:
    """The first of `keys` whose value is a boolean; None when none is."""
    for key in keys:
        value = value_at(payload, key)
        if isinstance(value, bool):
            return value
    return None


def folded(name: str) -> str:
    """An event name compared without case: `Stop`, `stop` and `STOP` are one event.

    Copilot and Kiro send the same event as `sessionStart` or `SessionStart` depending on how
    the hook is configured; a mapping's table names them as the agent's documentation does.
    """
    return name.strip().lower()


def mapping(events: Mapping[str, Build], *name_keys: str) -> EventOf:
    """An agent's `event_of`: the row of `events` for the event's name, nothing for any other.

    The name is the `name` argument (`--event`), else the first of `name_keys` in the payload
    (`hook_event_name` by default); compared without case.
    """
    rows = {folded(event): build for event, build in events.items()}
    keys = name_keys or ("hook_event_name",)

    def event_of(payload: Payload, name: str = "") -> HookEvent:
        return _row(rows, folded(name or text(payload, *keys)), payload)

    return event_of


def by(kinds: Mapping[str, Build], *keys: str) -> Build:
    """The row of `kinds` for the value of the first of `keys` (exactly; "" when it has none),
    nothing for any other value: one event of several kinds, such as a notification."""
    return lambda payload: _row(kinds, text(payload, *keys), payload)


def _row(rows: Mapping[str, Build], key: str, payload: Payload) -> HookEvent:
    build = rows.get(key)
    return Nothing() if build is None else build(payload)


def prompt(*keys: str) -> Build:
    """A prompt, in the first of `keys`."""
    return lambda payload: PromptSubmitted(text(payload, *keys))


def tool(*keys: str) -> Build:
    """A tool about to run, named in the first of `keys`."""
    return lambda payload: ToolStarting(text(payload, *keys))


def permission(*keys: str) -> Build:
    """A permission wait for the tool named in the first of `keys` (none: an unnamed tool)."""
    return lambda payload: PermissionWait(text(payload, *keys))


def asking(*keys: str) -> Build:
    """The agent asks the user, in the words of the first of `keys`."""
    return lambda payload: AskingUser(text(payload, *keys))


def stopped(*keys: str) -> Build:
    """The turn stopped, for the reason in the first of `keys`."""
    return lambda payload: TurnStopped(text(payload, *keys))


def turn_end(*answer: str, cause: str = "", normal: str = "") -> Build:
    """The turn ended, with the answer in the first of `answer` (none: no answer).

    With `cause`, the field saying why the turn ended: any value but "" or `normal` means the
    turn stopped, for that reason.
    """

    def build(payload: Payload) -> HookEvent:
        why = text(payload, cause) if cause else ""
        if why not in ("", normal):
            return TurnStopped(why)
        return TurnEnded(text(payload, *answer) or None)

    return build


def session_start(*, except_sources: tuple[str, ...] = ()) -> Build:
    """A session started, unless its `source` is one of `except_sources` (`compact`: a
    compaction inside a turn, no new session)."""
    return lambda payload: (
        Nothing() if text(payload, "source") in except_sources else SessionStarted()
    )


def always(event: HookEvent) -> Build:
    """`event`, whatever the payload says (events are immutable values)."""
    return lambda _payload: event


def session_end() -> Build:
    """The session ended."""
    return always(SessionEnded())


# Claude Code's hook contract (event names, fields, JSON on stdin), which other agents follow:
# Codex's lifecycle hooks and Qwen Code's. Each of their tables starts from these rows and says
# only where it differs (Claude Code itself: the tools that ask the user, notifications).
CLAUDE_STYLE: dict[str, Build] = {
    "UserPromptSubmit": prompt("prompt"),
    "PreToolUse": tool("tool_name"),
    "PermissionRequest": permission("tool_name"),
    "Stop": turn_end("last_assistant_message"),
    "StopFailure": stopped("error"),
    "SessionStart": session_start(except_sources=("compact",)),
    "SessionEnd": session_end(),
}
