"""AgentAPI's wire encoding: JSON as Go writes it, SSE frames, and huma's answers and problems.

Every JSON object answer starts with `"$schema"` (`http://HOST/schemas/NAME.json`, built from the
request's Host header as huma does) and carries a `Link: <...>; rel="describedBy"` header. JSON is
encoded like Go's: `<`, `>` and `&` escaped, times RFC 3339 with up to nine fraction digits,
trailing zeros dropped. Errors are RFC 9457 problem+json as huma writes them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from http import HTTPStatus
from typing import Literal

from standins.http import Response

Status = Literal["running", "stable"]
Role = Literal["agent", "user"]
Level = Literal["error", "warning"]
JSONObject = dict[str, object]

# A long replay is sent in chunks of about this size rather than one write per event.
CHUNK_BYTES = 256 * 1024
_GO_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


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


def status_event(status: Status, agent_type: str) -> bytes:
    """A `status_change` event."""
    return sse_frame("status_change", {"status": status, "agent_type": agent_type})


def chunks(frames: Iterable[bytes]) -> Iterable[bytes]:
    """Frames joined into chunks of about CHUNK_BYTES."""
    batch: list[bytes] = []
    size = 0
    for frame in frames:
        batch.append(frame)
        size += len(frame)
        if size >= CHUNK_BYTES:
            yield b"".join(batch)
            batch, size = [], 0
    if batch:
        yield b"".join(batch)


# -- answers ------------------------------------------------------------------------------------


def json_headers(schema: str, content_type: str = "application/json") -> list[tuple[str, str]]:
    """The content type and huma's `describedBy` link."""
    return [
        ("content-type", content_type),
        ("link", f'</schemas/{schema}.json>; rel="describedBy"'),
    ]


def json_answer(host: str, schema: str, payload: JSONObject) -> Response:
    """A 200 JSON object answer, `$schema` first."""
    body = go_json({"$schema": schema_url(host, schema), **payload}) + "\n"
    return Response(status=200, body=body.encode(), headers=json_headers(schema))


def messages_answer(host: str, messages: Iterable[Message]) -> Response:
    """GET /messages, assembled from each message's cached encoding."""
    head = '{"$schema":' + go_json(schema_url(host, "MessagesResponseBody"))
    body = b"".join([head.encode(), b',"messages":[', b",".join(m.wire for m in messages), b"]}\n"])
    return Response(status=200, body=body, headers=json_headers("MessagesResponseBody"))


def problem(
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
    headers = json_headers("ErrorModel", "application/problem+json")
    return Response(status=status, body=body, headers=headers)


def send_failed(host: str, reason: str) -> Response:
    """A handler error: huma answers 500 with the error text as errors[0].message."""
    errors: list[JSONObject] = [{"message": f"failed to send message: {reason}"}]
    return problem(host, 500, "unexpected error occurred", errors)


def plain(status: int, text: str) -> Response:
    """Go's http.Error: plain text."""
    return Response(
        status=status,
        body=text.encode(),
        headers=[
            ("content-type", "text/plain; charset=utf-8"),
            ("x-content-type-options", "nosniff"),
        ],
    )
