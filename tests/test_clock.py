"""The injected clock: ManualClock moves only when told, and wakes exactly who is due."""

from __future__ import annotations

import anyio
import pytest

from agent.clock import SYSTEM_CLOCK, ManualClock
from tests.fakes import wait_until

pytestmark = pytest.mark.anyio


async def test_sleepers_wake_in_order_only_when_their_time_comes() -> None:
    clock = ManualClock(start=100.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now()))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(sleeper, "late", 3.0)
            group.start_soon(sleeper, "early", 1.0)
            await wait_until(lambda: clock.sleepers == 2)
            assert clock.next_due() == 101.0
            clock.advance(0.5)
            await wait_until(lambda: clock.sleepers == 2)
            assert woke == []
            assert await clock.advance_to_next() == 101.0
            assert woke == [("early", 101.0)]
            assert await clock.advance_to_next() == 103.0
    assert woke == [("early", 101.0), ("late", 103.0)]
    assert clock.sleepers == 0
    assert clock.next_due() is None


async def test_wait_returns_early_when_the_event_is_set() -> None:
    clock = ManualClock()
    event = anyio.Event()
    results: list[bool] = []

    async def waiter() -> None:
        results.append(await clock.wait(event, 10.0))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(waiter)
            await wait_until(lambda: clock.sleepers == 1)
            event.set()
        assert results == [True]
        assert clock.now() == 0.0, "no time passed"
        assert await clock.wait(anyio.Event(), 0.0) is False, "a zero wait times out at once"


async def test_a_cancelled_sleeper_forgets_its_due_time() -> None:
    clock = ManualClock()
    with anyio.fail_after(5):
        with anyio.move_on_after(0):
            await clock.sleep(5.0)
    assert clock.sleepers == 0
    with pytest.raises(LookupError):
        await clock.advance_to_next()


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_time_only_moves_forward(bad: float) -> None:
    with pytest.raises(ValueError, match="forward"):
        ManualClock().advance(bad)


async def test_the_system_clock_never_sleeps_negative() -> None:
    with anyio.fail_after(5):
        before = SYSTEM_CLOCK.now()
        await SYSTEM_CLOCK.sleep(-3.0)
        event = anyio.Event()
        event.set()
        assert await SYSTEM_CLOCK.wait(event, -1.0) is True
        assert SYSTEM_CLOCK.now() >= before
