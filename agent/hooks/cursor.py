"""Cursor CLI's (`cursor-agent`) hooks, as events of agent.hooks.events (which holds the rules).

Cursor runs each `hooks.json` command with the event as JSON on stdin (`hook_event_name`,
camelCase):

- `beforeSubmitPrompt`: a prompt (`prompt`). In print mode (`-p`) it does not fire.
- `preToolUse`: a tool (`Shell`, `Read`, `Write`, `MCP:<name>`...).
- `stop`: by `status`, `completed`: the turn ended ("Turn finished": the payload does not carry
  the answer); `aborted` or `error`: the turn stopped, for that reason.
- `sessionStart`: a session started. `sessionEnd`: it ended.
- anything else (`afterAgentResponse`, `beforeShellExecution`, `postToolUse`, subagents...):
  nothing. `afterAgentResponse` has the assistant's text, but Cursor calls it after an assistant
  message, not once at the turn's end: reporting idle there could come in the middle of a turn.

Cursor has no event for a permission prompt.
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
    TurnStopped,
)
from agent.hooks.payload import folded, text

# A plain constant that type checkers treat as true: `typing` is not imported on this path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping


def event_of(payload: Mapping[str, object], name: str = "") -> HookEvent:
    """What the Cursor hook event `payload` says happened."""
    event = folded(name or text(payload, "hook_event_name"))
    if event == "beforesubmitprompt":
        return PromptSubmitted(text(payload, "prompt"))
    if event == "pretooluse":
        return ToolStarting(text(payload, "tool_name"))
    if event == "stop":
        status = text(payload, "status")
        return TurnEnded() if status in ("completed", "") else TurnStopped(status)
    if event == "sessionstart":
        return SessionStarted()
    if event == "sessionend":
        return SessionEnded()
    return Nothing()
