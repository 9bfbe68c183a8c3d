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

# A plain constant that type checkers treat as true: `typing` is not imported on this path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from agent.hooks.targets import Target

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


def install_target() -> Target:
    """What `hook install goose` writes: a plugin of ours alone, its manifest and hooks."""
    # Imported here, when installing: this module is on the hooks' fast path (no dataclasses).
    import json  # noqa: PLC0415

    from agent.hooks.targets import EXECUTABLE, OwnFile, Target, matcher_group  # noqa: PLC0415

    group = matcher_group("goose", timeout=10)
    events = ("SessionStart", "UserPromptSubmit", "PreToolUse", "Stop", "SessionEnd")
    plugin = ".agents/plugins/coder-task-agent"
    hooks = {"hooks": {event: [group] for event in events}}
    return Target(
        "goose",
        (
            OwnFile(
                f"{plugin}/plugin.json",
                f"{plugin}/plugin.json",
                text=json.dumps({"name": EXECUTABLE, "version": "1.0.0"}, indent=2) + "\n",
            ),
            OwnFile(
                f"{plugin}/hooks/hooks.json",
                f"{plugin}/hooks/hooks.json",
                text=json.dumps(hooks, indent=2) + "\n",
            ),
        ),
        own_dirs=(f"{plugin}/hooks", plugin),
        notes=("Goose 1.34.0 or later loads the plugin; it has no permission event.",),
    )
