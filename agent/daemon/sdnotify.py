"""systemd's notify protocol (`Type=notify`), without a dependency.

A datagram of `KEY=VALUE` lines to `NOTIFY_SOCKET` (a path, or abstract when it starts with `@`);
a no-op without it. A send never waits; failures are logged, never raised: systemd's bookkeeping
must not take the daemon down.
"""

from __future__ import annotations

import socket

import structlog

from agent.config import Settings

log = structlog.get_logger("agent.daemon.sdnotify")


class Notifier:
    def __init__(self, address: str = "", watchdog_interval: float | None = None) -> None:
        self._address = "\0" + address[1:] if address.startswith("@") else address
        # Half the period systemd expects pings within, or None without a watchdog.
        self.watchdog_interval = watchdog_interval

    @classmethod
    def for_settings(cls, settings: Settings) -> Notifier:
        return cls(settings.notify_socket, settings.watchdog_interval)

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def notify(self, **fields: str) -> bool:
        """Send `KEY=VALUE` lines, e.g. notify(READY="1", STATUS="..."); True when sent."""
        if not self._address:
            return False
        payload = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # Never waits: a manager whose queue is full (not reading) would otherwise stop
                # the event loop on a send. The datagram is dropped and the failure logged.
                sock.setblocking(False)
                sock.connect(self._address)
                sock.send(payload)
        except OSError as exc:
            log.warning("sd_notify_failed", error=str(exc))
            return False
        return True
