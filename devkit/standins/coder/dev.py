"""The stand-in's own `/dev/` endpoints, NOT part of Coder: how the demo and the tests (and you)
drive and inspect it.

    GET    /dev/tasks                   every task, as the read side shows it
    POST   /dev/tasks/{task}/status     {"status": "paused"}: what Coder does once a workspace stops
                                        (a paused task's logs come from the stored snapshot)
    GET    /dev/requests                what reached /api/v2/ (not the read side): method, path,
                                        query, whether the token matched, body size, answer, time
    DELETE /dev/requests                forget them
    GET    /dev/app-statuses[?task=ID]  the app-status history, oldest first
    GET    /dev/snapshot/{task}         the stored snapshot body, byte for byte, and `stored_at`
    GET|POST|DELETE /dev/faults         scripted failures: a list of {"route": "app-status" |
                                        "log-snapshot", "status", "retry_after", "delay", "times"},
                                        consumed in order (503 twice, then normal service)
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from standins.coder.agent_side import AgentSide
from standins.coder.faults import fault_from_json
from standins.coder.gowire import (
    NOT_FOUND,
    ROUTE_NOT_FOUND,
    coder_error,
    coder_json,
    go_quote,
    parse_go_uuid,
    uuid_problem,
)
from standins.coder.read_side import ReadSide, shown_state
from standins.coder.store import TASK_STATUSES, StatusRow, Store
from standins.http import Request, Response

# One line per endpoint, for `--help` and the 404 of an unknown dev route.
DEV_ROUTES = (
    "GET /dev/tasks",
    "POST /dev/tasks/{task}/status",
    "GET|DELETE /dev/requests",
    "GET /dev/app-statuses[?task=ID]",
    "GET /dev/snapshot/{task}",
    "GET|POST|DELETE /dev/faults",
)


class DevEndpoints:
    """The `/dev/` handler over the store, the agent side's records and the read side's views."""

    def __init__(self, store: Store, agent: AgentSide, read: ReadSide) -> None:
        self.store = store
        self.agent = agent
        self.read = read

    def handle(self, request: Request) -> Response:
        """Answer one `/dev/...` request."""
        method, parts = request.method, request.path.split("/")[2:]
        match parts:
            case ["tasks"] if method == "GET":
                views = [self.read.task_view(t) for t in self.store.tasks()]
                return coder_json({"tasks": views})
            case ["tasks", raw_id, "status"] if method == "POST":
                return self._set_status(raw_id, request.body)
            case ["requests"] if method == "GET":
                return coder_json({"requests": self.agent.requests})
            case ["requests"] if method == "DELETE":
                self.agent.requests.clear()
                return Response(status=204)
            case ["app-statuses"] if method == "GET":
                wanted = request.query.get("task", [""])[0]
                task_id = parse_go_uuid(wanted) if wanted else None
                if wanted and task_id is None:
                    return coder_error(400, "Invalid task ID format.", uuid_problem(wanted))
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
                return coder_json({"faults": [asdict(f) for f in self.agent.faults]})
            case ["faults"] if method == "POST":
                return self._add_faults(request.body)
            case ["faults"] if method == "DELETE":
                self.agent.faults.clear()
                return coder_json({"faults": []})
        return coder_error(404, ROUTE_NOT_FOUND, "Dev routes: " + "; ".join(DEV_ROUTES) + ".")

    def _set_status(self, raw_id: str, body: bytes) -> Response:
        task_id = parse_go_uuid(raw_id)
        if task_id is None:
            return coder_error(400, "Invalid task ID format.", uuid_problem(raw_id))
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
        return coder_json(self.read.task_view(task))

    def _add_faults(self, body: bytes) -> Response:
        try:
            payload = json.loads(body)
            items = payload["faults"] if isinstance(payload, dict) else payload
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise TypeError("a list of fault objects")  # noqa: TRY301
            added = [fault_from_json(item) for item in items]
        except (ValueError, KeyError, TypeError) as exc:
            return coder_error(400, "Invalid fault list.", str(exc))
        self.agent.faults += added
        return coder_json({"faults": [asdict(f) for f in self.agent.faults]})


def _status_view(row: StatusRow) -> dict[str, Any]:
    return {**row, "shown_as": shown_state(row["state"])}
