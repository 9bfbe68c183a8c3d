"""The snapshot builder, case by case (the policy is in agent/snapshot.py's docstring).

Sizes are checked against an oracle written independently of the module: `literal` escapes a
string the way compact JSON does, character by character, with `str.translate`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import pytest

from agent.agentapi import Message
from agent.snapshot import (
    MAX_BODY_BYTES,
    MIN_BODY_BYTES,
    Snapshot,
    build_snapshot,
    marker,
)

if TYPE_CHECKING:
    from agent.snapshot import SnapshotMessage

TIME = "2025-01-02T03:04:05.123456789Z"
# What compact JSON escapes, and how (Python's json: the short escapes, else \u00XX).
_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_ESCAPES: dict[int, str] = {code: f"\\u{code:04x}" for code in range(0x20)}
_ESCAPES.update({code: f"\\u{code:04x}" for code in range(0xD800, 0xE000)})
_ESCAPES.update({ord(char): escaped for char, escaped in _SHORT.items()})
_MARKER = re.compile(r"\[… (\d+) bytes cut …\]\n")


@dataclass(frozen=True)
class M:
    id: int
    role: str
    content: str
    time: str = TIME


def history(sizes: list[int], fill: str = "x") -> list[M]:
    """Messages 0..n-1 alternating agent/user, each `fill` repeated `size` times."""
    return [M(i, "user" if i % 2 else "agent", fill * size) for i, size in enumerate(sizes)]


def literal(text: str) -> bytes:
    """The compact JSON string literal of `text` as the body must carry it."""
    return b'"' + text.translate(_ESCAPES).encode("utf-8") + b'"'


def utf8(text: str) -> int:
    """UTF-8 bytes of `text`, a lone surrogate at 3."""
    return len(text.encode("utf-8", errors="surrogatepass"))


def envelope(message: SnapshotMessage) -> int:
    """Bytes of a message's object that are not its content literal."""
    rest = b',"role":' + literal(message.role) + b',"time":' + literal(message.time) + b"}"
    return len(b'{"id":%d,"content":' % message.id) + len(rest)


def frame(messages: list[M]) -> int:
    """Bytes of a body holding `messages` that are not content literals."""
    return len('{"messages":[]}') + max(len(messages) - 1, 0) + sum(map(envelope, messages))


def whole_body(messages: list[M]) -> bytes:
    """The body with every message whole."""
    objects = [
        b'{"id":%d,"content":' % m.id
        + literal(m.content)
        + b',"role":'
        + literal(m.role)
        + b',"time":'
        + literal(m.time)
        + b"}"
        for m in messages
    ]
    return b'{"messages":[' + b",".join(objects) + b"]}"


def minimal(message: M) -> int:
    """Bytes of the content literal cut to nothing but its marker, or whole when smaller."""
    marker_only = len(literal(marker(utf8(message.content))))
    if len(message.content) >= marker_only:
        return marker_only  # every character costs a byte at least: whole is larger
    return min(marker_only, len(literal(message.content)))


def split_marker(content: str) -> tuple[int | None, str]:
    """(bytes cut, tail) of a sent content; (None, content) when it carries no marker."""
    found = _MARKER.match(content)
    if found is None:
        return None, content
    return int(found.group(1)), content[found.end() :]


def decoded(snapshot: Snapshot | None, max_bytes: int = MAX_BODY_BYTES) -> list[dict[str, Any]]:
    """The messages of a snapshot's body, after checking what holds for every body."""
    assert snapshot is not None
    assert len(snapshot.body) <= max_bytes
    messages: list[dict[str, Any]] = json.loads(snapshot.body.decode("utf-8"))["messages"]
    assert snapshot.message_count == len(messages)
    assert all(list(m) == ["id", "content", "role", "time"] for m in messages)
    return messages


def tails(out: list[dict[str, Any]]) -> list[str]:
    return [split_marker(m["content"])[1] for m in out]


def test_empty_and_unusable_give_nothing() -> None:
    assert build_snapshot([]) is None
    assert build_snapshot([M(0, "system", "x"), M(1, "tool", "y"), M(2, "", "z")]) is None


def test_three_small_are_sent_whole_and_compact() -> None:
    messages = [M(0, "agent", "Welcome"), M(1, "user", "hi"), M(2, "agent", "hello")]
    snapshot = build_snapshot(messages)
    assert snapshot == Snapshot(
        body=(
            b'{"messages":[{"id":0,"content":"Welcome","role":"agent","time":"'
            + TIME.encode()
            + b'"},{"id":1,"content":"hi","role":"user","time":"'
            + TIME.encode()
            + b'"},{"id":2,"content":"hello","role":"agent","time":"'
            + TIME.encode()
            + b'"}]}'
        ),
        message_count=3,
        dropped=0,
        truncated=0,
    )


def test_twenty_five_small_keep_the_newest_ten_in_order() -> None:
    messages = history([50] * 25)
    snapshot = build_snapshot(messages)
    assert snapshot is not None
    assert snapshot.body == whole_body(messages[15:])
    assert (snapshot.message_count, snapshot.dropped, snapshot.truncated) == (10, 0, 0)


def test_max_messages_sets_the_window() -> None:
    out = decoded(build_snapshot(history([5] * 8), max_messages=3))
    assert [m["id"] for m in out] == [5, 6, 7]


def test_unknown_roles_are_left_out_before_the_window() -> None:
    messages = [M(i, "agent" if i % 3 else "system", f"m{i}") for i in range(30)]
    out = decoded(build_snapshot(messages))
    usable = [m.id for m in messages if m.role == "agent"]
    assert [m["id"] for m in out] == usable[-10:]


def test_agentapi_order_is_kept_not_sorted() -> None:
    messages = [M(7, "agent", "a"), M(3, "user", "b"), M(5, "agent", "c")]
    assert [m["id"] for m in decoded(build_snapshot(messages))] == [7, 3, 5]


def test_all_ten_fitting_exactly_are_whole_and_one_byte_more_cuts_only_that_one() -> None:
    room = MAX_BODY_BYTES - len(whole_body(history([0] * 10)))
    sizes = [room // 10] * 10
    sizes[-1] += room - sum(sizes)
    messages = history(sizes)
    snapshot = build_snapshot(messages)
    assert snapshot is not None
    assert snapshot.body == whole_body(messages)
    assert len(snapshot.body) == MAX_BODY_BYTES
    assert snapshot.truncated == 0

    one_more = [replace(messages[0], content=messages[0].content + "x"), *messages[1:]]
    cut = build_snapshot(one_more)
    out = decoded(cut)
    assert cut is not None
    assert (cut.truncated, cut.dropped) == (1, 0)
    assert [m["content"] for m in out[1:]] == [m.content for m in messages[1:]]
    assert split_marker(out[0]["content"])[0] is not None
    assert len(cut.body) == MAX_BODY_BYTES


def test_ten_of_10kb_are_all_kept_cut_evenly_and_the_newest_gets_the_largest_share() -> None:
    snapshot = build_snapshot(history([10_000] * 10))
    out = decoded(snapshot)
    assert snapshot is not None
    assert (snapshot.message_count, snapshot.truncated, snapshot.dropped) == (10, 9, 0)
    kept = [len(t) for t in tails(out)]
    assert kept[-1] == 10_000, "the newest is under half the budget: whole"
    assert max(kept[:-1]) - min(kept[:-1]) <= 1, "the others are cut evenly"
    assert all(5_000 < k < 10_000 for k in kept[:-1])
    assert len(snapshot.body) == MAX_BODY_BYTES


def test_newest_gets_half_the_budget_when_everything_is_big() -> None:
    messages = history([100_000] * 3)
    snapshot = build_snapshot(messages)
    out = decoded(snapshot)
    budget = MAX_BODY_BYTES - frame(messages)
    sizes = [len(literal(m["content"])) for m in out]
    assert sizes[-1] == (budget + 1) // 2
    assert abs(sizes[0] - sizes[1]) <= 1
    assert sum(sizes) == budget


def test_one_of_200kb_keeps_its_tail_with_an_exact_marker() -> None:
    content = "".join(f"line {i:06d}\n" for i in range(20_000))  # 240 KB
    snapshot = build_snapshot([M(0, "agent", content)])
    out = decoded(snapshot)
    assert snapshot is not None
    cut, tail = split_marker(out[0]["content"])
    assert out[0]["content"].startswith("[… ")
    assert content.endswith(tail)
    assert cut == utf8(content) - utf8(tail)
    assert out[0]["content"] == marker(cut) + tail
    assert MAX_BODY_BYTES - len(snapshot.body) < 2, "a newline escape may not fit: one byte"
    assert snapshot.truncated == 1


def test_marker_counts_utf8_bytes_not_characters() -> None:
    content = "é" * 50_000 + "漢" * 50_000 + "👍" * 10_000  # 2, 3 and 4 bytes each
    out = decoded(build_snapshot([M(0, "agent", content)]))
    cut, tail = split_marker(out[0]["content"])
    assert content.endswith(tail)
    assert tail.startswith("漢"), "the tail reaches back past the emoji"
    assert cut == len(content.encode()) - len(tail.encode())


@pytest.mark.parametrize(
    "fill",
    [
        pytest.param("👍", id="emoji"),
        pytest.param("漢字", id="cjk"),
        pytest.param("e\u0301", id="combining"),
        pytest.param('\u0000\u001f"\\\n\t\r\b\f', id="escapes"),
        pytest.param("a\\\"b'\\n", id="quotes-backslashes"),
    ],
)
def test_multibyte_and_escape_heavy_content_fills_the_budget(fill: str) -> None:
    messages = history([30_000] * 10, fill=fill)
    snapshot = build_snapshot(messages)
    out = decoded(snapshot)
    assert snapshot is not None
    assert (snapshot.message_count, snapshot.truncated) == (10, 10)
    assert MAX_BODY_BYTES - len(snapshot.body) < 64, "the budget is used"
    for sent, original in zip(out, messages, strict=True):
        cut, tail = split_marker(sent["content"])
        assert tail, "every message keeps some of its text"
        assert original.content.endswith(tail)
        assert cut == utf8(original.content) - utf8(tail)


def test_non_ascii_is_sent_as_utf8_not_escaped() -> None:
    snapshot = build_snapshot([M(0, "agent", "漢字 👍 é")])
    assert snapshot is not None
    assert "漢字 👍 é".encode() in snapshot.body
    assert b"\\u" not in snapshot.body


def test_escape_heavy_content_passes_through_byte_for_byte() -> None:
    content = 'say "hi"\\n\\\n\t\x00\x01\x1f\x7f end \\u0041 \U0001f600 e\u0301'
    snapshot = build_snapshot([M(0, "user", content)])
    out = decoded(snapshot)
    assert snapshot is not None
    assert out[0]["content"] == content
    assert literal(content) in snapshot.body
    assert b"\\u0001" in snapshot.body  # a control character costs its six bytes


def test_escapes_are_counted_at_their_sent_size() -> None:
    # 60000 control characters are 360000 bytes sent: far over the budget though few characters.
    snapshot = build_snapshot([M(0, "agent", "\x01" * 60_000)])
    out = decoded(snapshot)
    assert snapshot is not None
    cut, tail = split_marker(out[0]["content"])
    assert set(tail) == {"\x01"}
    assert cut == 60_000 - len(tail)
    assert MAX_BODY_BYTES - 6 < len(snapshot.body) <= MAX_BODY_BYTES


@pytest.mark.parametrize("where", [0, 5, 9])
def test_one_huge_message_is_cut_and_the_small_ones_stay_whole(where: int) -> None:
    sizes = [300] * 10
    sizes[where] = 200_000
    messages = history(sizes)
    snapshot = build_snapshot(messages)
    out = decoded(snapshot)
    assert snapshot is not None
    assert (snapshot.truncated, snapshot.dropped) == (1, 0)
    for index, (sent, original) in enumerate(zip(out, messages, strict=True)):
        if index == where:
            assert original.content.endswith(split_marker(sent["content"])[1])
            assert len(sent["content"]) > 60_000
        else:
            assert sent["content"] == original.content
    assert len(snapshot.body) == MAX_BODY_BYTES


def test_two_huge_messages_share_and_small_ones_stay_whole() -> None:
    messages = history([300, 200_000, 300, 300, 300, 300, 300, 300, 300, 200_000])
    snapshot = build_snapshot(messages)
    out = decoded(snapshot)
    assert snapshot is not None
    assert snapshot.truncated == 2
    sizes = [len(literal(m["content"])) for m in out]
    budget = MAX_BODY_BYTES - frame(messages)
    assert sizes[-1] == (budget + 1) // 2, "the newest takes half"
    assert sizes[1] == budget - sizes[-1] - 8 * len(literal("x" * 300)), "the other the rest"


def test_2000_messages_of_2kb_keep_the_newest_ten_whole() -> None:
    # Speed is measured in bench/ (the stop-path benchmarks), never asserted here.
    messages = history([2048] * 2000)
    snapshot = build_snapshot(messages)
    assert snapshot is not None
    assert snapshot.body == whole_body(messages[-10:])


@pytest.mark.parametrize("megabytes", [5, 50])
def test_one_of_megabytes_keeps_its_tail(megabytes: int) -> None:
    content = "0123456789abcdé\n" * (megabytes * 1_000_000 // 17)
    messages = [M(0, "agent", "old"), M(1, "user", "go"), M(2, "agent", content)]
    snapshot = build_snapshot(messages)
    out = decoded(snapshot)
    assert snapshot is not None
    assert [m["content"] for m in out[:2]] == ["old", "go"]
    cut, tail = split_marker(out[2]["content"])
    assert content.endswith(tail)
    assert cut == utf8(content) - utf8(tail)
    assert MAX_BODY_BYTES - len(snapshot.body) < 4


def test_lone_surrogates_become_escapes_and_the_body_is_valid_utf8() -> None:
    snapshot = build_snapshot([M(0, "agent", "a\ud800b\udfffc")])
    assert snapshot is not None
    assert b'"a\\ud800b\\udfffc"' in snapshot.body
    assert decoded(snapshot)[0]["content"] == "a\ud800b\udfffc"


def test_lone_surrogates_in_a_cut_content_are_counted_at_their_sent_size() -> None:
    content = "\ud800x" * 50_000  # 7 bytes sent per pair of characters
    snapshot = build_snapshot([M(0, "agent", content)])
    out = decoded(snapshot)
    assert snapshot is not None
    cut, tail = split_marker(out[0]["content"])
    assert content.endswith(tail)
    assert cut == utf8(content) - utf8(tail)  # a lone surrogate counts its 3 bytes
    assert MAX_BODY_BYTES - len(snapshot.body) < 6


def test_a_surrogate_pair_held_as_two_characters_is_not_split() -> None:
    # JSON reads the two escapes back as the one character; a cut between them would leave half.
    pair = "\ud83d\ude00"
    for offset in range(8):
        content = "y" * offset + pair * 20_000
        out = decoded(build_snapshot([M(0, "agent", content)]))
        tail = split_marker(out[0]["content"])[1]
        assert set(tail) == {"\U0001f600"}


def test_combining_marks_are_not_orphaned() -> None:
    for offset in range(3):
        content = "x" * offset + "e\u0301\u0302" * 40_000
        tail = split_marker(decoded(build_snapshot([M(0, "agent", content)]))[0]["content"])[1]
        assert tail.startswith("e")


def test_a_run_of_marks_longer_than_eight_is_cut_anyway() -> None:
    snapshot = build_snapshot([M(0, "agent", "\u0301" * 100_000)])
    out = decoded(snapshot)
    assert snapshot is not None
    assert set(split_marker(out[0]["content"])[1]) == {"\u0301"}
    assert MAX_BODY_BYTES - len(snapshot.body) < 4


def test_time_and_id_pass_through_verbatim() -> None:
    messages = [M(123456789, "user", "x", "2025-06-01T10:00:00+02:00"), M(-1, "agent", "y")]
    snapshot = build_snapshot(messages)
    out = decoded(snapshot)
    assert snapshot is not None
    assert [(m["id"], m["time"]) for m in out] == [
        (123456789, "2025-06-01T10:00:00+02:00"),
        (-1, "2025-01-02T03:04:05.123456789Z"),
    ]
    assert b'"time":"2025-01-02T03:04:05.123456789Z"' in snapshot.body


def test_agentapi_messages_fit_the_protocol() -> None:
    messages = [
        Message(id=0, role="agent", content="ready", time=TIME),
        Message(id=1, role="user", content="go", time="2025-01-02T03:04:06Z"),
    ]
    out = decoded(build_snapshot(messages))
    assert [(m["id"], m["content"], m["time"]) for m in out] == [
        (0, "ready", TIME),
        (1, "go", "2025-01-02T03:04:06Z"),
    ]


def test_small_budgets_drop_the_oldest_only_when_minimal_forms_do_not_fit() -> None:
    messages = history([500] * 10)
    snapshot = build_snapshot(messages, max_bytes=1024)
    out = decoded(snapshot, max_bytes=1024)
    assert snapshot is not None
    kept = messages[10 - len(out) :]
    assert [m["id"] for m in out] == [m.id for m in kept]
    assert snapshot.dropped == 10 - len(out) > 0
    assert frame(kept) + sum(map(minimal, kept)) <= 1024
    one_more = messages[9 - len(out) :]
    assert frame(one_more) + sum(map(minimal, one_more)) > 1024
    assert out[-1]["id"] == 9
    assert snapshot.truncated == len(out)


def test_small_messages_are_kept_whole_in_a_small_budget_before_anything_is_dropped() -> None:
    messages = [*history([3] * 9), M(9, "user", "z" * 5_000)]
    snapshot = build_snapshot(messages, max_bytes=MIN_BODY_BYTES)
    out = decoded(snapshot, max_bytes=MIN_BODY_BYTES)
    assert snapshot is not None
    assert (snapshot.dropped, snapshot.truncated) == (0, 1)
    assert [m["content"] for m in out[:-1]] == ["xxx"] * 9


def test_a_single_huge_message_in_the_smallest_budget() -> None:
    content = "z" * 50_000_000
    snapshot = build_snapshot([M(0, "agent", content)], max_bytes=MIN_BODY_BYTES)
    out = decoded(snapshot, max_bytes=MIN_BODY_BYTES)
    assert snapshot is not None
    cut, tail = split_marker(out[0]["content"])
    assert cut == len(content) - len(tail)
    assert len(snapshot.body) == MIN_BODY_BYTES


def test_parameters_are_checked() -> None:
    message = [M(0, "agent", "x")]
    with pytest.raises(ValueError, match="max_bytes"):
        build_snapshot(message, max_bytes=MIN_BODY_BYTES - 1)
    with pytest.raises(ValueError, match="max_messages"):
        build_snapshot(message, max_messages=0)
    with pytest.raises(ValueError, match="id, role and time"):
        build_snapshot([M(0, "agent", "x", "9" * 2_000)], max_bytes=MIN_BODY_BYTES)
    assert build_snapshot(message, max_bytes=MIN_BODY_BYTES, max_messages=1) is not None
