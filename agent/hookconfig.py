"""The few settings the hooks' fast path needs, at the cost of the standard library only.

`agent.settings` reads and validates everything (URLs, token, task id, slug) and imports what
that takes: dataclasses, pathlib, urllib, uuid, more than the whole of `report` handed to a
running daemon costs (issue 14: that path must stay within 3x the interpreter's start). The fast
path needs only the socket path, the log level and format and the shutdown budget, and the
token's value to mask it in what it prints. This module reads exactly those through
`agent.environment`, with the parsers `agent.settings` uses too (so both agree on every value
and every error: a ConfigError naming the variable, and the flag when the value came from one).
When a command falls back to the direct path, `agent.settings` reads and validates the whole
configuration as usual.
"""

from __future__ import annotations

import os
import stat

from agent.environment import (
    CREDENTIAL_NAME,
    DEFAULT_HOOK_BUDGET,
    DEFAULT_SHUTDOWN_BUDGET,
    LOG_FORMATS,
    LOG_LEVELS,
    PREFIX,
    Environment,
    choice,
    positive_seconds,
    socket_path,
    text,
    verbatim,
)

# A plain constant that type checkers treat as true: `typing` is not imported on this path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping


class HookSettings:
    """What `report` and `snapshot` need before they know whether a daemon listens."""

    __slots__ = (
        "flags",
        "hook_budget",
        "log_format",
        "log_level",
        "secrets",
        "shutdown_budget",
        "socket_path",
    )

    def __init__(
        self,
        socket_path: str | None,
        *,
        log_level: str = "info",
        log_format: str = "auto",
        shutdown_budget: float = DEFAULT_SHUTDOWN_BUDGET,
        hook_budget: float = DEFAULT_HOOK_BUDGET,
        secrets: tuple[str, ...] = (),
        flags: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        self.socket_path = socket_path
        self.log_level = log_level
        self.log_format = log_format
        self.shutdown_budget = shutdown_budget
        # The whole `hook` command's time, start to exit (agent.hooks.command).
        self.hook_budget = hook_budget
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
    """Read the fast path's settings; raises ConfigError naming a bad variable (or flag).

    `env` defaults to the process environment (read by `agent.environment`).
    """
    environment = Environment(env, flags)
    path = environment.read(PREFIX + "SOCKET", socket_path, None)
    return HookSettings(
        socket_path=path if path is not None else environment.default_socket_path(),
        log_level=environment.read(PREFIX + "LOG_LEVEL", choice(*LOG_LEVELS), "info"),
        log_format=environment.read(PREFIX + "LOG_FORMAT", choice(*LOG_FORMATS), "auto"),
        shutdown_budget=environment.read(
            PREFIX + "SHUTDOWN_BUDGET", positive_seconds, DEFAULT_SHUTDOWN_BUDGET
        ),
        hook_budget=environment.read(PREFIX + "HOOK_BUDGET", positive_seconds, DEFAULT_HOOK_BUDGET),
        secrets=token_values(environment),
        flags=environment.flags,
    )


def token_values(environment: Environment) -> tuple[str, ...]:
    """The agent token, wherever it is configured, only to mask it; unreadable is no error.

    The file is opened without blocking and read only when it is a regular file: a FIFO put in
    its place must not hang the command (nor its last line, `agent.boundary`).
    """
    values = [environment.read("CODER_AGENT_TOKEN", text, "")]
    paths = [environment.read("CODER_AGENT_TOKEN_FILE", text, "")]
    credentials = environment.read("CREDENTIALS_DIRECTORY", verbatim, "")
    if credentials:
        paths.append(os.path.join(credentials, CREDENTIAL_NAME))
    for path in paths:
        if path:
            values.append(_read_small(path))
    return tuple(v for v in values if v)


def _read_small(path: str) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return os.read(fd, 4096).decode("utf-8", "replace").strip()
    except OSError:
        return ""
    finally:
        os.close(fd)
