"""The hooks' fast path parses argv like argparse (its settings: tests/test_config.py)."""

from __future__ import annotations

import argparse

import pytest

from agent.cli import COMMANDS, _fast_command, _parse, _parser


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "idle"],
        ["report", "complete", "Done", "--uri", "https://x/1"],
        ["report", "--uri=https://x/1", "complete", "Done"],
        ["report", "failed", "", "--socket", "/tmp/s.sock", "--log-level", "debug"],
        ["snapshot"],
        ["snapshot", "--budget", "3", "--log-format=json", "--agentapi-url", "http://a:1"],
        ["hook", "claude-code"],
        ["hook", "copilot", "--event", "userPromptSubmitted", "--socket", "/tmp/s.sock"],
        ["hook", "codex", '{"type": "agent-turn-complete"}', "--then-run", '["notify-send"]'],
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
        assert options.get("--uri") == args.uri
    if command == "hook":
        assert (positional[0], positional[1:]) == (args.agent, args.payload)
        assert (options.get("--event"), options.get("--then-run")) == (args.event, args.then_run)
    for flag, value in options.items():
        if flag not in ("--uri", "--event", "--then-run"):
            assert getattr(args, flag[2:].replace("-", "_")) == value


@pytest.mark.parametrize("command", [name for name, spec in COMMANDS.items() if spec.get("fast")])
def test_the_fast_dispatch_takes_every_option_argparse_takes(command: str) -> None:
    # Both come from COMMANDS: an option added there is taken by both, with its value.
    subparsers = next(
        action for action in _parser()._actions if isinstance(action, argparse._SubParsersAction)
    )
    sub = subparsers.choices[command]
    positionals = [a for a in sub._actions if not a.option_strings]
    required = [a for a in positionals if a.nargs is None]
    with_values = [
        flag
        for action in sub._actions
        if action.option_strings and action.nargs != 0
        for flag in action.option_strings
    ]
    plain = [command, *("claude-code" if a.dest == "agent" else "x" for a in required)]
    for flag in with_values:
        assert _fast_command([*plain, flag, "v"]) is not None, flag
    assert _fast_command([*plain, "--not-an-option", "v"]) is None
    optional = ["x" for a in positionals if a.nargs is not None]
    assert _fast_command([*plain, *optional]) is not None
    assert _fast_command([*plain, *optional, "one more"]) is None


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


@pytest.mark.parametrize(
    ("argv", "parsed"),
    [
        (["report", "idle", "--ur", "https://x"], ("report", ["idle", ""], {"--uri": "https://x"})),
        (["snapshot", "--budget", "3"], ("snapshot", [], {"--budget": "3"})),
        (["stop-hook", "--strict"], ("stop-hook", [], {"--strict": "True"})),
        (
            ["hook", "codex", "--then-run", "[]", "{}"],
            ("hook", ["codex", "{}"], {"--then-run": "[]"}),
        ),
        (["run", "--mode=poll"], ("run", [], {"--mode": "poll"})),
    ],
)
def test_argparse_gives_the_command_as_the_fast_dispatch_does(
    argv: list[str], parsed: tuple[str, list[str], dict[str, str]]
) -> None:
    # One dispatch takes both readings: argparse's must have the fast dispatch's shape.
    assert _parse(argv) == parsed
