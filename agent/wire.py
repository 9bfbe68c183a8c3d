"""What both HTTP runtimes share, apart from any HTTP library: the wire facts and the answer rules.

The daemon's httpx clients (`agent.http_async`) and the commands' blocking helper
(`agent.http_blocking`) send the same headers, verify Coder by the same TLS rules and translate
answers and failed connections here, so "try again", "rejected" and "unsupported" mean the same
whichever runtime and server. A server is hostile: bodies shortened and decoded leniently, a
garbled header ignored, its words masked (it may echo the token) before they are cut, never
after. Standard library only; `email.utils`, `ssl` and `certifi` imported only when needed.
"""

from __future__ import annotations

import json
import math
import sys
import time

from agent.errors import (
    ConfigError,
    NotSent,
    RateLimited,
    Rejected,
    RemoteError,
    ServerError,
    TLSRefused,
    Unauthorized,
    Unsupported,
)
from agent.log import mask

# A plain constant that type checkers treat as true: `typing` is not imported on this path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from collections.abc import Sequence

USER_AGENT = "coder-task-agent"
TOKEN_HEADER = "Coder-Session-Token"  # noqa: S105 - a header name, not a secret
SNAPSHOT_QUERY = {"format": "agentapi"}

MAX_DETAIL_CHARS = 300  # of a server's own words, in an error
MAX_ERROR_BODY = 64 * 1024  # read of an error answer
# A CA bundle (SSL_CERT_FILE): the system's is about 200 KB; far larger is not one.
MAX_CA_FILE_BYTES = 16 * 1024 * 1024
MAX_RETRY_AFTER = 86_400.0  # a day; beyond, garbage or hostile: treated as absent


def snapshot_route(task_id: object) -> str:
    """The path of the log-snapshot upload for `task_id` (a UUID)."""
    return f"/api/v2/workspaceagents/me/tasks/{task_id}/log-snapshot"


def tls_context(
    *, verify: bool, trust_env: bool, cert_file: str = "", cert_dir: str = ""
) -> ssl.SSLContext:
    """The TLS context httpx 0.28 builds for `verify` and `trust_env`: CA file (SSL_CERT_FILE),
    else directory (SSL_CERT_DIR), both only with `trust_env`, else certifi's bundle; ALPN
    HTTP/1.1 as httpcore without HTTP/2. Raises ConfigError naming a CA source not loaded."""
    import ssl  # noqa: PLC0415 - only for an https URL

    try:
        if not verify:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif trust_env and cert_file:
            context = _loaded("SSL_CERT_FILE", cert_file, cafile=cert_file)
        elif trust_env and cert_dir:
            context = _loaded("SSL_CERT_DIR", cert_dir, capath=cert_dir)
        else:
            import certifi  # noqa: PLC0415 - httpx's own CA bundle, a dependency of httpx

            context = ssl.create_default_context(cafile=certifi.where())
    except ssl.SSLError as exc:  # pragma: no cover - certifi's bundle always loads
        raise ConfigError("TLS", f"no TLS context ({exc})") from None
    context.set_alpn_protocols(["http/1.1"])
    return context


def _loaded(
    variable: str, path: str, *, cafile: str | None = None, capath: str | None = None
) -> ssl.SSLContext:
    import ssl  # noqa: PLC0415

    from agent.config import read_regular  # noqa: PLC0415 - the one capped read of a file

    try:
        if cafile is not None:
            # Checked first: OpenSSL's own open of a FIFO would never return, in C, where no
            # deadline reaches; a huge file would be read whole.
            read_regular(cafile, MAX_CA_FILE_BYTES)
        return ssl.create_default_context(cafile=cafile, capath=capath)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(variable, f"the CA source {path} cannot be loaded ({reason})") from None


def coder_tls_context(
    url: str, *, verify: bool, cert_file: str, cert_dir: str
) -> ssl.SSLContext | None:
    """Coder's context, trusting SSL_CERT_FILE and SSL_CERT_DIR as the workspace does; None for
    plain http."""
    if not url.startswith("https://"):
        return None
    return tls_context(verify=verify, trust_env=True, cert_file=cert_file, cert_dir=cert_dir)


def problem_detail(body: bytes, secrets: Sequence[str] = ()) -> str:
    """The server's words from a problem+json (or plain text) error answer (`printable`)."""
    text = body[:MAX_ERROR_BODY].decode("utf-8", errors="replace")
    try:
        parsed: object = json.loads(text)
    except (ValueError, RecursionError):
        return printable(text, secrets)
    if not isinstance(parsed, dict):
        return printable(text, secrets)
    parts = [str(parsed[k]) for k in ("title", "detail", "message") if parsed.get(k)]
    errors = parsed.get("errors")
    if isinstance(errors, list):
        parts += [str(e["message"]) for e in errors if isinstance(e, dict) and e.get("message")]
    return printable("; ".join(parts) if parts else text, secrets)


def printable(text: str, secrets: Sequence[str] = ()) -> str:
    """Someone else's words fit for an error and a log field: `secrets` masked, then (or a cut
    would leave a token's head unmasked) one printable line of MAX_DETAIL_CHARS at most."""
    shown = " ".join(mask(text, secrets).split())[:MAX_DETAIL_CHARS]
    return "".join(c if c.isprintable() else " " for c in shown).strip()


# OpenSSL's reasons when what answered our hello does not speak TLS: a plain-http server's
# "HTTP/1.1 400" reads as a record of an unknown version, or it hangs up (ssl.SSLEOFError).
_NOT_TLS = frozenset(
    {
        "WRONG_VERSION_NUMBER",
        "UNKNOWN_PROTOCOL",
        "PACKET_LENGTH_TOO_LONG",
        "RECORD_LAYER_FAILURE",
        "UNEXPECTED_EOF_WHILE_READING",
    }
)
# Of those, the answers that are not TLS for good: a hang-up is also what an overloaded peer does.
_NOT_TLS_FOR_GOOD = _NOT_TLS - {"UNEXPECTED_EOF_WHILE_READING"}


def transport_detail(kind: str, exc: BaseException, *, connecting: bool = False) -> str:
    """A failed connection worded for either runtime: `kind: exc`, unless TLS failed (an
    SSLError is `exc` or behind it), named as such. `connecting`: in the handshake, where a
    plain-http server behind an https URL is the likely cause, which is said in words."""
    failure = _tls_failure(exc)
    if failure is None:
        return f"{kind}: {exc}".rstrip(": ")
    words = str(failure)
    # OpenSSL's source line says nothing to a user: "... wrong version number (_ssl.c:1006)".
    words = words[: words.rfind(" (_ssl.c:")] if " (_ssl.c:" in words else words
    if getattr(failure, "verify_message", None):
        why = " (the server's certificate is not trusted)"
    elif connecting and getattr(failure, "reason", None) in _NOT_TLS:
        why = " in the handshake (the server does not speak TLS: an https URL for plain http?)"
    else:
        why = ""
    return f"TLS failed{why}: {words}"


def connect_error(service: str, what: str, kind: str, exc: BaseException) -> NotSent:
    """The error for a request that never left, worded by `transport_detail`: TLSRefused when
    the handshake failed for good (an untrusted certificate, or `_NOT_TLS_FOR_GOOD`), else
    NotSent."""
    detail = transport_detail(kind, exc, connecting=True)
    failure = _tls_failure(exc)
    if failure is not None and (
        getattr(failure, "verify_message", None)
        or getattr(failure, "reason", None) in _NOT_TLS_FOR_GOOD
    ):
        return TLSRefused(service, what, detail)
    return NotSent(service, what, detail)


def _tls_failure(exc: BaseException) -> ssl.SSLError | None:
    """The ssl.SSLError that is `exc` or caused it (httpx wraps it twice)."""
    if "ssl" not in sys.modules:
        return None  # TLS never ran in this process: no TLS failure, and no import for it
    import ssl  # noqa: PLC0415 - imported already (above)

    seen: BaseException | None = exc
    for _ in range(8):  # a chain is short; a bound all the same
        if seen is None or isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


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
        delta = parsedate_to_datetime(raw).timestamp() - (time.time() if now is None else now)
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
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
    secrets: Sequence[str] = (),
) -> RemoteError:
    """The error for an answer outside 2xx; `secrets` (what the request carried) are masked."""
    detail = problem_detail(body, secrets)
    if status == 404 and not_found_unsupported:
        return Unsupported(service, what, detail or "no such route", status=404)
    if status == 429:
        return RateLimited(service, what, detail, parse_retry_after(retry_after))
    if status >= 500:
        return ServerError(service, what, detail, status, parse_retry_after(retry_after))
    if status == 401:
        return Unauthorized(service, what, detail, status=status)
    if 300 <= status < 400:
        return Rejected(service, what, "redirect not followed (the token stays here)", status)
    return Rejected(service, what, detail, status=status)
