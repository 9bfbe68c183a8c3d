"""Delivery of app-status reports: the latest wanted status always ends up on the server.

One send at a time, always of the newest wanted status. A report equal to the last confirmed one
is not sent (rule 6) unless a send's outcome is unknown (a timeout, a reset, a 5xx, cancelled by
the stop path): "working" applied but unanswered, then "idle" equal to the confirmed idle, would
show the task working for ever. Only a send refused before it left, or a 4xx, changed nothing.
Failures retry with backoff until a newer report supersedes them; a rejection (400, 401) is
logged once and not retried, until another report is wanted (then an equal one is sent afresh).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import structlog

from agent.clock import SYSTEM_CLOCK, Clock
from agent.errors import NotSent, RateLimited, Rejected, RemoteError, TryAgain
from agent.models import AppStatus
from agent.retry import REPORT_BACKOFF, Backoff, worth_waiting

log = structlog.get_logger("agent.daemon.reporter")

Send = Callable[[AppStatus], Awaitable[None]]


class Reporter:
    """The wanted and the delivered status, and the delivery loop."""

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
        # From the start of a send until its outcome is known: a send cancelled by the stop
        # path leaves it set, so the stop path sends again.
        self._in_doubt = False
        self._changed = anyio.Event()

    @property
    def wanted(self) -> AppStatus | None:
        return self._wanted

    @property
    def delivered(self) -> AppStatus | None:
        """The last status the server confirmed."""
        return self._delivered

    @property
    def in_doubt(self) -> bool:
        """A send's outcome is unknown: the server may hold another state."""
        return self._in_doubt

    def want(self, status: AppStatus | None) -> None:
        """Ask for `status` to be delivered (None: nothing)."""
        if status is None or status == self._wanted:
            return
        self._wanted = status
        # A rejection was of that report: an equal one wanted again later (the next turn's
        # working) is a new report, and Coder may have changed its mind (a proxy's garbage).
        self._rejected = None
        self._changed.set()

    @property
    def pending(self) -> AppStatus | None:
        """The status still to deliver, if any."""
        settled = self._wanted == self._delivered and not self._in_doubt
        return None if settled or self._wanted == self._rejected else self._wanted

    async def run(self) -> None:
        while True:
            self._changed = anyio.Event()
            if self.pending is None:
                await self._changed.wait()
                continue
            await self.flush()

    async def flush(self, deadline: float | None = None) -> bool:
        """Deliver what is pending, retrying until delivered, superseded or `deadline` (on the
        clock); True when nothing is left pending."""
        failures = 0
        while (target := self.pending) is not None:
            # Reset before the send: a want() during the send must cut the backoff short.
            self._changed = anyio.Event()
            was_in_doubt = self._in_doubt
            self._in_doubt = True
            try:
                await self._send(target)
            except TryAgain as exc:
                # Never sent, or a 429, changed nothing; a 5xx may come after the row was stored
                # (and a gateway's 502/504 says nothing).
                if isinstance(exc, NotSent | RateLimited):
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
                # Without a deadline even a TLS refusal is retried (a renewal can fix it).
                if deadline is not None and not worth_waiting(
                    exc, wait, self._clock.now(), deadline
                ):
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
                # Unsupported or BadResponse: whether it was applied is unknown, doubt stays.
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
