"""`report` straight to Coder when no daemon listens (`report_once`), by the Coder agent's socket
or HTTP as `agent.coder.route` chooses; the server's answer only through the redacting logger.
"""

from __future__ import annotations

import os
import time
from functools import partial
from pathlib import Path

import anyio
import structlog

from agent.clock import SYSTEM_CLOCK, Clock
from agent.coder.route import needs_coder_http, open_sender
from agent.config import Settings
from agent.errors import ConfigError, Rejected, RemoteError, Unsupported
from agent.log import configure_from
from agent.models import AppStatus, ExitCode
from agent.retry import deliver

log = structlog.get_logger("agent.direct")


def report_once(
    settings: Settings,
    status: AppStatus,
    *,
    from_hook: bool = False,
    no_daemon: str = "",
    within: float | None = None,
) -> ExitCode:
    """PATCH `status` to Coder with retries within two request timeouts (or `within` seconds, a
    hook's budget, when shorter); returns the exit code, raises ConfigError for missing settings.

    The rules hold with the daemon's memory file (agent.lastreport): a hook's idle after an
    explicit complete or failed is held. One line, the outcome (a hook runs at every step).
    """
    started = time.monotonic()
    socket_exists = os.path.lexists(settings.agent_socket_path)
    if needs_coder_http(settings, uploads=False, agent_socket_exists=socket_exists):
        settings.require_coder()  # HTTP is the only way: say what it lacks before anything
    if settings.app_slug is None:
        raise ConfigError("CODER_MCP_APP_STATUS_SLUG", "is required to report a status")
    configure_from(settings)
    # The rules' memory: only this path needs it (and agent.rules), not `snapshot`.
    from agent.lastreport import DirectMemory  # noqa: PLC0415

    memory = DirectMemory(Path(settings.socket_path).parent if settings.socket_path else None)
    shown = memory.held(status, from_hook=from_hook)
    if shown is not None:
        log.info(
            "report_held",
            state=status.state.value,
            shown=shown.state.value,
            reason="a hook's idle does not replace an explicit complete or failed",
            # A daemon wanted it but stopped before Coder confirmed it: it is sent now.
            sent_instead=not memory.confirmed,
            direct=True,
            no_daemon=no_daemon,
        )
        if memory.confirmed:
            return ExitCode.OK
        status, from_hook = shown, False
    limit = 2 * settings.request_timeout
    late = "not delivered in time"
    if within is not None and within - (time.monotonic() - started) < limit:
        limit = within - (time.monotonic() - started)
        late = "not delivered within the hook budget"  # given up: the agent must not wait
    failed = "hook_failed" if from_hook else "report_failed"
    run = partial(_report, late=late, failed=failed)
    code = anyio.run(run, settings, status, SYSTEM_CLOCK, no_daemon, limit)
    if code is ExitCode.OK:
        memory.delivered(status, from_hook=from_hook)
    return code


async def _report(
    settings: Settings,
    status: AppStatus,
    clock: Clock,
    no_daemon: str,
    within: float,
    *,
    late: str = "not delivered in time",
    failed: str = "report_failed",
) -> ExitCode:
    """Deliver `status` within `within` seconds; `late` is the outcome's reason when that time ends
    first, `failed` the failure's event."""
    deadline = clock.now() + within
    # The outcome line names the way chosen: not a line of its own.
    async with open_sender(settings, clock=clock, announce=False) as send:
        where = {"direct": True, "no_daemon": no_daemon}
        try:
            await deliver(lambda: send(status), deadline=deadline, clock=clock)
        except Unsupported as exc:
            log.error(failed, reason="unsupported", error=str(exc), **where)
            return ExitCode.REJECTED
        except Rejected as exc:
            log.error(failed, reason="rejected", error=str(exc), status=exc.status, **where)
            return ExitCode.REJECTED
        except RemoteError as exc:
            log.error(
                failed,
                reason=late,
                error=str(exc),
                transport=send.transport,  # after the delivery: a failure may switch it
                why=send.reason,
                **where,
            )
            return ExitCode.UNDELIVERED
    log.info(
        "report_delivered",
        state=status.state.value,
        transport=send.transport,
        why=send.reason,
        **where,
    )
    return ExitCode.OK
