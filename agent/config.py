"""The configuration: every variable the program reads, the one reader, one validated `Settings`.

Why one module: a setting written in one place. `VARIABLES` is the table (variable -> field,
parser, default, help); `Environment` is the only code of the product that reads the process
environment (tests/test_architecture.py checks it), flag over variable, a blank variable as
unset, a parser's ValueError turned into a ConfigError naming the variable (and the flag, when
the value came from one); `read` builds `Settings` from them, and `Settings` validates whatever
builds it (tests build it directly). A bad value fails at start naming the variable; a
`CODER_TASK_AGENT_*` name set but missing from the table is warned about as a misspelling.

Light enough for the hooks' fast path (`report` and `hook` handed to a running daemon must cost
about what starting Python costs, issue 14): the standard library's cheap parts only at import
(`os`, `stat`); no dataclasses, pathlib, typing, uuid or re. Paths are text, the task id its
canonical UUID text. `urllib.parse` is imported inside the URL parser, `difflib` only for a
misspelling. `read(only=HOOK_FIELDS)` reads just what the fast path needs; `Settings.full()`
reads the rest when a command turns out to need it.

Variables follow Coder's conventions where Coder has one (`CODER_AGENT_URL`, `CODER_AGENT_TOKEN`,
`CODER_MCP_APP_STATUS_SLUG`, ...); the program's own tunables share the prefix
`CODER_TASK_AGENT_`. The agent token is held in a `Secret`, whose repr and str never show it.
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
    # `hooks`: no AgentAPI to watch; status comes only from the agent's own hooks (`hook ...`).
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
MODES = ("events", "poll", "hooks")
STATUS_TRANSPORTS = ("auto", "socket", "http")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("auto", "json", "console")
# Not `math.inf`: `math` is an extension module the hooks' path would load for this alone.
_INFINITY = float("inf")


# -- parsers: text in, a value out, ValueError (never showing a secret) otherwise -------------


def positive_seconds(raw: str) -> float:
    """A positive, finite number of seconds; ValueError otherwise."""
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"must be a number of seconds, got {raw!r}") from None
    if not 0 < value < _INFINITY:  # NaN compares false both ways: refused too
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


def boolean(raw: str) -> bool:
    """true/false, yes/no, on/off, 1/0 (any case); ValueError otherwise."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"must be true or false, got {raw!r}")


def socket_path(raw: str) -> str:
    """A path given for a socket; ValueError when blank (only a flag can give a blank one)."""
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw


def text(raw: str) -> str:
    """The value without surrounding blanks."""
    return raw.strip()


def verbatim(raw: str) -> str:
    """The value as it is set."""
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
    return value.rstrip("/")


def coder_url(raw: str) -> str:
    """Coder's base URL. Every route is `/api/v2/...` below it: a URL that already ends in the
    API's path would make every call a 404, so it is refused with the fix in the message."""
    value = url(raw)
    if value.lower().endswith(("/api/v2", "/api")):
        base = value[: value.lower().rindex("/api")]
        raise ValueError(
            f"{value!r} ends in the API's path: give the deployment's base URL ({base!r}); "
            "the routes under /api/v2 are added to it"
        )
    return value


def agentapi_url(raw: str) -> str | None:
    """AgentAPI's URL, or None for `none` (there is no AgentAPI: hooks mode)."""
    if raw.strip().lower() == NO_AGENTAPI:
        return None
    return url(raw)


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
    hexed = f"{value:032x}"
    return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"


# Coder's own rule for app slugs: lower-case letters and digits, single inner hyphens.
_SLUG_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


def slug(raw: str) -> str:
    """An app slug as Coder accepts it; ValueError otherwise."""
    value = raw.strip()
    if (
        not value
        or not set(value) <= _SLUG_CHARACTERS
        or value[0] == "-"
        or value[-1] == "-"
        or "--" in value
    ):
        raise ValueError(
            f"{value!r} is not an app slug (lower-case letters, digits, single hyphens)"
        )
    return value


def token(raw: str) -> Secret:
    """The token, checked; ValueError (never showing it) when it cannot be sent.

    It travels in an HTTP header: visible ASCII only. Checked here so that no HTTP library ever
    gets the chance to echo a malformed value in one of its own error messages.
    """
    value = raw.strip()
    if not value:
        raise ValueError("the token is empty")
    if not all("!" <= c <= "~" for c in value):
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
    """One variable: the `Settings` field it sets (None: read by a rule of its own or by another
    module through `Environment`), its parser, the field's default, and what it is."""

    __slots__ = ("default", "field", "help", "name", "parse")

    def __init__(
        self,
        name: str,
        field: str | None,
        parse: Callable[[str], object],
        default: object,
        help: str,
    ) -> None:
        self.name = name
        self.help = help
        self.field = field
        self.parse = parse
        self.default = default


# Every variable this program reads: (variable, field, parser, default, help). A field of None:
# read by a rule of its own (below) or by another module through `Environment`. `Environment`
# refuses a name missing here, and a `CODER_TASK_AGENT_*` name set but missing here is a
# misspelling (`misspelled`).
_S = positive_seconds
# fmt: off
_TABLE: tuple[tuple[str, str | None, Callable[[str], object], object, str], ...] = (
    # Coder's conventions. The token: else CODER_AGENT_TOKEN_FILE, else systemd's credential.
    ("CODER_AGENT_URL", "coder_url", coder_url, None, "the Coder server's base URL"),
    ("CODER_AGENT_TOKEN", "token", token, None, "the agent token"),
    ("CODER_AGENT_TOKEN_FILE", None, verbatim, None, "a file holding the agent token"),
    ("CODER_AGENT_SOCKET_PATH", "agent_socket_path", text, DEFAULT_AGENT_SOCKET,
     "the Coder agent's socket"),
    ("CODER_TASK_ID", "task_id", task_id, None, "the task whose log snapshot is saved"),
    ("CODER_MCP_APP_STATUS_SLUG", "app_slug", slug, None, "the app whose status is reported"),
    ("CODER_MCP_AI_AGENTAPI_URL", "agentapi_url", agentapi_url, DEFAULT_AGENTAPI_URL,
     "AgentAPI's URL (`none`: there is no AgentAPI)"),
    # This program's tunables.
    # 5 s leaves half of the 10 s a container gets between SIGTERM and SIGKILL for AgentAPI.
    (PREFIX + "SHUTDOWN_BUDGET", "shutdown_budget", _S, 5.0, "seconds for the whole stop path"),
    # A hook runs inside the agent's turn (Claude Code's PreToolUse: before every tool call).
    (PREFIX + "HOOK_BUDGET", "hook_budget", _S, 1.0,
     "seconds a `hook` command may take, start to exit"),
    # Retries happen inside the caller's own deadline.
    (PREFIX + "REQUEST_TIMEOUT", "request_timeout", _S, 5.0, "seconds for each Coder request"),
    # GET /status and /messages block while a message is being sent (up to ~18 s), so a
    # timeout here means "no observation", never "AgentAPI is dead".
    (PREFIX + "AGENTAPI_TIMEOUT", "agentapi_timeout", _S, 5.0,
     "seconds for each AgentAPI read while watching"),
    # Short: AgentAPI may be stopping or blocked.
    (PREFIX + "STOP_FETCH_TIMEOUT", "stop_fetch_timeout", _S, 1.5,
     "seconds for the fresh /messages at stop"),
    (PREFIX + "MODE", "mode", choice(*MODES), "events", "events, poll or hooks"),
    (PREFIX + "POLL_INTERVAL", "poll_interval", _S, 1.0, "seconds between polls"),
    (PREFIX + "WORKING_DEBOUNCE", "working_debounce", _S, 3.0,
     "seconds `running` lasts before working is reported"),
    # AgentAPI's own shutdown gives its HTTP server 5 s and then its agent process 5 s.
    (PREFIX + "AGENTAPI_STOP_TIMEOUT", "agentapi_stop_timeout", _S, 10.0,
     "seconds the stop hook waits for AgentAPI to exit"),
    # Unset: `Environment.default_socket_path` when read; no socket when built directly.
    (PREFIX + "SOCKET", "socket_path", socket_path, None, "the report socket"),
    # The agent's socket (no token), the HTTP PATCH, or `auto`: agent.coder.route decides.
    (PREFIX + "STATUS_TRANSPORT", "status_transport", choice(*STATUS_TRANSPORTS), "auto",
     "auto, socket or http"),
    (PREFIX + "LOG_LEVEL", "log_level", choice(*LOG_LEVELS), "info",
     "debug, info, warning or error"),
    (PREFIX + "LOG_FORMAT", "log_format", choice(*LOG_FORMATS), "auto", "auto, json or console"),
    (PREFIX + "TLS_VERIFY", "tls_verify", boolean, True, "whether Coder's certificate is checked"),
    # systemd's. The watchdog is this process's only when WATCHDOG_PID says so (or is unset).
    ("NOTIFY_SOCKET", "notify_socket", verbatim, "", "systemd's notify socket"),
    ("WATCHDOG_USEC", "watchdog_interval", watchdog_interval, None, "systemd's watchdog period"),
    ("WATCHDOG_PID", None, verbatim, None, "the process systemd's watchdog is for"),
    ("RUNTIME_DIRECTORY", None, verbatim, None, "the unit's runtime directory"),
    ("CREDENTIALS_DIRECTORY", None, verbatim, None, "the unit's credentials"),
    # The user's session.
    ("XDG_RUNTIME_DIR", None, verbatim, None, "the user's runtime directory"),
    ("HOME", None, verbatim, None, "the user's home directory"),
    # The CA conventions httpx follows (and a client of ours must follow alike). Proxies,
    # `*_proxy` in any case, are a family rather than names: see `Environment.proxies`.
    ("SSL_CERT_FILE", None, verbatim, None, "a CA bundle"),
    ("SSL_CERT_DIR", None, verbatim, None, "a directory of CA certificates"),
    # What Coder's agentapi module hands its stop script (agent.stop.inputs).
    ("ARG_TASK_ID", None, verbatim, None, "the task id"),
    ("ARG_AGENTAPI_PORT", None, verbatim, None, "AgentAPI's port"),
    ("ARG_MODULE_DIR_NAME", None, verbatim, None, "the module's directory under $HOME"),
    ("ARG_PID_FILE_PATH", None, verbatim, None, "AgentAPI's PID file"),
    ("ARG_STATE_FILE_PATH", None, verbatim, None, "AgentAPI's state file"),
    ("ARG_TASK_LOG_SNAPSHOT", None, verbatim, None, "whether a snapshot is taken"),
    ("ARG_ENABLE_STATE_PERSISTENCE", None, verbatim, None, "whether AgentAPI saves its state"),
)
# fmt: on
VARIABLES: dict[str, Variable] = {
    name: Variable(name, field, parse, default, what)
    for name, field, parse, default, what in _TABLE
}
# The variable of each field, and the fields in the table's order.
_BY_FIELD = {v.field: v for v in VARIABLES.values() if v.field is not None}
TUNABLE_VARIABLES = tuple(v.name for v in _BY_FIELD.values() if v.name.startswith(PREFIX))
# What the hooks' fast path reads (`read(only=HOOK_FIELDS)`): where a daemon listens, how to
# log, how long a snapshot may take. Fields with a rule of their own cannot be read alone.
HOOK_FIELDS = frozenset(
    {"socket_path", "log_level", "log_format", "shutdown_budget", "hook_budget"}
)
_NOT_ALONE = frozenset({"token", "agentapi_url", "mode", "watchdog_interval"})


# -- the one reader -----------------------------------------------------------------------


class Environment:
    """The process environment (or a given mapping) and the command line's settings.

    `flags` maps a variable to `(flag, value)` for values given on the command line: they win
    over the environment, and errors name both. The mapping is copied once, when built.
    """

    __slots__ = ("_flags", "_source")

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        flags: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        self._source = dict(os.environ if env is None else env)
        self._flags = dict(flags or {})
        for variable in self._flags:
            _known(variable)

    @property
    def flags(self) -> dict[str, tuple[str, str]]:
        """The command line's settings, as given."""
        return dict(self._flags)

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
        """`variable` parsed: from its flag if given, else from the environment.

        A variable that is unset or blank gives `default` (a flag is always parsed). Raises
        ConfigError naming the variable (and the flag) when `parse` raises ValueError; raises
        LookupError for a variable missing from VARIABLES (a programming error).
        """
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
        source = dict(self._source)
        for variable, value in values.items():
            _known(variable)
            if value is None:
                source.pop(variable, None)
            else:
                source[variable] = value
        return Environment(source, self._flags)

    def proxies(self) -> dict[str, str]:
        """The proxy variables set, as httpx and urllib find them: `*_proxy` in any case."""
        return {
            name: value
            for name, value in self._source.items()
            if name.lower().endswith("_proxy") and value.strip()
        }

    def mapping(self) -> dict[str, str]:
        """A copy of the variables (flags not applied), to build another Environment from."""
        return dict(self._source)

    def lookalikes(self, variable: str) -> list[str]:
        """Variables set, unknown to this program, whose names are close to `variable`.

        `CODER_TASKID` for `CODER_TASK_ID`: a setting misspelt outside our own prefix, which
        `misspelled` cannot flag (any name may be some other program's), named only when the
        setting it resembles is found missing.
        """
        import difflib  # noqa: PLC0415 - only when a setting is missing

        _known(variable)
        unknown = [v for v in self._source if v not in VARIABLES and self._source[v].strip()]
        return sorted(difflib.get_close_matches(variable, unknown, n=3, cutoff=0.85))

    def misspelled(self) -> list[str]:
        """A warning for each `CODER_TASK_AGENT_*` variable set that this program does not read.

        A typo (`CODER_TASK_AGENT_SHUTDOWN_BUGDET`) would otherwise be ignored in silence and
        the default used; the warning names the nearest known variable.
        """
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
        """Where the report socket lives when CODER_TASK_AGENT_SOCKET is not set.

        systemd's RuntimeDirectory (private to the unit's user), else the user's XDG runtime
        directory, else a per-user directory under /tmp that the daemon creates with mode 0700.
        """
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
_UNSET = object()


class Settings:
    """Everything the program is configured with: `read` builds it, tests build it directly.

    Immutable, and validated however it is built: a value given directly goes through its
    variable's parser (as text: a Path or UUID is accepted and kept as its text), so a bad one
    is a ConfigError naming the variable. The defaults are the table's (`VARIABLES`).
    Settings read with `only=` hold those fields alone (the others raise AttributeError);
    `full()` reads the rest.
    """

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
    # Problems worth a warning but not a refusal (a world-readable token file, TLS off...).
    warnings: tuple[str, ...]
    # Values to mask in whatever is written out (agent.log): the token's.
    masks: tuple[str, ...]
    _partial: Environment | None

    def __init__(self, **values: object) -> None:
        unknown = sorted(values.keys() - set(FIELDS))
        if unknown:
            raise TypeError(f"Settings has no field {unknown[0]!r}")
        for name, variable in _BY_FIELD.items():
            _set(self, name, _checked(variable, values.get(name, variable.default)))
        _set(self, "warnings", tuple(values.get("warnings", ())))  # type: ignore[arg-type]
        _set(self, "masks", (self.token.reveal(),) if self.token is not None else ())
        _set(self, "_partial", None)

    @classmethod
    def _read(
        cls, values: Mapping[str, object], masks: tuple[str, ...], partial: Environment | None
    ) -> Settings:
        """Settings of values the reader has parsed already (not checked a second time)."""
        settings = object.__new__(cls)
        for name, value in values.items():
            _set(settings, name, value)
        _set(settings, "masks", masks)
        _set(settings, "_partial", partial)
        return settings

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Settings are immutable: cannot set {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Settings):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self.fields().items())
        return f"Settings({shown})"

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name, _UNSET) for name in FIELDS)

    def fields(self) -> dict[str, object]:
        """Every field read and its value."""
        return {name: getattr(self, name) for name in FIELDS if hasattr(self, name)}

    def replace(self, **changes: object) -> Settings:
        """These settings with `changes`, validated."""
        if self._partial is not None:
            raise ValueError("partly read settings: use full() first")
        return Settings(**{**self.fields(), **changes})

    def full(self) -> Settings:
        """The whole configuration: these settings, or all of it read now when read in part.

        Raises ConfigError naming the first bad variable (of those not read yet).
        """
        if self._partial is None:
            return self
        return _read_all(self._partial)

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


def _set(settings: Settings, name: str, value: object) -> None:
    object.__setattr__(settings, name, value)


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
    try:
        parsed = variable.parse(_as_text(value))
    except ValueError as exc:
        raise ConfigError(variable.name, str(exc)) from None
    if parsed is None:
        raise ConfigError(variable.name, f"must be set, got {value!r}")
    return parsed


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)  # type: ignore[no-any-return]
    return str(value)


def read(
    env: Mapping[str, str] | Environment | None = None,
    flags: Mapping[str, tuple[str, str]] | None = None,
    *,
    only: Iterable[str] | None = None,
) -> Settings:
    """Read and validate the configuration; raises ConfigError naming the first bad variable.

    `env` defaults to the process environment. `flags` maps a variable name to `(flag, value)`
    for values given on the command line; they win over the environment and errors name both.
    `only`: read these fields alone (HOOK_FIELDS), for a path that must stay light; the
    settings' `full()` reads the rest if it turns out to be needed.
    """
    environment = env if isinstance(env, Environment) else Environment(env, flags)
    if only is None:
        return _read_all(environment)
    values: dict[str, object] = {"warnings": ()}
    for name in only:
        if name in _NOT_ALONE:
            raise ValueError(f"{name} has a rule of its own: it cannot be read alone")
        variable = _BY_FIELD[name]
        values[name] = environment.read(variable.name, variable.parse, variable.default)
    if "socket_path" in values and values["socket_path"] is None:
        values["socket_path"] = environment.default_socket_path()
    return Settings._read(values, _token_texts(environment), environment)


def _read_all(environment: Environment) -> Settings:
    values = {
        name: environment.read(variable.name, variable.parse, variable.default)
        for name, variable in _BY_FIELD.items()
    }
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
    if values["socket_path"] is None:
        values["socket_path"] = environment.default_socket_path()
    pid = environment.read("WATCHDOG_PID", text, "")
    if pid and pid != str(os.getpid()):
        values["watchdog_interval"] = None  # another process's watchdog
    warnings.extend(environment.misspelled())
    if values["tls_verify"] is False:
        warnings.append(f"{PREFIX}TLS_VERIFY is off: the Coder server's certificate is not checked")
    values["warnings"] = tuple(warnings)
    secret = values["token"]
    masks = (secret.reveal(),) if isinstance(secret, Secret) else ()
    return Settings._read(values, masks, None)


def _token_elsewhere(environment: Environment, warnings: list[str]) -> Secret | None:
    """The token from CODER_AGENT_TOKEN_FILE, else from systemd's credential, else None."""
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
        # 64 KiB: a token is a few dozen characters; a huge file is not one.
        content = _read_regular(path, 65536).decode("utf-8")
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
    """The token, wherever it is configured, only to mask it; unreadable is no error here.

    For settings read in part: the path that reads them never sends the token.
    """
    values = [environment.read("CODER_AGENT_TOKEN", text, "")]
    paths = [environment.read("CODER_AGENT_TOKEN_FILE", text, "")]
    credentials = environment.read("CREDENTIALS_DIRECTORY", verbatim, "")
    if credentials:
        paths.append(os.path.join(credentials, CREDENTIAL_NAME))
    for path in paths:
        if not path:
            continue
        try:
            data = _read_regular(path, 4096)
        except OSError:
            continue
        values.append(data.decode("utf-8", "replace").strip())
    return tuple(v for v in values if v)


def _read_regular(path: str, limit: int) -> bytes:
    """At most `limit` bytes of the regular file at `path`, opened without blocking.

    Raises OSError, IsADirectoryError included, for anything else: a FIFO put in a token file's
    place would otherwise hang every command (and the last line it would write).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise IsADirectoryError(errno.EINVAL, "not a regular file", path)
        return os.read(fd, limit)
    finally:
        os.close(fd)
