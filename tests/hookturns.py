"""One turn of each agent's hooks, as the agent runs the command: arguments, stdin, and the
status each call reports. Shared by the end-to-end hook tests and the import-discipline test."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Call:
    """One hook run: `hook AGENT *args` with `stdin`; `reports` (state, message) or None."""

    args: tuple[str, ...]
    stdin: bytes
    reports: tuple[str, str] | None


def _json(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def _stdin(name_key: str, event: str, reports: tuple[str, str] | None, **fields: object) -> Call:
    return Call((), _json(**{name_key: event, **fields}), reports)


def _claude_style(event: str, reports: tuple[str, str] | None, **fields: object) -> Call:
    return _stdin("hook_event_name", event, reports, session_id="s1", cwd="/app", **fields)


ANSWER = "Done: two files changed.\nMore detail."
TURNS: dict[str, list[Call]] = {
    "claude-code": [
        _claude_style("SessionStart", ("idle", "Waiting for input"), source="startup"),
        _claude_style("UserPromptSubmit", ("working", "Fix the bug"), prompt="Fix the bug\nplease"),
        _claude_style("PreToolUse", ("working", "Using Bash"), tool_name="Bash", tool_input={}),
        _claude_style(
            "PermissionRequest", ("idle", "Waiting for permission to use Bash"), tool_name="Bash"
        ),
        _claude_style("Notification", None, notification_type="permission_prompt", message="x"),
        _claude_style("PostToolUse", None, tool_name="Bash", tool_response={}),
        _claude_style(
            "Stop",
            ("idle", "Done: two files changed."),
            stop_hook_active=False,
            last_assistant_message=ANSWER,
        ),
        _claude_style("SessionEnd", ("idle", "Session ended"), reason="other"),
    ],
    "codex": [
        _claude_style(
            "UserPromptSubmit", ("working", "Rename foo"), turn_id="1", prompt="Rename foo"
        ),
        _claude_style("PreToolUse", ("working", "Using Bash"), turn_id="1", tool_name="Bash"),
        _claude_style("Stop", ("idle", "Done: two files changed."), last_assistant_message=ANSWER),
        # notify: the JSON as the last argument.
        Call(
            (
                json.dumps(
                    {
                        "type": "agent-turn-complete",
                        "thread-id": "t1",
                        "turn-id": "1",
                        "input-messages": ["Rename foo"],
                        "last-assistant-message": ANSWER,
                    }
                ),
            ),
            b"",
            ("idle", "Done: two files changed."),
        ),
        _claude_style("Interrupt", ("idle", "Turn stopped: interrupted"), turn_id="2"),
    ],
    "gemini": [
        _claude_style("SessionStart", ("idle", "Waiting for input"), source="startup"),
        _claude_style("BeforeAgent", ("working", "List files"), prompt="List files"),
        _claude_style(
            "BeforeTool", ("working", "Using run_shell_command"), tool_name="run_shell_command"
        ),
        _claude_style("AfterTool", None, tool_response={"llmContent": "a b"}),
        _claude_style("AfterAgent", ("idle", "Done: two files changed."), prompt_response=ANSWER),
        _claude_style("SessionEnd", ("idle", "Session ended"), reason="exit"),
    ],
    "qwen": [
        _claude_style("Notification", None, notification_type="auth_success", message="ok"),
        _claude_style("UserPromptSubmit", ("working", "List files"), prompt="List files"),
        _claude_style(
            "PreToolUse", ("working", "Using run_shell_command"), tool_name="run_shell_command"
        ),
        _claude_style("UserPromptSubmit", None, prompt=""),
        _claude_style(
            "Stop",
            ("idle", "Done: two files changed."),
            stop_hook_active=True,
            last_assistant_message=ANSWER,
        ),
    ],
    "cursor": [
        _claude_style("sessionStart", ("idle", "Waiting for input"), is_background_agent=False),
        _claude_style("beforeSubmitPrompt", ("working", "Tidy up"), prompt="Tidy up"),
        _claude_style("preToolUse", ("working", "Using Shell"), tool_name="Shell"),
        _claude_style("afterAgentResponse", None, text=ANSWER),
        _claude_style("stop", ("idle", "Turn finished"), status="completed", loop_count=0),
        _claude_style("stop", ("idle", "Turn stopped: aborted"), status="aborted"),
    ],
    "copilot": [
        _claude_style("SessionStart", ("idle", "Waiting for input"), source="new"),
        _claude_style("UserPromptSubmit", ("working", "Fix it"), prompt="Fix it"),
        # camelCase configuration: no event name in the payload, `--event` names it.
        Call(
            ("--event", "preToolUse"),
            _json(toolName="bash", toolArgs="{}"),
            ("working", "Using bash"),
        ),
        Call(("--event", "permissionRequest"), _json(toolName="bash"), None),
        _claude_style("Stop", ("idle", "Turn finished"), stop_reason="end_turn"),
        _claude_style("SessionEnd", ("idle", "Session ended"), reason="complete"),
    ],
    "goose": [
        _stdin("event", "SessionStart", ("idle", "Waiting for input"), session_id="g"),
        _stdin("event", "UserPromptSubmit", ("working", "Write a haiku"), message="Write a haiku"),
        _stdin(
            "event",
            "PreToolUse",
            ("working", "Using developer__shell"),
            tool_name="developer__shell",
        ),
        _stdin("event", "PostToolUse", None, tool_name="developer__shell"),
        _stdin(
            "event", "Stop", ("idle", "Done: two files changed."), last_assistant_message=ANSWER
        ),
    ],
    "auggie": [
        _claude_style("SessionStart", ("idle", "Waiting for input")),
        _claude_style("PromptSubmit", ("working", "Tidy up"), user_prompt="Tidy up"),
        _claude_style(
            "PreToolUse", ("working", "Using launch-process"), tool_name="launch-process"
        ),
        _claude_style(
            "Stop",
            ("idle", "Done: two files changed."),
            agent_stop_cause="end_turn",
            conversation={"userPrompt": "x", "agentTextResponse": ANSWER},
        ),
        _claude_style("SessionEnd", ("idle", "Session ended")),
    ],
    "kiro": [
        _claude_style("agentSpawn", ("idle", "Waiting for input")),
        _claude_style("userPromptSubmit", ("working", "Explain main"), prompt="Explain main"),
        _claude_style("preToolUse", ("working", "Using execute_bash"), tool_name="execute_bash"),
        _claude_style("postToolUse", None, tool_name="execute_bash"),
        _claude_style("stop", ("idle", "Turn finished")),
    ],
    "opencode": [
        Call(
            (),
            _json(type="session.created", properties={"info": {"id": "s"}}),
            ("idle", "Waiting for input"),
        ),
        Call(
            (),
            _json(type="chat.message", properties={"sessionID": "s", "text": '"List files"'}),
            ("working", "List files"),
        ),
        Call(
            (),
            _json(type="session.status", properties={"sessionID": "s", "status": {"type": "busy"}}),
            None,
        ),
        Call(
            (),
            _json(type="tool.execute.before", properties={"sessionID": "s", "tool": "bash"}),
            ("working", "Using bash"),
        ),
        Call(
            (),
            _json(type="session.idle", properties={"sessionID": "s"}, answer=ANSWER),
            ("idle", "Done: two files changed."),
        ),
    ],
}


def first_reporting_call(agent: str) -> Call:
    """A call of `agent`'s turn that reports something."""
    return next(call for call in TURNS[agent] if call.reports is not None)
