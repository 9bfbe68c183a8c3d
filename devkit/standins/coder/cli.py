"""`coder-task-agent-dev coder`: serve the Coder stand-in until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import anyio
import structlog

from standins.coder.agent_side import RATE_LIMIT
from standins.coder.dev import DEV_ROUTES
from standins.coder.gowire import parse_go_uuid
from standins.coder.standin import CoderStandIn, run_coder_standin
from standins.coder.store import TASK_STATUSES, Store, Task
from standins.serving import run_server, write_port_file

PROG = "coder-task-agent-dev coder"
DEMO_TASK_ID = "8b2e7c1a-5f3d-4e6b-9a0c-1d2e3f4a5b6c"

log = structlog.get_logger("standins.coder")

_EPILOG = f"""\
the token:
  The stand-in checks the Coder-Session-Token header like Coder does, so it must know the agent
  token the daemon will send: start both with the same CODER_AGENT_TOKEN (any string; a UUID, as
  Coder's are, also makes a malformed token a 401), or put it in a file for --token-file. It is
  never read from the command line and never logged.

  export CODER_AGENT_TOKEN=$(python3 -c 'import uuid; print(uuid.uuid4())')
  {PROG} &
  CODER_AGENT_URL=http://127.0.0.1:3000 CODER_TASK_ID={DEMO_TASK_ID} \\
      CODER_MCP_APP_STATUS_SLUG=claude-code uv run coder-task-agent run

what it serves (default http://127.0.0.1:3000):
  PATCH /api/v2/workspaceagents/me/app-status              the daemon's status reports
  POST  /api/v2/workspaceagents/me/tasks/TASK/log-snapshot  its snapshot at stop
  GET   /api/v2/tasks/USER/TASK[/logs]                     the task and its logs, as Coder shows
  GET   /tasks/USER/TASK                                   a task page (the URL is logged at start)
  dev endpoints (not Coder's; see devkit/standins/coder/dev.py):
    {(chr(10) + "    ").join(DEV_ROUTES)}

to see the snapshot:
  A task's logs come live from AgentAPI while it is `active`; once paused (as Coder does when the
  workspace stops) they come from the stored snapshot. Stop the daemon (SIGTERM), then:
  curl -X POST http://127.0.0.1:3000/dev/tasks/{DEMO_TASK_ID}/status \\
      -H 'Content-Type: application/json' -d '{{"status": "paused"}}'
"""


def expected_token(token_file: Path | None, environ: Mapping[str, str]) -> str:
    """The token the agent must present: from `token_file`, else `CODER_AGENT_TOKEN`.

    Raises ValueError naming where it looked when neither gives one.
    """
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"--token-file {token_file}: {exc.strerror}") from None
        if not token:
            raise ValueError(f"--token-file {token_file}: the file is empty")
        return token
    token = environ.get("CODER_AGENT_TOKEN", "").strip()
    if not token:
        raise ValueError(
            "no expected agent token: set CODER_AGENT_TOKEN to the token the daemon will send"
            " (any string), or pass --token-file FILE; see --help"
        )
    return token


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "A local Coder stand-in (a development tool, not Coder): the two agent endpoints with "
            "Coder's checks, the task read side, a task page and /dev/ endpoints. It needs the "
            "agent token (CODER_AGENT_TOKEN or --token-file). Stops on SIGTERM or SIGINT."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=3000, help="listen port (default 3000; 0 picks a free one)"
    )
    parser.add_argument("--port-file", type=Path, help="write the bound port here, atomically")
    parser.add_argument(
        "--db",
        type=Path,
        help="SQLite file to keep the state in (default: a temporary one, removed at exit)",
    )
    parser.add_argument(
        "--task-id", default=DEMO_TASK_ID, help=f"the task's UUID (default {DEMO_TASK_ID})"
    )
    parser.add_argument("--task-name", default="demo-task", help="(default demo-task)")
    parser.add_argument(
        "--task-status",
        default="active",
        choices=TASK_STATUSES,
        help="initial status (default active)",
    )
    parser.add_argument("--user", default="demo", help="the task owner's user name (default demo)")
    parser.add_argument(
        "--app-slug",
        action="append",
        dest="app_slugs",
        metavar="SLUG",
        help=(
            "only this app slug may report status, like a coder_app of the workspace (repeatable;"
            " default: any slug, e.g. CODER_MCP_APP_STATUS_SLUG=claude-code)"
        ),
    )
    parser.add_argument(
        "--agentapi-url",
        default="http://localhost:3284",
        help="where live logs are read from (default http://localhost:3284)",
    )
    parser.add_argument("--token-file", type=Path, help="a file holding the expected agent token")
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=RATE_LIMIT,
        help=f"requests a minute per endpoint (default {RATE_LIMIT}, as Coder)",
    )
    parser.add_argument(
        "--no-tasks",
        action="store_true",
        help="behave like a server without Coder Tasks: the snapshot route answers 404",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT, then exit 0; 2 for bad usage or a port already taken."""
    args = _parser().parse_args(argv)
    try:
        token = expected_token(args.token_file, os.environ)
        if parse_go_uuid(args.task_id) is None:
            raise ValueError(f"--task-id {args.task_id!r} is not a UUID")  # noqa: TRY301
    except ValueError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    task = Task(
        args.task_id,
        args.user,
        args.task_name,
        args.task_status,
        tuple(args.app_slugs or ()),
        args.agentapi_url,
    )
    from agent.config import Secret  # noqa: PLC0415
    from agent.log import configure  # noqa: PLC0415 - only the CLI configures logging

    configure("info", "auto", secrets=[Secret(token)])
    with _database(args.db) as db:
        store = Store(db)
        try:
            standin = CoderStandIn(
                store, token, [task], rate_limit=args.rate_limit, tasks_enabled=not args.no_tasks
            )
            serving = partial(
                _serve_until_signal,
                standin,
                host=args.host,
                port=args.port,
                port_file=args.port_file,
                page=f"/tasks/{task.owner}/{task.id}",
                db=db,
            )
            return run_server(PROG, args.host, args.port, serving)
        finally:
            store.close()


@contextmanager
def _database(path: Path | None) -> Iterator[Path]:
    """`path`, or a database in a new temporary directory that is removed afterwards."""
    if path is not None:
        yield path
        return
    directory = Path(tempfile.mkdtemp(prefix="coder-standin-"))
    try:
        yield directory / "coder.db"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def _serve_until_signal(
    standin: CoderStandIn, *, host: str, port: int, port_file: Path | None, page: str, db: Path
) -> None:
    # The receiver is open before the port is announced, so an early SIGTERM still stops cleanly.
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with anyio.create_task_group() as group:
            bound = await group.start(partial(run_coder_standin, standin, host=host, port=port))
            if port_file is not None:
                write_port_file(port_file, bound)
            base = f"http://{host}:{bound}"
            log.info("coder_standin_listening", url=base, page=base + page, db=str(db))
            async for signum in signals:
                log.info("coder_standin_stopping", signal=signal.Signals(signum).name)
                group.cancel_scope.cancel()
                break
