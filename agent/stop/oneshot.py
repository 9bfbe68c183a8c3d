"""The stop path's blocking shell: `snapshot` without a daemon, and `stop-hook`'s snapshot.

The short-lived commands replace Coder's bash + curl + jq stop scripts and must cost about as
much; an event loop, httpx, pydantic and structlog take longer than such a script runs. So this
shell blocks on the standard library (`agent.http_blocking`); the rest is the daemon's shell's
(`agent.stop.upload`): the same modules, timeouts, deadline, caps and log lines. Its steps are
apart so that `stop-hook` reads `/messages` first (`fetch`) and logs and uploads later (`start`,
`took`, `upload`); `snapshot_once` runs them in one go, stopped at once by a stop signal
(agent.boundary's: SIGTERM, SIGINT, SIGHUP), whose line then says so before the command's.
"""

from __future__ import annotations

import time

from agent.config import Environment, verbatim
from agent.conversation import MAX_MESSAGES_BYTES, History, read_history
from agent.errors import Interrupted, OutcomeUnknown, RemoteError
from agent.http_blocking import request, url_of
from agent.log import Writer
from agent.retry import cut_off, deliver_blocking
from agent.snapshot import Snapshot
from agent.stop import outcome as steps
from agent.stop.outcome import Outcome
from agent.wire import (
    MAX_ERROR_BODY,
    SNAPSHOT_QUERY,
    TOKEN_HEADER,
    coder_tls_context,
    snapshot_route,
    tls_context,
)

# A plain constant that type checkers treat as true: `typing` is not imported on the hooks' path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from collections.abc import Sequence

    from agent.config import Settings
    from agent.snapshot import SnapshotMessage
    from agent.stop.outcome import Log

# How `snapshot_started` names this shell (the daemon's: `httpx`).
CLIENT = "stdlib"


class Fetched:
    """A `GET /messages` done (`result`: the answer, or why none), its lines not logged yet."""

    __slots__ = ("result", "within")

    def __init__(self, within: float, result: History | TimeoutError | RemoteError) -> None:
        self.within = within  # the seconds it was given
        self.result = result


def fetch(agentapi_url: str, within: float) -> Fetched:
    """A fresh `/messages` from AgentAPI, all of it within `within` seconds, read through
    MAX_MESSAGES_BYTES; never raises for what the server does."""
    tls = tls_context(verify=True, trust_env=False) if agentapi_url.startswith("https:") else None
    try:
        answer = request(
            agentapi_url,
            "GET",
            "/messages",
            service="AgentAPI",
            what=f"GET {url_of(agentapi_url, '/messages')}",
            timeout=within,
            max_body=MAX_MESSAGES_BYTES,
            error_body=MAX_ERROR_BODY,
            tls=tls,
        )
        if not answer.ok:
            raise answer.error("AgentAPI", "GET /messages")
        return Fetched(within, read_history(answer.body))
    except (TimeoutError, RemoteError) as exc:
        return Fetched(within, exc)


def took(out: Log, fetched: Fetched, fallback: object | None) -> Sequence[SnapshotMessage] | None:
    """Log a fetch's lines as the daemon's shell does (`fallback`: what replaces a failure);
    its messages, or None when it failed."""
    result = fetched.result
    if not isinstance(result, History):
        steps.fetch_missed(out, fetched.within, result, fallback)
        return None
    dropped = result.dropped_fields()
    if dropped is not None:
        out.warning("agentapi_messages_dropped", **dropped)
    steps.fetched(out, len(result.messages))
    return result.messages


class Plan:
    """What the upload needs, read and checked before anything is sent: ConfigError when Coder
    is not configured or a CA source cannot be loaded."""

    __slots__ = ("coder_tls", "settings", "token", "url")

    def __init__(self, settings: Settings) -> None:
        environment = Environment()
        self.settings = settings
        self.url, token = settings.require_coder()
        self.token = token.reveal()
        self.coder_tls: ssl.SSLContext | None = coder_tls_context(
            self.url,
            verify=settings.tls_verify,
            cert_file=environment.read("SSL_CERT_FILE", verbatim, ""),
            cert_dir=environment.read("SSL_CERT_DIR", verbatim, ""),
        )


def start(out: Log, deadline: float) -> None:
    """The stop path's first line (`snapshot_started`); `deadline` on time.monotonic."""
    steps.started(out, deadline - time.monotonic(), client=CLIENT)


def upload(
    plan: Plan, messages: Sequence[SnapshotMessage] | None, *, deadline: float, out: Log
) -> Outcome:
    """Build the snapshot of `messages` (None: the conversation could not be read) and upload
    it with retries before `deadline`; the ending, logged once."""
    task_id = plan.settings.task_id
    if task_id is None:
        return steps.no_task(out)
    snapshot = steps.build(out, messages)
    if not isinstance(snapshot, Snapshot):
        return snapshot
    path = snapshot_route(task_id)
    what = "POST log-snapshot"
    where = f"{what} {url_of(plan.url, path)}"
    headers = ((TOKEN_HEADER, plan.token), ("Content-Type", "application/json"))
    request_timeout = plan.settings.request_timeout
    retries = 0

    def attempt(remaining: float) -> None:
        # The request's own timeout, cut short by the overall deadline (as agent.retry does).
        limit = min(request_timeout, remaining)
        try:
            answer = request(
                plan.url,
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
                body=snapshot.body,
                tls=plan.coder_tls,
                trust_env=True,
            )
        except TimeoutError:
            if remaining <= request_timeout:
                raise cut_off("Coder") from None
            raise OutcomeUnknown("Coder", where, f"no full answer within {limit:g} s") from None
        if not answer.ok:
            raise answer.error("Coder", what, not_found_unsupported=True, secrets=(plan.token,))

    def on_retry(exc: RemoteError, wait: float) -> None:
        nonlocal retries
        retries += 1
        steps.retrying(out, exc, wait, retries)

    try:
        deliver_blocking(
            attempt, deadline=deadline, now=time.monotonic, sleep=time.sleep, on_retry=on_retry
        )
    except RemoteError as exc:
        return steps.upload_failed(out, exc, retries)
    return steps.uploaded(out, task_id, snapshot, retries)


def snapshot_once(settings: Settings) -> int:
    """`snapshot` without a daemon, under `settings.shutdown_budget`: the exit code, or
    ConfigError (before anything is sent) as Plan raises it. A stop signal ends it at once:
    `snapshot_interrupted` is the stop path's ending, and the signal goes on to the command's
    boundary (`command_interrupted`, exit 6, Outcome.INTERRUPTED's code)."""
    plan = Plan(settings)
    deadline = time.monotonic() + settings.shutdown_budget
    out = Writer(settings.log_level, settings.log_format, (plan.token,))
    for warning in settings.warnings:
        out.warning("configuration_warning", problem=warning)
    try:
        if settings.task_id is None:
            outcome = steps.no_task(out)
        else:
            start(out, deadline)
            within = steps.fetch_window(settings.stop_fetch_timeout, deadline - time.monotonic())
            fetched = took(out, fetch(settings.agentapi_url, within), None)
            outcome = upload(plan, fetched, deadline=deadline, out=out)
    except KeyboardInterrupt as exc:  # Interrupted, or Python's own Ctrl-C
        signal = exc.signal if isinstance(exc, Interrupted) else "SIGINT"
        out.warning("snapshot_interrupted", signal=signal, outcome=Outcome.INTERRUPTED.value)
        raise
    return int(outcome.exit_code)
