"""The server's half of the agent socket's wire: what only the stand-in agent needs.

The product (agent.coder.drpc) encodes requests and reads answers; a server splits its answers
over frames, writes Error packets and decodes UpdateAppStatus requests. Those halves live here,
beside the stand-in that uses them, so the product carries no code only a test server runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.coder.drpc import APP_STATES, Frame, Kind, ProtocolError, decode_varint, encode_frame


def encode_packet(
    kind: Kind, stream: int, message: int, data: bytes, max_frame: int | None = None
) -> bytes:
    """A packet as frames of at most `max_frame` data bytes each (one frame when None)."""
    if max_frame is None or len(data) <= max_frame:
        return encode_frame(Frame(kind, stream, message, data))
    if max_frame <= 0:
        raise ValueError("max_frame must be positive")
    chunks = [data[i : i + max_frame] for i in range(0, len(data), max_frame)]
    return b"".join(
        encode_frame(Frame(kind, stream, message, chunk, done=i == len(chunks) - 1))
        for i, chunk in enumerate(chunks)
    )


def encode_error(code: int, text: str) -> bytes:
    """An Error packet's data: 8-byte big-endian code, then UTF-8 text."""
    return code.to_bytes(8, "big") + text.encode("utf-8", errors="replace")


@dataclass(frozen=True)
class AppStatusRequest:
    """A decoded UpdateAppStatusRequest (the stand-in's view of what a client sent)."""

    slug: str
    state: str
    message: str
    uri: str


def decode_update_app_status_request(data: bytes) -> AppStatusRequest:
    """Read an UpdateAppStatusRequest; unknown fields are skipped. Raises ProtocolError."""
    strings = {1: "", 3: "", 4: ""}
    state = 0
    offset = 0
    names = {number: name for name, number in APP_STATES.items()}
    while offset < len(data):
        parsed = decode_varint(data, offset)
        if parsed is None:
            raise ProtocolError("truncated protobuf key")
        key, offset = parsed
        number, wire = key >> 3, key & 7
        if wire == 0:
            parsed = decode_varint(data, offset)
            if parsed is None:
                raise ProtocolError("truncated protobuf varint")
            value, offset = parsed
            if number == 2:
                state = value
        elif wire == 2:
            parsed = decode_varint(data, offset)
            if parsed is None or parsed[1] + parsed[0] > len(data):
                raise ProtocolError("truncated protobuf field")
            length, offset = parsed
            raw = data[offset : offset + length]
            offset += length
            if number in strings:
                try:
                    strings[number] = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise ProtocolError(f"field {number} is not UTF-8") from None
        else:
            raise ProtocolError(f"unexpected protobuf wire type {wire}")
    return AppStatusRequest(strings[1], names.get(state, str(state)), strings[3], strings[4])
