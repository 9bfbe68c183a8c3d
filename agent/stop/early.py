"""A stop requested before the daemon is up: recorded at once, honoured once it can be.

`run` installs these handlers first thing, before its slow imports (anyio, httpx, pydantic: a
few hundred milliseconds on a loaded machine), so that a SIGTERM then does not kill the process
with no snapshot. The daemon asks `requested()` once its own handling is installed. Stdlib only.
"""

from __future__ import annotations

import signal
from types import FrameType

_requested: list[str] = []


def install() -> None:
    """Record SIGTERM and SIGINT from now on (until the daemon handles them); ignore SIGHUP.

    SIGHUP first: its default action ends the process with no stop path, and the daemon ignores
    it once up (agent.daemon.stop logs those); a closing terminal sends it at any moment.
    """
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _record)


def requested() -> str | None:
    """The name of the first stop signal recorded, if any."""
    return _requested[0] if _requested else None


def _record(signum: int, frame: FrameType | None) -> None:
    _requested.append(signal.Signals(signum).name)
