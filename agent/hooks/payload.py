"""Reading an agent's hook payload, and the builders every agent's mapping table is made of.

Payloads are JSON from another program whose fields change between versions: a field of the
wrong type is treated as absent, so a mapping never raises on odd input. Pure, standard library
only (the hooks' fast path).
"""

from __future__ import annotations

from functools import partial

from agent.hooks import events

TYPE_CHECKING = False  # true for type checkers: `typing` is not imported on the hooks' path
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    Payload = Mapping[str, object]
    # How one event of an agent becomes an event of agent.hooks.events: a row of its table.
    Build = Callable[[Payload], events.HookEvent]
    # An agent's `event_of(payload, name)`: `name` is "" when the payload names the event.
    EventOf = Callable[[Payload, str], events.HookEvent]


def text(payload: Payload, *keys: str) -> str:
    """The first of `keys` (dotted paths, see `value_at`) whose value is a string, else ""."""
    found = (value_at(payload, key) for key in keys)
    return next((value for value in found if isinstance(value, str)), "")


def flag(payload: Payload, *keys: str) -> bool | None:
    """The first of `keys` whose value is a boolean, else None."""
    found = (value_at(payload, key) for key in keys)
    return next((value for value in found if isinstance(value, bool)), None)


def value_at(payload: Payload, path: str) -> object:
    """The value at the dotted `path` (a number indexes a list), None where a step is missing."""
    value: object = payload
    for step in path.split("."):
        if isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        elif isinstance(value, dict):
            value = value.get(step)
        else:
            return None
    return value


def mapping(table: Mapping[str, Build], *name_keys: str) -> EventOf:
    """An agent's `event_of`: the row of `table` for the event's name, nothing for any other.

    The name is `--event`, else the first of `name_keys` (`hook_event_name`) in the payload;
    compared without case (Copilot and Kiro send `sessionStart` or `SessionStart` by config).
    """
    rows = {event.lower(): build for event, build in table.items()}
    keys = name_keys or ("hook_event_name",)

    def event_of(payload: Payload, name: str = "") -> events.HookEvent:
        return _row(rows, (name or text(payload, *keys)).strip().lower(), payload)

    return event_of


def by(kinds: Mapping[str, Build], *keys: str) -> Build:
    """The row of `kinds` for the exact value of the first of `keys` ("" when none), nothing
    for any other: one event of several kinds, such as a notification."""
    return lambda payload: _row(kinds, text(payload, *keys), payload)


def _row(rows: Mapping[str, Build], key: str, payload: Payload) -> events.HookEvent:
    build = rows.get(key)
    return events.Nothing() if build is None else build(payload)


def said(event: type[events.HookEvent], *keys: str) -> Build:
    """`event`, in the words of the first of `keys` (a prompt, a tool's name, a reason)."""
    return lambda payload: event(text(payload, *keys))


prompt = partial(said, events.PromptSubmitted)
tool = partial(said, events.ToolStarting)
permission = partial(said, events.PermissionWait)
asking = partial(said, events.AskingUser)
stopped = partial(said, events.TurnStopped)


def unless_asking(
    build: Build, tools: tuple[str, ...], *question: str, names: tuple[str, ...] = ("tool_name",)
) -> Build:
    """`build`, except for `tools` (named in the first of `names`), whose purpose is to ask the
    user: asking, in the words of the first of `question`. A lower-case name in `tools` is
    compared without case (Copilot's)."""

    def event(payload: Payload) -> events.HookEvent:
        called = text(payload, *names)
        if called in tools or called.lower() in tools:
            return events.AskingUser(text(payload, *question))
        return build(payload)

    return event


def turn_end(*answer: str, cause: str = "", normal: str = "") -> Build:
    """The turn ended, with the answer in the first of `answer`; or, when the field `cause`
    holds a value other than "" or `normal`, the turn stopped for that reason."""

    def build(payload: Payload) -> events.HookEvent:
        why = text(payload, cause) if cause else ""
        if why not in ("", normal):
            return events.TurnStopped(why)
        return events.TurnEnded(text(payload, *answer) or None)

    return build


def session_start(*, except_sources: tuple[str, ...] = ()) -> Build:
    """A session started, unless its `source` is one of `except_sources` (`compact` happens
    inside a turn)."""
    return lambda payload: (
        events.Nothing() if text(payload, "source") in except_sources else events.SessionStarted()
    )


def always(event: events.HookEvent) -> Build:
    """`event`, whatever the payload says (events are immutable values)."""
    return lambda _payload: event


def session_end() -> Build:
    return always(events.SessionEnded())


# Claude Code's contract, which Codex's lifecycle hooks and Qwen Code's follow: their tables
# start from these rows and say only where they differ.
CLAUDE_STYLE: dict[str, Build] = {
    "UserPromptSubmit": prompt("prompt"),
    "PreToolUse": tool("tool_name"),
    "PermissionRequest": permission("tool_name"),
    "Stop": turn_end("last_assistant_message"),
    "StopFailure": stopped("error"),
    "SessionStart": session_start(except_sources=("compact",)),
    "SessionEnd": session_end(),
}
