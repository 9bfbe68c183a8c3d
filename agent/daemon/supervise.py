"""Supervision of the daemon's tasks: whatever escapes one is one line, then it runs again, so
a bug or a library's surprise never ends the daemon (only the stop path does)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog

from agent import boundary
from agent.clock import Clock
from agent.retry import RECONNECT_BACKOFF

log = structlog.get_logger("agent.daemon.supervise")


async def supervised(task: Callable[[], Awaitable[None]], clock: Clock) -> None:
    """Run `task`; after an error, one `unexpected_error` line (agent.boundary), never a
    traceback, and a restart after the reconnect backoff."""
    failures = 0
    while True:
        try:
            await task()
        except Exception as exc:  # noqa: BLE001 - logged, then restarted
            failures += 1
            wait = RECONNECT_BACKOFF.wait(failures)
            log.error(
                boundary.EVENT,
                task=_name(task),
                failures=failures,
                restart_in=round(wait, 3),
                **boundary.describe(boundary.first_leaf(exc)),
            )
            await clock.sleep(wait)
        else:
            return


def _name(task: Callable[..., object]) -> str:
    owner = getattr(task, "__self__", None)
    name = getattr(task, "__name__", repr(task))
    return f"{type(owner).__name__}.{name}" if owner is not None else name
