"""The one retry policy: how long to wait before trying again, and the retry loop for one call.

The policy itself (Backoff, the policies, the waits of a delivery) is `agent.backoff`, apart
from anyio and tenacity so that the one-shot snapshot's standard-library path shares it; this
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

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

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
    """

    # The waits and the "give up" are agent.backoff's, shared with the blocking loop there.
    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return delivery_wait(backoff, state.attempt_number, exc)

    def stop(state: RetryCallState) -> bool:
        return gives_up(clock.now(), state.upcoming_sleep, deadline)

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if on_retry is not None and isinstance(exc, RemoteError):
            on_retry(exc, state.upcoming_sleep)

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(TryAgain),
        wait=wait,
        stop=stop,
        sleep=clock.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            remaining = deadline - clock.now()
            if remaining <= 0:
                raise no_time_left(service)
            try:
                with clock.fail_after(remaining):
                    return await call()
            except TimeoutError:
                raise cut_off(service) from None
    raise AssertionError("unreachable: tenacity either returns or reraises")  # pragma: no cover
