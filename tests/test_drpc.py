"""dRPC framing against byte vectors worked out by hand from the wire description.

Every expected byte string below is written out from contracts.md section 4, not produced by
the encoder under test: control byte `kind << 1 | done` (0x80 = control flag), then LEB128
varints stream id, message id, length, then the data.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.coder import drpc
from agent.coder.drpc import Frame, FrameParser, Kind, PacketAssembler, ProtocolError

PING_PATH = b"/coder.agentsocket.v1.AgentSocket/Ping"  # 38 bytes = 0x26
UPDATE_PATH = b"/coder.agentsocket.v1.AgentSocket/UpdateAppStatus"  # 49 bytes = 0x31

# A Ping on stream 1: Invoke (kind 1, done: 0x03), Message (kind 2: 0x05) with no data,
# CloseSend (kind 6: 0x0d).
PING_INVOKE = b"\x03\x01\x01\x26" + PING_PATH
PING_MESSAGE = b"\x05\x01\x02\x00"
PING_CLOSE_SEND = b"\x0d\x01\x03\x00"
# The server's answer: Message (stream 1, message 1, empty), CloseSend (message 2).
ANSWER = b"\x05\x01\x01\x00" + b"\x0d\x01\x02\x00"


def test_path_lengths_as_counted() -> None:
    assert len(PING_PATH) == 0x26
    assert len(UPDATE_PATH) == 0x31
    assert drpc.PING.encode() == PING_PATH
    assert drpc.UPDATE_APP_STATUS.encode() == UPDATE_PATH


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00"),
        (1, b"\x01"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (300, b"\xac\x02"),  # 300 = 0b10_0101100: 0x2c | 0x80, then 0b10
        (16384, b"\x80\x80\x01"),
        (2**64 - 1, b"\xff" * 9 + b"\x01"),  # 64 bits: nine groups of 7, then the last bit
    ],
)
def test_varints(value: int, encoded: bytes) -> None:
    assert drpc.encode_varint(value) == encoded
    assert drpc.decode_varint(encoded, 0) == (value, len(encoded))
    assert drpc.decode_varint(encoded[:-1], 0) is None  # ends inside the varint


def test_varint_limits() -> None:
    with pytest.raises(ProtocolError, match="longer than 10"):
        drpc.decode_varint(b"\x80" * 10 + b"\x01", 0)
    with pytest.raises(ProtocolError, match="64 bits"):
        drpc.decode_varint(b"\xff" * 9 + b"\x02", 0)
    with pytest.raises(ValueError, match="2\\*\\*64"):
        drpc.encode_varint(2**64)
    with pytest.raises(ValueError, match="2\\*\\*64"):
        drpc.encode_varint(-1)


def test_a_unary_call_is_three_frames() -> None:
    assert drpc.invoke_frames(1, drpc.PING, b"") == [PING_INVOKE, PING_MESSAGE, PING_CLOSE_SEND]
    # Stream 200 needs two varint bytes: 200 = 0x48 | 0x80, then 0x01.
    assert drpc.invoke_frames(200, drpc.PING, b"\x08\x01")[1] == b"\x05\xc8\x01\x02\x02\x08\x01"


def test_frame_encoding_flags() -> None:
    assert drpc.encode_frame(Frame(Kind.MESSAGE, 1, 2, b"ab", done=False)) == b"\x04\x01\x02\x02ab"
    assert drpc.encode_frame(Frame(20, 3, 1, b"", control=True)) == b"\xa9\x03\x01\x00"
    with pytest.raises(ValueError, match="6 bits"):
        drpc.encode_frame(Frame(64, 1, 1))


def test_parse_frames_whole_and_byte_by_byte() -> None:
    wire = PING_INVOKE + PING_MESSAGE + PING_CLOSE_SEND
    expected = [
        Frame(Kind.INVOKE, 1, 1, PING_PATH),
        Frame(Kind.MESSAGE, 1, 2, b""),
        Frame(Kind.CLOSE_SEND, 1, 3, b""),
    ]
    assert FrameParser().feed(wire) == expected
    parser = FrameParser()
    frames: list[Frame] = []
    for index in range(len(wire)):
        frames += parser.feed(wire[index : index + 1])
    assert frames == expected
    # Nothing was left over: the next frame is read from its first byte.
    assert parser.feed(PING_MESSAGE) == [Frame(Kind.MESSAGE, 1, 2, b"")]


def test_parse_flags_and_kinds() -> None:
    # 0x04: Message, not done. 0xa9: control flag, kind 20 (0x28 >> 1), done.
    frames = FrameParser().feed(b"\x04\x01\x01\x01x" + b"\xa9\x01\x02\x00")
    assert frames == [
        Frame(Kind.MESSAGE, 1, 1, b"x", done=False),
        Frame(20, 1, 2, b"", done=True, control=True),
    ]


def test_parse_refuses_a_frame_over_the_limit_before_buffering_it() -> None:
    # Length 4 MiB + 1 = 2**22 + 1: groups 0x01|0x80, 0x80, 0x80, 0x02.
    with pytest.raises(ProtocolError, match="limit"):
        FrameParser().feed(b"\x05\x01\x01\x81\x80\x80\x02")
    # Exactly 4 MiB is announced without complaint (then waits for the data).
    assert FrameParser().feed(b"\x05\x01\x01\x80\x80\x80\x02") == []


def test_parse_refuses_an_overlong_varint_in_a_header() -> None:
    with pytest.raises(ProtocolError, match="longer than 10"):
        FrameParser().feed(b"\x05" + b"\x80" * 10 + b"\x01\x01\x00")


def _packets(*frames: Frame, max_packet: int = drpc.MAX_PACKET_BYTES) -> list[drpc.Packet]:
    assembler = PacketAssembler(max_packet)
    return [p for f in frames if (p := assembler.add(f)) is not None]


def test_a_message_split_over_frames_is_one_packet() -> None:
    packets = _packets(
        *FrameParser().feed(b"\x04\x01\x01\x02ab" + b"\x04\x01\x01\x01c" + b"\x05\x01\x01\x01d")
    )
    assert packets == [drpc.Packet(Kind.MESSAGE, 1, 1, b"abcd")]


def test_a_newer_id_abandons_a_half_read_packet() -> None:
    packets = _packets(Frame(Kind.MESSAGE, 1, 1, b"ab", done=False), Frame(Kind.ERROR, 1, 2, b"x"))
    assert packets == [drpc.Packet(Kind.ERROR, 1, 2, b"x")]


@pytest.mark.parametrize(
    "frames",
    [
        [Frame(Kind.MESSAGE, 0, 1)],  # stream ids start at 1
        [Frame(Kind.MESSAGE, 1, 0)],  # message ids start at 1
        [Frame(Kind.MESSAGE, 2, 1), Frame(Kind.MESSAGE, 1, 5)],  # stream went backwards
        [Frame(Kind.MESSAGE, 1, 2), Frame(Kind.MESSAGE, 1, 1)],  # message went backwards
        [Frame(Kind.MESSAGE, 1, 1), Frame(Kind.MESSAGE, 1, 1)],  # a finished id reused
    ],
)
def test_ids_never_go_backwards(frames: list[Frame]) -> None:
    with pytest.raises(ProtocolError, match="backwards"):
        _packets(*frames)


def test_kind_change_inside_a_packet() -> None:
    with pytest.raises(ProtocolError, match="kind changed"):
        _packets(Frame(Kind.MESSAGE, 1, 1, b"a", done=False), Frame(Kind.ERROR, 1, 1, b"b"))


def test_a_packet_over_the_limit_across_frames() -> None:
    with pytest.raises(ProtocolError, match="limit"):
        _packets(
            Frame(Kind.MESSAGE, 1, 1, b"abc", done=False),
            Frame(Kind.MESSAGE, 1, 1, b"de"),
            max_packet=4,
        )
    assert _packets(
        Frame(Kind.MESSAGE, 1, 1, b"ab", done=False), Frame(Kind.MESSAGE, 1, 1, b"cd"), max_packet=4
    )


def test_the_default_limit_is_4_mib() -> None:
    half = b"x" * (2 << 20)
    assert _packets(Frame(Kind.MESSAGE, 1, 1, half, done=False), Frame(Kind.MESSAGE, 1, 1, half))
    with pytest.raises(ProtocolError, match="limit"):
        _packets(
            Frame(Kind.MESSAGE, 1, 1, half, done=False), Frame(Kind.MESSAGE, 1, 1, half + b"x")
        )


def test_unary_call_reading() -> None:
    call = drpc.UnaryCall(2)
    # The previous call's CloseSend (stream 1) is ignored; so is an unknown control packet.
    assert call.take(drpc.Packet(Kind.CLOSE_SEND, 1, 2, b"")) is None
    assert call.take(drpc.Packet(20, 2, 1, b"", control=True)) is None
    assert call.take(drpc.Packet(Kind.MESSAGE, 2, 1, b"\x08\x01")) == b"\x08\x01"
    # Error data: 8-byte big-endian code (here 7), then the text.
    failure = call.take(drpc.Packet(Kind.ERROR, 2, 1, b"\x00" * 7 + b"\x07" + b"nope"))
    assert failure == drpc.RemoteFailure(7, "nope")
    assert drpc.decode_error(b"short") == drpc.RemoteFailure(None, "short")


@pytest.mark.parametrize(
    ("packet", "problem"),
    [
        (drpc.Packet(Kind.MESSAGE, 3, 1, b""), "opened stream"),
        (drpc.Packet(Kind.CLOSE_SEND, 2, 1, b""), "without an answer"),
        (drpc.Packet(Kind.CLOSE, 2, 1, b""), "without an answer"),
        (drpc.Packet(Kind.INVOKE, 2, 1, b""), "invoke"),
        (drpc.Packet(20, 2, 1, b""), "unknown packet kind"),
    ],
)
def test_unary_call_refuses(packet: drpc.Packet, problem: str) -> None:
    with pytest.raises(ProtocolError, match=problem):
        drpc.UnaryCall(2).take(packet)


# UpdateAppStatusRequest, by hand: field 1 slug (key 0x0a = 1 << 3 | 2), field 2 state
# (key 0x10 = 2 << 3 | 0), field 3 message (0x1a), field 4 uri (0x22).
@pytest.mark.parametrize(
    ("args", "encoded"),
    [
        (("agent", "idle", "Turn finished", ""), b"\x0a\x05agent\x10\x01\x1a\x0dTurn finished"),
        # WORKING is 0, the default: absent on the wire.
        (("agent", "working", "Go", ""), b"\x0a\x05agent\x1a\x02Go"),
        (
            ("a", "failure", "", "https://x.io"),
            b"\x0a\x01a\x10\x03\x22\x0chttps://x.io",
        ),
        (("a", "complete", "é", ""), b"\x0a\x01a\x10\x02\x1a\x02\xc3\xa9"),
        (("", "working", "", ""), b""),
    ],
)
def test_update_app_status_request(args: tuple[str, str, str, str], encoded: bytes) -> None:
    assert drpc.update_app_status_request(*args) == encoded
    assert drpc.update_app_status_request(*args) == protobuf_bytes(*args)


def test_a_message_that_is_not_utf8_is_replaced_not_fatal() -> None:
    encoded = drpc.update_app_status_request("a", "idle", "bad \udcff byte", "")
    assert encoded == b"\x0a\x01a\x10\x01\x1a\x0abad ? byte"  # 10 bytes


def protobuf_bytes(slug: str, state: str, message: str, uri: str) -> bytes:
    """The request as the protobuf runtime itself serialises it (the reference encoder)."""
    request = _request_class()(slug=slug, state=drpc.APP_STATES[state], message=message, uri=uri)
    encoded: bytes = request.SerializeToString(deterministic=True)
    return encoded


@functools.cache
def _request_class() -> Any:
    # coder.agent.v2.UpdateAppStatusRequest, described by hand: the four fields as Coder's
    # agent.proto numbers them, so no generated code is needed.
    proto = descriptor_pb2.FileDescriptorProto(
        name="coder_task_agent_test.proto", package="coder.agent.v2", syntax="proto3"
    )
    message = proto.message_type.add(name="UpdateAppStatusRequest")
    states = message.enum_type.add(name="AppStatusState")
    for name, number in drpc.APP_STATES.items():
        states.value.add(name=name.upper(), number=number)
    field = descriptor_pb2.FieldDescriptorProto
    for number, name in ((1, "slug"), (3, "message"), (4, "uri")):
        message.field.add(name=name, number=number, type=field.TYPE_STRING)
    message.field.add(
        name="state",
        number=2,
        type=field.TYPE_ENUM,
        type_name=".coder.agent.v2.UpdateAppStatusRequest.AppStatusState",
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("coder.agent.v2.UpdateAppStatusRequest")
    )


# Text as a person or a server could send it: any code point UTF-8 can carry (no surrogates).
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=300)


@settings(max_examples=300)
@given(
    slug=TEXT,
    state=st.sampled_from(sorted(drpc.APP_STATES)),
    message=TEXT,
    uri=TEXT,
)
def test_the_encoder_writes_what_the_protobuf_runtime_writes(
    slug: str, state: str, message: str, uri: str
) -> None:
    assert drpc.update_app_status_request(slug, state, message, uri) == protobuf_bytes(
        slug, state, message, uri
    )
