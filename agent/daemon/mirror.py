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

`snapshot()` is the snapshot body of the mirrored messages, built at most once per change of
them: the stop path then uploads bytes that are ready (building ten long messages costs
milliseconds), and the daemon builds them while nothing happens (`on_change` tells it when to).
Every change of the mirrored messages moves `version`, so a body built before a change is never
taken for the current one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from agent.agentapi import Message
from agent.snapshot import ROLES, Snapshot, build_snapshot, utf8_len

# 256 Ki characters: at least 256 KiB of UTF-8, four times what a whole snapshot may hold.
MIRROR_MAX_CHARS = 256 * 1024


class MirroredMessage(Message):
    """A message whose beginning the mirror dropped: `cut_bytes` UTF-8 bytes of it."""

    cut_bytes: int = 0


class Mirror:
    """The `keep` newest messages by id."""

    def __init__(
        self,
        keep: int = 10,
        max_chars: int = MIRROR_MAX_CHARS,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._keep = keep
        self._max_chars = max_chars
        self._on_change = on_change
        self._live: dict[int, Message] = {}
        self._staging: dict[int, Message] | None = None
        self._current = False
        self._version = 0
        # The snapshot of `_live` as it was at `_built[0]` (a version).
        self._built: tuple[int, Snapshot | None] | None = None

    @property
    def version(self) -> int:
        """Moves on every change of the mirrored messages (a replay in progress is not one)."""
        return self._version

    @property
    def snapshot_ready(self) -> bool:
        """True when `snapshot()` would not build: the body of the current messages is kept."""
        return self._built is not None and self._built[0] == self._version

    def snapshot(self) -> Snapshot | None:
        """The snapshot of the mirrored messages (None without any); built once per version."""
        if self._built is None or self._built[0] != self._version:
            self._built = (self._version, build_snapshot(self.messages()))
        return self._built[1]

    @property
    def current(self) -> bool:
        """True while a connected event stream keeps the mirror up to date."""
        return self._current and self._staging is None

    def mark_stale(self) -> None:
        """The stream feeding the mirror ended: it may fall behind from now on."""
        self._current = False

    def update(self, message: Message) -> None:
        """Add a message or rewrite it in place."""
        if self._staging is not None:
            self._put(self._staging, message)
        elif self._put(self._live, message):
            self._changed()

    def replace_all(self, messages: Iterable[Message]) -> None:
        """Replace the mirror with a fresh history (a `/messages` answer)."""
        fresh: dict[int, Message] = {}
        for message in messages:
            self._put(fresh, message)
        self._live = fresh
        self._staging = None
        self._current = False  # a fetched history is current only at the instant it was read
        self._changed()

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
            self._changed()

    def messages(self) -> list[Message]:
        """The mirrored messages, oldest first."""
        return [self._live[i] for i in sorted(self._live)]

    def __len__(self) -> int:
        return len(self._live)

    def _changed(self) -> None:
        self._version += 1
        if self._on_change is not None:
            self._on_change()

    def _put(self, target: dict[int, Message], message: Message) -> bool:
        """Put `message` in `target`; False when it is left out (and `target` unchanged)."""
        if message.role not in ROLES:
            return False  # never in a snapshot: it must not push a message out of the ten
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
                return False
            del target[oldest]
        target[message.id] = message
        return True
