"""Command line of the development tools: `coder-task-agent-dev COMMAND [options]`.

Each command is a module with its own `main(argv) -> int` that parses its own options, imported
only when that command runs. To add a command, add a row to `COMMANDS`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

PROG = "coder-task-agent-dev"

# command -> (module with `main(argv) -> int`, one line of help)
COMMANDS: dict[str, tuple[str, str]] = {
    "agentapi": (
        "standins.agentapi.cli",
        "AgentAPI stand-in with a scripted agent (default port 3284)",
    ),
    "coder": (
        "standins.coder.cli",
        "Coder stand-in: records statuses and snapshots, serves a task page (default port 3000)",
    ),
    "agent-socket": (
        "standins.agentsocket",
        "the Coder agent's local socket (dRPC Ping, UpdateAppStatus; /tmp/coder-agent.sock)",
    ),
    "demo": (
        "standins.demo",
        "the whole loop on this machine: stand-ins, daemon, a prompt, a stop",
    ),
}


def usage() -> str:
    """The top-level help text."""
    width = max(len(name) for name in COMMANDS)
    rows = "\n".join(f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items())
    return (
        f"usage: {PROG} COMMAND [options]\n\n"
        "Development tools for coder-task-agent (not part of the product).\n\n"
        f"commands:\n{rows}\n\n"
        f"`{PROG} COMMAND --help` describes each command's options.\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code (2 for an unknown command)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage(), end="", file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"{PROG}: unknown command {name!r}\n\n{usage()}", end="", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    command: Callable[[list[str]], int] = module.main
    return command(rest)
