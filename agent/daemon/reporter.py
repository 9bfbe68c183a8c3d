"""Delivery of app-status reports: the latest wanted status always ends up on the server.

One send at a time, always of the newest wanted status, so the server never receives a stale
report after a newer one. A report equal to the last *confirmed* one is not sent (rule 6),
unless the server's state is in doubt: a send whose outcome is unknown (sent, then a timeout,
a reset, a 5xx, or cancelled mid-flight by the stop path) may or may not have been applied, so
after it the next wanted status is always sent, even when it equals the last confirmed one.
Without that, "working" applied but unanswered, then "idle" (equal to the confirmed idle) would
leave the task shown as working for ever. Only a send that provably changed nothing (refused
before it left, or any 4xx answer) keeps the confirmed state trustworthy.

A failed send is retried with capped, jittered backoff until it succeeds or a newer report
supersedes it (the wait is cut short then). A rejection (400, 401) is logged once with the
server's message and that report is not retried; a later, different report is tried afresh.
Problems are logged once per streak, not once per retry. Time comes from the injected clock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import structlog

from agent.clock import SYSTEM_CLOCK, Clock
from agent.errors import NotSent, RateLimited, Rejected, RemoteError, TryAgain
from agent.models import AppStatus
from agent.retry import REPORT_BACKOFF, Backoff

log = structlog.get_logger("agent.daemon.reporter")

Send = Callable[[AppStatus], Awaitable[None]]


def _changed_nothing(exc: RemoteError) -> bool:
    """True when the failed send provably left the server's state as it was."""
    # NotSent: the request never left. A 4xx (429 included) is an answer refusing it. A 5xx is
    # not: a server may fail after storing the row (and a gateway's 502/504 says nothing).
    return isinstance(exc, NotSent | Rejected | RateLimited)


class Reporter:
    """Holds the wanted and the delivered status and runs the delivery loop."""

    def __init__(
        self,
        send: Send,
        backoff: Backoff = REPORT_BACKOFF,
        on_delivered: Callable[[AppStatus], None] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._send = send
        self._backoff = backoff
        self._on_delivered = on_delivered
        self._clock = clock
        self._wanted: AppStatus | None = None
        self._delivered: AppStatus | None = None
        self._rejected: AppStatus | None = None
        # True from the start of a send until its outcome is known: a send cut off by
        # cancellation (the stop path) leaves it True, so the stop path sends again.
        self._in_doubt = False
        self._changed = anyio.Event()
        self.sent = 0

    @property
    def wanted(self) -> AppStatus | None:
        """The newest status asked for."""
        return self._wanted

    @property
    def delivered(self) -> AppStatus | None:
        """The last status the server confirmed."""
        return self._delivered

    @property
    def in_doubt(self) -> bool:
        """True when a send's outcome is unknown: the server may hold another state."""
        return self._in_doubt

    def want(self, status: AppStatus | None) -> None:
        """Ask for `status` to be delivered (no-op when it is None or already wanted)."""
        if status is None or status == self._wanted:
            return
        self._wanted = status
        self._changed.set()

    @property
    def pending(self) -> AppStatus | None:
        """The status still to deliver, if any."""
        wanted = self._wanted
        if wanted is None or wanted == self._rejected:
            return None
        if wanted == self._delivered and not self._in_doubt:
            return None
        return wanted

    async def run(self) -> None:
        """Deliver until cancelled."""
        while True:
            self._changed = anyio.Event()
            if self.pending is None:
                await self._changed.wait()
                continue
            await self.flush()

    async def flush(self, deadline: float | None = None) -> bool:
        """Deliver what is pending, retrying until delivered, superseded or `deadline`.

        `deadline` is on the clock's scale. Returns True when nothing is left pending.
        """
        failures = 0
        while (target := self.pending) is not None:
            # Reset before the send: a want() during the send must cut the backoff short.
            self._changed = anyio.Event()
            was_in_doubt = self._in_doubt
            self._in_doubt = True
            try:
                self.sent += 1
                await self._send(target)
            except TryAgain as exc:
                if _changed_nothing(exc):
                    self._in_doubt = was_in_doubt
                failures += 1
                if failures == 1:
                    log.warning(
                        "status_delivery_failed",
                        state=str(target.state),
                        error=str(exc),
                        outcome="unknown" if self._in_doubt else "not applied",
                    )
                wait = self._backoff.next_wait(failures, exc)
                if deadline is not None and self._clock.now() + wait >= deadline:
                    return False
                await self._clock.wait(self._changed, wait)
                continue
            except Rejected as exc:
                self._in_doubt = was_in_doubt
                self._rejected = target
                log.error(
                    "status_rejected", state=str(target.state), status=exc.status, error=exc.detail
                )
                failures = 0
                continue
            except RemoteError as exc:
                # Unsupported or BadResponse: the server answered, but not as the contract
                # says; whether it applied the report is unknown, so doubt stays.
                self._rejected = target
                log.error("status_rejected", state=str(target.state), error=str(exc))
                continue
            self._delivered = target
            self._in_doubt = False
            log.info(
                "status_delivered",
                state=str(target.state),
                message=target.message,
                uri=target.uri or None,
                retries=failures,
            )
            failures = 0
            if self._on_delivered is not None:
                self._on_delivered(target)
        return True
