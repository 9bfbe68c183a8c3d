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

# A plain constant that type checkers treat as true: `typing` is not imported on this path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from agent.hooks.targets import Target

event_of = mapping(
    {
        "userPromptSubmit": prompt("prompt"),
        "preToolUse": tool("tool_name"),
        "stop": turn_end(),
        "agentSpawn": session_start(),  # 2.x
        "SessionStart": session_start(),  # 3.x
    }
)


def install_target() -> Target:
    """What `hook install kiro` writes: Kiro CLI 3.x's hooks file, ours alone."""
    # Imported here, when installing: this module is on the hooks' fast path (no dataclasses).
    import json  # noqa: PLC0415

    from agent.hooks.targets import EXECUTABLE, OwnFile, Target, command  # noqa: PLC0415

    triggers = ("SessionStart", "UserPromptSubmit", "PreToolUse", "Stop")
    document = {
        "version": "v1",
        "hooks": [
            {
                "name": f"{EXECUTABLE} {trigger}",
                "trigger": trigger,
                "action": {"type": "command", "command": command("kiro")},
                "enabled": True,
            }
            for trigger in triggers
        ],
    }
    path = ".kiro/hooks/coder-task-agent.json"
    return Target(
        "kiro",
        (OwnFile(path, path, text=json.dumps(document, indent=2) + "\n"),),
        notes=(
            "This is Kiro CLI 3.x's hooks file. Kiro documents it in the workspace "
            "(--scope project); a user-level ~/.kiro/hooks is unconfirmed. Kiro 2.x reads "
            "hooks from the agent's own config instead (see docs/hook-install.md).",
        ),
    )
