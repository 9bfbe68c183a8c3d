"""The two endpoints a workspace's agent calls, with coderd's checks in coderd's order.

    PATCH /api/v2/workspaceagents/me/app-status
    POST  /api/v2/workspaceagents/me/tasks/{task}/log-snapshot?format=agentapi

Auth is the `Coder-Session-Token` header; both endpoints are rate limited per endpoint (512
requests a minute by default). Every request is recorded for `/dev/requests`, never with the
token: only whether the header matched, and a token sent in the query string is redacted.
"""

from __future__ import annotations

import hmac
import math
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Literal, TypedDict
from urllib.parse import parse_qsl, urlencode

import anyio
import structlog

from standins.coder.faults import Fault, fault_answer, take_fault
from standins.coder.gowire import (
    DECODE_FAILED,
    NOT_FOUND,
    PATCH_APP_STATUS,
    ROUTE_NOT_FOUND,
    WireError,
    coder_error,
    coder_json,
    decode_snapshot,
    go_decode,
    go_duration,
    go_quote,
    go_struct,
    parse_go_uuid,
    uuid_problem,
)
from standins.coder.store import Store, now_rfc3339
from standins.http import Request, Response

TOKEN_HEADER = "coder-session-token"  # noqa: S105 - a header name, not a secret
# An app-status message longer than this many UTF-8 bytes is refused (exactly 160 is accepted).
MAX_STATUS_MESSAGE_BYTES = 160
# coderd applies httpmw.RateLimit(512, time.Minute), keyed by client IP and endpoint.
RATE_LIMIT = 512
RATE_WINDOW = 60.0
WIRE_STATES = ("working", "idle", "complete", "failure")

log = structlog.get_logger("standins.coder")

Route = Literal["app-status", "log-snapshot"]
TokenCheck = Literal["matched", "missing", "malformed", "mismatched"]


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


class AgentSide:
    """The agent endpoints' handler and what they keep: `faults`, `requests`, the rate limit.

    `expected_token` is the agent token of this workspace: when it is a UUID, as Coder's are, a
    presented token that is not a UUID is refused as malformed. `tasks_enabled=False` behaves
    like a server without Coder Tasks (the snapshot route does not exist). `clock` (monotonic
    seconds) drives the rate limit.
    """

    def __init__(
        self,
        store: Store,
        expected_token: str,
        *,
        rate_limit: int,
        rate_window: float,
        tasks_enabled: bool,
        clock: Callable[[], float],
    ) -> None:
        if not expected_token:
            raise ValueError("the expected agent token is empty")
        self.store = store
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.tasks_enabled = tasks_enabled
        self.faults: list[Fault] = []
        self.requests: list[RequestRecord] = []
        self._token = expected_token.encode()
        self._uuid_token = parse_go_uuid(expected_token)
        self._clock = clock
        self._hits: dict[str, deque[float]] = defaultdict(deque)

    async def handle(self, request: Request, route: Route, task: str | None) -> Response:
        """Answer an agent route (`task`: the raw {task} segment of the snapshot route)."""
        received = now_rfc3339()
        check = self._check_token(request)
        response = await self._answer(request, route, task, check)
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

    def unknown_route(self, request: Request) -> Response:
        """Any other /api/ path: Coder's 404, recorded like the agent routes."""
        response = coder_error(404, ROUTE_NOT_FOUND)
        self._record(request, "", self._check_token(request), response, now_rfc3339())
        return response

    async def _answer(
        self, request: Request, route: Route, task: str | None, check: TokenCheck
    ) -> Response:
        if route == "log-snapshot" and not self.tasks_enabled:
            return coder_error(404, ROUTE_NOT_FOUND)
        if request.method != ("PATCH" if route == "app-status" else "POST"):
            return coder_error(405, "Method not allowed.")
        fault = take_fault(self.faults, route)
        if fault is not None:
            if fault.delay:
                await anyio.sleep(fault.delay)
            if fault.status is not None:
                return fault_answer(fault)
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
                f" in {go_duration(self.rate_window)}.",
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
            (t for t in self.store.tasks() if not t.other_workspace and t.has_app(slug)), None
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
            return coder_error(400, "Invalid task ID format.", uuid_problem(raw_task))
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


def _redacted_query(query: str, token: str) -> str:
    """The query string with anything that looks like (or is) a token blanked out."""
    pairs = parse_qsl(query, keep_blank_values=True)
    if token not in query and not any(_secretish(k, v, token) for k, v in pairs):
        return query
    kept = [(k, "[REDACTED]" if _secretish(k, v, token) else v) for k, v in pairs]
    return urlencode(kept).replace(token, "[REDACTED]")


def _secretish(key: str, value: str, token: str) -> bool:
    return "token" in key.lower() or token in value
