"""dRPC's wire format as pure functions (no I/O): frames, packets, one unary call, the messages.

The Coder agent's Unix socket speaks plain dRPC (storj.io/drpc: no multiplexer, no handshake). The
client (`agent.coder.agentsocket`) and the stand-in agent (devkit `standins.agentsocket_wire`, the
server's halves) share this one reading of the wire; facts in shared/contracts.md section 4. A
frame of an unknown kind with the control bit is ignorable; a frame with a newer id abandons a
half-read packet, as dRPC's reader does; anything else malformed ends the connection.

Protobuf is encoded by hand: four scalar fields, and the answers are empty messages never read. A
protobuf runtime would be megabytes plus generated code for twenty lines; tests/test_drpc.py pins
the encoder against that runtime (installed for the tests only).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

# dRPC's reader refuses to buffer more than this for one packet (its default MaximumBufferSize).
MAX_PACKET_BYTES = 4 << 20
# A varint of a 64-bit value takes at most 10 bytes (7 bits each).
MAX_VARINT_BYTES = 10
_U64 = 1 << 64

SERVICE = "/coder.agentsocket.v1.AgentSocket"
PING = f"{SERVICE}/Ping"
UPDATE_APP_STATUS = f"{SERVICE}/UpdateAppStatus"


class Kind(enum.IntEnum):
    """Frame kinds (the control byte's bits 1-6)."""

    INVOKE = 1  # data: the RPC path
    MESSAGE = 2  # data: protobuf bytes
    ERROR = 3  # data: 8-byte big-endian code, then UTF-8 text
    CANCEL = 4
    CLOSE = 5
    CLOSE_SEND = 6  # no more messages from this side
    INVOKE_METADATA = 7  # only sent when there is metadata


class ProtocolError(ValueError):
    """The peer broke the framing rules; the connection must end."""


@dataclass(frozen=True)
class Frame:
    """One frame on the wire. `kind` is an int: a peer may send kinds this side does not know."""

    kind: int
    stream: int
    message: int
    data: bytes = b""
    done: bool = True
    control: bool = False


@dataclass(frozen=True)
class Packet:
    """A whole message: the data of every frame with one id, up to the one marked done."""

    kind: int
    stream: int
    message: int
    data: bytes
    control: bool = False


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128: 7 bits a byte, least significant first, high bit set on all but the last."""
    if not 0 <= value < _U64:
        raise ValueError(f"a varint holds 0 to 2**64-1, not {value}")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(buffer: bytes | bytearray, start: int) -> tuple[int, int] | None:
    """The varint at `start` and the offset after it; None when the buffer ends inside it."""
    value = 0
    for index in range(MAX_VARINT_BYTES):
        position = start + index
        if position >= len(buffer):
            return None
        byte = buffer[position]
        value |= (byte & 0x7F) << (7 * index)
        if byte < 0x80:
            if value >= _U64:
                raise ProtocolError("varint beyond 64 bits")
            return value, position + 1
    raise ProtocolError("varint longer than 10 bytes")


def encode_frame(frame: Frame) -> bytes:
    """Control byte `kind << 1 | done` (0x80: control), varints stream, message, length; data."""
    if not 0 <= frame.kind < 64:
        raise ValueError(f"a frame kind is 6 bits, not {frame.kind}")
    control = frame.kind << 1 | int(frame.done) | (0x80 if frame.control else 0)
    header = [encode_varint(value) for value in (frame.stream, frame.message, len(frame.data))]
    return bytes([control]) + b"".join(header) + frame.data


class FrameParser:
    """Frames out of a byte stream that arrives in pieces of any size."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        """Add `data`; the frames it completed. Raises ProtocolError on a malformed frame."""
        self._buffer += data
        frames: list[Frame] = []
        offset = 0
        while (parsed := self._parse_one(offset)) is not None:
            frame, offset = parsed
            frames.append(frame)
        # One deletion per feed, not one per frame: parsing stays linear in the bytes received.
        del self._buffer[:offset]
        return frames

    def _parse_one(self, start: int) -> tuple[Frame, int] | None:
        buffer = self._buffer
        if start >= len(buffer):
            return None
        control = buffer[start]
        position = start + 1
        header: list[int] = []
        for _ in range(3):
            parsed = decode_varint(buffer, position)
            if parsed is None:
                return None
            value, position = parsed
            header.append(value)
        stream, message, length = header
        if length > MAX_PACKET_BYTES:
            # Refused before it is buffered: a packet this size could never be accepted.
            raise ProtocolError(f"frame of {length} bytes, over the {MAX_PACKET_BYTES}-byte limit")
        end = position + length
        if end > len(buffer):
            return None
        frame = Frame(
            kind=(control & 0x7E) >> 1,
            stream=stream,
            message=message,
            data=bytes(buffer[position:end]),
            done=bool(control & 0x01),
            control=bool(control & 0x80),
        )
        return frame, end


class PacketAssembler:
    """Frames into packets by dRPC's rules for one direction of one connection."""

    def __init__(self, max_packet: int = MAX_PACKET_BYTES) -> None:
        self._max_packet = max_packet
        self._floor = (1, 1)  # the lowest id still acceptable (a finished one never is)
        self._current: tuple[int, int] | None = None
        self._kind = 0
        self._control = False
        self._data = bytearray()

    def add(self, frame: Frame) -> Packet | None:
        """Take one frame; the packet it completed, if any. Raises ProtocolError."""
        frame_id = (frame.stream, frame.message)
        if frame_id < self._floor:
            raise ProtocolError(
                f"id went backwards: stream {frame.stream} message {frame.message} "
                f"after stream {self._floor[0]} message {self._floor[1]}"
            )
        if frame_id != self._current:
            # A newer id: whatever was half read for the old one is abandoned.
            self._current = self._floor = frame_id
            self._kind = frame.kind
            self._control = False
            self._data = bytearray()
        elif frame.kind != self._kind:
            raise ProtocolError(f"frame kind changed from {self._kind} to {frame.kind} in a packet")
        self._control |= frame.control
        self._data += frame.data
        if len(self._data) > self._max_packet:
            raise ProtocolError(f"message over the {self._max_packet}-byte limit")
        if not frame.done:
            return None
        packet = Packet(self._kind, frame.stream, frame.message, bytes(self._data), self._control)
        self._floor = (frame.stream, frame.message + 1)
        self._data = bytearray()  # not held until the next packet: it may be 4 MiB
        return packet


def invoke_frames(stream: int, method: str, request: bytes) -> list[bytes]:
    """The three frames of a unary call: Invoke (message 1), Message (2), CloseSend (3)."""
    return [
        encode_frame(Frame(Kind.INVOKE, stream, 1, method.encode())),
        encode_frame(Frame(Kind.MESSAGE, stream, 2, request)),
        encode_frame(Frame(Kind.CLOSE_SEND, stream, 3)),
    ]


@dataclass(frozen=True)
class RemoteFailure:
    """The server's Error packet: its code and its text."""

    code: int | None
    text: str


def decode_error(data: bytes) -> RemoteFailure:
    """An Error packet's data: 8-byte big-endian code, then UTF-8 text (leniently decoded)."""
    code, text = (int.from_bytes(data[:8], "big"), data[8:]) if len(data) >= 8 else (None, data)
    return RemoteFailure(code, text.decode("utf-8", errors="replace"))


class UnaryCall:
    """What the client makes of the server's packets while one unary call is open."""

    def __init__(self, stream: int) -> None:
        self.stream = stream

    def take(self, packet: Packet) -> bytes | RemoteFailure | None:
        """The answer's bytes, the server's Error, or None while the call is open. Raises
        ProtocolError for anything a server may not send here."""
        if packet.stream < self.stream:
            return None  # e.g. the CloseSend after the previous answer, ignored as dRPC does
        if packet.stream > self.stream:
            raise ProtocolError(f"the server opened stream {packet.stream}")
        match packet.kind:
            case Kind.MESSAGE:
                return packet.data
            case Kind.ERROR:
                return decode_error(packet.data)
            case Kind.CLOSE_SEND | Kind.CLOSE | Kind.CANCEL:
                raise ProtocolError(f"the call ended without an answer (kind {packet.kind})")
            case Kind.INVOKE | Kind.INVOKE_METADATA:
                raise ProtocolError("the server sent an invoke")
            case _ if packet.control:
                return None  # an unknown control packet: ignorable by design
            case _:
                raise ProtocolError(f"unknown packet kind {packet.kind}")


# coder.agent.v2.UpdateAppStatusRequest.AppStatusState: WORKING is 0, the protobuf default.
APP_STATES = {"working": 0, "idle": 1, "complete": 2, "failure": 3}


def update_app_status_request(slug: str, state: str, message: str, uri: str) -> bytes:
    """`coder.agent.v2.UpdateAppStatusRequest` bytes; `state` is the wire word (`failure`...)."""
    fields: tuple[str | int, ...] = (slug, APP_STATES[state], message, uri)
    out = b""
    for number, value in enumerate(fields, start=1):
        if not value:
            continue  # proto3: a field holding its default ("" or WORKING) is absent
        if isinstance(value, int):
            out += encode_varint(number << 3) + encode_varint(value)  # wire type 0: varint
        else:
            # Wire type 2, length-delimited. Lone surrogates (a non-UTF-8 argument) are replaced.
            data = value.encode("utf-8", errors="replace")
            out += encode_varint(number << 3 | 2) + encode_varint(len(data)) + data
    return out
