"""The hook mapping as a table: every event and field shape docs/hooks.md documents."""

from __future__ import annotations

import pytest

from agent.hooks.mapping import claude_code, codex
from agent.models import AppState, AppStatus

W, IDLE = AppState.WORKING, AppState.IDLE
LONG = "é" * 200


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            {"hook_event_name": "UserPromptSubmit", "prompt": "\n  Fix the parser\nthen tests"},
            AppStatus(W, "Fix the parser"),
        ),
        ({"hook_event_name": "UserPromptSubmit", "prompt": ""}, AppStatus(W, "Working")),
        ({"hook_event_name": "UserPromptSubmit", "prompt": LONG}, AppStatus(W, "é" * 78 + "…")),
        (
            {"hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": {"command": "ls"}},
            AppStatus(W, "Using Bash"),
        ),
        ({"hook_event_name": "PreToolUse"}, AppStatus(W, "Using a tool")),
        (
            {"hook_event_name": "PermissionRequest", "tool_name": "Edit"},
            AppStatus(IDLE, "Waiting for permission to use Edit"),
        ),
        (
            {
                "hook_event_name": "Notification",
                "notification_type": "permission_prompt",
                "message": "Claude needs your permission to use Bash",
            },
            AppStatus(IDLE, "Claude needs your permission to use Bash"),
        ),
        (
            {
                "hook_event_name": "Notification",
                "notification_type": "idle_prompt",
                "message": "Claude is waiting for your input",
            },
            AppStatus(IDLE, "Claude is waiting for your input"),
        ),
        ({"hook_event_name": "Notification", "message": ""}, AppStatus(IDLE, "Waiting for input")),
        (
            {
                "hook_event_name": "Notification",
                "notification_type": "auth_success",
                "message": "Logged in",
            },
            None,
        ),
        (
            {
                "hook_event_name": "Stop",
                "stop_hook_active": False,
                "last_assistant_message": "All done",
            },
            AppStatus(IDLE, "Turn finished"),
        ),
        ({"hook_event_name": "Stop", "stop_hook_active": True}, None),
        (
            {"hook_event_name": "StopFailure", "error": "rate_limit"},
            AppStatus(IDLE, "Turn stopped: rate_limit"),
        ),
        ({"hook_event_name": "StopFailure"}, AppStatus(IDLE, "Turn stopped: an error")),
        (
            {"hook_event_name": "SessionStart", "source": "startup"},
            AppStatus(IDLE, "Waiting for input"),
        ),
        ({"hook_event_name": "SessionStart", "source": "compact"}, None),
        (
            {"hook_event_name": "SessionEnd", "reason": "prompt_input_exit"},
            AppStatus(IDLE, "Session ended"),
        ),
        ({"hook_event_name": "PostToolUse", "tool_name": "Bash"}, None),
        ({"hook_event_name": "SubagentStop"}, None),
        ({"hook_event_name": "SomethingNew"}, None),
        ({}, None),
        # Fields of the wrong type are absent, never a crash.
        ({"hook_event_name": "PreToolUse", "tool_name": 7}, AppStatus(W, "Using a tool")),
        ({"hook_event_name": ["Stop"]}, None),
    ],
)
def test_claude_code(event: dict[str, object], expected: AppStatus | None) -> None:
    assert claude_code(event) == expected


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            {
                "type": "agent-turn-complete",
                "thread-id": "t",
                "turn-id": "1",
                "input-messages": ["Fix it"],
                "last-assistant-message": "Fixed",
            },
            AppStatus(IDLE, "Turn finished"),
        ),
        (
            {"type": "agent-turn-complete", "last-assistant-message": None},
            AppStatus(IDLE, "Turn finished"),
        ),
        ({"type": "approval-requested"}, None),
        ({}, None),
    ],
)
def test_codex(event: dict[str, object], expected: AppStatus | None) -> None:
    assert codex(event) == expected


def test_no_event_reports_complete_or_failed() -> None:
    """Only the agent itself (`report`) may say the task is done."""
    names = [
        "UserPromptSubmit",
        "PreToolUse",
        "PermissionRequest",
        "Notification",
        "Stop",
        "StopFailure",
        "SessionStart",
        "SessionEnd",
    ]
    for name in names:
        status = claude_code({"hook_event_name": name, "error": "x", "message": "done"})
        assert status is None or status.state in (W, IDLE)
