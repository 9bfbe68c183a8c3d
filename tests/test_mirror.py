"""The live mirror: newest messages by id, rewritten in place, bounded."""

from __future__ import annotations

from agent.agentapi import Message
from agent.mirror import Mirror
from tests.fakes import TIME


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
