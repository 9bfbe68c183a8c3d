"""Command line: `python -m agent COMMAND` (or the `coder-task-agent` script).

Each command imports only its own path (tests/test_import_discipline.py holds every path to
this): `report`, `snapshot` and `hook`, run by agents at every step, take their plain forms
without argparse and, handed to a running daemon, load the standard library only. The devkit's
stand-ins and demo are `coder-task-agent-dev`. Exit codes: `agent.models.ExitCode`.
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

# Flags that stand for a setting: flag -> (variable, metavar, help). Errors name both.
# fmt: off
_SETTING_FLAGS = {
    "--agentapi-url": ("CODER_MCP_AI_AGENTAPI_URL", "URL",
                       "AgentAPI base URL (default http://localhost:3284); none: no AgentAPI"),
    "--budget": ("CODER_TASK_AGENT_SHUTDOWN_BUDGET", "SECONDS",
                 "seconds the whole stop path may take (default 5)"),
    "--mode": ("CODER_TASK_AGENT_MODE", "{events,poll,hooks}",
               "events (follow /events), poll (GET /status every interval) or hooks (no "
               "AgentAPI: status from the agent's hooks only)"),
    "--poll-interval": ("CODER_TASK_AGENT_POLL_INTERVAL", "SECONDS",
                        "seconds between polls in poll mode (default 1)"),
    "--socket": ("CODER_TASK_AGENT_SOCKET", "PATH", "path of the report socket"),
    "--log-level": ("CODER_TASK_AGENT_LOG_LEVEL", "{debug,info,warning,error}",
                    "debug, info, warning or error"),
    "--log-format": ("CODER_TASK_AGENT_LOG_FORMAT", "{auto,json,console}", "auto, json or console"),
}
# fmt: on

# The one specification of the command line, which argparse and the hooks' fast dispatch are
# both built from. Per command: help, description, positionals (name, count "1", "?" (default
# "") or "*", help), own options (flag, metavar or None for a switch, help), setting flags, and
# "fast": the fast dispatch takes its plain forms (agents run these at every step).
_SNAPSHOT_FLAGS = ("--agentapi-url", "--budget", "--log-level", "--log-format")
_HANDED_OVER_FLAGS = ("--socket", "--log-level", "--log-format")
COMMANDS: dict[str, dict[str, Any]] = {
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
            "ARG_PID_FILE_PATH, ARG_STATE_FILE_PATH and ARG_MODULE_DIR_NAME; CODER_TASK_ID and "
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
        # Any AGENT on the fast path: the command logs an unknown one (exit 0).
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
        description = spec["description"].replace("{agents}", agents)
        sub = commands.add_parser(name, help=spec["help"], description=description)
        for argument, count, help_text in spec.get("positionals", ()):
            if argument == "agent":
                sub.add_argument(argument, choices=tuple(AGENTS), help=help_text)
            elif count == "1":
                sub.add_argument(argument, help=help_text)
            else:
                default = "" if count == "?" else None
                sub.add_argument(argument, nargs=count, default=default, help=help_text)
        for flag, metavar, help_text in spec.get("options", ()):
            if metavar is None:
                sub.add_argument(flag, action="store_true", help=help_text)
            else:
                sub.add_argument(flag, metavar=metavar, help=help_text)
        for flag in spec.get("settings", ()):
            variable, metavar, help_text = _SETTING_FLAGS[flag]
            sub.add_argument(flag, metavar=metavar, help=f"{help_text} [{variable}]")
    return parser


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
        installer = args_list[1:]

        def install() -> int:
            # Imported inside the boundary: it loads more than any other short command.
            from agent.hooks.install import main as install_hooks  # noqa: PLC0415

            return install_hooks(installer)

        return contained(f"hook {installer[0]}", install, unexpected=lambda: 2)
    # `unexpected` is worked out inside the boundary: a Ctrl-C while agent.models loads is one.
    return contained(
        command, lambda: _main(args_list), unexpected=lambda: unexpected_exit(args_list)
    )


def unexpected_exit(args_list: Sequence[str]) -> int:
    """What a command exits with when an unexpected fault ends it (docs/operations.md): a hook
    never fails the agent (0), nor does `stop-hook` without `--strict`; any other command did
    not deliver what it was for: UNDELIVERED (5), which a supervisor restarts on."""
    from agent.models import ExitCode  # noqa: PLC0415

    command = args_list[0] if args_list else ""
    if command == "hook" or (command == "stop-hook" and "--strict" not in args_list):
        return int(ExitCode.OK)
    return int(ExitCode.UNDELIVERED)


def _main(args_list: list[str]) -> int:
    if args_list[:1] == ["stop-hook"]:
        from agent.errors import Interrupted  # noqa: PLC0415 - loaded by the boundary

        try:
            return _dispatch(args_list)
        except Interrupted as exc:
            # A stop signal before its event loop takes them (argparse, the imports, step 1)
            # is a hurry too: the same command line again, hurried, and AgentAPI is stopped.
            # A second signal does nothing (agent.boundary).
            return _dispatch(args_list, hurried=exc.signal)
    return _dispatch(args_list)


def _dispatch(args_list: list[str], hurried: str | None = None) -> int:
    fast = _fast_command(args_list)
    parsed = fast or _parse(args_list)
    if isinstance(parsed, int):
        return parsed
    command, positional, options = parsed
    flags = {
        _SETTING_FLAGS[flag][0]: (flag, value)
        for flag, value in options.items()
        if flag in _SETTING_FLAGS
    }
    if command == "stop-hook":
        # Never a configuration error exit: problems are logged and the rest of the stop runs.
        from agent.stop.hook import run_stop_hook  # noqa: PLC0415

        return run_stop_hook(flags, strict="--strict" in options, hurried=hurried)
    if command == "hook":
        # Never fails the agent: exits 0, problems logged (agent.hooks.command).
        from agent.hooks.command import process_started, run_hook  # noqa: PLC0415

        return run_hook(
            positional[0],
            positional[1:],
            flags,
            event=options.get("--event"),
            then_run=options.get("--then-run"),
            started=process_started(),
        )
    from agent import config  # noqa: PLC0415

    # A ConfigError from here on is exit 2 (agent.boundary). The fast path reads what it needs.
    settings = config.read(flags=flags, only=config.HOOK_FIELDS if fast else None)
    if command == "run":
        return _run(settings)
    from agent.reportsocket import client as report_socket  # noqa: PLC0415

    if command == "report":
        summary = positional[1] if len(positional) > 1 else ""
        status = report_socket.parse_report(positional[0], summary, options.get("--uri", ""))
        return report_socket.report(settings, status)
    # A snapshot: from a running daemon's live mirror, else by the stop path's blocking shell.
    code = report_socket.snapshot(settings)
    if code is not None:
        return code
    from agent.stop import oneshot  # noqa: PLC0415

    return oneshot.snapshot_once(settings.full())


def _parse(args_list: list[str]) -> tuple[str, list[str], dict[str, str]] | int:
    """argparse's reading of `args_list` as `_fast_command` gives it (or a hook's exit code)."""
    from agent.models import ExitCode  # noqa: PLC0415

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
    spec = COMMANDS[args.command]
    positional: list[str] = []
    for name, count, _ in spec.get("positionals", ()):
        value = getattr(args, name)
        positional.extend(value if count == "*" else [value])
    flags = [flag for flag, _, _ in spec.get("options", ())] + list(spec.get("settings", ()))
    given = {flag: getattr(args, flag[2:].replace("-", "_")) for flag in flags}
    options = {flag: str(value) for flag, value in given.items() if value not in (None, False)}
    return args.command, positional, options


def _fast_command(argv: list[str]) -> tuple[str, list[str], dict[str, str]] | None:
    """`report`, `snapshot` or `hook` in their plain forms, without argparse (it costs more than
    the rest of the hooks' path); None for anything else (help, abbreviations, a repeated or
    unknown option, a value that looks like an option), which argparse then takes."""
    spec = COMMANDS.get(argv[0]) if argv else None
    if spec is None or not spec.get("fast"):
        return None
    # From the same entries argparse is built from: required positionals, at most one more for
    # each optional or repeated one (a longer form goes to argparse), options taking a value.
    counts = [count for _, count, _ in spec.get("positionals", ())]
    least, most = counts.count("1"), len(counts)
    allowed = {flag for flag, metavar, _ in spec.get("options", ()) if metavar is not None}
    allowed.update(spec.get("settings", ()))
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


def _run(settings: Settings) -> int:
    import anyio  # noqa: PLC0415

    from agent.coder.route import needs_coder_http  # noqa: PLC0415
    from agent.daemon.daemon import run_daemon  # noqa: PLC0415
    from agent.log import configure_from  # noqa: PLC0415

    if needs_coder_http(settings, uploads=not settings.hooks_mode):
        settings.require_coder()  # before anything starts, naming what is missing
    configure_from(settings)
    if settings.warnings:
        import structlog  # noqa: PLC0415

        log = structlog.get_logger("agent.config")
        for warning in settings.warnings:
            log.warning("configuration_warning", problem=warning)
    return anyio.run(run_daemon, settings)
