"""The one clock seam: where every module reads the time, waits, and cuts work off.

Production code takes a `Clock` (default `SYSTEM_CLOCK`); tests pass `tests.manualclock.ManualClock`
and move time themselves. No other product module calls anyio's sleep, current_time,
move_on_after or fail_after (tests/test_architecture.py); the stdlib-only fast paths (issue 14)
keep the standard library's socket timeouts instead.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

import anyio


class Clock(Protocol):
    """Monotonic seconds and waits on the same scale."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

    async def wait(self, event: anyio.Event, seconds: float) -> bool:
        """Wait for `event` at most `seconds`; True when it was set."""
        ...

    def move_on_after(self, seconds: float) -> AbstractContextManager[anyio.CancelScope]: ...

    def fail_after(self, seconds: float) -> AbstractContextManager[anyio.CancelScope]:
        """`move_on_after` that raises TimeoutError when its own deadline cut it off."""
        ...


class SystemClock:
    """anyio's clock: the event loop's monotonic time."""

    def now(self) -> float:
        return anyio.current_time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))

    async def wait(self, event: anyio.Event, seconds: float) -> bool:
        with anyio.move_on_after(max(0.0, seconds)):
            await event.wait()
        return event.is_set()

    def move_on_after(self, seconds: float) -> AbstractContextManager[anyio.CancelScope]:
        return anyio.move_on_after(seconds)

    def fail_after(self, seconds: float) -> AbstractContextManager[anyio.CancelScope]:
        return anyio.fail_after(seconds)


SYSTEM_CLOCK = SystemClock()
