"""A Coder server stand-in: `coder-task-agent-dev coder`.

Agent side, exactly as shared/contracts.md section 2 and coderd (v2.34) answer: Coder's
`{"message", "detail"}` error bodies and Go's JSON decoding rules (the first value of the body is
read, unknown keys are ignored, field names match case-insensitively, a JSON `null` leaves a field
at its zero value). Auth is the `Coder-Session-Token` header; both endpoints are rate limited
per endpoint (512 requests a minute by default).

    PATCH /api/v2/workspaceagents/me/app-status
    POST  /api/v2/workspaceagents/me/tasks/{task}/log-snapshot?format=agentapi

Read side, what a user sees of the task. Real Coder wants a user session for these; this
localhost dev tool serves them to anyone who can reach it, so keep it on loopback (the default).

    GET /api/v2/tasks/{user}/{task}         the task; `current_state` from its latest app status
    GET /api/v2/tasks/{user}/{task}/logs    live from AgentAPI (`active`) or the stored snapshot
    GET /tasks/{user}/{task}                a page that refreshes itself every second

Dev only, NOT part of Coder: the demo and the tests drive and inspect the stand-in with these.

    GET    /dev/tasks                   every task, as the read side shows it
    POST   /dev/tasks/{task}/status     {"status": "paused"}: what Coder does once a workspace stops
    GET    /dev/requests                what reached /api/v2/ (not the read side): method, path,
                                        query, whether the token matched, body size, answer, time
    DELETE /dev/requests                forget them
    GET    /dev/app-statuses[?task=ID]  the app-status history, oldest first
    GET    /dev/snapshot/{task}         the stored snapshot body, byte for byte, and `stored_at`
    GET|POST|DELETE /dev/faults         scripted failures: a list of {"route": "app-status" |
                                        "log-snapshot", "status", "retry_after", "delay", "times"},
                                        consumed in order (503 twice, then normal service)

The expected agent token comes from `--token-file` or `CODER_AGENT_TOKEN`, never from argv. It is
never stored, logged or echoed: `/dev/requests` records only whether the header matched, and a
token sent in the query string is redacted there.
"""

from __future__ import annotations

import argparse
import calendar
import hmac
import json
import math
import os
import re
import secrets
import signal
import sys
import tempfile
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from functools import partial
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal, NoReturn, TypedDict
from urllib.parse import parse_qsl, unquote, urlencode

import anyio
import anyio.abc
import httpx
import structlog

from standins.http import Request, Response, serve, text_response
from standins.store import TASK_STATUSES, StatusRow, Store, Task, now_rfc3339

TOKEN_HEADER = "coder-session-token"  # noqa: S105 - a header name, not a secret
DEMO_TASK_ID = "8b2e7c1a-5f3d-4e6b-9a0c-1d2e3f4a5b6c"
# The snapshot body is read through this limit (http.MaxBytesReader); past it the JSON decoder
# fails and the server answers 400 "Failed to decode request payload.", not 413.
SNAPSHOT_BODY_LIMIT = 65536
# An app-status message longer than this many UTF-8 bytes is refused (exactly 160 is accepted).
MAX_STATUS_MESSAGE_BYTES = 160
# coderd applies httpmw.RateLimit(512, time.Minute), keyed by client IP and endpoint.
RATE_LIMIT = 512
RATE_WINDOW = 60.0
WIRE_STATES = ("working", "idle", "complete", "failure")
SNAPSHOT_STATUSES = ("paused", "pending", "initializing")
FAULT_ROUTES = ("app-status", "log-snapshot")

APP_STATUS_PATH = "/api/v2/workspaceagents/me/app-status"
_SNAPSHOT_PATH = re.compile(r"/api/v2/workspaceagents/me/tasks/([^/]*)/log-snapshot")
_TASK_PATH = re.compile(r"/api/v2/tasks/([^/]+)/([^/]+?)(/logs)?")
_PAGE_PATH = re.compile(r"/tasks/([^/]+)/([^/]+)")

# coderd's own words, where a client or a test may match on them.
NOT_FOUND = "Resource not found or you do not have access to this resource"
ROUTE_NOT_FOUND = "Route not found."
DECODE_FAILED = "Failed to decode request payload."
LOGS_CONFLICT = "Cannot fetch logs for task in current state."

log = structlog.get_logger("standins.coder")

Route = Literal["app-status", "log-snapshot"]
TokenCheck = Literal["matched", "missing", "malformed", "mismatched"]


# -- Coder's answers ----------------------------------------------------------------------------


def coder_json(
    payload: object, status: int = 200, headers: Iterable[tuple[str, str]] = ()
) -> Response:
    """A JSON answer as coderd's httpapi.Write makes it: HTML-escaped, newline-terminated."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(raw, escaped)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return Response(
        status=status,
        body=(text + "\n").encode(),
        headers=[("content-type", "application/json; charset=utf-8"), *headers],
    )


def coder_error(
    status: int,
    message: str,
    detail: str = "",
    validations: list[dict[str, str]] | None = None,
    headers: Iterable[tuple[str, str]] = (),
) -> Response:
    """Coder's error body, codersdk.Response: `message`, and `detail`/`validations` when set."""
    payload: dict[str, object] = {"message": message}
    if detail:
        payload["detail"] = detail
    if validations:
        payload["validations"] = validations
    return coder_json(payload, status=status, headers=headers)


def go_quote(text: str) -> str:
    """`text` as Go's %q prints it (close enough for ASCII and printable Unicode)."""
    return json.dumps(text, ensure_ascii=False)


# -- Go's encoding/json, as far as these two bodies need it ---------------------------------------


class WireError(ValueError):
    """A body Go's encoding/json (or time.Time) refuses; the text goes into the `detail`."""


@dataclass(frozen=True)
class _Number:
    """A JSON number written with a fraction or an exponent: Go refuses it for an integer."""

    text: str


class _Object:
    """A JSON object as its members in document order: Go assigns struct fields in that order."""

    __slots__ = ("members",)

    def __init__(self, members: Iterable[tuple[str, Any]]) -> None:
        self.members = list(members)


def _refuse_constant(name: str) -> NoReturn:
    raise WireError(f"invalid character {name[0]!r} looking for beginning of value")


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def go_decode(raw: bytes) -> Any:
    """The first JSON value in `raw`, decoded the way Go's json.Decoder reads a request body.

    Invalid UTF-8 and lone surrogate escapes become U+FFFD; whatever follows the first value is
    not read; NaN and Infinity are refused; an empty body is "EOF". Raises WireError.
    """
    text = raw.decode("utf-8", errors="replace").lstrip(" \t\r\n")
    if not text:
        raise WireError("EOF")
    decoder = json.JSONDecoder(
        object_pairs_hook=_Object, parse_float=_Number, parse_constant=_refuse_constant
    )
    try:
        value, _end = decoder.raw_decode(text)
    except json.JSONDecodeError as exc:
        raise WireError(f"invalid JSON: {exc.msg} (offset {exc.pos})") from None
    except RecursionError:
        raise WireError("exceeded max depth") from None
    return _scrub(value)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, _Object):
        return _Object((_scrub(k), _scrub(v)) for k, v in value.members)
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


Kind = Literal["string", "bool", "int64", "time", "messages"]
GO_ZERO_TIME = "0001-01-01T00:00:00Z"
_ZERO: dict[Kind, Any] = {"string": "", "bool": False, "int64": 0, "time": GO_ZERO_TIME}
_GO_TYPE: dict[Kind, str] = {
    "string": "string",
    "bool": "bool",
    "int64": "int64",
    "time": "time.Time",
    "messages": "[]agentapisdk.Message",
}
_INT64 = (-(2**63), 2**63 - 1)

# agentsdk.PatchAppStatus (`icon` and `needs_user_attention` are deprecated and ignored).
PATCH_APP_STATUS: dict[str, Kind] = {
    "app_slug": "string",
    "icon": "string",
    "message": "string",
    "needs_user_attention": "bool",
    "state": "string",
    "uri": "string",
}
# agentapisdk.Message and agentapisdk.GetMessagesResponse.
AGENTAPI_MESSAGE: dict[str, Kind] = {
    "content": "string",
    "id": "int64",
    "role": "string",
    "time": "time",
}
GET_MESSAGES_RESPONSE: dict[str, Kind] = {"$schema": "string", "messages": "messages"}


def go_struct(value: Any, fields: Mapping[str, Kind], type_name: str) -> dict[str, Any]:
    """`value` (from go_decode) unmarshalled into a Go struct with these JSON fields.

    Missing fields keep their zero value, and so does a field given as `null` (a slice becomes
    nil: None); names match exactly, else case-insensitively; the last occurrence wins.
    Raises WireError on a type mismatch, a non-integer for an int64, or a non-RFC 3339 time.
    """
    out: dict[str, Any] = {name: _ZERO.get(kind) for name, kind in fields.items()}
    if value is None:
        return out
    if not isinstance(value, _Object):
        raise WireError(
            f"json: cannot unmarshal {_json_kind(value)} into Go value of type {type_name}"
        )
    folded = {name.lower(): name for name in fields}
    for key, item in value.members:
        name = key if key in fields else folded.get(key.lower())
        if name is not None:
            out[name] = _field(fields[name], item, out[name], f"{type_name}.{name}")
    return out


def _field(kind: Kind, item: Any, current: Any, where: str) -> Any:
    if item is None:
        return None if kind == "messages" else current
    if kind == "string" and isinstance(item, str):
        return item
    if kind == "bool" and isinstance(item, bool):
        return item
    if kind == "int64" and type(item) is int and _INT64[0] <= item <= _INT64[1]:
        return item
    if kind == "time":
        if not isinstance(item, str):
            raise WireError("Time.UnmarshalJSON: input is not a JSON string")
        if not is_rfc3339(item):
            raise WireError(f'parsing time {go_quote(item)} as "2006-01-02T15:04:05Z07:00"')
        return item
    if kind == "messages" and isinstance(item, list):
        return [go_struct(m, AGENTAPI_MESSAGE, "agentapisdk.Message") for m in item]
    raise WireError(
        f"json: cannot unmarshal {_json_kind(item)} into Go struct field {where}"
        f" of type {_GO_TYPE[kind]}"
    )


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, _Number)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, _Object):
        return "object"
    return "array"


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:Z|[+-](\d{2}):(\d{2}))", re.ASCII
)


def is_rfc3339(text: str) -> bool:
    """Whether Go's time.Time.UnmarshalJSON (strict RFC 3339) accepts `text`.

    Upper-case `T` and `Z`, two-digit fields in range (a real calendar day), a fraction of any
    length (Go reads nine digits and ignores the rest), and `Z` or a `±hh:mm` offset.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    if not 1 <= month <= 12 or hour > 23 or minute > 59 or second > 59:
        return False
    days = (31, 29 if calendar.isleap(year) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    if not 1 <= day <= days[month - 1]:
        return False
    offset_hours, offset_minutes = match.group(7), match.group(8)
    return offset_hours is None or (int(offset_hours) <= 23 and int(offset_minutes) <= 59)


_UUID_36 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_HEX_32 = re.compile(r"[0-9a-f]{32}", re.I)


def parse_go_uuid(text: str) -> str | None:
    """The canonical form of `text` if Go's uuid.Parse accepts it (plain, braces, urn:uuid:,
    32 hex digits), else None."""
    body = text
    if len(text) == 45 and text[:9].lower() == "urn:uuid:":
        body = text[9:]
    elif len(text) == 38 and text[0] == "{" and text[-1] == "}":
        body = text[1:-1]
    elif _HEX_32.fullmatch(text):
        return str(uuid.UUID(hex=text))
    return str(uuid.UUID(body)) if _UUID_36.fullmatch(body) else None


def _uuid_problem(text: str) -> str:
    if len(text) not in (32, 36, 38, 45):
        return f"invalid UUID length: {len(text)}"
    return "invalid UUID format"


def _go_duration(seconds: float) -> str:
    """A duration as Go's time.Duration.String() prints whole seconds ("1m0s")."""
    if seconds != int(seconds):
        return f"{seconds:g}s"
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def _log_entry(message: Mapping[str, Any]) -> dict[str, Any]:
    """An AgentAPI message as a task log entry: role user -> input, agent -> output."""
    role = message["role"]
    if role not in ("user", "agent"):
        raise WireError(f"invalid agentapi message role {go_quote(str(role))}")
    return {
        "id": message["id"],
        "content": message["content"],
        "type": "input" if role == "user" else "output",
        "time": message["time"],
    }


def decode_snapshot(body: bytes, limit: int = SNAPSHOT_BODY_LIMIT) -> list[dict[str, Any]] | None:
    """The messages of a snapshot upload read through `limit` bytes; None when missing or null.

    Like Go's json.Decoder behind http.MaxBytesReader: a value that ends within the limit is
    accepted whatever follows it; one that needs a byte past the limit fails with
    "http: request body too large". Raises WireError.
    """
    try:
        value = go_decode(body[:limit])
    except WireError:
        if len(body) > limit:
            raise WireError("http: request body too large") from None
        raise
    messages: list[dict[str, Any]] | None = go_struct(
        value, GET_MESSAGES_RESPONSE, "agentapisdk.GetMessagesResponse"
    )["messages"]
    return messages


# -- The stand-in ---------------------------------------------------------------------------------


@dataclass
class Fault:
    """A scripted misbehaviour of one agent route, for tests.

    The next `times` requests to `route` wait `delay` seconds, then answer `status` (with a
    `Retry-After: retry_after` header when set) instead of being served; a `status` of None
    serves them normally after the delay (a slow server). Faults are consumed in list order.
    """

    route: str
    status: int | None = 503
    times: int = 1
    retry_after: int | None = None
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.route not in FAULT_ROUTES:
            raise ValueError(f"route must be one of {', '.join(FAULT_ROUTES)}")
        if self.status is not None and not 200 <= self.status <= 599:
            raise ValueError("status must be an HTTP status from 200 to 599, or null")
        if self.times < 1:
            raise ValueError("times must be at least 1")
        if self.delay < 0 or (self.retry_after is not None and self.retry_after < 0):
            raise ValueError("delay and retry_after must not be negative")


class RequestRecord(TypedDict):
    """One request that reached /api/v2/ (never the token itself)."""

    method: str
    path: str
    query: str
    route: str
    token: TokenCheck
    token_ok: bool
    body_bytes: int
    status: int
    time: str


class CoderStandIn:
    """The stand-in's configuration, state and HTTP handler (`handle`).

    `store` holds the state (the caller opens and closes it); `tasks` are created in it, or have
    their configuration refreshed (a stored status is kept). `expected_token` is the agent token
    of this workspace: when it is a UUID, as Coder's are, a presented token that is not a UUID is
    refused as malformed. `tasks_enabled=False` behaves like a server without Coder Tasks: the
    snapshot route does not exist (404 for every task). `clock` (monotonic seconds) drives the
    rate limit; `http` is used to reach AgentAPI for live logs (a client per call otherwise).

    Public, mutable state for tests: `faults` (a list of Fault), `requests` (RequestRecords),
    `tasks_enabled`, `rate_limit`.
    """

    def __init__(
        self,
        store: Store,
        expected_token: str,
        tasks: Iterable[Task] = (),
        *,
        rate_limit: int = RATE_LIMIT,
        rate_window: float = RATE_WINDOW,
        tasks_enabled: bool = True,
        live_timeout: float = 5.0,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not expected_token:
            raise ValueError("the expected agent token is empty")
        self.store = store
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.tasks_enabled = tasks_enabled
        self.live_timeout = live_timeout
        self.faults: list[Fault] = []
        self.requests: list[RequestRecord] = []
        self._token = expected_token.encode()
        self._uuid_token = parse_go_uuid(expected_token)
        self._http = http
        self._clock = clock
        self._hits: dict[str, deque[float]] = defaultdict(deque)
        for task in tasks:
            store.ensure_task(task)

    def __repr__(self) -> str:
        return f"CoderStandIn(tasks={len(self.store.tasks())}, tasks_enabled={self.tasks_enabled})"

    async def handle(self, request: Request) -> Response:
        """Answer one request (the handler for standins.http.serve)."""
        path = request.path
        if path == APP_STATUS_PATH:
            return await self._agent_request(request, "app-status", None)
        if match := _SNAPSHOT_PATH.fullmatch(path):
            return await self._agent_request(request, "log-snapshot", match.group(1))
        if match := _TASK_PATH.fullmatch(path):
            if request.method != "GET":
                return coder_error(405, "Method not allowed.")
            user, task = unquote(match.group(1)), unquote(match.group(2))
            return await self._task_read(user, task, logs=bool(match.group(3)))
        if path.startswith("/api/"):
            response = coder_error(404, ROUTE_NOT_FOUND)
            self._record(request, "", self._check_token(request), response, now_rfc3339())
            return response
        if match := _PAGE_PATH.fullmatch(path):
            return self._page(unquote(match.group(1)), unquote(match.group(2)), request.method)
        if path == "/" and request.method == "GET":
            return self._index()
        if path.startswith("/dev/"):
            return self._dev(request)
        return coder_error(404, ROUTE_NOT_FOUND)

    # -- agent side -------------------------------------------------------------------------------

    async def _agent_request(self, request: Request, route: Route, task: str | None) -> Response:
        received = now_rfc3339()
        check = self._check_token(request)
        response = await self._agent_answer(request, route, task, check)
        self._record(request, route, check, response, received)
        log.info(
            "coder_request",
            route=route,
            method=request.method,
            status=response.status,
            token_check=check,
            body_bytes=len(request.body),
        )
        return response

    async def _agent_answer(
        self, request: Request, route: Route, task: str | None, check: TokenCheck
    ) -> Response:
        if route == "log-snapshot" and not self.tasks_enabled:
            return coder_error(404, ROUTE_NOT_FOUND)
        if request.method != ("PATCH" if route == "app-status" else "POST"):
            return coder_error(405, "Method not allowed.")
        fault = self._next_fault(route)
        if fault is not None:
            if fault.delay:
                await anyio.sleep(fault.delay)
            if fault.status is not None:
                return _fault_answer(fault)
        limited = self._rate_limited(request.path)
        if limited is not None:
            return limited
        refused = _token_refusal(check)
        if refused is not None:
            return refused
        if route == "app-status":
            return self._app_status(request)
        assert task is not None  # noqa: S101 - the snapshot route always carries a task
        return self._log_snapshot(request, task)

    def _check_token(self, request: Request) -> TokenCheck:
        given = request.headers.get(TOKEN_HEADER, "")
        if not given:
            return "missing"
        if self._uuid_token is not None:
            parsed = parse_go_uuid(given)
            if parsed is None:
                return "malformed"
            return "matched" if hmac.compare_digest(parsed, self._uuid_token) else "mismatched"
        return "matched" if hmac.compare_digest(given.encode(), self._token) else "mismatched"

    def _next_fault(self, route: Route) -> Fault | None:
        for fault in self.faults:
            if fault.route == route and fault.times > 0:
                fault.times -= 1
                if fault.times == 0:
                    self.faults.remove(fault)
                return fault
        return None

    def _rate_limited(self, path: str) -> Response | None:
        # Keyed by endpoint only: every client of this loopback stand-in is one IP (and the
        # small HTTP server does not report the peer address).
        now = self._clock()
        hits = self._hits[path]
        while hits and hits[0] <= now - self.rate_window:
            hits.popleft()
        if len(hits) >= self.rate_limit:
            retry_after = max(1, math.ceil(hits[0] + self.rate_window - now))
            return coder_error(
                429,
                f"You've been rate limited for sending more than {self.rate_limit} requests"
                f" in {_go_duration(self.rate_window)}.",
                headers=[
                    ("retry-after", str(retry_after)),
                    ("x-ratelimit-limit", str(self.rate_limit)),
                    ("x-ratelimit-remaining", "0"),
                ],
            )
        hits.append(now)
        return None

    def _app_status(self, request: Request) -> Response:
        try:
            body = go_struct(go_decode(request.body), PATCH_APP_STATUS, "agentsdk.PatchAppStatus")
        except WireError as exc:
            return coder_error(400, "Request body must be valid JSON.", str(exc))
        slug, state, message, uri = body["app_slug"], body["state"], body["message"], body["uri"]
        if len(message.encode()) > MAX_STATUS_MESSAGE_BYTES:
            too_long = f"Message must be less than {MAX_STATUS_MESSAGE_BYTES} characters."
            return coder_error(
                400, "Message is too long.", too_long, [{"field": "message", "detail": too_long}]
            )
        if state not in WIRE_STATES:
            return coder_error(
                400,
                "Invalid state provided.",
                f"invalid state: {go_quote(state)}",
                [
                    {
                        "field": "state",
                        "detail": "State must be one of: complete, failure, working, idle.",
                    }
                ],
            )
        task = next(
            (t for t in self.store.tasks() if not t.other_workspace and slug in t.app_slugs), None
        )
        if task is None:
            return coder_error(
                400, "Failed to get workspace app.", f"No app found with slug {go_quote(slug)}"
            )
        self.store.add_status(task.id, slug, state, message, uri)
        return coder_json(None)

    def _log_snapshot(self, request: Request, raw_task: str) -> Response:
        task_id = parse_go_uuid(raw_task)
        if task_id is None:
            return coder_error(400, "Invalid task ID format.", _uuid_problem(raw_task))
        problems = []
        fmt = request.query.get("format", [""])[0]
        if not fmt:
            problems.append(
                {
                    "field": "format",
                    "detail": 'Query param "format" is required and cannot be empty',
                }
            )
        problems += [
            {"field": key, "detail": f"{go_quote(key)} is not a valid query param"}
            for key in request.query
            if key != "format"
        ]
        if problems:
            return coder_error(400, "Invalid query parameters.", validations=problems)
        if fmt != "agentapi":
            return coder_error(
                400,
                "Invalid format parameter.",
                f'Only "agentapi" format is currently supported, got {go_quote(fmt)}.',
            )
        # The task is checked before the body is looked at, as coderd does to shed load.
        task = self.store.task(task_id)
        if task is None or task.other_workspace:
            return coder_error(404, NOT_FOUND)
        try:
            messages = decode_snapshot(request.body)
        except WireError as exc:
            return coder_error(400, DECODE_FAILED, str(exc))
        if messages is None:
            return coder_error(
                400, "Invalid agentapi payload structure.", 'Missing required "messages" field.'
            )
        self.store.put_snapshot(task_id, request.body)
        return Response(status=204)

    def _record(
        self, request: Request, route: str, check: TokenCheck, response: Response, received: str
    ) -> None:
        self.requests.append(
            RequestRecord(
                method=request.method,
                path=request.path,
                query=_redacted_query(request.target.partition("?")[2], self._token.decode()),
                route=route,
                token=check,
                token_ok=check == "matched",
                body_bytes=len(request.body),
                status=response.status,
                time=received,
            )
        )

    # -- read side --------------------------------------------------------------------------------

    def _find_task(self, user: str, key: str) -> Task | None:
        task_id = parse_go_uuid(key)
        for task in self.store.tasks():
            if task.id == task_id or (task_id is None and task.name == key):
                return task if user in ("me", task.owner) else None
        return None

    def task_view(self, task: Task) -> dict[str, Any]:
        """The task as `GET /api/v2/tasks/{user}/{task}` shows it (wire `failure` as `failed`)."""
        latest = self.store.latest_status(task.id)
        current = None
        if latest is not None:
            current = {
                "timestamp": latest["created_at"],
                "state": shown_state(latest["state"]),
                "message": latest["message"],
                "uri": latest["uri"],
            }
        return {
            "id": task.id,
            "name": task.name,
            "display_name": task.name,
            "owner_name": task.owner,
            "status": task.status,
            "current_state": current,
            "app_slugs": list(task.app_slugs),
        }

    async def _task_read(self, user: str, key: str, *, logs: bool) -> Response:
        task = self._find_task(user, key)
        if task is None:
            return coder_error(404, NOT_FOUND)
        if not logs:
            return coder_json(self.task_view(task))
        if task.status == "active":
            return await self._live_logs(task)
        if task.status in SNAPSHOT_STATUSES:
            return self._snapshot_logs(task)
        return coder_error(409, LOGS_CONFLICT, f"Task status is {go_quote(task.status)}.")

    async def _live_logs(self, task: Task) -> Response:
        url = task.agentapi_url.rstrip("/") + "/messages"
        failed = "Failed to get messages from task app."
        try:
            if self._http is not None:
                answer = await self._http.get(url, timeout=self.live_timeout)
            else:
                async with httpx.AsyncClient(
                    timeout=self.live_timeout, trust_env=False, follow_redirects=False
                ) as http:
                    answer = await http.get(url)
        except httpx.TimeoutException:
            return coder_error(
                502,
                failed,
                f"AgentAPI at {task.agentapi_url} did not answer within {self.live_timeout:g} s"
                " (GET /messages waits while a message is being sent).",
            )
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            return coder_error(
                502, failed, f"AgentAPI at {task.agentapi_url} is unreachable: {reason}"
            )
        if answer.status_code != 200:
            return coder_error(502, failed, f"AgentAPI answered {answer.status_code}.")
        try:
            decoded = go_struct(go_decode(answer.content), GET_MESSAGES_RESPONSE, "messages")
            entries = [_log_entry(m) for m in decoded["messages"] or []]
        except WireError as exc:
            return coder_error(502, "Invalid task app response.", str(exc))
        return coder_json({"count": len(entries), "logs": entries, "snapshot": False})

    def _snapshot_logs(self, task: Task) -> Response:
        stored = self.store.snapshot(task.id)
        if stored is None:
            # Snapshot is true: the task cannot be read live, whether or not a snapshot exists.
            return coder_json({"count": 0, "logs": [], "snapshot": True})
        try:
            messages = decode_snapshot(stored.body) or []
        except WireError as exc:
            return coder_error(500, "Internal error decoding task snapshot.", str(exc))
        try:
            entries = [_log_entry(m) for m in messages]
        except WireError as exc:
            return coder_error(500, "Invalid snapshot data.", str(exc))
        return coder_json(
            {
                "count": len(entries),
                "logs": entries,
                "snapshot": True,
                "snapshot_at": stored.stored_at,
            }
        )

    def _page(self, user: str, key: str, method: str) -> Response:
        if method != "GET":
            return coder_error(405, "Method not allowed.")
        if self._find_task(user, key) is None:
            return text_response("task not found\n", status=404)
        nonce = secrets.token_urlsafe(16)
        page = files("standins").joinpath("page.html").read_text(encoding="utf-8")
        csp = (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}';"
            " connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )
        return Response(
            status=200,
            body=page.replace("{{nonce}}", nonce).encode(),
            headers=[
                ("content-type", "text/html; charset=utf-8"),
                ("content-security-policy", csp),
                ("cache-control", "no-store"),
                ("x-content-type-options", "nosniff"),
                ("referrer-policy", "no-referrer"),
            ],
        )

    def _index(self) -> Response:
        lines = ["Coder stand-in (a local development tool, not Coder). Task pages:"]
        lines += [f"  /tasks/{t.owner}/{t.id}  ({t.name}, {t.status})" for t in self.store.tasks()]
        return text_response("\n".join(lines) + "\n")

    # -- dev endpoints ----------------------------------------------------------------------------

    def _dev(self, request: Request) -> Response:
        method, parts = request.method, request.path.split("/")[2:]
        match parts:
            case ["tasks"] if method == "GET":
                return coder_json({"tasks": [self.task_view(t) for t in self.store.tasks()]})
            case ["tasks", raw_id, "status"] if method == "POST":
                return self._dev_set_status(raw_id, request.body)
            case ["requests"] if method == "GET":
                return coder_json({"requests": self.requests})
            case ["requests"] if method == "DELETE":
                self.requests.clear()
                return Response(status=204)
            case ["app-statuses"] if method == "GET":
                wanted = request.query.get("task", [""])[0]
                task_id = parse_go_uuid(wanted) if wanted else None
                if wanted and task_id is None:
                    return coder_error(400, "Invalid task ID format.", _uuid_problem(wanted))
                rows = self.store.statuses(task_id)
                return coder_json({"statuses": [_status_view(row) for row in rows]})
            case ["snapshot", raw_id] if method == "GET":
                stored = self.store.snapshot(parse_go_uuid(raw_id) or raw_id)
                if stored is None:
                    return coder_error(404, "No snapshot stored for this task.")
                return coder_json(
                    {
                        "task_id": parse_go_uuid(raw_id),
                        "body": stored.body.decode("utf-8", errors="replace"),
                        "bytes": len(stored.body),
                        "stored_at": stored.stored_at,
                    }
                )
            case ["faults"] if method == "GET":
                return coder_json({"faults": [asdict(f) for f in self.faults]})
            case ["faults"] if method == "POST":
                return self._dev_add_faults(request.body)
            case ["faults"] if method == "DELETE":
                self.faults.clear()
                return coder_json({"faults": []})
        return coder_error(404, ROUTE_NOT_FOUND, "Dev routes: see devkit/standins/coder.py.")

    def _dev_set_status(self, raw_id: str, body: bytes) -> Response:
        task_id = parse_go_uuid(raw_id)
        if task_id is None:
            return coder_error(400, "Invalid task ID format.", _uuid_problem(raw_id))
        try:
            status = json.loads(body)["status"]
            if not isinstance(status, str):
                raise TypeError  # noqa: TRY301 - one answer for every malformed body
        except (ValueError, KeyError, TypeError):
            return coder_error(400, 'The body must be {"status": "..."}.')
        if status not in TASK_STATUSES:
            return coder_error(
                400,
                "Invalid task status.",
                f"{go_quote(status)} is not one of {', '.join(TASK_STATUSES)}",
            )
        if not self.store.set_task_status(task_id, status):
            return coder_error(404, NOT_FOUND)
        task = self.store.task(task_id)
        assert task is not None  # noqa: S101 - it was just updated
        return coder_json(self.task_view(task))

    def _dev_add_faults(self, body: bytes) -> Response:
        try:
            payload = json.loads(body)
            items = payload["faults"] if isinstance(payload, dict) else payload
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise TypeError("a list of fault objects")  # noqa: TRY301
            added = [_fault_from_json(item) for item in items]
        except (ValueError, KeyError, TypeError) as exc:
            return coder_error(400, "Invalid fault list.", str(exc))
        self.faults += added
        return coder_json({"faults": [asdict(f) for f in self.faults]})


def shown_state(wire: str) -> str:
    """The state word the user sees: the wire's `failure` is shown as `failed`."""
    return "failed" if wire == "failure" else wire


def _status_view(row: StatusRow) -> dict[str, Any]:
    return {**row, "shown_as": shown_state(row["state"])}


def _token_refusal(check: TokenCheck) -> Response | None:
    if check == "missing":
        return coder_error(401, 'Cookie "coder_session_token" must be provided.')
    if check == "malformed":
        return coder_error(
            401, "Workspace agent token invalid.", "An agent token must be a valid UUIDv4."
        )
    if check == "mismatched":
        return coder_error(
            401,
            "Workspace agent not authorized.",
            "The agent cannot authenticate until the workspace provision job has been completed."
            " If the job is no longer running, this agent is invalid.",
        )
    return None


def _fault_answer(fault: Fault) -> Response:
    headers = [] if fault.retry_after is None else [("retry-after", str(fault.retry_after))]
    if fault.status == 204:
        return Response(status=204, headers=headers)
    return coder_error(
        fault.status or 503,
        "Injected fault.",
        f"A /dev/faults entry answered {fault.status} ({fault.times} more to come).",
        headers=headers,
    )


def _fault_from_json(item: dict[str, Any]) -> Fault:
    unknown = set(item) - {"route", "status", "retry_after", "delay", "times"}
    if unknown:
        raise ValueError(f"unknown fault keys: {', '.join(sorted(unknown))}")
    route, status = item.get("route"), item.get("status", 503)
    times, retry_after, delay = item.get("times", 1), item.get("retry_after"), item.get("delay", 0)
    if not isinstance(route, str):
        raise TypeError("route must be a string")
    if status is not None and (not isinstance(status, int) or isinstance(status, bool)):
        raise TypeError("status must be an integer or null")
    if not isinstance(times, int) or isinstance(times, bool):
        raise TypeError("times must be an integer")
    if retry_after is not None and (
        not isinstance(retry_after, int) or isinstance(retry_after, bool)
    ):
        raise TypeError("retry_after must be whole seconds or null")
    if not isinstance(delay, (int, float)) or isinstance(delay, bool):
        raise TypeError("delay must be a number of seconds")
    return Fault(route, status, times, retry_after, float(delay))


def _redacted_query(query: str, token: str) -> str:
    """The query string with anything that looks like (or is) a token blanked out."""
    pairs = parse_qsl(query, keep_blank_values=True)
    if token not in query and not any(_secretish(k, v, token) for k, v in pairs):
        return query
    kept = [(k, "[REDACTED]" if _secretish(k, v, token) else v) for k, v in pairs]
    return urlencode(kept).replace(token, "[REDACTED]")


def _secretish(key: str, value: str, token: str) -> bool:
    return "token" in key.lower() or token in value


# -- running it -----------------------------------------------------------------------------------


async def run_coder_standin(
    standin: CoderStandIn,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `standin` on host:port until cancelled; reports the bound port through task_status."""
    await serve(standin.handle, host=host, port=port, task_status=task_status)


def expected_token(token_file: Path | None, environ: Mapping[str, str]) -> str:
    """The token the agent must present: from `token_file`, else `CODER_AGENT_TOKEN`.

    Raises ValueError naming where it looked when neither gives one.
    """
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"--token-file {token_file}: {exc.strerror}") from None
        if not token:
            raise ValueError(f"--token-file {token_file}: the file is empty")
        return token
    token = environ.get("CODER_AGENT_TOKEN", "").strip()
    if not token:
        raise ValueError("no expected agent token: pass --token-file or set CODER_AGENT_TOKEN")
    return token


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coder-task-agent-dev coder",
        description=(
            "A local Coder stand-in: the two agent endpoints, the task read side, a task page "
            "and /dev/ endpoints. The expected agent token is read from --token-file or "
            "CODER_AGENT_TOKEN (never from the command line). Stops on SIGTERM or SIGINT."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=3000, help="listen port; 0 picks a free one")
    parser.add_argument("--port-file", type=Path, help="write the bound port here, atomically")
    parser.add_argument("--db", type=Path, help="SQLite file (default: one in a new temp dir)")
    parser.add_argument("--task-id", default=DEMO_TASK_ID, help="the task's UUID")
    parser.add_argument("--task-name", default="demo-task")
    parser.add_argument(
        "--task-status", default="active", choices=TASK_STATUSES, help="initial status"
    )
    parser.add_argument("--user", default="demo", help="the task owner's user name")
    parser.add_argument(
        "--app-slug",
        action="append",
        dest="app_slugs",
        metavar="SLUG",
        help='an app slug that may report status (repeatable; default "agent")',
    )
    parser.add_argument("--agentapi-url", default="http://localhost:3284")
    parser.add_argument("--token-file", type=Path, help="a file holding the expected agent token")
    parser.add_argument("--rate-limit", type=int, default=RATE_LIMIT, help="requests a minute")
    parser.add_argument(
        "--no-tasks",
        action="store_true",
        help="behave like a server without Coder Tasks: the snapshot route answers 404",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """`coder-task-agent-dev coder`: serve until SIGTERM/SIGINT, then exit 0 (2: bad usage)."""
    args = _parser().parse_args(argv)
    try:
        token = expected_token(args.token_file, os.environ)
        if parse_go_uuid(args.task_id) is None:
            raise ValueError(f"--task-id {args.task_id!r} is not a UUID")  # noqa: TRY301
    except ValueError as exc:
        print(f"coder-task-agent-dev coder: {exc}", file=sys.stderr)
        return 2
    task = Task(
        args.task_id,
        args.user,
        args.task_name,
        args.task_status,
        tuple(args.app_slugs or ["agent"]),
        args.agentapi_url,
    )
    from agent.logconfig import configure  # noqa: PLC0415 - only the CLI configures logging
    from agent.settings import Secret  # noqa: PLC0415

    configure("info", "auto", secrets=[Secret(token)])
    db = args.db or Path(tempfile.mkdtemp(prefix="coder-standin-")) / "coder.db"
    store = Store(db)
    try:
        standin = CoderStandIn(
            store, token, [task], rate_limit=args.rate_limit, tasks_enabled=not args.no_tasks
        )
        serving = partial(
            _serve_until_signal, standin, host=args.host, port=args.port, port_file=args.port_file
        )
        anyio.run(partial(serving, page=f"/tasks/{task.owner}/{task.id}", db=db))
    finally:
        store.close()
    return 0


async def _serve_until_signal(
    standin: CoderStandIn, *, host: str, port: int, port_file: Path | None, page: str, db: Path
) -> None:
    # The receiver is open before the port is announced, so an early SIGTERM still stops cleanly.
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with anyio.create_task_group() as group:
            bound = await group.start(partial(run_coder_standin, standin, host=host, port=port))
            if port_file is not None:
                _write_port_file(port_file, bound)
            base = f"http://{host}:{bound}"
            log.info(
                "coder_standin_listening",
                url=base,
                page=base + page,
                db=str(db),
            )
            async for signum in signals:
                log.info("coder_standin_stopping", signal=signal.Signals(signum).name)
                group.cancel_scope.cancel()
                break


def _write_port_file(path: Path, port: int) -> None:
    """Write the port atomically, so a reader never sees half a number."""
    partial_path = path.with_name(path.name + ".partial")
    partial_path.write_text(f"{port}\n", encoding="ascii")
    os.replace(partial_path, path)
