"""The one retry policy (backoff, Retry-After within the cap, give-up) and the blocking loop.

The async loop (`deliver`) is tested with the Coder client it serves (tests/test_coder.py).
"""

from __future__ import annotations

import contextlib
from types import SimpleNamespace
from typing import TYPE_CHECKING, cast

import pytest

from agent.errors import (
    CutOff,
    NotSent,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    ServerError,
    TLSRefused,
    TryAgain,
)
from agent.retry import (
    CALL_BACKOFF,
    REPORT_BACKOFF,
    Backoff,
    cut_off,
    deliver,
    deliver_blocking,
    wait_or_give_up,
)

if TYPE_CHECKING:
    from agent.clock import Clock as ClockProtocol


class Clock:
    """Blocking time the test drives: sleeping moves it."""

    def __init__(self) -> None:
        self.time = 100.0
        self.slept: list[float] = []

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.time += seconds


def test_a_policy_is_an_immutable_value() -> None:
    assert Backoff(0.2, 5.0) == CALL_BACKOFF
    assert hash(Backoff(0.2, 5.0)) == hash(CALL_BACKOFF)
    with pytest.raises(AttributeError):
        CALL_BACKOFF.cap = 1.0


def test_full_jitter_under_an_exponential_ceiling_up_to_the_cap() -> None:
    backoff = Backoff(0.5, 4.0)
    assert backoff.wait(1, rng=lambda: 1.0) == 0.5
    assert backoff.wait(3, rng=lambda: 1.0) == 2.0
    assert backoff.wait(30, rng=lambda: 1.0) == 4.0
    assert backoff.wait(10_000, rng=lambda: 0.25) == 1.0, "no overflow on a long outage"


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        (None, 0.2),  # the policy's own wait
        (3.0, 3.0),  # the server's, when longer
        (0.1, 0.2),  # never shorter than the policy's
        (3600.0, 5.0),  # never beyond the cap: the one Retry-After rule
    ],
)
def test_the_server_hint_wins_when_longer_within_the_cap(
    hint: float | None, expected: float
) -> None:
    error = ServerError("Coder", "POST", "busy", 503, retry_after=hint)
    assert CALL_BACKOFF.next_wait(1, error, rng=lambda: 1.0) == expected
    limited = RateLimited("Coder", "PATCH", "slow down", 3600.0)
    assert REPORT_BACKOFF.next_wait(1, limited, rng=lambda: 0.0) == REPORT_BACKOFF.cap


def test_a_wait_that_would_end_at_or_past_the_deadline_gives_up() -> None:
    error = ServerError("Coder", "POST", "busy", 503, retry_after=3.0)
    assert wait_or_give_up(CALL_BACKOFF, 1, error, now=10.0, deadline=13.1) == 3.0
    with pytest.raises(ServerError):
        wait_or_give_up(CALL_BACKOFF, 1, error, now=10.0, deadline=13.0)


def test_try_again_is_retried_until_it_succeeds() -> None:
    clock = Clock()
    calls: list[float] = []
    retries: list[float] = []

    def call(remaining: float) -> str:
        calls.append(remaining)
        if len(calls) < 3:
            raise ServerError("Coder", "POST", "down", 503)
        return "done"

    result = deliver_blocking(
        call,
        deadline=clock.time + 5.0,
        now=clock.now,
        sleep=clock.sleep,
        on_retry=lambda exc, wait: retries.append(wait),
    )
    assert result == "done"
    assert len(calls) == 3
    assert retries == clock.slept
    assert calls[0] == 5.0
    assert calls[2] == pytest.approx(5.0 - sum(clock.slept))


def test_a_hint_past_the_deadline_is_not_waited_for() -> None:
    clock = Clock()

    def call(remaining: float) -> None:
        raise ServerError("Coder", "POST", "later", 503, retry_after=10.0)

    with pytest.raises(ServerError):
        deliver_blocking(call, deadline=clock.time + 5.0, now=clock.now, sleep=clock.sleep)
    assert clock.slept == []


def test_a_rejection_is_raised_at_once() -> None:
    clock = Clock()
    calls = 0

    def call(remaining: float) -> None:
        nonlocal calls
        calls += 1
        raise Rejected("Coder", "POST", "bad", 400)

    with pytest.raises(Rejected):
        deliver_blocking(call, deadline=clock.time + 5.0, now=clock.now, sleep=clock.sleep)
    assert calls == 1


def test_no_time_left_is_not_sent() -> None:
    clock = Clock()
    with pytest.raises(NotSent):
        deliver_blocking(
            lambda remaining: None, deadline=clock.time, now=clock.now, sleep=clock.sleep
        )


def test_waits_stay_within_the_deadline() -> None:
    clock = Clock()

    def call(remaining: float) -> None:
        clock.time += min(remaining, 0.3)  # each attempt takes a while, then fails
        raise TryAgain("Coder", "POST", "again")

    with pytest.raises(TryAgain):
        deliver_blocking(
            call,
            deadline=clock.time + 5.0,
            now=clock.now,
            sleep=clock.sleep,
            backoff=Backoff(0.2, 1.0),
        )
    assert clock.time <= 100.0 + 5.0


def test_an_attempt_cut_off_at_the_deadline_names_what_the_one_before_told() -> None:
    # The budget ends in the middle of an attempt: "no answer before the deadline" alone would
    # hide why the earlier attempts failed, which is what the reader of the last line needs.
    clock = Clock()
    errors = [NotSent("Coder", "POST", "ConnectError: [SSL: CERTIFICATE_VERIFY_FAILED]")]

    def call(remaining: float) -> None:
        if errors:
            raise errors.pop()
        clock.time += remaining  # this one runs into the deadline
        raise cut_off("Coder")

    with pytest.raises(CutOff) as failed:
        deliver_blocking(call, deadline=clock.time + 5.0, now=clock.now, sleep=clock.sleep)
    assert isinstance(failed.value, OutcomeUnknown), "the server may have seen the last one"
    assert "no answer before the deadline" in str(failed.value)
    assert "CERTIFICATE_VERIFY_FAILED" in str(failed.value)


def test_a_cut_off_first_attempt_says_only_that() -> None:
    clock = Clock()

    def call(remaining: float) -> None:
        clock.time += remaining
        raise cut_off("Coder")

    with pytest.raises(CutOff, match=r"no answer before the deadline$"):
        deliver_blocking(call, deadline=clock.time + 5.0, now=clock.now, sleep=clock.sleep)


class OverrunningClock(Clock):
    """A loaded machine: every sleep ends well past the time asked for."""

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds + 10.0)

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)

    def fail_after(self, seconds: float) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def for_async(self) -> ClockProtocol:
        """This time, as the async loop (`deliver`) takes a clock."""
        view = SimpleNamespace(now=self.now, fail_after=self.fail_after, sleep=self.asleep)
        return cast("ClockProtocol", view)


def test_a_wait_that_overruns_the_deadline_keeps_the_last_error() -> None:
    # Past the deadline after the wait, no attempt is started; what the caller is told is why
    # the last attempt failed, not "deadline reached" (issue 20: the status stays true).
    clock = OverrunningClock()

    def call(remaining: float) -> None:
        raise NotSent("Coder", "POST", "ConnectError: [SSL: CERTIFICATE_VERIFY_FAILED]")

    with pytest.raises(NotSent, match="CERTIFICATE_VERIFY_FAILED"):
        deliver_blocking(call, deadline=clock.time + 5.0, now=clock.now, sleep=clock.sleep)
    assert len(clock.slept) == 1, "one wait, then no attempt past the deadline"


@pytest.mark.anyio
async def test_the_async_loop_keeps_the_last_error_past_the_deadline_too() -> None:
    clock = OverrunningClock()
    calls = 0

    async def call() -> None:
        nonlocal calls
        calls += 1
        raise NotSent("Coder", "POST", "ConnectError: [Errno 111] Connection refused")

    with pytest.raises(NotSent, match="Connection refused"):
        await deliver(call, deadline=clock.time + 5.0, clock=clock.for_async())
    assert calls == 1


def test_a_tls_refusal_is_not_retried_within_the_deadline() -> None:
    # An untrusted certificate, or a server that does not speak TLS: no retry inside a stop
    # budget or a hook budget can fix it, and waiting for the budget only delays the stop.
    clock = Clock()
    calls = 0

    def call(remaining: float) -> None:
        nonlocal calls
        calls += 1
        raise TLSRefused("Coder", "POST", "TLS failed: [SSL: CERTIFICATE_VERIFY_FAILED]")

    with pytest.raises(TLSRefused):
        deliver_blocking(call, deadline=clock.time + 5.0, now=clock.now, sleep=clock.sleep)
    assert (calls, clock.slept) == (1, [])


@pytest.mark.anyio
async def test_the_async_loop_does_not_retry_a_tls_refusal_either() -> None:
    clock = OverrunningClock()
    calls = 0

    async def call() -> None:
        nonlocal calls
        calls += 1
        raise TLSRefused("Coder", "POST", "TLS failed: [SSL: CERTIFICATE_VERIFY_FAILED]")

    with pytest.raises(TLSRefused):
        await deliver(call, deadline=clock.time + 5.0, clock=clock.for_async())
    assert (calls, clock.slept) == (1, [])
