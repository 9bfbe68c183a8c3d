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

from agent.hooks.events import (
    AskingUser,
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
from agent.hooks.payload import flag, folded, text

# A plain constant that type checkers treat as true: `typing` is not imported on this path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

ASKING_TOOLS = ("ask_user",)


def event_of(payload: Mapping[str, object], name: str = "") -> HookEvent:
    """What the Copilot hook event `payload` says happened."""
    event = folded(name or text(payload, "hook_event_name", "hookEventName"))
    if event in ("userpromptsubmitted", "userpromptsubmit"):
        return PromptSubmitted(text(payload, "prompt"))
    if event == "pretooluse":
        tool = text(payload, "tool_name", "toolName")
        if tool.lower() in ASKING_TOOLS:
            return AskingUser(text(payload, "tool_input.question", "toolArgs.question"))
        return ToolStarting(tool)
    if event == "notification":
        kind = text(payload, "notification_type", "notificationType")
        if kind == "permission_prompt":
            return PermissionWait()
        if kind == "elicitation_dialog":
            return AskingUser(text(payload, "message"))
        return Nothing()
    if event in ("agentstop", "stop"):
        return TurnEnded()
    if event == "erroroccurred":
        if flag(payload, "recoverable", "error.recoverable") is not False:
            return Nothing()
        return TurnStopped(text(payload, "error.message", "error.name"))
    if event == "sessionstart":
        return SessionStarted()
    if event == "sessionend":
        return SessionEnded()
    return Nothing()
