"""Delivery of app-status reports: the latest wanted status always ends up on the server.

One send at a time, always of the newest wanted status. A report equal to the last confirmed one
is not sent (rule 6) unless a send's outcome is unknown (a timeout, a reset, a 5xx, cancelled by
the stop path): "working" applied but unanswered, then "idle" equal to the confirmed idle, would
show the task working for ever. Only a send refused before it left, or a 4xx, changed nothing.
Failures retry with backoff until a newer report supersedes them; a rejection (400, 401) is
logged once and not retried, until another report is wanted (then an equal one is sent afresh).

A send of unknown outcome can also be applied *late*, after a newer report was confirmed (a
proxy dropped the connection but still forwards the request): "working" would then overwrite
the confirmed "idle" and show for good. So a report confirmed after a send of another status
whose outcome is unknown is sent once more, `recheck_after` seconds later (the daemon: the
request timeout), unless a newer one is sent by then.
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
        recheck_after: float = 5.0,
    ) -> None:
        self._send = send
        self._recheck_after = recheck_after
        self._backoff = backoff
        self._on_delivered = on_delivered
        self._clock = clock
        self._wanted: AppStatus | None = None
        self._delivered: AppStatus | None = None
        self._rejected: AppStatus | None = None
        # From the start of a send until its outcome is known: a send cancelled by the stop
        # path leaves it set, so the stop path sends again.
        self._in_doubt = False
        # Statuses sent, with an unknown outcome, since the last confirmation: any of them may
        # still be applied late. When one differs from the next confirmed status, that status
        # is sent again at `_recheck_at` (on the clock).
        self._unknown: set[AppStatus] = set()
        self._recheck_at: float | None = None
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
                if self._recheck_at is None:
                    await self._changed.wait()
                else:
                    await self._clock.wait(self._changed, self._recheck_at - self._clock.now())
                    self._recheck_due()
                continue
            await self.flush()

    def _recheck_due(self) -> None:
        """Once the recheck time has come with nothing newer sent: the confirmed status is in
        doubt again (an older send may have been applied after it), so it is sent again."""
        due = self._recheck_at
        if due is None or self._clock.now() < due or self.pending is not None:
            return
        self._recheck_at = None
        if self._delivered is not None and self._wanted == self._delivered:
            self._in_doubt = True
            log.info(
                "status_resent",
                state=str(self._delivered.state),
                reason="an older send of unknown outcome may have been applied after it",
            )

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
                else:
                    self._unknown.add(target)
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
                self._unknown.add(target)
                self._rejected = target
                log.error("status_rejected", state=str(target.state), error=str(exc))
                continue
            self._delivered = target
            self._in_doubt = False
            self._after_confirmation(target)
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

    def _after_confirmation(self, confirmed: AppStatus) -> None:
        """Schedule the recheck when a send of another status may still be applied late."""
        now = self._clock.now()
        if self._recheck_at is not None and now >= self._recheck_at:
            self._recheck_at = None  # this send came after the window: it settled the doubt
        if self._unknown - {confirmed}:
            self._recheck_at = now + self._recheck_after
        self._unknown.clear()
