"""Typed client for the two agent-side Coder endpoints: app status and the task log snapshot.

Wire facts (see shared/contracts.md): the state the user reads as "failed" is `failure` on the
wire; a status message over 160 UTF-8 bytes is refused with 400, so it is shortened here; a
success is 200 (app status) or 204 (snapshot); 404 on the snapshot route means the server has no
Coder Tasks; other 4xx are rejections, never retried; transport errors, 5xx and 429 are worth
retrying (`agent.retry.deliver` does that inside the caller's deadline).

Redirects are never followed: the token must not travel to another origin. Every call has one
overall deadline (the http client's timeout, for the whole call, not per read) and reads at most
64 KiB of any answer: the agent-side routes answer `null` or nothing, so more is garbage.
"""

from __future__ import annotations

import httpx

from agent.clock import SYSTEM_CLOCK, Clock
from agent.errors import Rejected
from agent.http_async import MAX_ERROR_BODY, overall_deadline, request, status_error, url_of
from agent.models import AppStatus, shorten
from agent.wire import SNAPSHOT_QUERY, TOKEN_HEADER, snapshot_route

__all__ = ["SERVICE", "TOKEN_HEADER", "CoderClient"]

SERVICE = "Coder"


class CoderClient:
    """Calls the agent-side Coder API through an injected `httpx.AsyncClient`.

    The http client carries the base URL, timeout and the token header (`agent.http_async`).
    Each method makes ONE attempt and raises from the `agent.errors` tree; `deliver` retries.
    """

    client = "httpx"  # how `snapshot_started` names this path

    def __init__(
        self,
        http: httpx.AsyncClient,
        app_slug: str | None = None,
        deadline: float | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._http = http
        self._clock = clock
        self._app_slug = app_slug
        # Seconds one whole call may take; default: the client's timeout.
        self._deadline = overall_deadline(http, deadline)

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
        await self._send("PATCH", "/api/v2/workspaceagents/me/app-status", "PATCH app-status", body)

    async def upload_log_snapshot(self, task_id: str, body: bytes) -> None:
        """POST the snapshot body. Raises Unsupported (404), Rejected or TryAgain."""
        await self._send(
            "POST",
            snapshot_route(task_id),
            "POST log-snapshot",
            body,
            params=SNAPSHOT_QUERY,
            not_found_unsupported=True,
        )

    async def _send(
        self,
        method: str,
        path: str,
        what: str,
        body: bytes | dict[str, str],
        *,
        params: dict[str, str] | None = None,
        not_found_unsupported: bool = False,
    ) -> None:
        if isinstance(body, bytes):
            content: dict[str, object] = {
                "content": body,
                "headers": {"content-type": "application/json"},
            }
        else:
            content = {"json": body}
        response = await request(
            self._http,
            SERVICE,
            method,
            path,
            deadline=self._deadline,
            max_body=MAX_ERROR_BODY,
            what=f"{what} {url_of(self._http, path)}",
            # The answer to a success is `null` or empty: past the cap it is garbage, ignored.
            whole_body=False,
            clock=self._clock,
            params=params,
            **content,
        )
        if 200 <= response.status_code < 300:
            return
        raise status_error(SERVICE, what, response, not_found_unsupported=not_found_unsupported)
