"""The hooks' fast path parses like argparse and reads settings like agent.settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.cli import _fast_command, _parser
from agent.errors import ConfigError
from agent.hookconfig import load_hook_settings
from agent.settings import load_settings


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "idle"],
        ["report", "complete", "Done", "--uri", "https://x/1"],
        ["report", "--uri=https://x/1", "complete", "Done"],
        ["report", "failed", "", "--socket", "/tmp/s.sock", "--log-level", "debug"],
        ["snapshot"],
        ["snapshot", "--budget", "3", "--log-format=json", "--agentapi-url", "http://a:1"],
    ],
)
def test_plain_forms_parse_as_argparse_parses_them(argv: list[str]) -> None:
    fast = _fast_command(argv)
    assert fast is not None
    command, positional, options = fast
    args = _parser().parse_args(argv)
    assert command == args.command
    if command == "report":
        assert positional[0] == args.state
        assert (positional[1] if len(positional) > 1 else "") == args.summary
        assert options.get("--uri", "") == args.uri
    for flag, value in options.items():
        if flag != "--uri":
            assert getattr(args, "setting_" + flag[2:].replace("-", "_")) == value


@pytest.mark.parametrize(
    "argv",
    [
        ["report"],
        ["report", "idle", "a", "b"],
        ["report", "idle", "-5 tests fail"],
        ["report", "idle", "--ur", "https://x"],  # argparse's abbreviations
        ["report", "idle", "--uri"],
        ["report", "idle", "--uri", "a", "--uri", "b"],
        ["report", "idle", "--budget", "3"],
        ["report", "-h"],
        ["snapshot", "extra"],
        ["snapshot", "--socket", "/x"],
        ["run"],
        [],
    ],
)
def test_anything_else_goes_to_argparse(argv: list[str]) -> None:
    assert _fast_command(argv) is None


def test_hook_settings_agree_with_settings(tmp_path: Path) -> None:
    env = {
        "XDG_RUNTIME_DIR": str(tmp_path),
        "CODER_TASK_AGENT_LOG_LEVEL": "WARNING",
        "CODER_TASK_AGENT_LOG_FORMAT": " json ",
        "CODER_TASK_AGENT_SHUTDOWN_BUDGET": "2.5",
        "CODER_AGENT_TOKEN": "tok-123",
    }
    hook, full = load_hook_settings(env), load_settings(env)
    assert hook.socket_path == os.fspath(full.socket_path or "")
    assert (hook.log_level, hook.log_format) == (full.log_level, full.log_format)
    assert hook.shutdown_budget == full.shutdown_budget
    assert hook.secrets == ("tok-123",)
    flags = {"CODER_TASK_AGENT_SOCKET": ("--socket", str(tmp_path / "s.sock"))}
    assert load_hook_settings(env, flags).socket_path == str(tmp_path / "s.sock")


def test_the_token_file_is_masked_too(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-file-456\n")
    hook = load_hook_settings({"CODER_AGENT_TOKEN_FILE": str(token_file)})
    assert hook.secrets == ("from-file-456",)


@pytest.mark.parametrize(
    ("env", "flags", "named"),
    [
        ({"CODER_TASK_AGENT_LOG_LEVEL": "loud"}, {}, "CODER_TASK_AGENT_LOG_LEVEL"),
        ({"CODER_TASK_AGENT_SHUTDOWN_BUDGET": "-1"}, {}, "CODER_TASK_AGENT_SHUTDOWN_BUDGET"),
        (
            {},
            {"CODER_TASK_AGENT_SHUTDOWN_BUDGET": ("--budget", "soon")},
            "--budget (CODER_TASK_AGENT_SHUTDOWN_BUDGET)",
        ),
        ({}, {"CODER_TASK_AGENT_SOCKET": ("--socket", " ")}, "--socket"),
    ],
)
def test_bad_values_name_the_variable_like_settings(
    env: dict[str, str], flags: dict[str, tuple[str, str]], named: str
) -> None:
    with pytest.raises(ConfigError) as hook_error:
        load_hook_settings(env, flags)
    with pytest.raises(ConfigError) as full_error:
        load_settings(env, flags)
    assert str(hook_error.value) == str(full_error.value)
    assert str(hook_error.value).startswith(named)
