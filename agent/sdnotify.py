"""systemd's notify protocol (`Type=notify`), without a dependency.

A datagram of `KEY=VALUE` lines to the socket named by `NOTIFY_SOCKET` (a path, or an abstract
socket when it starts with `@`). Everything here is a no-op when `NOTIFY_SOCKET` is unset, so the
daemon runs the same outside systemd. Failures to notify are logged, never raised: systemd's
bookkeeping must not take the daemon down.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import structlog

log = structlog.get_logger("agent.sdnotify")


class Notifier:
    """Sends notifications to systemd, if systemd asked for them."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        source = os.environ if env is None else env
        address = source.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_interval = _watchdog_interval(source)

    @property
    def enabled(self) -> bool:
        """True when systemd listens."""
        return bool(self._address)

    def notify(self, **fields: str) -> bool:
        """Send `KEY=VALUE` lines, e.g. notify(READY="1", STATUS="..."); True when sent."""
        if not self._address:
            return False
        payload = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self._address)
                sock.sendall(payload)
        except OSError as exc:
            log.warning("sd_notify_failed", error=str(exc))
            return False
        return True


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Half the watchdog period systemd expects pings within, or None without a watchdog."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 2_000_000
