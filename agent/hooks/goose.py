"""Goose's hooks (an Open Plugins plugin of ours) as events (docs/hooks.md#goose lists them)."""

from __future__ import annotations

from agent.hooks.payload import mapping, prompt, session_end, session_start, tool, turn_end

TYPE_CHECKING = False  # true for type checkers: `typing` is not imported on the hooks' path
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
    """A plugin of ours alone: its manifest and its hooks."""
    from agent.hooks.targets import EXECUTABLE, Target, json_file, matcher_group  # noqa: PLC0415

    group = matcher_group("goose", timeout=10)
    events = ("SessionStart", "UserPromptSubmit", "PreToolUse", "Stop", "SessionEnd")
    plugin = ".agents/plugins/coder-task-agent"
    manifest, hooks = f"{plugin}/plugin.json", f"{plugin}/hooks/hooks.json"
    return Target(
        "goose",
        (
            json_file(manifest, manifest, {"name": EXECUTABLE, "version": "1.0.0"}),
            json_file(hooks, hooks, {"hooks": {event: [group] for event in events}}),
        ),
        own_dirs=(f"{plugin}/hooks", plugin),
        notes=("Goose 1.34.0 or later loads the plugin; it has no permission event.",),
    )
