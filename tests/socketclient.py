"""The report client's exchange, run from async tests whose event loop serves the socket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio.to_thread

from agent.models import AppStatus
from agent.reportsocket.client import NoDaemon, exchange

# The client's own overall deadline; the tests bound themselves with fail_after too.
WAIT = 30.0


async def send_to_daemon(path: Path, status: AppStatus) -> dict[str, Any] | None:
    """Hand `status` to the daemon at `path` (in a thread: the client blocks); None if none."""
    request = {"state": status.state.value, "message": status.message, "uri": status.uri}
    try:
        return await anyio.to_thread.run_sync(exchange, path, request, WAIT)
    except NoDaemon:
        return None


async def request(path: Path, body: dict[str, object]) -> dict[str, Any]:
    """Any request line, answered (in a thread)."""
    return await anyio.to_thread.run_sync(exchange, path, body, WAIT)
