"""Codex CLI's two mechanisms as events (docs/hooks.md#codex lists them): its `notify` program
(one JSON argument with a `type`) and its lifecycle hooks (0.114.0 and later; Claude-style,
on stdin)."""

from __future__ import annotations

from agent.hooks.events import TurnStopped
from agent.hooks.payload import CLAUDE_STYLE, always, by, mapping, turn_end

TYPE_CHECKING = False  # true for type checkers: `typing` is not imported on the hooks' path
if TYPE_CHECKING:
    from agent.hooks.events import HookEvent
    from agent.hooks.payload import Payload
    from agent.hooks.targets import Target

hook_event_of = mapping({**CLAUDE_STYLE, "Interrupt": always(TurnStopped("interrupted"))})
notify_event_of = by({"agent-turn-complete": turn_end("last-assistant-message")}, "type")


def event_of(payload: Payload, name: str = "") -> HookEvent:
    """What the notify payload or the hook event `payload` says happened."""
    if not name and "hook_event_name" not in payload and "type" in payload:
        return notify_event_of(payload)
    return hook_event_of(payload, name)


def install_target() -> Target:
    """The notify program and the lifecycle hooks."""
    from agent.hooks.targets import CodexNotify, JsonHooks, Target, matcher_group  # noqa: PLC0415

    group = matcher_group("codex")
    short = matcher_group("codex", timeout=3)  # SessionEnd and Interrupt: default 1 s, limit 3 s
    events = ("SessionStart", "UserPromptSubmit", "PreToolUse", "PermissionRequest", "Stop")
    entries = (*((event, group) for event in events), ("Interrupt", short), ("SessionEnd", short))
    return Target(
        "codex",
        (CodexNotify(), JsonHooks(".codex/hooks.json", ".codex/hooks.json", entries)),
        notes=(
            "Codex runs the hooks in hooks.json only after a person has reviewed and trusted "
            "them (in Codex's /hooks), or when Codex is started with "
            "--dangerously-bypass-hook-trust; project hooks also need a trusted project. "
            "`notify` (turn end) needs no trust.",
            "A `notify` program you had keeps running: ours reports, then runs yours with the "
            "same payload (uninstall puts yours back).",
        ),
    )
