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

event_of = mapping(
    {
        "beforeSubmitPrompt": prompt("prompt"),
        "preToolUse": tool("tool_name"),
        "stop": turn_end(cause="status", normal="completed"),
        "sessionStart": session_start(),
        "sessionEnd": session_end(),
    }
)
