"""The program's environment: every variable it reads, and the one place that reads them.

Why a module of its own: configuration must fail at start naming the variable (and the flag,
when the value came from one), a misspelt `CODER_TASK_AGENT_*` name must be warned about, and
the hooks' fast path must read its few settings as `agent.settings` reads them, without paying
for what `agent.settings` imports (dataclasses, pathlib, urllib, uuid: issue 14 holds `report`
handed to a daemon to about the interpreter's start). So the table of variables, the parsers
both share and `Environment.read` (flag over variable, a blank variable as unset, a parser's
ValueError turned into a ConfigError naming the variable or flag) live here, with the standard
library only. `agent.settings` builds `Settings` through it, `agent.hookconfig` builds the fast
path's settings through it, and the stop hook maps Coder's `ARG_*` inputs through it.

No other module of the product reads `os.environ` (tests/test_architecture.py checks it).
"""

from __future__ import annotations

import os

from agent.errors import ConfigError

# A plain constant that type checkers treat as true: `typing` is not imported on this path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import TypeVar

    T = TypeVar("T")
    D = TypeVar("D")

PREFIX = "CODER_TASK_AGENT_"
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("auto", "json", "console")
DEFAULT_SHUTDOWN_BUDGET = 5.0
# Not `math.inf`: `math` is an extension module the hooks' path would load for this alone.
_INFINITY = float("inf")

# Every variable this program reads, and what it is. `read` refuses a name missing here, and a
# `CODER_TASK_AGENT_*` name set but missing here is a misspelling (see `misspelled`).
VARIABLES = {
    # Coder's conventions.
    "CODER_AGENT_URL": "the Coder server's base URL",
    "CODER_AGENT_TOKEN": "the agent token",
    "CODER_AGENT_TOKEN_FILE": "a file holding the agent token",
    "CODER_AGENT_SOCKET_PATH": "the Coder agent's socket",
    "CODER_TASK_ID": "the task whose log snapshot is saved",
    "CODER_MCP_APP_STATUS_SLUG": "the app whose status is reported",
    "CODER_MCP_AI_AGENTAPI_URL": "AgentAPI's URL (`none`: there is no AgentAPI)",
    # This program's tunables.
    PREFIX + "SHUTDOWN_BUDGET": "seconds for the whole stop path",
    PREFIX + "REQUEST_TIMEOUT": "seconds for each Coder request",
    PREFIX + "AGENTAPI_TIMEOUT": "seconds for each AgentAPI read while watching",
    PREFIX + "STOP_FETCH_TIMEOUT": "seconds for the fresh /messages at stop",
    PREFIX + "MODE": "events, poll or hooks",
    PREFIX + "POLL_INTERVAL": "seconds between polls",
    PREFIX + "WORKING_DEBOUNCE": "seconds `running` lasts before working is reported",
    PREFIX + "AGENTAPI_STOP_TIMEOUT": "seconds the stop hook waits for AgentAPI to exit",
    PREFIX + "SOCKET": "the report socket",
    PREFIX + "STATUS_TRANSPORT": "auto, socket or http",
    PREFIX + "LOG_LEVEL": "debug, info, warning or error",
    PREFIX + "LOG_FORMAT": "auto, json or console",
    PREFIX + "TLS_VERIFY": "whether Coder's certificate is checked",
    # systemd's.
    "NOTIFY_SOCKET": "systemd's notify socket",
    "WATCHDOG_USEC": "systemd's watchdog period",
    "WATCHDOG_PID": "the process systemd's watchdog is for",
    "RUNTIME_DIRECTORY": "the unit's runtime directory",
    "CREDENTIALS_DIRECTORY": "the unit's credentials",
    # The user's session.
    "XDG_RUNTIME_DIR": "the user's runtime directory",
    "HOME": "the user's home directory",
    # The CA conventions httpx follows (and a client of ours must follow alike). Proxies,
    # `*_proxy` in any case, are a family rather than names: see `Environment.proxies`.
    "SSL_CERT_FILE": "a CA bundle",
    "SSL_CERT_DIR": "a directory of CA certificates",
    # What Coder's agentapi module hands its stop script (the stop hook's inputs).
    "ARG_TASK_ID": "the task id",
    "ARG_AGENTAPI_PORT": "AgentAPI's port",
    "ARG_MODULE_DIR_NAME": "the module's directory under $HOME",
    "ARG_PID_FILE_PATH": "AgentAPI's PID file",
    "ARG_STATE_FILE_PATH": "AgentAPI's state file",
    "ARG_TASK_LOG_SNAPSHOT": "whether a snapshot is taken",
    "ARG_ENABLE_STATE_PERSISTENCE": "whether AgentAPI saves its state first",
}


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
        raise LookupError(f"{variable} is not in agent.environment.VARIABLES")
