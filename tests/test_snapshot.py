"""The snapshot builder, case by case (the policy is in agent/snapshot.py's docstring)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from agent.snapshot import MAX_BODY_BYTES, Snapshot, build_snapshot, marker

TIME = "2025-01-02T03:04:05.123456789Z"


@dataclass(frozen=True)
class M:
    id: int
    role: str
    content: str
    time: str = TIME


def history(sizes: list[int], fill: str = "x") -> list[M]:
    return [M(i, "user" if i % 2 else "agent", fill * size) for i, size in enumerate(sizes)]


def decoded(snapshot: Snapshot | None) -> list[dict[str, Any]]:
    assert snapshot is not None
    assert len(snapshot.body) <= MAX_BODY_BYTES
    messages: list[dict[str, Any]] = json.loads(snapshot.body.decode("utf-8"))["messages"]
    assert snapshot.message_count == len(messages)
    return messages


def strip_marker(content: str) -> str:
    if content.startswith("[… "):
        return content.split(" bytes cut …]\n", 1)[1]
    return content


def test_empty_and_unusable_give_nothing() -> None:
    assert build_snapshot([]) is None
    assert build_snapshot([M(0, "system", "x"), M(1, "tool", "y")]) is None


def test_three_small_are_sent_whole_and_compact() -> None:
    messages = [M(0, "agent", "Welcome"), M(1, "user", "hi"), M(2, "agent", "hello")]
    snapshot = build_snapshot(messages)
    assert snapshot is not None
    assert snapshot.body == (
        b'{"messages":[{"id":0,"content":"Welcome","role":"agent","time":"'
        + TIME.encode()
        + b'"},{"id":1,"content":"hi","role":"user","time":"'
        + TIME.encode()
        + b'"},{"id":2,"content":"hello","role":"agent","time":"'
        + TIME.encode()
        + b'"}]}'
    )
    assert (snapshot.truncated, snapshot.dropped) == (0, 0)


def test_twenty_five_small_keep_the_newest_ten_in_order() -> None:
    out = decoded(build_snapshot(history([50] * 25)))
    assert [m["id"] for m in out] == list(range(15, 25))


def test_unknown_roles_are_left_out_before_the_window() -> None:
    messages = [M(i, "agent" if i % 3 else "system", f"m{i}") for i in range(30)]
    out = decoded(build_snapshot(messages))
    assert len(out) == 10
    assert all(m["role"] in ("agent", "user") for m in out)
    assert out[-1]["id"] == 29


def test_all_ten_that_fit_are_whole() -> None:
    # ten messages that together just fit: nothing may be cut
    probe = build_snapshot(history([0] * 10))
    assert probe is not None
    room = MAX_BODY_BYTES - len(probe.body)
    sizes = [room // 10] * 10
    sizes[-1] += room - sum(sizes)
    snapshot = build_snapshot(history(sizes))
    assert snapshot is not None
    assert len(snapshot.body) == MAX_BODY_BYTES
    assert snapshot.truncated == 0
    assert [len(m["content"]) for m in decoded(snapshot)] == sizes
    one_more = history(sizes)
    one_more[0] = M(0, "agent", one_more[0].content + "x")
    assert build_snapshot(one_more) is not None
    cut = build_snapshot(one_more)
    assert cut is not None
    assert cut.truncated >= 1


def test_ten_of_10kb_are_all_kept_and_the_newest_gets_the_largest_share() -> None:
    snapshot = build_snapshot(history([10_000] * 10))
    out = decoded(snapshot)
    assert len(out) == 10
    lengths = [len(strip_marker(m["content"])) for m in out]
    assert lengths[-1] == 10_000
    assert len(set(lengths[:-1])) == 1  # the others are cut evenly
    assert lengths[0] < lengths[-1]
    assert MAX_BODY_BYTES - len(snapshot.body if snapshot else b"") < 100


def test_one_of_200kb_keeps_its_tail_with_a_marker() -> None:
    content = "".join(f"line {i:06d}\n" for i in range(20_000))  # 240 KB
    out = decoded(build_snapshot([M(0, "agent", content)]))
    kept = out[0]["content"]
    assert kept.startswith("[… ")
    tail = strip_marker(kept)
    assert content.endswith(tail)
    cut = len(content.encode()) - len(tail.encode())
    assert kept.startswith(marker(cut))
    assert len(tail) > 60_000


@pytest.mark.parametrize("fill", ["👍", "漢字", "e\u0301", '\u0000\u001f"\\\n\t'])
def test_multibyte_and_escape_heavy_content_fills_the_budget(fill: str) -> None:
    snapshot = build_snapshot(history([30_000] * 10, fill=fill))
    assert snapshot is not None
    out = decoded(snapshot)
    assert len(out) == 10
    assert MAX_BODY_BYTES - len(snapshot.body) < 200
    for message, original in zip(out, history([30_000] * 10, fill=fill), strict=True):
        tail = strip_marker(message["content"])
        assert original.content.endswith(tail)
        assert tail, "every message keeps some of its text"


def test_combining_marks_are_not_orphaned() -> None:
    content = "e\u0301" * 100_000
    tail = strip_marker(decoded(build_snapshot([M(0, "agent", content)]))[0]["content"])
    assert tail[0] == "e"


@pytest.mark.parametrize("where", [0, 5, 9])
def test_a_huge_message_is_cut_and_the_small_ones_stay_whole(where: int) -> None:
    sizes = [300] * 10
    sizes[where] = 3_000_000
    out = decoded(build_snapshot(history(sizes)))
    assert len(out) == 10
    for index, message in enumerate(out):
        if index == where:
            assert message["content"].startswith("[… ")
            assert len(message["content"]) > 60_000
        else:
            assert message["content"] == "x" * 300


def test_2000_messages_of_2kb() -> None:
    out = decoded(build_snapshot(history([2048] * 2000)))
    assert [m["id"] for m in out] == list(range(1990, 2000))
    assert all(len(m["content"]) == 2048 for m in out)


def test_one_of_5mb() -> None:
    content = "0123456789abcdef" * (5_000_000 // 16)
    snapshot = build_snapshot([M(0, "agent", "old"), M(1, "user", "go"), M(2, "agent", content)])
    out = decoded(snapshot)
    assert [m["content"] for m in out[:2]] == ["old", "go"]
    assert content.endswith(strip_marker(out[2]["content"]))
    assert snapshot is not None
    assert len(snapshot.body) == MAX_BODY_BYTES


def test_lone_surrogates_become_escapes_and_the_body_is_valid_utf8() -> None:
    snapshot = build_snapshot([M(0, "agent", "a\ud800b\udfffc")])
    assert snapshot is not None
    assert b"\\ud800" in snapshot.body
    assert json.loads(snapshot.body.decode("utf-8"))["messages"][0]["content"] == "a\ud800b\udfffc"


def test_time_and_id_pass_through_verbatim() -> None:
    out = decoded(build_snapshot([M(123456789, "user", "x", "2025-06-01T10:00:00+02:00")]))
    assert out[0]["id"] == 123456789
    assert out[0]["time"] == "2025-06-01T10:00:00+02:00"


def test_small_budgets_drop_the_oldest_first() -> None:
    snapshot = build_snapshot(history([500] * 10), max_bytes=1024)
    out = decoded(snapshot)
    assert snapshot is not None
    assert len(snapshot.body) <= 1024
    assert snapshot.dropped > 0
    assert out[-1]["id"] == 9
    assert [m["id"] for m in out] == list(range(10 - len(out), 10))


def test_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        build_snapshot([M(0, "agent", "x")], max_bytes=100)
    with pytest.raises(ValueError, match="max_messages"):
        build_snapshot([M(0, "agent", "x")], max_messages=0)
