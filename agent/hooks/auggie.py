"""Auggie's (Augment CLI) command hooks as events (docs/hooks.md#auggie lists them)."""

from __future__ import annotations

from agent.hooks.payload import (
    asking,
    by,
    mapping,
    prompt,
    session_end,
    session_start,
    tool,
    turn_end,
    unless_asking,
)

TYPE_CHECKING = False  # true for type checkers: `typing` is not imported on the hooks' path
if TYPE_CHECKING:
    from agent.hooks.targets import Events, Json, Target

# From the hooks of Augment's own Warp plugin (augmentcode/auggie, plugin_marketplace/warp; the
# docs do not say): `PromptSubmit` (0.27.0 and later) carries the prompt as `user_prompt`; the
# `ask-user` tool's PreToolUse means the agent waits for the user (where its input holds the
# question is not shown there: `question` is tried, else the generic words); a `Notification`
# of type `idle_prompt` says it waits, in `notification_message`.
event_of = mapping(
    {
        "PromptSubmit": prompt("user_prompt"),
        "PreToolUse": unless_asking(tool("tool_name"), ("ask-user",), "tool_input.question"),
        "Notification": by({"idle_prompt": asking("notification_message")}, "notification_type"),
        "Stop": turn_end(
            "conversation.agentTextResponse", cause="agent_stop_cause", normal="end_turn"
        ),
        "SessionStart": session_start(),
        "SessionEnd": session_end(),
    }
)

# Auggie's docs say a hook command must be a path to a `.sh` file: a wrapper of ours. (Whether
# 1.x still insists is not documented either way; the wrapper works in both.)
WRAPPER = "coder-task-agent.sh"


def install_target() -> Target:
    """Our wrapper script, and its hooks in the settings."""
    from agent.hooks.targets import ROOT, JsonHooks, OwnFile, Target, command  # noqa: PLC0415

    wrapper = f".augment/hooks/{WRAPPER}"
    handler = {"type": "command", "command": f"{ROOT}/{wrapper}", "timeout": 10000}  # ms
    group: Json = {"hooks": [handler]}
    events: Events = (
        ("SessionStart", group),
        ("PromptSubmit", group),
        ("PreToolUse", {"matcher": ".*", "hooks": [handler]}),
        ("Notification", group),
        # The conversation's data brings the turn's answer to Stop.
        ("Stop", {"metadata": {"includeConversationData": True}, "hooks": [handler]}),
        ("SessionEnd", group),
    )
    script = f"#!/bin/sh\nexec {command('auggie')}\n"
    settings = ".augment/settings.json"
    return Target(
        "auggie",
        (
            OwnFile(wrapper, wrapper, text=script, mode=0o755),
            JsonHooks(settings, settings, events, wrapper=WRAPPER),
        ),
        notes=(
            "Auggie runs PromptSubmit hooks from 0.27.0 on; with an older one the status "
            "turns working at the first tool call, not at the prompt.",
        ),
    )
