"""Each agent's hook payloads, as the agents send them, and the exact status each one reports.

Payloads follow each agent's documented schema and what real runs showed
(../shared/agent-hooks.md, "Observed in real runs"), odd ones included: Qwen's Stop with
`stop_hook_active: true` and its empty-prompt continuation, Copilot's camelCase payloads without
an event name, Codex's notify beside its own hooks, OpenCode's quoted prompt.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from agent.hooks import AGENTS
from agent.hooks.events import status_of
from agent.models import AppState, AppStatus

W, IDLE = AppState.WORKING, AppState.IDLE
ANSWER = "The login test passes again; the mock now returns a token.\n\nDetails follow."


def reported(agent: str, payload: Mapping[str, object], event: str = "") -> AppStatus | None:
    return status_of(AGENTS[agent].event_of(payload, event))


def working(message: str) -> AppStatus:
    return AppStatus(W, message)


def idle(message: str) -> AppStatus:
    return AppStatus(IDLE, message)


ANSWER_LINE = idle("The login test passes again; the mock now returns a token.")
CLAUDE = {"session_id": "4f0c", "transcript_path": "/t.jsonl", "cwd": "/home/coder/app"}
ASK = {
    "tool_name": "AskUserQuestion",
    "tool_input": {"questions": [{"question": "Which database?", "header": "DB", "options": []}]},
}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"hook_event_name": "SessionStart", "source": "startup"}, idle("Waiting for input")),
        ({"hook_event_name": "SessionStart", "source": "fork"}, idle("Waiting for input")),
        ({"hook_event_name": "SessionStart", "source": "compact"}, None),
        (
            {
                "hook_event_name": "UserPromptSubmit",
                "permission_mode": "default",
                "prompt": "Fix the failing login test\n\nIt started after the OAuth change.",
            },
            working("Fix the failing login test"),
        ),
        (
            {"hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": {"command": "ls"}},
            working("Using Bash"),
        ),
        ({"hook_event_name": "PreToolUse", **ASK}, idle("Which database?")),
        ({"hook_event_name": "PreToolUse", "tool_name": "ExitPlanMode"}, idle("Waiting for input")),
        (
            {
                "hook_event_name": "PermissionRequest",
                "tool_name": "Bash",
                "tool_input": {"command": "rm -rf node_modules"},
                "permission_suggestions": [{"type": "addRules", "behavior": "allow"}],
            },
            idle("Waiting for permission to use Bash"),
        ),
        # AskUserQuestion's PermissionRequest: the same words as its PreToolUse (one wait).
        ({"hook_event_name": "PermissionRequest", **ASK}, idle("Which database?")),
        # The same wait announced again six seconds later: PermissionRequest said it already.
        (
            {
                "hook_event_name": "Notification",
                "notification_type": "permission_prompt",
                "message": "Claude needs your permission to use Bash",
            },
            None,
        ),
        (
            {
                "hook_event_name": "Notification",
                "notification_type": "idle_prompt",
                "message": "Claude is waiting for your input",
            },
            idle("Claude is waiting for your input"),
        ),
        (
            {"hook_event_name": "Notification", "notification_type": "elicitation_url_dialog"},
            idle("Waiting for input"),
        ),
        ({"hook_event_name": "Notification", "message": ""}, idle("Waiting for input")),
        ({"hook_event_name": "Notification", "notification_type": "auth_success"}, None),
        ({"hook_event_name": "Notification", "notification_type": "agent_needs_input"}, None),
        (
            {
                "hook_event_name": "Stop",
                "stop_hook_active": False,
                "last_assistant_message": ANSWER,
                "background_tasks": [],
                "session_crons": [],
            },
            ANSWER_LINE,
        ),
        # Every Stop is a turn end, whatever stop_hook_active says.
        ({"hook_event_name": "Stop", "stop_hook_active": True}, idle("Turn finished")),
        ({"hook_event_name": "Stop", "last_assistant_message": None}, idle("Turn finished")),
        (
            {
                "hook_event_name": "StopFailure",
                "error": "rate_limit",
                "error_details": "429 Too Many Requests",
                "last_assistant_message": "API Error: Rate limit reached",
            },
            idle("Turn stopped: rate_limit"),
        ),
        ({"hook_event_name": "StopFailure"}, idle("Turn stopped")),
        ({"hook_event_name": "SessionEnd", "reason": "other"}, idle("Session ended")),
        ({"hook_event_name": "PostToolUse", "tool_name": "Bash"}, None),
        ({"hook_event_name": "SubagentStop", "last_assistant_message": "sub"}, None),
        ({"hook_event_name": "PreCompact", "trigger": "auto"}, None),
        ({"hook_event_name": "UserPromptExpansion", "prompt": "/review"}, None),
        # Fields of the wrong type are absent, never a crash.
        ({"hook_event_name": "PreToolUse", "tool_name": 7}, working("Using a tool")),
        ({"hook_event_name": ["Stop"]}, None),
        (
            {"hook_event_name": "PreToolUse", "tool_name": "AskUserQuestion", "tool_input": 3},
            idle("Waiting for input"),
        ),
    ],
)
def test_claude_code(payload: dict[str, object], expected: AppStatus | None) -> None:
    assert reported("claude-code", {**CLAUDE, **payload}) == expected


def test_one_permission_wait_is_one_status() -> None:
    """PreToolUse(AskUserQuestion) and its PermissionRequest: identical, so the daemon sends one."""
    before = reported("claude-code", {"hook_event_name": "PreToolUse", **ASK})
    after = reported("claude-code", {"hook_event_name": "PermissionRequest", **ASK})
    assert before == after


NOTIFY = {
    "type": "agent-turn-complete",
    "thread-id": "b5f6c1c2-1111-2222-3333-444455556666",
    "turn-id": "12345",
    "cwd": "/home/coder/app",
    "client": "codex_exec",
    "input-messages": ["Rename `foo` to `bar` and update the callsites."],
}
CODEX = {
    "session_id": "019a2c3e",
    "transcript_path": None,
    "cwd": "/home/coder/app",
    "model": "gpt-5.5-codex",
    "permission_mode": "default",
}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        # notify: JSON as the last argument, `type`, kebab-case.
        ({**NOTIFY, "last-assistant-message": ANSWER}, ANSWER_LINE),
        ({**NOTIFY, "last-assistant-message": None}, idle("Turn finished")),
        ({"type": "approval-requested"}, None),
        # Lifecycle hooks: JSON on stdin, `hook_event_name`.
        (
            {**CODEX, "hook_event_name": "SessionStart", "source": "startup"},
            idle("Waiting for input"),
        ),
        ({**CODEX, "hook_event_name": "SessionStart", "source": "compact"}, None),
        (
            {
                **CODEX,
                "hook_event_name": "UserPromptSubmit",
                "turn_id": "7",
                "prompt": "Rename foo",
            },
            working("Rename foo"),
        ),
        (
            {
                **CODEX,
                "hook_event_name": "PreToolUse",
                "turn_id": "7",
                "tool_name": "Bash",
                "tool_use_id": "call_1",
                "tool_input": {"command": "cargo build"},
            },
            working("Using Bash"),
        ),
        (
            {**CODEX, "hook_event_name": "PermissionRequest", "tool_name": "apply_patch"},
            idle("Waiting for permission to use apply_patch"),
        ),
        (
            {
                **CODEX,
                "hook_event_name": "Stop",
                "turn_id": "7",
                "stop_hook_active": False,
                "last_assistant_message": "All 42 tests pass.",
            },
            idle("All 42 tests pass."),
        ),
        (
            {**CODEX, "hook_event_name": "Stop", "last_assistant_message": None},
            idle("Turn finished"),
        ),
        (
            {**CODEX, "hook_event_name": "Interrupt", "turn_id": "7"},
            idle("Turn stopped: interrupted"),
        ),
        (
            {**CODEX, "hook_event_name": "StopFailure", "error": "server_error"},
            idle("Turn stopped: server_error"),
        ),
        ({**CODEX, "hook_event_name": "SessionEnd", "reason": "other"}, idle("Session ended")),
        ({**CODEX, "hook_event_name": "PostToolUse", "tool_response": "ok"}, None),
        ({**CODEX, "hook_event_name": "SubagentStop", "last_assistant_message": "x"}, None),
    ],
)
def test_codex(payload: dict[str, object], expected: AppStatus | None) -> None:
    assert reported("codex", payload) == expected


def test_codex_notify_and_stop_hook_say_the_same_words() -> None:
    notify = reported("codex", {**NOTIFY, "last-assistant-message": ANSWER})
    stop = reported("codex", {**CODEX, "hook_event_name": "Stop", "last_assistant_message": ANSWER})
    assert notify == stop


GEMINI = {
    "session_id": "2b8e",
    "transcript_path": "/home/coder/.gemini/tmp/7c1f/chats/session.jsonl",
    "cwd": "/home/coder/app",
    "timestamp": "2026-08-20T10:12:03.512Z",
}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"hook_event_name": "SessionStart", "source": "startup"}, idle("Waiting for input")),
        (
            {"hook_event_name": "BeforeAgent", "prompt": "Add a --json flag"},
            working("Add a --json flag"),
        ),
        (
            {
                "hook_event_name": "BeforeTool",
                "tool_name": "run_shell_command",
                "tool_input": {"command": "npm test"},
            },
            working("Using run_shell_command"),
        ),
        (
            {
                "hook_event_name": "Notification",
                "notification_type": "ToolPermission",
                "message": "Tool Shell requires execution",
                "details": {
                    "type": "exec",
                    "title": "Shell",
                    "command": "npm test",
                    "rootCommand": "npm",
                },
            },
            idle("Waiting for permission to use Shell"),
        ),
        (
            {
                "hook_event_name": "Notification",
                "notification_type": "ToolPermission",
                "details": {"type": "mcp", "title": "Confirm MCP Tool", "toolName": "search"},
            },
            idle("Waiting for permission to use search"),
        ),
        (
            {
                "hook_event_name": "AfterAgent",
                "prompt": "Add a --json flag",
                "prompt_response": "Added `--json`; the tests cover both outputs.",
                "stop_hook_active": False,
            },
            idle("Added `--json`; the tests cover both outputs."),
        ),
        ({"hook_event_name": "AfterAgent", "prompt_response": ""}, idle("Turn finished")),
        ({"hook_event_name": "SessionEnd", "reason": "exit"}, idle("Session ended")),
        ({"hook_event_name": "AfterModel", "llm_response": {"text": "chunk"}}, None),
        ({"hook_event_name": "AfterTool", "tool_response": {"llmContent": "x"}}, None),
        ({"hook_event_name": "PreCompress", "trigger": "auto"}, None),
    ],
)
def test_gemini(payload: dict[str, object], expected: AppStatus | None) -> None:
    assert reported("gemini", {**GEMINI, **payload}) == expected


QWEN = {"session_id": "q1", "cwd": "/home/coder/app", "timestamp": "2026-08-20T10:12:03Z"}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        # `-p` mode, as observed: no submitted_prompt; then the tool continuation's empty prompt.
        (
            {"hook_event_name": "UserPromptSubmit", "prompt": "List the files"},
            working("List the files"),
        ),
        ({"hook_event_name": "UserPromptSubmit", "prompt": ""}, None),
        (
            {
                "hook_event_name": "UserPromptSubmit",
                "prompt": "<system>context</system>\nList the files",
                "submitted_prompt": "List the files",
            },
            working("List the files"),
        ),
        (
            {
                "hook_event_name": "PreToolUse",
                "tool_name": "run_shell_command",
                "permission_mode": "yolo",
            },
            working("Using run_shell_command"),
        ),
        (
            {"hook_event_name": "PermissionRequest", "tool_name": "write_file"},
            idle("Waiting for permission to use write_file"),
        ),
        ({"hook_event_name": "Notification", "notification_type": "permission_prompt"}, None),
        ({"hook_event_name": "Notification", "notification_type": "auth_success"}, None),
        # Qwen sends stop_hook_active: true on every ordinary turn end.
        (
            {
                "hook_event_name": "Stop",
                "stop_hook_active": True,
                "last_assistant_message": "Two files.",
            },
            idle("Two files."),
        ),
        (
            {"hook_event_name": "StopFailure", "error": "loop_detected"},
            idle("Turn stopped: loop_detected"),
        ),
        ({"hook_event_name": "SessionStart", "source": "compact"}, None),
        ({"hook_event_name": "MessageDisplay", "message": "..."}, None),
    ],
)
def test_qwen(payload: dict[str, object], expected: AppStatus | None) -> None:
    assert reported("qwen", {**QWEN, **payload}) == expected


CURSOR = {
    "conversation_id": "c1",
    "generation_id": "g1",
    "model": "gpt-5",
    "cursor_version": "2026.09.10",
    "workspace_roots": ["/home/coder/app"],
    "user_email": None,
    "transcript_path": None,
}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {"hook_event_name": "sessionStart", "session_id": "c1", "is_background_agent": False},
            idle("Waiting for input"),
        ),
        (
            {
                "hook_event_name": "beforeSubmitPrompt",
                "prompt": "Tidy the README",
                "attachments": [],
            },
            working("Tidy the README"),
        ),
        (
            {
                "hook_event_name": "preToolUse",
                "tool_name": "Shell",
                "tool_input": {"command": "ls"},
            },
            working("Using Shell"),
        ),
        ({"hook_event_name": "afterAgentResponse", "text": "Done."}, None),
        (
            {"hook_event_name": "stop", "status": "completed", "loop_count": 0},
            idle("Turn finished"),
        ),
        ({"hook_event_name": "stop", "status": "aborted"}, idle("Turn stopped: aborted")),
        ({"hook_event_name": "stop", "status": "error"}, idle("Turn stopped: error")),
        (
            {"hook_event_name": "sessionEnd", "reason": "user_close", "duration_ms": 5},
            idle("Session ended"),
        ),
        ({"hook_event_name": "beforeShellExecution", "command": "ls"}, None),
    ],
)
def test_cursor(payload: dict[str, object], expected: AppStatus | None) -> None:
    assert reported("cursor", {**CURSOR, **payload}) == expected


@pytest.mark.parametrize(
    ("payload", "event", "expected"),
    [
        # PascalCase config: VS Code's snake_case payload with its event name (as observed).
        (
            {"hook_event_name": "SessionStart", "source": "new", "initial_prompt": "Fix it"},
            "",
            idle("Waiting for input"),
        ),
        ({"hook_event_name": "UserPromptSubmit", "prompt": "Fix it"}, "", working("Fix it")),
        (
            {"hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": {"command": "ls"}},
            "",
            working("Using Bash"),
        ),
        (
            {
                "hook_event_name": "PreToolUse",
                "tool_name": "ask_user",
                "tool_input": {"question": "Ship it?"},
            },
            "",
            idle("Ship it?"),
        ),
        ({"hook_event_name": "Stop", "stop_reason": "end_turn"}, "", idle("Turn finished")),
        (
            {
                "hook_event_name": "ErrorOccurred",
                "error": {"message": "Model call failed: 500", "name": "APIError"},
                "error_context": "model_call",
                "recoverable": False,
            },
            "",
            idle("Turn stopped: Model call failed: 500"),
        ),
        (
            {
                "hook_event_name": "ErrorOccurred",
                "error": {"message": "Tool failed", "name": "ToolError"},
                "error_context": "tool_execution",
                "recoverable": True,
            },
            "",
            None,
        ),
        ({"hook_event_name": "SessionEnd", "reason": "complete"}, "", idle("Session ended")),
        # camelCase config: no event name in the payload; `--event` names it.
        (
            {"timestamp": 1755684723000, "cwd": "/app", "source": "startup"},
            "sessionStart",
            idle("Waiting for input"),
        ),
        (
            {"timestamp": 1755684723000, "cwd": "/app", "prompt": "Fix it"},
            "userPromptSubmitted",
            working("Fix it"),
        ),
        (
            {
                "timestamp": 1755684723000,
                "cwd": "/app",
                "toolName": "bash",
                "toolArgs": '{"command":"ls"}',
            },
            "preToolUse",
            working("Using bash"),
        ),
        (
            {"timestamp": 1755684723000, "cwd": "/app", "toolName": "ask_user"},
            "preToolUse",
            idle("Waiting for input"),
        ),
        ({"toolName": "bash"}, "permissionRequest", None),
        ({"timestamp": 1755684723000, "cwd": "/app"}, "agentStop", idle("Turn finished")),
        (
            {"error": {"message": "Out of credits", "name": "BillingError"}, "recoverable": False},
            "errorOccurred",
            idle("Turn stopped: Out of credits"),
        ),
        ({"error": {"message": "x"}}, "errorOccurred", None),
        ({"reason": "user_exit"}, "sessionEnd", idle("Session ended")),
        # notification carries its name in both shapes.
        (
            # The reference's shape: camelCase common fields, snake_case for the rest.
            {
                "sessionId": "c1",
                "timestamp": 1755684723000,
                "cwd": "/app",
                "hook_event_name": "Notification",
                "notification_type": "permission_prompt",
                "message": "Copilot needs your permission",
            },
            "",
            idle("Waiting for permission"),
        ),
        (
            {
                "hook_event_name": "Notification",
                "notification_type": "elicitation_dialog",
                "message": "Pick one",
            },
            "notification",
            idle("Pick one"),
        ),
        ({"hook_event_name": "Notification", "notification_type": "shell_completed"}, "", None),
        ({"hook_event_name": "Notification", "notification_type": "agent_idle"}, "", None),
        ({"hook_event_name": "PostToolUse", "tool_result": {"result_type": "success"}}, "", None),
        ({}, "", None),
    ],
)
def test_copilot(payload: dict[str, object], event: str, expected: AppStatus | None) -> None:
    assert reported("copilot", payload, event) == expected


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"event": "SessionStart", "session_id": "g1"}, idle("Waiting for input")),
        (
            {"event": "UserPromptSubmit", "session_id": "g1", "message": "Write a haiku"},
            working("Write a haiku"),
        ),
        (
            {
                "event": "PreToolUse",
                "session_id": "g1",
                "tool_name": "developer__shell",
                "tool_input": {"command": "ls"},
                "working_dir": "/app",
                "tool_call_id": "t1",
            },
            working("Using developer__shell"),
        ),
        (
            {"event": "Stop", "session_id": "g1", "last_assistant_message": "Here it is:\nHaiku"},
            idle("Here it is:"),
        ),
        ({"event": "Stop", "session_id": "g1"}, idle("Turn finished")),
        ({"event": "SessionEnd", "session_id": "g1"}, idle("Session ended")),
        ({"event": "PreToolUseResult", "session_id": "g1", "decision": "allow"}, None),
        ({"event": "AfterShellExecution", "session_id": "g1"}, None),
    ],
)
def test_goose(payload: dict[str, object], expected: AppStatus | None) -> None:
    assert reported("goose", payload) == expected


AUGGIE = {"conversation_id": "a1", "workspace_roots": ["/home/coder/app"]}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"hook_event_name": "SessionStart"}, idle("Waiting for input")),
        # The field Augment's own Warp plugin reads (plugin_marketplace/warp).
        ({"hook_event_name": "PromptSubmit", "user_prompt": "Add logging"}, working("Add logging")),
        (
            {
                "hook_event_name": "PreToolUse",
                "tool_name": "launch-process",
                "tool_input": {"command": "ls"},
            },
            working("Using launch-process"),
        ),
        (
            {
                "hook_event_name": "Stop",
                "agent_stop_cause": "end_turn",
                "conversation": {
                    "userPrompt": "Add logging",
                    "agentTextResponse": "Logging added to the three handlers.",
                    "agentCodeResponse": [],
                },
            },
            idle("Logging added to the three handlers."),
        ),
        ({"hook_event_name": "Stop", "agent_stop_cause": "end_turn"}, idle("Turn finished")),
        (
            {"hook_event_name": "Stop", "agent_stop_cause": "interrupted"},
            idle("Turn stopped: interrupted"),
        ),
        ({"hook_event_name": "SessionEnd"}, idle("Session ended")),
        ({"hook_event_name": "PostToolUse", "tool_output": "x"}, None),
        # Waiting for the user, as Augment's own Warp plugin reads it.
        (
            {
                "hook_event_name": "PreToolUse",
                "tool_name": "ask-user",
                "tool_input": {"question": "Which database?"},
            },
            idle("Which database?"),
        ),
        ({"hook_event_name": "PreToolUse", "tool_name": "ask-user"}, idle("Waiting for input")),
        (
            {
                "hook_event_name": "Notification",
                "notification_type": "idle_prompt",
                "notification_message": "Auggie is waiting for your input",
            },
            idle("Auggie is waiting for your input"),
        ),
        ({"hook_event_name": "Notification", "notification_type": "other"}, None),
    ],
)
def test_auggie(payload: dict[str, object], expected: AppStatus | None) -> None:
    assert reported("auggie", {**AUGGIE, **payload}) == expected


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        # 2.x agent config: camelCase.
        ({"hook_event_name": "agentSpawn", "cwd": "/app"}, idle("Waiting for input")),
        (
            {"hook_event_name": "userPromptSubmit", "cwd": "/app", "prompt": "Explain main.rs"},
            working("Explain main.rs"),
        ),
        (
            {
                "hook_event_name": "preToolUse",
                "cwd": "/app",
                "tool_name": "execute_bash",
                "tool_input": {},
            },
            working("Using execute_bash"),
        ),
        ({"hook_event_name": "stop", "cwd": "/app"}, idle("Turn finished")),
        ({"hook_event_name": "postToolUse", "tool_response": {}}, None),
        # 3.x hook files: PascalCase.
        ({"hook_event_name": "SessionStart"}, idle("Waiting for input")),
        ({"hook_event_name": "UserPromptSubmit", "prompt": "Explain"}, working("Explain")),
        ({"hook_event_name": "Stop"}, idle("Turn finished")),
        ({"hook_event_name": "PostFileSave"}, None),
    ],
)
def test_kiro(payload: dict[str, object], expected: AppStatus | None) -> None:
    assert reported("kiro", payload) == expected


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {"type": "session.created", "properties": {"info": {"id": "ses_1", "title": "New"}}},
            idle("Waiting for input"),
        ),
        # `opencode run "..."` passes the prompt wrapped in literal double quotes.
        (
            {
                "type": "chat.message",
                "properties": {"sessionID": "ses_1", "text": '"List the files"'},
            },
            working("List the files"),
        ),
        (
            {
                "type": "chat.message",
                "properties": {"sessionID": "ses_1", "text": 'Say "hi"\nthen stop'},
            },
            working('Say "hi"'),
        ),
        (
            {
                "type": "session.status",
                "properties": {"sessionID": "ses_1", "status": {"type": "busy"}},
            },
            None,
        ),
        (
            {"type": "tool.execute.before", "properties": {"sessionID": "ses_1", "tool": "bash"}},
            working("Using bash"),
        ),
        (
            {
                "type": "permission.asked",
                "properties": {
                    "id": "per_1",
                    "sessionID": "ses_1",
                    "permission": "bash",
                    "patterns": ["rm *"],
                },
            },
            idle("Waiting for permission to use bash"),
        ),
        (
            {
                "type": "permission.updated",
                "properties": {"id": "per_1", "sessionID": "ses_1", "type": "edit"},
            },
            idle("Waiting for permission to use edit"),
        ),
        (
            {
                "type": "session.status",
                "properties": {"sessionID": "ses_1", "status": {"type": "idle"}},
            },
            None,
        ),
        (
            {
                "type": "session.idle",
                "properties": {"sessionID": "ses_1"},
                "answer": "Three files.\nA, B, C",
            },
            idle("Three files."),
        ),
        ({"type": "session.idle", "properties": {"sessionID": "ses_1"}}, idle("Turn finished")),
        ({"type": "session.idle", "properties": {"sessionID": "ses_1"}, "afterError": True}, None),
        (
            {
                "type": "session.error",
                "properties": {
                    "sessionID": "ses_1",
                    "error": {
                        "name": "APIError",
                        "data": {"message": "Rate limited", "statusCode": 429},
                    },
                },
            },
            idle("Turn stopped: Rate limited"),
        ),
        (
            {
                "type": "session.error",
                "properties": {"error": {"name": "MessageAbortedError", "data": {}}},
            },
            idle("Turn stopped: aborted"),
        ),
        # A subagent's session reports nothing.
        (
            {
                "type": "tool.execute.before",
                "properties": {"sessionID": "ses_2", "tool": "read"},
                "parentID": "ses_1",
            },
            None,
        ),
        ({"type": "session.idle", "properties": {"sessionID": "ses_2"}, "parentID": "ses_1"}, None),
        ({"type": "message.updated", "properties": {}}, None),
        ({"type": "permission.replied", "properties": {"sessionID": "ses_1"}}, None),
        ({"type": "chat.message", "properties": "not an object"}, working("Working")),
    ],
)
def test_opencode(payload: dict[str, object], expected: AppStatus | None) -> None:
    assert reported("opencode", payload) == expected


def test_event_flag_wins_over_the_payloads_name() -> None:
    """`--event` is the configuration's word for the event the hook is registered for."""
    payload = {"hook_event_name": "Stop", "prompt": "Go"}
    assert reported("claude-code", payload, "UserPromptSubmit") == working("Go")
