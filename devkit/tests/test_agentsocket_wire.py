"""The stand-in's half of the agent socket's wire, against bytes worked out by hand and against
the protobuf runtime (what a real client's request decodes to)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.coder import drpc
from agent.coder.drpc import Kind, ProtocolError
from standins import agentsocket_wire as wire
from tests.test_drpc import TEXT, protobuf_bytes


def test_decoding_a_request_skips_unknown_fields_and_refuses_garbage() -> None:
    # Field 9 varint (0x48) and field 10 bytes (0x52) are skipped.
    decoded = wire.decode_update_app_status_request(b"\x48\x05\x52\x01z\x0a\x01a\x10\x07")
    assert (decoded.slug, decoded.state) == ("a", "7")
    for garbage in (b"\x0a\x05ab", b"\x0a", b"\x10", b"\x0d\x00\x00\x00\x00", b"\x0a\x01\xff"):
        with pytest.raises(ProtocolError):
            wire.decode_update_app_status_request(garbage)


def test_encode_packet_splits() -> None:
    assert wire.encode_packet(Kind.MESSAGE, 1, 1, b"abc", max_frame=2) == (
        b"\x04\x01\x01\x02ab" + b"\x05\x01\x01\x01c"
    )
    assert wire.encode_packet(Kind.MESSAGE, 1, 1, b"abc") == b"\x05\x01\x01\x03abc"
    assert wire.encode_error(0, "x") == b"\x00" * 8 + b"x"


@settings(max_examples=300)
@given(
    slug=TEXT,
    state=st.sampled_from(sorted(drpc.APP_STATES)),
    message=TEXT,
    uri=TEXT,
)
def test_what_the_protobuf_runtime_writes_decodes_to_the_same_request(
    slug: str, state: str, message: str, uri: str
) -> None:
    decoded = wire.decode_update_app_status_request(protobuf_bytes(slug, state, message, uri))
    assert (decoded.slug, decoded.state, decoded.message, decoded.uri) == (
        slug,
        state,
        message,
        uri,
    )
