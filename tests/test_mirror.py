"""The live mirror: newest messages by id, rewritten in place, bounded."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.agentapi import Message
from agent.daemon.mirror import Mirror, MirroredMessage
from agent.snapshot import build_snapshot
from tests.fakes import TIME
from tests.test_snapshot_properties import HISTORIES, SETTINGS, Drawn, history


def msg(id_: int, content: str = "x", role: str = "agent") -> Message:
    return Message(id=id_, role=role, content=content, time=TIME)


def test_keeps_the_newest_and_rewrites_in_place() -> None:
    mirror = Mirror(keep=3)
    for i in range(6):
        mirror.update(msg(i, f"m{i}"))
    mirror.update(msg(5, "m5 grew"))
    mirror.update(msg(1, "too old"))
    assert [(m.id, m.content) for m in mirror.messages()] == [(3, "m3"), (4, "m4"), (5, "m5 grew")]


def test_content_is_bounded_to_its_tail() -> None:
    mirror = Mirror(keep=2, max_chars=10)
    mirror.update(msg(0, "a" * 100 + "0123456789"))
    assert mirror.messages()[0].content == "0123456789"


def test_replay_swaps_in_only_when_complete() -> None:
    mirror = Mirror(keep=5)
    mirror.replace_all([msg(0, "old0"), msg(1, "old1")])
    mirror.begin_replay()
    mirror.update(msg(0, "new0"))
    assert [m.content for m in mirror.messages()] == ["old0", "old1"]
    mirror.begin_replay()  # the stream died mid-replay; a new one starts
    mirror.update(msg(0, "restarted"))
    mirror.end_replay()
    assert [m.content for m in mirror.messages()] == ["restarted"]
    mirror.update(msg(1, "after"))
    assert len(mirror) == 2


def test_memory_stays_bounded_for_a_long_history() -> None:
    mirror = Mirror(keep=10, max_chars=1000)
    for i in range(20_000):
        mirror.update(msg(i, "y" * 5000))
    assert len(mirror) == 10
    assert sum(len(m.content) for m in mirror.messages()) == 10_000


def test_current_only_between_a_replay_and_the_end_of_its_stream() -> None:
    mirror = Mirror()
    assert not mirror.current
    mirror.begin_replay()
    mirror.update(msg(0))
    assert not mirror.current  # mid-replay: the picture is not complete yet
    mirror.end_replay()
    assert mirror.current
    mirror.update(msg(1))
    assert mirror.current
    mirror.mark_stale()
    assert not mirror.current
    mirror.begin_replay()
    mirror.end_replay()
    assert mirror.current
    mirror.replace_all([msg(0)])  # a fetched history: current only when it was read
    assert not mirror.current


def test_other_roles_do_not_push_a_message_out() -> None:
    mirror = Mirror(keep=2)
    mirror.update(msg(0, "a", "user"))
    mirror.update(msg(1, "b", "agent"))
    mirror.update(msg(2, "c", "system"))
    assert [m.id for m in mirror.messages()] == [0, 1]


@given(HISTORIES)
@settings(SETTINGS, max_examples=60)
def test_a_snapshot_from_the_mirror_is_the_snapshot_of_the_whole_history(
    drawn: list[Drawn],
) -> None:
    # Ten messages within the budget are kept whole; of a longer one the tail and the count of
    # what was dropped: either way the body is byte for byte the one the whole history gives.
    messages = [
        Message(id=m.id, role=m.role, content=m.content, time=m.time) for m in history(drawn)
    ]
    streamed, fetched = Mirror(), Mirror()
    for message in messages:
        streamed.update(message)
    fetched.replace_all(messages)
    expected = build_snapshot(messages)
    assert build_snapshot(streamed.messages()) == expected
    assert build_snapshot(fetched.messages()) == expected


def test_a_long_message_keeps_its_dropped_count() -> None:
    mirror = Mirror(max_chars=70_000)
    whole = msg(0, "é" * 100_000 + "THE END")
    mirror.update(whole)
    kept = mirror.messages()[0]
    assert isinstance(kept, MirroredMessage)
    assert len(kept.content) == 70_000
    assert kept.cut_bytes == 2 * (100_007 - 70_000)  # the dropped "é"s, two bytes each
    assert build_snapshot([kept]) == build_snapshot([whole])


def test_the_version_moves_only_when_the_mirrored_messages_change() -> None:
    changes: list[int] = []
    mirror = Mirror(keep=2, on_change=lambda: changes.append(mirror.version))
    mirror.update(msg(5, "a"))
    mirror.update(msg(5, "a grew"))  # rewritten in place: a change
    mirror.update(msg(6, "b"))
    assert changes == [1, 2, 3]
    mirror.update(msg(1, "older than the two kept"))
    mirror.update(msg(7, "c", "system"))  # never mirrored
    mirror.begin_replay()
    mirror.update(msg(0, "replayed"))  # aside until the replay is complete
    mirror.mark_stale()
    assert changes == [1, 2, 3]
    mirror.end_replay()
    mirror.replace_all([msg(0, "fetched")])
    assert changes == [1, 2, 3, 4, 5]


def test_the_snapshot_is_built_once_per_change() -> None:
    mirror = Mirror()
    assert not mirror.snapshot_ready
    assert mirror.snapshot() is None  # nothing mirrored: nothing to upload
    mirror.update(msg(0, "hello"))
    assert not mirror.snapshot_ready
    first = mirror.snapshot()
    assert first == build_snapshot([msg(0, "hello")])
    assert mirror.snapshot_ready
    assert mirror.snapshot() is first, "kept, not built again"
    mirror.update(msg(0, "hello again"))
    assert not mirror.snapshot_ready
    assert mirror.snapshot() == build_snapshot([msg(0, "hello again")])


# One step of a mirror's life: ("update", id, role, text), ("fetch", [(id, role, text)...]),
# ("begin",), ("end",), ("stale",) or ("snapshot",) (the daemon building the body ahead).
STEP_IDS = st.integers(min_value=0, max_value=14)
STEP_ROLES = st.sampled_from(["agent", "user", "system"])
STEP_TEXTS = st.sampled_from(["", "a", "b" * 70_000, '"\\\x01' * 9_000, "漢字👍"])
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("update"), STEP_IDS, STEP_ROLES, STEP_TEXTS),
        st.tuples(
            st.just("fetch"), st.lists(st.tuples(STEP_IDS, STEP_ROLES, STEP_TEXTS), max_size=12)
        ),
        st.tuples(st.sampled_from(["begin", "end", "stale", "snapshot", "snapshot"])),
    ),
    max_size=40,
)


@given(STEPS)
@settings(SETTINGS, max_examples=80)
def test_the_kept_snapshot_is_always_the_snapshot_of_the_mirror(
    steps: list[tuple[object, ...]],
) -> None:
    # Whenever the body was built ahead and whatever changed since, what `snapshot()` hands the
    # stop path is the body of the messages mirrored at that moment: never a stale one.
    mirror = Mirror(keep=10, max_chars=100_000)
    for step in steps:
        match step:
            case ("update", int(id_), str(role), str(text)):
                mirror.update(msg(id_, text, role))
            case ("fetch", list(items)):
                mirror.replace_all(msg(i, t, r) for i, r, t in items)
            case ("begin",):
                mirror.begin_replay()
            case ("end",):
                mirror.end_replay()
            case ("stale",):
                mirror.mark_stale()
            case _:
                mirror.snapshot()
        if mirror.snapshot_ready:
            assert mirror.snapshot() == build_snapshot(mirror.messages())
    assert mirror.snapshot() == build_snapshot(mirror.messages())
