"""The Coder stand-in as one object: the agent side, the read side and the dev endpoints over one
store, and serving it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote

import anyio
import anyio.abc
import httpx

from standins.coder.agent_side import RATE_LIMIT, RATE_WINDOW, AgentSide, RequestRecord
from standins.coder.dev import DevEndpoints
from standins.coder.faults import Fault
from standins.coder.gowire import ROUTE_NOT_FOUND, coder_error
from standins.coder.read_side import ReadSide
from standins.coder.store import Store, Task
from standins.http import Request, Response, serve

APP_STATUS_PATH = "/api/v2/workspaceagents/me/app-status"
_SNAPSHOT_PATH = re.compile(r"/api/v2/workspaceagents/me/tasks/([^/]*)/log-snapshot")
_TASK_PATH = re.compile(r"/api/v2/tasks/([^/]+)/([^/]+?)(/logs)?")
_PAGE_PATH = re.compile(r"/tasks/([^/]+)/([^/]+)")


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
        self.store = store
        self.agent = AgentSide(
            store,
            expected_token,
            rate_limit=rate_limit,
            rate_window=rate_window,
            tasks_enabled=tasks_enabled,
            clock=clock,
        )
        self.read = ReadSide(store, live_timeout=live_timeout, http=http)
        self.dev = DevEndpoints(store, self.agent, self.read)
        for task in tasks:
            store.ensure_task(task)

    def __repr__(self) -> str:
        return f"CoderStandIn(tasks={len(self.store.tasks())}, tasks_enabled={self.tasks_enabled})"

    @property
    def faults(self) -> list[Fault]:
        return self.agent.faults

    @faults.setter
    def faults(self, faults: list[Fault]) -> None:
        self.agent.faults = faults

    @property
    def requests(self) -> list[RequestRecord]:
        return self.agent.requests

    @property
    def tasks_enabled(self) -> bool:
        return self.agent.tasks_enabled

    @tasks_enabled.setter
    def tasks_enabled(self, enabled: bool) -> None:
        self.agent.tasks_enabled = enabled

    @property
    def rate_limit(self) -> int:
        return self.agent.rate_limit

    @rate_limit.setter
    def rate_limit(self, limit: int) -> None:
        self.agent.rate_limit = limit

    @property
    def rate_window(self) -> float:
        return self.agent.rate_window

    def task_view(self, task: Task) -> dict[str, Any]:
        """The task as `GET /api/v2/tasks/{user}/{task}` shows it (wire `failure` as `failed`)."""
        return self.read.task_view(task)

    async def handle(self, request: Request) -> Response:
        """Answer one request (the handler for standins.http.serve)."""
        path = request.path
        if path == APP_STATUS_PATH:
            return await self.agent.handle(request, "app-status", None)
        if match := _SNAPSHOT_PATH.fullmatch(path):
            return await self.agent.handle(request, "log-snapshot", match.group(1))
        if match := _TASK_PATH.fullmatch(path):
            if request.method != "GET":
                return coder_error(405, "Method not allowed.")
            user, task = unquote(match.group(1)), unquote(match.group(2))
            return await self.read.task(user, task, logs=bool(match.group(3)))
        if path.startswith("/api/"):
            return self.agent.unknown_route(request)
        if match := _PAGE_PATH.fullmatch(path):
            return self.read.page(unquote(match.group(1)), unquote(match.group(2)), request.method)
        if path == "/" and request.method == "GET":
            return self.read.index()
        if path.startswith("/dev/"):
            return self.dev.handle(request)
        return coder_error(404, ROUTE_NOT_FOUND)


async def run_coder_standin(
    standin: CoderStandIn,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `standin` on host:port until cancelled; reports the bound port through task_status."""
    await serve(standin.handle, host=host, port=port, task_status=task_status)
