"""The daemon's own HTTP/1.1 line to Coder for the snapshot upload: h11 over one kept connection.

Why it exists: SIGTERM to snapshot received is the measure of the stop path (issue 14: at least
20x faster than Coder's own stop script, about 2 ms for a short conversation). Through httpx the
upload spent 0.7 ms in httpx and httpcore before its first byte left (six turns of the event
loop, the pool's bookkeeping), a third of that budget. Here the request is built with h11 (the
parser httpcore itself drives) and written in one send on a connection opened ahead of time.

What it keeps of the httpx path (`agent.coder.httpapi.CoderClient.upload_log_snapshot`), and
`tests/test_coderline.py` runs the same cases against both and compares the errors:

- one overall deadline per call (the request timeout), the connection included;
- the answer read through MAX_ERROR_BODY; never a redirect followed (a 3xx is an answer);
- TLS verified by httpx's rules (`agent.plainhttp.tls_context`: SSL_CERT_FILE, SSL_CERT_DIR,
  else certifi's bundle; off only with CODER_TASK_AGENT_TLS_VERIFY=false), HTTP/1.1 by ALPN;
- the same error tree and the same words: NotSent when no connection was made ("ConnectError:
  ..."), OutcomeUnknown once the request may have left, an answer outside 2xx through
  `agent.wire` (404 on this route: Unsupported, the server has no Coder Tasks);
- the headers the standard-library one-shot path sends (`agent.plainhttp`), keep-alive.

What it adds: one connection kept open between uploads. The daemon warms it (`warm_soon`) when
it prepares the snapshot body, so a stop does not wait for a TCP and TLS handshake. While the
connection is idle a task keeps reading it: a server or proxy closing it (an idle timeout) is
noticed at once and the connection dropped, and TLS 1.3's session tickets are consumed there
rather than read as an answer. A kept connection can also die without a word (a NAT or firewall
forgetting it, a host gone): TCP keepalive probes it every KEEPALIVE_IDLE s while idle, which
keeps such a mapping alive and finds a dead peer within about half a minute, and on a kept
connection the first byte of the answer is awaited only KEPT_ANSWER_WITHIN s, not the whole
deadline (which is the whole stop budget by default) before the upload goes again on a new one.
A request on a kept connection that fails or goes unanswered that way is sent once more at once
on a new connection: uploading the same snapshot twice stores the same thing, and a stop must
not spend its budget on a connection that is gone.

Not used when a proxy variable is set (httpx honours proxies; this line does not): the daemon
then uploads through httpx (`agent.daemon.daemon.run_daemon` decides).
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import anyio
import anyio.abc
import h11
import structlog

from agent.clock import SYSTEM_CLOCK, Clock
from agent.config import Environment, Secret, Settings, verbatim
from agent.errors import NotSent, OutcomeUnknown
from agent.plainhttp import (
    MAX_HEAD_BYTES,
    SNAPSHOT_QUERY,
    TOKEN_HEADER,
    USER_AGENT,
    Origin,
    coder_tls_context,
    snapshot_route,
)
from agent.wire import MAX_ERROR_BODY, answer_error

__all__ = ["CLIENT", "CoderLine", "line_for", "open_coder_line"]

log = structlog.get_logger("agent.coderline")

SERVICE = "Coder"
# How `snapshot_started` names this path (the others: `httpx`, `stdlib`).
CLIENT: Final = "h11"
WHAT = "POST log-snapshot"
# What a dead or closing connection raises through anyio (ssl.SSLError is an OSError).
_BROKEN = (OSError, anyio.BrokenResourceError, anyio.EndOfStream, anyio.ClosedResourceError)
_READ = 65536
# TCP keepalive on the kept connection: first probe after this many idle seconds, then every
# KEEPALIVE_INTERVAL s, the peer declared dead after KEEPALIVE_PROBES unanswered. Cloud NATs
# forget an idle flow after 4-6 minutes without telling either end; a probe every 15 s keeps it.
KEEPALIVE_IDLE = 15
KEEPALIVE_INTERVAL = 5
KEEPALIVE_PROBES = 3
# Seconds a kept connection may stay silent after the request before it is taken for gone and
# the upload sent on a new connection. Coder stores a snapshot in milliseconds; a connection
# that went dead without a word would otherwise hold the upload for the whole deadline.
KEPT_ANSWER_WITHIN = 1.0


class _Stale(Exception):
    """A kept connection failed before any byte of an answer came back."""


class _Idle:
    """A kept connection and the task reading it while nobody else does."""

    __slots__ = ("done", "scope", "stream")

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.scope = anyio.CancelScope()
        self.done = anyio.Event()  # the reading task has let go of the stream


class CoderLine:
    """Uploads log snapshots to Coder over a connection it keeps (see the module docstring).

    Build it with `open_coder_line`, which owns the tasks watching the idle connection. Like
    CoderClient, each upload makes ONE attempt and raises from the `agent.errors` tree.
    """

    client = CLIENT

    def __init__(
        self,
        url: str,
        token: Secret,
        *,
        deadline: float,
        tls: ssl.SSLContext | None,
        group: anyio.abc.TaskGroup,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._origin = Origin(url)
        self._deadline = deadline
        self._tls = tls
        self._group = group
        self._clock = clock
        # Values are ASCII: the token was checked as visible ASCII when the settings were read.
        self._headers = [
            ("Host", self._origin.host_header),
            ("Accept", "*/*"),
            ("Accept-Encoding", "identity"),
            ("User-Agent", USER_AGENT),
            (TOKEN_HEADER, token.reveal()),
            ("Content-Type", "application/json"),
        ]
        self._idle: _Idle | None = None
        self._warming = False
        self._closed = False

    @property
    def warm(self) -> bool:
        """True while a kept connection waits for the next upload."""
        return self._idle is not None

    def warm_soon(self) -> None:
        """Open the connection ahead of the next upload, in the background (once at a time).

        A failure is only logged at debug level: the upload connects again when it comes.
        """
        if self._closed or self._warming or self._idle is not None:
            return
        self._warming = True
        self._group.start_soon(self._warm)

    async def upload_log_snapshot(self, task_id: str, body: bytes) -> None:
        """POST the snapshot body. Raises Unsupported (404), Rejected or TryAgain."""
        path = snapshot_route(task_id)
        what = f"{WHAT} {self._origin.url(path)}"
        target = self._origin.target(path, SNAPSHOT_QUERY)
        try:
            with self._clock.fail_after(self._deadline):
                status, retry_after, answer = await self._exchange(target, body, what)
        except TimeoutError:
            # As agent.http_async words it: the connect phase may have been the slow part, but
            # "unknown" is the safe side.
            raise OutcomeUnknown(
                SERVICE, what, f"no full answer within {self._deadline:g} s"
            ) from None
        if 200 <= status < 300:
            return
        raise answer_error(SERVICE, WHAT, status, answer, retry_after, not_found_unsupported=True)

    async def aclose(self) -> None:
        """Close the kept connection; nothing is kept from now on."""
        self._closed = True
        idle, self._idle = self._idle, None
        if idle is not None:
            idle.scope.cancel()
            await anyio.aclose_forcefully(idle.stream)

    # -- connections ----------------------------------------------------------------------------

    async def _warm(self) -> None:
        try:
            with self._clock.fail_after(self._deadline):
                stream = await self._connect(WHAT)
        except (NotSent, TimeoutError) as exc:
            log.debug("coder_line_warm_failed", error=str(exc) or type(exc).__name__)
            return
        finally:
            self._warming = False
        self._keep(stream)

    async def _connect(self, what: str) -> anyio.abc.ByteStream:
        """A new connection (TLS done, when https); NotSent when none could be made."""
        try:
            if self._tls is None:
                return await anyio.connect_tcp(self._origin.host, self._origin.port)
            # Not "standard compatible", as httpcore: an end without close_notify is an end.
            return await anyio.connect_tcp(
                self._origin.host,
                self._origin.port,
                tls=True,
                ssl_context=self._tls,
                tls_hostname=self._origin.host,
                tls_standard_compatible=False,
            )
        except _BROKEN as exc:
            # httpx's words for the same failures (httpcore connects through anyio too).
            raise NotSent(SERVICE, what, f"ConnectError: {exc}".rstrip(": ")) from None

    @staticmethod
    def _probe_while_idle(stream: anyio.abc.ByteStream) -> None:
        """TCP keepalive on `stream` (see KEEPALIVE_IDLE); where the platform lacks it, none."""
        try:
            sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_PROBES)
        except (OSError, AttributeError, anyio.TypedAttributeLookupError):
            pass  # the first-answer bound below still applies

    def _keep(self, stream: anyio.abc.ByteStream) -> None:
        """Keep `stream` for the next upload, watched while idle; or close it."""
        if self._closed or self._idle is not None:
            self._group.start_soon(anyio.aclose_forcefully, stream)
            return
        self._probe_while_idle(stream)
        idle = _Idle(stream)
        self._idle = idle
        self._group.start_soon(self._watch, idle)

    def _take(self) -> _Idle | None:
        """The kept connection, taken from its watcher (which lets go at its next turn)."""
        idle, self._idle = self._idle, None
        if idle is not None:
            idle.scope.cancel()
        return idle

    async def _watch(self, idle: _Idle) -> None:
        """Read the idle connection: whatever comes (an end, an error, bytes) ends its use.

        Cancelled when an upload takes the connection. TLS records that carry no data (session
        tickets) are consumed inside `receive` and never end the wait.
        """
        try:
            with idle.scope:
                try:
                    data = await idle.stream.receive(_READ)
                    reason = f"{len(data)} bytes that no request asked for"
                except _BROKEN as exc:
                    reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
                if self._idle is idle:
                    self._idle = None
                    log.debug("coder_line_dropped", reason=reason)
                    await anyio.aclose_forcefully(idle.stream)
        finally:
            idle.done.set()

    # -- one exchange -----------------------------------------------------------------------------

    async def _exchange(self, target: str, body: bytes, what: str) -> tuple[int, str | None, bytes]:
        """Send the POST, on the kept connection when there is one; the answer read."""
        idle = self._take()
        if idle is not None:
            try:
                return await self._over(idle.stream, idle.done, target, body, what, kept=True)
            except _Stale as exc:
                log.debug("coder_line_stale", reason=str(exc))
        stream = await self._connect(what)
        return await self._over(stream, None, target, body, what, kept=False)

    async def _over(
        self,
        stream: anyio.abc.ByteStream,
        watcher_done: anyio.Event | None,
        target: str,
        body: bytes,
        what: str,
        *,
        kept: bool,
    ) -> tuple[int, str | None, bytes]:
        """One request and its answer on `stream`; the stream kept again when it may be.

        Failures are worded as httpcore words them (WriteError, ReadError, RemoteProtocolError),
        so an error reads the same whichever path sent the upload.
        """
        conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        headers = [*self._headers, ("Content-Length", str(len(body)))]
        reusable = False
        try:
            head = conn.send(h11.Request(method="POST", target=target, headers=headers))
            # Content-Length framing: the body goes out as it is, in the same write.
            conn.send(h11.Data(data=body))
            conn.send(h11.EndOfMessage())
            try:
                await stream.send(b"".join((head, body)))
            except _BROKEN as exc:
                detail = f"WriteError: {exc}".rstrip(": ")
                if kept:
                    raise _Stale(detail) from None
                raise OutcomeUnknown(SERVICE, what, detail) from None
            if watcher_done is not None:
                await watcher_done.wait()  # the watcher may still be unwinding its read
            try:
                status, retry_after, answer, whole = await _read_answer(
                    conn, stream, self._clock, KEPT_ANSWER_WITHIN if kept else None
                )
            except _NoAnswer as exc:
                if kept and not exc.answered:
                    raise _Stale(exc.detail) from None
                raise OutcomeUnknown(SERVICE, what, exc.detail) from None
            except h11.RemoteProtocolError as exc:
                raise OutcomeUnknown(SERVICE, what, f"RemoteProtocolError: {exc}") from None
            reusable = whole and conn.our_state is h11.DONE and conn.their_state is h11.DONE
            return status, retry_after, answer
        finally:
            if reusable:
                self._keep(stream)
            else:
                await anyio.aclose_forcefully(stream)


class _NoAnswer(Exception):
    """The connection ended or broke before the answer was whole."""

    def __init__(self, detail: str, *, answered: bool) -> None:
        super().__init__(detail)
        self.detail = detail
        self.answered = answered  # a byte of the answer had come back


_DISCONNECTED = "RemoteProtocolError: Server disconnected without sending a response."


async def _receive(
    stream: anyio.abc.ByteStream, clock: Clock, within: float | None, *, answered: bool
) -> bytes:
    """The next bytes of the answer; b"" at its end. _NoAnswer when the connection broke, or when
    nothing came `within` s (None: no bound but the caller's deadline)."""
    data = b""
    try:
        if within is None:
            return await stream.receive(_READ)
        with clock.move_on_after(within):
            data = await stream.receive(_READ)
    except anyio.EndOfStream:
        return b""
    except ssl.SSLError as exc:
        # A corrupt TLS record: worded as the httpx path words it (agent.http_async).
        raise _NoAnswer(f"SSLError: {exc}", answered=answered) from None
    except _BROKEN as exc:
        raise _NoAnswer(f"ReadError: {exc}".rstrip(": "), answered=answered) from None
    if not data:
        raise _NoAnswer(f"no answer within {within:g} s", answered=False)
    return data


async def _read_answer(
    conn: h11.Connection,
    stream: anyio.abc.ByteStream,
    clock: Clock,
    first_byte_within: float | None,
) -> tuple[int, str | None, bytes, bool]:
    """Status, raw Retry-After, the body through MAX_ERROR_BODY, and whether it was read whole.

    Raises _NoAnswer when the connection ends or breaks before the answer begins or while it is
    read, or when no byte of it came within `first_byte_within` s (None: no bound but the
    caller's deadline); h11.RemoteProtocolError on a malformed answer.
    """
    answered = False
    status = 0
    retry_after: str | None = None
    chunks: list[bytes] = []
    size = 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            within = None if answered else first_byte_within
            data = await _receive(stream, clock, within, answered=answered)
            if not data and conn.their_state is h11.SEND_RESPONSE:
                raise _NoAnswer(_DISCONNECTED, answered=answered)  # httpcore's words
            answered = answered or bool(data)
            conn.receive_data(data)
        elif isinstance(event, h11.Response):
            status = event.status_code
            for name, value in event.headers:
                if name == b"retry-after":
                    retry_after = value.decode("latin-1")
        elif isinstance(event, h11.Data):
            room = MAX_ERROR_BODY - size
            if len(event.data) > room:
                # Past the cap it is garbage (a success answers `null` or nothing): cut there,
                # and the connection is not reused with the rest of it unread.
                chunks.append(event.data[:room])
                return status, retry_after, b"".join(chunks), False
            chunks.append(event.data)
            size += len(event.data)
        elif isinstance(event, h11.EndOfMessage):
            return status, retry_after, b"".join(chunks), True
        elif isinstance(event, h11.ConnectionClosed):
            raise _NoAnswer(_DISCONNECTED, answered=answered)
        # h11.InformationalResponse (1xx): skipped, as httpx does.


@asynccontextmanager
async def open_coder_line(
    url: str,
    token: Secret,
    *,
    deadline: float,
    tls: ssl.SSLContext | None,
    clock: Clock = SYSTEM_CLOCK,
) -> AsyncIterator[CoderLine]:
    """A CoderLine for the life of the block; its kept connection closed at the end."""
    async with anyio.create_task_group() as group:
        line = CoderLine(url, token, deadline=deadline, tls=tls, group=group, clock=clock)
        try:
            yield line
        finally:
            await line.aclose()
            group.cancel_scope.cancel()


@asynccontextmanager
async def line_for(
    settings: Settings, environment: Environment, clock: Clock = SYSTEM_CLOCK
) -> AsyncIterator[CoderLine | None]:
    """The daemon's line for `settings`, or None where the upload goes through httpx.

    None when there is nothing to upload (hooks mode, no task id) or a proxy variable is set:
    httpx honours proxies (and this line does not), so the daemon's httpx client uploads then.
    `environment` is the process's, the one httpx reads its proxy and CA variables from.
    """
    proxies = environment.proxies()
    if settings.mode == "hooks" or settings.task_id is None or proxies:
        if proxies:
            log.debug("coder_line_unused", reason=f"{min(proxies)} is set (httpx honours proxies)")
        yield None
        return
    url, token = settings.require_coder()
    tls = coder_tls_context(
        url,
        verify=settings.tls_verify,
        cert_file=environment.read("SSL_CERT_FILE", verbatim, ""),
        cert_dir=environment.read("SSL_CERT_DIR", verbatim, ""),
    )
    async with open_coder_line(
        url, token, deadline=settings.request_timeout, tls=tls, clock=clock
    ) as line:
        yield line
