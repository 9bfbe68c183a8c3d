"""A Coder server stand-in: `python -m agent dev-server`.

The two agent-side endpoints with exactly the checks, status codes and messages of
shared/contracts.md section 2, the task read side (`GET /api/v2/tasks/{user}/{task}` and its
`/logs`), a small self-refreshing task page, and dev-only endpoints under `/dev/` (not part of
Coder) that the demo and the tests use to drive and inspect it. State lives in SQLite, so it
survives a restart.

The read endpoints need a user session in real Coder; this local tool serves them without one.
The expected agent token comes from `--token-file` or `CODER_AGENT_TOKEN`, never from argv, and
is never stored or echoed: `/dev/requests` records only whether the header matched.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import re
import signal
import sys
import tempfile
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx

from agent.standins.agentapi import write_port_file
from agent.standins.http import Request, Response, json_response, serve, text_response
from agent.standins.store import Store, Task, now_rfc3339

TOKEN_HEADER = "coder-session-token"  # noqa: S105 - a header name
DEMO_TASK_ID = "8b2e7c1a-5f3d-4e6b-9a0c-1d2e3f4a5b6c"
# The snapshot body is read through this limit; past it the server answers 400, not 413.
SNAPSHOT_BODY_LIMIT = 65536
MAX_STATUS_MESSAGE_BYTES = 160
WIRE_STATES = ("working", "idle", "complete", "failure")
TASK_STATES = ("active", "paused", "pending", "initializing", "error", "unknown")
SNAPSHOT_STATES = ("paused", "pending", "initializing")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")
_STATUS_ROUTE = "/api/v2/workspaceagents/me/app-status"
_SNAPSHOT_ROUTE = re.compile(r"^/api/v2/workspaceagents/me/tasks/([^/]+)/log-snapshot$")
_TASK_ROUTE = re.compile(r"^/api/v2/tasks/([^/]+)/([^/]+)(/logs)?$")
_PAGE_ROUTE = re.compile(r"^/tasks/([^/]+)/([^/]+)$")


def coder_error(status: int, message: str, detail: str = "") -> Response:
    """Coder's error body: {"message", "detail"}."""
    payload: dict[str, Any] = {"message": message}
    if detail:
        payload["detail"] = detail
    return json_response(payload, status=status)


@dataclass
class Fault:
    """A scripted misbehaviour for one route: answer `status` (after `delay`) `times` times."""

    route: str
    status: int
    times: int = 1
    retry_after: float | None = None
    delay: float = 0.0


@dataclass
class CoderStandIn:
    """The stand-in's configuration, state and HTTP handler."""

    store: Store
    expected_token: str
    tasks: list[Task] = field(default_factory=list)
    rate_limit: int = 512
    tasks_enabled: bool = True
    live_timeout: float = 5.0

    def __post_init__(self) -> None:
        for task in self.tasks:
            self.store.ensure_task(task)
        self.requests: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self._hits: dict[tuple[str, str], deque[float]] = defaultdict(deque)

    # -- HTTP -------------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """The HTTP handler."""
        path = request.path
        if path == _STATUS_ROUTE or _SNAPSHOT_ROUTE.match(path):
            route = "app-status" if path == _STATUS_ROUTE else "log-snapshot"
            response = await self._agent_endpoint(request, route)
            self.requests.append(
                {
                    "method": request.method,
                    "path": path,
                    "query": request.target.partition("?")[2],
                    "token_ok": self._token_ok(request),
                    "body_bytes": len(request.body),
                    "status": response.status,
                    "time": now_rfc3339(),
                }
            )
            return response
        if request.method == "GET" and (match := _TASK_ROUTE.match(path)):
            return await self._task_read(match.group(2), logs=bool(match.group(3)))
        if request.method == "GET" and (match := _PAGE_ROUTE.match(path)):
            page = files("agent.standins").joinpath("page.html").read_text(encoding="utf-8")
            return text_response(page, content_type="text/html")
        if path.startswith("/dev/"):
            return self._dev(request)
        return coder_error(404, "Route not found.")

    def _token_ok(self, request: Request) -> bool:
        given = request.headers.get(TOKEN_HEADER, "")
        return bool(given) and hmac.compare_digest(given.encode(), self.expected_token.encode())

    def _rate_limited(self, request: Request, route: str) -> bool:
        window = self._hits[(request.headers.get("x-forwarded-for", "127.0.0.1"), route)]
        now = time.monotonic()
        while window and window[0] < now - 60:
            window.popleft()
        window.append(now)
        return len(window) > self.rate_limit

    async def _agent_endpoint(self, request: Request, route: str) -> Response:
        if self._rate_limited(request, route):
            return coder_error(
                429,
                "You've been rate limited for sending more than "
                f"{self.rate_limit} requests in 1m0s.",
            )
        for fault in self.faults:
            if fault.route == route and fault.times > 0:
                fault.times -= 1
                if fault.delay:
                    await anyio.sleep(fault.delay)
                response = coder_error(fault.status, f"injected fault {fault.status}")
                if fault.retry_after is not None:
                    response.headers.append(("retry-after", f"{fault.retry_after:g}"))
                self.faults = [f for f in self.faults if f.times > 0]
                return response
        if not request.headers.get(TOKEN_HEADER):
            return coder_error(
                401, "Agent token not provided.", "Set the Coder-Session-Token header."
            )
        if not self._token_ok(request):
            return coder_error(401, "Agent token is invalid.")
        if route == "app-status":
            if request.method != "PATCH":
                return coder_error(405, "Method not allowed.")
            return self._app_status(request)
        if request.method != "POST":
            return coder_error(405, "Method not allowed.")
        match = _SNAPSHOT_ROUTE.match(request.path)
        assert match is not None  # noqa: S101 - the caller matched the route
        return self._log_snapshot(request, match.group(1))

    def _app_status(self, request: Request) -> Response:
        try:
            body = json.loads(request.body)
        except ValueError:
            return coder_error(400, "Request body must be valid JSON.")
        if not isinstance(body, dict):
            return coder_error(400, "Request body must be valid JSON.")
        slug, state = body.get("app_slug", ""), body.get("state", "")
        message, uri = body.get("message", ""), body.get("uri", "")
        if not all(isinstance(v, str) for v in (slug, state, message, uri)):
            return coder_error(400, "Invalid request body.")
        if len(message.encode("utf-8", errors="surrogatepass")) > MAX_STATUS_MESSAGE_BYTES:
            return coder_error(
                400,
                "Message is too long.",
                f"Message must be less than {MAX_STATUS_MESSAGE_BYTES} characters.",
            )
        task = next((t for t in self.store.tasks() if slug in t.app_slugs), None)
        if task is None:
            return coder_error(
                400, "Failed to find workspace app.", f'No app found with slug "{slug}"'
            )
        if state not in WIRE_STATES:
            return coder_error(400, "Invalid state provided.", f"invalid state provided: {state!r}")
        self.store.add_status(task.id, slug, state, message, uri)
        return json_response(None)

    def _log_snapshot(self, request: Request, task_id: str) -> Response:
        try:
            uuid.UUID(task_id)
        except ValueError:
            return coder_error(400, "Invalid task ID.", f"{task_id!r} is not a UUID")
        extra = [k for k in request.query if k != "format"]
        if extra:
            return coder_error(
                400,
                "Invalid query parameters.",
                f"unknown query parameters: {', '.join(sorted(extra))}",
            )
        if request.query.get("format") != ["agentapi"]:
            return coder_error(400, "Invalid query parameters.", 'format must be "agentapi"')
        task = self.store.task(task_id)
        if not self.tasks_enabled or task is None:
            return coder_error(404, "Resource not found or you do not have access to this resource")
        if len(request.body) > SNAPSHOT_BODY_LIMIT:
            return coder_error(
                400, "Failed to decode request payload.", "http: request body too large"
            )
        problem = _check_snapshot(request.body)
        if problem:
            return coder_error(400, "Failed to decode request payload.", problem)
        self.store.put_snapshot(task_id, request.body)
        return Response(status=204)

    async def _task_read(self, task_id: str, *, logs: bool) -> Response:
        task = self.store.task(task_id)
        if task is None:
            return coder_error(404, "Resource not found or you do not have access to this resource")
        if not logs:
            return json_response(self.task_view(task))
        if task.status in ("error", "unknown"):
            return coder_error(409, "Cannot fetch logs for task in current state.")
        if task.status == "active":
            try:
                async with httpx.AsyncClient(timeout=self.live_timeout, trust_env=False) as http:
                    answer = await http.get(task.agentapi_url.rstrip("/") + "/messages")
                messages = answer.json()["messages"]
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                return coder_error(502, "Failed to fetch task logs from AgentAPI.", str(exc))
            return json_response({"logs": [_log_entry(m) for m in messages], "snapshot": False})
        stored = self.store.snapshot(task_id)
        if stored is None:
            return json_response({"logs": [], "snapshot": True})
        body, stored_at = stored
        messages = json.loads(body)["messages"]
        return json_response(
            {"logs": [_log_entry(m) for m in messages], "snapshot": True, "snapshot_at": stored_at}
        )

    def task_view(self, task: Task) -> dict[str, Any]:
        """The task as `GET /api/v2/tasks/{user}/{task}` shows it."""
        history = self.store.statuses(task.id)
        current = None
        if history:
            last = history[-1]
            current = {
                "state": "failed" if last["state"] == "failure" else last["state"],
                "message": last["message"],
                "uri": last["uri"],
                "timestamp": last["created_at"],
            }
        return {
            "id": task.id,
            "name": task.name,
            "owner_name": task.owner,
            "status": task.status,
            "current_state": current,
        }

    def _dev(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")
        method = request.method
        if method == "GET" and parts == ["dev", "requests"]:
            return json_response({"requests": self.requests})
        if method == "GET" and parts == ["dev", "app-statuses"]:
            task = request.query.get("task", [None])[0]
            rows = self.store.statuses(task)
            for row in rows:
                row["shown_as"] = "failed" if row["state"] == "failure" else row["state"]
            return json_response({"statuses": rows})
        if method == "GET" and len(parts) == 3 and parts[:2] == ["dev", "snapshot"]:
            stored = self.store.snapshot(parts[2])
            if stored is None:
                return coder_error(404, "No snapshot stored for this task.")
            return json_response(
                {"body": stored[0].decode("utf-8"), "stored_at": stored[1], "bytes": len(stored[0])}
            )
        if (
            method == "POST"
            and len(parts) == 4
            and parts[:2] == ["dev", "tasks"]
            and parts[3] == "status"
        ):
            try:
                status = request.json()["status"]
            except (ValueError, KeyError, TypeError):
                return coder_error(400, 'Body must be {"status": "..."}.')
            if status not in TASK_STATES or self.store.task(parts[2]) is None:
                return coder_error(400, f"Unknown task or status {status!r}.")
            self.store.set_task_status(parts[2], status)
            return json_response({"ok": True})
        if parts == ["dev", "faults"]:
            if method == "DELETE":
                self.faults.clear()
                return json_response({"ok": True})
            if method == "POST":
                try:
                    self.faults += [Fault(**f) for f in request.json()]
                except (ValueError, TypeError) as exc:
                    return coder_error(400, f"Bad fault list: {exc}")
                return json_response({"ok": True, "pending": len(self.faults)})
        return coder_error(404, "Route not found.")


def _log_entry(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": message["id"],
        "content": message["content"],
        "type": "input" if message["role"] == "user" else "output",
        "time": message["time"],
    }


def _check_snapshot(raw: bytes) -> str:
    """Why the body would not decode, or "" when it is acceptable."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        return f"invalid JSON: {exc}"
    if not isinstance(body, dict) or body.get("messages") is None:
        return "messages is required"
    if not isinstance(body["messages"], list):
        return "messages must be an array"
    for index, message in enumerate(body["messages"]):
        if not isinstance(message, dict):
            return f"messages[{index}] must be an object"
        if not isinstance(message.get("id"), int) or isinstance(message.get("id"), bool):
            return f"messages[{index}].id must be an integer"
        time_value = message.get("time")
        if not isinstance(time_value, str) or not _RFC3339.match(time_value):
            return f"messages[{index}].time must be RFC 3339"
        if not isinstance(message.get("content", ""), str):
            return f"messages[{index}].content must be a string"
    return ""


async def run_coder_standin(
    standin: CoderStandIn,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `standin` until cancelled; reports the bound port."""
    await serve(standin.handle, host=host, port=port, task_status=task_status)


def main(argv: list[str] | None = None) -> int:
    """`python -m agent dev-server`: serve until SIGTERM/SIGINT, then exit 0."""
    parser = argparse.ArgumentParser(
        prog="coder-task-agent dev-server",
        description="A local Coder stand-in (agent endpoints, task logs, a task page).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000, help="0 picks a free port")
    parser.add_argument("--port-file", type=Path, help="write the bound port here")
    parser.add_argument("--db", type=Path, help="SQLite file (default: a new temporary file)")
    parser.add_argument("--task-id", default=DEMO_TASK_ID)
    parser.add_argument("--task-name", default="demo-task")
    parser.add_argument("--user", default="demo")
    parser.add_argument("--app-slug", action="append", dest="app_slugs")
    parser.add_argument("--agentapi-url", default="http://localhost:3284")
    parser.add_argument(
        "--token-file", type=Path, help="the expected agent token (else $CODER_AGENT_TOKEN)"
    )
    parser.add_argument("--rate-limit", type=int, default=512)
    parser.add_argument(
        "--no-tasks",
        action="store_true",
        help="behave like a server without Coder Tasks (snapshot route 404)",
    )
    args = parser.parse_args(argv)
    token = (
        args.token_file.read_text().strip()
        if args.token_file
        else os.environ.get("CODER_AGENT_TOKEN", "").strip()
    )
    if not token:
        parser.error("no expected token: pass --token-file or set CODER_AGENT_TOKEN")
    try:
        uuid.UUID(args.task_id)
    except ValueError:
        parser.error(f"--task-id {args.task_id!r} is not a UUID")
    db = args.db or Path(tempfile.mkdtemp(prefix="coder-standin-")) / "coder.db"
    task = Task(
        args.task_id,
        args.user,
        args.task_name,
        "active",
        tuple(args.app_slugs or ["agent"]),
        args.agentapi_url,
    )
    standin = CoderStandIn(
        Store(db), token, [task], rate_limit=args.rate_limit, tasks_enabled=not args.no_tasks
    )

    async def run() -> None:
        async with anyio.create_task_group() as group:
            port = await group.start(
                lambda task_status: run_coder_standin(
                    standin, host=args.host, port=args.port, task_status=task_status
                )
            )
            print(
                f"Coder stand-in listening on http://{args.host}:{port} "
                f"(task page: /tasks/{args.user}/{args.task_id})",
                file=sys.stderr,
                flush=True,
            )
            if args.port_file:
                write_port_file(args.port_file, port)
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    group.cancel_scope.cancel()
                    return

    try:
        anyio.run(run)
    finally:
        standin.store.close()
    return 0
