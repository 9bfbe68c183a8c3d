"""HTTP answers into the error tree: the one place that reads status codes and error headers.

Both clients (`agentapi`, `coder`) translate an unsuccessful answer here, so "try again",
"rejected" and "unsupported" mean the same thing whichever server said it. Everything a server
sends is treated as hostile: bodies are shortened and decoded leniently, headers parsed
defensively (a garbled `Retry-After` is ignored, never an exception).
"""

from __future__ import annotations

import json
import time
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from agent.errors import (
    AgentBusy,
    RateLimited,
    Rejected,
    RemoteError,
    ServerError,
    Unauthorized,
    Unsupported,
)

# How much of a server's own words an error keeps.
MAX_DETAIL_CHARS = 300
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
        value = float(raw[:12])
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
