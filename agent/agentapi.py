"""Typed client for the local AgentAPI server (`/status`, `/messages`, `/message`, `/events`).

Wire facts (see shared/contracts.md): every JSON answer carries a `$schema` key and may gain new
keys, so models ignore unknown keys; errors are RFC 9457 problem+json; the events stream names
the text field `message`, not `content`; `GET /status` and `GET /messages` block while a message
is being sent, so every call carries a timeout and a timeout means "no answer yet", not "dead".

Message times are kept as the RFC 3339 text AgentAPI sent: Go prints nanoseconds, which a Python
datetime would round, and the snapshot must carry them as given.

A `/messages` answer is read tolerantly, by `agent.conversation`'s rule (shared with the
one-shot snapshot's standard-library path): one malformed message must not cost the whole
history. Roles are normalised to the two Coder reads back (`user`, `agent`; any other role makes
every later read of the task's logs fail with 500): older servers and the task-log view name
them `"type": "input"/"output"`. The models' validators are that module's too, so a message
means the same in an event, a state file and `/messages`.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Literal, TypeVar

import httpx
import structlog
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from agent.clock import SYSTEM_CLOCK, Clock
from agent.conversation import (
    BUSY_PHRASE,
    MAX_MESSAGES_BYTES,
    check_time,
    normalise_role,
    read_history,
)
from agent.errors import BadResponse, RemoteError, TransportError
from agent.http_async import (
    TRANSPORT_FAILURES,
    overall_deadline,
    request,
    status_error,
    transport_error,
    url_of,
)
from agent.models import AgentStatus

log = structlog.get_logger("agent.agentapi")

SERVICE = "AgentAPI"
# A single event larger than this is skipped: it is garbage or an attack, not a message
# (real messages are terminal text, at most a few MB).
MAX_EVENT_BYTES = 64 * 1024 * 1024
# `/status` and `/message` answer a few hundred bytes.
MAX_SMALL_BODY = 1024 * 1024

M = TypeVar("M", bound=BaseModel)


class _Model(BaseModel):
    # defer_build: a model's validator is built on first use, so the stop hook pays only for
    # the models its path uses.
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True, defer_build=True)


# The role under its current name, or the older `type` (input/output).
_ROLE_FIELD = Field(validation_alias=AliasChoices("role", "type"))


class StatusResponse(_Model):
    """`GET /status`."""

    status: AgentStatus
    agent_type: str = ""
    transport: str = "pty"


class _Said(_Model):
    """What a message and an event about one share: its id, its role and its time, checked."""

    id: int = Field(strict=True)
    role: str = _ROLE_FIELD
    time: str

    _time = field_validator("time")(check_time)
    _role = field_validator("role", mode="before")(normalise_role)


class Message(_Said):
    """One conversation message; the last agent message is rewritten in place under its id."""

    content: str


class MessageUpdate(_Said):
    """`message_update` event: the full text of one message (created or rewritten)."""

    message: str

    def as_message(self) -> Message:
        """The same data in the shape of a `/messages` entry."""
        return Message(id=self.id, role=self.role, content=self.message, time=self.time)


class StatusChange(_Model):
    """`status_change` event."""

    status: AgentStatus
    agent_type: str = ""


class AgentErrorEvent(_Model):
    """`agent_error` event."""

    message: str
    level: str = "error"
    time: str = ""


@dataclass(frozen=True)
class UnknownEvent:
    """An event this client does not know (newer servers add some); kept for logging."""

    name: str
    size: int


@dataclass(frozen=True)
class MalformedEvent:
    """A known event whose payload broke the contract; the stream goes on after it."""

    name: str
    error: str


Event = MessageUpdate | StatusChange | AgentErrorEvent | UnknownEvent | MalformedEvent
_EVENT_MODELS: dict[str, type[MessageUpdate | StatusChange | AgentErrorEvent]] = {
    "message_update": MessageUpdate,
    "status_change": StatusChange,
    "agent_error": AgentErrorEvent,
}


def parse_event(name: str, data: str) -> Event:
    """Turn one SSE frame into a typed event; raises BadResponse on a malformed payload."""
    model = _EVENT_MODELS.get(name)
    if model is None:
        return UnknownEvent(name=name, size=len(data))
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        raise BadResponse(SERVICE, f"event {name}", _first_error(exc)) from None


class AgentAPIClient:
    """Calls one AgentAPI server through an injected `httpx.AsyncClient`.

    The client must be built with the AgentAPI `base_url` and a timeout (see `build_http`).
    Every method raises from the `agent.errors` tree only. Deadlines are on `clock`.
    """

    def __init__(self, http: httpx.AsyncClient, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._http = http
        self._clock = clock

    async def status(self, request_timeout: float | None = None) -> StatusResponse:
        """`GET /status`."""
        response = await self._request("GET", "/status", request_timeout=request_timeout)
        return _parse(StatusResponse, response, "GET /status")

    async def messages(self, request_timeout: float | None = None) -> list[Message]:
        """`GET /messages`: the whole history, oldest first."""
        response = await self._request("GET", "/messages", request_timeout=request_timeout)
        return parse_messages(response.content)

    async def send_message(
        self,
        content: str,
        kind: Literal["user", "raw"] = "user",
        request_timeout: float | None = None,
    ) -> None:
        """`POST /message`. Raises AgentBusy when the agent is not waiting for input."""
        await self._request(
            "POST",
            "/message",
            json={"content": content, "type": kind},
            request_timeout=request_timeout,
        )

    async def events(self, silence_timeout: float | None = None) -> AsyncGenerator[Event, None]:
        """`GET /events`: typed events until the server ends the stream.

        `silence_timeout`: until the first event is complete, a gap longer than this between
        two pieces of the stream raises TimeoutError (the replay starts at once on connect, so
        silence means a hung server). Measured between pieces, not to the end of the event: a
        replay whose first message is many megabytes is slow, not hung.

        A frame larger than MAX_EVENT_BYTES, or with a malformed payload, comes out as a
        MalformedEvent (the stream goes on after it); unknown names come out as UnknownEvent.
        The stream has no heartbeat, so reads have no timeout: the caller decides how long
        silence may last.
        """
        base = self._http.timeout
        timeout = httpx.Timeout(base.connect, read=None, write=base.write, pool=base.pool)
        try:
            async with self._http.stream(
                "GET", "/events", headers={"accept": "text/event-stream"}, timeout=timeout
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise _status_error(response, "GET /events")
                seen = [False]
                pieces = _until_first(response.aiter_bytes(), silence_timeout, seen, self._clock)
                async for name, data in _sse_frames(pieces):
                    seen[0] = True
                    if isinstance(data, OversizedFrame):
                        yield MalformedEvent(
                            name=name,
                            error=f"{data.size} bytes, over the {MAX_EVENT_BYTES}-byte limit:"
                            " skipped",
                        )
                        continue
                    try:
                        event = parse_event(name, data)
                    except BadResponse as exc:
                        yield MalformedEvent(name=name, error=exc.detail)
                        continue
                    yield event
        except TRANSPORT_FAILURES as exc:
            raise _transport_error(exc, f"GET {self._url('/events')}") from None

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: object | None = None,
        request_timeout: float | None = None,
    ) -> httpx.Response:
        what = f"{method} {path}"
        response = await request(
            self._http,
            SERVICE,
            method,
            path,
            # One deadline for the whole call: a server trickling a byte a second must not
            # hold the caller (a per-read timeout never fires then).
            deadline=overall_deadline(self._http, request_timeout),
            max_body=MAX_MESSAGES_BYTES if path == "/messages" else MAX_SMALL_BODY,
            # The URL, not only the path: "which AgentAPI was it trying?" is the first question.
            what=f"{method} {self._url(path)}",
            json=json,
            clock=self._clock,
            timeout=httpx.USE_CLIENT_DEFAULT if request_timeout is None else request_timeout,
        )
        if not 200 <= response.status_code < 300:
            raise _status_error(response, what)
        return response

    def _url(self, path: str) -> str:
        return url_of(self._http, path)


class _StateFile(_Model):
    # AgentAPI's state file names the text `message`, as its events do.
    messages: list[MessageUpdate]


def parse_state_file(body: bytes) -> list[Message]:
    """The conversation in AgentAPI's state file (`--state-file`; written on SIGUSR1 and when it
    stops). Raises BadResponse when the file is not one."""
    try:
        state = _StateFile.model_validate_json(body)
    except ValidationError as exc:
        raise BadResponse(SERVICE, "state file", _first_error(exc)) from None
    return [update.as_message() for update in state.messages]


def parse_messages(body: bytes) -> list[Message]:
    """A `GET /messages` answer's messages, every one that can be understood.

    The rule is `agent.conversation`'s (shared with the one-shot snapshot's standard-library
    path). Raises BadResponse only when the answer as a whole is not a messages list (not JSON,
    no `messages` array); a malformed message is dropped and logged
    (`agentapi_messages_dropped`).
    """
    history = read_history(body)
    dropped = history.dropped_fields()
    if dropped is not None:
        log.warning("agentapi_messages_dropped", **dropped)
    # Checked already, by the same rule as Message's validators: built without validating again.
    return [
        Message.model_construct(id=m.id, role=m.role, content=m.content, time=m.time)
        for m in history.messages
    ]


def _transport_error(exc: httpx.HTTPError | ssl.SSLError, what: str) -> TransportError:
    return transport_error(SERVICE, what, exc)


def _status_error(response: httpx.Response, what: str) -> RemoteError:
    return status_error(SERVICE, what, response, busy_phrase=BUSY_PHRASE)


def _parse(model: type[M], response: httpx.Response, what: str) -> M:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise BadResponse(SERVICE, what, _first_error(exc)) from None


def _first_error(exc: ValidationError) -> str:
    first = exc.errors(include_url=False, include_input=False)[0]
    location = ".".join(str(p) for p in first["loc"]) or "body"
    return f"{location}: {first['msg']} ({exc.error_count()} problem(s))"


async def _until_first(
    chunks: AsyncIterator[bytes], within: float | None, seen: list[bool], clock: Clock
) -> AsyncIterator[bytes]:
    """`chunks`, each within `within` seconds of the last until `seen[0]` (an event came)."""
    iterator = aiter(chunks)
    while True:
        if within is None or seen[0]:
            chunk = await anext(iterator, None)
        else:
            with clock.fail_after(within):
                chunk = await anext(iterator, None)
        if chunk is None:
            return
        yield chunk


_EOL = re.compile(rb"[\r\n]")


@dataclass(frozen=True)
class OversizedFrame:
    """A frame over the size limit: skipped (its data is not kept), the stream goes on."""

    name: str
    size: int


async def _sse_frames(
    chunks: AsyncIterator[bytes], limit: int | None = None
) -> AsyncIterator[tuple[str, str | OversizedFrame]]:
    """Split a Server-Sent Events byte stream into (event name, data) frames, in linear time.

    Lines end in LF, CRLF or CR; `data:` lines of one frame join with LF; comments and the
    `id:`/`retry:` fields (which AgentAPI does not send) are ignored. A frame over `limit` bytes
    (MAX_EVENT_BYTES) comes out as an OversizedFrame instead of its data (see `_SSEParser`).
    """
    parser = _SSEParser(MAX_EVENT_BYTES if limit is None else limit)
    async for chunk in chunks:
        for frame in parser.feed(chunk):
            yield frame


class _SSEParser:
    """Incremental SSE parsing that scans every byte once.

    The search for a line end resumes where the last one stopped, and consumed lines are
    dropped once per chunk, not once per line: the old parser rescanned its whole buffer on
    every chunk (2 s of CPU for one 40 MB event). A frame over the limit is not kept: its bytes
    are dropped as they arrive (memory stays bounded), it comes out as an OversizedFrame, and
    the frames after it are parsed as usual: a reconnect would only replay the same frame.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._buffer = bytearray()
        self._start = 0  # where the current line begins in the buffer
        self._scan = 0  # where the search for its end resumes
        self._dropped_line = False  # the current line's beginning was dropped (too long)
        self._name = ""
        self._data: list[str] = []
        self._size = 0
        self._oversized = False

    def feed(self, chunk: bytes) -> list[tuple[str, str | OversizedFrame]]:
        """Take the next bytes; the frames they complete."""
        self._buffer += chunk
        frames: list[tuple[str, str | OversizedFrame]] = []
        while (line := self._next_line()) is not None:
            frame = self._take(line)
            if frame is not None:
                frames.append(frame)
        if self._start:
            del self._buffer[: self._start]
            self._scan -= self._start
            self._start = 0
        return frames

    def _next_line(self) -> bytes | None:
        buffer = self._buffer
        match = _EOL.search(buffer, self._scan)
        if match is None or (buffer[match.start()] == 13 and match.start() == len(buffer) - 1):
            # No complete line yet (a CR at the very end may be the first half of a CRLF).
            self._scan = len(buffer) if match is None else match.start()
            if self._scan - self._start > self._limit:
                self._size += self._scan - self._start
                self._oversized, self._dropped_line, self._data = True, True, []
                self._start = self._scan
            return None
        end = match.start()
        following = end + 2 if buffer[end : end + 2] == b"\r\n" else end + 1
        line = bytes(buffer[self._start : end])
        self._start = self._scan = following
        if self._dropped_line:
            # The end of a line whose beginning was dropped: not a blank line, and no field.
            self._dropped_line = False
            self._size += len(line)
            return b"\0"
        return line

    def _take(self, line: bytes) -> tuple[str, str | OversizedFrame] | None:
        if not line:
            name = self._name or "message"
            frame: tuple[str, str | OversizedFrame] | None = None
            if self._oversized:
                frame = (name, OversizedFrame(name, self._size))
            elif self._data:
                frame = (name, "\n".join(self._data))
            self._name, self._data, self._size, self._oversized = "", [], 0, False
            return frame
        field, _, value = line.decode("utf-8", errors="replace").partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            self._name = value
        elif field == "data":
            self._size += len(line)
            if self._size > self._limit:
                self._oversized, self._data = True, []
            if not self._oversized:
                self._data.append(value)
        return None
