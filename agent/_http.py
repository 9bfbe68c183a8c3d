"""HTTP answers into the error tree: the one place that reads status codes and error headers.

Both clients (`agentapi`, `coder`) translate an unsuccessful answer here, so "try again",
"rejected" and "unsupported" mean the same thing whichever server said it. Everything a server
sends is treated as hostile: bodies are shortened and decoded leniently, headers parsed
defensively (a garbled `Retry-After` is ignored, never an exception), and `request` gives every
call one overall deadline and reads the answer through a size cap (per-read timeouts let a
server trickling a byte a second hold a caller for ever; an unbounded read lets a 400 MB answer
take 800 MB of memory). httpx's own exceptions are translated here too, into "not sent" (the
request never left) and "outcome unknown" (it left; the server may have applied it).
"""

from __future__ import annotations

import json
import math
import time
from email.utils import parsedate_to_datetime
from typing import Any

import anyio
import httpx

from agent.errors import (
    AgentBusy,
    BadResponse,
    NotSent,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    RemoteError,
    ServerError,
    TransportError,
    Unauthorized,
    Unsupported,
)

# How much of a server's own words an error keeps.
MAX_DETAIL_CHARS = 300
# How much of an error answer is read: the detail keeps 300 characters of it.
MAX_ERROR_BODY = 64 * 1024
# Used when the http client has no read timeout to take the overall deadline from.
DEFAULT_DEADLINE = 10.0
# httpx errors raised before any byte of the request left: the server saw nothing.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
# A Retry-After beyond a day is garbage or hostile; it is treated as absent.
MAX_RETRY_AFTER = 86_400.0


def problem_detail(response: httpx.Response) -> str:
    """The server's own words from a problem+json (or plain text) error answer, shortened."""
    text = response.content[: 64 * 1024].decode("utf-8", errors="replace")
    try:
        body: Any = json.loads(text)
    except (ValueError, RecursionError):
        return _printable(text)
    if not isinstance(body, dict):
        return _printable(text)
    parts = [str(body[k]) for k in ("title", "detail", "message") if body.get(k)]
    errors = body.get("errors")
    if isinstance(errors, list):
        parts += [str(e["message"]) for e in errors if isinstance(e, dict) and e.get("message")]
    return _printable("; ".join(parts)) if parts else _printable(text)


def _printable(text: str) -> str:
    cleaned = "".join(c if c.isprintable() else " " for c in text.strip()[:MAX_DETAIL_CHARS])
    return cleaned.strip()


def retry_after_seconds(response: httpx.Response, now: float | None = None) -> float | None:
    """The Retry-After hint in seconds (delta or HTTP date), or None when absent or garbled."""
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    # ASCII digits only: str.isdigit() also accepts other scripts' digits and superscripts.
    if raw and raw.isascii() and raw.isdigit():
        # Past 15 digits it is far beyond the cap anyway; never convert an unbounded string.
        value = float(raw) if len(raw) <= 15 else math.inf
        return value if value <= MAX_RETRY_AFTER else None
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    try:
        delta = when.timestamp() - (time.time() if now is None else now)
    except (OverflowError, OSError, ValueError):
        return None
    return max(0.0, delta) if delta <= MAX_RETRY_AFTER else None


def status_error(
    service: str,
    what: str,
    response: httpx.Response,
    *,
    not_found_unsupported: bool = False,
    busy_phrase: str | None = None,
) -> RemoteError:
    """The error for an answer outside 2xx."""
    detail = problem_detail(response)
    status = response.status_code
    if status == 404 and not_found_unsupported:
        return Unsupported(service, what, detail or "no such route", status=404)
    if status == 429:
        return RateLimited(service, what, detail, retry_after_seconds(response))
    if status >= 500:
        if busy_phrase is not None and busy_phrase in detail:
            return AgentBusy(service, what, detail, status=status)
        return ServerError(service, what, detail, status, retry_after_seconds(response))
    if status == 401:
        return Unauthorized(service, what, detail, status=status)
    if 300 <= status < 400:
        return Rejected(service, what, "redirect not followed (the token stays here)", status)
    return Rejected(service, what, detail, status=status)


def transport_error(service: str, what: str, exc: httpx.HTTPError) -> TransportError:
    """The error for an httpx failure: NotSent when the request never left, else OutcomeUnknown."""
    detail = f"{type(exc).__name__}: {exc}".rstrip(": ")
    if isinstance(exc, _NOT_SENT):
        return NotSent(service, what, detail)
    return OutcomeUnknown(service, what, detail)


def overall_deadline(http: httpx.AsyncClient, timeout: float | None = None) -> float:
    """Seconds one whole call may take: `timeout`, else the client's read timeout."""
    if timeout is not None:
        return timeout
    configured = http.timeout.read
    return DEFAULT_DEADLINE if configured is None else configured


async def request(
    http: httpx.AsyncClient,
    service: str,
    method: str,
    path: str,
    *,
    deadline: float,
    max_body: int,
    what: str | None = None,
    whole_body: bool = True,
    **kwargs: Any,
) -> httpx.Response:
    """One call under one overall `deadline` (seconds), its answer read through `max_body`.

    Returns the answer with its body read (whatever the status). Raises NotSent,
    OutcomeUnknown (no full answer before the deadline, a reset, ...), or, with `whole_body`,
    BadResponse when a successful answer is larger than `max_body` (without it, the body is
    cut there; an error answer is always cut to its first MAX_ERROR_BODY bytes).
    """
    what = what or f"{method} {path}"
    try:
        with anyio.fail_after(deadline):
            async with http.stream(method, path, **kwargs) as response:
                ok = 200 <= response.status_code < 300
                body, complete = await _read_capped(response, max_body if ok else MAX_ERROR_BODY)
    except TimeoutError:
        # The connect phase may have been the slow part, but that cannot be told apart here:
        # "unknown" is the safe side (the reporter then re-sends rather than trusting).
        raise OutcomeUnknown(service, what, f"no full answer within {deadline:g} s") from None
    except httpx.HTTPError as exc:
        raise transport_error(service, what, exc) from None
    if ok and whole_body and not complete:
        raise BadResponse(service, what, f"the answer exceeds {max_body} bytes")
    # The body is already decoded: the encoding headers must not make httpx decode it again.
    headers = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(
        response.status_code, headers=headers, content=body, request=response.request
    )


async def _read_capped(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """At most `limit` bytes of the body, and whether that was all of it (stops reading there)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        if size + len(chunk) > limit:
            chunks.append(chunk[: limit - size])
            return b"".join(chunks), False
        size += len(chunk)
        chunks.append(chunk)
    return b"".join(chunks), True
