"""OpenCode's session events, forwarded by our plugin agent/hooks/opencode.js, as events
(docs/hooks.md#opencode lists them and the plugin's envelope, `{"type", "properties"}` plus what
it remembers across events: `parentID`, `afterError`, `answer`)."""

from __future__ import annotations

from agent.hooks.events import Nothing, PromptSubmitted, TurnEnded, TurnStopped
from agent.hooks.payload import flag, mapping, permission, session_start, text, tool

TYPE_CHECKING = False  # true for type checkers: `typing` is not imported on the hooks' path
if TYPE_CHECKING:
    from agent.hooks.events import HookEvent
    from agent.hooks.payload import Payload
    from agent.hooks.targets import Target


def chat_message(payload: Payload) -> HookEvent:
    """A prompt, without one pair of literal double quotes `opencode run` may wrap it in."""
    prompt = text(payload, "properties.text")
    stripped = prompt.strip()
    if len(stripped) >= 2 and stripped[0] == stripped[-1] == '"':
        return PromptSubmitted(stripped[1:-1])
    return PromptSubmitted(prompt)


def session_idle(payload: Payload) -> HookEvent:
    """The turn ended, with `answer`; nothing right after a `session.error`."""
    return Nothing() if flag(payload, "afterError") else TurnEnded(text(payload, "answer") or None)


def session_error(payload: Payload) -> HookEvent:
    """The turn stopped: "aborted" for `MessageAbortedError`, else the error's message."""
    if text(payload, "properties.error.name") == "MessageAbortedError":
        return TurnStopped("aborted")
    return TurnStopped(text(payload, "properties.error.data.message", "properties.error.name"))


asked = permission("properties.permission", "properties.type")  # `permission.updated` before 1.x
own_event_of = mapping(
    {
        "chat.message": chat_message,
        "tool.execute.before": tool("properties.tool"),
        "permission.asked": asked,
        "permission.updated": asked,
        "session.idle": session_idle,
        "session.error": session_error,
        "session.created": session_start(),
    },
    "type",
)


def event_of(payload: Payload, name: str = "") -> HookEvent:
    """What the forwarded event `payload` says happened (nothing for a subagent's)."""
    return Nothing() if text(payload, "parentID") else own_event_of(payload, name)


def install_target() -> Target:
    """Our plugin, shipped in this package."""
    from agent.hooks.targets import OwnFile, Target  # noqa: PLC0415

    user, project = ".config/opencode/plugins/", ".opencode/plugins/"
    plugin = "coder-task-agent.js"
    return Target(
        "opencode",
        (OwnFile(user + plugin, project + plugin, resource="opencode.js"),),
        notes=("OpenCode loads plugins when it starts: restart a running OpenCode.",),
    )
