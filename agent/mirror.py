"""A live mirror of what a snapshot needs: the newest messages, updated in place.

AgentAPI rewrites its last agent message under the same id while the agent works, so the mirror
is keyed by id. It keeps only the `keep` newest messages a snapshot can hold (roles `user` and
`agent`: the builder leaves any other out), each in full while it has at most
`max_chars` characters (four times what a whole snapshot may hold, so ten messages within the
snapshot budget are always whole); of a longer one it keeps the last `max_chars` characters and
how many UTF-8 bytes it dropped, which is all the snapshot builder needs to produce the very
bytes it would from the whole message (the tail it keeps, the count in its cut marker). Memory
stays bounded however long the history and however large a message grows.

`current` says whether the mirror is the fresh state: true from the end of an `/events` replay
until the stream ends (`mark_stale`) or a new replay begins. The daemon's stop path then uploads
from it without fetching the whole history again.

A reconnect replays the whole history; `begin_replay`/`end_replay` build the new picture aside
and swap it in only once complete, so a stream that dies mid-replay leaves the old one intact.
"""

from __future__ import annotations

from collections.abc import Iterable

from agent.agentapi import Message
from agent.snapshot import ROLES, utf8_len

# 256 Ki characters: at least 256 KiB of UTF-8, four times what a whole snapshot may hold.
MIRROR_MAX_CHARS = 256 * 1024


class MirroredMessage(Message):
    """A message whose beginning the mirror dropped: `cut_bytes` UTF-8 bytes of it."""

    cut_bytes: int = 0


class Mirror:
    """The `keep` newest messages by id."""

    def __init__(self, keep: int = 10, max_chars: int = MIRROR_MAX_CHARS) -> None:
        self._keep = keep
        self._max_chars = max_chars
        self._live: dict[int, Message] = {}
        self._staging: dict[int, Message] | None = None
        self._current = False

    @property
    def current(self) -> bool:
        """True while a connected event stream keeps the mirror up to date."""
        return self._current and self._staging is None

    def mark_stale(self) -> None:
        """The stream feeding the mirror ended: it may fall behind from now on."""
        self._current = False

    def update(self, message: Message) -> None:
        """Add a message or rewrite it in place."""
        target = self._live if self._staging is None else self._staging
        self._put(target, message)

    def replace_all(self, messages: Iterable[Message]) -> None:
        """Replace the mirror with a fresh history (a `/messages` answer)."""
        fresh: dict[int, Message] = {}
        for message in messages:
            self._put(fresh, message)
        self._live = fresh
        self._staging = None
        self._current = False  # a fetched history is current only at the instant it was read

    def begin_replay(self) -> None:
        """A reconnect starts: collect the replayed history aside."""
        self._staging = {}
        self._current = False

    def end_replay(self) -> None:
        """The replay is complete: it becomes the mirror."""
        if self._staging is not None:
            self._live = self._staging
            self._staging = None
            self._current = True

    def messages(self) -> list[Message]:
        """The mirrored messages, oldest first."""
        return [self._live[i] for i in sorted(self._live)]

    def __len__(self) -> int:
        return len(self._live)

    def _put(self, target: dict[int, Message], message: Message) -> None:
        if message.role not in ROLES:
            return  # never in a snapshot: it must not push a message that is out of the ten
        if len(message.content) > self._max_chars:
            content = message.content
            keep = self._max_chars
            dropped = len(content) - keep if content.isascii() else utf8_len(content[:-keep])
            message = MirroredMessage(
                id=message.id,
                role=message.role,
                content=content[-keep:],
                time=message.time,
                cut_bytes=getattr(message, "cut_bytes", 0) + dropped,
            )
        if message.id not in target and len(target) >= self._keep:
            oldest = min(target)
            if message.id < oldest:
                return
            del target[oldest]
        target[message.id] = message
