"""Configuration, read once at start from the environment (and CLI flags), validated, frozen.

This is the only module that reads the environment, with one exception: the hooks' fast path
reads its four settings through `agent.hookconfig`, whose parsers this module uses too. Every
problem is a `ConfigError` naming the variable (and the flag, when the value came from one),
raised before anything starts. The agent token is held in a `Secret` whose repr and str never
show it.

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

from agent.errors import ConfigError
from agent.hookconfig import LOG_LEVELS, PREFIX, choice, positive_seconds
from agent.hookconfig import default_socket_path as _default_socket_path
from agent.hookconfig import socket_path as _socket_path

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
    return Path(_socket_path(raw))


def _boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"must be true or false, got {raw!r}")


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
    "LOG_FORMAT": ("log_format", _choice("auto", "json", "console")),
    "TLS_VERIFY": ("tls_verify", _boolean),
}
TUNABLE_VARIABLES = tuple(PREFIX + suffix for suffix in _TUNABLES)
# Every variable this program reads; a `CODER_TASK_AGENT_*` name outside it is a typo.
KNOWN_VARIABLES = (
    "CODER_AGENT_URL",
    "CODER_AGENT_TOKEN",
    "CODER_AGENT_TOKEN_FILE",
    "CODER_TASK_ID",
    "CODER_MCP_APP_STATUS_SLUG",
    "CODER_MCP_AI_AGENTAPI_URL",
    *TUNABLE_VARIABLES,
)
# `CODER_MCP_AI_AGENTAPI_URL=none`: there is no AgentAPI (hooks mode).
NO_AGENTAPI = "none"


def load_settings(
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, tuple[str, str]] | None = None,
) -> Settings:
    """Read and validate the configuration.

    `env` defaults to `os.environ`. `flags` maps a variable name to `(flag, value)` for values
    given on the command line; they win over the environment and errors name both.
    Raises ConfigError naming the first bad variable.
    """
    source = dict(os.environ if env is None else env)
    given = dict(flags or {})
    names: dict[str, str] = {}
    for variable, (flag, value) in given.items():
        source[variable] = value
        names[variable] = f"{flag} ({variable})"

    def name(variable: str) -> str:
        return names.get(variable, variable)

    def get(variable: str) -> str | None:
        value = source.get(variable)
        if value is None or (variable not in given and value.strip() == ""):
            return None
        return value

    warnings: list[str] = []
    values: dict[str, object] = {}

    agentapi = get("CODER_MCP_AI_AGENTAPI_URL")
    no_agentapi = agentapi is not None and agentapi.strip().lower() == NO_AGENTAPI
    if not no_agentapi:
        values["agentapi_url"] = _url(
            name("CODER_MCP_AI_AGENTAPI_URL"), agentapi or DEFAULT_AGENTAPI_URL
        )
    coder = get("CODER_AGENT_URL")
    values["coder_url"] = None if coder is None else _url(name("CODER_AGENT_URL"), coder)
    values["token"] = _token(source, warnings)

    agent_socket = get("CODER_AGENT_SOCKET_PATH")
    values["agent_socket_path"] = (
        Path(agent_socket.strip()) if agent_socket else DEFAULT_AGENT_SOCKET
    )

    task = get("CODER_TASK_ID")
    if task is not None:
        try:
            values["task_id"] = UUID(task.strip())
        except ValueError:
            raise ConfigError(name("CODER_TASK_ID"), "must be a UUID (the task's id)") from None

    slug = get("CODER_MCP_APP_STATUS_SLUG")
    if slug is not None:
        values["app_slug"] = _slug(name("CODER_MCP_APP_STATUS_SLUG"), slug)

    for suffix, (attribute, parser) in _TUNABLES.items():
        variable = PREFIX + suffix
        raw = get(variable)
        if raw is None:
            continue
        try:
            values[attribute] = parser(raw)
        except ValueError as exc:
            raise ConfigError(name(variable), str(exc)) from None

    if no_agentapi:
        # There is no AgentAPI: a mode that watches one cannot work.
        if values.get("mode", "hooks") != "hooks":
            raise ConfigError(
                name(PREFIX + "MODE"),
                f"cannot watch AgentAPI when CODER_MCP_AI_AGENTAPI_URL is {NO_AGENTAPI!r}",
            )
        values["mode"] = "hooks"
    warnings.extend(misspelled_variables(source))
    if values.get("tls_verify") is False:
        warnings.append(f"{PREFIX}TLS_VERIFY is off: the Coder server's certificate is not checked")
    if "socket_path" not in values:
        values["socket_path"] = default_socket_path(source)
    values.update(notify_socket=source.get("NOTIFY_SOCKET", ""), **_watchdog(source))
    values["warnings"] = tuple(warnings)
    known = {f.name for f in fields(Settings)}
    return Settings(**{k: v for k, v in values.items() if k in known})  # type: ignore[arg-type]


def misspelled_variables(env: Mapping[str, str]) -> list[str]:
    """A warning for each `CODER_TASK_AGENT_*` variable this program does not read.

    A typo (`CODER_TASK_AGENT_SHUTDOWN_BUGDET`) would otherwise be ignored in silence and the
    default used; the warning names the nearest known variable.
    """
    problems = []
    for variable in sorted(env):
        if not variable.startswith(PREFIX) or variable in KNOWN_VARIABLES:
            continue
        import difflib  # noqa: PLC0415 - only for a misspelling: every command reads settings

        # Compared without the shared prefix, which would make every name look close.
        candidates = {
            known.removeprefix(PREFIX).removeprefix("CODER_"): known for known in KNOWN_VARIABLES
        }
        nearest = difflib.get_close_matches(
            variable.removeprefix(PREFIX), list(candidates), n=1, cutoff=0.6
        )
        hint = f"; did you mean {candidates[nearest[0]]}?" if nearest else ""
        problems.append(f"{variable} is not a setting of this program and is ignored{hint}")
    return problems


def default_socket_path(env: Mapping[str, str]) -> Path:
    """Where the report socket lives when CODER_TASK_AGENT_SOCKET is not set (see hookconfig)."""
    return Path(_default_socket_path(env))


def _slug(variable: str, raw: str) -> str:
    slug = raw.strip()
    if not _SLUG.match(slug):
        raise ConfigError(
            variable, f"{slug!r} is not an app slug (lower-case letters, digits, single hyphens)"
        )
    return slug


def _url(variable: str, raw: str) -> str:
    value = raw.strip()
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ConfigError(variable, f"{value!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(variable, f"{value!r} is not an http(s) URL with a host")
    if parts.username or parts.password:
        raise ConfigError(variable, "must not carry credentials")
    if parts.query or parts.fragment:
        raise ConfigError(variable, "must not have a query or fragment")
    return value.rstrip("/")


def _token(env: Mapping[str, str], warnings: list[str]) -> Secret | None:
    direct = env.get("CODER_AGENT_TOKEN", "")
    if direct.strip():
        return _checked_token("CODER_AGENT_TOKEN", direct)
    path = env.get("CODER_AGENT_TOKEN_FILE", "")
    if path.strip():
        return _token_file("CODER_AGENT_TOKEN_FILE", Path(path), warnings)
    credentials = env.get("CREDENTIALS_DIRECTORY", "")
    if credentials:
        candidate = Path(credentials) / CREDENTIAL_NAME
        if candidate.exists():
            return _token_file(f"$CREDENTIALS_DIRECTORY/{CREDENTIAL_NAME}", candidate, warnings)
    return None


def _token_file(variable: str, path: Path, warnings: list[str]) -> Secret:
    try:
        info = path.stat()
        text = path.read_text(encoding="utf-8")
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
    return _checked_token(variable, text)


def _checked_token(variable: str, raw: str) -> Secret:
    value = raw.strip()
    if not value:
        raise ConfigError(variable, "the token is empty")
    if not _TOKEN.match(value):
        raise ConfigError(variable, "the token has characters a header cannot carry")
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

    Returns the environment to load settings from (ours win where both are set) and the inputs
    that have no variable of ours. Never raises: a task id that is not a UUID is dropped (and
    reported in `problems`) so that the rest of the stop still happens.
    """
    source = dict(os.environ if env is None else env)
    merged = dict(source)
    problems: list[str] = []

    def arg(name: str) -> str:
        return source.get(name, "").strip()

    task_variable = "CODER_TASK_ID" if source.get("CODER_TASK_ID", "").strip() else "ARG_TASK_ID"
    task = source.get(task_variable, "").strip()
    merged.pop("CODER_TASK_ID", None)
    if task:
        try:
            merged["CODER_TASK_ID"] = str(UUID(task))
        except ValueError:
            problems.append(f"{task_variable}: {task!r} is not a UUID; no snapshot is taken")

    if not source.get("CODER_MCP_AI_AGENTAPI_URL", "").strip() and arg("ARG_AGENTAPI_PORT"):
        port = arg("ARG_AGENTAPI_PORT")
        if port.isascii() and port.isdigit() and 0 < int(port) < 65536:
            merged["CODER_MCP_AI_AGENTAPI_URL"] = f"http://localhost:{int(port)}"
        else:
            problems.append(f"ARG_AGENTAPI_PORT: {port!r} is not a port; using 3284")

    module_dir = arg("ARG_MODULE_DIR_NAME")
    home = source.get("HOME", "")
    module_path = Path(home) / module_dir if module_dir and home else None
    pid_file = arg("ARG_PID_FILE_PATH")
    state_file = arg("ARG_STATE_FILE_PATH")
    inputs = StopHookInputs(
        snapshot=source.get("ARG_TASK_LOG_SNAPSHOT", "true").strip() == "true",
        state_persistence=arg("ARG_ENABLE_STATE_PERSISTENCE") == "true",
        pid_file=Path(pid_file) if pid_file else _under(module_path, "agentapi.pid"),
        state_file=Path(state_file) if state_file else _under(module_path, "agentapi-state.json"),
        problems=tuple(problems),
    )
    return merged, inputs


def _under(directory: Path | None, name: str) -> Path | None:
    return None if directory is None else directory / name


def _watchdog(env: Mapping[str, str]) -> dict[str, float | None]:
    return {"watchdog_interval": _watchdog_interval(env)}


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Half the watchdog period systemd expects pings within, or None without a watchdog."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None  # the watchdog is another process's (a parent that exec'd us kept its env)
    return int(usec) / 2_000_000
