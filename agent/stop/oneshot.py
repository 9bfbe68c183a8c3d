"""The one-shot snapshot (`python -m agent snapshot`, no daemon) with the standard library only.

Why it exists: the one-shot snapshot replaces Coder's bash + curl + jq stop script and must cost
about what that script costs (issue 14: at most 1.25x on small histories); httpx, pydantic,
structlog and anyio take longer to import than the whole script runs. This shell makes
the path's two requests with `agent.plainhttp` and does everything else with the parts the httpx
path (`agent.direct`, `agent.stop.upload`) uses too: `agent.conversation` reads `/messages`,
`agent.snapshot` builds the body, `agent.retry` retries, `agent.wire` turns answers
into the error tree, `agent.stop.outcome` decides each ending, its exit code and its log line, and
`agent.log.Writer` prints those lines as structlog would, the token masked. Same
timeouts (`stop_fetch_timeout` for `/messages`, `request_timeout` per Coder attempt), the same
overall deadline (`shutdown_budget`), no redirects, TLS as httpx verifies it; SIGTERM or SIGINT
while it runs stops it at once with the interrupted exit code. The fault and end-to-end snapshot
tests run against both paths.

When it does not apply, the httpx path runs instead (`applies`, `snapshot_once` returning None):
- a proxy variable is set (any `*_proxy` in any case: HTTP_PROXY, HTTPS_PROXY, ALL_PROXY,
  NO_PROXY...): httpx routes Coder requests by them, and this client speaks to servers directly;
- a CA source cannot be loaded (SSL_CERT_FILE or SSL_CERT_DIR pointing nowhere): the httpx path
  fails the way it always has;
- `_CODER_TASK_AGENT_ONESHOT=httpx`: tests run both paths with it (not a setting).
Those variables are read through `agent.config.Environment`, as everything else is.
"""

from __future__ import annotations

import signal
import time

from agent.config import Environment, verbatim
from agent.conversation import BUSY_PHRASE, MAX_MESSAGES_BYTES, read_history
from agent.errors import OutcomeUnknown, RemoteError
from agent.log import Writer
from agent.plainhttp import (
    SNAPSHOT_QUERY,
    TOKEN_HEADER,
    Origin,
    coder_tls_context,
    request,
    snapshot_route,
    tls_context,
)
from agent.retry import cut_off, deliver_blocking
from agent.snapshot import Snapshot
from agent.stop import outcome as stoppath
from agent.stop.outcome import Outcome
from agent.wire import MAX_ERROR_BODY, answer_error

# A plain constant that type checkers treat as true: `typing` is not imported on the hooks' path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from collections.abc import Sequence
    from types import FrameType

    from agent.config import Settings
    from agent.conversation import WireMessage

# Tests only: `httpx` runs the httpx path, so that one suite proves both behave alike.
FORCE_VARIABLE = "_CODER_TASK_AGENT_ONESHOT"


def applies(environment: Environment) -> str | None:
    """None when this path may run; else why the httpx path must."""
    if environment.read(FORCE_VARIABLE, verbatim, "") == "httpx":
        return f"{FORCE_VARIABLE}=httpx"
    proxies = environment.proxies()
    if proxies:
        return f"{min(proxies)} is set (httpx honours proxies)"
    return None


class _Interrupted(BaseException):
    """SIGTERM or SIGINT arrived: stop at once (a BaseException, so nothing swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise _Interrupted(signum)


class _Tls:
    """The TLS contexts of both servers, built before anything is sent (None: plain http)."""

    def __init__(self, settings: Settings, coder_url: str, environment: Environment) -> None:
        # AgentAPI: verified, httpx's bundle only (its client does not trust the environment).
        self.agentapi: ssl.SSLContext | None = None
        self.coder: ssl.SSLContext | None = None
        if settings.agentapi_url.startswith("https://"):
            self.agentapi = tls_context(verify=True, trust_env=False)
        self.coder = coder_tls_context(
            coder_url,
            verify=settings.tls_verify,
            cert_file=environment.read("SSL_CERT_FILE", verbatim, ""),
            cert_dir=environment.read("SSL_CERT_DIR", verbatim, ""),
        )


def snapshot_once(settings: Settings, environment: Environment | None = None) -> int | None:
    """Run the stop path once under `settings.shutdown_budget`; the exit code.

    None when this path does not apply (see the module docstring) and nothing has been done:
    the caller then runs the httpx path. Raises ConfigError when Coder is not configured.
    """
    environment = Environment() if environment is None else environment
    if applies(environment) is not None:
        return None
    url, token = settings.require_coder()
    try:
        tls = _Tls(settings, url, environment)
    except OSError:  # ssl.SSLError is one: a CA source that cannot be loaded
        return None
    deadline = time.monotonic() + settings.shutdown_budget
    out = Writer(settings.log_level, settings.log_format, (token.reveal(),))
    for warning in settings.warnings:
        out.warning("configuration_warning", problem=warning)
    previous = {
        signum: signal.signal(signum, _interrupt) for signum in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        outcome = _save(settings, url, token.reveal(), tls, deadline=deadline, out=out)
    except _Interrupted as exc:
        out.warning("snapshot_interrupted", signal=signal.Signals(exc.signum).name)
        outcome = Outcome.INTERRUPTED
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return int(outcome.exit_code)


def _save(
    settings: Settings, url: str, token: str, tls: _Tls, *, deadline: float, out: Writer
) -> Outcome:
    """`agent.stop.upload.save_snapshot`, step for step, blocking."""
    task_id = settings.task_id
    if task_id is None:
        return stoppath.no_task(out)
    stoppath.started(out, deadline - time.monotonic(), client="stdlib")
    within = stoppath.fetch_window(settings.stop_fetch_timeout, deadline - time.monotonic())
    messages = _fetch(Origin(settings.agentapi_url), within, tls.agentapi, out)
    if messages is None:
        return stoppath.no_conversation(out)
    snapshot = stoppath.build(out, messages)
    if not isinstance(snapshot, Snapshot):
        return snapshot
    coder = Origin(url)
    path = snapshot_route(task_id)
    what = "POST log-snapshot"
    where = f"{what} {coder.url(path)}"
    headers = ((TOKEN_HEADER, token), ("Content-Type", "application/json"))
    body = snapshot.body
    retries = 0

    def attempt(remaining: float) -> None:
        # The request's own timeout, cut short by the overall deadline (as agent.retry does).
        limit = min(settings.request_timeout, remaining)
        try:
            answer = request(
                coder,
                "POST",
                path,
                service="Coder",
                what=where,
                timeout=limit,
                max_body=MAX_ERROR_BODY,
                error_body=MAX_ERROR_BODY,
                # The answer to a success is `null` or empty: past the cap it is garbage.
                whole_body=False,
                headers=headers,
                query=SNAPSHOT_QUERY,
                body=body,
                tls=tls.coder,
            )
        except TimeoutError:
            if remaining <= settings.request_timeout:
                raise cut_off("Coder") from None
            raise OutcomeUnknown("Coder", where, f"no full answer within {limit:g} s") from None
        if not answer.ok:
            raise answer_error(
                "Coder",
                what,
                answer.status,
                answer.body,
                answer.headers.get("retry-after"),
                not_found_unsupported=True,
                secrets=(token,),
            )

    def on_retry(exc: RemoteError, wait: float) -> None:
        nonlocal retries
        retries += 1
        stoppath.retrying(out, exc, wait, retries)

    try:
        deliver_blocking(
            attempt, deadline=deadline, now=time.monotonic, sleep=time.sleep, on_retry=on_retry
        )
    except RemoteError as exc:
        return stoppath.upload_failed(out, exc, retries)
    return stoppath.uploaded(out, task_id, snapshot, retries)


def _fetch(
    agentapi: Origin, within: float, tls: ssl.SSLContext | None, out: Writer
) -> Sequence[WireMessage] | None:
    """A fresh `/messages`, or None when AgentAPI fails or does not answer `within` s."""
    try:
        answer = request(
            agentapi,
            "GET",
            "/messages",
            service="AgentAPI",
            what=f"GET {agentapi.url('/messages')}",
            timeout=within,
            max_body=MAX_MESSAGES_BYTES,
            error_body=MAX_ERROR_BODY,
            tls=tls,
        )
        if not answer.ok:
            raise answer_error(
                "AgentAPI",
                "GET /messages",
                answer.status,
                answer.body,
                answer.headers.get("retry-after"),
                busy_phrase=BUSY_PHRASE,
            )
        history = read_history(answer.body)
    except TimeoutError:
        stoppath.fetch_timed_out(out, within, None)
        return None
    except RemoteError as exc:
        stoppath.fetch_failed(out, exc, None)
        return None
    dropped = history.dropped_fields()
    if dropped is not None:
        out.warning("agentapi_messages_dropped", **dropped)
    stoppath.fetched(out, len(history.messages))
    return history.messages
