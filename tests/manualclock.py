"""ManualClock: the test fake of `agent.clock.Clock` that moves only when a test says so.

Kept out of the product: only tests use it. Sleepers wake, and scopes opened with
`move_on_after`/`fail_after` are cancelled, when their time comes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import anyio.lowlevel


class ManualClock:
    """A clock that moves only when a test calls `advance`.

    Sleepers wake, and cancel scopes opened with `move_on_after`/`fail_after` are cancelled,
    when their time comes.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._moved = anyio.Event()
        self._dues: list[float] = []
        # Open scopes whose deadline has not come yet, and those cut off but not yet left.
        self._scopes: list[_Deadline] = []
        self._expired: list[_Deadline] = []

    @property
    def sleepers(self) -> int:
        """How many tasks are waiting on this clock."""
        return len(self._dues)

    @property
    def deadlines(self) -> int:
        """How many open cancel scopes of this clock have a deadline still to come."""
        return len(self._scopes)

    def next_due(self) -> float | None:
        """The earliest time a sleeper wakes at or a scope is cut off at, if there is one."""
        return min([*self._dues, *(d.due for d in self._scopes)], default=None)

    def now(self) -> float:
        """The time the test last set."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Return once `advance` has moved the clock past now + seconds."""
        await self.wait(anyio.Event(), seconds)

    async def wait(self, event: anyio.Event, seconds: float) -> bool:
        """Return when `event` is set or the clock passed now + seconds."""
        due = self._now + max(0.0, seconds)
        self._dues.append(due)
        try:
            while not event.is_set() and self._now < due:
                moved = self._moved
                async with anyio.create_task_group() as group:

                    async def on_event() -> None:
                        await event.wait()
                        group.cancel_scope.cancel()

                    group.start_soon(on_event)
                    await moved.wait()
                    group.cancel_scope.cancel()
        finally:
            self._dues.remove(due)
        return event.is_set()

    @contextmanager
    def move_on_after(self, seconds: float) -> Iterator[anyio.CancelScope]:
        """A cancel scope that `advance` cancels once the clock reaches now + seconds.

        Zero or negative seconds cancel it at once (its body stops at its first checkpoint);
        infinite seconds never do.
        """
        with self._deadline(seconds) as deadline:
            yield deadline.scope

    @contextmanager
    def fail_after(self, seconds: float) -> Iterator[anyio.CancelScope]:
        """`move_on_after` that raises TimeoutError when its own deadline cut the body off.

        An outer cancellation propagates as itself; an exception from the body propagates
        unchanged.
        """
        with self._deadline(seconds) as deadline:
            yield deadline.scope
        if deadline.scope.cancelled_caught and deadline.fired:
            raise TimeoutError

    @contextmanager
    def _deadline(self, seconds: float) -> Iterator[_Deadline]:
        """The scope of either timeout, registered with this clock while it is open."""
        deadline = self._open(seconds)
        try:
            with deadline.scope:
                yield deadline
        finally:
            self._close(deadline)

    def _open(self, seconds: float) -> _Deadline:
        if math.isnan(seconds):
            raise ValueError("a deadline must be a number of seconds")
        deadline = _Deadline(self._now + seconds, anyio.CancelScope())
        if seconds <= 0:
            deadline.fire()
            self._expired.append(deadline)
        elif math.isfinite(seconds):
            self._scopes.append(deadline)
        return deadline

    def _close(self, deadline: _Deadline) -> None:
        for pending in (self._scopes, self._expired):
            if deadline in pending:
                pending.remove(deadline)

    async def advance_to_next(self) -> float:
        """Move to the earliest due time; return once every task due then has run on.

        Returns the new time. Raises LookupError when nobody waits on the clock.
        """
        due = self.next_due()
        if due is None:
            raise LookupError("no task waits on this clock")
        self.advance(max(0.0, due - self._now))
        # Each woken task leaves its wait (and may wait again, later): until then it still
        # holds a due time <= now. Each cut-off scope is left by its task. Yield until then.
        while self._expired or any(d <= self._now for d in self._dues):
            await anyio.lowlevel.checkpoint()
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward, wake every sleeper and cut off every scope whose time has come."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError("time only moves forward")
        self._now += seconds
        for deadline in [d for d in self._scopes if d.due <= self._now]:
            self._scopes.remove(deadline)
            # Cancelling another task's scope from this one is allowed: anyio delivers it at
            # that task's next checkpoint.
            deadline.fire()
            self._expired.append(deadline)
        moved, self._moved = self._moved, anyio.Event()
        moved.set()


class _Deadline:
    """One ManualClock cancel scope and when it is cut off."""

    __slots__ = ("due", "fired", "scope")

    def __init__(self, due: float, scope: anyio.CancelScope) -> None:
        self.due = due
        self.scope = scope
        # True once the clock (not some other code) cancelled the scope.
        self.fired = False

    def fire(self) -> None:
        self.fired = True
        self.scope.cancel()
