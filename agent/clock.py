"""The one clock seam: where every module reads the time and waits.

Production code takes a `Clock` (default `SYSTEM_CLOCK`, anyio's monotonic clock and sleeps);
tests pass a `ManualClock` and move time forward themselves, so nothing waits for real seconds.
"""

from __future__ import annotations

import math
from typing import Protocol

import anyio


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
        self.sleepers = 0

    def now(self) -> float:
        """The time the test last set."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Return once `advance` has moved the clock past now + seconds."""
        await self.wait(anyio.Event(), seconds)

    async def wait(self, event: anyio.Event, seconds: float) -> bool:
        """Return when `event` is set or the clock passed now + seconds."""
        due = self._now + max(0.0, seconds)
        self.sleepers += 1
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
            self.sleepers -= 1
        return event.is_set()

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose time has come."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError("time only moves forward")
        self._now += seconds
        moved, self._moved = self._moved, anyio.Event()
        moved.set()
