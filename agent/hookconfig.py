"""The few settings the hooks' fast path reads, at the cost of the standard library only.

`agent.settings` reads and validates everything (URLs, token, task id, slug) and imports what
that takes: dataclasses, pathlib, urllib, uuid, more than the whole of `report` handed to a
running daemon costs (issue 14: that path must stay within 3x the interpreter's start). The fast
path needs only the socket path, the log level and format and the shutdown budget, and the
token's value to mask it in what it prints. This module reads exactly those, with the parsers
`agent.settings` uses too (so both agree on every value and every error: a ConfigError naming
the variable, and the flag when the value came from one). When a command falls back to the
direct path, `agent.settings` reads and validates the whole configuration as usual.
"""

from __future__ import annotations

import math
import os

from agent.errors import ConfigError

# A plain constant that type checkers treat as true: `typing` is not imported on this path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

PREFIX = "CODER_TASK_AGENT_"
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("auto", "json", "console")
DEFAULT_SHUTDOWN_BUDGET = 5.0


def positive_seconds(raw: str) -> float:
    """A positive, finite number of seconds; ValueError otherwise."""
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"must be a number of seconds, got {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"must be a positive number of seconds, got {raw!r}")
    return value


def choice(*allowed: str) -> Callable[[str], str]:
    """A parser accepting one of `allowed` (case and surrounding blanks ignored)."""

    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}, got {raw!r}")
        return value

    return parse


def socket_path(raw: str) -> str:
    """A path given for the socket; ValueError when empty."""
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw


def default_socket_path(env: Mapping[str, str]) -> str:
    """Where the report socket lives when CODER_TASK_AGENT_SOCKET is not set.

    systemd's RuntimeDirectory (private to the unit's user), else the user's XDG runtime
    directory, else a per-user directory under /tmp that the daemon creates with mode 0700.
    """
    runtime = env.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if runtime:
        return os.path.join(runtime, "report.sock")
    xdg = env.get("XDG_RUNTIME_DIR", "")
    if xdg:
        return os.path.join(xdg, "coder-task-agent", "report.sock")
    return f"/tmp/coder-task-agent-{os.getuid()}/report.sock"  # noqa: S108


class HookSettings:
    """What `report` and `snapshot` need before they know whether a daemon listens."""

    __slots__ = ("flags", "log_format", "log_level", "secrets", "shutdown_budget", "socket_path")

    def __init__(
        self,
        socket_path: str | None,
        *,
        log_level: str = "info",
        log_format: str = "auto",
        shutdown_budget: float = DEFAULT_SHUTDOWN_BUDGET,
        secrets: tuple[str, ...] = (),
        flags: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        self.socket_path = socket_path
        self.log_level = log_level
        self.log_format = log_format
        self.shutdown_budget = shutdown_budget
        # Values to mask in output; the fast path itself never sends them.
        self.secrets = secrets
        # The command line's settings, for `agent.settings` when the direct path is taken.
        self.flags = dict(flags or {})

    @property
    def warnings(self) -> tuple[str, ...]:
        """Configuration warnings are `agent.settings`'s to find: none on the fast path."""
        return ()


def load_hook_settings(
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, tuple[str, str]] | None = None,
) -> HookSettings:
    """Read the fast path's settings; raises ConfigError naming a bad variable (or flag)."""
    source = dict(os.environ if env is None else env)
    given = dict(flags or {})

    def read(suffix: str, parse: Callable[[str], object], default: object) -> object:
        variable = PREFIX + suffix
        if variable in given:
            flag, raw = given[variable]
            name = f"{flag} ({variable})"
        else:
            raw, name = source.get(variable, ""), variable
            if not raw.strip():
                return default
        try:
            return parse(raw)
        except ValueError as exc:
            raise ConfigError(name, str(exc)) from None

    path = read("SOCKET", socket_path, None)
    return HookSettings(
        socket_path=str(path) if path is not None else default_socket_path(source),
        log_level=str(read("LOG_LEVEL", choice(*LOG_LEVELS), "info")),
        log_format=str(read("LOG_FORMAT", choice(*LOG_FORMATS), "auto")),
        shutdown_budget=float(read("SHUTDOWN_BUDGET", positive_seconds, DEFAULT_SHUTDOWN_BUDGET)),  # type: ignore[arg-type]
        secrets=_token_values(source),
        flags=given,
    )


def _token_values(env: Mapping[str, str]) -> tuple[str, ...]:
    """The agent token, wherever it is configured, only to mask it; unreadable is no error."""
    values = [env.get("CODER_AGENT_TOKEN", "").strip()]
    path = env.get("CODER_AGENT_TOKEN_FILE", "").strip()
    if path:
        try:
            with open(path, encoding="utf-8") as file:
                values.append(file.read(4096).strip())
        except (OSError, UnicodeDecodeError):
            pass
    return tuple(v for v in values if v)
