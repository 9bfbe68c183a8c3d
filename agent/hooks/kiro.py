"""Kiro CLI's hooks, as events of agent.hooks.events (which holds the rules).

Kiro runs each hook command with the event as JSON on stdin (`hook_event_name`): camelCase in
2.x agent configs (`userPromptSubmit`), PascalCase in 3.x `.kiro/hooks/*.json`
(`UserPromptSubmit`); names are compared without case.

- `userPromptSubmit`: a prompt (`prompt`).
- `preToolUse`: a tool (`tool_name`).
- `stop`: the turn ended ("Turn finished": no final message in the payload).
- `agentSpawn` (2.x) / `SessionStart` (3.x): a session started.
- anything else (`postToolUse`, task and file events): nothing.

Kiro has no permission event and no session-end event.
"""

from __future__ import annotations

from agent.hooks.events import (
    HookEvent,
    Nothing,
    PromptSubmitted,
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
    """What the Kiro hook event `payload` says happened."""
    event = folded(name or text(payload, "hook_event_name"))
    if event == "userpromptsubmit":
        return PromptSubmitted(text(payload, "prompt"))
    if event == "pretooluse":
        return ToolStarting(text(payload, "tool_name"))
    if event == "stop":
        return TurnEnded()
    if event in ("agentspawn", "sessionstart"):
        return SessionStarted()
    return Nothing()
