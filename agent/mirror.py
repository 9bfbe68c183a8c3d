"""A live mirror of what a snapshot needs: the newest messages, updated in place.

AgentAPI rewrites its last agent message under the same id while the agent works, so the mirror
is keyed by id. It keeps only the `keep` newest messages, and of each only the last
`max_chars` characters: a snapshot never holds more than 64 KB, so that tail is all it could use.
Memory stays bounded however long the history and however large a message grows.

A reconnect replays the whole history; `begin_replay`/`end_replay` build the new picture aside
and swap it in only once complete, so a stream that dies mid-replay leaves the old one intact.
"""

from __future__ import annotations

from collections.abc import Iterable

from agent.agentapi import Message

# 256 Ki characters: at least 256 KiB of UTF-8, four times what a whole snapshot may hold.
MIRROR_MAX_CHARS = 256 * 1024


class Mirror:
    """The `keep` newest messages by id."""

    def __init__(self, keep: int = 10, max_chars: int = MIRROR_MAX_CHARS) -> None:
        self._keep = keep
        self._max_chars = max_chars
        self._live: dict[int, Message] = {}
        self._staging: dict[int, Message] | None = None

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

    def begin_replay(self) -> None:
        """A reconnect starts: collect the replayed history aside."""
        self._staging = {}

    def end_replay(self) -> None:
        """The replay is complete: it becomes the mirror."""
        if self._staging is not None:
            self._live = self._staging
            self._staging = None

    def messages(self) -> list[Message]:
        """The mirrored messages, oldest first."""
        return [self._live[i] for i in sorted(self._live)]

    def __len__(self) -> int:
        return len(self._live)

    def _put(self, target: dict[int, Message], message: Message) -> None:
        if len(message.content) > self._max_chars:
            message = message.model_copy(update={"content": message.content[-self._max_chars :]})
        if message.id not in target and len(target) >= self._keep:
            oldest = min(target)
            if message.id < oldest:
                return
            del target[oldest]
        target[message.id] = message
