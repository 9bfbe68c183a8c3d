"""Cursor CLI's (`cursor-agent`) hooks, as events of agent.hooks.events (which holds the rules).

Cursor runs each `hooks.json` command with the event as JSON on stdin (`hook_event_name`,
camelCase):

- `beforeSubmitPrompt`: a prompt (`prompt`). In print mode (`-p`) it does not fire.
- `preToolUse`: a tool (`Shell`, `Read`, `Write`, `MCP:<name>`...).
- `stop`: by `status`, `completed`: the turn ended ("Turn finished": the payload does not carry
  the answer); `aborted` or `error`: the turn stopped, for that reason.
- `sessionStart`: a session started. `sessionEnd`: it ended.
- anything else (`afterAgentResponse`, `beforeShellExecution`, `postToolUse`, subagents...):
  nothing. `afterAgentResponse` has the assistant's text, but Cursor calls it after an assistant
  message, not once at the turn's end: reporting idle there could come in the middle of a turn.

Cursor has no event for a permission prompt.
"""

from __future__ import annotations

from agent.hooks.payload import mapping, prompt, session_end, session_start, tool, turn_end

# A plain constant that type checkers treat as true: `typing` is not imported on this path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from agent.hooks.targets import Json, Target

event_of = mapping(
    {
        "beforeSubmitPrompt": prompt("prompt"),
        "preToolUse": tool("tool_name"),
        "stop": turn_end(cause="status", normal="completed"),
        "sessionStart": session_start(),
        "sessionEnd": session_end(),
    }
)


def install_target() -> Target:
    """What `hook install cursor` writes: hooks.json with the event names Cursor knows."""
    # Imported here, when installing: this module is on the hooks' fast path (no dataclasses).
    from agent.hooks.targets import JsonHooks, Target, command  # noqa: PLC0415

    entry: Json = {"command": command("cursor")}
    # Only names Cursor knows: one unknown event name makes it ignore the whole file.
    events = tuple(
        (event, entry)
        for event in ("sessionStart", "beforeSubmitPrompt", "preToolUse", "stop", "sessionEnd")
    )
    return Target(
        "cursor",
        (JsonHooks(".cursor/hooks.json", ".cursor/hooks.json", events, skeleton={"version": 1}),),
        notes=(
            "Only event names Cursor knows are written: one unknown name makes Cursor ignore "
            "the whole hooks.json. Cursor has no permission event, and its prompt and stop "
            "events fire in the interactive TUI only (not with -p). Project hooks need a "
            "trusted workspace.",
        ),
    )
