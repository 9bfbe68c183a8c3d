"""The configuration: the table of every variable the program reads (`VARIABLES`), the one
reader of the environment (`Environment`, tests/test_architecture.py checks it is the only one)
and one validated `Settings`. A bad value fails at start naming its variable (and its flag); a
`CODER_TASK_AGENT_*` name set but missing from the table is warned about as a misspelling.

On the hooks' fast path (issue 14): only the cheap standard library at import (no dataclasses,
pathlib, typing, uuid or re); `read(only=HOOK_FIELDS)` reads what that path needs and
`Settings.full()` the rest. The agent token is held in a `Secret`, which never shows it.
"""

from __future__ import annotations

import errno
import os
import stat

from agent.errors import ConfigError

# A plain constant that type checkers treat as true: `typing` is not imported on this path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Literal, TypeVar

    T = TypeVar("T")
    D = TypeVar("D")
    Flags = Mapping[str, tuple[str, str]]  # variable -> (flag, value) from the command line
    Mode = Literal["events", "poll", "hooks"]
    StatusTransport = Literal["auto", "socket", "http"]
    LogLevel = Literal["debug", "info", "warning", "error"]
    LogFormat = Literal["auto", "json", "console"]
else:
    Mode = StatusTransport = LogLevel = LogFormat = str

PREFIX = "CODER_TASK_AGENT_"
CREDENTIAL_NAME = "coder-agent-token"
DEFAULT_AGENTAPI_URL = "http://localhost:3284"
# The Coder agent's own default for CODER_AGENT_SOCKET_PATH (Coder >= v2.32).
DEFAULT_AGENT_SOCKET = "/tmp/coder-agent.sock"  # noqa: S108 - the agent's own default
# `CODER_MCP_AI_AGENTAPI_URL=none`: there is no AgentAPI (hooks mode).
NO_AGENTAPI = "none"
# The longest duration a setting may give: a day, more than any wait here needs and far below
# what the platform's timeouts hold (1e20 s passed, then overflowed `settimeout`: exit 5).
MAX_SECONDS = 86_400.0
# Not `math.inf`: `math` is an extension module the hooks' path would load for this alone.
_INFINITY = float("inf")


# -- parsers: text in, a value out, ValueError (never showing a secret) otherwise -------------


def positive_seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"must be a number of seconds, got {raw!r}") from None
    if not 0 < value <= MAX_SECONDS:  # NaN compares false both ways: refused too
        raise ValueError(
            f"must be a positive number of seconds, at most {MAX_SECONDS:g}, got {raw!r}"
        )
    return value


def choice(*allowed: str) -> Callable[[str], str]:
    """A parser accepting one of `allowed` (case and surrounding blanks ignored)."""

    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}, got {raw!r}")
        return value

    return parse


def boolean(raw: str) -> bool:
    """true/false, yes/no, on/off, 1/0 (any case)."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"must be true or false, got {raw!r}")


def socket_path(raw: str) -> str:
    """Refuses a blank path (only a flag can give one)."""
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw


def text(raw: str) -> str:
    return raw.strip()


def verbatim(raw: str) -> str:
    return raw


def url(raw: str) -> str:
    """An http(s) URL with a host, no credentials, query or fragment; its trailing `/` dropped."""
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
    # What neither HTTP client can send is refused here, naming the variable, not met later as
    # an error of the client's own (a host the IDNA codec refuses, bytes that were not UTF-8,
    # a space or a non-ASCII path): a host in Unicode goes as its IDNA form, the rest as it is.
    try:
        host = parts.hostname.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"{value!r} has a host that is not a valid name") from None
    if not _visible_ascii(host + value.replace(parts.netloc, "", 1)):
        raise ValueError(f"{value!r} has characters a request cannot carry (percent-encode them)")
    return value.rstrip("/")


def _visible_ascii(text: str) -> bool:
    return all("!" <= c <= "~" for c in text)


def coder_url(raw: str) -> str:
    """Coder's base URL: routes are added below it, so one ending in `/api/v2` would 404."""
    value = url(raw)
    if value.lower().endswith(("/api/v2", "/api")):
        base = value[: value.lower().rindex("/api")]
        raise ValueError(
            f"{value!r} ends in the API's path: give the deployment's base URL ({base!r}); "
            "the routes under /api/v2 are added to it"
        )
    return value


def agentapi_url(raw: str) -> str | None:
    """AgentAPI's URL, or None for `none` (hooks mode)."""
    if raw.strip().lower() == NO_AGENTAPI:
        return None
    return url(raw)


def task_id(raw: str) -> str:
    """Canonical UUID text, parsed exactly as `uuid.UUID(raw.strip())` parses it (`uuid` costs
    more to import than this module): braces, `urn:`/`uuid:`, hyphens dropped, 32 hex digits."""
    problem = "must be a UUID (the task's id)"
    digits = raw.strip().replace("urn:", "").replace("uuid:", "").strip("{}").replace("-", "")
    if len(digits) != 32:
        raise ValueError(problem)
    try:
        value = int(digits, 16)  # never negative (no `-` is left) nor 1 << 128 or more
    except ValueError:
        raise ValueError(problem) from None
    hexed = f"{value:032x}"
    return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"


# Coder's own rule for app slugs: lower-case letters and digits, single inner hyphens.
_SLUG_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


def slug(raw: str) -> str:
    value = raw.strip()
    # An empty part: an empty slug, a hyphen at either end or two in a row.
    if not set(value) <= _SLUG_CHARACTERS or not all(value.split("-")):
        raise ValueError(
            f"{value!r} is not an app slug (lower-case letters, digits, single hyphens)"
        )
    return value


def token(raw: str) -> Secret:
    """Visible ASCII only (it travels in a header), checked here so that no HTTP library can
    echo a malformed token in its own error message."""
    value = raw.strip()
    if not value:
        raise ValueError("the token is empty")
    if not _visible_ascii(value):
        raise ValueError("the token has characters a header cannot carry")
    return Secret(value)


def watchdog_interval(raw: str) -> float | None:
    """Half of systemd's watchdog period (`WATCHDOG_USEC`), or None when it asks for none."""
    value = raw.strip()
    if not value.isascii() or not value.isdigit() or int(value) == 0:
        return None
    return int(value) / 2_000_000


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


# -- the table --------------------------------------------------------------------------------


class Variable:
    """One variable: the `Settings` field it sets, its parser and the field's default."""

    __slots__ = ("default", "field", "name", "parse")

    def __init__(
        self, name: str, field: str | None, parse: Callable[[str], object], default: object
    ) -> None:
        self.name = name
        self.field = field
        self.parse = parse
        self.default = default


# Every variable this program reads (what each is: docs/configuration.md): those that set a
# `Settings` field (variable, field, parser, field default), then those read by a rule of their
# own (below) or by another module through `Environment`, which refuses a name missing here.
_S = positive_seconds
_TABLE: tuple[tuple[str, str | None, Callable[[str], object], object], ...] = (
    ("CODER_AGENT_URL", "coder_url", coder_url, None),
    # Else CODER_AGENT_TOKEN_FILE, else systemd's credential.
    ("CODER_AGENT_TOKEN", "token", token, None),
    ("CODER_AGENT_SOCKET_PATH", "agent_socket_path", text, DEFAULT_AGENT_SOCKET),
    ("CODER_TASK_ID", "task_id", task_id, None),
    ("CODER_MCP_APP_STATUS_SLUG", "app_slug", slug, None),
    ("CODER_MCP_AI_AGENTAPI_URL", "agentapi_url", agentapi_url, DEFAULT_AGENTAPI_URL),
    # 5 s leaves AgentAPI half of the 10 s a container gets between SIGTERM and SIGKILL.
    (PREFIX + "SHUTDOWN_BUDGET", "shutdown_budget", _S, 5.0),
    # A hook runs inside the agent's turn (Claude Code's PreToolUse: before every tool call).
    (PREFIX + "HOOK_BUDGET", "hook_budget", _S, 1.0),
    # Retries happen inside the caller's own deadline.
    (PREFIX + "REQUEST_TIMEOUT", "request_timeout", _S, 5.0),
    # GET /status and /messages block while a message is being sent (up to ~18 s), so a
    # timeout here means "no observation", never "AgentAPI is dead".
    (PREFIX + "AGENTAPI_TIMEOUT", "agentapi_timeout", _S, 5.0),
    # Short: AgentAPI may be stopping or blocked.
    (PREFIX + "STOP_FETCH_TIMEOUT", "stop_fetch_timeout", _S, 1.5),
    (PREFIX + "MODE", "mode", choice("events", "poll", "hooks"), "events"),
    (PREFIX + "POLL_INTERVAL", "poll_interval", _S, 1.0),
    (PREFIX + "WORKING_DEBOUNCE", "working_debounce", _S, 3.0),
    # AgentAPI's own shutdown gives its HTTP server 5 s and then its agent process 5 s.
    (PREFIX + "AGENTAPI_STOP_TIMEOUT", "agentapi_stop_timeout", _S, 10.0),
    # Unset: `Environment.default_socket_path` when read; no socket when built directly.
    (PREFIX + "SOCKET", "socket_path", socket_path, None),
    # The agent's socket (no token), the HTTP PATCH, or `auto`: agent.coder.route decides.
    (PREFIX + "STATUS_TRANSPORT", "status_transport", choice("auto", "socket", "http"), "auto"),
    (PREFIX + "LOG_LEVEL", "log_level", choice("debug", "info", "warning", "error"), "info"),
    (PREFIX + "LOG_FORMAT", "log_format", choice("auto", "json", "console"), "auto"),
    (PREFIX + "TLS_VERIFY", "tls_verify", boolean, True),
    # systemd's. The watchdog is this process's only when WATCHDOG_PID says so (or is unset).
    ("NOTIFY_SOCKET", "notify_socket", verbatim, ""),
    ("WATCHDOG_USEC", "watchdog_interval", watchdog_interval, None),
)
# fmt: off
_ELSEWHERE = (
    "CODER_AGENT_TOKEN_FILE", "WATCHDOG_PID", "RUNTIME_DIRECTORY", "CREDENTIALS_DIRECTORY",
    "XDG_RUNTIME_DIR", "HOME",
    # The CA conventions httpx follows (proxies are a family of names: `Environment.proxies`).
    "SSL_CERT_FILE", "SSL_CERT_DIR",
    # What Coder's agentapi module hands its stop script (agent.stop.inputs).
    "ARG_TASK_ID", "ARG_AGENTAPI_PORT", "ARG_MODULE_DIR_NAME", "ARG_PID_FILE_PATH",
    "ARG_STATE_FILE_PATH", "ARG_TASK_LOG_SNAPSHOT", "ARG_ENABLE_STATE_PERSISTENCE",
    # Read by our OpenCode plugin (agent/hooks/opencode.js), not by Python; listed so that a
    # daemon or hook that inherits it does not warn about it as a misspelling.
    PREFIX + "COMMAND",
)
# fmt: on
VARIABLES = {name: Variable(name, field, parse, default) for name, field, parse, default in _TABLE}
VARIABLES.update({name: Variable(name, None, verbatim, None) for name in _ELSEWHERE})
_BY_FIELD = {v.field: v for v in VARIABLES.values() if v.field is not None}  # in table order
# What the hooks' fast path reads: where a daemon listens, how to log, how long it may take.
HOOK_FIELDS = frozenset(
    {"socket_path", "log_level", "log_format", "shutdown_budget", "hook_budget"}
)
_NOT_ALONE = frozenset({"token", "agentapi_url", "mode", "watchdog_interval"})  # own rules


# -- the one reader -----------------------------------------------------------------------


class Environment:
    """The process environment (or a given mapping, copied once) and the command line's settings:
    `flags` maps a variable to `(flag, value)`, which wins over the environment; errors name both.
    """

    __slots__ = ("_flags", "_source")

    def __init__(self, env: Mapping[str, str] | None = None, flags: Flags | None = None) -> None:
        self._source = dict(os.environ if env is None else env)
        self._flags = dict(flags or {})
        for variable in self._flags:
            _known(variable)

    def name(self, variable: str) -> str:
        """How errors name `variable`: `--flag (VARIABLE)` when a flag set it."""
        if variable in self._flags:
            return f"{self._flags[variable][0]} ({variable})"
        return variable

    def is_set(self, variable: str) -> bool:
        """Whether a flag or a non-blank variable gives `variable` a value."""
        _known(variable)
        return variable in self._flags or bool(self._source.get(variable, "").strip())

    def read(self, variable: str, parse: Callable[[str], T], default: D) -> T | D:
        """`variable` parsed, from its flag (always parsed) else the environment (unset or blank:
        `default`). A ValueError from `parse` becomes a ConfigError naming the variable."""
        _known(variable)
        if variable in self._flags:
            raw = self._flags[variable][1]
        else:
            raw = self._source.get(variable, "")
            if not raw.strip():
                return default
        try:
            return parse(raw)
        except ValueError as exc:
            raise ConfigError(self.name(variable), str(exc)) from None

    def replaced(self, values: Mapping[str, str | None]) -> Environment:
        """This environment with `values` set (None: unset), the flags kept."""
        for variable in values:
            _known(variable)
        merged = {**self._source, **values}
        kept = {name: value for name, value in merged.items() if value is not None}
        return Environment(kept, self._flags)

    def proxies(self) -> dict[str, str]:
        """The proxy variables set, as httpx and urllib find them: `*_proxy` in any case."""
        return {
            name: value
            for name, value in self._source.items()
            if name.lower().endswith("_proxy") and value.strip()
        }

    def mapping(self) -> dict[str, str]:
        """A copy of the variables (flags not applied)."""
        return dict(self._source)

    def lookalikes(self, variable: str) -> list[str]:
        """Unknown variables set whose names are close to `variable` (`CODER_TASKID`): outside
        our prefix `misspelled` cannot tell, so these are named only when `variable` is missing."""
        import difflib  # noqa: PLC0415 - only when a setting is missing

        _known(variable)
        unknown = [v for v in self._source if v not in VARIABLES and self._source[v].strip()]
        return sorted(difflib.get_close_matches(variable, unknown, n=3, cutoff=0.85))

    def misspelled(self) -> list[str]:
        """A warning, naming the nearest known variable, for each `CODER_TASK_AGENT_*` variable
        set that is not in the table: a typo would otherwise leave the default in silence."""
        unknown = sorted(v for v in self._source if v.startswith(PREFIX) and v not in VARIABLES)
        if not unknown:
            return []
        import difflib  # noqa: PLC0415 - only for a misspelling

        # Compared without the shared prefix, which would make every name look close.
        candidates = {
            known.removeprefix(PREFIX).removeprefix("CODER_"): known
            for known in VARIABLES
            if known.startswith("CODER_")
        }
        problems = []
        for variable in unknown:
            nearest = difflib.get_close_matches(
                variable.removeprefix(PREFIX), list(candidates), n=1, cutoff=0.6
            )
            hint = f"; did you mean {candidates[nearest[0]]}?" if nearest else ""
            problems.append(f"{variable} is not a setting of this program and is ignored{hint}")
        return problems

    def default_socket_path(self) -> str:
        """systemd's RuntimeDirectory (private to the unit's user), else the user's XDG runtime
        directory, else a per-user directory under /tmp that the daemon creates with mode 0700."""
        runtime = self.read("RUNTIME_DIRECTORY", verbatim, "").split(":")[0]
        if runtime:
            return os.path.join(runtime, "report.sock")
        xdg = self.read("XDG_RUNTIME_DIR", verbatim, "")
        if xdg:
            return os.path.join(xdg, "coder-task-agent", "report.sock")
        return f"/tmp/coder-task-agent-{os.getuid()}/report.sock"  # noqa: S108


def _known(variable: str) -> None:
    if variable not in VARIABLES:
        raise LookupError(f"{variable} is not in agent.config.VARIABLES")


# -- the configuration ----------------------------------------------------------------------

FIELDS = (*_BY_FIELD, "warnings")


class Settings:
    """Everything the program is configured with, immutable: `read` builds it, tests build it
    directly, and a value given directly goes through its variable's parser as text (a Path or
    UUID is kept as its text). Read with `only=`, it holds those fields alone; `full()` reads
    the rest."""

    __slots__ = (*FIELDS, "_partial", "masks")

    agentapi_url: str
    coder_url: str | None
    token: Secret | None
    task_id: str | None  # canonical UUID text
    app_slug: str | None
    shutdown_budget: float
    hook_budget: float
    request_timeout: float
    agentapi_timeout: float
    stop_fetch_timeout: float
    mode: Mode
    poll_interval: float
    working_debounce: float
    agentapi_stop_timeout: float
    socket_path: str | None
    status_transport: StatusTransport
    agent_socket_path: str
    log_level: LogLevel
    log_format: LogFormat
    tls_verify: bool
    notify_socket: str
    watchdog_interval: float | None
    warnings: tuple[str, ...]  # worth a warning, not a refusal (TLS off...)
    masks: tuple[str, ...]  # what agent.log masks: the token
    _partial: Environment | None

    def __init__(self, **values: object) -> None:
        unknown = sorted(values.keys() - set(FIELDS))
        if unknown:
            raise TypeError(f"Settings has no field {unknown[0]!r}")
        checked = {
            name: _checked(variable, values.get(name, variable.default))
            for name, variable in _BY_FIELD.items()
        }
        checked["warnings"] = tuple(values.get("warnings", ()))  # type: ignore[arg-type]
        self._fill(checked)

    def _fill(self, values: Mapping[str, object], partial: Environment | None = None) -> Settings:
        """Sets `values`, checked already; `partial`: the environment of settings read in part."""
        for name, value in values.items():
            object.__setattr__(self, name, value)
        if partial is None:
            secret = values["token"]
            masks: tuple[str, ...] = (secret.reveal(),) if isinstance(secret, Secret) else ()
        else:
            masks = _token_texts(partial)
        object.__setattr__(self, "masks", masks)
        object.__setattr__(self, "_partial", partial)
        return self

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Settings are immutable: cannot set {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Settings):
            return NotImplemented
        return self.fields() == other.fields()

    def __hash__(self) -> int:
        return hash(tuple(self.fields().items()))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self.fields().items())
        return f"Settings({shown})"

    def fields(self) -> dict[str, object]:
        """Every field read and its value."""
        return {name: getattr(self, name) for name in FIELDS if hasattr(self, name)}

    def replace(self, **changes: object) -> Settings:
        """These settings with `changes`, validated."""
        if self._partial is not None:
            raise ValueError("partly read settings: use full() first")
        return Settings(**{**self.fields(), **changes})

    def full(self) -> Settings:
        """All of the configuration (read now if these were read in part); raises ConfigError
        naming the first bad variable."""
        if self._partial is None:
            return self
        return read(self._partial)

    @property
    def hooks_mode(self) -> bool:
        """No AgentAPI to watch (and no snapshot to save): status from the agent's hooks only."""
        return self.mode == "hooks"

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


def _checked(variable: Variable, value: object) -> object:
    """A value given directly for `variable`'s field, as its parser reads its text."""
    if value is None:
        if variable.default is None:
            return None
        raise ConfigError(variable.name, "must be set")
    if variable.field == "token":
        if not isinstance(value, Secret):
            raise ConfigError(variable.name, "must be a Secret")
        return value
    if variable.field == "watchdog_interval":
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0 < value < _INFINITY
        ):
            raise ConfigError(variable.name, "must be a positive number of microseconds")
        return float(value)
    if isinstance(value, bool):
        value = "true" if value else "false"
    try:
        parsed = variable.parse(os.fspath(value) if isinstance(value, os.PathLike) else str(value))
    except ValueError as exc:
        raise ConfigError(variable.name, str(exc)) from None
    if parsed is None:
        raise ConfigError(variable.name, f"must be set, got {value!r}")
    return parsed


def read(
    env: Mapping[str, str] | Environment | None = None,
    flags: Flags | None = None,
    *,
    only: Iterable[str] | None = None,
) -> Settings:
    """The configuration, validated; raises ConfigError naming the first bad variable.

    `env`: the process environment by default. `flags`: variable -> `(flag, value)` from the
    command line. `only`: these fields alone (HOOK_FIELDS, for the light path).
    """
    environment = env if isinstance(env, Environment) else Environment(env, flags)
    values: dict[str, object] = {}
    for name in _BY_FIELD if only is None else only:
        if only is not None and name in _NOT_ALONE:
            raise ValueError(f"{name} has a rule of its own: it cannot be read alone")
        variable = _BY_FIELD[name]
        values[name] = environment.read(variable.name, variable.parse, variable.default)
    if values.get("socket_path", "") is None:  # read, and unset
        values["socket_path"] = environment.default_socket_path()
    if only is not None:  # the rules below need the rest: `full()` applies them
        values["warnings"] = ()
        return object.__new__(Settings)._fill(values, environment)
    warnings: list[str] = []
    if values["agentapi_url"] is None:
        # There is no AgentAPI: a mode that watches one cannot work.
        if environment.is_set(PREFIX + "MODE") and values["mode"] != "hooks":
            raise ConfigError(
                environment.name(PREFIX + "MODE"),
                f"cannot watch AgentAPI when CODER_MCP_AI_AGENTAPI_URL is {NO_AGENTAPI!r}",
            )
        values["agentapi_url"] = DEFAULT_AGENTAPI_URL
        values["mode"] = "hooks"
    if values["token"] is None:
        values["token"] = _token_elsewhere(environment, warnings)
    pid = environment.read("WATCHDOG_PID", text, "")
    if pid and pid != str(os.getpid()):
        values["watchdog_interval"] = None  # another process's watchdog
    warnings.extend(environment.misspelled())
    if values["tls_verify"] is False:
        warnings.append(f"{PREFIX}TLS_VERIFY is off: the Coder server's certificate is not checked")
    values["warnings"] = tuple(warnings)
    return object.__new__(Settings)._fill(values)


def _token_elsewhere(environment: Environment, warnings: list[str]) -> Secret | None:
    """The token from CODER_AGENT_TOKEN_FILE, else from systemd's credential, else None."""
    path = environment.read("CODER_AGENT_TOKEN_FILE", verbatim, None)
    if path is not None:
        return _token_file("CODER_AGENT_TOKEN_FILE", path, warnings)
    credentials = environment.read("CREDENTIALS_DIRECTORY", verbatim, "")
    candidate = os.path.join(credentials, CREDENTIAL_NAME)
    if credentials and os.path.exists(candidate):
        return _token_file(f"$CREDENTIALS_DIRECTORY/{CREDENTIAL_NAME}", candidate, warnings)
    return None


def _token_file(variable: str, path: str, warnings: list[str]) -> Secret:
    try:
        info = os.stat(path)
        # 64 KiB: a token is a few dozen characters; a huge file is not one.
        content = read_regular(path, 65536).decode("utf-8")
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
        return token(content)
    except ValueError as exc:
        raise ConfigError(variable, str(exc)) from None


def _token_texts(environment: Environment) -> tuple[str, ...]:
    """The token wherever it is configured, only to mask it (settings read in part never send
    it): unreadable is no error here."""
    values = [environment.read("CODER_AGENT_TOKEN", text, "")]
    paths = [environment.read("CODER_AGENT_TOKEN_FILE", text, "")]
    credentials = environment.read("CREDENTIALS_DIRECTORY", verbatim, "")
    if credentials:
        paths.append(os.path.join(credentials, CREDENTIAL_NAME))
    for path in filter(None, paths):
        try:
            values.append(read_regular(path, 4096).decode("utf-8", "replace").strip())
        except OSError:
            continue
    return tuple(filter(None, values))


def read_regular(path: str, limit: int) -> bytes:
    """At most `limit` bytes of the regular file at `path`, opened without blocking: a FIFO in
    a token file's (or an agent's settings file's) place would hang the command. Raises OSError
    for anything else."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IsADirectoryError(errno.EINVAL, "not a regular file", path)
        return os.read(fd, limit)
    finally:
        os.close(fd)
