"""Typed client for the two agent-side Coder endpoints: app status and the task log snapshot.

Wire facts (see shared/contracts.md): the state the user reads as "failed" is `failure` on the
wire; a status message over 160 UTF-8 bytes is refused with 400, so it is shortened here; a
success is 200 (app status) or 204 (snapshot); 404 on the snapshot route means the server has no
Coder Tasks; other 4xx are rejections, never retried; transport errors, 5xx and 429 are worth
retrying (`deliver` does that, with backoff and jitter, inside the caller's deadline).

Redirects are never followed: the token must not travel to another origin.
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypeVar
from uuid import UUID

import anyio
import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from agent.agentapi import problem_detail
from agent.errors import (
    RateLimited,
    Rejected,
    RemoteError,
    ServerError,
    TransportError,
    TryAgain,
    Unauthorized,
    Unsupported,
)

SERVICE = "Coder"
TOKEN_HEADER = "Coder-Session-Token"  # noqa: S105 - a header name, not a secret
# The server refuses a status message longer than this many UTF-8 bytes (exactly 160 is fine).
MAX_STATUS_MESSAGE_BYTES = 160
ELLIPSIS = "…"

T = TypeVar("T")


class AppState(enum.StrEnum):
    """A task's app state, in the words the user sees."""

    WORKING = "working"
    IDLE = "idle"
    COMPLETE = "complete"
    FAILED = "failed"

    @property
    def wire(self) -> str:
        """The word the server accepts: `failure` for FAILED (`failed` is a 400)."""
        return "failure" if self is AppState.FAILED else self.value


@dataclass(frozen=True)
class AppStatus:
    """One app-status report. Two reports are the same report when all three fields are."""

    state: AppState
    message: str = ""
    uri: str = ""


def shorten(text: str, limit: int = MAX_STATUS_MESSAGE_BYTES) -> str:
    """`text` cut to at most `limit` UTF-8 bytes, at a character boundary, ending in an ellipsis."""
    raw = text.encode("utf-8", errors="surrogatepass")
    if len(raw) <= limit:
        return text
    keep = limit - len(ELLIPSIS.encode())
    cut = raw[:keep]
    # Step back over continuation bytes so no character is split.
    while cut and (cut[-1] & 0xC0) == 0x80:
        cut = cut[:-1]
    if cut and cut[-1] >= 0xC0:
        cut = cut[:-1]
    return cut.decode("utf-8", errors="surrogatepass").rstrip() + ELLIPSIS


class CoderClient:
    """Calls the agent-side Coder API through an injected `httpx.AsyncClient`.

    The http client carries the base URL, timeout and the token header (see `agent.http`).
    Each method makes ONE attempt and raises from the `agent.errors` tree; `deliver` retries.
    """

    def __init__(self, http: httpx.AsyncClient, app_slug: str | None = None) -> None:
        self._http = http
        self._app_slug = app_slug

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

    async def upload_log_snapshot(self, task_id: UUID, body: bytes) -> None:
        """POST the snapshot body. Raises Unsupported (404), Rejected or TryAgain."""
        await self._send(
            "POST",
            f"/api/v2/workspaceagents/me/tasks/{task_id}/log-snapshot",
            "POST log-snapshot",
            body,
            params={"format": "agentapi"},
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
        try:
            if isinstance(body, bytes):
                response = await self._http.request(
                    method,
                    path,
                    params=params,
                    content=body,
                    headers={"content-type": "application/json"},
                )
            else:
                response = await self._http.request(method, path, params=params, json=body)
        except httpx.HTTPError as exc:
            raise TransportError(SERVICE, what, f"{type(exc).__name__}: {exc}") from None
        status = response.status_code
        if 200 <= status < 300:
            return
        detail = problem_detail(response)
        if status == 404 and not_found_unsupported:
            raise Unsupported(SERVICE, what, detail or "no such route", status=404)
        if status == 429:
            raise RateLimited(SERVICE, what, detail, retry_after_seconds(response))
        if status >= 500:
            raise ServerError(SERVICE, what, detail, status, retry_after_seconds(response))
        if status == 401:
            raise Unauthorized(SERVICE, what, detail, status=status)
        if 300 <= status < 400:
            raise Rejected(SERVICE, what, "redirect not followed (the token stays here)", status)
        raise Rejected(SERVICE, what, detail, status=status)


def retry_after_seconds(response: httpx.Response, now: float | None = None) -> float | None:
    """The Retry-After hint in seconds (delta or HTTP date), or None when absent or garbled."""
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    if raw.isdigit():
        return float(raw)
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: a random wait in [0, min(cap, base * 2**n)]."""

    base: float = 0.2
    cap: float = 5.0

    def wait(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number `attempt` (1 for the first retry)."""
        ceiling: float = min(self.cap, self.base * 2.0 ** (attempt - 1))
        return rng() * ceiling


async def deliver(
    call: Callable[[], Awaitable[T]],
    *,
    deadline: float,
    backoff: Backoff = Backoff(),
    clock: Callable[[], float] = anyio.current_time,
    on_retry: Callable[[RemoteError, float], None] | None = None,
) -> T:
    """Run `call`, retrying TryAgain errors with backoff until success or `deadline`.

    `deadline` is on `clock`'s scale (anyio's clock by default). The server's Retry-After (a 429,
    or a 5xx that carries one) is honoured when it fits before the deadline. A wait that would
    end past the deadline is not taken: the last error is raised instead. Each attempt is also
    cut off at the deadline. Rejected and Unsupported errors are raised at once.
    """

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        delay: float = backoff.wait(state.attempt_number)
        if isinstance(exc, TryAgain) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        return delay

    def stop(state: RetryCallState) -> bool:
        return clock() + state.upcoming_sleep >= deadline

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if on_retry is not None and isinstance(exc, RemoteError):
            on_retry(exc, state.upcoming_sleep)

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(TryAgain),
        wait=wait,
        stop=stop,
        sleep=anyio.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            remaining = deadline - clock()
            if remaining <= 0:
                raise TransportError(SERVICE, "request", "deadline reached before the attempt")
            try:
                with anyio.fail_after(remaining):
                    return await call()
            except TimeoutError:
                raise TransportError(SERVICE, "request", "no answer before the deadline") from None
    raise AssertionError("unreachable: tenacity either returns or reraises")  # pragma: no cover
