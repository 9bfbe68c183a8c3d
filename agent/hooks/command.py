"""`coder-task-agent hook claude-code` and `hook codex`: an agent's own hooks as task status.

The shell around agent.hooks.mapping (which decides what each event reports): read the event,
map it, hand the report over through agent.reportsocket.client (to the running daemon, which
applies the reporting rules, or straight to Coder when none listens). A hook runs inside the
agent's turn, so it must never block or fail the agent: the input is read with a bound, the
hand-over is bounded, and the command always exits 0; a problem is logged, never raised.

Claude Code gives a command hook the event as JSON on stdin; Codex runs its `notify` program
with the JSON as the last argument. Only the standard library is imported on the way to a
running daemon: a hook runs at every prompt and every tool call.
"""

from __future__ import annotations

import json
import os
import select
import sys
import time

from agent.config import HOOK_FIELDS, Settings, read
from agent.errors import ConfigError
from agent.hooks.mapping import claude_code, codex

# A plain constant that type checkers treat as true: `typing` is not imported on this path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import BinaryIO

    from agent.models import AppStatus

# A prompt can be long, but a hook event beyond this is not one: it is cut, not read whole.
MAX_EVENT_BYTES = 16 * 1024 * 1024
# Claude Code writes the event and closes stdin at once; run by hand on a terminal, stdin would
# never end: the read gives up after this long.
STDIN_WAIT = 5.0

MAPPINGS: dict[str, Callable[[Mapping[str, object]], AppStatus | None]] = {
    "claude-code": claude_code,
    "codex": codex,
}


def read_stdin(stream: BinaryIO, within: float = STDIN_WAIT) -> bytes:
    """Everything on `stream` until EOF, at most MAX_EVENT_BYTES, within `within` seconds.

    Raises TimeoutError when the writer neither finishes nor closes in time.
    """
    deadline = time.monotonic() + within
    fd = stream.fileno()
    data = bytearray()
    while len(data) <= MAX_EVENT_BYTES:
        left = deadline - time.monotonic()
        readable, _, _ = select.select([fd], [], [], max(0.0, left))
        if not readable:
            raise TimeoutError(f"no complete event on stdin within {within:g} s")
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return bytes(data)
        data += chunk
    raise ValueError(f"the event is larger than {MAX_EVENT_BYTES} bytes")


def parse_event(raw: bytes | str) -> Mapping[str, object]:
    """The event as a JSON object; raises ValueError naming what is wrong."""
    try:
        event = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"the event is not JSON ({type(exc).__name__})") from None
    if not isinstance(event, dict):
        raise ValueError("the event is not a JSON object")  # noqa: TRY004 - bad input, not a bug
    return event


def hand_over(settings: Settings, status: AppStatus) -> None:
    """Give the report to whoever delivers it: the one line to change when the client changes."""
    from agent.reportsocket import client as reportclient  # noqa: PLC0415

    reportclient.report(settings, status, source="hook")


def run_hook(
    agent: str,
    arguments: Sequence[str],
    flags: Mapping[str, tuple[str, str]],
    *,
    stdin: BinaryIO | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """The `hook AGENT` command; always returns 0 (problems are logged)."""
    settings: Settings | None = None
    try:
        # The fast path's settings: the rest is read only if the report must go straight to
        # Coder (agent.reportsocket.client).
        settings = read(env, flags, only=HOOK_FIELDS)
        raw = _read_event(agent, arguments, stdin)
        status = MAPPINGS[agent](parse_event(raw))
        if status is not None:
            hand_over(settings, status)
    except (ConfigError, ValueError, TimeoutError, OSError) as exc:
        _log_problem(settings, agent, exc)
    return 0


def _read_event(agent: str, arguments: Sequence[str], stdin: BinaryIO | None) -> bytes | str:
    if agent == "codex":
        if not arguments:
            raise ValueError("Codex passes the event as an argument; none was given")
        return arguments[-1]
    return read_stdin(stdin if stdin is not None else sys.stdin.buffer)


def _log_problem(settings: Settings | None, agent: str, exc: Exception) -> None:
    from agent.log import Writer  # noqa: PLC0415

    writer = Writer.for_settings(settings) if settings is not None else Writer()
    writer.error("hook_failed", agent=agent, error=str(exc) or type(exc).__name__)
