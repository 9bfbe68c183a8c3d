"""What AgentAPI holds: the conversation, the agent's status, its errors, and `/events` subscribers.

Message 0 is the startup screen; ids are the list index. While the agent works, its last message
is rewritten in place under the same id, its `time` moving to the last change. Every change is
published to the subscribers as AgentAPI does: a new subscriber first gets the state replayed
(one `message_update` per message, one `status_change`, the stored `agent_error`s), then changes
only. A subscriber more than SUBSCRIBER_BUFFER events behind is dropped: it gets what was queued,
then its stream ends.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence

import anyio

from standins.agentapi.clock import Clock, go_time
from standins.agentapi.scenario import filler_text
from standins.agentapi.wire import (
    CHUNK_BYTES,
    AgentError,
    Level,
    Message,
    Role,
    Status,
    chunks,
    status_event,
)

# Each subscriber's channel holds this many events; one more and the subscriber is dropped.
SUBSCRIBER_BUFFER = 1024


class Subscriber:
    """One `/events` client: its queue of frames not yet sent."""

    def __init__(self) -> None:
        self.queue: deque[bytes] = deque()
        self.closed = False
        self._wakeup = anyio.Event()

    def push(self, frame: bytes) -> bool:
        """Queue a frame; False (and closed) when the subscriber is already a full buffer behind."""
        if len(self.queue) >= SUBSCRIBER_BUFFER:
            self.close()
            return False
        self.queue.append(frame)
        self._wakeup.set()
        return True

    def close(self) -> None:
        self.closed = True
        self._wakeup.set()

    def take(self) -> bytes:
        """Frames from the head of the queue, joined into one chunk."""
        chunk = [self.queue.popleft()]
        size = len(chunk[0])
        while self.queue and size < CHUNK_BYTES:
            size += len(self.queue[0])
            chunk.append(self.queue.popleft())
        return b"".join(chunk)

    async def wait(self) -> None:
        self._wakeup = anyio.Event()
        await self._wakeup.wait()


class Conversation:
    """The state, the events it publishes, and a way to wait for any change (`wait_for`)."""

    def __init__(self, clock: Clock, *, startup_screen: str, status: Status, agent_type: str):
        self.clock = clock
        self.agent_type = agent_type
        self._messages = [Message(0, "agent", startup_screen, self._now())]
        self._status: Status = status
        self._errors: list[AgentError] = []
        self._subscribers: list[Subscriber] = []
        self._open_streams = 0
        self._changed = anyio.Event()

    # -- read-only views ----------------------------------------------------------------------

    @property
    def status(self) -> Status:
        return self._status

    @property
    def messages(self) -> tuple[Message, ...]:
        return tuple(self._messages)

    @property
    def errors(self) -> tuple[AgentError, ...]:
        return tuple(self._errors)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    @property
    def open_streams(self) -> int:
        """`/events` answers still streaming (a dropped subscriber's until its queue is sent)."""
        return self._open_streams

    @property
    def subscriber_backlogs(self) -> list[int]:
        """How many events each subscriber has queued and not yet been sent."""
        return [len(s.queue) for s in self._subscribers]

    # -- changes ------------------------------------------------------------------------------

    def set_status(self, status: Status) -> None:
        """Set the status; subscribers get a `status_change` when it differs."""
        if status != self._status:
            self._status = status
            self._publish(self._status_event)

    def append_message(self, role: Role, content: str, at_ns: int | None = None) -> int:
        """Append a message (time: `at_ns`, else now) and return its id."""
        id_ = len(self._messages)
        stamp = self.clock.now_ns() if at_ns is None else at_ns
        message = Message(id_, role, content, go_time(stamp))
        self._messages.append(message)
        self._publish(lambda: message.event)
        return id_

    def rewrite_message(self, id_: int, content: str) -> None:
        """Rewrite message `id_` in place, as the agent does: same id and role, time moves."""
        old = self._messages[id_]
        message = Message(id_, old.role, content, self._now())
        self._messages[id_] = message
        self._publish(lambda: message.event)

    def put_message(self, role: Role, content: str, id_: int | None = None) -> int:
        """Append a message (`id_` None or past the end) or rewrite message `id_`; its id."""
        if id_ is None or id_ >= len(self._messages):
            return self.append_message(role, content)
        self.rewrite_message(id_, content)
        return id_

    def add_error(self, message: str, level: Level = "error") -> None:
        """Store an agent error and send it to subscribers as an `agent_error`."""
        error = AgentError(message, level, self._now())
        self._errors.append(error)
        self._publish(lambda: error.event)

    def preload(self, count: int, size: int) -> None:
        """Append `count` messages of exactly `size` UTF-8 bytes, alternately user and agent."""
        base = self.clock.now_ns()
        for i in range(count):
            id_ = len(self._messages)
            role: Role = "user" if id_ % 2 == 1 else "agent"
            content = filler_text(size, f"[{role} message {id_}]")
            self._messages.append(Message(id_, role, content, go_time(base + i)))
        self._notify()

    def replace_history(self, contents: Sequence[str]) -> None:
        """Replace the conversation: message i has contents[i], alternately agent and user."""
        base = self.clock.now_ns()
        self._messages = [
            Message(i, "agent" if i % 2 == 0 else "user", content, go_time(base + i))
            for i, content in enumerate(contents)
        ]
        self._notify()

    def close_streams(self) -> None:
        """End every open `/events` stream, as when AgentAPI stops; reconnects replay again."""
        for subscriber in self._subscribers:
            subscriber.close()
        self._subscribers.clear()
        self._notify()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Return once `predicate()` holds; it is checked after every change of state."""
        while not predicate():
            changed = self._changed
            await changed.wait()

    # -- /events ------------------------------------------------------------------------------

    def subscribe(self) -> AsyncIterator[bytes]:
        """A new subscriber's stream: the state replayed, then every change until it ends."""
        replay = [m.event for m in self._messages]
        replay.append(self._status_event())
        replay += [e.event for e in self._errors]
        subscriber = Subscriber()
        self._subscribers.append(subscriber)
        self._notify()
        return self._stream(subscriber, replay)

    async def _stream(self, subscriber: Subscriber, replay: list[bytes]) -> AsyncIterator[bytes]:
        self._open_streams += 1
        try:
            for chunk in chunks(replay):
                yield chunk
            while True:
                if subscriber.queue:
                    yield subscriber.take()
                elif subscriber.closed:
                    return
                else:
                    await subscriber.wait()
        finally:
            self._open_streams -= 1
            self._unsubscribe(subscriber)
            self._notify()

    # -- internals ----------------------------------------------------------------------------

    def _now(self) -> str:
        return go_time(self.clock.now_ns())

    def _status_event(self) -> bytes:
        return status_event(self._status, self.agent_type)

    def _publish(self, frame: Callable[[], bytes]) -> None:
        """Queue an event for every subscriber (encoded only when someone listens)."""
        if self._subscribers:
            encoded = frame()
            for subscriber in list(self._subscribers):
                if not subscriber.push(encoded):
                    self._unsubscribe(subscriber)
        self._notify()

    def _unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()
