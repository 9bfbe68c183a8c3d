"""The one clock seam: where every module reads the time and waits.

Production code takes a `Clock` (default `SYSTEM_CLOCK`, anyio's monotonic clock and sleeps);
tests pass a `ManualClock` and move time forward themselves, so nothing waits for real seconds.
"""

from __future__ import annotations

import math
from typing import Protocol

import anyio
import anyio.lowlevel


class Clock(Protocol):
    """Monotonic seconds and waits on the same scale."""

    def now(self) -> float:
        """Seconds on this clock's monotonic scale."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` on this clock."""
        ...

    async def wait(self, event: anyio.Event, seconds: float) -> bool:
        """Wait for `event` at most `seconds`; True when it was set."""
        ...


class SystemClock:
    """anyio's clock: the event loop's monotonic time."""

    def now(self) -> float:
        """The event loop's time."""
        return anyio.current_time()

    async def sleep(self, seconds: float) -> None:
        """anyio.sleep, never negative."""
        await anyio.sleep(max(0.0, seconds))

    async def wait(self, event: anyio.Event, seconds: float) -> bool:
        """Wait for `event` at most `seconds`."""
        with anyio.move_on_after(max(0.0, seconds)):
            await event.wait()
        return event.is_set()


SYSTEM_CLOCK = SystemClock()


class ManualClock:
    """A clock that moves only when a test calls `advance`; sleepers wake when their time comes."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._moved = anyio.Event()
        self._dues: list[float] = []

    @property
    def sleepers(self) -> int:
        """How many tasks are waiting on this clock."""
        return len(self._dues)

    def next_due(self) -> float | None:
        """The earliest time a waiting task wakes at, if any task waits."""
        return min(self._dues, default=None)

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

    async def advance_to_next(self) -> float:
        """Move to the earliest sleeper's time; return once every task due then has run on.

        Returns the new time. Raises LookupError when nobody waits on the clock.
        """
        due = self.next_due()
        if due is None:
            raise LookupError("no task waits on this clock")
        self.advance(max(0.0, due - self._now))
        # Each woken task leaves its wait (and may wait again, later): until then it still
        # holds a due time <= now. Yield until none does.
        while any(d <= self._now for d in self._dues):
            await anyio.lowlevel.checkpoint()
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose time has come."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError("time only moves forward")
        self._now += seconds
        moved, self._moved = self._moved, anyio.Event()
        moved.set()
