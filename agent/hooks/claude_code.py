"""Claude Code's command hooks as events (docs/hooks.md#claude-code lists them)."""

from __future__ import annotations

from agent.hooks.payload import CLAUDE_STYLE, asking, by, mapping, permission, tool, unless_asking

TYPE_CHECKING = False  # true for type checkers: `typing` is not imported on the hooks' path
if TYPE_CHECKING:
    from agent.hooks.targets import Target

# Tools whose purpose is to wait for the user: their PreToolUse and PermissionRequest both say
# the question, in the same words (one wait, one status).
ASKING_TOOLS = ("AskUserQuestion", "ExitPlanMode")
QUESTION = "tool_input.questions.0.question"
# Notifications that the agent waits for this user ("": older versions' none). Not
# `permission_prompt`: it repeats the PermissionRequest of six seconds before.
WAITING_NOTIFICATIONS = ("idle_prompt", "elicitation_dialog", "elicitation_url_dialog", "")

EVENTS = {
    **CLAUDE_STYLE,
    "PreToolUse": unless_asking(tool("tool_name"), ASKING_TOOLS, QUESTION),
    "PermissionRequest": unless_asking(permission("tool_name"), ASKING_TOOLS, QUESTION),
    "Notification": by(
        dict.fromkeys(WAITING_NOTIFICATIONS, asking("message")), "notification_type"
    ),
}
event_of = mapping(EVENTS)
# The events `hook install` registers (Qwen Code's too).
HOOKED: tuple[str, ...] = ("SessionStart", "UserPromptSubmit", "PreToolUse", "PermissionRequest")
HOOKED += ("Notification", "Stop", "StopFailure", "SessionEnd")


def install_target() -> Target:
    """Our command on every event mapped above."""
    from agent.hooks.targets import JsonHooks, Target, matcher_group  # noqa: PLC0415

    group = matcher_group("claude-code")
    # SessionEnd hooks share a 1.5 s budget; a hook's own timeout raises it.
    end = matcher_group("claude-code", timeout=5)
    entries = tuple((event, end if event == "SessionEnd" else group) for event in HOOKED)
    path = ".claude/settings.json"
    return Target(
        "claude-code",
        (JsonHooks(path, path, entries),),
        notes=("Claude Code reads its settings when a session starts: restart a running one.",),
    )
