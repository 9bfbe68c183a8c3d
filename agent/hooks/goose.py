"""Goose's hooks (Open Plugins `hooks/hooks.json`), as events of agent.hooks.events (the rules).

Goose runs each hook command with JSON on stdin; the event's name is in `event`, not
`hook_event_name`:

- `UserPromptSubmit`: a prompt (`message`).
- `PreToolUse`: a tool (`developer__shell`...).
- `Stop`: the turn ended, with `last_assistant_message` when the turn produced text.
- `SessionStart`: a session started. `SessionEnd`: it ended.
- anything else (`PreToolUseResult`, `PostToolUse`, file and shell events): nothing.

Goose has no permission event.
"""

from __future__ import annotations

from agent.hooks.payload import mapping, prompt, session_end, session_start, tool, turn_end

# The event's name is in `event` (`hook_event_name` where a version sends that).
event_of = mapping(
    {
        "UserPromptSubmit": prompt("message", "prompt"),
        "PreToolUse": tool("tool_name"),
        "Stop": turn_end("last_assistant_message"),
        "SessionStart": session_start(),
        "SessionEnd": session_end(),
    },
    "event",
    "hook_event_name",
)
