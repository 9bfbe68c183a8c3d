"""`python -m agent snapshot`: the one-shot shutdown hook.

A drop-in for the bash+curl+jq stop script of Coder templates: read `/messages`, build the
snapshot, upload it with retries, all within the shutdown budget, and exit with a code that says
what happened (see agent.cli). A SIGTERM or SIGINT while it runs means "hurry": it stops at once.
"""

from __future__ import annotations

import signal

import anyio
import structlog

from agent.agentapi import AgentAPIClient
from agent.coder import CoderClient
from agent.settings import Settings
from agent.shutdown import Outcome, save_snapshot
from agent.transport import agentapi_http, coder_http

log = structlog.get_logger("agent.oneshot")


async def snapshot_once(settings: Settings) -> int:
    """Run the stop path once under `settings.shutdown_budget`; returns the exit code."""
    url, token = settings.require_coder()
    deadline = anyio.current_time() + settings.shutdown_budget
    outcome = Outcome.INTERRUPTED
    async with (
        agentapi_http(settings) as agentapi_client,
        coder_http(settings, url, token) as coder_client,
        anyio.create_task_group() as group,
    ):

        async def stop_on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for signum in signals:
                    log.warning("snapshot_interrupted", signal=signal.Signals(signum).name)
                    group.cancel_scope.cancel()
                    return

        group.start_soon(stop_on_signal)
        outcome = await save_snapshot(
            task_id=settings.task_id,
            agentapi=AgentAPIClient(agentapi_client),
            coder=CoderClient(coder_client, settings.app_slug),
            deadline=deadline,
            fetch_timeout=settings.stop_fetch_timeout,
        )
        group.cancel_scope.cancel()
    return int(outcome.exit_code)
