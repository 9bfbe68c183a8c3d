"""Codex CLI's two mechanisms, as events of agent.hooks.events (which holds the rules).

Codex runs its `notify` program after each turn with one JSON argument (`type`, no
`hook_event_name`), and its lifecycle hooks (0.114.0 and later) with Claude-style JSON on stdin
(`hook_event_name`); the payload itself says which it is.

- notify `agent-turn-complete`: the turn ended, with `last-assistant-message`. Other types:
  nothing.
- `UserPromptSubmit`: a prompt. `PreToolUse`: a tool (`Bash`, `apply_patch`, `mcp__srv__tool`).
  `PermissionRequest`: a permission wait.
- `Stop`: the turn ended, with `last_assistant_message` (with notify configured too, both say
  the same words: one status). `Interrupt`: the turn stopped, "interrupted". `StopFailure`: the
  turn stopped on `error`.
- `SessionStart`: a session started, except after `compact`. `SessionEnd`: it ended.
- anything else (`PostToolUse`, compaction, subagents): nothing.
"""

from __future__ import annotations

from agent.hooks.events import TurnStopped
from agent.hooks.payload import CLAUDE_STYLE, always, by, mapping, turn_end

# A plain constant that type checkers treat as true: `typing` is not imported on this path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from agent.hooks.events import HookEvent
    from agent.hooks.payload import Payload
    from agent.hooks.targets import Target

# Claude Code's rows, and Codex's own interrupt.
EVENTS = {**CLAUDE_STYLE, "Interrupt": always(TurnStopped("interrupted"))}
hook_event_of = mapping(EVENTS)
# The notify program's payload: its `type`, compared exactly.
notify_event_of = by({"agent-turn-complete": turn_end("last-assistant-message")}, "type")


def event_of(payload: Payload, name: str = "") -> HookEvent:
    """What the Codex notify payload or hook event `payload` says happened."""
    if not name and "hook_event_name" not in payload and "type" in payload:
        return notify_event_of(payload)
    return hook_event_of(payload, name)


def install_target() -> Target:
    """What `hook install codex` writes: the notify program and the lifecycle hooks."""
    # Imported here, when installing: this module is on the hooks' fast path (no dataclasses).
    from agent.hooks.targets import CodexNotify, JsonHooks, Target, matcher_group  # noqa: PLC0415

    group = matcher_group("codex")
    short = matcher_group("codex", timeout=3)  # SessionEnd and Interrupt: default 1 s, limit 3 s
    events = (
        ("SessionStart", group),
        ("UserPromptSubmit", group),
        ("PreToolUse", group),
        ("PermissionRequest", group),
        ("Stop", group),
        ("Interrupt", short),
        ("SessionEnd", short),
    )
    return Target(
        "codex",
        (CodexNotify(), JsonHooks(".codex/hooks.json", ".codex/hooks.json", events)),
        notes=(
            "Codex runs the hooks in hooks.json only after a person has reviewed and trusted "
            "them (in Codex's /hooks), or when Codex is started with "
            "--dangerously-bypass-hook-trust; project hooks also need a trusted project. "
            "`notify` (turn end) needs no trust.",
            "A `notify` program you had keeps running: ours reports, then runs yours with the "
            "same payload (uninstall puts yours back).",
        ),
    )
