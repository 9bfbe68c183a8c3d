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

# A plain constant that type checkers treat as true: `typing` is not imported on this path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from agent.hooks.targets import Target

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


def install_target() -> Target:
    """What `hook install gemini` writes: a named handler on every event mapped above."""
    # Imported here, when installing: this module is on the hooks' fast path (no dataclasses).
    from agent.hooks.targets import Target, gemini_style  # noqa: PLC0415

    events: tuple[str, ...] = ("SessionStart", "BeforeAgent", "BeforeTool", "Notification")
    events += ("AfterAgent", "SessionEnd")
    return Target(
        "gemini",
        (gemini_style("gemini", ".gemini/settings.json", events, "BeforeTool"),),
        notes=(
            "Gemini CLI warns once about new project hooks, then runs them. It fires no event "
            "when a turn ends in an error or is cancelled.",
        ),
    )
