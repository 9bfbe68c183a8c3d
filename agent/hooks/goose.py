"""Goose's hooks (Open Plugins `hooks/hooks.json`), as events of agent.hooks.events (the rules).

Goose runs each hook command with JSON on stdin; the event's name is in `event`, not
`hook_event_name`:

- `UserPromptSubmit`: a prompt (`message`).
- `PreToolUse`: a tool (`developer__shell`...).
- `Stop`: the turn ended, with `last_assistant_message` when the turn produced text.
- `SessionStart`: a session started. `SessionEnd`: it ended.
- anything else (`PreToolUseResult`, `PostToolUse`, file and shell events): nothing.

Goose has no permission event.
"""

from __future__ import annotations

from agent.hooks.events import (
    HookEvent,
    Nothing,
    PromptSubmitted,
    SessionEnded,
    SessionStarted,
    ToolStarting,
    TurnEnded,
)
from agent.hooks.payload import folded, text

# A plain constant that type checkers treat as true: `typing` is not imported on this path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping


def event_of(payload: Mapping[str, object], name: str = "") -> HookEvent:
    """What the Goose hook event `payload` says happened."""
    event = folded(name or text(payload, "event", "hook_event_name"))
    if event == "userpromptsubmit":
        return PromptSubmitted(text(payload, "message", "prompt"))
    if event == "pretooluse":
        return ToolStarting(text(payload, "tool_name"))
    if event == "stop":
        return TurnEnded(text(payload, "last_assistant_message") or None)
    if event == "sessionstart":
        return SessionStarted()
    if event == "sessionend":
        return SessionEnded()
    return Nothing()
