"""OpenCode's session events, forwarded by our plugin, as events of agent.hooks.events (the rules).

OpenCode runs no commands for hooks, only JS/TS plugins inside itself. agent/hooks/opencode.js
(shipped in the wheel, installed into OpenCode's plugin directory) forwards what it sees as
JSON on the stdin of `coder-task-agent hook opencode`, one process per event, in order. The
envelope is ours: `{"type": NAME, "properties": {...}}` with OpenCode's own event properties
(for its plugin hooks `chat.message` and `tool.execute.before`, the few fields we read), plus
what the plugin remembers across events: `parentID` (the session is a subagent's), `afterError`
(a `session.idle` right after a `session.error`) and `answer` (the text of the session's last
assistant message, read through OpenCode's client when the session goes idle).

- `chat.message`: a prompt (`text`; `opencode run` may pass it wrapped in literal double quotes,
  which are dropped).
- `tool.execute.before`: a tool (`tool`).
- `permission.asked` (`permission.updated` before 1.x): a permission wait for `permission`
  (older: `type`).
- `session.idle`: the turn ended, with `answer`; nothing right after a `session.error`, which
  already said how the turn ended.
- `session.error`: the turn stopped: "aborted" for `MessageAbortedError`, else the error's
  message (or name).
- `session.created`: a session started.
- `session.status` (busy several times a turn, idle, retry) and anything else: nothing (the
  prompt and the tools already say working, `session.idle` says idle).
- every event of a subagent's session (`parentID`): nothing.
"""

from __future__ import annotations

from agent.hooks.events import Nothing, PromptSubmitted, TurnEnded, TurnStopped
from agent.hooks.payload import flag, mapping, permission, session_start, text, tool

# A plain constant that type checkers treat as true: `typing` is not imported on this path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from agent.hooks.events import HookEvent
    from agent.hooks.payload import Payload
    from agent.hooks.targets import Target


def chat_message(payload: Payload) -> HookEvent:
    """A prompt, without the literal quotes `opencode run` may wrap it in."""
    return PromptSubmitted(unquoted(text(payload, "properties.text")))


def session_idle(payload: Payload) -> HookEvent:
    """The turn ended, with `answer`; nothing right after a `session.error`."""
    return Nothing() if flag(payload, "afterError") else TurnEnded(text(payload, "answer") or None)


def session_error(payload: Payload) -> HookEvent:
    """The turn stopped: "aborted" for `MessageAbortedError`, else the error's message."""
    if text(payload, "properties.error.name") == "MessageAbortedError":
        return TurnStopped("aborted")
    return TurnStopped(text(payload, "properties.error.data.message", "properties.error.name"))


asked = permission("properties.permission", "properties.type")
EVENTS = {
    "chat.message": chat_message,
    "tool.execute.before": tool("properties.tool"),
    "permission.asked": asked,
    "permission.updated": asked,
    "session.idle": session_idle,
    "session.error": session_error,
    "session.created": session_start(),
}
own_event_of = mapping(EVENTS, "type")


def event_of(payload: Payload, name: str = "") -> HookEvent:
    """What the forwarded OpenCode event `payload` says happened (nothing for a subagent's)."""
    return Nothing() if text(payload, "parentID") else own_event_of(payload, name)


def unquoted(prompt: str) -> str:
    """`prompt` without one pair of literal double quotes around the whole of it."""
    stripped = prompt.strip()
    if len(stripped) >= 2 and stripped[0] == stripped[-1] == '"':
        return stripped[1:-1]
    return prompt


def install_target() -> Target:
    """What `hook install opencode` writes: our plugin (agent/hooks/opencode.js), shipped here."""
    # Imported here, when installing: this module is on the hooks' fast path (no dataclasses).
    from agent.hooks.targets import OwnFile, Target  # noqa: PLC0415

    return Target(
        "opencode",
        (
            OwnFile(
                ".config/opencode/plugins/coder-task-agent.js",
                ".opencode/plugins/coder-task-agent.js",
                resource="opencode.js",
            ),
        ),
        notes=("OpenCode loads plugins when it starts: restart a running OpenCode.",),
    )
