"""The hooks' fast path parses argv like argparse (its settings: tests/test_config.py)."""

from __future__ import annotations

import pytest

from agent.cli import _fast_command, _parser


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
