"""Auggie's (Augment CLI) command hooks, as events of agent.hooks.events (which holds the rules).

Auggie runs each hook with the event as JSON on stdin (`hook_event_name`):

- the prompt-submit hook (0.27.0 and later; its name is not documented: `PromptSubmit` or
  `UserPromptSubmit`): a prompt (`prompt`, else `conversation.userPrompt`).
- `PreToolUse`: a tool (`launch-process`, `str-replace-editor`, `view`, `mcp:...`).
- `Stop`: by `agent_stop_cause`, `end_turn` (or none): the turn ended, with
  `conversation.agentTextResponse` (present when the hook's `metadata.includeConversationData`
  is set); any other cause (`interrupted`...): the turn stopped, for that cause.
- `SessionStart`: a session started. `SessionEnd`: it ended.
- anything else (`PostToolUse`...): nothing.

Auggie shows a tool hook's stdout and stderr to the user even at exit 0: the hook logs errors
only there (agent.hooks, the registry's `stderr_shown`).
"""

from __future__ import annotations

from agent.hooks.payload import mapping, prompt, session_end, session_start, tool, turn_end

# A plain constant that type checkers treat as true: `typing` is not imported on this path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from agent.hooks.targets import Events, Json, Target

# The prompt-submit hook's name is not documented: either of the two likely ones.
prompted = prompt("prompt", "conversation.userPrompt")
event_of = mapping(
    {
        "PromptSubmit": prompted,
        "UserPromptSubmit": prompted,
        "PreToolUse": tool("tool_name"),
        "Stop": turn_end(
            "conversation.agentTextResponse", cause="agent_stop_cause", normal="end_turn"
        ),
        "SessionStart": session_start(),
        "SessionEnd": session_end(),
    }
)


# Auggie runs a hook command only when it is a path to a `.sh` file: a wrapper of ours.
WRAPPER = "coder-task-agent.sh"


def install_target() -> Target:
    """What `hook install auggie` writes: our wrapper script, and its hooks in the settings."""
    # Imported here, when installing: this module is on the hooks' fast path (no dataclasses).
    from agent.hooks.targets import ROOT, JsonHooks, OwnFile, Target, command  # noqa: PLC0415

    wrapper = f"{ROOT}/.augment/hooks/{WRAPPER}"
    handler = {"type": "command", "command": wrapper, "timeout": 10000}  # milliseconds
    group: Json = {"hooks": [handler]}
    events: Events = (
        ("SessionStart", group),
        ("PreToolUse", {"matcher": ".*", "hooks": [handler]}),
        ("Stop", {"metadata": {"includeConversationData": True}, "hooks": [handler]}),
        ("SessionEnd", group),
    )
    return Target(
        "auggie",
        (
            OwnFile(
                f".augment/hooks/{WRAPPER}",
                f".augment/hooks/{WRAPPER}",
                text=f"#!/bin/sh\nexec {command('auggie')}\n",
                mode=0o755,
            ),
            JsonHooks(".augment/settings.json", ".augment/settings.json", events, wrapper=WRAPPER),
        ),
        notes=(
            "Auggie's prompt-submit event name is unconfirmed, so none is registered: the "
            "status turns working at the first tool call, not at the prompt.",
        ),
    )
