"""`coder-task-agent-dev`: the development tools' own command line."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from standins.cli import COMMANDS, main


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("usage: coder-task-agent-dev COMMAND")
    for name in ("agentapi", "coder", "demo"):
        assert f"\n  {name} " in shown


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage:" in capsys.readouterr().err


def test_an_unknown_command_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dev-server"]) == 2
    assert "unknown command 'dev-server'" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_a_main(name: str) -> None:
    assert callable(importlib.import_module(COMMANDS[name][0]).main)


def test_python_dash_m_passes_options_through() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "standins", "coder", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: coder-task-agent-dev coder")
