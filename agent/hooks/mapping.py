"""Which status an agent's own hook event means: a pure mapping, one function per agent.

Why: Coder's route to an explicit status is an MCP tool the model must remember to call; the
agents' lifecycle hooks fire by themselves. Claude Code runs a command hook with the event as
JSON on stdin (`hook_event_name` and the event's own fields); Codex runs its `notify` program
with one JSON argument after each turn (`type: agent-turn-complete`). This module decides what
each event reports, without I/O, so the decisions are a table (tests/test_hookmap.py) and the
`hook` command (agent.hooks.command) is only a shell around it.

Every report made here goes to the daemon as a hook report: a hook's `idle` does not replace an
explicit complete or failed (the rules in agent.rules), a hook's `working` does (the agent works
again). No event maps to complete or failed: only the agent itself (`report`) knows the task is
done.

Claude Code events:
- `UserPromptSubmit`: working, the prompt's first line.
- `PreToolUse`: working, "Using TOOL".
- `PermissionRequest`: idle, "Waiting for permission to use TOOL".
- `Notification` of type `permission_prompt`, `idle_prompt`, `elicitation_dialog` or none: idle,
  the notification's text ("Waiting for input" when empty); other types (`auth_success`): none.
- `Stop`: idle, "Turn finished"; none when `stop_hook_active` (a stop hook made Claude go on).
- `StopFailure`: idle, "Turn stopped: ERROR".
- `SessionStart` from startup, resume or clear: idle, "Waiting for input"; none after `compact`.
- `SessionEnd`: idle, "Session ended".
- anything else (`PostToolUse`, `SubagentStop`, `PreCompact`...): none.

Codex `notify` payloads: `agent-turn-complete`: idle, "Turn finished"; any other type: none.
"""

from __future__ import annotations

from collections.abc import Mapping

from agent.models import AppState, AppStatus, first_line, shorten

IDLE_WAITING = "Waiting for input"
TURN_FINISHED = "Turn finished"
SESSION_ENDED = "Session ended"
# Notification types that mean "the agent waits for the user". Older Claude Code versions send
# no type at all: their notifications were only these two kinds.
_WAITING_NOTIFICATIONS = ("permission_prompt", "idle_prompt", "elicitation_dialog", "")
# SessionStart sources that begin a session; `compact` happens in the middle of a turn.
_SESSION_STARTS = ("startup", "resume", "clear", "")


def claude_code(event: Mapping[str, object]) -> AppStatus | None:
    """The status a Claude Code hook event reports, or None when it reports nothing."""
    name = _text(event, "hook_event_name")
    if name == "UserPromptSubmit":
        return AppStatus(AppState.WORKING, first_line(_text(event, "prompt"), "Working"))
    if name == "PreToolUse":
        return AppStatus(
            AppState.WORKING, shorten(f"Using {_text(event, 'tool_name') or 'a tool'}")
        )
    if name == "PermissionRequest":
        tool = _text(event, "tool_name") or "a tool"
        return AppStatus(AppState.IDLE, shorten(f"Waiting for permission to use {tool}"))
    if name == "Notification":
        if _text(event, "notification_type") not in _WAITING_NOTIFICATIONS:
            return None
        return AppStatus(AppState.IDLE, first_line(_text(event, "message"), IDLE_WAITING))
    if name == "Stop":
        if event.get("stop_hook_active") is True:
            return None
        return AppStatus(AppState.IDLE, TURN_FINISHED)
    if name == "StopFailure":
        error = first_line(_text(event, "error"), "an error")
        return AppStatus(AppState.IDLE, shorten(f"Turn stopped: {error}"))
    if name == "SessionStart":
        if _text(event, "source") not in _SESSION_STARTS:
            return None
        return AppStatus(AppState.IDLE, IDLE_WAITING)
    if name == "SessionEnd":
        return AppStatus(AppState.IDLE, SESSION_ENDED)
    return None


def codex(event: Mapping[str, object]) -> AppStatus | None:
    """The status a Codex `notify` payload reports, or None when it reports nothing."""
    if _text(event, "type") == "agent-turn-complete":
        return AppStatus(AppState.IDLE, TURN_FINISHED)
    return None


def _text(event: Mapping[str, object], key: str) -> str:
    # A field of the wrong type is treated as absent: a hook never fails on odd input.
    value = event.get(key)
    return value if isinstance(value, str) else ""
