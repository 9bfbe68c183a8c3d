"""The daemon's HTTP: its two httpx clients, one bounded request, httpx answers into the error tree.

The two `httpx.AsyncClient`s are built here from the settings (`agentapi_http`, `coder_http`).
AgentAPI is on loopback: no proxy from the environment applies to it. Coder is reached the way
the workspace reaches it (proxy and CA variables honoured), with TLS verification on unless
turned off explicitly, by `agent.wire`'s TLS rules (the blocking runtime's too). Neither client
follows redirects: the token must not leave its origin. Coder's client keeps its connection
between calls (`CODER_LIMITS`): the stop's upload goes on the connection the status reports
left open, with its body built ahead by the daemon.

Both clients translate an unsuccessful answer here, through the rules of
`agent.wire` (shared with the blocking runtime, `agent.http_blocking`), so "try again",
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
from agent.config import Environment, Secret, Settings, verbatim
from agent.errors import (
    BadResponse,
    ConfigError,
    NotSent,
    OutcomeUnknown,
    RemoteError,
    TransportError,
)
from agent.wire import (
    MAX_DETAIL_CHARS,
    MAX_ERROR_BODY,
    MAX_RETRY_AFTER,
    TOKEN_HEADER,
    USER_AGENT,
    answer_error,
    coder_tls_context,
    parse_retry_after,
    tls_context,
)

__all__ = [
    "CODER_LIMITS",
    "MAX_DETAIL_CHARS",
    "MAX_ERROR_BODY",
    "MAX_RETRY_AFTER",
    "TRANSPORT_FAILURES",
    "agentapi_http",
    "coder_http",
    "overall_deadline",
    "problem_detail",
    "request",
    "retry_after_seconds",
    "status_error",
    "transport_error",
]

# Coder's connection is kept between calls, so that the stop's upload does not wait for a TCP
# and TLS handshake. A connection the server closed while idle is never used: httpcore finds
# it readable (the server's FIN) when a request asks for a connection, drops it and opens a new
# one, before anything is sent (tests/test_http.py). One idle longer than KEEP_IDLE_FOR is
# dropped too: cloud NATs and load balancers forget an idle flow after about four minutes
# without telling either end, and a request on such a connection would wait for its deadline.
KEEP_IDLE_FOR = 180.0
CODER_LIMITS = httpx.Limits(
    max_connections=20, max_keepalive_connections=4, keepalive_expiry=KEEP_IDLE_FOR
)
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


def agentapi_http(settings: Settings) -> httpx.AsyncClient:
    """A client for the local AgentAPI (verified by certifi's bundle only, never proxied)."""
    url = settings.agentapi_url
    return httpx.AsyncClient(
        base_url=url,
        timeout=httpx.Timeout(settings.agentapi_timeout),
        follow_redirects=False,
        trust_env=False,
        verify=tls_context(verify=True, trust_env=False) if _https(url) else plain_http(),
        headers={"user-agent": USER_AGENT},
    )


def coder_http(
    settings: Settings, url: str, token: Secret, environment: Environment | None = None
) -> httpx.AsyncClient:
    """A client for the Coder server, carrying the agent token header, its connection kept.

    Raises ConfigError when SSL_CERT_FILE or SSL_CERT_DIR names a CA source that cannot be
    loaded (`agent.wire.tls_context`), or the proxy variables name a proxy httpx cannot use.
    """
    environment = Environment() if environment is None else environment
    tls = coder_tls_context(
        url,
        verify=settings.tls_verify,
        cert_file=environment.read("SSL_CERT_FILE", verbatim, ""),
        cert_dir=environment.read("SSL_CERT_DIR", verbatim, ""),
    )
    try:
        return httpx.AsyncClient(
            base_url=url,
            timeout=httpx.Timeout(settings.request_timeout),
            follow_redirects=False,
            verify=tls if tls is not None else plain_http(),
            limits=CODER_LIMITS,
            headers={TOKEN_HEADER: token.reveal(), "user-agent": USER_AGENT},
        )
    except (ValueError, ImportError, OSError, httpx.InvalidURL, ssl.SSLError) as exc:
        raise environment_error(exc, environment) from None


def environment_error(exc: Exception, environment: Environment) -> ConfigError:
    """What httpx's refusal to build a client from the environment means, naming the variables.

    httpx reads the proxy (`*_PROXY`, `NO_PROXY`) and CA (`SSL_CERT_FILE`, `SSL_CERT_DIR`)
    variables itself and raises as it builds the client: a scheme it has no transport for
    (`socks5h://` without socksio, `ftp://`), a URL it cannot parse, a CA file that does not
    exist. Each killed every command with a traceback; it is a configuration error, so it says
    which variables, never their values (a proxy URL may carry credentials).
    """
    if isinstance(exc, OSError | ssl.SSLError):
        names = [n for n in ("SSL_CERT_FILE", "SSL_CERT_DIR") if environment.is_set(n)]
        problem = "cannot be loaded as CA certificates"
    else:
        names = sorted(environment.proxies())
        problem = "is not a proxy httpx can use (http://, https://, socks5:// with socksio)"
    if not names:
        names = ["the proxy and CA variables"]
    return ConfigError(", ".join(names), f"{problem} ({type(exc).__name__})")


def _https(url: str) -> bool:
    return url.startswith("https://")


def plain_http() -> ssl.SSLContext:
    """What to give httpx's `verify` for a plain-http URL: no TLS happens, so nothing is loaded
    (certifi's bundle costs about 20 ms of a short command's start-up)."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
