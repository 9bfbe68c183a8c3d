"""Claude Code's command hooks, as events of agent.hooks.events (which holds the rules).

Claude Code runs a command hook with the event as JSON on stdin: `hook_event_name` and the
event's own fields. Which is which:

- `UserPromptSubmit`: a prompt (`prompt`).
- `PreToolUse`: a tool (`tool_name`), except AskUserQuestion and ExitPlanMode, which wait for the
  user: asking the user (the first question's text).
- `PermissionRequest`: a permission wait for `tool_name` (asking the user for the two tools
  above, in the same words as their PreToolUse: one wait, one status). It fires at once; the
  Notification `permission_prompt` that follows about six seconds later, for the same wait,
  reports nothing.
- `Notification` `idle_prompt`, `elicitation_dialog`, `elicitation_url_dialog` or no type (older
  versions): asking the user, the notification's text. Other types (`permission_prompt`,
  `auth_success`, `elicitation_complete`, background sessions' `agent_needs_input`...): nothing.
- `Stop`: the turn ended, with `last_assistant_message` (2.1.47 and later); every Stop, whatever
  `stop_hook_active` says. `StopFailure`: the turn stopped on `error` (`rate_limit`...).
- `SessionStart`: a session started, except after `compact` (inside a turn). `SessionEnd`: it
  ended.
- anything else (`PostToolUse`, `SubagentStop`, `PreCompact`, `UserPromptExpansion`...): nothing.

No event fires when the user interrupts a turn: the status stays working until the next event
(the `idle_prompt` notification about a minute later, or the next prompt).
"""

from __future__ import annotations

from agent.hooks.events import AskingUser
from agent.hooks.payload import CLAUDE_STYLE, asking, by, mapping, permission, text, tool, value_at

# A plain constant that type checkers treat as true: `typing` is not imported on this path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from agent.hooks.events import HookEvent
    from agent.hooks.payload import Build, Payload
    from agent.hooks.targets import Target

# Tools whose purpose is to wait for the user's answer.
ASKING_TOOLS = ("AskUserQuestion", "ExitPlanMode")
# Notification types that mean "the agent waits for this user"; "" is older versions' none.
WAITING_NOTIFICATIONS = ("idle_prompt", "elicitation_dialog", "elicitation_url_dialog", "")


def unless_asking(build: Build) -> Build:
    """`build`, except for the ASKING_TOOLS: asking the user, the first question (the same
    words from PreToolUse and PermissionRequest: one wait, one status)."""

    def event(payload: Payload) -> HookEvent:
        if text(payload, "tool_name") in ASKING_TOOLS:
            return AskingUser(question(payload))
        return build(payload)

    return event


def question(payload: Payload) -> str:
    """The first question AskUserQuestion asks (`tool_input.questions[0].question`), or ""."""
    questions = value_at(payload, "tool_input.questions")
    if isinstance(questions, list) and questions and isinstance(questions[0], dict):
        first = questions[0].get("question")
        return first if isinstance(first, str) else ""
    return ""


EVENTS = {
    **CLAUDE_STYLE,
    "PreToolUse": unless_asking(tool("tool_name")),
    "PermissionRequest": unless_asking(permission("tool_name")),
    "Notification": by(
        dict.fromkeys(WAITING_NOTIFICATIONS, asking("message")), "notification_type"
    ),
}
event_of = mapping(EVENTS)


def install_target() -> Target:
    """What `hook install claude-code` writes: our command on every event mapped above."""
    # Imported here, when installing: this module is on the hooks' fast path (no dataclasses).
    from agent.hooks.targets import JsonHooks, Target, matcher_group  # noqa: PLC0415

    group = matcher_group("claude-code")
    events = [
        (event, group)
        for event in (
            "SessionStart",
            "UserPromptSubmit",
            "PreToolUse",
            "PermissionRequest",
            "Notification",
            "Stop",
            "StopFailure",
        )
    ]
    # SessionEnd hooks share a 1.5 s budget; a hook's own timeout raises it.
    events.append(("SessionEnd", matcher_group("claude-code", timeout=5)))
    return Target(
        "claude-code",
        (JsonHooks(".claude/settings.json", ".claude/settings.json", tuple(events)),),
        notes=("Claude Code reads its settings when a session starts: restart a running one.",),
    )
