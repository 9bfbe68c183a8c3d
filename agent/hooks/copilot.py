"""GitHub Copilot CLI's hooks as events (docs/hooks.md#copilot-cli lists them).

Two payload shapes: configured with PascalCase names, VS Code's snake_case with
`hook_event_name`; with camelCase names, camelCase without the name (the command says it,
`--event`). Both are read here. `permissionRequest` reports nothing: it fires before Copilot's
permission rules run, also for calls they then allow.
"""

from __future__ import annotations

from agent.hooks.events import Nothing, PermissionWait, TurnStopped
from agent.hooks.payload import (
    always,
    asking,
    by,
    flag,
    mapping,
    prompt,
    session_end,
    session_start,
    text,
    tool,
    turn_end,
    unless_asking,
)

TYPE_CHECKING = False  # true for type checkers: `typing` is not imported on the hooks' path
if TYPE_CHECKING:
    from agent.hooks.events import HookEvent
    from agent.hooks.payload import Payload
    from agent.hooks.targets import Target


def error(payload: Payload) -> HookEvent:
    """The turn stopped on the error, unless it is `recoverable` (or does not say)."""
    if flag(payload, "recoverable", "error.recoverable") is not False:
        return Nothing()
    return TurnStopped(text(payload, "error.message", "error.name"))


TOOL = ("tool_name", "toolName")
prompted = prompt("prompt")
EVENTS = {
    "userPromptSubmitted": prompted,
    "UserPromptSubmit": prompted,
    "preToolUse": unless_asking(
        tool(*TOOL), ("ask_user",), "tool_input.question", "toolArgs.question", names=TOOL
    ),
    "notification": by(
        {"permission_prompt": always(PermissionWait()), "elicitation_dialog": asking("message")},
        "notification_type",
        "notificationType",
    ),
    "agentStop": turn_end(),
    "Stop": turn_end(),
    "errorOccurred": error,
    "sessionStart": session_start(),
    "sessionEnd": session_end(),
}
event_of = mapping(EVENTS, "hook_event_name", "hookEventName")


def install_target() -> Target:
    """A hooks file of ours alone."""
    from agent.hooks.targets import Target, command, json_file  # noqa: PLC0415

    entry = {"type": "command", "bash": command("copilot"), "timeoutSec": 10}
    # PascalCase events, whose payloads name the event. Copilot's hooks reference pairs every
    # other event with a PascalCase name but lists `notification` in camelCase only, so it
    # stays so; its payload carries `hook_event_name` anyway.
    events: tuple[str, ...] = ("SessionStart", "UserPromptSubmit", "PreToolUse", "notification")
    events += ("Stop", "ErrorOccurred", "SessionEnd")
    document = {"version": 1, "hooks": {event: [entry] for event in events}}
    return Target(
        "copilot",
        (
            json_file(
                ".copilot/hooks/coder-task-agent.json",
                ".github/hooks/coder-task-agent.json",
                document,
            ),
        ),
        notes=(
            "The user file goes in ~/.copilot/hooks; with COPILOT_HOME set, Copilot reads "
            "$COPILOT_HOME/hooks instead (copy the file there). Repository hooks "
            "(.github/hooks) load once the folder is trusted.",
        ),
    )
