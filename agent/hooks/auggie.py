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
