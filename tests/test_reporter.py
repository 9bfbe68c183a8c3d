"""Delivery: the latest wanted status always arrives, never a stale one, never twice."""

from __future__ import annotations

import anyio
import pytest
from structlog.testing import capture_logs

from agent.errors import Rejected, ServerError
from agent.models import AppState, AppStatus
from agent.reporter import Reporter
from agent.retry import Backoff
from tests.fakes import wait_until

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
    reporter = Reporter(server.send, FAST)
    with capture_logs() as logs, anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(reporter.run)
            reporter.want(WORKING)
            await settle(reporter)
            await anyio.sleep(0.02)
            assert server.attempts == [WORKING]
            reporter.want(IDLE)  # a different report is tried afresh
            await settle(reporter)
            group.cancel_scope.cancel()
    assert server.attempts == [WORKING, IDLE]
    assert server.delivered == [IDLE]
    rejected = [entry for entry in logs if entry["event"] == "status_rejected"]
    assert len(rejected) == 1
    assert 'No app found with slug "x"' in rejected[0]["error"]


async def test_flush_gives_up_at_the_deadline() -> None:
    server = Server(fail=1000)
    reporter = Reporter(server.send, Backoff(base=0.01, cap=0.02))
    reporter.want(COMPLETE)
    with anyio.fail_after(5):
        done = await reporter.flush(deadline=anyio.current_time() + 0.1)
    assert done is False
    assert reporter.pending == COMPLETE
    assert 2 <= len(server.attempts) < 1000
