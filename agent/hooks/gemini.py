"""Gemini CLI's command hooks as events (docs/hooks.md#gemini-cli lists them).

Never `AfterModel`, which fires on every streamed chunk. Gemini takes stderr as its decision
when stdout is empty: the hook prints `{}` (the registry's `stdout`).
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

TYPE_CHECKING = False  # true for type checkers: `typing` is not imported on the hooks' path
if TYPE_CHECKING:
    from agent.hooks.targets import Target

event_of = mapping(
    {
        "BeforeAgent": prompt("prompt"),
        "BeforeTool": tool("tool_name"),
        "Notification": by(
            # The tool's name, else the confirmation's own title for it.
            {"ToolPermission": permission("details.toolName", "details.title")},
            "notification_type",
        ),
        "AfterAgent": turn_end("prompt_response"),
        "SessionStart": session_start(except_sources=("compact",)),
        "SessionEnd": session_end(),
    }
)


def install_target() -> Target:
    """A named handler on every event mapped above."""
    from agent.hooks.targets import Target, gemini_style  # noqa: PLC0415

    events = ("SessionStart", "BeforeAgent", "BeforeTool", "Notification", "AfterAgent")
    return Target(
        "gemini",
        (gemini_style("gemini", ".gemini/settings.json", (*events, "SessionEnd"), "BeforeTool"),),
        notes=(
            "Gemini CLI warns once about new project hooks, then runs them. It fires no event "
            "when a turn ends in an error or is cancelled.",
        ),
    )
