"""Codex CLI's two mechanisms, as events of agent.hooks.events (which holds the rules).

Codex runs its `notify` program after each turn with one JSON argument (`type`, no
`hook_event_name`), and its lifecycle hooks (0.114.0 and later) with Claude-style JSON on stdin
(`hook_event_name`); the payload itself says which it is.

- notify `agent-turn-complete`: the turn ended, with `last-assistant-message`. Other types:
  nothing.
- `UserPromptSubmit`: a prompt. `PreToolUse`: a tool (`Bash`, `apply_patch`, `mcp__srv__tool`).
  `PermissionRequest`: a permission wait.
- `Stop`: the turn ended, with `last_assistant_message` (with notify configured too, both say
  the same words: one status). `Interrupt`: the turn stopped, "interrupted". `StopFailure`: the
  turn stopped on `error`.
- `SessionStart`: a session started, except after `compact`. `SessionEnd`: it ended.
- anything else (`PostToolUse`, compaction, subagents): nothing.
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
    TurnStopped,
)
from agent.hooks.payload import folded, text

# A plain constant that type checkers treat as true: `typing` is not imported on this path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping


def event_of(payload: Mapping[str, object], name: str = "") -> HookEvent:
    """What the Codex notify payload or hook event `payload` says happened."""
    if not name and "hook_event_name" not in payload and "type" in payload:
        return _notify(payload)
    event = folded(name or text(payload, "hook_event_name"))
    if event == "userpromptsubmit":
        return PromptSubmitted(text(payload, "prompt"))
    if event == "pretooluse":
        return ToolStarting(text(payload, "tool_name"))
    if event == "permissionrequest":
        return PermissionWait(text(payload, "tool_name"))
    if event == "stop":
        return TurnEnded(text(payload, "last_assistant_message") or None)
    if event == "interrupt":
        return TurnStopped("interrupted")
    if event == "stopfailure":
        return TurnStopped(text(payload, "error"))
    if event == "sessionstart":
        return Nothing() if text(payload, "source") == "compact" else SessionStarted()
    if event == "sessionend":
        return SessionEnded()
    return Nothing()


def _notify(payload: Mapping[str, object]) -> HookEvent:
    if text(payload, "type") == "agent-turn-complete":
        return TurnEnded(text(payload, "last-assistant-message") or None)
    return Nothing()
