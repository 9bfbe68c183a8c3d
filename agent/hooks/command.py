"""`coder-task-agent hook AGENT`: an agent's own hook event as the task's status.

The shell around the pure parts: read the payload as the registry (agent.hooks) says, map it
(agent.hooks.<agent>, agent.hooks.events), hand the report over (agent.reportsocket.client).
A hook runs inside the agent's turn (exit 2 means "block" to most agents), so the input and the
hand-over are bounded, every problem is one logged line, the exit is 0 and stdout carries only
the registry's `stdout`. Standard library only on the way to a daemon (docs/hooks.md).
"""

from __future__ import annotations

import json
import os
import select
import sys
import time

from agent.config import HOOK_FIELDS, Environment, Settings, read
from agent.hooks import AGENTS, ARGUMENT_OR_STDIN, Agent
from agent.hooks.events import status_of
from agent.reportsocket.trust import proc_stat

TYPE_CHECKING = False  # true for type checkers: `typing` is not imported on the hooks' path
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import IO, BinaryIO

    from agent.models import AppStatus

# A prompt can be long, but a hook event beyond this is not one.
MAX_EVENT_BYTES = 16 * 1024 * 1024
# Agents write the event and close stdin at once; on a terminal, stdin would never end.
STDIN_WAIT = 5.0
# Kept of the budget for the exit: closing connections, the teardown with httpx and anyio
# loaded (0.1-0.2 s measured on 2 loaded cores).
EXIT_RESERVE = 0.3
# The least the hand-over gets when starting took the whole budget: late beats never sent.
MIN_HAND_OVER = 0.2
LOG_LEVEL = "CODER_TASK_AGENT_LOG_LEVEL"
SHOWN_STDERR_LEVEL = "error"


def read_stdin(
    stream: IO[bytes] | None, within: float = STDIN_WAIT, limit: int = MAX_EVENT_BYTES
) -> bytes:
    """Everything on `stream` (a hook's stdin, a child's stdout) until EOF, within `within`
    seconds for the whole read; TimeoutError, or ValueError for no stream or more than `limit`
    bytes (the one capped read of a pipe)."""
    if stream is None:
        raise ValueError("no event: stdin is closed")
    deadline = time.monotonic() + within
    fd = stream.fileno()
    data = bytearray()
    while len(data) <= limit:
        left = deadline - time.monotonic()
        readable, _, _ = select.select([fd], [], [], max(0.0, left))
        if not readable:
            raise TimeoutError(f"no complete event on stdin within {within:.2g} s")
        chunk = os.read(fd, min(1 << 16, limit + 1 - len(data)))
        if not chunk:
            return bytes(data)
        data += chunk
    raise ValueError(f"the event is larger than {limit} bytes")


def parse_event(raw: bytes | str) -> Mapping[str, object]:
    """The event as a JSON object; raises ValueError naming what is wrong."""
    if isinstance(raw, bytes):
        # Some agents write a UTF-8 byte-order mark first (Cursor on Windows).
        raw = raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="replace")
    try:
        event = json.loads(raw.removeprefix("\ufeff"))
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"the event is not JSON ({type(exc).__name__})") from None
    if not isinstance(event, dict):
        raise ValueError("the event is not a JSON object")  # noqa: TRY004 - bad input, not a bug
    return event


def hand_over(settings: Settings, status: AppStatus, within: float) -> int:
    """Give the report to whoever delivers it (daemon or Coder) within `within` seconds."""
    from agent.reportsocket import client as report_socket  # noqa: PLC0415

    return report_socket.report(settings, status, source="hook", within=within)


def process_started() -> float:
    """When this process started, on `time.monotonic()`'s scale (now, when unknown).

    The budget is the agent's wait, which begins at the exec, before the interpreter's start.
    /proc gives the start in clock ticks since boot (CLOCK_BOOTTIME), which monotonic runs with
    while the machine is awake.
    """
    now = time.monotonic()
    fields = proc_stat("self")
    if not fields:
        return now
    try:
        ticks = int(fields[22 - 3])  # field 22, `starttime`
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return now
    return now - min(max(age, 0.0), 60.0)


def run_hook(
    agent_name: str,
    arguments: Sequence[str],
    flags: Mapping[str, tuple[str, str]],
    *,
    event: str | None = None,
    then_run: str | None = None,
    stdin: BinaryIO | None = None,
    env: Mapping[str, str] | None = None,
    started: float | None = None,
) -> int:
    """The `hook AGENT` command; always returns 0 (problems are logged, one line each).

    `arguments`: the payload argument (Codex's notify); `event`: `--event`; `then_run`:
    `--then-run`, the user's own notify program (JSON), exec'd after reporting with the payload.
    Reading and hand-over share the hook budget from `started` (monotonic; the process's start),
    less EXIT_RESERVE; the hand-over gets at least MIN_HAND_OVER.
    """
    started = time.monotonic() if started is None else started
    agent = AGENTS.get(agent_name)
    settings: Settings | None = None
    try:
        try:
            agent = _known(agent_name)
            settings = read(env, _quieter(agent, flags, env), only=HOOK_FIELDS)
            budget = settings.hook_budget
            end = started + max(budget - EXIT_RESERVE, budget / 2)
            stream = stdin if stdin is not None else getattr(sys.stdin, "buffer", None)
            raw = _read_payload(agent, arguments, stream, end - time.monotonic())
            status = status_of(agent.event_of(parse_event(raw), event or ""))
            if status is not None:  # the hand-over logs its outcome (`hook_failed` when late)
                hand_over(settings, status, max(end - time.monotonic(), MIN_HAND_OVER))
        except Exception as exc:  # noqa: BLE001 - a hook never fails its agent: one line, exit 0
            _log_problem(settings, agent_name, "hook_failed", exc)
        _print_for_agent(agent)
        if then_run is not None:
            _run_next(settings, agent_name, then_run, arguments[-1:])
    except Exception as exc:  # noqa: BLE001 - not even the logging may fail the agent
        _log_problem(settings, agent_name, "hook_failed", exc)
    return 0


def _known(name: str) -> Agent:
    agent = AGENTS.get(name)
    if agent is None:
        raise ValueError(f"unknown agent {name!r} (known: {', '.join(AGENTS)})")
    return agent


def _quieter(
    agent: Agent, flags: Mapping[str, tuple[str, str]], env: Mapping[str, str] | None
) -> Mapping[str, tuple[str, str]]:
    """`flags`, with the log level raised to errors on an agent that shows stderr to the user,
    unless the level is configured."""
    if not agent.stderr_shown or Environment(env, flags).is_set(LOG_LEVEL):
        return flags
    return {**flags, LOG_LEVEL: ("--log-level", SHOWN_STDERR_LEVEL)}


def _read_payload(
    agent: Agent, arguments: Sequence[str], stdin: BinaryIO | None, within: float
) -> bytes | str:
    if agent.reads == ARGUMENT_OR_STDIN and arguments:
        return arguments[-1]
    if arguments:
        raise ValueError(f"{agent.name} passes the event on stdin, not as an argument")
    return read_stdin(stdin, min(STDIN_WAIT, max(within, 0.0)))


def _print_for_agent(agent: Agent | None) -> None:
    if agent is None or not agent.stdout:
        return
    try:
        sys.stdout.write(agent.stdout)
        sys.stdout.flush()
    except (AttributeError, OSError, ValueError):
        return  # stdout closed: the agent reads no decision, which is "go on" too


def _run_next(settings: Settings | None, agent: str, then_run: str, payload: Sequence[str]) -> None:
    """Replace this process with the user's own program (`then_run`, JSON), payload appended."""
    try:
        argv = json.loads(then_run)
    except ValueError:
        argv = None
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        error = ValueError("--then-run is not a JSON array of strings")
        _log_problem(settings, agent, "hook_then_run_failed", error)
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            continue  # closed or absent: nothing of ours is pending there
    try:
        os.execvp(argv[0], [*argv, *payload])  # noqa: S606 - the user's own notify program
    except OSError as exc:
        _log_problem(settings, agent, "hook_then_run_failed", exc, program=argv[0])


def _log_problem(
    settings: Settings | None, agent: str, event: str, exc: Exception, **fields: str
) -> None:
    try:
        from agent.log import Writer  # noqa: PLC0415

        writer = Writer.for_settings(settings) if settings is not None else Writer()
        writer.error(event, agent=agent, error=str(exc) or type(exc).__name__, **fields)
    except Exception:  # noqa: BLE001, S110 - stderr is gone: there is nowhere left to tell
        pass
