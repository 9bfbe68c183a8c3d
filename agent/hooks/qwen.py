"""Qwen Code's command hooks: Claude Code's contract, except the prompt (docs/hooks.md#qwen-code).

Its `Stop` carries `stop_hook_active: true` on every ordinary turn end (QwenLM/qwen-code#11610):
a turn end like any other.
"""

from __future__ import annotations

from agent.hooks.claude_code import EVENTS, HOOKED
from agent.hooks.events import Nothing, PromptSubmitted
from agent.hooks.payload import mapping, text

TYPE_CHECKING = False  # true for type checkers: `typing` is not imported on the hooks' path
if TYPE_CHECKING:
    from agent.hooks.events import HookEvent
    from agent.hooks.payload import Payload
    from agent.hooks.targets import Target


def submitted(payload: Payload) -> HookEvent:
    """`submitted_prompt` (a real submission), else `prompt`; nothing for the empty prompt of
    the model's continuation after a tool's result."""
    prompt = text(payload, "submitted_prompt").strip() or text(payload, "prompt")
    return PromptSubmitted(prompt) if prompt.strip() else Nothing()


event_of = mapping({**EVENTS, "UserPromptSubmit": submitted})


def install_target() -> Target:
    """Gemini CLI's shape of settings, Claude Code's events."""
    from agent.hooks.targets import Target, gemini_style  # noqa: PLC0415

    return Target(
        "qwen",
        (gemini_style("qwen", ".qwen/settings.json", HOOKED, "PreToolUse"),),
        notes=("Qwen Code runs project hooks only in a trusted folder.",),
    )
