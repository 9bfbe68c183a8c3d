"""The whole configuration read and validated with the standard library's light parts only.

Why a module apart from `agent.settings`: `Settings` is a frozen dataclass of paths and a UUID,
and importing what it is built from (dataclasses, inspect, pathlib, typing, uuid) costs the
one-shot snapshot about a fifth of Coder's reference stop script, whose time it must stay
within (issue 14). So every variable is read, parsed and checked here, once, into a
`Configuration` of plain values (paths as text, the task id as its canonical text), and
`agent.settings.load_settings` builds `Settings` from it: one reading, one set of rules, one
error for one bad variable, whichever path reads it. The one-shot snapshot's standard-library
path (`agent.stop.oneshot`) runs from a `Configuration` directly.

Every problem is a `ConfigError` naming the variable (and the flag, when the value came from
one), raised before anything starts. The agent token is held in a `Secret` whose repr and str
never show it. Variables are read through `agent.environment`, the one reader.
"""

from __future__ import annotations

import os
import re
import stat

from agent.environment import (
    LOG_FORMATS,
    LOG_LEVELS,
    PREFIX,
    Environment,
    boolean,
    choice,
    positive_seconds,
    socket_path,
    verbatim,
)
from agent.errors import ConfigError

# A plain constant that type checkers treat as true: `typing` is not imported on this path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

CREDENTIAL_NAME = "coder-agent-token"
DEFAULT_AGENTAPI_URL = "http://localhost:3284"
# The Coder agent's own default for CODER_AGENT_SOCKET_PATH (Coder >= v2.32).
DEFAULT_AGENT_SOCKET = "/tmp/coder-agent.sock"  # noqa: S108 - the agent's own default
# `CODER_MCP_AI_AGENTAPI_URL=none`: there is no AgentAPI (hooks mode).
NO_AGENTAPI = "none"
# Coder's own rule for app slugs: lower-case letters and digits, single inner hyphens.
_SLUG = re.compile(r"^[a-z0-9](-?[a-z0-9])*$")
# A token travels in an HTTP header: visible ASCII only. Checked here so that no HTTP library
# ever gets the chance to echo a malformed value in one of its own error messages.
_TOKEN = re.compile(r"^[\x21-\x7e]+$")


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


# Tunables: variable suffix -> (field, parser). Flags reuse the same parsers. (`Settings`
# turns the socket path into a Path.)
TUNABLES: dict[str, tuple[str, Callable[[str], object]]] = {
    "SHUTDOWN_BUDGET": ("shutdown_budget", positive_seconds),
    "REQUEST_TIMEOUT": ("request_timeout", positive_seconds),
    "AGENTAPI_TIMEOUT": ("agentapi_timeout", positive_seconds),
    "STOP_FETCH_TIMEOUT": ("stop_fetch_timeout", positive_seconds),
    "MODE": ("mode", choice("events", "poll", "hooks")),
    "POLL_INTERVAL": ("poll_interval", positive_seconds),
    "WORKING_DEBOUNCE": ("working_debounce", positive_seconds),
    "AGENTAPI_STOP_TIMEOUT": ("agentapi_stop_timeout", positive_seconds),
    "SOCKET": ("socket_path", socket_path),
    "STATUS_TRANSPORT": ("status_transport", choice("auto", "socket", "http")),
    "LOG_LEVEL": ("log_level", choice(*LOG_LEVELS)),
    "LOG_FORMAT": ("log_format", choice(*LOG_FORMATS)),
    "TLS_VERIFY": ("tls_verify", boolean),
}


class Configuration:
    """Every setting as read and checked, in plain values; `agent.settings.Settings` has the
    same fields (its paths are Paths, its task id a UUID) and the same defaults."""

    agentapi_url: str
    coder_url: str | None
    token: Secret | None
    task_id: str | None  # canonical UUID text
    app_slug: str | None
    shutdown_budget: float
    request_timeout: float
    agentapi_timeout: float
    stop_fetch_timeout: float
    mode: str
    poll_interval: float
    working_debounce: float
    agentapi_stop_timeout: float
    socket_path: str
    status_transport: str
    agent_socket_path: str
    log_level: str
    log_format: str
    tls_verify: bool
    notify_socket: str
    watchdog_interval: float | None
    warnings: tuple[str, ...]

    def __init__(self, values: Mapping[str, object]) -> None:
        # The defaults are Settings' own (tests/test_configuration.py holds them equal).
        defaults: dict[str, object] = {
            "agentapi_url": DEFAULT_AGENTAPI_URL,
            "coder_url": None,
            "token": None,
            "task_id": None,
            "app_slug": None,
            "shutdown_budget": 5.0,
            "request_timeout": 5.0,
            "agentapi_timeout": 5.0,
            "stop_fetch_timeout": 1.5,
            "mode": "events",
            "poll_interval": 1.0,
            "working_debounce": 3.0,
            "agentapi_stop_timeout": 10.0,
            "status_transport": "auto",
            "agent_socket_path": DEFAULT_AGENT_SOCKET,
            "log_level": "info",
            "log_format": "auto",
            "tls_verify": True,
            "notify_socket": "",
            "watchdog_interval": None,
            "warnings": (),
        }
        for name, value in {**defaults, **values}.items():
            setattr(self, name, value)

    def fields(self) -> dict[str, object]:
        """Every field and its value."""
        return dict(vars(self))

    def require_coder(self) -> tuple[str, Secret]:
        """The Coder URL and token, or a ConfigError naming what is missing."""
        return require_coder(self.coder_url, self.token)


def require_coder(coder_url: str | None, token: Secret | None) -> tuple[str, Secret]:
    """`coder_url` and `token`, or a ConfigError naming what is missing."""
    if coder_url is None:
        raise ConfigError("CODER_AGENT_URL", "is required (the Coder server's base URL)")
    if token is None:
        raise ConfigError(
            "CODER_AGENT_TOKEN",
            "no agent token: set CODER_AGENT_TOKEN, CODER_AGENT_TOKEN_FILE, "
            f"or the systemd credential {CREDENTIAL_NAME!r}",
        )
    return coder_url, token


def read_configuration(environment: Environment) -> Configuration:
    """Read and validate the configuration; raises ConfigError naming the first bad variable."""
    warnings: list[str] = []
    values: dict[str, object] = {}

    agentapi = environment.read("CODER_MCP_AI_AGENTAPI_URL", _agentapi_url, DEFAULT_AGENTAPI_URL)
    if agentapi is not None:
        values["agentapi_url"] = agentapi
    values["coder_url"] = environment.read("CODER_AGENT_URL", url, None)
    values["token"] = _token(environment, warnings)
    values["agent_socket_path"] = environment.read(
        "CODER_AGENT_SOCKET_PATH", _stripped, DEFAULT_AGENT_SOCKET
    )
    values["task_id"] = environment.read("CODER_TASK_ID", task_id, None)
    values["app_slug"] = environment.read("CODER_MCP_APP_STATUS_SLUG", _slug, None)
    for suffix, (attribute, parser) in TUNABLES.items():
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
        values["socket_path"] = environment.default_socket_path()
    values["notify_socket"] = environment.read("NOTIFY_SOCKET", verbatim, "")
    values["watchdog_interval"] = _watchdog_interval(environment)
    values["warnings"] = tuple(warnings)
    return Configuration(values)


def task_id(raw: str) -> str:
    """The task id as canonical UUID text; ValueError when it is not a UUID.

    Parsed exactly as `uuid.UUID(raw.strip())` parses it (without importing `uuid`, whose
    import costs more than this whole module): braces, `urn:`/`uuid:` and hyphens anywhere are
    dropped, then 32 hexadecimal digits as `int(..., 16)` reads them.
    """
    problem = "must be a UUID (the task's id)"
    digits = raw.strip().replace("urn:", "").replace("uuid:", "").strip("{}").replace("-", "")
    if len(digits) != 32:
        raise ValueError(problem)
    try:
        value = int(digits, 16)
    except ValueError:
        raise ValueError(problem) from None
    if not 0 <= value < 1 << 128:
        raise ValueError(problem)
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def url(raw: str) -> str:
    """An http(s) URL with a host, no credentials, query or fragment; its trailing `/` dropped.

    ValueError otherwise.
    """
    from urllib.parse import urlsplit  # noqa: PLC0415 - one import, only when a URL is set

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


def _agentapi_url(raw: str) -> str | None:
    """AgentAPI's URL, or None for `none` (there is no AgentAPI: hooks mode)."""
    if raw.strip().lower() == NO_AGENTAPI:
        return None
    return url(raw)


def _stripped(raw: str) -> str:
    return raw.strip()


def _slug(raw: str) -> str:
    slug = raw.strip()
    if not _SLUG.match(slug):
        raise ValueError(
            f"{slug!r} is not an app slug (lower-case letters, digits, single hyphens)"
        )
    return slug


def _token(environment: Environment, warnings: list[str]) -> Secret | None:
    direct = environment.read("CODER_AGENT_TOKEN", _token_value, None)
    if direct is not None:
        return direct
    path = environment.read("CODER_AGENT_TOKEN_FILE", verbatim, None)
    if path is not None:
        return _token_file("CODER_AGENT_TOKEN_FILE", path, warnings)
    credentials = environment.read("CREDENTIALS_DIRECTORY", verbatim, "")
    if credentials:
        candidate = os.path.join(credentials, CREDENTIAL_NAME)
        if os.path.exists(candidate):
            return _token_file(f"$CREDENTIALS_DIRECTORY/{CREDENTIAL_NAME}", candidate, warnings)
    return None


def _token_file(variable: str, path: str, warnings: list[str]) -> Secret:
    try:
        info = os.stat(path)
        with open(path, encoding="utf-8") as file:
            content = file.read()
    except FileNotFoundError:
        raise ConfigError(variable, f"token file {path!r} does not exist") from None
    except PermissionError:
        raise ConfigError(variable, f"token file {path!r} is not readable") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            variable, f"token file {path!r} cannot be read ({type(exc).__name__})"
        ) from None
    if info.st_mode & stat.S_IROTH:
        warnings.append(f"{variable}: token file {path!r} is readable by every user")
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


def _watchdog_interval(environment: Environment) -> float | None:
    """Half the watchdog period systemd expects pings within, or None without a watchdog."""
    usec = environment.read("WATCHDOG_USEC", verbatim, "")
    pid = environment.read("WATCHDOG_PID", verbatim, "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None  # the watchdog is another process's (a parent that exec'd us kept its env)
    return int(usec) / 2_000_000
