"""The Coder agent's local socket, stood in: `coder-task-agent-dev agent-socket`.

Plain dRPC on a Unix socket, as shared/contracts.md section 4 describes and the agent (Coder >=
v2.32) serves it: service `coder.agentsocket.v1.AgentSocket`, methods `Ping` (empty in, empty
out) and `UpdateAppStatus` (relayed to "coderd": here, validated as coderd does and stored in a
Coder stand-in's Store, so the statuses of both transports land in one history).

Faithful where a client can get it wrong: every answer is written in small pieces (frames split
across writes) and the answer's Message split over several frames; ids are checked (stream ids
only go up, one Invoke then one Message per stream); a malformed frame, an id going backwards or
a message over 4 MiB ends the connection (recorded in `protocol_errors`). Unknown control frames
are ignored. It answers after the request's Message, as dRPC's unary server does, without
waiting for the client's CloseSend.

Fault switches (`faults`, consumed in order by UpdateAppStatus calls; `methods` for good):
  not_connected   answers `agent not connected to coderd` (the agent is reconnecting)
  unknown_rpc     answers `protocol error: unknown rpc: "<path>"` (an agent without the method)
  reject          answers coderd's 400 for a too-long message (a validation error)
  drop            reads the request, applies it or not (`apply`), then closes the connection
  slow            waits `delay` seconds before answering
`methods=("Ping",)` is an agent older than UpdateAppStatus: every call of it is `unknown rpc`.

The socket is created 0600, as the agent's is.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import anyio
import anyio.abc
import structlog

from agent.coder import drpc
from standins import agentsocket_wire as wire
from standins.coder.store import Store

log = structlog.get_logger("standins.agentsocket")

FaultKind = Literal["not_connected", "unknown_rpc", "reject", "drop", "slow"]
METHODS = ("Ping", "UpdateAppStatus")
# coderd refuses an app-status message longer than this many bytes.
MAX_STATUS_MESSAGE_BYTES = 160
NOT_CONNECTED = "agent not connected to coderd"


@dataclass
class SocketFault:
    """One scripted misbehaviour for one UpdateAppStatus call."""

    kind: FaultKind
    delay: float = 0.0
    # For `drop`: store the status before dropping (the request was applied, the answer lost).
    apply: bool = False


@dataclass(frozen=True)
class Call:
    """One call as the stand-in saw it: the method, the decoded request, what it answered."""

    method: str
    request: wire.AppStatusRequest | None
    answer: str  # "ok", "error: <text>", "dropped"


def _coderd_error(status: int, message: str, detail: str, validation: str = "") -> str:
    # codersdk.Error's text, as the agent relays it from coderd.
    text = f"unexpected status code {status}: {message}\n\tError: {detail}"
    return text + (f"\n\t{validation}" if validation else "")


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class AgentSocketStandIn:
    """State and behaviour; serve it with `run_agent_socket_standin`.

    `store` receives the statuses (None: they are only recorded in `statuses`). `chunk` is the
    size of each write; `frame_size` the most data bytes per frame of an answer.
    """

    store: Store | None = None
    methods: tuple[str, ...] = METHODS
    faults: list[SocketFault] = field(default_factory=list)
    chunk: int = 3
    frame_size: int = 1
    calls: list[Call] = field(default_factory=list)
    statuses: list[wire.AppStatusRequest] = field(default_factory=list)
    protocol_errors: list[str] = field(default_factory=list)
    connections: int = 0
    # A fault for every UpdateAppStatus call once `faults` is empty (the CLI's switches).
    always: FaultKind | None = None

    async def handle(self, stream: anyio.abc.SocketStream) -> None:
        """Serve one connection until the client closes it or breaks the rules."""
        self.connections += 1
        parser = drpc.FrameParser()
        session = _Session()
        async with stream:
            while True:
                try:
                    data = await stream.receive(65536)
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return
                try:
                    for frame in parser.feed(data):
                        call = session.take(frame)
                        if call is not None and not await self._answer(stream, *call):
                            return
                except drpc.ProtocolError as exc:
                    self.protocol_errors.append(str(exc))
                    log.warning("agent_socket_protocol_error", error=str(exc))
                    return

    async def _answer(
        self, stream: anyio.abc.SocketStream, stream_id: int, path: str, data: bytes
    ) -> bool:
        """Answer one call; False when the connection must end (a drop)."""
        method = path.rsplit("/", 1)[-1]
        fault = self._next_fault(method)
        if fault is not None and fault.kind == "slow":
            await anyio.sleep(fault.delay)
        request, error = self._outcome(path, method, data, fault)
        if fault is not None and fault.kind == "drop" and request is not None:
            self.calls.append(Call(method, request, "dropped"))
            log.info("agent_socket_dropped", stream=stream_id, applied=fault.apply)
            return False
        if error is None:
            answer = wire.encode_packet(drpc.Kind.MESSAGE, stream_id, 1, b"", self.frame_size)
            answer += drpc.encode_frame(drpc.Frame(drpc.Kind.CLOSE_SEND, stream_id, 2))
            self.calls.append(Call(method, request, "ok"))
        else:
            data = wire.encode_error(0, error)
            answer = wire.encode_packet(drpc.Kind.ERROR, stream_id, 1, data, self.frame_size)
            self.calls.append(Call(method, request, f"error: {error}"))
        log.info("agent_socket_call", method=method, answer=self.calls[-1].answer.split("\n")[0])
        try:
            for index in range(0, len(answer), self.chunk):
                await stream.send(answer[index : index + self.chunk])
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return False
        return True

    def _next_fault(self, method: str) -> SocketFault | None:
        if method != "UpdateAppStatus":
            return None
        if self.faults:
            return self.faults.pop(0)
        return None if self.always is None else SocketFault(self.always)

    def _outcome(
        self, path: str, method: str, data: bytes, fault: SocketFault | None
    ) -> tuple[wire.AppStatusRequest | None, str | None]:
        """The decoded request (UpdateAppStatus) and the error to answer, if any."""
        known = path.startswith(drpc.SERVICE + "/") and method in self.methods
        if not known or (fault is not None and fault.kind == "unknown_rpc"):
            return None, f"protocol error: unknown rpc: {_go_quote(path)}"
        if method != "UpdateAppStatus":
            return None, None
        try:
            request = wire.decode_update_app_status_request(data)
        except drpc.ProtocolError as exc:
            return None, f"proto: cannot parse invalid wire-format data ({exc})"
        match fault.kind if fault is not None else None:
            case "drop":
                return request, self._relay(request) if fault and fault.apply else None
            case "not_connected":
                return request, NOT_CONNECTED
            case "reject":
                return request, _coderd_error(
                    400,
                    "Message is too long.",
                    "Message must be less than 160 characters.",
                    "message: Message must be less than 160 characters.",
                )
            case _:
                return request, self._relay(request)

    def _relay(self, request: wire.AppStatusRequest) -> str | None:
        """What coderd does with the request: its validation, then the stored row."""
        if len(request.message.encode()) > MAX_STATUS_MESSAGE_BYTES:
            return _coderd_error(
                400, "Message is too long.", "Message must be less than 160 characters."
            )
        if request.state not in drpc.APP_STATES:
            return _coderd_error(
                400, "Invalid state provided.", f"invalid state: {_go_quote(request.state)}"
            )
        if self.store is not None:
            task = next(
                (
                    t
                    for t in self.store.tasks()
                    if not t.other_workspace and t.has_app(request.slug)
                ),
                None,
            )
            if task is None:
                return _coderd_error(
                    400,
                    "Failed to get workspace app.",
                    f"No app found with slug {_go_quote(request.slug)}",
                )
            self.store.add_status(
                task.id, request.slug, request.state, request.message, request.uri
            )
        self.statuses.append(request)
        return None


class _Session:
    """One connection's calls, as the server reads them: ids checked, Invoke before Message."""

    def __init__(self) -> None:
        self._packets = drpc.PacketAssembler()
        self._last_stream = 0
        self._path: dict[int, str] = {}
        self._answered: set[int] = set()

    def take(self, frame: drpc.Frame) -> tuple[int, str, bytes] | None:
        """A call to answer (stream id, RPC path, request bytes), once its Message is whole."""
        packet = self._packets.add(frame)
        if packet is None:
            return None
        kind, stream = packet.kind, packet.stream
        if kind == drpc.Kind.INVOKE:
            if stream <= self._last_stream:
                raise drpc.ProtocolError(f"invoke on stream {stream} after {self._last_stream}")
            self._last_stream = stream
            self._path[stream] = packet.data.decode("utf-8", "replace")
            return None
        if kind == drpc.Kind.MESSAGE:
            if stream not in self._path or stream in self._answered:
                raise drpc.ProtocolError(f"message on stream {stream} without its invoke")
            self._answered.add(stream)
            return stream, self._path[stream], packet.data
        if kind in drpc.Kind.__members__.values() or packet.control:
            return None  # CloseSend, Cancel, Close, metadata; unknown control packets
        raise drpc.ProtocolError(f"unknown packet kind {kind}")


async def run_agent_socket_standin(
    standin: AgentSocketStandIn,
    path: Path,
    *,
    task_status: anyio.abc.TaskStatus[Path] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `standin` on the Unix socket `path` (mode 0600) until cancelled; removes it after."""
    path.unlink(missing_ok=True)  # noqa: ASYNC240 - a local unlink, before serving
    # Bound and listening under a temporary name, then renamed into place: the path appears only
    # once connections are accepted (between bind and listen a client would be refused).
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    staging.unlink(missing_ok=True)
    old_mask = os.umask(0o177)
    try:
        listener = await anyio.create_unix_listener(staging)
    finally:
        os.umask(old_mask)
    try:
        os.replace(staging, path)
    except OSError:
        await listener.aclose()
        staging.unlink(missing_ok=True)
        raise
    try:
        async with listener:
            task_status.started(path)
            await listener.serve(standin.handle)
    finally:
        path.unlink(missing_ok=True)  # noqa: ASYNC240 - a local unlink, after serving


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coder-task-agent-dev agent-socket",
        description=(
            "A stand-in for the Coder agent's local socket (dRPC Ping and UpdateAppStatus). "
            "Statuses are validated as coderd does and stored in a Coder stand-in's database "
            "(--db), so the Coder stand-in's task page shows them. Stops on SIGTERM or SIGINT."
        ),
    )
    parser.add_argument(
        "--path",
        type=Path,
        default=Path("/tmp/coder-agent.sock"),  # noqa: S108 - the agent's own default
        help="socket path (default /tmp/coder-agent.sock, the agent's own default)",
    )
    parser.add_argument("--db", type=Path, help="the Coder stand-in's SQLite file to store into")
    parser.add_argument(
        "--old-agent",
        action="store_true",
        help="an agent older than v2.32: UpdateAppStatus is an unknown rpc",
    )
    parser.add_argument(
        "--not-connected",
        action="store_true",
        help="every UpdateAppStatus answers 'agent not connected to coderd'",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """`coder-task-agent-dev agent-socket`: serve until SIGTERM/SIGINT, then exit 0."""
    args = _parser().parse_args(argv)
    from agent.log import configure  # noqa: PLC0415 - only the CLI configures logging

    configure("info", "auto")
    store = Store(args.db) if args.db is not None else None
    standin = AgentSocketStandIn(store=store, methods=("Ping",) if args.old_agent else METHODS)
    if args.not_connected:
        standin.always = "not_connected"
    try:
        anyio.run(_serve_until_signal, standin, args.path)
    except OSError as exc:
        print(f"coder-task-agent-dev agent-socket: {args.path}: {exc.strerror}", file=sys.stderr)
        return 2
    finally:
        if store is not None:
            store.close()
    return 0


async def _serve_until_signal(standin: AgentSocketStandIn, path: Path) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with anyio.create_task_group() as group:
            await group.start(run_agent_socket_standin, standin, path)
            log.info("agent_socket_standin_listening", path=str(path), methods=standin.methods)
            async for signum in signals:
                log.info("agent_socket_standin_stopping", signal=signal.Signals(signum).name)
                group.cancel_scope.cancel()
                break
