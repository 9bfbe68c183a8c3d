"""The daemon's HTTP: its two httpx clients, one bounded request, httpx failures in the error tree.

AgentAPI is on loopback: no proxy from the environment. Coder is reached as the workspace reaches
it (proxy and CA variables honoured), TLS by `agent.wire`'s rules, its connection kept between
calls (the stop's upload reuses the status reports'). Neither follows redirects: the token stays
at its origin. Answers are translated by `agent.wire`'s rules, shared with `agent.http_blocking`.
`request` gives a call one overall deadline (a per-read timeout lets a server trickling a byte a
second hold a caller for ever) and reads the answer through a size cap.
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from agent.clock import SYSTEM_CLOCK, Clock
from agent.config import Environment, Secret, Settings, verbatim
from agent.errors import (
    BadResponse,
    ConfigError,
    OutcomeUnknown,
    RemoteError,
    TransportError,
)
from agent.wire import (
    MAX_ERROR_BODY,
    TOKEN_HEADER,
    USER_AGENT,
    answer_error,
    coder_tls_context,
    connect_error,
    tls_context,
    transport_detail,
)

# httpcore never sends on a connection the server closed while idle (tests/test_http.py); cloud
# NATs and load balancers forget an idle flow after ~4 minutes silently: past KEEP_IDLE_FOR, drop.
KEEP_IDLE_FOR = 180.0
CODER_LIMITS = httpx.Limits(
    max_connections=20, max_keepalive_connections=4, keepalive_expiry=KEEP_IDLE_FOR
)
# When the http client has no read timeout to take the overall deadline from.
DEFAULT_DEADLINE = 10.0
# Raised before any byte of the request left: the server saw nothing.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
# httpcore maps a TLS error to ConnectError only in the handshake: a corrupt record later comes
# out of httpx as the bare ssl.SSLError, which would escape the error tree.
TRANSPORT_FAILURES = (httpx.HTTPError, ssl.SSLError)
# Request headers that carry a credential: masked where a server echoes them.
SECRET_HEADERS = ("coder-session-token", "authorization")


def status_error(
    service: str,
    what: str,
    response: httpx.Response,
    *,
    not_found_unsupported: bool = False,
) -> RemoteError:
    """The error for an answer outside 2xx (`agent.wire.answer_error`)."""
    try:
        sent = response.request.headers
    except RuntimeError:  # a Response built without its request
        sent = httpx.Headers()
    return answer_error(
        service,
        what,
        response.status_code,
        response.content,
        response.headers.get("retry-after"),
        not_found_unsupported=not_found_unsupported,
        secrets=tuple(value for name in SECRET_HEADERS if (value := sent.get(name))),
    )


def url_of(http: httpx.AsyncClient, path: str) -> str:
    """The URL of `path` as httpx makes it, for errors (URL.join would drop the base path, and
    costs 40-250 us, a tenth of the stop path's budget)."""
    return f"{str(http.base_url).rstrip('/')}{path}"


def transport_error(service: str, what: str, exc: httpx.HTTPError | ssl.SSLError) -> TransportError:
    """NotSent when the request never left, else OutcomeUnknown (a bare SSLError: it left)."""
    if isinstance(exc, _NOT_SENT):  # the TLS handshake is in the connect
        return connect_error(service, what, type(exc).__name__, exc)
    return OutcomeUnknown(service, what, transport_detail(type(exc).__name__, exc))


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
    """One call under one overall `deadline` on `clock`; the answer, its body read (whatever its
    status) through `max_body` (an error answer: MAX_ERROR_BODY). Raises NotSent, OutcomeUnknown,
    or BadResponse for a 2xx over `max_body` with `whole_body` (without: cut there)."""
    what = what or f"{method} {path}"
    try:
        with clock.fail_after(deadline):
            async with http.stream(method, path, **kwargs) as response:
                ok = 200 <= response.status_code < 300
                body, complete = await _read_capped(response, max_body if ok else MAX_ERROR_BODY)
    except TimeoutError:
        # Maybe only the connect was slow, but that cannot be told here: "unknown" is the safe side.
        raise OutcomeUnknown(service, what, f"no full answer within {deadline:g} s") from None
    except TRANSPORT_FAILURES as exc:
        raise transport_error(service, what, exc) from None
    if ok and whole_body and not complete:
        raise BadResponse(service, what, f"the answer exceeds {max_body} bytes")
    return _with_body(response, body)


async def error_answer(response: httpx.Response) -> httpx.Response:
    """An answer opened as a stream, for `status_error`: its body read through MAX_ERROR_BODY
    (the rest never read: an error answer may be endless). The caller bounds the time."""
    body, _ = await _read_capped(response, MAX_ERROR_BODY)
    return _with_body(response, body)


def _with_body(response: httpx.Response, body: bytes) -> httpx.Response:
    # The body is decoded already: no encoding headers, or httpx decodes it again. Raw bytes: a
    # value that is not ASCII would not encode again (`Retry-After: ²`: UnicodeEncodeError).
    headers = [
        (name, value)
        for name, value in response.headers.raw
        if name.lower() not in (b"content-encoding", b"content-length", b"transfer-encoding")
    ]
    return httpx.Response(
        response.status_code, headers=headers, content=body, request=response.request
    )


async def _read_capped(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """At most `limit` bytes of the body, and whether that was all of it."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            return bytes(body[:limit]), False
    return bytes(body), True


def agentapi_http(settings: Settings) -> httpx.AsyncClient:
    """A client for the local AgentAPI (verified by certifi's bundle only, never proxied)."""
    url = settings.agentapi_url
    verify = tls_context(verify=True, trust_env=False) if url.startswith("https://") else None
    return httpx.AsyncClient(
        base_url=url,
        timeout=httpx.Timeout(settings.agentapi_timeout),
        follow_redirects=False,
        trust_env=False,
        verify=verify or plain_http(),
        headers={"user-agent": USER_AGENT},
    )


def coder_http(
    settings: Settings, url: str, token: Secret, environment: Environment | None = None
) -> httpx.AsyncClient:
    """A client for the Coder server, carrying the agent token header, its connection kept.
    Raises ConfigError for a CA source that cannot be loaded or a proxy httpx cannot use."""
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
            verify=tls or plain_http(),
            limits=CODER_LIMITS,
            headers={TOKEN_HEADER: token.reveal(), "user-agent": USER_AGENT},
        )
    except (ValueError, ImportError, OSError, httpx.InvalidURL, ssl.SSLError) as exc:
        # httpx reads the proxy and CA variables itself: named here, never their values (a
        # proxy URL may carry credentials).
        if isinstance(exc, OSError | ssl.SSLError):
            names = [n for n in ("SSL_CERT_FILE", "SSL_CERT_DIR") if environment.is_set(n)]
            problem = "cannot be loaded as CA certificates"
        else:
            names = sorted(environment.proxies())
            problem = "is not a proxy httpx can use (http://, https://, socks5:// with socksio)"
        variables = ", ".join(names) or "the proxy and CA variables"
        raise ConfigError(variables, f"{problem} ({type(exc).__name__})") from None


def plain_http() -> ssl.SSLContext:
    """httpx's `verify` for a plain-http URL: nothing loaded (certifi's bundle costs ~20 ms)."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
