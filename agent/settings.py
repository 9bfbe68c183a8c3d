"""Configuration, read once at start from the environment (and CLI flags), validated, frozen.

`Settings` is what every part of the daemon is configured with, and it validates whatever
builds it. `load_settings` builds it from the environment, read through `agent.environment`
(the one reader of the environment, whose table names every variable and whose `read` the
hooks' fast path and the stop hook's `ARG_*` mapping use too). Every problem is a `ConfigError`
naming the variable (and the flag, when the value came from one), raised before anything
starts. The agent token is held in a `Secret` whose repr and str never show it.

Variables follow Coder's conventions where Coder has one (`CODER_AGENT_URL`, `CODER_AGENT_TOKEN`,
`CODER_MCP_APP_STATUS_SLUG`, ...); the daemon's own tunables share the prefix `CODER_TASK_AGENT_`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal
from uuid import UUID

from agent.configuration import (
    CREDENTIAL_NAME,
    DEFAULT_AGENTAPI_URL,
    NO_AGENTAPI,
    TUNABLES,
    Configuration,
    Secret,
    read_configuration,
    require_coder,
)
from agent.configuration import DEFAULT_AGENT_SOCKET as _DEFAULT_AGENT_SOCKET
from agent.environment import PREFIX, Environment, positive_seconds, socket_path, text, verbatim
from agent.errors import ConfigError

__all__ = [
    "CREDENTIAL_NAME",
    "DEFAULT_AGENTAPI_URL",
    "DEFAULT_AGENT_SOCKET",
    "NO_AGENTAPI",
    "TUNABLE_VARIABLES",
    "LogFormat",
    "LogLevel",
    "Mode",
    "Secret",
    "Settings",
    "StatusTransport",
    "StopHookInputs",
    "load_settings",
    "stop_hook_environment",
]

# `hooks`: no AgentAPI to watch; status comes only from the agent's own hooks (`hook ...`).
Mode = Literal["events", "poll", "hooks"]
StatusTransport = Literal["auto", "socket", "http"]
# The Coder agent's own default for CODER_AGENT_SOCKET_PATH (Coder >= v2.32).
DEFAULT_AGENT_SOCKET = Path(_DEFAULT_AGENT_SOCKET)
LogFormat = Literal["auto", "json", "console"]
LogLevel = Literal["debug", "info", "warning", "error"]


@dataclass(frozen=True)
class Settings:
    """Everything the daemon is configured with. Build it with `load_settings` or directly."""

    agentapi_url: str = DEFAULT_AGENTAPI_URL
    coder_url: str | None = None
    token: Secret | None = field(default=None, repr=False)
    task_id: UUID | None = None
    app_slug: str | None = None
    # Whole stop path (fresh /messages, build, upload with retries). 5 s leaves half of the 10 s a
    # container gets between SIGTERM and SIGKILL for AgentAPI and everything else.
    shutdown_budget: float = 5.0
    # Each Coder request; retries happen inside the caller's own deadline.
    request_timeout: float = 5.0
    # Each AgentAPI GET while watching. GET /status and /messages block while a message is being
    # sent (up to ~18 s), so a timeout here means "no observation", never "AgentAPI is dead".
    agentapi_timeout: float = 5.0
    # The fresh GET /messages at stop: short, because AgentAPI may be stopping or blocked.
    stop_fetch_timeout: float = 1.5
    mode: Mode = "events"
    poll_interval: float = 1.0
    # `running` without a new user message reports working only after lasting this long.
    working_debounce: float = 3.0
    # The stop hook's wait for AgentAPI to exit after SIGTERM, before SIGKILL. AgentAPI's own
    # shutdown gives its HTTP server 5 s and then its agent process 5 s: 10 s covers both.
    agentapi_stop_timeout: float = 10.0
    socket_path: Path | None = None
    # How status reaches Coder: the agent's socket (no token), the HTTP PATCH, or `auto` (the
    # socket when the agent there answers, else HTTP). See agent.delivery.
    status_transport: StatusTransport = "auto"
    agent_socket_path: Path = DEFAULT_AGENT_SOCKET
    log_level: LogLevel = "info"
    log_format: LogFormat = "auto"
    tls_verify: bool = True
    # systemd's notify socket (`NOTIFY_SOCKET`) and half its watchdog period (`WATCHDOG_USEC`,
    # for this process only: `WATCHDOG_PID`); empty and None outside systemd.
    notify_socket: str = ""
    watchdog_interval: float | None = None
    # Problems worth a warning but not a refusal (a world-readable token file, TLS off...).
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Validate however the settings were built (tests and tools build them directly)."""
        for variable, (attribute, parser) in _TUNABLES.items():
            value = getattr(self, attribute)
            if parser is _positive_seconds:
                if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                    raise ConfigError(
                        PREFIX + variable, f"must be a positive number, got {value!r}"
                    )
            elif isinstance(value, str) and parser is not _path:
                try:
                    parser(value)
                except ValueError as exc:
                    raise ConfigError(PREFIX + variable, str(exc)) from None
        if self.watchdog_interval is not None and not self.watchdog_interval > 0:
            raise ConfigError("WATCHDOG_USEC", "must be a positive number of microseconds")

    def require_coder(self) -> tuple[str, Secret]:
        """The Coder URL and token, or a ConfigError naming what is missing."""
        return require_coder(self.coder_url, self.token)


# Tunables: variable suffix -> (field, parser), agent.configuration's; the socket is a Path here.
_positive_seconds = positive_seconds


def _path(raw: str) -> Path:
    return Path(socket_path(raw))


_TUNABLES: dict[str, tuple[str, Callable[[str], object]]] = {
    suffix: (attribute, _path if attribute == "socket_path" else parser)
    for suffix, (attribute, parser) in TUNABLES.items()
}
TUNABLE_VARIABLES = tuple(PREFIX + suffix for suffix in _TUNABLES)


def load_settings(
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, tuple[str, str]] | None = None,
) -> Settings:
    """Read and validate the configuration (`agent.configuration`), as `Settings`.

    `env` defaults to the process environment. `flags` maps a variable name to `(flag, value)`
    for values given on the command line; they win over the environment and errors name both.
    Raises ConfigError naming the first bad variable.
    """
    return settings_from(read_configuration(Environment(env, flags)))


def settings_from(configuration: Configuration) -> Settings:
    """`configuration` as `Settings`: its paths as Paths, its task id as a UUID."""
    values = configuration.fields()
    values["socket_path"] = Path(str(values["socket_path"]))
    values["agent_socket_path"] = Path(str(values["agent_socket_path"]))
    task = values["task_id"]
    values["task_id"] = None if task is None else UUID(str(task))
    known = {f.name for f in fields(Settings)}
    return Settings(**{k: v for k, v in values.items() if k in known})  # type: ignore[arg-type]


@dataclass(frozen=True)
class StopHookInputs:
    """What Coder's agentapi module hands its stop script (`ARG_*`), beyond our own settings."""

    # `ARG_TASK_LOG_SNAPSHOT`: the module's script takes a snapshot unless it is not `true`.
    snapshot: bool = True
    # `ARG_ENABLE_STATE_PERSISTENCE=true`: ask AgentAPI to save its state (SIGUSR1) first.
    state_persistence: bool = False
    # Where AgentAPI wrote its PID (`ARG_PID_FILE_PATH`, else `$HOME/$ARG_MODULE_DIR_NAME/...`).
    pid_file: Path | None = None
    # Where AgentAPI saves its state, when no better source (its own environment) says.
    state_file: Path | None = None
    # Problems with the inputs: each is logged and its part skipped, never a failed stop.
    problems: tuple[str, ...] = ()
    # Neither CODER_TASK_ID nor ARG_TASK_ID is set (outside a task: nothing to snapshot).
    task_id_unset: bool = False


def stop_hook_environment(
    env: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], StopHookInputs]:
    """The stop hook's view of the environment: `ARG_*` inputs mapped onto our variables.

    `env` defaults to the process environment. Returns the environment to load settings from
    (ours win where both are set) and the inputs that have no variable of ours. Never raises:
    a task id that is not a UUID is dropped (and reported in `problems`) so that the rest of
    the stop still happens.
    """
    environment = Environment(env)
    problems: list[str] = []

    def arg(name: str) -> str:
        return environment.read(name, text, "")

    task_variable = "CODER_TASK_ID" if environment.is_set("CODER_TASK_ID") else "ARG_TASK_ID"
    task = arg(task_variable)
    mapped: dict[str, str | None] = {"CODER_TASK_ID": None}
    if task:
        try:
            mapped["CODER_TASK_ID"] = str(UUID(task))
        except ValueError:
            problems.append(f"{task_variable}: {task!r} is not a UUID; no snapshot is taken")

    port = arg("ARG_AGENTAPI_PORT")
    if not environment.is_set("CODER_MCP_AI_AGENTAPI_URL") and port:
        if port.isascii() and port.isdigit() and 0 < int(port) < 65536:
            mapped["CODER_MCP_AI_AGENTAPI_URL"] = f"http://localhost:{int(port)}"
        else:
            problems.append(f"ARG_AGENTAPI_PORT: {port!r} is not a port; using 3284")

    module_dir = arg("ARG_MODULE_DIR_NAME")
    home = environment.read("HOME", verbatim, "")
    module_path = Path(home) / module_dir if module_dir and home else None
    pid_file = arg("ARG_PID_FILE_PATH")
    state_file = arg("ARG_STATE_FILE_PATH")
    inputs = StopHookInputs(
        # Unset or blank: the module's default, true.
        snapshot=environment.read("ARG_TASK_LOG_SNAPSHOT", text, "true") == "true",
        state_persistence=arg("ARG_ENABLE_STATE_PERSISTENCE") == "true",
        pid_file=Path(pid_file) if pid_file else _under(module_path, "agentapi.pid"),
        state_file=Path(state_file) if state_file else _under(module_path, "agentapi-state.json"),
        problems=tuple(problems),
        task_id_unset=not task,
    )
    return environment.replaced(mapped).mapping(), inputs


def _under(directory: Path | None, name: str) -> Path | None:
    return None if directory is None else directory / name
