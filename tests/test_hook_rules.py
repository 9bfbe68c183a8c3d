"""The rules every agent's hooks share (agent.hooks.events), and the registry's promises."""

from __future__ import annotations

import importlib

import pytest

from agent.hooks import AGENTS, ARGUMENT_OR_STDIN, STDIN
from agent.hooks.events import (
    AskingUser,
    HookEvent,
    Nothing,
    PermissionWait,
    PromptSubmitted,
    SessionEnded,
    SessionStarted,
    ToolStarting,
    TurnEnded,
    TurnStopped,
    status_of,
)
from agent.models import MAX_STATUS_MESSAGE_BYTES, AppState, AppStatus

W, IDLE = AppState.WORKING, AppState.IDLE
LONG = "é" * 200


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (PromptSubmitted("\n  Fix the parser\nthen tests"), AppStatus(W, "Fix the parser")),
        (PromptSubmitted(""), AppStatus(W, "Working")),
        (PromptSubmitted("  \n\t"), AppStatus(W, "Working")),
        (PromptSubmitted(LONG), AppStatus(W, "é" * 78 + "…")),
        (ToolStarting("Bash"), AppStatus(W, "Using Bash")),
        (ToolStarting(""), AppStatus(W, "Using a tool")),
        (ToolStarting("weird\ntool"), AppStatus(W, "Using weird")),
        (AskingUser("Which database?\nPostgres or SQLite"), AppStatus(IDLE, "Which database?")),
        (AskingUser(), AppStatus(IDLE, "Waiting for input")),
        (PermissionWait("Edit"), AppStatus(IDLE, "Waiting for permission to use Edit")),
        (PermissionWait(), AppStatus(IDLE, "Waiting for permission")),
        (TurnEnded("All 42 tests pass.\n\nDetails..."), AppStatus(IDLE, "All 42 tests pass.")),
        (TurnEnded(None), AppStatus(IDLE, "Turn finished")),
        (TurnEnded("\n \n"), AppStatus(IDLE, "Turn finished")),
        (TurnStopped("rate_limit"), AppStatus(IDLE, "Turn stopped: rate_limit")),
        (TurnStopped("interrupted"), AppStatus(IDLE, "Turn stopped: interrupted")),
        (TurnStopped(""), AppStatus(IDLE, "Turn stopped")),
        (SessionStarted(), AppStatus(IDLE, "Waiting for input")),
        (SessionEnded(), AppStatus(IDLE, "Session ended")),
        (Nothing(), None),
    ],
)
def test_each_event_reports_what_the_rules_say(
    event: HookEvent, expected: AppStatus | None
) -> None:
    assert status_of(event) == expected


def test_every_message_fits_coders_limit() -> None:
    for event in (
        PromptSubmitted(LONG),
        ToolStarting(LONG),
        AskingUser(LONG),
        PermissionWait(LONG),
        TurnEnded(LONG),
        TurnStopped(LONG),
    ):
        status = status_of(event)
        assert status is not None
        assert len(status.message.encode()) <= MAX_STATUS_MESSAGE_BYTES


def test_no_event_reports_complete_or_failed() -> None:
    """Only the agent itself (`report`) may say the task is done."""
    events = [
        PromptSubmitted("done"),
        ToolStarting("x"),
        AskingUser("x"),
        PermissionWait("x"),
        TurnEnded("Task complete"),
        TurnStopped("failed"),
        SessionStarted(),
        SessionEnded(),
    ]
    for event in events:
        status = status_of(event)
        assert status is not None
        assert status.state in (W, IDLE)


def test_events_are_values() -> None:
    assert TurnEnded("a") == TurnEnded("a")
    assert TurnEnded("a") != TurnEnded("b")
    assert TurnEnded(None) != TurnStopped("")
    assert SessionStarted() == SessionStarted()
    assert len({Nothing(), Nothing(), ToolStarting("a")}) == 2
    assert (
        repr(ToolStarting("Bash")) == "ToolStarting(words='Bash')"
    )  # as every value of models.Frozen
    with pytest.raises(AttributeError):
        ToolStarting("a").tool = "b"


def test_every_agent_in_the_registry_has_its_mapping_module() -> None:
    for agent in AGENTS.values():
        module = importlib.import_module(f"agent.hooks.{agent.module}")
        assert callable(module.event_of), agent.name
        assert agent.reads in (STDIN, ARGUMENT_OR_STDIN)
        assert agent.stdout in ("", "{}")
        # Unknown events report nothing for every agent.
        assert agent.event_of({"hook_event_name": "SomethingNew", "type": "x.y"}) == Nothing()
        assert agent.event_of({}) == Nothing()
