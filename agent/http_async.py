"""httpx answers into the error tree, and one bounded request.

Both clients (`agentapi`, `coder`) translate an unsuccessful answer here, through the rules of
`agent.wire` (shared with the one-shot snapshot's standard-library path), so "try again",
"rejected" and "unsupported" mean the same thing whichever server said it and whichever client
asked. `request` gives every call one overall deadline and reads the answer through a size cap
(per-read timeouts let a server trickling a byte a second hold a caller for ever; an unbounded
read lets a 400 MB answer take 800 MB of memory). httpx's own exceptions are translated here
too, into "not sent" (the request never left) and "outcome unknown" (it left; the server may
have applied it).
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from agent import wire as httperrors
from agent.clock import SYSTEM_CLOCK, Clock
from agent.errors import BadResponse, NotSent, OutcomeUnknown, RemoteError, TransportError
from agent.wire import (
    MAX_DETAIL_CHARS,
    MAX_ERROR_BODY,
    MAX_RETRY_AFTER,
    answer_error,
    parse_retry_after,
)

__all__ = [
    "MAX_DETAIL_CHARS",
    "MAX_ERROR_BODY",
    "MAX_RETRY_AFTER",
    "TRANSPORT_FAILURES",
    "overall_deadline",
    "problem_detail",
    "request",
    "retry_after_seconds",
    "status_error",
    "transport_error",
]

# Used when the http client has no read timeout to take the overall deadline from.
DEFAULT_DEADLINE = 10.0
# httpx errors raised before any byte of the request left: the server saw nothing.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
# What a call through httpx raises when the connection fails. httpcore maps a TLS error to
# ConnectError only during the handshake: a corrupt record later (a broken middlebox, garbage
# on the wire) comes out of httpx as the bare ssl.SSLError, which would escape the error tree.
TRANSPORT_FAILURES = (httpx.HTTPError, ssl.SSLError)


# Request headers that carry a credential: a server echoing one has it masked in its words.
SECRET_HEADERS = ("coder-session-token", "authorization")


def problem_detail(response: httpx.Response) -> str:
    """The server's own words from a problem+json (or plain text) error answer, the request's
    credentials masked, then shortened."""
    return httperrors.problem_detail(response.content, sent_secrets(response))


def sent_secrets(response: httpx.Response) -> tuple[str, ...]:
    """The credentials the request behind `response` carried (none when it has no request)."""
    try:
        headers = response.request.headers
    except RuntimeError:  # a Response built without its request
        return ()
    return tuple(value for name in SECRET_HEADERS if (value := headers.get(name)))


def retry_after_seconds(response: httpx.Response, now: float | None = None) -> float | None:
    """The Retry-After hint in seconds (delta or HTTP date), or None when absent or garbled."""
    return parse_retry_after(response.headers.get("retry-after"), now)


def status_error(
    service: str,
    what: str,
    response: httpx.Response,
    *,
    not_found_unsupported: bool = False,
    busy_phrase: str | None = None,
) -> RemoteError:
    """The error for an answer outside 2xx (`agent.wire.answer_error`)."""
    return answer_error(
        service,
        what,
        response.status_code,
        response.content,
        response.headers.get("retry-after"),
        not_found_unsupported=not_found_unsupported,
        busy_phrase=busy_phrase,
        secrets=sent_secrets(response),
    )


def url_of(http: httpx.AsyncClient, path: str) -> str:
    """The URL a request for `path` goes to, for error messages (never carrying the token).

    As httpx makes it, the base URL's path then `path`: URL.join would drop that base path,
    and costs 40-250 us (a tenth of the stop path's budget) for a text read only on errors.
    """
    return f"{str(http.base_url).rstrip('/')}{path}"


def transport_error(service: str, what: str, exc: httpx.HTTPError | ssl.SSLError) -> TransportError:
    """The error for an httpx failure: NotSent when the request never left, else OutcomeUnknown.

    An ssl.SSLError here came after the handshake (see TRANSPORT_FAILURES): the request left.
    """
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
    clock: Clock = SYSTEM_CLOCK,
    **kwargs: Any,
) -> httpx.Response:
    """One call under one overall `deadline` (seconds), its answer read through `max_body`.

    Returns the answer with its body read (whatever the status). Raises NotSent,
    OutcomeUnknown (no full answer before the deadline, a reset, ...), or, with `whole_body`,
    BadResponse when a successful answer is larger than `max_body` (without it, the body is
    cut there; an error answer is always cut to its first MAX_ERROR_BODY bytes). The deadline
    is on `clock`.
    """
    what = what or f"{method} {path}"
    try:
        with clock.fail_after(deadline):
            async with http.stream(method, path, **kwargs) as response:
                ok = 200 <= response.status_code < 300
                body, complete = await _read_capped(response, max_body if ok else MAX_ERROR_BODY)
    except TimeoutError:
        # The connect phase may have been the slow part, but that cannot be told apart here:
        # "unknown" is the safe side (the reporter then re-sends rather than trusting).
        raise OutcomeUnknown(service, what, f"no full answer within {deadline:g} s") from None
    except TRANSPORT_FAILURES as exc:
        raise transport_error(service, what, exc) from None
    if ok and whole_body and not complete:
        raise BadResponse(service, what, f"the answer exceeds {max_body} bytes")
    # The body is already decoded: the encoding headers must not make httpx decode it again.
    # As bytes: httpx decodes a value that is not ASCII as UTF-8 and would refuse to encode that
    # text again (`Retry-After: ²` raised UnicodeEncodeError here, outside the error tree).
    headers = [
        (name, value)
        for name, value in response.headers.raw
        if name.lower() not in (b"content-encoding", b"content-length", b"transfer-encoding")
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
