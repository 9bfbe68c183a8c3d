"""The command line's help: what a newcomer reads first must name what the command needs."""

from __future__ import annotations

import subprocess
import sys

import pytest


def help_text(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "agent", *args, "--help"], capture_output=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return " ".join(result.stdout.decode().split())  # argparse wraps at the terminal width


def test_run_help_describes_the_daemon_and_names_what_it_needs() -> None:
    text = help_text("run")
    assert "report the task's status to Coder" in text
    for variable in ("CODER_AGENT_URL", "CODER_AGENT_TOKEN", "CODER_MCP_APP_STATUS_SLUG"):
        assert variable in text
    assert "--mode {events,poll,hooks}" in text
    assert "--log-level {debug,info,warning,error}" in text
    assert "VALUE" not in text
    assert "[CODER_TASK_AGENT_SHUTDOWN_BUDGET]" in text  # each flag names its variable


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ("stop-hook", "ARG_PID_FILE_PATH"),
        ("hook", "stdin"),
        ("report", "Report the task's state to Coder"),
        ("report", "CODER_MCP_APP_STATUS_SLUG"),
        ("report", "CODER_AGENT_URL"),
        ("report", "CODER_TASK_AGENT_SOCKET"),
        ("snapshot", "log snapshot"),
        ("snapshot", "CODER_TASK_ID"),
        ("snapshot", "CODER_AGENT_TOKEN"),
        ("snapshot", "CODER_MCP_AI_AGENTAPI_URL"),
    ],
)
def test_new_commands_say_what_they_read(command: str, words: str) -> None:
    assert words in help_text(command)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["hook", "claude"], b"unknown agent 'claude'"),
        (["hook", "codex", "--bogus"], b"usage:"),
        (["hook"], b"usage:"),
        (["hook", "--event"], b"usage:"),
    ],
)
def test_a_mistyped_hook_never_exits_2(args: list[str], words: bytes) -> None:
    """Most agents take a hook's exit 2 as "block": the agent must go on."""
    result = subprocess.run(
        [sys.executable, "-m", "agent", *args],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 0
    assert words in result.stderr
    assert result.stdout == b""
