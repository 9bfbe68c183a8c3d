"""What a user sees of a task: the task, its logs (live or from the snapshot), and a page.

    GET /api/v2/tasks/{user}/{task}         the task; `current_state` from its latest app status
    GET /api/v2/tasks/{user}/{task}/logs    live from AgentAPI (`active`) or the stored snapshot
    GET /tasks/{user}/{task}                a page that refreshes itself every second

Real Coder wants a user session for these; this localhost dev tool serves them to anyone who can
reach it, so keep it on loopback (the default). Logs as coderd serves them: role `user` ->
`input`, `agent` -> `output`; `paused`, `pending` and `initializing` tasks read the stored
snapshot, `error` and `unknown` refuse (409).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from importlib.resources import files
from typing import Any

import httpx

from standins.coder.gowire import (
    GET_MESSAGES_RESPONSE,
    LOGS_CONFLICT,
    NOT_FOUND,
    WireError,
    coder_error,
    coder_json,
    decode_snapshot,
    go_decode,
    go_quote,
    go_struct,
    parse_go_uuid,
)
from standins.coder.store import Store, Task
from standins.http import Response, text_response

SNAPSHOT_STATUSES = ("paused", "pending", "initializing")


def shown_state(wire: str) -> str:
    """The state word the user sees: the wire's `failure` is shown as `failed`."""
    return "failed" if wire == "failure" else wire


def log_entry(message: Mapping[str, Any]) -> dict[str, Any]:
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


class ReadSide:
    """The read routes; `http` reaches AgentAPI for live logs (a client per call otherwise)."""

    def __init__(
        self, store: Store, *, live_timeout: float, http: httpx.AsyncClient | None
    ) -> None:
        self.store = store
        self.live_timeout = live_timeout
        self._http = http

    def find_task(self, user: str, key: str) -> Task | None:
        """The task `key` (its UUID or name) of `user` (or `me`)."""
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

    async def task(self, user: str, key: str, *, logs: bool) -> Response:
        """`GET /api/v2/tasks/{user}/{task}[/logs]`."""
        task = self.find_task(user, key)
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
            entries = [log_entry(m) for m in decoded["messages"] or []]
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
            entries = [log_entry(m) for m in messages]
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

    def page(self, user: str, key: str, method: str) -> Response:
        """`GET /tasks/{user}/{task}`: the task page, under a strict CSP with a fresh nonce."""
        if method != "GET":
            return coder_error(405, "Method not allowed.")
        if self.find_task(user, key) is None:
            return text_response("task not found\n", status=404)
        nonce = secrets.token_urlsafe(16)
        page = files("standins.coder").joinpath("page.html").read_text(encoding="utf-8")
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

    def index(self) -> Response:
        """`GET /`: the task pages there are, and where the dev endpoints are."""
        lines = ["Coder stand-in (a local development tool, not Coder). Task pages:"]
        lines += [f"  /tasks/{t.owner}/{t.id}  ({t.name}, {t.status})" for t in self.store.tasks()]
        lines += ["", "Dev endpoints: /dev/tasks, /dev/app-statuses, /dev/requests, ..."]
        lines += ["(`coder-task-agent-dev coder --help` lists them)"]
        return text_response("\n".join(lines) + "\n")
