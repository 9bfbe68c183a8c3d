"""A client for the Coder agent's local socket (Coder >= v2.32): `Ping` and `UpdateAppStatus`.

The I/O shell around `agent.coder.drpc`: one connection, reused, one call at a time, each under a
deadline; no token on this path. Only a socket of our uid is used (lstat: never via a symlink),
and the peer is checked again by its credentials, so a socket swapped meanwhile is refused.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import anyio
import anyio.abc

from agent.clock import SYSTEM_CLOCK, Clock
from agent.coder import drpc
from agent.errors import (
    NotListening,
    RateLimited,
    Rejected,
    RemoteError,
    ServerError,
    TransportError,
    TryAgain,
    Unsupported,
    UntrustedSocket,
)
from agent.models import AppStatus, shorten
from agent.reportsocket.trust import peer_of
from agent.wire import printable

SERVICE = "Coder agent socket"
_RECEIVE = 65536
# coderd's errors relayed through the agent read "... unexpected status code 400: ...".
_STATUS_CODE = re.compile(r"status code (\d{3})")
# coderd's validation failures for this method (message too long, invalid state, unknown slug).
_VALIDATION = ("too long", "invalid state", "no app found", "validation", "must be")

SocketIdentity = tuple[int, int, int]


def socket_identity(path: Path) -> SocketIdentity | None:
    """(device, inode, ctime) of the socket file, None if absent: a restarted agent's differs."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino, info.st_ctime_ns


def check_socket(path: Path, uid: int) -> None:
    """Raises NotListening when nothing is at `path`, UntrustedSocket unless a socket of `uid`."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise NotListening(SERVICE, "connect", f"no socket at {str(path)!r}") from None
    except OSError as exc:
        raise NotListening(SERVICE, "connect", f"{str(path)!r}: {exc.strerror}") from None
    if stat.S_ISLNK(info.st_mode):
        problem = "is a symbolic link"
    elif not stat.S_ISSOCK(info.st_mode):
        problem = "is not a socket"
    elif info.st_uid != uid:
        problem = f"belongs to uid {info.st_uid}, not to this process's uid {uid}"
    else:
        return
    raise UntrustedSocket(SERVICE, "connect", f"{str(path)!r} {problem}: refused")


def classify(what: str, failure: drpc.RemoteFailure) -> RemoteError:
    """The agent's Error answer in the error tree, by its text (coderd's wording is not
    guaranteed: substrings). Anything unrecognised is most likely the agent's own connection to
    coderd failing mid-call: worth another try, not a rejection."""
    detail = printable(failure.text)
    lowered = failure.text.lower()
    if "unknown rpc" in lowered:
        return Unsupported(SERVICE, what, detail)
    if "not connected to coderd" in lowered:  # the agent is reconnecting
        return TryAgain(SERVICE, what, detail)
    found = _STATUS_CODE.search(lowered)
    if found is not None:
        code = int(found.group(1))
        if code == 429:
            return RateLimited(SERVICE, what, detail)
        if 400 <= code < 500:
            return Rejected(SERVICE, what, detail, status=code)
        if code >= 500:
            return ServerError(SERVICE, what, detail, status=code)
    if any(word in lowered for word in _VALIDATION):
        return Rejected(SERVICE, what, detail)
    return ServerError(SERVICE, what, detail)


class _Connection:
    """One open connection: its stream, the next stream id, the reader's state."""

    def __init__(self, stream: anyio.abc.SocketStream, identity: SocketIdentity | None) -> None:
        self.stream = stream
        self.identity = identity
        self.next_stream = 1
        self.parser = drpc.FrameParser()
        self.packets = drpc.PacketAssembler()


class AgentSocketClient:
    """Calls the agent socket at `path`; each method makes ONE attempt under `timeout` seconds.
    The connection is kept while the socket file is the same one; a call failing other than by
    an Error answer closes it (its state is unknown)."""

    def __init__(
        self, path: Path, timeout: float, *, uid: int | None = None, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.path = path
        self.timeout = timeout
        self._clock = clock
        self._uid = os.getuid() if uid is None else uid
        self._connection: _Connection | None = None
        self._lock = anyio.Lock()

    async def __aenter__(self) -> AgentSocketClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with anyio.CancelScope(shield=True):
                await connection.stream.aclose()

    async def ping(self) -> None:
        """The liveness check. Raises from the error tree."""
        await self._call(drpc.PING, b"", "Ping")

    async def update_app_status(self, slug: str, status: AppStatus) -> None:
        """Report `status` for the app `slug`. Raises Rejected, Unsupported, TryAgain..."""
        request = drpc.update_app_status_request(
            slug, status.state.wire, shorten(status.message), status.uri
        )
        await self._call(drpc.UPDATE_APP_STATUS, request, "UpdateAppStatus")

    async def _call(self, method: str, request: bytes, what: str) -> bytes:
        async with self._lock:
            try:
                with self._clock.fail_after(self.timeout):
                    answer = await self._exchange(method, request, what)
            except BaseException as exc:
                # Failed or cancelled: the connection's state is unknown (none is kept yet when
                # NotListening or UntrustedSocket is raised).
                await self.aclose()
                if isinstance(exc, TimeoutError):
                    detail = f"no answer within {self.timeout:g} s"
                elif isinstance(exc, drpc.ProtocolError):
                    detail = f"malformed answer: {exc}"
                elif isinstance(exc, OSError | anyio.BrokenResourceError):
                    detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
                else:
                    raise
                raise TransportError(SERVICE, what, detail) from None
        if isinstance(answer, drpc.RemoteFailure):
            raise classify(what, answer)
        return answer

    async def _exchange(self, method: str, request: bytes, what: str) -> bytes | drpc.RemoteFailure:
        identity = socket_identity(self.path)
        if self._connection is not None and self._connection.identity != identity:
            # The socket file was replaced or removed (an agent restart): its process is going.
            await self.aclose()
        connection = self._connection or await self._connect(what, identity)
        call = drpc.UnaryCall(connection.next_stream)
        connection.next_stream += 1
        # Three separate frames, as dRPC's own client writes them.
        for raw in drpc.invoke_frames(call.stream, method, request):
            await connection.stream.send(raw)
        while True:
            try:
                data = await connection.stream.receive(_RECEIVE)
            except anyio.EndOfStream:
                raise TransportError(
                    SERVICE, what, "the agent closed the connection before answering"
                ) from None
            for frame in connection.parser.feed(data):
                packet = connection.packets.add(frame)
                answer = None if packet is None else call.take(packet)
                if answer is not None:
                    return answer

    async def _connect(self, what: str, identity: SocketIdentity | None) -> _Connection:
        check_socket(self.path, self._uid)
        try:
            stream = await anyio.connect_unix(self.path)
        except OSError as exc:
            raise NotListening(
                SERVICE, what, f"{str(self.path)!r}: {exc.strerror or exc}"
            ) from None
        peer = peer_of(stream.extra(anyio.abc.SocketAttribute.raw_socket))[1]
        if peer != self._uid:
            await stream.aclose()
            raise UntrustedSocket(
                SERVICE,
                what,
                f"the process serving {str(self.path)!r} runs as uid {peer}, "
                f"not as this process's uid {self._uid}: refused",
            )
        self._connection = _Connection(stream, identity)
        return self._connection
