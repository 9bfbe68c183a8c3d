"""Qwen Code's command hooks, as events of agent.hooks.events (which holds the rules).

Qwen Code's hooks follow Claude Code's contract (same event names, same fields, JSON on
stdin), so every event maps as agent.hooks.claude_code says, except the prompt:

- `UserPromptSubmit` fires again, with an empty `prompt`, when the model continues after a
  tool's result: that is no new prompt, and reports nothing. `submitted_prompt` (only on a real
  interactive submission) is the user's text; else `prompt`.
- `Stop` carries `stop_hook_active: true` on every ordinary turn end (QwenLM/qwen-code#11610):
  it is a turn end like any other (the rule holds for every agent).
"""

from __future__ import annotations

from agent.hooks.claude_code import EVENTS
from agent.hooks.events import Nothing, PromptSubmitted
from agent.hooks.payload import mapping, text

# A plain constant that type checkers treat as true: `typing` is not imported on this path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from agent.hooks.events import HookEvent
    from agent.hooks.payload import Payload
    from agent.hooks.targets import Target


def submitted(payload: Payload) -> HookEvent:
    """The user's prompt; nothing for the empty-prompt continuation after a tool's result."""
    prompt = text(payload, "submitted_prompt").strip() or text(payload, "prompt")
    return PromptSubmitted(prompt) if prompt.strip() else Nothing()


event_of = mapping({**EVENTS, "UserPromptSubmit": submitted})


def install_target() -> Target:
    """What `hook install qwen` writes: Gemini CLI's shape of settings, Claude Code's events."""
    # Imported here, when installing: this module is on the hooks' fast path (no dataclasses).
    from agent.hooks.targets import Target, gemini_style  # noqa: PLC0415

    events: tuple[str, ...] = ("SessionStart", "UserPromptSubmit", "PreToolUse")
    events += ("PermissionRequest", "Notification", "Stop", "StopFailure", "SessionEnd")
    return Target(
        "qwen",
        (gemini_style("qwen", ".qwen/settings.json", events, "PreToolUse"),),
        notes=("Qwen Code runs project hooks only in a trusted folder.",),
    )
