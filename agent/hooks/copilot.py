"""GitHub Copilot CLI's hooks, as events of agent.hooks.events (which holds the rules).

Copilot runs each hook command with JSON on stdin, in two shapes: configured with PascalCase
event names (`UserPromptSubmit`) the payload is VS Code's snake_case with `hook_event_name`;
configured with camelCase names (`userPromptSubmitted`) it is camelCase and carries no event
name (except `notification`), so the command names it: `hook copilot --event userPromptSubmitted`.
Both are read here, names compared without case.

- `userPromptSubmitted` / `UserPromptSubmit`: a prompt (`prompt`).
- `preToolUse` / `PreToolUse`: a tool (`tool_name` / `toolName`), except `ask_user`, which waits
  for the user: asking the user (its `question`).
- `notification` `permission_prompt`: a permission wait (the payload does not name the tool);
  `elicitation_dialog`: asking the user. Other types (`shell_completed`, `agent_idle`, ...:
  background work): nothing.
- `permissionRequest`: nothing. It fires before Copilot's permission rules run, also for calls
  they then allow: it is no sign of a wait.
- `agentStop` / `Stop`: the turn ended ("Turn finished": no final message in the payload).
- `errorOccurred` / `ErrorOccurred`: the turn stopped, with the error's message, when it is not
  `recoverable`; a recoverable error: nothing (Copilot goes on).
- `sessionStart` / `SessionStart`: a session started. `sessionEnd` / `SessionEnd`: it ended (in
  `-p` mode once per turn).
- anything else (`postToolUse`, subagents, `preCompact`): nothing.
"""

from __future__ import annotations

from agent.hooks.events import AskingUser, Nothing, PermissionWait, ToolStarting, TurnStopped
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
    turn_end,
)

# A plain constant that type checkers treat as true: `typing` is not imported on this path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from agent.hooks.events import HookEvent
    from agent.hooks.payload import Payload
    from agent.hooks.targets import Target

ASKING_TOOLS = ("ask_user",)


def tool_or_question(payload: Payload) -> HookEvent:
    """A tool, except the ASKING_TOOLS (any case): asking the user, its `question`."""
    tool = text(payload, "tool_name", "toolName")
    if tool.lower() in ASKING_TOOLS:
        return AskingUser(text(payload, "tool_input.question", "toolArgs.question"))
    return ToolStarting(tool)


def error(payload: Payload) -> HookEvent:
    """The turn stopped on the error, unless it is `recoverable` (or does not say)."""
    if flag(payload, "recoverable", "error.recoverable") is not False:
        return Nothing()
    return TurnStopped(text(payload, "error.message", "error.name"))


prompted = prompt("prompt")
EVENTS = {
    "userPromptSubmitted": prompted,
    "UserPromptSubmit": prompted,
    "preToolUse": tool_or_question,
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
    """What `hook install copilot` writes: a hooks file of ours alone."""
    # Imported here, when installing: this module is on the hooks' fast path (no dataclasses).
    import json  # noqa: PLC0415

    from agent.hooks.targets import OwnFile, Target, command  # noqa: PLC0415

    entry = {"type": "command", "bash": command("copilot"), "timeoutSec": 10}
    # PascalCase events: their payloads name the event (the camelCase ones do not).
    # `notification` stays camelCase (a PascalCase `Notification` is unconfirmed); its payload
    # carries `hook_event_name` anyway.
    events = (
        "SessionStart",
        "UserPromptSubmit",
        "PreToolUse",
        "notification",
        "Stop",
        "ErrorOccurred",
        "SessionEnd",
    )
    document = {"version": 1, "hooks": {event: [entry] for event in events}}
    return Target(
        "copilot",
        (
            OwnFile(
                ".copilot/hooks/coder-task-agent.json",
                ".github/hooks/coder-task-agent.json",
                text=json.dumps(document, indent=2) + "\n",
            ),
        ),
        notes=(
            "The user file goes in ~/.copilot/hooks; with COPILOT_HOME set, Copilot reads "
            "$COPILOT_HOME/hooks instead (copy the file there). Repository hooks "
            "(.github/hooks) load once the folder is trusted.",
        ),
    )
