"""The retry policy's arithmetic, apart from any event loop: how long to wait, when to give up.

Why a module of its own: `agent.retry.deliver` (anyio) and the one-shot snapshot's
standard-library path (`agent.stop.oneshot`, which must not import either) retry by the same
rules, so both take every wait and every "give up" from here. Standard library only; the random
source and the clock are parameters.
"""

from __future__ import annotations

import random

from agent.errors import CutOff, NotSent, TryAgain

# A plain constant that type checkers treat as true: `typing` is not imported on the hooks' path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    T = TypeVar("T")


class Backoff:
    """Exponential backoff with full jitter: a random wait in [0, min(cap, base * 2**n)].

    Immutable. Written out rather than a frozen dataclass: `dataclasses` costs the one-shot
    snapshot more than the rest of its retry loop.
    """

    __slots__ = ("base", "cap")
    __match_args__ = ("base", "cap")
    base: float
    cap: float

    def __init__(self, base: float = 0.2, cap: float = 5.0) -> None:
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "cap", cap)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Backoff is immutable: cannot set {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Backoff) or type(other) is not type(self):
            return NotImplemented
        return (self.base, self.cap) == (other.base, other.cap)

    def __hash__(self) -> int:
        return hash((self.base, self.cap))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base={self.base!r}, cap={self.cap!r})"

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


def delivery_wait(
    backoff: Backoff,
    attempt: int,
    error: BaseException | None,
    rng: Callable[[], float] = random.random,
) -> float:
    """The wait before retry `attempt` of a delivery inside a deadline, after `error`.

    The policy's wait, or the server's Retry-After when that is longer: not capped here, since
    `gives_up` already refuses any wait that would end past the caller's deadline.
    """
    delay = backoff.wait(attempt, rng)
    if isinstance(error, TryAgain) and error.retry_after is not None:
        delay = max(delay, error.retry_after)
    return delay


def gives_up(now: float, wait: float, deadline: float) -> bool:
    """True when a wait of `wait` s from `now` would end at or past `deadline`: raise instead."""
    return now + wait >= deadline


def no_time_left(service: str) -> NotSent:
    """The error for an attempt the deadline leaves no time to start."""
    return NotSent(service, "request", "deadline reached before the attempt")


def cut_off(service: str, before: BaseException | None = None) -> CutOff:
    """The error for an attempt the deadline cut off (it may have reached the server).

    `before`: the error of the attempt before it, named in the words. When the budget ends in
    the middle of an attempt, "no answer before the deadline" alone would hide why the earlier
    ones failed (an unknown certificate, a refused connection), which is what a reader needs.
    """
    detail = "no answer before the deadline"
    if before is not None:
        detail += f"; the attempt before: {before}"
    return CutOff(service, "request", detail)


def deliver_blocking(
    call: Callable[[float], T],
    *,
    deadline: float,
    now: Callable[[], float],
    sleep: Callable[[float], object],
    backoff: Backoff = CALL_BACKOFF,
    on_retry: Callable[[TryAgain, float], None] | None = None,
) -> T:
    """`agent.retry.deliver` for blocking code: run `call(remaining)` until success or `deadline`.

    `call` gets the seconds left before `deadline` and must not run past them (it raises
    `cut_off(...)` when they run out, or its own TryAgain). TryAgain errors are retried with
    `delivery_wait`; a wait `gives_up` refuses is not taken and the last error is raised.
    Rejected and Unsupported errors are raised at once. Raises `no_time_left("Coder")` when the
    deadline leaves no time for an attempt.
    """
    attempt = 0
    told: TryAgain | None = None  # the last error that was not a cut-off
    while True:
        remaining = deadline - now()
        if remaining <= 0:
            raise no_time_left("Coder")
        try:
            return call(remaining)
        except CutOff as exc:
            error: TryAgain = exc if told is None else cut_off(exc.service, told)
        except TryAgain as exc:
            error = told = exc
        attempt += 1
        wait = delivery_wait(backoff, attempt, error)
        if gives_up(now(), wait, deadline):
            raise error
        if on_retry is not None:
            on_retry(error, wait)
        sleep(wait)
