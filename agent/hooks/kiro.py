"""Kiro CLI's hooks as events (docs/hooks.md#kiro-cli lists them): camelCase names in 2.x agent
configs, PascalCase in 3.x `.kiro/hooks/*.json`."""

from __future__ import annotations

from agent.hooks.payload import mapping, prompt, session_start, tool, turn_end

TYPE_CHECKING = False  # true for type checkers: `typing` is not imported on the hooks' path
if TYPE_CHECKING:
    from agent.hooks.targets import Target

event_of = mapping(
    {
        "userPromptSubmit": prompt("prompt"),
        "preToolUse": tool("tool_name"),
        # 3.x's docs call `Stop` both "session ends" and 2.x's `stop` renamed (the end of a
        # response); idle is right for either.
        "stop": turn_end(),
        "agentSpawn": session_start(),  # 2.x
        "SessionStart": session_start(),  # 3.x
    }
)


def install_target() -> Target:
    """Kiro CLI 3.x's hooks file, ours alone."""
    from agent.hooks.targets import EXECUTABLE, Target, command, json_file  # noqa: PLC0415

    action = {"type": "command", "command": command("kiro")}
    hooks = [
        {"name": f"{EXECUTABLE} {trigger}", "trigger": trigger, "action": action, "enabled": True}
        for trigger in ("SessionStart", "UserPromptSubmit", "PreToolUse", "Stop")
    ]
    path = ".kiro/hooks/coder-task-agent.json"
    return Target(
        "kiro",
        (json_file(path, path, {"version": "v1", "hooks": hooks}),),
        notes=(
            "This is Kiro CLI's standalone hooks file: read from the workspace, and from "
            "~/.kiro/hooks since Kiro CLI 2.13.0. An older Kiro CLI reads hooks only from the "
            "agent's own config (see docs/hook-install.md).",
        ),
    )
