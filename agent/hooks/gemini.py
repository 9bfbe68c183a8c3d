"""Gemini CLI's command hooks, as events of agent.hooks.events (which holds the rules).

Gemini CLI runs a command hook with the event as JSON on stdin (`hook_event_name`):

- `BeforeAgent`: a prompt (`prompt`), once per prompt.
- `BeforeTool`: a tool (`run_shell_command`, `replace`, `mcp_<server>_<tool>`...).
- `Notification` `ToolPermission`: a permission wait for `details.toolName`, else
  `details.title` (the confirmation's own name for the tool).
- `AfterAgent`: the turn ended, with `prompt_response` (the final answer). It does not fire on
  an error or a cancel: Gemini has no event for those.
- `SessionStart`: a session started. `SessionEnd`: it ended.
- anything else (`BeforeModel`, `AfterModel` on every streamed chunk, `AfterTool`,
  `PreCompress`...): nothing.

Gemini reads the hook's stdout as its decision, and its stderr instead when stdout is empty
(shown to the user): the hook prints `{}` (agent.hooks, the registry's `stdout`).
"""

from __future__ import annotations

from agent.hooks.payload import (
    by,
    mapping,
    permission,
    prompt,
    session_end,
    session_start,
    tool,
    turn_end,
)

event_of = mapping(
    {
        "BeforeAgent": prompt("prompt"),
        "BeforeTool": tool("tool_name"),
        "Notification": by(
            {"ToolPermission": permission("details.toolName", "details.title")},
            "notification_type",
        ),
        "AfterAgent": turn_end("prompt_response"),
        "SessionStart": session_start(except_sources=("compact",)),
        "SessionEnd": session_end(),
    }
)
