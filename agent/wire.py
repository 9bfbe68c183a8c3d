"""HTTP answers into the error tree, apart from any HTTP library: status, headers and body in.

Why a module of its own: both HTTP paths translate answers here, the httpx one (`agent.http_async`,
for both clients) and the one-shot snapshot's standard-library one (`agent.plainhttp`), so
"try again", "rejected" and "unsupported" mean the same thing whichever path and whichever
server. Everything a server sends is treated as hostile: bodies are shortened and decoded
leniently, headers parsed defensively (a garbled `Retry-After` is ignored, never an exception).
A server may echo what it was sent, the token included: its words are masked (`agent.log.mask`)
before they are shortened, never after, so that no cut leaves a piece of the token unmasked.
Standard library only, and only `json`, `math` and `time` at import (`email.utils` is imported
when a Retry-After is an HTTP date, which is rare).
"""

from __future__ import annotations

import json
import math
import time

from agent.errors import (
    AgentBusy,
    RateLimited,
    Rejected,
    RemoteError,
    ServerError,
    Unauthorized,
    Unsupported,
)
from agent.log import mask

# A plain constant that type checkers treat as true: `typing` is not imported on this path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

# How much of a server's own words an error keeps.
MAX_DETAIL_CHARS = 300
# How much of an error answer is read: the detail keeps 300 characters of it.
MAX_ERROR_BODY = 64 * 1024
# A Retry-After beyond a day is garbage or hostile; it is treated as absent.
MAX_RETRY_AFTER = 86_400.0


def problem_detail(body: bytes, secrets: Sequence[str] = ()) -> str:
    """The server's own words from a problem+json (or plain text) error answer, `secrets`
    masked, then shortened."""
    text = body[:MAX_ERROR_BODY].decode("utf-8", errors="replace")
    try:
        parsed: object = json.loads(text)
    except (ValueError, RecursionError):
        return _printable(text, secrets)
    if not isinstance(parsed, dict):
        return _printable(text, secrets)
    parts = [str(parsed[k]) for k in ("title", "detail", "message") if parsed.get(k)]
    errors = parsed.get("errors")
    if isinstance(errors, list):
        parts += [str(e["message"]) for e in errors if isinstance(e, dict) and e.get("message")]
    return _printable("; ".join(parts) if parts else text, secrets)


def _printable(text: str, secrets: Sequence[str]) -> str:
    # Mask, then cut: a token the cut splits would otherwise leave its head unmasked.
    shown = mask(text.strip(), secrets, limit=MAX_DETAIL_CHARS)
    return "".join(c if c.isprintable() else " " for c in shown).strip()


def parse_retry_after(raw: str | None, now: float | None = None) -> float | None:
    """A Retry-After value in seconds (delta or HTTP date), or None when absent or garbled."""
    if raw is None:
        return None
    raw = raw.strip()
    # ASCII digits only: str.isdigit() also accepts other scripts' digits and superscripts.
    if raw and raw.isascii() and raw.isdigit():
        # Past 15 digits it is far beyond the cap anyway; never convert an unbounded string.
        value = float(raw) if len(raw) <= 15 else math.inf
        return value if value <= MAX_RETRY_AFTER else None
    from email.utils import parsedate_to_datetime  # noqa: PLC0415 - an HTTP date is rare

    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    try:
        delta = when.timestamp() - (time.time() if now is None else now)
    except (OverflowError, OSError, ValueError):
        return None
    return max(0.0, delta) if delta <= MAX_RETRY_AFTER else None


def answer_error(
    service: str,
    what: str,
    status: int,
    body: bytes,
    retry_after: str | None = None,
    *,
    not_found_unsupported: bool = False,
    busy_phrase: str | None = None,
    secrets: Sequence[str] = (),
) -> RemoteError:
    """The error for an answer outside 2xx: its status, body and raw `Retry-After` header.

    `secrets`: what the request carried (the token), masked in the server's words."""
    detail = problem_detail(body, secrets)
    if status == 404 and not_found_unsupported:
        return Unsupported(service, what, detail or "no such route", status=404)
    if status == 429:
        return RateLimited(service, what, detail, parse_retry_after(retry_after))
    if status >= 500:
        if busy_phrase is not None and busy_phrase in detail:
            return AgentBusy(service, what, detail, status=status)
        return ServerError(service, what, detail, status, parse_retry_after(retry_after))
    if status == 401:
        return Unauthorized(service, what, detail, status=status)
    if 300 <= status < 400:
        return Rejected(service, what, "redirect not followed (the token stays here)", status)
    return Rejected(service, what, detail, status=status)
