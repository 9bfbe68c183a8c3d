"""`coder-task-agent hook AGENT`: an agent's own hook event as the task's status.

The shell around the pure parts: read the payload where the agent's row in the registry
(agent.hooks) says it arrives, let the agent's mapping module say what happened
(agent.hooks.<agent>), let agent.hooks.events say which status that is, and hand the report
over through agent.reportsocket.client (to the running daemon, which applies the reporting
rules, or straight to Coder when none listens).

A hook runs inside the agent's turn, so it must never block or fail the agent: the input is read
with a bound, the hand-over is bounded, every problem is logged as one line and the command
exits 0 (exit 2 means "block" to most agents: a refused prompt, a denied tool, a forced extra
turn). Its stdout carries exactly what the agent's row says (nothing, or Gemini's `{}`).

Codex's `notify` allows one program: `hook codex --then-run '["prog", "arg"]' PAYLOAD` reports,
then runs the user's own notify program (`prog arg PAYLOAD`) in its place, as Codex would have.

Only the standard library is imported on the way to a running daemon: a hook runs at every
prompt and every tool call.
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
    from typing import BinaryIO

    from agent.models import AppStatus

# A prompt can be long, but a hook event beyond this is not one: it is cut, not read whole.
MAX_EVENT_BYTES = 16 * 1024 * 1024
# Agents write the event and close stdin at once; run by hand on a terminal, stdin would never
# end: the read gives up after this long (or when the hook budget ends, if sooner).
STDIN_WAIT = 5.0
# Of the hook budget, what is kept for the exit: closing connections after a cut-off attempt,
# the interpreter's teardown with httpx and anyio loaded (0.1-0.2 s measured on 2 loaded cores).
EXIT_RESERVE = 0.3
# The least the hand-over gets, even when the start took the whole budget (a machine so loaded
# that importing took a second): a hook a little late is better than a report never sent.
MIN_HAND_OVER = 0.2
LOG_LEVEL = "CODER_TASK_AGENT_LOG_LEVEL"
# The level on agents that show the hook's stderr to the user (the registry's `stderr_shown`).
SHOWN_STDERR_LEVEL = "error"


def read_stdin(stream: BinaryIO | None, within: float = STDIN_WAIT) -> bytes:
    """Everything on `stream` until EOF, at most MAX_EVENT_BYTES, within `within` seconds.

    Raises TimeoutError when the writer neither finishes nor closes in time, ValueError when
    there is no stdin or the event is too large.
    """
    if stream is None:
        raise ValueError("no event: stdin is closed")
    deadline = time.monotonic() + within
    fd = stream.fileno()
    data = bytearray()
    while len(data) <= MAX_EVENT_BYTES:
        left = deadline - time.monotonic()
        readable, _, _ = select.select([fd], [], [], max(0.0, left))
        if not readable:
            raise TimeoutError(f"no complete event on stdin within {within:.2g} s")
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return bytes(data)
        data += chunk
    raise ValueError(f"the event is larger than {MAX_EVENT_BYTES} bytes")


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
    """Give the report to whoever delivers it, within `within` seconds; returns the exit code.

    The one line to change when the client changes.
    """
    from agent.reportsocket import client as report_socket  # noqa: PLC0415

    return report_socket.report(settings, status, source="hook", within=within)


def process_started() -> float:
    """When this process started, on `time.monotonic()`'s scale (now, when that is unknown).

    The budget is the agent's wait, which begins at the exec, before the interpreter's own
    start (tens of milliseconds, more on a loaded machine). /proc gives the start in clock
    ticks since boot; CLOCK_BOOTTIME is the same clock, and monotonic runs with it while the
    machine is awake.
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

    `arguments`: the payload argument(s) (Codex's notify appends one); `event`: `--event`, the
    event's name for payloads that lack it; `then_run`: `--then-run`, a JSON array, the user's
    own program to run after reporting, with the payload appended (never returns when it runs).

    The whole of it runs within the hook budget (CODER_TASK_AGENT_HOOK_BUDGET, 1 s by default)
    from `started` (`time.monotonic()`; the command passes its process's start, see
    `process_started`; by default now): reading the event and handing the report over each get
    what is left of it, less EXIT_RESERVE for the exit (the hand-over at least MIN_HAND_OVER).
    A report not delivered within it is given up and logged (`hook_failed`, saying so): the
    agent must not wait for Coder.
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
            if status is not None:
                # Its outcome is the one line the hand-over logs (`hook_failed`, `reason: not
                # delivered within the hook budget`, when the budget ended it).
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
    _flush(sys.stdout)
    _flush(sys.stderr)
    try:
        os.execvp(argv[0], [*argv, *payload])  # noqa: S606 - the user's own notify program
    except OSError as exc:
        _log_problem(settings, agent, "hook_then_run_failed", exc, program=argv[0])


def _flush(stream: object) -> None:
    try:
        stream.flush()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return  # closed or absent: nothing of ours is pending there


def _log_problem(
    settings: Settings | None, agent: str, event: str, exc: Exception, **fields: str
) -> None:
    try:
        from agent.log import Writer  # noqa: PLC0415

        writer = Writer.for_settings(settings) if settings is not None else Writer()
        writer.error(event, agent=agent, error=str(exc) or type(exc).__name__, **fields)
    except Exception:  # noqa: BLE001, S110 - stderr is gone: there is nowhere left to tell
        pass
