"""The one retry policy: how long to wait before trying again, and the retry loop for one call.

Every retry in the daemon takes its waits from here: deliveries to Coder (`deliver`), the
reporter's loop (which keeps its own "a newer report cuts the wait short" loop but asks
`next_wait` how long), the supervisor's restarts and the watchers' reconnects. Only the
"try again" branch of the error tree is retried; the server's Retry-After is honoured, never
beyond the policy's cap or the caller's deadline.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from agent.clock import SYSTEM_CLOCK, Clock
from agent.errors import NotSent, OutcomeUnknown, RemoteError, TryAgain

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: a random wait in [0, min(cap, base * 2**n)]."""

    base: float = 0.2
    cap: float = 5.0

    def wait(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number `attempt` (1 for the first retry)."""
        ceiling: float = min(self.cap, self.base * 2.0 ** (min(attempt, 64) - 1))
        return rng() * ceiling

    def next_wait(self, attempt: int, error: BaseException | None = None) -> float:
        """The wait before retry `attempt` after `error`: the server's hint, within the cap."""
        wait = self.wait(attempt)
        hint = error.retry_after if isinstance(error, TryAgain) else None
        if hint is not None:
            wait = max(wait, min(hint, self.cap))
        return wait


# Single calls inside a deadline (the snapshot upload, a direct report): quick retries.
CALL_BACKOFF = Backoff(base=0.2, cap=5.0)
# The status reporter: first retry within half a second, then up to every 30 s (a long outage
# must not become a storm from every workspace at once; full jitter spreads them).
REPORT_BACKOFF = Backoff(base=0.5, cap=30.0)
# Reconnects to AgentAPI and restarts of a failed task: quickly at first (a restart takes a
# second), then up to every 10 s.
RECONNECT_BACKOFF = Backoff(base=0.25, cap=10.0)
# A failing accept() on the report socket (EMFILE while clients hold descriptors): short waits,
# since a report client gives up after 2 s and descriptors come back as clients leave.
ACCEPT_BACKOFF = Backoff(base=0.05, cap=1.0)


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

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        delay: float = backoff.wait(state.attempt_number)
        if isinstance(exc, TryAgain) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        return delay

    def stop(state: RetryCallState) -> bool:
        return clock.now() + state.upcoming_sleep >= deadline

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
                raise NotSent(service, "request", "deadline reached before the attempt")
            try:
                with anyio.fail_after(remaining):
                    return await call()
            except TimeoutError:
                raise OutcomeUnknown(service, "request", "no answer before the deadline") from None
    raise AssertionError("unreachable: tenacity either returns or reraises")  # pragma: no cover
