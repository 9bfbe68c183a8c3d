"""Delivery of app-status reports: the latest wanted status always ends up on the server.

One send at a time, always of the newest wanted status, so the server never receives a stale
report after a newer one. A report equal to the last *delivered* one is not sent (rule 6). A
failed send is retried with capped, jittered backoff until it succeeds or a newer report
supersedes it (the wait is cut short then). A rejection (400, 401) is logged once with the
server's message and that report is not retried; a later, different report is tried afresh.
Problems are logged once per streak, not once per retry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import structlog

from agent.clock import SYSTEM_CLOCK, Clock
from agent.errors import Rejected, RemoteError, TryAgain
from agent.models import AppStatus
from agent.retry import REPORT_BACKOFF, Backoff

log = structlog.get_logger("agent.reporter")

Send = Callable[[AppStatus], Awaitable[None]]


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
        self._changed = anyio.Event()
        self.sent = 0

    @property
    def wanted(self) -> AppStatus | None:
        """The newest status asked for."""
        return self._wanted

    @property
    def delivered(self) -> AppStatus | None:
        """The last status the server accepted."""
        return self._delivered

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
        if wanted is None or wanted in (self._delivered, self._rejected):
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

        Returns True when nothing is left pending.
        """
        failures = 0
        while (target := self.pending) is not None:
            # Reset before the send: a want() during the send must cut the backoff short.
            self._changed = anyio.Event()
            try:
                self.sent += 1
                await self._send(target)
            except TryAgain as exc:
                failures += 1
                if failures == 1:
                    log.warning("status_delivery_failed", state=str(target.state), error=str(exc))
                wait = self._backoff.next_wait(failures, exc)
                if deadline is not None and self._clock.now() + wait >= deadline:
                    return False
                await self._clock.wait(self._changed, wait)
                continue
            except Rejected as exc:
                self._rejected = target
                log.error(
                    "status_rejected", state=str(target.state), status=exc.status, error=exc.detail
                )
                failures = 0
                continue
            except RemoteError as exc:
                self._rejected = target
                log.error("status_rejected", state=str(target.state), error=str(exc))
                continue
            self._delivered = target
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
