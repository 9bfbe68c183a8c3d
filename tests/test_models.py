"""Text from outside at the AppStatus boundary: one limit, nothing that cannot be encoded."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.models import (
    ELLIPSIS,
    MAX_STATUS_MESSAGE_BYTES,
    REPLACEMENT,
    AppState,
    AppStatus,
    clean_text,
    shorten,
)

# Any code point, lone surrogates and NUL included (what argv, a socket or a hook can carry).
hostile_text = st.text(alphabet=st.characters(codec=None, min_codepoint=0), max_size=400)


@given(hostile_text, hostile_text)
@settings(max_examples=300, deadline=None)
def test_any_text_makes_a_report_that_encodes_within_the_limit(message: str, uri: str) -> None:
    status = AppStatus(AppState.COMPLETE, message, uri)
    encoded = status.message.encode("utf-8")  # strict: raises on a lone surrogate
    assert len(encoded) <= MAX_STATUS_MESSAGE_BYTES
    assert "\x00" not in status.message
    status.uri.encode("utf-8")
    # The body the client sends is built with json.dumps(ensure_ascii=False).encode().
    json.dumps({"message": status.message, "uri": status.uri}, ensure_ascii=False).encode()
    # Idempotent: the same report whichever path (socket, direct, hooks) built it first.
    assert AppStatus(status.state, status.message, status.uri) == status
    assert shorten(status.message) == status.message


def test_a_latin1_subject_from_argv_is_replaced_not_refused() -> None:
    # "café" in Latin-1, decoded by Python's argv handling (surrogateescape).
    subject = b"caf\xe9 fixed".decode("utf-8", errors="surrogateescape")
    status = AppStatus(AppState.COMPLETE, subject)
    assert status.message == f"caf{REPLACEMENT} fixed"


def test_a_long_summary_is_shortened_to_exactly_the_limit_at_a_character_boundary() -> None:
    status = AppStatus(AppState.COMPLETE, "é" * 200)
    raw = status.message.encode()
    assert len(raw) <= MAX_STATUS_MESSAGE_BYTES
    assert status.message.endswith(ELLIPSIS)
    assert set(status.message[:-1]) == {"é"}
    exactly = "x" * MAX_STATUS_MESSAGE_BYTES
    assert AppStatus(AppState.IDLE, exactly).message == exactly


def test_clean_text_leaves_valid_text_alone() -> None:
    text = "Tests pass ✓ — 日本語 😀 \t tab"
    assert clean_text(text) is text or clean_text(text) == text
    assert clean_text("a\x00b\ud800c") == f"a{REPLACEMENT}b{REPLACEMENT}c"
