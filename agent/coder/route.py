"""Which way a status report goes, the Coder agent's socket or the HTTP PATCH: the one place that
chooses (docs/configuration.md, "How status reaches Coder"), so the one that says whether the
Coder URL and token are needed. A StatusSender makes ONE attempt per call and switches only
between attempts, never after a request may have reached its server (an unknown outcome raises
TryAgain), so a switch neither resends what was delivered nor loses what was not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Literal, NamedTuple

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
# Seconds before a socket that did not answer Ping is asked again (HTTP meanwhile, no waiting).
REPROBE_AFTER = 60.0


def planned_transport(settings: Settings, *, agent_socket_exists: bool = True) -> Transport | None:
    """The way every status goes when known before any is sent; None: `auto` decides each time.
    A daemon assumes the socket exists (the agent may start after it)."""
    if settings.status_transport != "auto":
        return settings.status_transport
    if not agent_socket_exists:
        return "http"
    if settings.coder_url is None or settings.token is None:
        return "socket"
    return None


def needs_coder_http(
    settings: Settings, *, uploads: bool, agent_socket_exists: bool = True
) -> bool:
    """Whether the Coder URL and token are needed at start: to upload, or every status is HTTP."""
    return uploads or planned_transport(settings, agent_socket_exists=agent_socket_exists) == "http"


class _Verdict(NamedTuple):
    """What the socket file `identity` is good for, until `until` (None: while it exists)."""

    identity: SocketIdentity
    transport: Transport
    until: float | None

    def holds(self, identity: SocketIdentity, now: float) -> bool:
        return identity == self.identity and (self.until is None or now < self.until)


class StatusSender:
    """Sends one status the way `mode` chooses. `socket`: None only with mode `http`; `http`: None
    without Coder URL or token (a report that needs it then raises ConfigError)."""

    def __init__(
        self,
        mode: StatusTransport,
        slug: str | None,
        *,
        socket: AgentSocketClient | None,
        http: Send | None,
        clock: Clock = SYSTEM_CLOCK,
        announce: bool = True,
    ) -> None:
        if mode != "http" and socket is None:
            raise ValueError(f"status transport {mode!r} needs the agent-socket client")
        self.mode = mode
        self._slug = slug
        self._socket = socket
        self._http = http
        self._clock = clock
        # False: the first choice is logged at debug (a one-shot `report` says it in `reason`).
        self._announce = announce
        self.reason = "" if mode == "auto" else f"CODER_TASK_AGENT_STATUS_TRANSPORT={mode}"
        self._current: Transport | None = None if mode == "auto" else mode
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
                await self._usable_socket()
            elif self.mode == "socket":
                assert self._socket is not None  # noqa: S101 - guaranteed by __init__
                try:
                    await self._socket.ping()
                except RemoteError as exc:
                    path = str(self._socket.path)
                    log.warning("agent_socket_unavailable", path=path, error=str(exc))
        return self.transport

    async def __call__(self, status: AppStatus) -> None:
        """Send `status` once. Raises TryAgain, Rejected, Unsupported... (ConfigError: no HTTP)."""
        async with self._lock:
            if self.mode == "socket":
                try:
                    await self._send_socket(status)
                except UntrustedSocket as exc:
                    # The agent may yet replace it: worth trying again, not a rejection.
                    raise TransportError(exc.service, exc.what, exc.detail) from None
                return
            socket = await self._usable_socket() if self.mode == "auto" else None
            if socket is not None:
                try:
                    await self._send_socket(status)
                except (Unsupported, UntrustedSocket) as exc:
                    # Not applied: the agent has no such method, or the socket changed hands.
                    self._decide("http", exc.detail, socket_identity(socket.path))
                except NotListening as exc:
                    # Nothing was sent: the agent went away between the check and the call.
                    self._decide("http", exc.detail)
                except TransportError:
                    # Outcome unknown: ask the socket again first next time (a hung agent: HTTP).
                    self._verdict = None
                    raise
                else:
                    return
            await self._send_http(status)

    async def _usable_socket(self) -> AgentSocketClient | None:
        """The socket client when it is the way now (ours, its agent answers Ping), else None."""
        socket = self._socket
        assert socket is not None  # noqa: S101 - guaranteed by __init__ for auto
        path = socket.path
        identity = socket_identity(path)
        now = self._clock.now()
        if identity is None:
            self._decide("http", f"no agent socket at {str(path)!r}")
            return None
        if self._verdict is not None and self._verdict.holds(identity, now):
            self._switch(self._verdict.transport, "")
            return socket if self._verdict.transport == "socket" else None
        try:
            await socket.ping()
        except UntrustedSocket as exc:
            log.warning("agent_socket_refused", path=str(path), reason=exc.detail)
            self._decide("http", exc.detail, identity)
        except Unsupported as exc:
            self._decide("http", f"the agent has no Ping: {exc.detail}", identity)
        except TryAgain as exc:
            reason = f"the agent socket did not answer Ping: {exc.detail}"
            self._decide("http", reason, identity, now + REPROBE_AFTER)
        except RemoteError as exc:
            # Any other error answer (a refusal, garbage): HTTP for a while too, never raised.
            reason = f"the agent socket answered Ping with an error: {exc.detail}"
            self._decide("http", reason, identity, now + REPROBE_AFTER)
        else:
            self._decide("socket", "the agent answered Ping", identity)
        return socket if self._current == "socket" else None

    def _decide(
        self,
        transport: Transport,
        reason: str,
        identity: SocketIdentity | None = None,
        until: float | None = None,
    ) -> None:
        """Switch to `transport`; with `identity`, for as long as that socket file (or `until`)."""
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

    async def _send_socket(self, status: AppStatus) -> None:
        assert self._socket is not None  # noqa: S101 - guaranteed by __init__
        if self._slug is None:
            raise Rejected("Coder agent socket", "UpdateAppStatus", "no app slug configured")
        await self._socket.update_app_status(self._slug, status)

    async def _send_http(self, status: AppStatus) -> None:
        if self._http is None:
            why = "the Coder agent's socket is not usable"
            if self.mode == "http":
                why = "CODER_TASK_AGENT_STATUS_TRANSPORT=http"
            raise ConfigError(
                "CODER_AGENT_TOKEN",
                f"status goes by HTTP ({why}), which needs CODER_AGENT_URL and the agent token",
            )
        await self._http(status)


@asynccontextmanager
async def open_sender(
    settings: Settings,
    http: Send | None = None,
    clock: Clock = SYSTEM_CLOCK,
    *,
    announce: bool = True,
) -> AsyncIterator[StatusSender]:
    """A StatusSender for `settings`, its socket connection closed on exit. Without `http`, HTTP
    is built on first use (so `report` imports no HTTP library when the socket serves); missing
    URL or token then raise their ConfigError."""
    async with AsyncExitStack() as stack:
        socket = None
        mode = settings.status_transport
        if mode != "http":
            client = AgentSocketClient(
                Path(settings.agent_socket_path), settings.request_timeout, clock=clock
            )
            socket = await stack.enter_async_context(client)
        if http is None and mode != "socket":
            http = _lazy_http(settings, stack, clock)
        yield StatusSender(
            mode, settings.app_slug, socket=socket, http=http, clock=clock, announce=announce
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
