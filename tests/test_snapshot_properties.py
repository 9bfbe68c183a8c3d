"""Properties of the snapshot builder over arbitrary content, roles, counts and sizes.

Contents are drawn as JSON parsing would hand them over: any code point, lone surrogates
included, but never a high and a low surrogate side by side (JSON reads that as one character;
`test_surrogate_pairs_held_as_two_characters` covers that shape on its own).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agent.snapshot import MAX_BODY_BYTES, MAX_MESSAGES, build_snapshot
from tests.test_snapshot import (
    TIME,
    M,
    frame,
    literal,
    minimal,
    split_marker,
    utf8,
    whole_body,
)

USABLE = ("user", "agent")
ROLES = st.sampled_from(["agent", "user", "agent", "user", "system", "tool", "", "Agent"])
TIMES = st.sampled_from([TIME, "2025-06-01T10:00:00+02:00", "2025-01-02T03:04:05Z"])
CHARACTERS = st.one_of(
    st.characters(categories=["L", "M", "N", "P", "S", "Z", "Cc", "Cf", "Cs", "Co", "Cn"]),
    st.characters(categories=["Cs"]),  # surrogates are a tiny share of all code points
    st.sampled_from(
        ['"', "\\", "\n", "\x00", "\x01", "\x7f", "é", "漢", "👍", "\u0301", "\U0001d165", "─"]
    ),
)
SEEDS = st.text(alphabet=CHARACTERS, max_size=20)
# Kilobytes and megabytes come from repeating a drawn text: fast to build, and still arbitrary.
REPEATS = st.sampled_from([1, 1, 1, 1, 30, 1_000, 20_000, 100_000])
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Bytes a cut may leave unused, as the module docstring bounds them: a character that did not
# fit (at most 5, its JSON form being at most 6), half a surrogate pair (6) and eight combining
# marks skipped so the tail does not start with an orphan (4 bytes each at most).
SLACK = 5 + 6 + 8 * 4


def as_parsed(text: str) -> str:
    """`text` as a JSON parser reads it back: a high and a low surrogate become one character."""
    parsed: str = json.loads(json.dumps(text))
    return parsed


def is_high(char: str) -> bool:
    return "\ud800" <= char <= "\udbff"


def is_low(char: str) -> bool:
    return "\udc00" <= char <= "\udfff"


# One drawn message: role, seed text, times repeated, time. The content itself is built in the
# test body: Hypothesis keeps what strategies return, and megabytes per example add up.
Drawn = tuple[str, str, int, str]
HISTORIES = st.lists(st.tuples(ROLES, SEEDS, REPEATS, TIMES), max_size=40)


def content(seed: str, repeat: int) -> str:
    """A drawn text as JSON parsing would hand it over, repeated into kilobytes or megabytes."""
    seed = as_parsed(seed)
    if repeat > 1 and seed and is_high(seed[-1]) and is_low(seed[0]):
        seed += "x"  # repeating must not join two halves into a pair
    return seed * repeat


def history(drawn: list[Drawn]) -> list[M]:
    return [
        M(i * 3, role, content(seed, repeat), time)
        for i, (role, seed, repeat, time) in enumerate(drawn)
    ]


def check(messages: list[M], max_bytes: int = MAX_BODY_BYTES) -> None:
    """Every property the policy promises, for one history and budget."""
    usable = [m for m in messages if m.role in USABLE]
    snapshot = build_snapshot(messages, max_bytes=max_bytes)
    if not usable:
        assert snapshot is None
        return
    assert snapshot is not None

    # Size and validity: within the limit, valid UTF-8, valid JSON, the exact compact form.
    assert len(snapshot.body) <= max_bytes
    out: list[dict[str, Any]] = json.loads(snapshot.body.decode("utf-8"))["messages"]
    sent = [M(m["id"], m["role"], m["content"], m["time"]) for m in out]
    assert snapshot.body == whole_body(sent), "compact, key order, escapes as sent"

    # Order and contiguity: a run of the window that ends with the newest.
    window = usable[-MAX_MESSAGES:]
    kept = window[len(window) - len(out) :]
    assert out, "the newest is always present"
    assert [(m.id, m.role, m.time) for m in sent] == [(m.id, m.role, m.time) for m in kept]
    assert (snapshot.message_count, snapshot.dropped) == (len(out), len(window) - len(out))

    cut = cuts(sent, kept)
    assert snapshot.truncated == sum(cut)

    # All fitting whole means sent unchanged; anything cut means the budget is used.
    if sum(len(m.content) for m in window) <= max_bytes:
        whole = whole_body(window)
        if len(whole) <= max_bytes:
            assert snapshot.body == whole
    if any(cut):
        assert max_bytes - len(snapshot.body) <= SLACK, "the budget is used"
    # Nothing cut yet some dropped is right too: messages shorter than a marker are their own
    # minimal form, so one more may not fit even though the rest fit whole. The rule below
    # decides every drop.

    # Drops: only when the minimal forms of one more message would not fit.
    if snapshot.dropped:
        one_more = window[len(window) - len(out) - 1 :]
        assert frame(one_more) + sum(map(minimal, one_more)) > max_bytes

    if max_bytes == MAX_BODY_BYTES:
        assert snapshot.dropped == 0, "with 64 KB nothing is dropped"
    check_shares(sent, kept, cut, max_bytes)


def cuts(sent: list[M], kept: list[M]) -> list[bool]:
    """Which messages were cut, after checking each cut keeps its tail behind an exact marker."""
    cut: list[bool] = []
    for message, original in zip(sent, kept, strict=True):
        count, tail = split_marker(message.content)
        if message.content == original.content:
            cut.append(False)
            continue
        assert count is not None, "a changed content carries its marker"
        assert original.content.endswith(tail), "the tail is kept"
        assert count == utf8(original.content) - utf8(tail) > 0
        cut.append(True)
    return cut


def check_shares(sent: list[M], kept: list[M], cut: list[bool], max_bytes: int) -> None:
    """Water-filling among the older messages; the newest's share."""
    sizes = [len(literal(m.content)) for m in sent]
    older = list(zip(sizes[:-1], cut[:-1], strict=True))
    for size, was_cut in older:
        if was_cut:  # none cut while another older one keeps more than it
            # A cut may fall up to SLACK short of its allotment and hands the rest on to the
            # next cut: two older ones may differ by both.
            assert all(other <= size + 2 * SLACK for other, _ in older)
    if max_bytes != MAX_BODY_BYTES:
        return  # below, the floors of minimal forms may decide instead
    budget = max_bytes - frame(kept)
    newest = kept[-1].content
    if len(newest) <= budget // 2 and len(literal(newest)) <= budget // 2:
        assert not cut[-1], "whole while it takes at most half the budget"
    if cut[-1]:
        assert all(size <= sizes[-1] + SLACK for size in sizes[:-1]), "the largest share"


@given(HISTORIES)
@settings(SETTINGS, max_examples=120)
def test_properties(drawn: list[Drawn]) -> None:
    check(history(drawn))


@given(HISTORIES, st.integers(min_value=1024, max_value=8192))
@settings(SETTINGS, max_examples=80)
def test_properties_small_budgets(drawn: list[Drawn], max_bytes: int) -> None:
    check(history(drawn), max_bytes)


@given(
    st.integers(min_value=0, max_value=10**15),
    st.lists(
        st.tuples(st.text(alphabet=CHARACTERS, min_size=1, max_size=8), st.sampled_from([3, 30])),
        min_size=8,
        max_size=14,
    ),
    st.integers(min_value=1024, max_value=1300),
)
@example(  # one dropped and none cut: ten minimal forms take 1084 bytes, nine whole 1037
    first_id=9_999_999_999_972,
    drawn=[*[("0", n) for n in (30, 30, 3, 30, 30, 30, 3, 30)], ("00", 3), ("00", 30)],
    max_bytes=1040,
)
@settings(SETTINGS, max_examples=80)
def test_properties_when_messages_must_be_dropped(
    first_id: int, drawn: list[tuple[str, int]], max_bytes: int
) -> None:
    # Long ids and ten markers nearly fill these budgets: the drop rule decides.
    messages = [M(first_id + i, "agent", as_parsed(seed) * n) for i, (seed, n) in enumerate(drawn)]
    check(messages, max_bytes)


@given(
    st.lists(st.integers(min_value=0, max_value=100_000), min_size=1, max_size=10),
    st.sampled_from([1024, 4096, MAX_BODY_BYTES]),
)
@settings(SETTINGS, max_examples=150)
def test_water_filling_is_exact_on_plain_text(lengths: list[int], max_bytes: int) -> None:
    # Plain ASCII costs a byte a character: every allotment is met exactly.
    messages = [M(i, "agent", "x" * n) for i, n in enumerate(lengths)]
    check(messages, max_bytes)
    snapshot = build_snapshot(messages, max_bytes=max_bytes)
    assert snapshot is not None
    out = json.loads(snapshot.body)["messages"]
    sent = [len(literal(m["content"])) for m in out]
    whole = [len(literal(m.content)) for m in messages[len(messages) - len(out) :]]
    if snapshot.truncated == 0:
        assert sent == whole
        return
    assert len(snapshot.body) == max_bytes, "not a byte wasted"
    # Cut to the water level (c or c + 1 bytes), unless held at the floor of a marker alone
    # (plus the one byte of rounding it may get).
    floors = [minimal(m) for m in messages[len(messages) - len(out) :]]
    level = [
        size
        for size, full, floor in zip(sent[:-1], whole[:-1], floors[:-1], strict=True)
        if floor + 1 < size < full
    ]
    older_whole = [w for s, w in zip(sent[:-1], whole[:-1], strict=True) if s == w]
    if level:
        assert max(level) - min(level) <= 1, "cut to the same level"
        assert max(older_whole, default=0) <= min(level) + 1, "only the largest are cut"
    if sent[-1] < whole[-1] and max_bytes == MAX_BODY_BYTES:
        assert sent[-1] >= max(sent[:-1], default=0), "the newest gets the largest share"


@given(st.text(alphabet=CHARACTERS, max_size=12), st.integers(min_value=1, max_value=30_000))
@settings(SETTINGS, max_examples=60)
def test_surrogate_pairs_held_as_two_characters(seed: str, repeat: int) -> None:
    # Pairs as two code points (not what JSON parsing yields): sent as two escapes, read back
    # as one character, and never split by a cut.
    content = (seed + "\ud83d\ude00") * repeat
    snapshot = build_snapshot([M(0, "agent", "before"), M(1, "agent", content)])
    assert snapshot is not None
    assert len(snapshot.body) <= MAX_BODY_BYTES
    out = json.loads(snapshot.body.decode("utf-8"))["messages"]
    assert out[0]["content"] == "before"
    assert as_parsed(content).endswith(split_marker(out[1]["content"])[1])
    if snapshot.truncated:
        assert MAX_BODY_BYTES - len(snapshot.body) <= SLACK


@pytest.mark.slow
@given(HISTORIES, st.sampled_from([1024, 2000, 8192, MAX_BODY_BYTES, MAX_BODY_BYTES]))
@settings(SETTINGS, max_examples=5000)
def test_properties_long_run(drawn: list[Drawn], max_bytes: int) -> None:
    check(history(drawn), max_bytes)
