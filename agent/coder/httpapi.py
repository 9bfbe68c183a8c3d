"""Typed client for the two agent-side Coder endpoints: app status and the task log snapshot.

Wire facts (shared/contracts.md): a status message over 160 UTF-8 bytes is refused with 400, so it
is shortened here; 404 on the snapshot route means a server without Coder Tasks. Redirects are
never followed (the token stays at its origin); each call has one overall deadline and reads at
most 64 KiB of any answer (these routes answer `null` or nothing: more is garbage, ignored).
"""

from __future__ import annotations

from typing import Any

import httpx

from agent.clock import SYSTEM_CLOCK, Clock
from agent.errors import Rejected
from agent.http_async import overall_deadline, request, status_error, url_of
from agent.models import AppStatus, shorten
from agent.wire import MAX_ERROR_BODY, SNAPSHOT_QUERY, snapshot_route

SERVICE = "Coder"


class CoderClient:
    """Calls the agent-side Coder API through an `httpx.AsyncClient` that carries the base URL,
    timeout and token (`agent.http_async.coder_http`). ONE attempt per call; `deliver` retries."""

    client = "httpx"  # how `snapshot_started` names this path

    def __init__(
        self, http: httpx.AsyncClient, app_slug: str | None = None, *, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self._http = http
        self._clock = clock
        self._app_slug = app_slug
        self._deadline = overall_deadline(http)

    async def patch_app_status(self, status: AppStatus) -> None:
        """PATCH the task's app status. Raises Rejected (400/401) or TryAgain."""
        if self._app_slug is None:
            raise Rejected(SERVICE, "PATCH app-status", "no app slug configured")
        body = {
            "app_slug": self._app_slug,
            "state": status.state.wire,
            "message": shorten(status.message),
            "uri": status.uri,
        }
        path = "/api/v2/workspaceagents/me/app-status"
        await self._send("PATCH", path, "PATCH app-status", json=body)

    async def upload_log_snapshot(self, task_id: str, body: bytes) -> None:
        """POST the snapshot body. Raises Unsupported (404), Rejected or TryAgain."""
        await self._send(
            "POST",
            snapshot_route(task_id),
            "POST log-snapshot",
            not_found_unsupported=True,
            content=body,
            headers={"content-type": "application/json"},
            params=SNAPSHOT_QUERY,
        )

    async def _send(
        self, method: str, path: str, what: str, *, not_found_unsupported: bool = False, **call: Any
    ) -> None:
        response = await request(
            self._http,
            SERVICE,
            method,
            path,
            deadline=self._deadline,
            max_body=MAX_ERROR_BODY,
            what=f"{what} {url_of(self._http, path)}",
            whole_body=False,
            clock=self._clock,
            **call,
        )
        if not 200 <= response.status_code < 300:
            raise status_error(SERVICE, what, response, not_found_unsupported=not_found_unsupported)
