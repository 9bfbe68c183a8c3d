"""A faithful AgentAPI stand-in with a scripted agent: `coder-task-agent-dev agentapi`.

The daemon's hardest peer is AgentAPI (coder/agentapi v0.12.1, terminal mode): this stand-in
answers the way it does, read from its source and from shared/contracts.md, so the daemon's
timeouts, retries and parsing meet the real quirks on a real socket, not a toy's:

- `GET /status`, `GET /messages`, `POST /message`, `POST /upload`, `GET /events`; every JSON
  object answer starts with `"$schema"` (`http://HOST/schemas/NAME.json`, built from the request's
  Host header as huma does) and carries a `Link: <...>; rel="describedBy"` header. JSON is encoded
  like Go's: `<`, `>` and `&` escaped, times RFC 3339 with up to nine fraction digits, trailing
  zeros dropped (`2025-06-01T10:00:00.1234567Z`).
- Errors are RFC 9457 problem+json as huma writes them: 422 for schema violations, 400 for an
  empty body or malformed JSON, 415 for a non-JSON content type, 413 for a `POST /message` body of
  1 MiB or more, 500 (not 409) for a send while the agent is `running`, with `errors[0].message`
  "failed to send message: message can only be sent when the agent is waiting for user input".
  Unknown routes get Go's plain-text 404, known paths with another method an empty 405.
- A Host header whose host part is not localhost, 127.0.0.1 or ::1 gets a plain-text 400.
- Message 0 is the startup screen; ids are the list index. While the agent works, its last
  message is rewritten in place under the same id, its `time` moving to the last change.
- `POST /message` holds a lock for its whole duration (the scenario's `send_seconds`, then until
  the agent has started): `GET /status` and `GET /messages` wait for it, `/events` does not.
- `/events` replays the state on connect (one `message_update` per message, one `status_change`,
  the stored `agent_error`s), then sends changes only: no `id:`, no `retry:`, no heartbeat. A
  subscriber more than 1024 events behind is dropped: it gets what was queued, then its stream ends.
- `stable` comes only after the screen has not changed for `settle_seconds` (AgentAPI: 2 s); a
  permission question reads `stable` although the turn is not done.

The scripted agent follows a scenario (format: standins.scenario). Time is injected: every
scenario duration is divided by `speed`, and sleeps and timestamps come from a `Clock`
(`SystemClock`, or `ManualClock` for tests, whose time moves only when told to).

Python API, for tests and benchmarks: `AgentAPIStandIn` (`set_status`, `append_message`,
`rewrite_message`, `add_error`, `preload`, `close_streams`, `wait_for`, read-only views of the
state) and `run_agentapi_standin`, which serves it inside the caller's task group.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import ipaddress
import itertools
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from email import policy
from email.message import Message as MimeHeaders
from email.parser import BytesHeaderParser
from email.utils import collapse_rfc2231_value
from functools import cached_property, partial
from http import HTTPStatus
from pathlib import Path, PurePosixPath
from typing import Literal, Protocol
from urllib.parse import urlsplit

import anyio
import anyio.abc
import anyio.lowlevel

from standins.http import Request, Response, serve
from standins.scenario import COLUMNS, Scenario, ScenarioError, filler_text

Status = Literal["running", "stable"]
Role = Literal["agent", "user"]
Level = Literal["error", "warning"]
JSONObject = dict[str, object]

BUSY_MESSAGE = "message can only be sent when the agent is waiting for user input"
EMPTY_MESSAGE = "message must not be empty"
# AgentAPI's default allowed hosts, as its host check compares them (hostname, port ignored).
ALLOWED_HOSTS = ("localhost", "127.0.0.1", "::1")
# Each subscriber's channel holds this many events; one more and the subscriber is dropped.
SUBSCRIBER_BUFFER = 1024
# 10 MiB: AgentAPI reads an upload through this limit and answers 400 past it.
UPLOAD_LIMIT = 10 << 20
# 1 MiB: huma's default request body limit; a body this long or longer is a 413.
MESSAGE_BODY_LIMIT = 1 << 20
# AgentAPI snapshots the screen every 25 ms: the agent message changes at most this often.
SNAPSHOT_INTERVAL = 0.025
# How often the spinner line of a working agent changes.
SPINNER_INTERVAL = 0.1
# Claude Code's spinner glyphs (the fourth is U+2217 ASTERISK OPERATOR).
SPINNER = "·✢✳\u2217✻✽"
# Whitespace AgentAPI trims from a prompt before sending it (msgfmt.TrimWhitespace).
_PROMPT_WHITESPACE = " \t\n\r\f\v"
# A long replay is sent in chunks of about this size rather than one write per event.
_CHUNK_BYTES = 256 * 1024
# On SIGTERM, how long open event streams get to end cleanly before the server stops.
_STREAM_DRAIN_SECONDS = 1.0
_GO_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


# -- time -------------------------------------------------------------------------------------


class Clock(Protocol):
    """Where the stand-in gets wall-clock timestamps and how it waits."""

    def now_ns(self) -> int:
        """Nanoseconds since the Unix epoch."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` (already scaled by the stand-in's speed)."""
        ...


class SystemClock:
    """The real clock."""

    def now_ns(self) -> int:
        return time.time_ns()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


# 2025-06-01T10:00:00Z: a ManualClock starts at a fixed, recognisable time.
_MANUAL_EPOCH_NS = 1_748_772_000_000_000_000


class ManualClock:
    """Virtual time for tests: `sleep` returns only once `advance` has moved time past it."""

    def __init__(self, start_ns: int = _MANUAL_EPOCH_NS) -> None:
        self._now = start_ns
        self._sleepers: list[tuple[int, int, anyio.Event]] = []
        self._order = itertools.count()

    def now_ns(self) -> int:
        return self._now

    @property
    def sleepers(self) -> int:
        """How many tasks are sleeping on this clock."""
        return len(self._sleepers)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        wake = anyio.Event()
        entry = (self._now + round(seconds * 1e9), next(self._order), wake)
        heapq.heappush(self._sleepers, entry)
        try:
            await wake.wait()
        finally:
            if not wake.is_set():  # cancelled: forget the deadline
                self._sleepers.remove(entry)
                heapq.heapify(self._sleepers)

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking sleepers in deadline order.

        Each woken task runs on to its next wait before time moves further, so one call can play
        a whole scripted turn whose own sleeps fall inside the interval.
        """
        target = self._now + round(seconds * 1e9)
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, wake = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            wake.set()
            for _ in range(4):
                await anyio.lowlevel.checkpoint()
        self._now = max(self._now, target)


def go_time(ns: int) -> str:
    """A UTC timestamp as Go's time.Time marshals it (RFC 3339, nanoseconds, no trailing zeros)."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    digits = f"{fraction:09d}".rstrip("0")
    return f"{stamp}.{digits}Z" if digits else f"{stamp}Z"


# -- wire encoding ----------------------------------------------------------------------------


def go_json(value: object) -> str:
    """Compact JSON as Go's encoder writes it: non-ASCII as is, `<`, `>`, `&` escaped."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).translate(_GO_ESCAPES)


def sse_frame(event: str, data: object) -> bytes:
    """One server-sent event: `event:` and a one-line `data:`, no id, no retry."""
    return f"event: {event}\ndata: {go_json(data)}\n\n".encode()


def schema_url(host: str, name: str) -> str:
    """The `$schema` value huma writes: http only for localhost/127.0.0.1 Host headers."""
    scheme = "http" if host.startswith(("localhost", "127.0.0.1")) else "https"
    return f"{scheme}://{host}/schemas/{name}.json"


@dataclass(frozen=True)
class Message:
    """One conversation message, as GET /messages shows it."""

    id: int
    role: Role
    content: str
    time: str

    @cached_property
    def wire(self) -> bytes:
        """The message's JSON in a GET /messages answer (encoded once: histories are large)."""
        payload = {"id": self.id, "content": self.content, "role": self.role, "time": self.time}
        return go_json(payload).encode()

    @cached_property
    def event(self) -> bytes:
        """The message's `message_update` event (the text field is `message`)."""
        payload = {"id": self.id, "role": self.role, "message": self.content, "time": self.time}
        return sse_frame("message_update", payload)


@dataclass(frozen=True)
class AgentError:
    """An error the agent reported, replayed to every new subscriber."""

    message: str
    level: Level
    time: str

    @cached_property
    def event(self) -> bytes:
        payload = {"message": self.message, "level": self.level, "time": self.time}
        return sse_frame("agent_error", payload)


@dataclass(frozen=True)
class RequestRecord:
    """One request the stand-in answered."""

    method: str
    path: str
    status: int


class _Subscriber:
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
        while self.queue and size < _CHUNK_BYTES:
            size += len(self.queue[0])
            chunk.append(self.queue.popleft())
        return b"".join(chunk)

    async def wait(self) -> None:
        self._wakeup = anyio.Event()
        await self._wakeup.wait()


@dataclass
class _Turn:
    """The agent message being written during one scripted turn."""

    id: int
    shown: list[str]
    elapsed: float = 0.0
    frame: int = 0


# -- the stand-in -----------------------------------------------------------------------------


class AgentAPIStandIn:
    """AgentAPI's state, its HTTP handler (`handle`) and the scripted agent.

    `scenario` scripts the agent (it may be replaced between turns); `speed` divides every
    scenario duration; `clock` gives timestamps and sleeps; `agent_type` overrides the
    scenario's; uploads go under `upload_dir` (a temporary directory otherwise, removed when
    serving stops); `log` gets one line per request. Serve it with `run_agentapi_standin`.
    """

    def __init__(
        self,
        scenario: Scenario | None = None,
        *,
        speed: float = 1.0,
        clock: Clock | None = None,
        agent_type: str | None = None,
        upload_dir: Path | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if not speed > 0:
            raise ValueError("speed must be positive")
        self.scenario = scenario if scenario is not None else Scenario()
        self.speed = speed
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.agent_type = agent_type or self.scenario.agent_type
        self.log = log
        self.requests: deque[RequestRecord] = deque(maxlen=10_000)
        self._upload_dir = upload_dir
        self._owns_upload_dir = upload_dir is None
        self._messages = [Message(0, "agent", self.scenario.startup_screen, self._now())]
        self._status: Status = "running" if self.scenario.startup_seconds > 0 else "stable"
        self._errors: list[AgentError] = []
        self._subscribers: list[_Subscriber] = []
        self._open_streams = 0
        self._lock = anyio.Lock()
        self._changed = anyio.Event()
        self._group: anyio.abc.TaskGroup | None = None
        self._turn_scope: anyio.CancelScope | None = None
        self._key_waiter: anyio.Event | None = None
        self._key = ""

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

    @property
    def lock_waiters(self) -> int:
        """Requests waiting for the send lock (GET /status, GET /messages, POST /message)."""
        return self._lock.statistics().tasks_waiting

    @property
    def upload_dir(self) -> Path:
        if self._upload_dir is None:
            self._upload_dir = Path(tempfile.mkdtemp(prefix="agentapi-uploads-"))
        return self._upload_dir

    # -- driving it from Python ---------------------------------------------------------------

    def set_status(self, status: Status) -> None:
        """Set the status; subscribers get a `status_change` when it differs."""
        if status != self._status:
            self._status = status
            self._publish(self._status_event)

    def append_message(self, role: Role, content: str) -> int:
        """Append a message (time: now) and return its id."""
        return self._append(role, content, self.clock.now_ns())

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

    # -- HTTP ---------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """Answer one request as AgentAPI would."""
        response = await self._route(request)
        self.requests.append(RequestRecord(request.method, request.path, response.status))
        if self.log is not None:
            self.log(f"{request.method} {request.target} {response.status}")
        return response

    async def _route(self, request: Request) -> Response:
        host = request.headers.get("host", "")
        if not _host_allowed(host):
            allowed = ", ".join(ALLOWED_HOSTS)
            return _plain(400, f"Invalid host header. Allowed hosts: {allowed}\n")
        route = (request.method, request.path)
        if route == ("GET", "/status"):
            async with self._lock:
                return _json(host, "StatusResponseBody", self._status_payload())
        if route == ("GET", "/messages"):
            async with self._lock:
                return self._messages_response(host)
        if route == ("POST", "/message"):
            return await self._post_message(request, host)
        if route == ("POST", "/upload"):
            return await self._upload(request, host)
        if route == ("GET", "/events"):
            return self._events()
        allowed_methods = _ROUTES.get(request.path)
        if allowed_methods is not None:
            return Response(status=405, headers=[("allow", allowed_methods)])
        return _plain(404, "404 page not found\n")

    def _status_payload(self) -> JSONObject:
        return {"status": self._status, "agent_type": self.agent_type, "transport": "pty"}

    def _messages_response(self, host: str) -> Response:
        head = '{"$schema":' + go_json(schema_url(host, "MessagesResponseBody"))
        body = b"".join(
            [
                head.encode(),
                b',"messages":[',
                b",".join(m.wire for m in self._messages),
                b"]}\n",
            ]
        )
        return Response(status=200, body=body, headers=_json_headers("MessagesResponseBody"))

    async def _post_message(self, request: Request, host: str) -> Response:
        decoded = _decode_message_body(request, host)
        if isinstance(decoded, Response):
            return decoded
        content, kind = decoded
        async with self._lock:
            if kind == "raw":
                self._keystrokes(content)
                return _json(host, "MessageResponseBody", {"ok": True})
            if self._status != "stable":
                return _send_failed(host, BUSY_MESSAGE)
            prompt = content.strip(_PROMPT_WHITESPACE)
            if not prompt:
                return _send_failed(host, EMPTY_MESSAGE)
            await self._accept(prompt)
        return _json(host, "MessageResponseBody", {"ok": True})

    async def _upload(self, request: Request, host: str) -> Response:
        parts = _parse_multipart(request.headers.get("content-type", ""), request.body)
        if isinstance(parts, str):
            message = f"cannot read multipart form: {parts}"
            return _problem(
                host, 422, "validation failed", [{"location": "body", "message": message}]
            )
        files = [p for p in parts if p.name == "file" and p.filename]
        if len(files) != 1:
            message = (
                "File required"
                if not files
                else "Multiple files received but only one was expected"
            )
            return _problem(
                host, 422, "validation failed", [{"location": "file", "message": message}]
            )
        upload = files[0]
        if len(upload.data) > UPLOAD_LIMIT:
            return _problem(host, 400, "file size exceeds 10MB limit")
        # Like AgentAPI: a directory per content checksum, the file under its base name.
        checksum = hashlib.sha256(upload.data).hexdigest()[:16]
        directory = anyio.Path(self.upload_dir) / checksum
        target = directory / PurePosixPath(upload.filename or "").name
        try:
            await directory.mkdir(mode=0o755, parents=True, exist_ok=True)
            await target.write_bytes(upload.data)
        except OSError as exc:
            return _problem(
                host,
                500,
                "unexpected error occurred",
                [{"message": f"failed to write file: {exc}"}],
            )
        return _json(host, "UploadResponseBody", {"ok": True, "filePath": str(target)})

    def _events(self) -> Response:
        replay = [m.event for m in self._messages]
        replay.append(self._status_event())
        replay += [e.event for e in self._errors]
        subscriber = _Subscriber()
        self._subscribers.append(subscriber)
        self._notify()
        return Response(
            status=200,
            headers=[
                ("content-type", "text/event-stream"),
                ("cache-control", "no-cache, no-store, must-revalidate"),
                ("pragma", "no-cache"),
                ("expires", "0"),
                ("x-accel-buffering", "no"),
            ],
            stream=self._event_stream(subscriber, replay),
        )

    async def _event_stream(
        self, subscriber: _Subscriber, replay: list[bytes]
    ) -> AsyncIterator[bytes]:
        self._open_streams += 1
        try:
            for chunk in _chunks(replay):
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

    # -- the scripted agent -------------------------------------------------------------------

    async def _accept(self, prompt: str) -> None:
        """Type the prompt, then wait until the agent has started on it (lock held)."""
        if self._group is None:
            raise RuntimeError("the stand-in is not being served (see run_agentapi_standin)")
        sent_at = self.clock.now_ns()
        if self._turn_scope is not None:  # e.g. a turn left waiting at a permission question
            self._turn_scope.cancel()
        self.set_status("running")  # the typed prompt changes the screen
        await self._sleep(self.scenario.send_seconds)
        self._append("user", prompt, sent_at)
        await self._group.start(self._play_turn, prompt)

    async def _play_turn(
        self, prompt: str, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        script = self.scenario.for_prompt(prompt)
        with anyio.CancelScope() as scope:
            self._turn_scope = scope
            try:
                turn = _Turn(self.append_message("agent", _spinner(0, 0.0, "Thinking")), [])
                task_status.started()
                await self._work(
                    turn, [], script.think_seconds, script.lines_per_second, "Thinking"
                )
                await self._work(
                    turn, script.output_lines(), 0.0, script.lines_per_second, "Working"
                )
                if script.permission_prompt is not None:
                    if not await self._ask(turn, script.permission_prompt):
                        turn.shown += [
                            "  ⎿  User rejected the command",
                            "",
                            "● OK, I won't do that. What should I do instead?",
                        ]
                        self.rewrite_message(turn.id, _render(turn.shown))
                        await self._settle()
                        return
                    await self._work(
                        turn, list(script.after_permission), 0.0, script.lines_per_second, "Working"
                    )
                await self._sleep(SPINNER_INTERVAL)  # the spinner goes, the summary comes
                if script.finish:
                    turn.shown.append(script.finish)
                self.rewrite_message(turn.id, _render(turn.shown))
                await self._settle()
            finally:
                if self._turn_scope is scope:
                    self._turn_scope = None

    async def _work(
        self, turn: _Turn, lines: Sequence[str], min_seconds: float, rate: float, verb: str
    ) -> None:
        """Stream `lines` at `rate` a second under a spinner, for at least `min_seconds`."""
        tick = min(SPINNER_INTERVAL, max(SNAPSHOT_INTERVAL, 1.0 / rate))
        spent = 0.0
        shown = 0
        while shown < len(lines) or spent < min_seconds - 1e-9:
            step = tick if shown < len(lines) else min(tick, min_seconds - spent)
            await self._sleep(step)
            spent += step
            turn.elapsed += step
            turn.frame += 1
            shown = min(len(lines), math.floor(spent * rate + 1e-9))
            spinner = _spinner(turn.frame, turn.elapsed, verb)
            self.rewrite_message(turn.id, _render([*turn.shown, *lines[:shown]], spinner))
        turn.shown.extend(lines)

    async def _ask(self, turn: _Turn, question: str) -> bool:
        """Show a permission question, read `stable`, wait for a keystroke; True for yes."""
        await self._sleep(SPINNER_INTERVAL)
        self.rewrite_message(turn.id, _render([*turn.shown, "", *_permission_box(question)]))
        await self._settle()
        self._key_waiter = anyio.Event()
        try:
            await self._key_waiter.wait()
        finally:
            self._key_waiter = None
        self.set_status("running")
        return self._key.strip() not in ("2", "n", "N", "no", "\x1b")

    def _keystrokes(self, keys: str) -> None:
        """A `raw` message: answers a pending permission question; otherwise it changes nothing."""
        if self._key_waiter is not None:
            self._key = keys
            self._key_waiter.set()

    async def _settle(self) -> None:
        """The screen stays unchanged for the settle time, then the status is `stable`."""
        await self._sleep(self.scenario.settle_seconds)
        self.set_status("stable")

    async def _finish_startup(self) -> None:
        await self._sleep(self.scenario.startup_seconds)
        if self._turn_scope is None:
            self.set_status("stable")

    # -- internals ----------------------------------------------------------------------------

    def _now(self) -> str:
        return go_time(self.clock.now_ns())

    async def _sleep(self, scenario_seconds: float) -> None:
        await self.clock.sleep(scenario_seconds / self.speed)

    def _append(self, role: Role, content: str, at_ns: int) -> int:
        id_ = len(self._messages)
        message = Message(id_, role, content, go_time(at_ns))
        self._messages.append(message)
        self._publish(lambda: message.event)
        return id_

    def _status_event(self) -> bytes:
        return sse_frame("status_change", {"status": self._status, "agent_type": self.agent_type})

    def _publish(self, frame: Callable[[], bytes]) -> None:
        """Queue an event for every subscriber (encoded only when someone listens)."""
        if self._subscribers:
            encoded = frame()
            for subscriber in list(self._subscribers):
                if not subscriber.push(encoded):
                    self._unsubscribe(subscriber)
        self._notify()

    def _unsubscribe(self, subscriber: _Subscriber) -> None:
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()


# -- request decoding and answers -------------------------------------------------------------

# The paths AgentAPI routes, with their methods (for the 405's Allow header).
_ROUTES = {
    "/status": "GET",
    "/messages": "GET",
    "/message": "POST",
    "/upload": "POST",
    "/events": "GET",
}


def _host_allowed(host: str) -> bool:
    """AgentAPI's check: the Host header's hostname (port ignored, any case) is allowed."""
    if not host:
        return False
    try:
        parts = urlsplit("http://" + host)
        _ = parts.port  # a non-numeric port is a parse error in Go too
    except ValueError:
        return False
    if parts.netloc != host or parts.hostname is None:
        return False
    return parts.hostname in ALLOWED_HOSTS


def _json_headers(schema: str, content_type: str = "application/json") -> list[tuple[str, str]]:
    return [
        ("content-type", content_type),
        ("link", f'</schemas/{schema}.json>; rel="describedBy"'),
    ]


def _json(host: str, schema: str, payload: JSONObject) -> Response:
    body = go_json({"$schema": schema_url(host, schema), **payload}) + "\n"
    return Response(status=200, body=body.encode(), headers=_json_headers(schema))


def _problem(
    host: str, status: int, detail: str, errors: list[JSONObject] | None = None
) -> Response:
    """An RFC 9457 problem as huma writes it."""
    payload: JSONObject = {
        "$schema": schema_url(host, "ErrorModel"),
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if errors:
        payload["errors"] = errors
    body = (go_json(payload) + "\n").encode()
    headers = _json_headers("ErrorModel", "application/problem+json")
    return Response(status=status, body=body, headers=headers)


def _send_failed(host: str, reason: str) -> Response:
    """A handler error: huma answers 500 with the error text as errors[0].message."""
    errors: list[JSONObject] = [{"message": f"failed to send message: {reason}"}]
    return _problem(host, 500, "unexpected error occurred", errors)


def _plain(status: int, text: str) -> Response:
    """Go's http.Error: plain text."""
    return Response(
        status=status,
        body=text.encode(),
        headers=[
            ("content-type", "text/plain; charset=utf-8"),
            ("x-content-type-options", "nosniff"),
        ],
    )


def _is_json(content_type: str) -> bool:
    """huma's content-type lookup: the part after `+`, before `;`; none means JSON."""
    start = content_type.find("+") + 1
    end = content_type.find(";")
    kind = content_type[start : end if end >= 0 else len(content_type)]
    return kind in ("", "application/json", "json")


def _reject_constant(name: str) -> object:
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")


def _decode_message_body(request: Request, host: str) -> tuple[str, str] | Response:
    """The `content` and `type` of a POST /message body, or the error huma answers."""
    body = request.body
    if len(body) >= MESSAGE_BODY_LIMIT:
        return _problem(host, 413, f"request body is too large limit={MESSAGE_BODY_LIMIT} bytes")
    if not body:
        return _problem(host, 400, "request body is required")
    text = body.decode("utf-8", errors="replace")
    content_type = request.headers.get("content-type", "")
    if not _is_json(content_type):
        error: JSONObject = {
            "location": "body",
            "message": f"unknown content type: {content_type}",
            "value": text,
        }
        return _problem(host, 415, "validation failed", [error])
    try:
        parsed: object = json.loads(body, parse_constant=_reject_constant)
    except ValueError as exc:
        error = {"location": "body", "message": str(exc), "value": text}
        return _problem(host, 400, "validation failed", [error])
    errors = _check_message_body(parsed)
    if errors:
        return _problem(host, 422, "validation failed", errors)
    assert isinstance(parsed, dict)  # noqa: S101 - _check_message_body checked it
    content, kind = parsed["content"], parsed["type"]
    return str(content), str(kind)


def _check_message_body(parsed: object) -> list[JSONObject]:
    """huma's schema validation of MessageRequestBody, with its messages."""
    if not isinstance(parsed, dict):
        return [{"location": "body", "message": "expected object", "value": parsed}]
    errors: list[JSONObject] = []
    for key in ("content", "type"):
        if key not in parsed:
            message = f"expected required property {key} to be present"
            errors.append({"location": "body", "message": message, "value": parsed})
    for key, value in parsed.items():
        if key not in ("$schema", "content", "type"):
            message = "unexpected property"
            errors.append({"location": f"body.{key}", "message": message, "value": parsed})
        elif not isinstance(value, str):
            errors.append({"location": f"body.{key}", "message": "expected string", "value": value})
        elif key == "type" and value not in ("user", "raw"):
            message = 'expected value to be one of "user, raw"'
            errors.append({"location": "body.type", "message": message, "value": value})
    return errors


@dataclass(frozen=True)
class _Part:
    name: str | None
    filename: str | None
    data: bytes


def _param(headers: MimeHeaders, name: str) -> str | None:
    value = headers.get_param(name, header="content-disposition")
    if value is None:
        return None
    return collapse_rfc2231_value(value)


def _parse_multipart(content_type: str, body: bytes) -> list[_Part] | str:
    """The parts of a multipart/form-data body, or Go's error text when it cannot be read."""
    header = MimeHeaders()
    header["content-type"] = content_type
    if not content_type or header.get_content_type() != "multipart/form-data":
        return "request Content-Type isn't multipart/form-data"
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        return "no multipart boundary param in Content-Type"
    delimiter = b"--" + boundary.encode()
    start = body.find(delimiter)
    if start < 0:
        return "multipart: NextPart: EOF"
    position = start + len(delimiter)
    parts: list[_Part] = []
    while not body.startswith(b"--", position):
        line_end = body.find(b"\n", position)
        if line_end < 0:
            return "multipart: NextPart: EOF"
        position = line_end + 1
        end = body.find(b"\r\n" + delimiter, position)
        if end < 0:
            return "multipart: NextPart: EOF"
        chunk = body[position:end]
        head_end = chunk.find(b"\r\n\r\n")
        if head_end < 0:
            return "multipart: NextPart: malformed MIME header"
        headers = BytesHeaderParser(policy=policy.compat32).parsebytes(chunk[: head_end + 4])
        parts.append(
            _Part(_param(headers, "name"), _param(headers, "filename"), chunk[head_end + 4 :])
        )
        position = end + 2 + len(delimiter)
    return parts


def _chunks(frames: Iterable[bytes]) -> Iterable[bytes]:
    """Frames joined into chunks of about _CHUNK_BYTES."""
    batch: list[bytes] = []
    size = 0
    for frame in frames:
        batch.append(frame)
        size += len(frame)
        if size >= _CHUNK_BYTES:
            yield b"".join(batch)
            batch, size = [], 0
    if batch:
        yield b"".join(batch)


# -- what the agent's screen shows ------------------------------------------------------------


def _spinner(frame: int, elapsed: float, verb: str) -> str:
    glyph = SPINNER[frame % len(SPINNER)]
    return f"{glyph} {verb}… ({int(elapsed)}s · esc to interrupt)"


def _render(lines: Sequence[str], spinner: str | None = None) -> str:
    shown = [*lines, "", spinner] if spinner is not None else list(lines)
    return "\n".join(shown).strip("\n")


def _permission_box(question: str) -> list[str]:
    """Claude Code's permission question, 80 columns wide."""
    width = COLUMNS - 4
    body = [
        *question.splitlines(),
        "",
        "Do you want to proceed?",
        "\u276f 1. Yes",  # U+276F, the selection marker
        "  2. No, and tell Claude what to do differently (esc)",
    ]
    return [
        "╭" + "─" * (COLUMNS - 2) + "╮",
        *(f"│ {line[:width].ljust(width)} │" for line in body),
        "╰" + "─" * (COLUMNS - 2) + "╯",
    ]


# -- serving ----------------------------------------------------------------------------------


def require_loopback(host: str) -> None:
    """Raise ValueError unless `host` is a loopback address (or `localhost`)."""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            f"the AgentAPI stand-in listens on loopback only (127.0.0.1, ::1 or localhost), "
            f"not {host!r}"
        )


async def run_agentapi_standin(
    standin: AgentAPIStandIn,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `standin` on host:port until cancelled; reports the bound port through task_status.

    Raises ValueError for a non-loopback host, RuntimeError when it is already being served,
    OSError when the port cannot be bound.
    """
    require_loopback(host)
    if standin._group is not None:
        raise RuntimeError("this AgentAPI stand-in is already being served")
    try:
        async with anyio.create_task_group() as group:
            standin._group = group
            bound: int = await group.start(partial(serve, standin.handle, host=host, port=port))
            if standin.status == "running" and standin.scenario.startup_seconds > 0:
                group.start_soon(standin._finish_startup)
            task_status.started(bound)
    finally:
        standin._group = None
        if standin._owns_upload_dir and standin._upload_dir is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(partial(shutil.rmtree, standin._upload_dir, True))


def write_port_file(path: Path, port: int) -> None:
    """Write the port atomically, so a parent polling the file never reads half a number."""
    partial_path = path.with_name(path.name + ".partial")
    partial_path.write_text(f"{port}\n", encoding="ascii")
    os.replace(partial_path, path)


async def _serve_until_signalled(
    standin: AgentAPIStandIn, host: str, port: int, port_file: Path | None
) -> None:
    async with anyio.create_task_group() as group:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            bound = await group.start(partial(run_agentapi_standin, standin, host=host, port=port))
            if port_file is not None:
                write_port_file(port_file, bound)
            shown = f"[{host}]" if ":" in host else host
            print(
                f"AgentAPI stand-in listening on http://{shown}:{bound}",
                file=sys.stderr,
                flush=True,
            )
            async for _ in signals:
                break
        # Like AgentAPI on SIGTERM: event streams simply end, then the server stops.
        standin.close_streams()
        with anyio.move_on_after(_STREAM_DRAIN_SECONDS):
            await standin.wait_for(lambda: standin.open_streams == 0)
            await anyio.sleep(0.05)  # each stream's last chunk is written after its generator ends
        group.cancel_scope.cancel()


def _log_line(line: str) -> None:
    print(f"agentapi-standin: {line}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """`coder-task-agent-dev agentapi`: serve until SIGTERM or SIGINT, then exit 0."""
    parser = argparse.ArgumentParser(
        prog="coder-task-agent-dev agentapi",
        description="A local AgentAPI stand-in with a scripted agent (loopback only).",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="a loopback address (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=3284, help="0 picks a free port (default 3284)")
    parser.add_argument("--port-file", type=Path, help="write the bound port here, atomically")
    parser.add_argument(
        "--scenario", type=Path, help="a scenario JSON file (see standins.scenario)"
    )
    parser.add_argument("--speed", type=float, default=1.0, help="play the script N times faster")
    parser.add_argument("--agent-type", help="the agent_type to report (default: the scenario's)")
    parser.add_argument("--preload-messages", type=int, default=0, metavar="N")
    parser.add_argument("--preload-size", type=int, default=2048, metavar="BYTES")
    parser.add_argument("--quiet", action="store_true", help="do not log every request")
    args = parser.parse_args(argv)
    try:
        require_loopback(args.host)
    except ValueError as exc:
        parser.error(str(exc))
    if not 0 <= args.port <= 65535:
        parser.error("--port must be from 0 to 65535")
    if not args.speed > 0:
        parser.error("--speed must be positive")
    if args.preload_messages < 0 or args.preload_size < 0:
        parser.error("--preload-messages and --preload-size must not be negative")
    try:
        scenario = Scenario.load(args.scenario) if args.scenario else Scenario()
    except ScenarioError as exc:
        parser.error(str(exc))
    standin = AgentAPIStandIn(
        scenario,
        speed=args.speed,
        agent_type=args.agent_type,
        log=None if args.quiet else _log_line,
    )
    if args.preload_messages:
        standin.preload(args.preload_messages, args.preload_size)
    try:
        anyio.run(_serve_until_signalled, standin, args.host, args.port, args.port_file)
    except OSError as exc:
        print(f"agentapi-standin: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0
