"""Gemini CLI's command hooks, as events of agent.hooks.events (which holds the rules).

Gemini CLI runs a command hook with the event as JSON on stdin (`hook_event_name`):

- `BeforeAgent`: a prompt (`prompt`), once per prompt.
- `BeforeTool`: a tool (`run_shell_command`, `replace`, `mcp_<server>_<tool>`...).
- `Notification` `ToolPermission`: a permission wait for `details.toolName`, else
  `details.title` (the confirmation's own name for the tool).
- `AfterAgent`: the turn ended, with `prompt_response` (the final answer). It does not fire on
  an error or a cancel: Gemini has no event for those.
- `SessionStart`: a session started. `SessionEnd`: it ended.
- anything else (`BeforeModel`, `AfterModel` on every streamed chunk, `AfterTool`,
  `PreCompress`...): nothing.

Gemini reads the hook's stdout as its decision, and its stderr instead when stdout is empty
(shown to the user): the hook prints `{}` (agent.hooks, the registry's `stdout`).
"""

from __future__ import annotations

from agent.hooks.events import (
    HookEvent,
    Nothing,
    PermissionWait,
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
    """What the Gemini CLI hook event `payload` says happened."""
    event = folded(name or text(payload, "hook_event_name"))
    if event == "beforeagent":
        return PromptSubmitted(text(payload, "prompt"))
    if event == "beforetool":
        return ToolStarting(text(payload, "tool_name"))
    if event == "notification":
        if text(payload, "notification_type") != "ToolPermission":
            return Nothing()
        return PermissionWait(text(payload, "details.toolName", "details.title"))
    if event == "afteragent":
        return TurnEnded(text(payload, "prompt_response") or None)
    if event == "sessionstart":
        return Nothing() if text(payload, "source") == "compact" else SessionStarted()
    if event == "sessionend":
        return SessionEnded()
    return Nothing()
