"""Properties of the snapshot builder over arbitrary content, roles, counts and sizes."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.snapshot import MAX_BODY_BYTES, build_snapshot
from tests.test_snapshot import TIME, M, strip_marker

ROLES = st.sampled_from(["user", "agent", "agent", "user", "system", ""])
# Any code point, lone surrogates included.
TEXT = st.text(alphabet=st.characters(codec=None), max_size=40)


@st.composite
def contents(draw: st.DrawFn) -> str:
    """Small texts, or a drawn text repeated into kilobytes or megabytes."""
    seed = draw(TEXT)
    repeat = draw(st.sampled_from([1, 1, 50, 2_000, 60_000]))
    return seed * repeat


@st.composite
def histories(draw: st.DrawFn) -> list[M]:
    count = draw(st.integers(min_value=0, max_value=40))
    return [M(i, draw(ROLES), draw(contents()), TIME) for i in range(count)]


def check(messages: list[M], max_bytes: int = MAX_BODY_BYTES) -> None:
    usable = [m for m in messages if m.role in ("user", "agent")]
    snapshot = build_snapshot(messages, max_bytes=max_bytes)
    if not usable:
        assert snapshot is None
        return
    assert snapshot is not None
    assert len(snapshot.body) <= max_bytes
    out = json.loads(snapshot.body.decode("utf-8"))["messages"]
    window = usable[-10:]
    kept = window[len(window) - len(out) :]
    # contiguous run ending with the newest, in order
    assert [m["id"] for m in out] == [m.id for m in kept]
    assert out[-1]["id"] == usable[-1].id
    assert snapshot.dropped == len(window) - len(out)
    cut_sizes = []
    whole_sizes = []
    for sent, original in zip(out, kept, strict=True):
        assert sent["role"] == original.role
        assert sent["time"] == original.time
        if sent["content"] == original.content:
            whole_sizes.append(
                len(
                    json.dumps(original.content, ensure_ascii=False).encode(
                        "utf-8", errors="surrogatepass"
                    )
                )
            )
            continue
        assert sent["content"].startswith("[… "), "a cut carries its marker"
        assert original.content.endswith(strip_marker(sent["content"])), "the tail is kept"
        cut_sizes.append(len(sent["content"]))
    assert snapshot.truncated == len(cut_sizes)
    if cut_sizes and max_bytes == MAX_BODY_BYTES:
        assert snapshot.dropped == 0, "with 64 KB nothing is ever dropped"
        assert max_bytes - len(snapshot.body) < 80 * len(out), "the budget is used"
    if not cut_sizes:
        assert snapshot.dropped == 0


@given(histories())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_properties(messages: list[M]) -> None:
    check(messages)


@given(histories(), st.integers(min_value=1024, max_value=8192))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_properties_small_budgets(messages: list[M], max_bytes: int) -> None:
    check(messages, max_bytes)


@given(st.lists(st.integers(min_value=0, max_value=30_000), min_size=1, max_size=10))
@settings(max_examples=150, deadline=None)
def test_no_small_message_is_cut_while_a_bigger_one_keeps_more(sizes: list[int]) -> None:
    messages = [M(i, "agent", "x" * s) for i, s in enumerate(sizes)]
    snapshot = build_snapshot(messages)
    assert snapshot is not None
    out = json.loads(snapshot.body)["messages"]
    assert len(out) == len(sizes)
    kept = [len(strip_marker(m["content"])) for m in out]
    others_kept = kept[:-1]
    for size, keep in zip(sizes[:-1], others_kept, strict=True):
        if keep < size:  # cut: no other older message keeps more than this one
            assert max(others_kept) <= keep + 1
    if kept[-1] < sizes[-1]:  # the newest is cut: then nothing older keeps more
        assert kept[-1] >= max(others_kept, default=0), "the newest gets the largest share"


@pytest.mark.slow
@given(histories())
@settings(max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_properties_long_run(messages: list[M]) -> None:
    check(messages)
