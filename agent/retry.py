"""The one retry policy (`Backoff`) and the two loops that follow it, async and blocking.

Exponential backoff with full jitter; a server's Retry-After honoured but never beyond the cap
(a hostile or confused server must not park a caller for a day); inside a deadline, give up
rather than take a wait that would end at or past it. Every retry of the program takes its
waits from here. Only the TryAgain branch of the error tree is retried.

Why not tenacity: what these loops decide is ours either way (attempts cut off at the deadline
on an injected clock, the cut-off naming the attempt before, Retry-After within the cap), so it
would carry only the `while`, and cost its import on the one-shot snapshot's path (which must
stay within 1.5x Coder's reference stop script) and 50-100 us before the first attempt.
Standard library only at import: the blocking path must not import anyio.
"""

from __future__ import annotations

import random

from agent.errors import CutOff, NotSent, TLSRefused, TryAgain
from agent.models import Frozen

# True for type checkers only: `typing` stays off this path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from typing import TypeVar

    from agent.clock import Clock
    from agent.errors import RemoteError

    T = TypeVar("T")


class Backoff(Frozen):
    """Exponential backoff with full jitter: a random wait in [0, min(cap, base * 2**n)]."""

    __slots__ = ("base", "cap")
    __match_args__ = ("base", "cap")
    base: float
    cap: float

    def __init__(self, base: float = 0.2, cap: float = 5.0) -> None:
        self._set(base=base, cap=cap)

    def wait(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number `attempt` (1 for the first retry)."""
        ceiling: float = min(self.cap, self.base * 2.0 ** (min(attempt, 64) - 1))
        return rng() * ceiling

    def next_wait(
        self,
        attempt: int,
        error: BaseException | None = None,
        rng: Callable[[], float] = random.random,
    ) -> float:
        """The wait before retry `attempt` after `error`: the server's Retry-After when that is
        longer than the policy's wait, but never beyond the cap (the one Retry-After rule)."""
        wait = self.wait(attempt, rng)
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


def no_time_left(service: str) -> NotSent:
    """The error for an attempt the deadline leaves no time to start."""
    return NotSent(service, "request", "deadline reached before the attempt")


def _spent(last: TryAgain | None) -> TryAgain:
    """The error when the deadline has passed before an attempt: the last attempt's, when there
    was one (a wait that overran the deadline on a loaded machine must not hide why it failed)."""
    return no_time_left("Coder") if last is None else last


def cut_off(service: str, before: BaseException | None = None) -> CutOff:
    """The error for an attempt the deadline cut off (it may have reached the server).

    It names `before`, the attempt before's error: "no answer before the deadline" alone would
    hide why the earlier ones failed (an unknown certificate, a refused connection).
    """
    detail = "no answer before the deadline"
    if before is not None:
        detail += f"; the attempt before: {before}"
    return CutOff(service, "request", detail)


def worth_waiting(error: TryAgain, wait: float, now: float, deadline: float) -> bool:
    """Whether a retry after `wait` is worth it inside `deadline`: the wait ends before it, and
    the error is one a retry can fix (no retry within one deadline fixes a TLS refusal)."""
    return not isinstance(error, TLSRefused) and now + wait < deadline


def wait_or_give_up(
    backoff: Backoff, attempt: int, error: TryAgain, now: float, deadline: float
) -> float:
    """The wait before retry `attempt`; raises `error` when it is not `worth_waiting`."""
    wait = backoff.next_wait(attempt, error)
    if not worth_waiting(error, wait, now, deadline):
        raise error
    return wait


async def deliver(
    call: Callable[[], Awaitable[T]],
    *,
    deadline: float,
    backoff: Backoff = CALL_BACKOFF,
    clock: Clock | None = None,
    on_retry: Callable[[RemoteError, float], None] | None = None,
) -> T:
    """Run `call`, retrying TryAgain errors until success or `deadline` (on `clock`'s scale).

    Each attempt is cut off at the deadline; other errors are raised at once.
    """
    if clock is None:
        from agent.clock import SYSTEM_CLOCK  # noqa: PLC0415 - anyio: not on the blocking path

        clock = SYSTEM_CLOCK
    attempt = 0
    told: TryAgain | None = None  # the last error that was not a cut-off
    error: TryAgain | None = None  # the last attempt's
    while True:
        remaining = deadline - clock.now()
        if remaining <= 0:
            raise _spent(error)
        try:
            with clock.fail_after(remaining):
                return await call()
        except TimeoutError:
            error = cut_off("Coder", told)
        except TryAgain as exc:
            error = told = exc
        attempt += 1
        wait = wait_or_give_up(backoff, attempt, error, clock.now(), deadline)
        if on_retry is not None:
            on_retry(error, wait)
        await clock.sleep(wait)


def deliver_blocking(
    call: Callable[[float], T],
    *,
    deadline: float,
    now: Callable[[], float],
    sleep: Callable[[float], object],
    backoff: Backoff = CALL_BACKOFF,
    on_retry: Callable[[TryAgain, float], None] | None = None,
) -> T:
    """`deliver` for blocking code: `call(remaining)` must not run past the seconds it is given
    (it raises `cut_off(...)` when they run out)."""
    attempt = 0
    told: TryAgain | None = None  # the last error that was not a cut-off
    error: TryAgain | None = None  # the last attempt's
    while True:
        remaining = deadline - now()
        if remaining <= 0:
            raise _spent(error)
        try:
            return call(remaining)
        except CutOff as exc:
            error = exc if told is None else cut_off(exc.service, told)
        except TryAgain as exc:
            error = told = exc
        attempt += 1
        wait = wait_or_give_up(backoff, attempt, error, now(), deadline)
        if on_retry is not None:
            on_retry(error, wait)
        sleep(wait)
