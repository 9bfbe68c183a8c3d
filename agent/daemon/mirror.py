"""A live mirror of what a snapshot needs: the newest messages, updated in place, memory bounded.

Keyed by id (AgentAPI rewrites its last agent message under the same id). It keeps the `keep`
newest `user`/`agent` messages, each whole up to `max_chars`; of a longer one the last
`max_chars` characters and how many UTF-8 bytes were dropped: all the snapshot builder needs for
the very bytes the whole message gives. A replay is built aside and swapped in once complete (a
stream dying mid-replay leaves the old picture). `snapshot()` is built once per `version`, so the
stop path uploads bytes that are ready.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from agent.agentapi import Message
from agent.snapshot import ROLES, Snapshot, build_snapshot, utf8_len

# At least 256 KiB of UTF-8, four times a whole snapshot: ten messages in budget stay whole.
MIRROR_MAX_CHARS = 256 * 1024


class MirroredMessage(Message):
    """A message whose beginning the mirror dropped: `cut_bytes` UTF-8 bytes of it."""

    cut_bytes: int = 0


class Mirror:
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
        # The snapshot of `_live` at `_built[0]` (a version).
        self._built: tuple[int, Snapshot | None] | None = None

    @property
    def version(self) -> int:
        """Moves on every change of the mirrored messages (not during a replay)."""
        return self._version

    @property
    def snapshot_ready(self) -> bool:
        """`snapshot()` would not build."""
        return self._built is not None and self._built[0] == self._version

    def snapshot(self) -> Snapshot | None:
        """The snapshot of the mirrored messages (None without any); built once per version."""
        if self._built is None or self._built[0] != self._version:
            self._built = (self._version, build_snapshot(self.messages()))
        return self._built[1]

    @property
    def current(self) -> bool:
        """A connected, replayed event stream keeps the mirror up to date: the fresh state."""
        return self._current and self._staging is None

    def mark_stale(self) -> None:
        """The stream feeding the mirror ended."""
        self._current = False

    def update(self, message: Message) -> None:
        if self._staging is not None:
            self._put(self._staging, message)
        elif self._put(self._live, message):
            self._changed()

    def replace_all(self, messages: Iterable[Message]) -> None:
        """A fresh history (a `/messages` answer)."""
        fresh: dict[int, Message] = {}
        for message in messages:
            self._put(fresh, message)
        self._live = fresh
        self._staging = None
        self._current = False  # a fetched history is current only at the instant it was read
        self._changed()

    def begin_replay(self) -> None:
        self._staging = {}
        self._current = False

    def end_replay(self) -> None:
        if self._staging is not None:
            self._live = self._staging
            self._staging = None
            self._current = True
            self._changed()

    def messages(self) -> list[Message]:
        return [self._live[i] for i in sorted(self._live)]

    def __len__(self) -> int:
        return len(self._live)

    def _changed(self) -> None:
        self._version += 1
        if self._on_change is not None:
            self._on_change()

    def _put(self, target: dict[int, Message], message: Message) -> bool:
        """False when `message` is left out (`target` unchanged)."""
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
