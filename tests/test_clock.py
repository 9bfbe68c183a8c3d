"""The injected clock: ManualClock moves only when told, and wakes exactly who is due."""

from __future__ import annotations

import math

import anyio
import anyio.lowlevel
import pytest

from agent.clock import SYSTEM_CLOCK
from tests.fakes import wait_until
from tests.manualclock import ManualClock

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


async def test_move_on_after_cuts_off_only_when_the_clock_reaches_its_deadline() -> None:
    clock = ManualClock(start=10.0)
    outcome: list[tuple[bool, float]] = []

    async def worker() -> None:
        with clock.move_on_after(2.0) as scope:
            await anyio.sleep_forever()
        outcome.append((scope.cancelled_caught, clock.now()))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(worker)
            await wait_until(lambda: clock.deadlines == 1)
            assert clock.next_due() == 12.0
            clock.advance(1.5)
            await settled()
            assert outcome == [], "not cut off before its deadline"
            assert await clock.advance_to_next() == 12.0
            assert outcome == [(True, 12.0)], "advance_to_next returns once the task ran on"
    assert clock.deadlines == 0
    assert clock.next_due() is None


async def test_fail_after_raises_timeout_error_when_its_deadline_passes() -> None:
    clock = ManualClock()
    raised: list[BaseException] = []

    async def worker() -> None:
        try:
            with clock.fail_after(3.0):
                await anyio.sleep_forever()
        except TimeoutError as exc:
            raised.append(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(worker)
            await wait_until(lambda: clock.deadlines == 1)
            await clock.advance_to_next()
    assert len(raised) == 1
    assert type(raised[0]) is TimeoutError


async def test_a_body_that_finishes_in_time_is_not_cut_off_and_leaves_no_deadline() -> None:
    clock = ManualClock()
    with anyio.fail_after(5):
        with clock.fail_after(1.0) as scope:
            await anyio.lowlevel.checkpoint()
        assert not scope.cancelled_caught
        with clock.move_on_after(1.0) as scope:
            await anyio.lowlevel.checkpoint()
        assert not scope.cancelled_caught
    assert clock.deadlines == 0
    assert clock.next_due() is None
    clock.advance(5.0)  # a deadline of a scope already left cancels nothing
    assert not scope.cancel_called


@pytest.mark.parametrize("seconds", [0.0, -1.0])
async def test_a_deadline_already_passed_cuts_off_at_the_first_checkpoint(seconds: float) -> None:
    clock = ManualClock()
    with anyio.fail_after(5):
        with clock.move_on_after(seconds) as scope:
            await anyio.lowlevel.checkpoint()
            pytest.fail("the checkpoint should have been cancelled")
        assert scope.cancelled_caught
        with pytest.raises(TimeoutError), clock.fail_after(seconds):
            await anyio.lowlevel.checkpoint()
    assert clock.deadlines == 0


async def test_an_infinite_deadline_never_comes_due() -> None:
    clock = ManualClock()
    with anyio.fail_after(5):
        with clock.move_on_after(math.inf) as scope:
            assert clock.next_due() is None
            clock.advance(1e9)
            await anyio.lowlevel.checkpoint()
    assert not scope.cancelled_caught


def test_a_nan_deadline_is_refused() -> None:
    with pytest.raises(ValueError, match="seconds"), ManualClock().move_on_after(math.nan):
        pass


async def test_nested_scopes_cut_off_innermost_first_and_each_knows_its_own() -> None:
    clock = ManualClock()
    trace: list[str] = []

    async def worker() -> None:
        with clock.move_on_after(5.0) as outer:
            try:
                with clock.fail_after(1.0):
                    await anyio.sleep_forever()
            except TimeoutError:
                trace.append(f"inner timed out at {clock.now():g}")
            with clock.move_on_after(10.0) as inner:
                await anyio.sleep_forever()
            trace.append(f"unreachable: inner caught {inner.cancelled_caught}")
        trace.append(f"outer caught {outer.cancelled_caught} at {clock.now():g}")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(worker)
            await wait_until(lambda: clock.deadlines == 2)
            assert await clock.advance_to_next() == 1.0
            await wait_until(lambda: clock.deadlines == 2)
            assert clock.next_due() == 5.0
            assert await clock.advance_to_next() == 5.0
    assert trace == ["inner timed out at 1", "outer caught True at 5"]
    assert clock.deadlines == 0


async def test_fail_after_lets_an_outer_cancellation_through_as_itself() -> None:
    """Cancelled from outside (the outer deadline, a stop), it is no TimeoutError of its own."""
    clock = ManualClock()
    trace: list[str] = []

    async def worker() -> None:
        with clock.move_on_after(1.0) as outer:
            try:
                with clock.fail_after(1.0):
                    await anyio.sleep_forever()
            except TimeoutError:
                trace.append("timeout")
                raise
        trace.append(f"outer caught {outer.cancelled_caught}")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(worker)
            await wait_until(lambda: clock.deadlines == 2)
            # Both come due at once: the outer scope's cancellation wins, as in anyio.
            await clock.advance_to_next()
    assert trace == ["outer caught True"]

    trace.clear()
    with anyio.fail_after(5):
        with anyio.CancelScope() as cancelled:
            try:
                with clock.fail_after(10.0):
                    cancelled.cancel()
                    await anyio.lowlevel.checkpoint()
            except TimeoutError:
                trace.append("timeout")
    assert trace == [], "a plain outer cancel is not the inner deadline"
    assert cancelled.cancelled_caught
    assert clock.deadlines == 0


async def test_a_scope_cancelled_by_its_own_code_is_no_timeout() -> None:
    clock = ManualClock()
    with anyio.fail_after(5):
        with clock.fail_after(10.0) as scope:
            scope.cancel()
            await anyio.lowlevel.checkpoint()
    assert scope.cancelled_caught
    assert clock.deadlines == 0


async def test_exceptions_from_the_body_propagate_unwrapped() -> None:
    clock = ManualClock()
    with anyio.fail_after(5):

        async def failing() -> None:
            with clock.fail_after(10.0):
                await anyio.lowlevel.checkpoint()
                raise KeyError("mine")

        def timing_out() -> None:
            with clock.move_on_after(10.0):
                raise TimeoutError("not the clock's")

        with pytest.raises(KeyError) as caught:
            await failing()
        assert type(caught.value) is KeyError
        with pytest.raises(TimeoutError, match="not the clock's"):
            timing_out()
    assert clock.deadlines == 0
    assert clock.next_due() is None


async def test_the_system_clock_cuts_off_on_real_time() -> None:
    with anyio.fail_after(5):
        with SYSTEM_CLOCK.move_on_after(0.01) as scope:
            await anyio.sleep_forever()
        assert scope.cancelled_caught
        with pytest.raises(TimeoutError), SYSTEM_CLOCK.fail_after(0.01):
            await anyio.sleep_forever()
        with SYSTEM_CLOCK.fail_after(5) as scope:
            await anyio.lowlevel.checkpoint()
        assert not scope.cancelled_caught


async def settled() -> None:
    with anyio.fail_after(5):
        await anyio.wait_all_tasks_blocked()
