"""Which way a status report goes: the Coder agent's socket, or the HTTP PATCH.

The one place that chooses (`planned_transport` before anything is sent, `StatusSender` at each
report), for the daemon and the direct report alike; and so the one place that says whether the
Coder URL and token are needed (`needs_coder_http`).

`CODER_TASK_AGENT_STATUS_TRANSPORT` decides. `http`: always the PATCH (with the agent token).
`socket`: always the agent's socket (no token; Coder >= v2.32). `auto` (the default): the socket
when it is there, is ours, and the agent behind it answers Ping; otherwise HTTP; and the socket
alone when the Coder URL or token is missing (HTTP is no fallback without them). An agent that
does not know the method (`unknown rpc`: older than v2.32) or a socket that is not ours is not
asked again until the socket file changes (an agent restart creates it afresh); a socket that
exists but does not answer is asked again after `REPROBE_AFTER` seconds. `agent not connected
to coderd` means the agent is reconnecting: the report is tried again by the same way.

A `StatusSender` is the reporter's `send`: ONE attempt per call, raising from the error tree as
the HTTP client does, so the reporter's guarantees hold whatever the transport. A switch happens
between attempts, never inside one after a request may have reached its server: a socket call
whose outcome is unknown (dropped, timed out) raises TryAgain, and the reporter's next attempt
re-decides. So a switch neither resends what was delivered (the reporter never asks twice for a
delivered report) nor loses what was not (it keeps asking).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Literal

import anyio
import structlog

from agent.clock import SYSTEM_CLOCK, Clock
from agent.coder.agentsocket import AgentSocketClient, SocketIdentity, socket_identity
from agent.config import Settings, StatusTransport
from agent.errors import (
    ConfigError,
    NotListening,
    Rejected,
    RemoteError,
    TransportError,
    TryAgain,
    Unsupported,
    UntrustedSocket,
)
from agent.models import AppStatus

log = structlog.get_logger("agent.coder.route")

Send = Callable[[AppStatus], Awaitable[None]]
Transport = Literal["socket", "http"]
# A socket that exists but did not answer Ping is asked again after this long (seconds); until
# then reports go by HTTP without first waiting for it to time out again.
REPROBE_AFTER = 60.0


def planned_transport(settings: Settings, *, agent_socket_exists: bool = True) -> Transport | None:
    """The way every status of `settings` goes, when that is known before any is sent; None
    when `auto` decides at each report (StatusSender).

    `agent_socket_exists`: whether the Coder agent's socket is there (a daemon assumes it will
    be: the agent may start after it).
    """
    if settings.status_transport != "auto":
        return "http" if settings.status_transport == "http" else "socket"
    if not agent_socket_exists:
        return "http"
    if settings.coder_url is None or settings.token is None:
        return "socket"
    return None


def needs_coder_http(
    settings: Settings, *, uploads: bool, agent_socket_exists: bool = True
) -> bool:
    """Whether the Coder URL and token are needed before anything starts: to upload a log
    snapshot (`uploads`), or because every status goes by HTTP."""
    return uploads or planned_transport(settings, agent_socket_exists=agent_socket_exists) == "http"


class _Verdict:
    """What the socket file with `identity` is good for, until `until` (None: while it exists)."""

    def __init__(self, identity: SocketIdentity, transport: Transport, until: float | None) -> None:
        self.identity = identity
        self.transport = transport
        self.until = until

    def holds(self, identity: SocketIdentity | None, now: float) -> bool:
        return identity == self.identity and (self.until is None or now < self.until)


class StatusSender:
    """Sends one status by the transport `mode` chooses; see the module docstring.

    `socket` is the agent-socket client (None only with mode `http`); `http` sends by PATCH
    (None when there is no Coder URL or token: then a report that needs HTTP raises ConfigError).
    """

    def __init__(
        self,
        mode: StatusTransport,
        slug: str | None,
        *,
        socket: AgentSocketClient | None,
        http: Send | None,
        clock: Clock = SYSTEM_CLOCK,
        reprobe_after: float = REPROBE_AFTER,
        announce: bool = True,
    ) -> None:
        if mode != "http" and socket is None:
            raise ValueError(f"status transport {mode!r} needs the agent-socket client")
        self.mode = mode
        self._slug = slug
        self._socket = socket
        self._http = http
        self._clock = clock
        self._reprobe_after = reprobe_after
        # False: the first choice is logged at debug only (a one-shot `report` says it in its
        # outcome line, `reason`); every later change is logged as usual.
        self._announce = announce
        # Why the current transport (said in log lines); a forced one by its variable.
        self.reason = "" if mode == "auto" else f"CODER_TASK_AGENT_STATUS_TRANSPORT={mode}"
        self._current: Transport | None = "http" if mode == "http" else None
        if mode == "socket":
            self._current = "socket"
        self._verdict: _Verdict | None = None
        self._lock = anyio.Lock()

    @property
    def transport(self) -> str:
        """`socket` or `http`: the way the last report went (or will go); `auto` before any."""
        return self._current or "auto"

    async def choose(self) -> str:
        """Decide now (auto: ask the socket) and return `transport`; never raises."""
        async with self._lock:
            if self.mode == "auto":
                await self._socket_usable()
            elif self.mode == "socket":
                await self._check_forced_socket()
        return self.transport

    async def __call__(self, status: AppStatus) -> None:
        """Send `status` once. Raises TryAgain, Rejected, Unsupported... (ConfigError: no HTTP)."""
        async with self._lock:
            if self.mode == "http":
                await self._send_http(status)
            elif self.mode == "socket":
                await self._send_forced_socket(status)
            else:
                await self._send_auto(status)

    # -- auto -----------------------------------------------------------------------------------

    async def _send_auto(self, status: AppStatus) -> None:
        if await self._socket_usable():
            try:
                await self._send_socket(status)
            except (Unsupported, UntrustedSocket) as exc:
                # Not applied: the agent has no such method, or the socket changed hands.
                self._decide("http", exc.detail, until=None)
            except NotListening as exc:
                # Nothing was sent: the agent went away between the check and the call.
                self._verdict = None
                self._switch("http", exc.detail)
            except TransportError:
                # Dropped or timed out after the request was written: the outcome is unknown.
                # Ask the socket again before the next attempt (a hung agent then means HTTP).
                self._verdict = None
                raise
            else:
                return
        await self._send_http(status)

    async def _socket_usable(self) -> bool:
        """True when the socket is the way now: ours, and the agent there answers Ping."""
        assert self._socket is not None  # noqa: S101 - guaranteed by __init__ for auto
        path = self._socket.path
        identity = socket_identity(path)
        now = self._clock.now()
        if identity is None:
            self._verdict = None
            self._switch("http", f"no agent socket at {str(path)!r}")
            return False
        if self._verdict is not None and self._verdict.holds(identity, now):
            self._switch(self._verdict.transport, "")
            return self._verdict.transport == "socket"
        try:
            await self._socket.ping()
        except UntrustedSocket as exc:
            log.warning("agent_socket_refused", path=str(path), reason=exc.detail)
            self._decide("http", exc.detail, until=None, identity=identity)
        except Unsupported as exc:
            self._decide("http", f"the agent has no Ping: {exc.detail}", None, identity)
        except TryAgain as exc:
            # Not answering (or gone): HTTP for a while, then ask again.
            reason = f"the agent socket did not answer Ping: {exc.detail}"
            self._decide("http", reason, now + self._reprobe_after, identity)
        except RemoteError as exc:
            # Any other error answer (a refusal, garbage): the socket is not usable now; HTTP
            # for a while, then ask again. Never raised: `choose` and every send go on.
            reason = f"the agent socket answered Ping with an error: {exc.detail}"
            self._decide("http", reason, now + self._reprobe_after, identity)
        else:
            self._decide("socket", "the agent answered Ping", None, identity)
        return self._current == "socket"

    def _decide(
        self,
        transport: Transport,
        reason: str,
        until: float | None,
        identity: SocketIdentity | None = None,
    ) -> None:
        if identity is None and self._socket is not None:
            identity = socket_identity(self._socket.path)
        self._verdict = None if identity is None else _Verdict(identity, transport, until)
        self._switch(transport, reason)

    def _switch(self, transport: Transport, reason: str) -> None:
        previous = self._current
        if previous == transport:
            return
        self._current = transport
        self.reason = reason
        if previous is None:
            level = log.info if self._announce else log.debug
            level("status_transport_chosen", transport=transport, reason=reason)
        else:
            log.info(
                "status_transport_changed", transport=transport, previous=previous, reason=reason
            )

    # -- forced socket --------------------------------------------------------------------------

    async def _check_forced_socket(self) -> None:
        assert self._socket is not None  # noqa: S101 - guaranteed by __init__
        try:
            await self._socket.ping()
        except RemoteError as exc:
            log.warning("agent_socket_unavailable", path=str(self._socket.path), error=str(exc))

    async def _send_forced_socket(self, status: AppStatus) -> None:
        try:
            await self._send_socket(status)
        except UntrustedSocket as exc:
            # Never used; but the agent may yet replace it: worth trying again, not a rejection.
            raise TransportError(exc.service, exc.what, exc.detail) from None

    # -- the two ways ---------------------------------------------------------------------------

    async def _send_socket(self, status: AppStatus) -> None:
        assert self._socket is not None  # noqa: S101 - guaranteed by the callers
        if self._slug is None:
            raise Rejected("Coder agent socket", "UpdateAppStatus", "no app slug configured")
        await self._socket.update_app_status(self._slug, status)

    async def _send_http(self, status: AppStatus) -> None:
        if self._http is None:
            raise ConfigError(
                "CODER_AGENT_TOKEN",
                f"status goes by HTTP ({self._why_http()}), which needs CODER_AGENT_URL and "
                "the agent token",
            )
        await self._http(status)

    def _why_http(self) -> str:
        if self.mode == "http":
            return "CODER_TASK_AGENT_STATUS_TRANSPORT=http"
        return "the Coder agent's socket is not usable"


@asynccontextmanager
async def open_sender(
    settings: Settings,
    http: Send | None = None,
    clock: Clock = SYSTEM_CLOCK,
    *,
    announce: bool = True,
) -> AsyncIterator[StatusSender]:
    """A StatusSender for `settings`, its socket connection closed on exit.

    Without `http`, the HTTP way is built on first use (and only then: the `report` command
    then imports no HTTP library when the socket serves), from CODER_AGENT_URL and the token;
    when those are missing, that first use raises their ConfigError.
    """
    async with AsyncExitStack() as stack:
        socket = None
        if settings.status_transport != "http":
            socket = await stack.enter_async_context(
                AgentSocketClient(
                    Path(settings.agent_socket_path), settings.request_timeout, clock=clock
                )
            )
        if http is None and settings.status_transport != "socket":
            http = _lazy_http(settings, stack, clock)
        yield StatusSender(
            settings.status_transport,
            settings.app_slug,
            socket=socket,
            http=http,
            clock=clock,
            announce=announce,
        )


def _lazy_http(settings: Settings, stack: AsyncExitStack, clock: Clock) -> Send:
    built: list[Send] = []

    async def send(status: AppStatus) -> None:
        if not built:
            from agent.coder.httpapi import CoderClient  # noqa: PLC0415 - only when HTTP is the way
            from agent.http_async import coder_http  # noqa: PLC0415

            url, token = settings.require_coder()
            client = await stack.enter_async_context(coder_http(settings, url, token))
            built.append(CoderClient(client, settings.app_slug, clock=clock).patch_app_status)
        await built[0](status)

    return send
