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
import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from uuid import UUID

from agent.environment import (
    LOG_FORMATS,
    LOG_LEVELS,
    PREFIX,
    Environment,
    boolean,
    choice,
    positive_seconds,
    socket_path,
    text,
    verbatim,
)
from agent.errors import ConfigError

CREDENTIAL_NAME = "coder-agent-token"
DEFAULT_AGENTAPI_URL = "http://localhost:3284"
# Coder's own rule for app slugs: lower-case letters and digits, single inner hyphens.
_SLUG = re.compile(r"^[a-z0-9](-?[a-z0-9])*$")
# A token travels in an HTTP header: visible ASCII only. Checked here so that no HTTP library
# ever gets the chance to echo a malformed value in one of its own error messages.
_TOKEN = re.compile(r"^[\x21-\x7e]+$")

# `hooks`: no AgentAPI to watch; status comes only from the agent's own hooks (`hook ...`).
Mode = Literal["events", "poll", "hooks"]
StatusTransport = Literal["auto", "socket", "http"]
# The Coder agent's own default for CODER_AGENT_SOCKET_PATH (Coder >= v2.32).
DEFAULT_AGENT_SOCKET = Path("/tmp/coder-agent.sock")  # noqa: S108 - the agent's own default
LogFormat = Literal["auto", "json", "console"]
LogLevel = Literal["debug", "info", "warning", "error"]


class Secret:
    """A string that never shows itself in a repr, str, log line or exception."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one place that must send it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret is not serialisable")


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
        if self.coder_url is None:
            raise ConfigError("CODER_AGENT_URL", "is required (the Coder server's base URL)")
        if self.token is None:
            raise ConfigError(
                "CODER_AGENT_TOKEN",
                "no agent token: set CODER_AGENT_TOKEN, CODER_AGENT_TOKEN_FILE, "
                f"or the systemd credential {CREDENTIAL_NAME!r}",
            )
        return self.coder_url, self.token


# Tunables: variable suffix -> (field, parser). Flags reuse the same parsers.
_positive_seconds = positive_seconds
_choice = choice


def _path(raw: str) -> Path:
    return Path(socket_path(raw))


_boolean = boolean


_TUNABLES: dict[str, tuple[str, Callable[[str], object]]] = {
    "SHUTDOWN_BUDGET": ("shutdown_budget", _positive_seconds),
    "REQUEST_TIMEOUT": ("request_timeout", _positive_seconds),
    "AGENTAPI_TIMEOUT": ("agentapi_timeout", _positive_seconds),
    "STOP_FETCH_TIMEOUT": ("stop_fetch_timeout", _positive_seconds),
    "MODE": ("mode", _choice("events", "poll", "hooks")),
    "POLL_INTERVAL": ("poll_interval", _positive_seconds),
    "WORKING_DEBOUNCE": ("working_debounce", _positive_seconds),
    "AGENTAPI_STOP_TIMEOUT": ("agentapi_stop_timeout", _positive_seconds),
    "SOCKET": ("socket_path", _path),
    "STATUS_TRANSPORT": ("status_transport", _choice("auto", "socket", "http")),
    "LOG_LEVEL": ("log_level", _choice(*LOG_LEVELS)),
    "LOG_FORMAT": ("log_format", _choice(*LOG_FORMATS)),
    "TLS_VERIFY": ("tls_verify", _boolean),
}
TUNABLE_VARIABLES = tuple(PREFIX + suffix for suffix in _TUNABLES)
# `CODER_MCP_AI_AGENTAPI_URL=none`: there is no AgentAPI (hooks mode).
NO_AGENTAPI = "none"


def load_settings(
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, tuple[str, str]] | None = None,
) -> Settings:
    """Read and validate the configuration.

    `env` defaults to the process environment. `flags` maps a variable name to `(flag, value)`
    for values given on the command line; they win over the environment and errors name both.
    Raises ConfigError naming the first bad variable.
    """
    environment = Environment(env, flags)
    warnings: list[str] = []
    values: dict[str, object] = {}

    agentapi = environment.read("CODER_MCP_AI_AGENTAPI_URL", _agentapi_url, DEFAULT_AGENTAPI_URL)
    if agentapi is not None:
        values["agentapi_url"] = agentapi
    values["coder_url"] = environment.read("CODER_AGENT_URL", _url, None)
    values["token"] = _token(environment, warnings)
    values["agent_socket_path"] = environment.read(
        "CODER_AGENT_SOCKET_PATH", _agent_socket, DEFAULT_AGENT_SOCKET
    )
    values["task_id"] = environment.read("CODER_TASK_ID", _task_id, None)
    values["app_slug"] = environment.read("CODER_MCP_APP_STATUS_SLUG", _slug, None)
    for suffix, (attribute, parser) in _TUNABLES.items():
        if environment.is_set(PREFIX + suffix):
            values[attribute] = environment.read(PREFIX + suffix, parser, None)

    if agentapi is None:
        # There is no AgentAPI: a mode that watches one cannot work.
        if values.get("mode", "hooks") != "hooks":
            raise ConfigError(
                environment.name(PREFIX + "MODE"),
                f"cannot watch AgentAPI when CODER_MCP_AI_AGENTAPI_URL is {NO_AGENTAPI!r}",
            )
        values["mode"] = "hooks"
    warnings.extend(environment.misspelled())
    if values.get("tls_verify") is False:
        warnings.append(f"{PREFIX}TLS_VERIFY is off: the Coder server's certificate is not checked")
    if "socket_path" not in values:
        values["socket_path"] = Path(environment.default_socket_path())
    values["notify_socket"] = environment.read("NOTIFY_SOCKET", verbatim, "")
    values["watchdog_interval"] = _watchdog_interval(environment)
    values["warnings"] = tuple(warnings)
    known = {f.name for f in fields(Settings)}
    return Settings(**{k: v for k, v in values.items() if k in known})  # type: ignore[arg-type]


def _agentapi_url(raw: str) -> str | None:
    """AgentAPI's URL, or None for `none` (there is no AgentAPI: hooks mode)."""
    if raw.strip().lower() == NO_AGENTAPI:
        return None
    return _url(raw)


def _agent_socket(raw: str) -> Path:
    return Path(raw.strip())


def _task_id(raw: str) -> UUID:
    try:
        return UUID(raw.strip())
    except ValueError:
        raise ValueError("must be a UUID (the task's id)") from None


def _slug(raw: str) -> str:
    slug = raw.strip()
    if not _SLUG.match(slug):
        raise ValueError(
            f"{slug!r} is not an app slug (lower-case letters, digits, single hyphens)"
        )
    return slug


def _url(raw: str) -> str:
    value = raw.strip()
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError(f"{value!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL with a host")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")
    return value.rstrip("/")


def _token(environment: Environment, warnings: list[str]) -> Secret | None:
    direct = environment.read("CODER_AGENT_TOKEN", _token_value, None)
    if direct is not None:
        return direct
    path = environment.read("CODER_AGENT_TOKEN_FILE", verbatim, None)
    if path is not None:
        return _token_file("CODER_AGENT_TOKEN_FILE", Path(path), warnings)
    credentials = environment.read("CREDENTIALS_DIRECTORY", verbatim, "")
    if credentials:
        candidate = Path(credentials) / CREDENTIAL_NAME
        if candidate.exists():
            return _token_file(f"$CREDENTIALS_DIRECTORY/{CREDENTIAL_NAME}", candidate, warnings)
    return None


def _token_file(variable: str, path: Path, warnings: list[str]) -> Secret:
    try:
        info = path.stat()
        content = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(variable, f"token file {str(path)!r} does not exist") from None
    except PermissionError:
        raise ConfigError(variable, f"token file {str(path)!r} is not readable") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            variable, f"token file {str(path)!r} cannot be read ({type(exc).__name__})"
        ) from None
    if info.st_mode & stat.S_IROTH:
        warnings.append(f"{variable}: token file {str(path)!r} is readable by every user")
    try:
        return _token_value(content)
    except ValueError as exc:
        raise ConfigError(variable, str(exc)) from None


def _token_value(raw: str) -> Secret:
    """The token, checked; ValueError (never showing it) when it cannot be sent."""
    value = raw.strip()
    if not value:
        raise ValueError("the token is empty")
    if not _TOKEN.match(value):
        raise ValueError("the token has characters a header cannot carry")
    return Secret(value)


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
    )
    return environment.replaced(mapped).mapping(), inputs


def _under(directory: Path | None, name: str) -> Path | None:
    return None if directory is None else directory / name


def _watchdog_interval(environment: Environment) -> float | None:
    """Half the watchdog period systemd expects pings within, or None without a watchdog."""
    usec = environment.read("WATCHDOG_USEC", verbatim, "")
    pid = environment.read("WATCHDOG_PID", verbatim, "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None  # the watchdog is another process's (a parent that exec'd us kept its env)
    return int(usec) / 2_000_000
