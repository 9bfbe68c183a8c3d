"""Command line: `python -m agent COMMAND` (or the `coder-task-agent` script).

Commands import only what their own path needs. `report` and `snapshot` run from agent hooks
at every step and every stop: handed to a running daemon they import the standard library only
(`agent.reportsocket.client`); so does `snapshot` without a daemon (`agent.stop.oneshot`) unless a
proxy is configured (httpx then carries the upload); the direct `report` path imports httpx and
the rest only then.
`tests/test_import_discipline.py` holds every entry path to this.
The local stand-ins and the demo are not part of the product: they are `coder-task-agent-dev`
(devkit/ in the repository).

Exit codes: `agent.models.ExitCode` (docs/operations.md's table is that enum).
"""

from __future__ import annotations

import sys

# A plain constant that type checkers treat as true: `typing` is not imported on this path.
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import Any

    from agent.config import Settings

# Flags that stand for a setting: flag -> variable. Errors name both.
_SETTING_FLAGS = {
    "--agentapi-url": "CODER_MCP_AI_AGENTAPI_URL",
    "--budget": "CODER_TASK_AGENT_SHUTDOWN_BUDGET",
    "--mode": "CODER_TASK_AGENT_MODE",
    "--poll-interval": "CODER_TASK_AGENT_POLL_INTERVAL",
    "--socket": "CODER_TASK_AGENT_SOCKET",
    "--log-level": "CODER_TASK_AGENT_LOG_LEVEL",
    "--log-format": "CODER_TASK_AGENT_LOG_FORMAT",
}
_FLAG_HELP = {
    "--agentapi-url": "AgentAPI base URL (default http://localhost:3284); none: no AgentAPI",
    "--budget": "seconds the whole stop path may take (default 5)",
    "--mode": "events (follow /events), poll (GET /status every interval) or hooks (no "
    "AgentAPI: status from the agent's hooks only)",
    "--poll-interval": "seconds between polls in poll mode (default 1)",
    "--socket": "path of the report socket",
    "--log-level": "debug, info, warning or error",
    "--log-format": "auto, json or console",
}


# What each flag takes, as --help shows it (the values are checked with the variable's rules).
_FLAG_METAVAR = {
    "--agentapi-url": "URL",
    "--budget": "SECONDS",
    "--mode": "{events,poll,hooks}",
    "--poll-interval": "SECONDS",
    "--socket": "PATH",
    "--log-level": "{debug,info,warning,error}",
    "--log-format": "{auto,json,console}",
}


def _add_setting_flags(parser: argparse.ArgumentParser, *flags: str) -> None:
    for flag in flags:
        help_text = f"{_FLAG_HELP[flag]} [{_SETTING_FLAGS[flag]}]"
        parser.add_argument(flag, dest=_dest(flag), metavar=_FLAG_METAVAR[flag], help=help_text)


def _dest(flag: str) -> str:
    return "setting_" + flag.removeprefix("--").replace("-", "_")


# The one specification of the command line. argparse is built from it (for --help and every
# form the fast dispatch does not take), and the hooks' fast dispatch reads the same entries, so
# an argument or an option is added in one place. Per command: its help and description; its
# positionals as (name, count, help), count "1", "?" (default "") or "*"; its own options as
# (flag, metavar, help), metavar None for a switch; the setting flags it takes; and whether the
# fast dispatch takes its plain forms (the commands agents run at every step).
_SNAPSHOT_FLAGS = ("--agentapi-url", "--budget", "--log-level", "--log-format")
_HANDED_OVER_FLAGS = ("--socket", "--log-level", "--log-format")
COMMANDS: dict[str, dict[str, object]] = {
    "run": {
        "help": "the daemon: watch AgentAPI, report, snapshot on stop",
        "description": (
            "Watch AgentAPI (and take the agent's hook reports) and report the task's status to "
            "Coder when it changes; on SIGTERM, save the conversation as the task's log "
            "snapshot. Required: CODER_AGENT_URL and the agent token (CODER_AGENT_TOKEN, "
            "CODER_AGENT_TOKEN_FILE or the systemd credential coder-agent-token). Wanted: "
            "CODER_MCP_APP_STATUS_SLUG (without it no status is reported) and CODER_TASK_ID "
            "(without it no snapshot is saved). Every setting is an environment variable "
            "(docs/configuration.md); a flag overrides the variable named after its help."
        ),
        "settings": tuple(_SETTING_FLAGS),
    },
    "snapshot": {
        "help": "one-shot: upload the conversation and exit",
        "description": (
            "Save the conversation as the task's log snapshot now (a stop script's command). A "
            "running daemon saves it from its live copy; without one, the last ten messages are "
            "read from AgentAPI's /messages and uploaded, all within the budget. Needs "
            "CODER_TASK_ID (the task), CODER_AGENT_URL and the agent token (CODER_AGENT_TOKEN, "
            "CODER_AGENT_TOKEN_FILE or the systemd credential coder-agent-token); reads AgentAPI "
            "at CODER_MCP_AI_AGENTAPI_URL (default http://localhost:3284). Exit codes: "
            "docs/operations.md."
        ),
        "settings": _SNAPSHOT_FLAGS,
        "fast": True,
    },
    "report": {
        "help": "report the task's state (from an agent hook)",
        "description": (
            "Report the task's state to Coder: working, idle, complete or failed, with a short "
            "summary and an optional link. Handed to the running daemon when one listens on "
            "the report socket (CODER_TASK_AGENT_SOCKET), which applies the reporting rules "
            "(docs/rules.md); otherwise sent straight to Coder, which needs "
            "CODER_MCP_APP_STATUS_SLUG, and CODER_AGENT_URL with the agent token "
            "(CODER_AGENT_TOKEN or CODER_AGENT_TOKEN_FILE) unless the Coder agent's socket "
            "takes it. Exit codes: docs/operations.md."
        ),
        "positionals": (
            ("state", "1", "working, idle, complete or failed"),
            ("summary", "?", "a short summary for the user"),
        ),
        "options": (("--uri", "URI", "a link for the user (a PR, a preview...)"),),
        "settings": _HANDED_OVER_FLAGS,
        "fast": True,
    },
    "stop-hook": {
        "help": "drop-in for the agentapi module's stop script: snapshot, then stop AgentAPI",
        "description": (
            "Replaces agentapi-shutdown.sh of Coder's agentapi module. Reads the conversation "
            "first, asks AgentAPI to save its state (SIGUSR1, when ARG_ENABLE_STATE_PERSISTENCE "
            "is true), uploads the snapshot, then stops AgentAPI (SIGTERM, SIGKILL after "
            "CODER_TASK_AGENT_AGENTAPI_STOP_TIMEOUT). Reads the module's ARG_TASK_ID, "
            "ARG_TASK_LOG_SNAPSHOT, ARG_AGENTAPI_PORT, ARG_ENABLE_STATE_PERSISTENCE, "
            "ARG_PID_FILE_PATH and ARG_MODULE_DIR_NAME; CODER_TASK_ID and "
            "CODER_MCP_AI_AGENTAPI_URL win when set. Needs CODER_AGENT_URL and the agent token "
            "for the snapshot. Exits 0 whatever happened (a failing stop script marks the "
            "workspace's shutdown as errored); the outcome is logged."
        ),
        "options": (("--strict", None, "exit with the outcome's code (docs/operations.md)"),),
        "settings": _SNAPSHOT_FLAGS,
    },
    "hook": {
        "help": "report the task's status from an agent's own hook",
        "description": (
            "Map an agent's hook event to a status report and hand it to the daemon (or "
            "straight to Coder when none runs). The event arrives as JSON on stdin; Codex's "
            "`notify` program gets it as the last argument. Agents: {agents}. Always exits 0: "
            "a hook never fails the agent; problems are logged on stderr. Which event reports "
            "what: docs/hooks.md. `hook install AGENT` writes an agent's hook configuration "
            "(docs/hook-install.md)."
        ),
        # Any AGENT on the fast path: an unknown one is logged by the command (one line, exit
        # 0), not refused by argparse.
        "positionals": (
            ("agent", "1", "which agent calls"),
            ("payload", "*", "codex: the notify JSON (Codex appends it)"),
        ),
        "options": (
            (
                "--event",
                "NAME",
                "the event's name, for payloads that do not carry it (Copilot's camelCase hooks)",
            ),
            (
                "--then-run",
                "JSON",
                "a JSON array: a program to run after reporting, with the payload appended "
                "(the user's own Codex notify program)",
            ),
        ),
        "settings": _HANDED_OVER_FLAGS,
        "fast": True,
    },
}


def _parser() -> argparse.ArgumentParser:
    """argparse, built from COMMANDS (only off the fast path: it costs more than the rest)."""
    import argparse  # noqa: PLC0415 - not on the hooks' fast path

    from agent import __version__  # noqa: PLC0415
    from agent.hooks import AGENTS  # noqa: PLC0415 - the registry of agents

    parser = argparse.ArgumentParser(
        prog="coder-task-agent",
        description="Report an AI agent's task status to Coder and save its conversation at stop.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    agents = ", ".join(f"{name} ({agent.label})" for name, agent in AGENTS.items())
    for name, spec in COMMANDS.items():
        description = str(spec["description"]).replace("{agents}", agents)
        sub = commands.add_parser(name, help=str(spec["help"]), description=description)
        for argument, count, help_text in _entries(spec, "positionals"):
            if argument == "agent":
                sub.add_argument(argument, choices=tuple(AGENTS), help=help_text)
            elif count == "1":
                sub.add_argument(argument, help=help_text)
            else:
                default = "" if count == "?" else None
                sub.add_argument(argument, nargs=count, default=default, help=help_text)
        for flag, metavar, help_text in _entries(spec, "options"):
            if metavar is None:
                sub.add_argument(flag, action="store_true", help=help_text)
            else:
                sub.add_argument(flag, metavar=metavar, help=help_text)
        _add_setting_flags(sub, *_entries(spec, "settings"))
    return parser


def _entries(spec: dict[str, object], key: str) -> tuple[Any, ...]:
    value = spec.get(key, ())
    return value if isinstance(value, tuple) else ()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code. Nothing escapes it (agent.boundary)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["run"]:
        # Before anything slow: a SIGTERM from now on takes the daemon's stop path.
        from agent.stop import early as earlystop  # noqa: PLC0415

        earlystop.install()
    from agent.boundary import contained  # noqa: PLC0415

    command = args_list[0] if args_list else ""
    if args_list[:1] == ["hook"] and args_list[1:2] in (["install"], ["uninstall"]):
        # The hooks' installer, not a hook: its own parser and exit codes (0, 2 on a usage
        # error or a file it refuses), unlike a hook's "always 0" (agent.hooks.install).
        from agent.hooks.install import main as install_hooks  # noqa: PLC0415

        installer = args_list[1:]
        return contained(f"hook {installer[0]}", lambda: install_hooks(installer), unexpected=2)
    return contained(command, lambda: _main(args_list), unexpected=unexpected_exit(args_list))


def unexpected_exit(args_list: Sequence[str]) -> int:
    """What a command exits with when an unexpected fault ends it (docs/operations.md).

    A hook never fails the agent: 0. `stop-hook` exits 0 unless `--strict`. Every other command
    did not deliver what it was for: UNDELIVERED (5), which a supervisor restarts on.
    """
    from agent.models import ExitCode  # noqa: PLC0415

    command = args_list[0] if args_list else ""
    if command == "hook" or (command == "stop-hook" and "--strict" not in args_list):
        return int(ExitCode.OK)
    return int(ExitCode.UNDELIVERED)


def _main(args_list: list[str]) -> int:
    from agent.models import ExitCode  # noqa: PLC0415

    fast = _fast_command(args_list)
    if fast is not None:
        return _fast(*fast)
    parser = _parser()
    try:
        args, extra = parser.parse_known_args(args_list)
        if args.command == "hook" and not any(arg.startswith("-") for arg in extra):
            # argparse gives a `*` positional nothing once an option came between: Codex's
            # `hook codex --then-run JSON PAYLOAD` leaves PAYLOAD over. It is the payload.
            args.payload = [*args.payload, *extra]
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:
        # Claude Code reads a hook's exit 2 as "block the prompt / the tool call": a mistyped
        # `hook` command line must not stop the agent (argparse has printed the problem).
        if args_list[:1] == ["hook"] and exc.code == ExitCode.USAGE:
            return ExitCode.OK
        raise
    command: str = args.command

    if command == "stop-hook":
        # Never a configuration error exit: problems are logged and the rest of the stop runs.
        from agent.stop.hook import run_stop_hook  # noqa: PLC0415

        return run_stop_hook(_setting_flags(args), strict=args.strict)
    if command == "hook":
        # Never fails the agent: exits 0, problems logged (agent.hooks.command).
        from agent.hooks.command import run_hook  # noqa: PLC0415

        return run_hook(
            args.agent,
            args.payload,
            _setting_flags(args),
            event=args.event,
            then_run=args.then_run,
            started=_started(),
        )

    # A ConfigError from here on is exit 2, printed by agent.boundary.
    settings = _settings(args)
    if command == "snapshot":
        return _snapshot(settings)
    if command == "run":
        return _run(settings)
    return _report(settings, args)


# -- the hooks' fast path: `report` and `snapshot` without argparse, their settings read in part --


def _fast_command(argv: list[str]) -> tuple[str, list[str], dict[str, str]] | None:
    """`report`, `snapshot` or `hook` in their plain forms: command, positionals, options.

    argparse costs more than the rest of the hooks' path; anything this does not recognise
    exactly (help, abbreviations, a repeated or unknown option, a value that looks like an
    option) returns None and goes to argparse, which then behaves as it always did.
    """
    spec = COMMANDS.get(argv[0]) if argv else None
    if spec is None or not spec.get("fast"):
        return None
    # From the same entries argparse is built from: required positionals, at most one more for
    # each optional or repeated one (a longer form goes to argparse), options taking a value.
    counts = [count for _, count, _ in _entries(spec, "positionals")]
    least, most = counts.count("1"), len(counts)
    allowed = {flag for flag, metavar, _ in _entries(spec, "options") if metavar is not None}
    allowed.update(_entries(spec, "settings"))
    positional: list[str] = []
    options: dict[str, str] = {}
    rest = iter(argv[1:])
    for arg in rest:
        if not arg.startswith("-"):
            positional.append(arg)
            continue
        name, equals, value = arg.partition("=")
        if name not in allowed or name in options:
            return None
        if not equals:
            value = next(rest, "-")
            if value.startswith("-"):
                return None
        options[name] = value
    if not least <= len(positional) <= most:
        return None
    return argv[0], positional, options


def _fast(command: str, positional: list[str], options: dict[str, str]) -> int:
    flags = {
        _SETTING_FLAGS[flag]: (flag, value)
        for flag, value in options.items()
        if flag in _SETTING_FLAGS
    }
    if command == "hook":
        # Never fails the agent: exits 0, problems logged (agent.hooks.command).
        from agent.hooks.command import run_hook  # noqa: PLC0415

        return run_hook(
            positional[0],
            positional[1:],
            flags,
            event=options.get("--event"),
            then_run=options.get("--then-run"),
            started=_started(),
        )

    from agent import config  # noqa: PLC0415
    from agent.reportsocket import client as report_socket  # noqa: PLC0415

    settings = config.read(flags=flags, only=config.HOOK_FIELDS)
    if command == "report":
        summary = positional[1] if len(positional) > 1 else ""
        status = report_socket.parse_report(positional[0], summary, options.get("--uri", ""))
        return report_socket.report(settings, status)
    return _snapshot(settings)


def _started() -> float:
    """The process's start, which the hook budget counts from (agent.hooks.command)."""
    from agent.hooks.command import process_started  # noqa: PLC0415

    return process_started()


def _settings(args: argparse.Namespace) -> Settings:
    from agent import config  # noqa: PLC0415

    return config.read(flags=_setting_flags(args))


def _setting_flags(args: argparse.Namespace) -> dict[str, tuple[str, str]]:
    return {
        variable: (flag, value)
        for flag, variable in _SETTING_FLAGS.items()
        if (value := getattr(args, _dest(flag), None)) is not None
    }


def _logging(settings: Settings) -> None:
    from agent.log import configure_from  # noqa: PLC0415

    configure_from(settings)
    if settings.warnings:
        import structlog  # noqa: PLC0415

        log = structlog.get_logger("agent.config")
        for warning in settings.warnings:
            log.warning("configuration_warning", problem=warning)


def _snapshot(settings: Settings) -> int:
    from agent.reportsocket import client as report_socket  # noqa: PLC0415

    # A running daemon saves from its live mirror over warm connections: ask it first.
    code = report_socket.snapshot(settings)
    if code is not None:
        return code
    # No daemon: the blocking shell of the stop path (the standard library; httpx only for an
    # upload through a proxy). The configuration is read and checked in full.
    from agent.stop import oneshot  # noqa: PLC0415

    return oneshot.snapshot_once(settings.full())


def _run(settings: Settings) -> int:
    import anyio  # noqa: PLC0415

    from agent.coder.route import needs_coder_http  # noqa: PLC0415
    from agent.daemon.daemon import run_daemon  # noqa: PLC0415

    if needs_coder_http(settings, uploads=not settings.hooks_mode):
        settings.require_coder()  # before anything starts, naming what is missing
    _logging(settings)
    return anyio.run(run_daemon, settings)


def _report(settings: Settings, args: argparse.Namespace) -> int:
    from agent.reportsocket import client as report_socket  # noqa: PLC0415

    status = report_socket.parse_report(args.state, args.summary, args.uri or "")
    return report_socket.report(settings, status)
