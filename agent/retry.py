"""The one retry policy: how long to wait before trying again, and the retry loop for one call.

The policy itself (Backoff, the policies, the waits of a delivery) is `agent.backoff`, apart
from anyio so that the one-shot snapshot's standard-library path shares it; this
module re-exports it and holds the async loop.

Every retry in the daemon takes its waits from here: deliveries to Coder (`deliver`), the
reporter's loop (which keeps its own "a newer report cuts the wait short" loop but asks
`next_wait` how long), the supervisor's restarts and the watchers' reconnects. Only the
"try again" branch of the error tree is retried; the server's Retry-After is honoured, never
beyond the policy's cap or the caller's deadline.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from agent.backoff import (
    ACCEPT_BACKOFF,
    CALL_BACKOFF,
    RECONNECT_BACKOFF,
    REPORT_BACKOFF,
    Backoff,
    cut_off,
    delivery_wait,
    gives_up,
    no_time_left,
)
from agent.clock import SYSTEM_CLOCK, Clock
from agent.errors import RemoteError, TryAgain

__all__ = [
    "ACCEPT_BACKOFF",
    "CALL_BACKOFF",
    "RECONNECT_BACKOFF",
    "REPORT_BACKOFF",
    "Backoff",
    "deliver",
]

T = TypeVar("T")


async def deliver(
    call: Callable[[], Awaitable[T]],
    *,
    deadline: float,
    backoff: Backoff = CALL_BACKOFF,
    clock: Clock = SYSTEM_CLOCK,
    on_retry: Callable[[RemoteError, float], None] | None = None,
    service: str = "Coder",
) -> T:
    """Run `call`, retrying TryAgain errors with backoff until success or `deadline`.

    `deadline` is on `clock`'s scale. The server's Retry-After (a 429, or a 5xx that carries
    one) is honoured when it fits before the deadline. A wait that would end past the deadline
    is not taken: the last error is raised instead. Each attempt is also cut off at the
    deadline. Rejected and Unsupported errors are raised at once.

    The loop is `agent.backoff.deliver_blocking`'s twin, on the same pure decisions. It was
    tenacity's: its machinery cost 50-100 us before the first attempt, a twentieth of the stop
    path's whole budget for a short conversation, for a loop this size.
    """
    attempt = 0
    told: TryAgain | None = None  # the last error that was not a cut-off
    while True:
        remaining = deadline - clock.now()
        if remaining <= 0:
            raise no_time_left(service)
        try:
            with clock.fail_after(remaining):
                return await call()
        except TimeoutError:
            error: TryAgain = cut_off(service, told)
        except TryAgain as exc:
            error = told = exc
        attempt += 1
        wait = delivery_wait(backoff, attempt, error)
        if gives_up(clock.now(), wait, deadline):
            raise error
        if on_retry is not None:
            on_retry(error, wait)
        await clock.sleep(wait)
