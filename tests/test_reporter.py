"""Delivery: the latest wanted status always arrives, never a stale one, never twice."""

from __future__ import annotations

import anyio
import pytest
from structlog.testing import capture_logs

from agent.daemon.reporter import Reporter
from agent.errors import (
    BadResponse,
    NotSent,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    ServerError,
    TLSRefused,
)
from agent.models import AppState, AppStatus
from agent.retry import Backoff
from tests.fakes import wait_until
from tests.manualclock import ManualClock

pytestmark = pytest.mark.anyio

FAST = Backoff(base=0.001, cap=0.004)
WORKING = AppStatus(AppState.WORKING, "w")
IDLE = AppStatus(AppState.IDLE, "i")
COMPLETE = AppStatus(AppState.COMPLETE, "done")


class Server:
    """Records deliveries; fails the next `fail` sends, optionally holding each send."""

    def __init__(self, fail: int = 0, error: Exception | None = None) -> None:
        self.fail = fail
        self.error = error or ServerError("Coder", "PATCH app-status", "down", status=503)
        self.attempts: list[AppStatus] = []
        self.delivered: list[AppStatus] = []
        self.gate: anyio.Event | None = None

    async def send(self, status: AppStatus) -> None:
        self.attempts.append(status)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            self.fail -= 1
            raise self.error
        self.delivered.append(status)


async def settle(reporter: Reporter) -> None:
    await wait_until(lambda: reporter.pending is None)


async def test_identical_reports_are_not_resent() -> None:
    server = Server()
    reporter = Reporter(server.send, FAST)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(reporter.run)
            for status in (WORKING, WORKING, IDLE, IDLE, AppStatus(AppState.IDLE, "i")):
                reporter.want(status)
                await settle(reporter)
            group.cancel_scope.cancel()
    assert server.delivered == [WORKING, IDLE]


async def test_a_failed_send_is_retried_until_delivered() -> None:
    server = Server(fail=3)
    reporter = Reporter(server.send, FAST)
    with capture_logs() as logs, anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(reporter.run)
            reporter.want(WORKING)
            await settle(reporter)
            group.cancel_scope.cancel()
    assert server.attempts == [WORKING] * 4
    assert server.delivered == [WORKING]
    assert reporter.delivered == WORKING
    failures = [entry for entry in logs if entry["event"] == "status_delivery_failed"]
    assert len(failures) == 1, "one line per problem, not one per retry"
    delivered = [entry for entry in logs if entry["event"] == "status_delivered"]
    assert delivered[0]["retries"] == 3


async def test_a_newer_report_supersedes_a_failing_one_and_cuts_the_wait() -> None:
    server = Server(fail=1)
    reporter = Reporter(server.send, Backoff(base=60, cap=60))
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(reporter.run)
            reporter.want(WORKING)
            await wait_until(lambda: bool(server.attempts))
            reporter.want(COMPLETE)  # during a 60 s backoff: must not wait it out
            await settle(reporter)
            group.cancel_scope.cancel()
    assert server.delivered == [COMPLETE]


async def test_never_a_stale_report_after_a_newer_one() -> None:
    server = Server()
    server.gate = anyio.Event()
    reporter = Reporter(server.send, FAST)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(reporter.run)
            reporter.want(WORKING)
            await wait_until(lambda: bool(server.attempts))
            reporter.want(IDLE)
            reporter.want(COMPLETE)
            server.gate.set()
            await settle(reporter)
            group.cancel_scope.cancel()
    assert server.delivered == [WORKING, COMPLETE]


async def test_a_rejection_is_logged_once_and_not_retried() -> None:
    rejection = Rejected("Coder", "PATCH app-status", 'No app found with slug "x"', status=400)
    server = Server(fail=1, error=rejection)
    clock = ManualClock()
    reporter = Reporter(server.send, FAST, clock=clock)
    with capture_logs() as logs, anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(reporter.run)
            reporter.want(WORKING)
            await settle(reporter)
            await anyio.wait_all_tasks_blocked()
            # A retry would be waiting for its backoff on the clock: nothing waits.
            assert clock.sleepers == 0
            assert server.attempts == [WORKING]
            reporter.want(IDLE)  # a different report is tried afresh
            await settle(reporter)
            group.cancel_scope.cancel()
    assert server.attempts == [WORKING, IDLE]
    assert server.delivered == [IDLE]
    rejected = [entry for entry in logs if entry["event"] == "status_rejected"]
    assert len(rejected) == 1
    assert 'No app found with slug "x"' in rejected[0]["error"]


# -- outcomes unknown: the server's state is in doubt after a send that was not answered ---------


class DoubtfulServer:
    """Applies every report; for the next `unknown` sends, raises as if the answer was lost."""

    def __init__(self) -> None:
        self.applied: list[AppStatus] = []
        self.failures: list[Exception] = []

    async def send(self, status: AppStatus) -> None:
        if self.failures:
            error = self.failures.pop(0)
            if not isinstance(error, NotSent):
                self.applied.append(status)  # applied, but the answer never came back
            raise error
        self.applied.append(status)


LOST = OutcomeUnknown("Coder", "PATCH app-status", "ReadTimeout")
REFUSED = NotSent("Coder", "PATCH app-status", "ConnectError: refused")


async def test_after_an_unknown_outcome_an_equal_report_is_sent_again() -> None:
    # idle confirmed; working applied but its answer lost; the turn ends: idle equals the last
    # confirmed report, yet the server holds working, so idle must be sent.
    server = DoubtfulServer()
    clock = ManualClock()
    reporter = Reporter(server.send, Backoff(base=10, cap=10), clock=clock)
    with anyio.fail_after(5):
        reporter.want(IDLE)
        assert await reporter.flush()
        server.failures.append(LOST)
        reporter.want(WORKING)
        assert not await reporter.flush(deadline=clock.now())  # gave up after the lost answer
        assert reporter.in_doubt
        reporter.want(IDLE)
        assert reporter.pending == IDLE
        assert await reporter.flush()
    assert server.applied == [IDLE, WORKING, IDLE]
    assert not reporter.in_doubt


class LateServer:
    """A server behind a proxy that drops the connection of the next `late` sends and applies
    them only when the test calls `apply_late` (after newer reports, maybe)."""

    def __init__(self) -> None:
        self.applied: list[AppStatus] = []
        self.late = 0
        self.held: list[AppStatus] = []

    async def send(self, status: AppStatus) -> None:
        if self.late:
            self.late -= 1
            self.held.append(status)
            raise LOST
        self.applied.append(status)

    def apply_late(self) -> None:
        self.applied += self.held
        self.held.clear()


async def test_a_send_applied_after_a_newer_confirmed_one_is_overwritten_once() -> None:
    # working's answer lost (the proxy still holds it), idle confirmed, then working applied:
    # Coder shows working for good unless idle is sent again once the late apply had its time.
    server = LateServer()
    clock = ManualClock()
    reporter = Reporter(server.send, Backoff(base=10, cap=10), clock=clock, recheck_after=5)
    with capture_logs() as logs, anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(reporter.run)
            reporter.want(IDLE)
            await wait_until(lambda: server.applied == [IDLE] and clock.sleepers == 0)
            server.late = 1
            reporter.want(WORKING)
            await wait_until(lambda: server.held == [WORKING] and clock.sleepers == 1)
            reporter.want(IDLE)  # cuts the backoff short
            await wait_until(lambda: server.applied == [IDLE, IDLE] and clock.sleepers == 1)
            server.apply_late()
            clock.advance(4.9)
            await wait_until(lambda: clock.sleepers == 1)
            assert server.applied == [IDLE, IDLE, WORKING], "not before the recheck is due"
            clock.advance(0.1)
            await wait_until(lambda: server.applied == [IDLE, IDLE, WORKING, IDLE])
            await wait_until(lambda: reporter.pending is None and clock.sleepers == 0)
            group.cancel_scope.cancel()
    assert [line["event"] for line in logs].count("status_resent") == 1


async def test_no_recheck_when_every_send_of_unknown_outcome_was_of_the_confirmed_status() -> None:
    server = LateServer()
    clock = ManualClock()
    reporter = Reporter(server.send, Backoff(base=10, cap=10), clock=clock, recheck_after=5)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(reporter.run)
            server.late = 1
            reporter.want(IDLE)
            await wait_until(lambda: server.held == [IDLE] and clock.sleepers == 1)
            await clock.advance_to_next()  # the retry
            await wait_until(lambda: server.applied == [IDLE] and reporter.pending is None)
            await wait_until(lambda: clock.sleepers == 0)
            server.apply_late()
            group.cancel_scope.cancel()
    assert server.applied == [IDLE, IDLE], "no third send: a late idle changes nothing"


async def test_a_report_that_never_left_keeps_the_confirmed_state() -> None:
    server = DoubtfulServer()
    clock = ManualClock()
    reporter = Reporter(server.send, Backoff(base=10, cap=10), clock=clock)
    with anyio.fail_after(5):
        reporter.want(IDLE)
        assert await reporter.flush()
        server.failures.append(REFUSED)
        reporter.want(WORKING)
        assert not await reporter.flush(deadline=clock.now())
        assert not reporter.in_doubt
        reporter.want(IDLE)
        assert reporter.pending is None, "the server still holds idle: nothing to send"
    assert server.applied == [IDLE]


@pytest.mark.parametrize(
    ("error", "doubt"),
    [
        (ServerError("Coder", "PATCH app-status", "boom", status=500), True),
        (ServerError("Coder", "PATCH app-status", "gateway", status=504), True),
        (RateLimited("Coder", "PATCH app-status", "slow down"), False),
        (Rejected("Coder", "PATCH app-status", "bad", status=400), False),
        (REFUSED, False),
        (LOST, True),
    ],
)
async def test_which_failures_leave_the_server_in_doubt(error: Exception, doubt: bool) -> None:
    async def send(status: AppStatus) -> None:
        if status == WORKING:
            raise error

    clock = ManualClock()
    reporter = Reporter(send, Backoff(base=10, cap=10), clock=clock)
    reporter.want(IDLE)
    with anyio.fail_after(5):
        assert await reporter.flush()
        reporter.want(WORKING)
        await reporter.flush(deadline=clock.now())
    assert reporter.in_doubt is doubt


async def test_a_send_cancelled_in_flight_leaves_the_server_in_doubt() -> None:
    # The stop path cancels the reporter mid-send: the PATCH may have been applied.
    server = Server()
    reporter = Reporter(server.send, FAST)
    reporter.want(IDLE)
    with anyio.fail_after(5):
        assert await reporter.flush()
        server.gate = anyio.Event()
        reporter.want(WORKING)
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as group:
                group.start_soon(reporter.flush)
                await wait_until(lambda: len(server.attempts) == 2)
                scope.cancel()
        reporter.want(IDLE)
        assert reporter.pending == IDLE, "the stop path must confirm idle"
        server.gate.set()
        assert await reporter.flush()
    assert server.delivered == [IDLE, IDLE]


async def test_retry_waits_run_on_the_injected_clock() -> None:
    server = Server(fail=2)
    clock = ManualClock()
    reporter = Reporter(server.send, Backoff(base=8, cap=8), clock=clock)
    with capture_logs() as logs, anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(reporter.run)
            reporter.want(WORKING)
            await wait_until(lambda: len(server.attempts) == 1 and clock.sleepers == 1)
            clock.advance(8)
            await wait_until(lambda: len(server.attempts) == 2 and clock.sleepers == 1)
            clock.advance(8)
            await settle(reporter)
            group.cancel_scope.cancel()
    assert server.delivered == [WORKING]
    failures = [entry for entry in logs if entry["event"] == "status_delivery_failed"]
    assert len(failures) == 1
    assert failures[0]["outcome"] == "unknown"  # a 503 may come after the row was stored


async def test_flush_gives_up_at_the_deadline_on_the_injected_clock() -> None:
    server = Server(fail=1000)
    clock = ManualClock(start=100.0)
    reporter = Reporter(server.send, Backoff(base=1, cap=1), clock=clock)
    reporter.want(COMPLETE)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            result: list[bool] = []

            async def flush() -> None:
                result.append(await reporter.flush(deadline=103.0))

            group.start_soon(flush)
            for attempt in range(1, 10):
                await wait_until(lambda: bool(result) or clock.sleepers == 1)
                if result:
                    break
                clock.advance(1)
                # Wait for the retry the advance released (or the end) before moving again.
                await wait_until(
                    lambda n=attempt: bool(result) or len(server.attempts) > n  # type: ignore[misc]
                )
    assert result == [False], "gave up at the deadline"
    assert reporter.pending == COMPLETE, "still wanted: the next run sends it"
    assert 2 <= len(server.attempts) <= 4


async def test_within_a_deadline_a_tls_refusal_is_given_up_at_once_without_one_retried() -> None:
    # At the stop (a deadline) no retry can fix an untrusted certificate, so the budget goes to
    # the snapshot; while running (no deadline) a renewed certificate can, so it is retried.
    untrusted = TLSRefused("Coder", "PATCH app-status", "TLS failed: CERTIFICATE_VERIFY_FAILED")
    server = DoubtfulServer()
    clock = ManualClock()
    reporter = Reporter(server.send, Backoff(base=10, cap=10), clock=clock)
    with anyio.fail_after(5):
        server.failures.append(untrusted)
        reporter.want(WORKING)
        assert not await reporter.flush(deadline=clock.now() + 1000)
        assert clock.sleepers == 0, "no wait for a retry"
        assert reporter.pending == WORKING, "still wanted"
        server.failures.append(untrusted)
        async with anyio.create_task_group() as group:
            group.start_soon(reporter.flush)
            await wait_until(lambda: clock.sleepers == 1)  # the retry's wait
            clock.advance(10)
            await wait_until(lambda: reporter.pending is None)
    assert server.applied == [WORKING]


@pytest.mark.parametrize(
    "error",
    [
        Rejected("Coder", "PATCH app-status", "bad", status=400),
        BadResponse("Coder", "PATCH app-status", "an HTML page, not JSON"),
    ],
)
async def test_a_rejection_holds_for_that_report_only_not_for_its_next_turn(
    error: Exception,
) -> None:
    # working rejected once (a proxy's garbage answer); idle delivered; working again, a turn
    # later: Coder shows idle while the agent works unless this working is sent.
    server = Server(fail=1, error=error)
    reporter = Reporter(server.send, FAST)
    with anyio.fail_after(5):
        for status in (WORKING, IDLE, WORKING):
            reporter.want(status)
            assert await reporter.flush()
    assert server.attempts == [WORKING, IDLE, WORKING]
    assert server.delivered == [IDLE, WORKING]
