"""`coder-task-agent-dev agentapi`: serve the AgentAPI stand-in until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
from functools import partial
from pathlib import Path

import anyio

from standins.agentapi.scenario import Scenario, ScenarioError
from standins.agentapi.standin import AgentAPIStandIn, require_loopback, run_agentapi_standin
from standins.serving import run_server, write_port_file

PROG = "coder-task-agent-dev agentapi"
# On SIGTERM, how long open event streams get to end cleanly before the server stops.
_STREAM_DRAIN_SECONDS = 1.0


async def _serve_until_signalled(
    standin: AgentAPIStandIn, host: str, port: int, port_file: Path | None
) -> None:
    async with anyio.create_task_group() as group:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            bound = await group.start(partial(run_agentapi_standin, standin, host=host, port=port))
            if port_file is not None:
                write_port_file(port_file, bound)
            shown = f"[{host}]" if ":" in host else host
            print(
                f"AgentAPI stand-in listening on http://{shown}:{bound}",
                file=sys.stderr,
                flush=True,
            )
            async for _ in signals:
                break
        # Like AgentAPI on SIGTERM: event streams simply end, then the server stops.
        standin.close_streams()
        with anyio.move_on_after(_STREAM_DRAIN_SECONDS):
            await standin.wait_for(lambda: standin.open_streams == 0)
            await anyio.sleep(0.05)  # each stream's last chunk is written after its generator ends
        group.cancel_scope.cancel()


def _log_line(line: str) -> None:
    print(f"agentapi-standin: {line}", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "A local AgentAPI stand-in with a scripted agent, on loopback only. Send it a prompt "
            "(POST /message) and it works, streams output and settles like Claude Code behind "
            "AgentAPI. Stops on SIGTERM or SIGINT."
        ),
        epilog=(
            "The daemon finds it through CODER_MCP_AI_AGENTAPI_URL (default "
            "http://localhost:3284). Scenario format: devkit/standins/agentapi/scenario.py."
        ),
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="a loopback address (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=3284, help="0 picks a free port (default 3284)")
    parser.add_argument("--port-file", type=Path, help="write the bound port here, atomically")
    parser.add_argument("--scenario", type=Path, help="a scenario JSON file")
    parser.add_argument("--speed", type=float, default=1.0, help="play the script N times faster")
    parser.add_argument("--agent-type", help="the agent_type to report (default: the scenario's)")
    parser.add_argument(
        "--preload-messages", type=int, default=0, metavar="N", help="start with N messages"
    )
    parser.add_argument(
        "--preload-size", type=int, default=2048, metavar="BYTES", help="of this size each"
    )
    parser.add_argument("--quiet", action="store_true", help="do not log every request")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT, then exit 0; 2 for bad usage or a port already taken."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        require_loopback(args.host)
    except ValueError as exc:
        parser.error(str(exc))
    if not 0 <= args.port <= 65535:
        parser.error("--port must be from 0 to 65535")
    if not args.speed > 0:
        parser.error("--speed must be positive")
    if args.preload_messages < 0 or args.preload_size < 0:
        parser.error("--preload-messages and --preload-size must not be negative")
    try:
        scenario = Scenario.load(args.scenario) if args.scenario else Scenario()
    except ScenarioError as exc:
        parser.error(str(exc))
    standin = AgentAPIStandIn(
        scenario,
        speed=args.speed,
        agent_type=args.agent_type,
        log=None if args.quiet else _log_line,
    )
    if args.preload_messages:
        standin.preload(args.preload_messages, args.preload_size)
    serving = partial(_serve_until_signalled, standin, args.host, args.port, args.port_file)
    return run_server(PROG, args.host, args.port, serving)
