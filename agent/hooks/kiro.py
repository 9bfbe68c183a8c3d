"""Kiro CLI's hooks, as events of agent.hooks.events (which holds the rules).

Kiro runs each hook command with the event as JSON on stdin (`hook_event_name`): camelCase in
2.x agent configs (`userPromptSubmit`), PascalCase in 3.x `.kiro/hooks/*.json`
(`UserPromptSubmit`); names are compared without case.

- `userPromptSubmit`: a prompt (`prompt`).
- `preToolUse`: a tool (`tool_name`).
- `stop`: the turn ended ("Turn finished": no final message in the payload).
- `agentSpawn` (2.x) / `SessionStart` (3.x): a session started.
- anything else (`postToolUse`, task and file events): nothing.

Kiro has no permission event and no session-end event.
"""

from __future__ import annotations

from agent.hooks.payload import mapping, prompt, session_start, tool, turn_end

event_of = mapping(
    {
        "userPromptSubmit": prompt("prompt"),
        "preToolUse": tool("tool_name"),
        "stop": turn_end(),
        "agentSpawn": session_start(),  # 2.x
        "SessionStart": session_start(),  # 3.x
    }
)
