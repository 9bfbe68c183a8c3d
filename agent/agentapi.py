"""Typed client for the local AgentAPI server (`/status`, `/messages`, `/events`).

Wire facts (shared/contracts.md): answers carry `$schema` and may gain keys (ignored); errors are
problem+json; events name the text `message`, not `content`; `GET /status` and `GET /messages`
block while a message is being sent, so every call has a timeout, and a timeout means "no answer
yet". Times stay the RFC 3339 text sent (Go's nanoseconds; a datetime would round them). Messages
are read and checked by `agent.conversation`'s rule, so they mean the same in an event, a state
file and `/messages`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack, nullcontext
from dataclasses import dataclass
from typing import TypeVar

import httpx
import structlog
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent.clock import SYSTEM_CLOCK, Clock
from agent.conversation import (
    MAX_MESSAGES_BYTES,
    SERVICE,
    check_time,
    normalise_role,
    read_history,
)
from agent.errors import BadResponse
from agent.http_async import (
    TRANSPORT_FAILURES,
    error_answer,
    overall_deadline,
    request,
    status_error,
    transport_error,
    url_of,
)
from agent.models import AgentStatus

log = structlog.get_logger("agent.agentapi")

# A larger event is skipped as garbage: real messages are terminal text, a few MB at most.
MAX_EVENT_BYTES = 64 * 1024 * 1024
# `/status` answers a few hundred bytes.
MAX_SMALL_BODY = 1024 * 1024

M = TypeVar("M", bound=BaseModel)


class _Model(BaseModel):
    # defer_build: the stop hook pays only for the models its path uses.
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True, defer_build=True)


class StatusResponse(_Model):
    status: AgentStatus
    agent_type: str = ""
    transport: str = "pty"


class _Said(_Model):
    """What a message and an event about one share, checked."""

    id: int = Field(strict=True)
    # Older servers name the role `type` (input/output).
    role: str = Field(validation_alias=AliasChoices("role", "type"))
    time: str

    _time = field_validator("time")(check_time)
    _role = field_validator("role", mode="before")(normalise_role)


class Message(_Said):
    """One conversation message; the last agent message is rewritten in place under its id."""

    content: str


class MessageUpdate(_Said):
    """`message_update`: the full text of one message (created or rewritten)."""

    message: str

    def as_message(self) -> Message:
        return Message(id=self.id, role=self.role, content=self.message, time=self.time)


class StatusChange(_Model):
    status: AgentStatus
    agent_type: str = ""


class AgentErrorEvent(_Model):
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


@dataclass(frozen=True)
class OversizedFrame:
    """A frame over the size limit: its data is not kept."""

    name: str
    size: int


Event = MessageUpdate | StatusChange | AgentErrorEvent | UnknownEvent | MalformedEvent
_EVENT_MODELS: dict[str, type[MessageUpdate | StatusChange | AgentErrorEvent]] = {
    "message_update": MessageUpdate,
    "status_change": StatusChange,
    "agent_error": AgentErrorEvent,
}


def parse_event(name: str, data: str | OversizedFrame) -> Event:
    """One SSE frame as a typed event; a MalformedEvent when it breaks the contract."""
    if isinstance(data, OversizedFrame):
        limit = f"over the {MAX_EVENT_BYTES}-byte limit"
        return MalformedEvent(name, f"{data.size} bytes, {limit}: skipped")
    model = _EVENT_MODELS.get(name)
    if model is None:
        return UnknownEvent(name=name, size=len(data))
    try:
        return _parse(model, data, f"event {name}")
    except BadResponse as exc:
        return MalformedEvent(name, exc.detail)


class AgentAPIClient:
    """Calls one AgentAPI through an `httpx.AsyncClient` built with its `base_url` and a timeout
    (`build_http`); raises from `agent.errors` only; deadlines are on `clock`."""

    def __init__(self, http: httpx.AsyncClient, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._http = http
        self._clock = clock

    async def status(self) -> StatusResponse:
        response = await self._get("/status", None)
        return _parse(StatusResponse, response.content, "GET /status")

    async def messages(self, request_timeout: float | None = None) -> list[Message]:
        """`GET /messages`: the whole history, oldest first."""
        return parse_messages((await self._get("/messages", request_timeout)).content)

    async def events(self, silence_timeout: float | None = None) -> AsyncGenerator[Event, None]:
        """`GET /events`: typed events until the server ends the stream.

        The replay starts at once on connect, so until the first event a gap over
        `silence_timeout` between two pieces raises TimeoutError (a hung server; a slow replay of
        a huge message still moves). The stream has no heartbeat: later silence is the caller's.
        The opening (the answer's head, an error's body) has one deadline: `silence_timeout`, else
        the client's timeout.
        """
        base = self._http.timeout
        timeout = httpx.Timeout(base.connect, read=None, write=base.write, pool=base.pool)
        try:
            async with AsyncExitStack() as opened:
                # The read timeout is off for the stream: without this deadline a peer that never
                # sends its head, or trickles an error's body, would hold the watcher for good.
                with self._clock.fail_after(overall_deadline(self._http, silence_timeout)):
                    response = await opened.enter_async_context(
                        self._http.stream(
                            "GET",
                            "/events",
                            headers={"accept": "text/event-stream"},
                            timeout=timeout,
                        )
                    )
                    if response.status_code != 200:
                        raise status_error(SERVICE, "GET /events", await error_answer(response))
                parser = _SSEParser(MAX_EVENT_BYTES)
                pieces = aiter(response.aiter_bytes())
                seen = False
                while True:
                    within = None if seen else silence_timeout
                    with nullcontext() if within is None else self._clock.fail_after(within):
                        piece = await anext(pieces, None)
                    if piece is None:
                        return
                    for name, data in parser.feed(piece):
                        seen = True
                        yield parse_event(name, data)
        except TRANSPORT_FAILURES as exc:
            what = f"GET {url_of(self._http, '/events')}"
            raise transport_error(SERVICE, what, exc) from None

    async def _get(self, path: str, request_timeout: float | None) -> httpx.Response:
        response = await request(
            self._http,
            SERVICE,
            "GET",
            path,
            # One deadline for the whole call: a per-read timeout never fires on a server
            # trickling a byte a second.
            deadline=overall_deadline(self._http, request_timeout),
            max_body=MAX_MESSAGES_BYTES if path == "/messages" else MAX_SMALL_BODY,
            # The URL: "which AgentAPI was it trying?" is the first question.
            what=f"GET {url_of(self._http, path)}",
            clock=self._clock,
            timeout=httpx.USE_CLIENT_DEFAULT if request_timeout is None else request_timeout,
        )
        if not 200 <= response.status_code < 300:
            raise status_error(SERVICE, f"GET {path}", response)
        return response


class _StateFile(_Model):
    messages: list[MessageUpdate]  # named `message`, as in the events


def parse_state_file(body: bytes) -> list[Message]:
    """The conversation in AgentAPI's `--state-file`; BadResponse when the file is not one."""
    return [update.as_message() for update in _parse(_StateFile, body, "state file").messages]


def parse_messages(body: bytes) -> list[Message]:
    """A `GET /messages` answer's messages, every one that can be understood (a malformed one is
    dropped and logged); BadResponse when the answer as a whole is not a history."""
    history = read_history(body)
    dropped = history.dropped_fields()
    if dropped is not None:
        log.warning("agentapi_messages_dropped", **dropped)
    # Checked already, by the same rule as Message's validators: built without validating again.
    return [
        Message.model_construct(id=m.id, role=m.role, content=m.content, time=m.time)
        for m in history.messages
    ]


def _parse(model: type[M], body: bytes | str, what: str) -> M:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        location = ".".join(str(p) for p in first["loc"]) or "body"
        detail = f"{location}: {first['msg']} ({exc.error_count()} problem(s))"
        raise BadResponse(SERVICE, what, detail) from None


_EOL = re.compile(rb"\r\n|\r|\n")


class _SSEParser:
    """Server-Sent Events frames (event name, data) from bytes, scanning every byte once.

    Lines end in LF, CRLF or CR; `data:` lines join with LF; comments, `id:` and `retry:` are
    ignored. Nothing is rescanned (that cost 2 s of CPU for one 40 MB event). A frame over
    `limit` is dropped as it arrives (memory stays bounded) and comes out as an OversizedFrame;
    the stream goes on (a reconnect would replay it).
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._line: list[bytes] = []  # the pieces of the line not yet ended
        self._line_size = 0
        self._line_dropped = False  # its beginning was dropped (too long)
        self._cr_held = False
        self._name = ""
        self._data: list[str] = []
        self._size = 0
        self._oversized = False

    def feed(self, chunk: bytes) -> list[tuple[str, str | OversizedFrame]]:
        """Take the next bytes; the frames they complete."""
        if self._cr_held:
            chunk = b"\r" + chunk
        # A CR at the very end may be the first half of a CRLF: held until the next byte.
        self._cr_held = chunk.endswith(b"\r")
        *ended, rest = _EOL.split(chunk[:-1] if self._cr_held else chunk)
        frames: list[tuple[str, str | OversizedFrame]] = []
        for end in ended:
            if self._line_dropped:
                # The end of a line whose beginning was dropped: not a blank line, and no field.
                self._size += self._line_size + len(end)
                self._line_dropped = False
            elif (frame := self._take(b"".join([*self._line, end]))) is not None:
                frames.append(frame)
            self._line, self._line_size = [], 0
        if rest:
            self._line.append(rest)
            self._line_size += len(rest)
            if self._line_size > self._limit:
                self._size += self._line_size
                self._oversized, self._line_dropped, self._data = True, True, []
                self._line, self._line_size = [], 0
        return frames

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
