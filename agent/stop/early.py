"""A stop requested before the daemon is up: recorded at once, honoured once it can be.

`python -m agent run` installs these handlers first thing, before importing anything slow
(anyio, httpx, pydantic take a few hundred milliseconds on a loaded machine). Without them a
SIGTERM in that window kills the process by the default action, with no snapshot, although
AgentAPI holds the conversation. The handler only records the signal; the daemon, once its own
signal handling is installed, asks `requested()` and takes the stop path. Standard library only.
"""

from __future__ import annotations

import signal
from types import FrameType

_requested: list[str] = []


def install() -> None:
    """Record SIGTERM and SIGINT from now on (until the daemon installs its own handling)."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _record)


def requested() -> str | None:
    """The name of the first stop signal recorded, if any."""
    return _requested[0] if _requested else None


def _record(signum: int, frame: FrameType | None) -> None:
    _requested.append(signal.Signals(signum).name)
