"""Auggie's (Augment CLI) command hooks, as events of agent.hooks.events (which holds the rules).

Auggie runs each hook with the event as JSON on stdin (`hook_event_name`):

- the prompt-submit hook (0.27.0 and later; its name is not documented: `PromptSubmit` or
  `UserPromptSubmit`): a prompt (`prompt`, else `conversation.userPrompt`).
- `PreToolUse`: a tool (`launch-process`, `str-replace-editor`, `view`, `mcp:...`).
- `Stop`: by `agent_stop_cause`, `end_turn` (or none): the turn ended, with
  `conversation.agentTextResponse` (present when the hook's `metadata.includeConversationData`
  is set); any other cause (`interrupted`...): the turn stopped, for that cause.
- `SessionStart`: a session started. `SessionEnd`: it ended.
- anything else (`PostToolUse`...): nothing.

Auggie shows a tool hook's stdout and stderr to the user even at exit 0: the hook logs errors
only there (agent.hooks, the registry's `stderr_shown`).
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
    """What the Auggie hook event `payload` says happened."""
    event = folded(name or text(payload, "hook_event_name"))
    if event in ("promptsubmit", "userpromptsubmit"):
        return PromptSubmitted(text(payload, "prompt", "conversation.userPrompt"))
    if event == "pretooluse":
        return ToolStarting(text(payload, "tool_name"))
    if event == "stop":
        cause = text(payload, "agent_stop_cause")
        if cause not in ("end_turn", ""):
            return TurnStopped(cause)
        return TurnEnded(text(payload, "conversation.agentTextResponse") or None)
    if event == "sessionstart":
        return SessionStarted()
    if event == "sessionend":
        return SessionEnded()
    return Nothing()
