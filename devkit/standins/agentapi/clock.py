"""Where the AgentAPI stand-in gets wall-clock timestamps and how it waits.

AgentAPI stamps messages with wall-clock time (Go's RFC 3339 with nanoseconds), so this clock is
in epoch nanoseconds, unlike the product's monotonic `agent.clock`. Tests pass a `ManualClock`
and play whole scripted turns without waiting real seconds.
"""

from __future__ import annotations

import heapq
import itertools
import time
from typing import Protocol

import anyio
import anyio.lowlevel


class Clock(Protocol):
    """Timestamps and waits for the stand-in."""

    def now_ns(self) -> int:
        """Nanoseconds since the Unix epoch."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` (already scaled by the stand-in's speed)."""
        ...


class SystemClock:
    """The real clock."""

    def now_ns(self) -> int:
        return time.time_ns()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


# 2025-06-01T10:00:00Z: a ManualClock starts at a fixed, recognisable time.
_MANUAL_EPOCH_NS = 1_748_772_000_000_000_000


class ManualClock:
    """Virtual time for tests: `sleep` returns only once `advance` has moved time past it."""

    def __init__(self, start_ns: int = _MANUAL_EPOCH_NS) -> None:
        self._now = start_ns
        self._sleepers: list[tuple[int, int, anyio.Event]] = []
        self._order = itertools.count()

    def now_ns(self) -> int:
        return self._now

    @property
    def sleepers(self) -> int:
        """How many tasks are sleeping on this clock."""
        return len(self._sleepers)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        wake = anyio.Event()
        entry = (self._now + round(seconds * 1e9), next(self._order), wake)
        heapq.heappush(self._sleepers, entry)
        try:
            await wake.wait()
        finally:
            if not wake.is_set():  # cancelled: forget the deadline
                self._sleepers.remove(entry)
                heapq.heapify(self._sleepers)

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking sleepers in deadline order.

        Each woken task runs on to its next wait before time moves further, so one call can play
        a whole scripted turn whose own sleeps fall inside the interval.
        """
        target = self._now + round(seconds * 1e9)
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, wake = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            wake.set()
            for _ in range(4):
                await anyio.lowlevel.checkpoint()
        self._now = max(self._now, target)


def go_time(ns: int) -> str:
    """A UTC timestamp as Go's time.Time marshals it (RFC 3339, nanoseconds, no trailing zeros)."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    digits = f"{fraction:09d}".rstrip("0")
    return f"{stamp}.{digits}Z" if digits else f"{stamp}Z"
