"""Cursor CLI's (`cursor-agent`) hooks as events (docs/hooks.md#cursor-cli lists them).

Not `afterAgentResponse`: it has the assistant's text, but comes after each assistant message,
not once at the turn's end, so an idle there could land in the middle of a turn.
"""

from __future__ import annotations

from agent.hooks.payload import mapping, prompt, session_end, session_start, tool, turn_end

TYPE_CHECKING = False  # true for type checkers: `typing` is not imported on the hooks' path
if TYPE_CHECKING:
    from agent.hooks.targets import Json, Target

EVENTS = {
    "sessionStart": session_start(),
    "beforeSubmitPrompt": prompt("prompt"),
    "preToolUse": tool("tool_name"),
    "stop": turn_end(cause="status", normal="completed"),
    "sessionEnd": session_end(),
}
event_of = mapping(EVENTS)


def install_target() -> Target:
    """hooks.json with the events mapped above: one unknown name voids the whole file."""
    from agent.hooks.targets import JsonHooks, Target, command  # noqa: PLC0415

    entry: Json = {"command": command("cursor")}
    entries = tuple((event, entry) for event in EVENTS)
    path = ".cursor/hooks.json"
    return Target(
        "cursor",
        (JsonHooks(path, path, entries, skeleton={"version": 1}),),
        notes=(
            "Only event names Cursor knows are written: one unknown name makes Cursor ignore "
            "the whole hooks.json. Cursor has no permission event, and its prompt and stop "
            "events fire in the interactive TUI only (not with -p). Project hooks need a "
            "trusted workspace.",
        ),
    )
