"""Settings: every variable, every bad value failing at start with the variable's name."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from uuid import UUID

import pytest

from agent.environment import Environment
from agent.errors import ConfigError
from agent.settings import (
    TUNABLE_VARIABLES,
    Secret,
    Settings,
    load_settings,
    stop_hook_environment,
)

TASK = "6f1c2a3b-4d5e-4f60-8a1b-2c3d4e5f6a7b"
BASE = {"CODER_AGENT_URL": "https://coder.example.com/", "CODER_AGENT_TOKEN": "tok-123"}


def test_defaults_and_coder_variables() -> None:
    settings = load_settings(
        {**BASE, "CODER_TASK_ID": TASK, "CODER_MCP_APP_STATUS_SLUG": "claude-code"}
    )
    assert settings.coder_url == "https://coder.example.com"
    assert settings.token == Secret("tok-123")
    assert settings.task_id == UUID(TASK)
    assert settings.app_slug == "claude-code"
    assert settings.agentapi_url == "http://localhost:3284"
    assert settings.shutdown_budget == 5.0
    assert settings.mode == "events"
    assert settings.tls_verify is True
    assert settings.warnings == ()


def test_empty_values_mean_unset() -> None:
    settings = load_settings({"CODER_TASK_ID": "", "CODER_MCP_APP_STATUS_SLUG": " "})
    assert settings.task_id is None
    assert settings.app_slug is None
    assert settings.coder_url is None


def test_tunables() -> None:
    settings = load_settings(
        {
            "CODER_TASK_AGENT_SHUTDOWN_BUDGET": "3.5",
            "CODER_TASK_AGENT_MODE": "POLL",
            "CODER_TASK_AGENT_POLL_INTERVAL": "0.5",
            "CODER_TASK_AGENT_WORKING_DEBOUNCE": "2",
            "CODER_TASK_AGENT_LOG_LEVEL": "debug",
            "CODER_TASK_AGENT_LOG_FORMAT": "json",
            "CODER_TASK_AGENT_SOCKET": "/run/x/report.sock",
        }
    )
    assert settings.shutdown_budget == 3.5
    assert settings.mode == "poll"
    assert settings.poll_interval == 0.5
    assert settings.working_debounce == 2.0
    assert settings.log_level == "debug"
    assert settings.log_format == "json"
    assert settings.socket_path == Path("/run/x/report.sock")


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("CODER_AGENT_URL", "coder.example.com", "http(s) URL"),
        ("CODER_AGENT_URL", "ftp://coder.example.com", "http(s) URL"),
        ("CODER_AGENT_URL", "http://host:99999", "not a valid URL"),
        ("CODER_AGENT_URL", "https://user:pw@coder.example.com", "credentials"),
        ("CODER_MCP_AI_AGENTAPI_URL", "localhost:3284", "http(s) URL"),
        ("CODER_TASK_ID", "not-a-uuid", "UUID"),
        ("CODER_MCP_APP_STATUS_SLUG", "Claude Code", "app slug"),
        ("CODER_MCP_APP_STATUS_SLUG", "-claude", "app slug"),
        ("CODER_TASK_AGENT_SHUTDOWN_BUDGET", "0", "positive"),
        ("CODER_TASK_AGENT_SHUTDOWN_BUDGET", "-1", "positive"),
        ("CODER_TASK_AGENT_SHUTDOWN_BUDGET", "nan", "positive"),
        ("CODER_TASK_AGENT_SHUTDOWN_BUDGET", "five", "number of seconds"),
        ("CODER_TASK_AGENT_POLL_INTERVAL", "inf", "positive"),
        ("CODER_TASK_AGENT_MODE", "push", "events, poll"),
        ("CODER_TASK_AGENT_LOG_LEVEL", "loud", "one of"),
        ("CODER_TASK_AGENT_TLS_VERIFY", "maybe", "true or false"),
        ("CODER_TASK_AGENT_STATUS_TRANSPORT", "grpc", "auto, socket, http"),
        ("CODER_AGENT_TOKEN", "has space", "characters a header cannot carry"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({variable: value})
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ")
    assert words in str(caught.value)


def test_status_transport_and_agent_socket() -> None:
    defaults = load_settings({})
    assert defaults.status_transport == "auto"
    assert defaults.agent_socket_path == Path("/tmp/coder-agent.sock")
    settings = load_settings(
        {
            "CODER_TASK_AGENT_STATUS_TRANSPORT": " Socket ",
            "CODER_AGENT_SOCKET_PATH": " /run/agent/a.sock ",
        }
    )
    assert settings.status_transport == "socket"
    assert settings.agent_socket_path == Path("/run/agent/a.sock")
    assert load_settings({"CODER_TASK_AGENT_STATUS_TRANSPORT": "http"}).status_transport == "http"
    assert load_settings({"CODER_AGENT_SOCKET_PATH": " "}).agent_socket_path == Path(
        "/tmp/coder-agent.sock"
    )


def test_flags_win_and_are_named() -> None:
    flags = {"CODER_TASK_AGENT_SHUTDOWN_BUDGET": ("--budget", "2")}
    env = {"CODER_TASK_AGENT_SHUTDOWN_BUDGET": "9"}
    assert load_settings(env, flags).shutdown_budget == 2.0
    with pytest.raises(ConfigError, match=r"^--budget \(CODER_TASK_AGENT_SHUTDOWN_BUDGET\): "):
        load_settings(env, {"CODER_TASK_AGENT_SHUTDOWN_BUDGET": ("--budget", "")})


def test_token_from_file_then_credential(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    token_file.chmod(0o600)
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "coder-agent-token").write_text("from-credential")
    both = {"CODER_AGENT_TOKEN_FILE": str(token_file), "CREDENTIALS_DIRECTORY": str(credentials)}
    assert load_settings(both).token == Secret("from-file")
    assert load_settings({**both, "CODER_AGENT_TOKEN": "direct"}).token == Secret("direct")
    only_credential = {"CREDENTIALS_DIRECTORY": str(credentials)}
    assert load_settings(only_credential).token == Secret("from-credential")
    assert load_settings({"CREDENTIALS_DIRECTORY": str(tmp_path)}).token is None


@pytest.mark.parametrize(
    ("setup", "words"),
    [
        ("missing", "does not exist"),
        ("empty", "the token is empty"),
        ("unreadable", "is not readable"),
        ("binary", "cannot be read"),
    ],
)
def test_bad_token_file(tmp_path: Path, setup: str, words: str) -> None:
    path = tmp_path / "token"
    if setup == "empty":
        path.write_text("  \n")
    elif setup == "unreadable":
        path.write_text("secret")
        path.chmod(0)
        if os.access(path, os.R_OK):
            pytest.skip("running as root: every file is readable, the check cannot trigger")
    elif setup == "binary":
        path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError) as caught:
        load_settings({"CODER_AGENT_TOKEN_FILE": str(path)})
    assert caught.value.variable == "CODER_AGENT_TOKEN_FILE"
    assert words in str(caught.value)
    assert "secret" not in str(caught.value)


def test_world_readable_token_file_warns(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("tok")
    path.chmod(0o644)
    settings = load_settings({"CODER_AGENT_TOKEN_FILE": str(path)})
    assert settings.token == Secret("tok")
    assert len(settings.warnings) == 1
    assert "readable by every user" in settings.warnings[0]


def test_tls_off_is_a_warning() -> None:
    settings = load_settings({"CODER_TASK_AGENT_TLS_VERIFY": "false"})
    assert settings.tls_verify is False
    assert any("TLS_VERIFY is off" in w for w in settings.warnings)


def test_secret_never_shows() -> None:
    secret = Secret("hunter2-value")
    settings = Settings(token=secret, coder_url="https://x")
    for text in (repr(secret), str(secret), repr(settings), f"{secret}", f"{settings}"):
        assert "hunter2-value" not in text
    assert secret.reveal() == "hunter2-value"
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_require_coder() -> None:
    with pytest.raises(ConfigError, match="CODER_AGENT_URL"):
        Settings().require_coder()
    with pytest.raises(ConfigError, match="CODER_AGENT_TOKEN"):
        Settings(coder_url="https://x").require_coder()
    assert Settings(coder_url="https://x", token=Secret("t")).require_coder()[0] == "https://x"


def test_default_socket_path() -> None:
    def default(env: dict[str, str]) -> Path | None:
        return load_settings(env).socket_path

    assert default({"RUNTIME_DIRECTORY": "/run/a:/run/b"}) == Path("/run/a/report.sock")
    assert default({"XDG_RUNTIME_DIR": "/run/user/1000"}) == Path(
        "/run/user/1000/coder-task-agent/report.sock"
    )
    assert default({}) == Path(f"/tmp/coder-task-agent-{os.getuid()}/report.sock")


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.mode = "poll"  # type: ignore[misc]


def test_no_agentapi_means_hooks_mode() -> None:
    assert load_settings({"CODER_MCP_AI_AGENTAPI_URL": "none"}).mode == "hooks"
    assert load_settings({"CODER_MCP_AI_AGENTAPI_URL": "None"}).mode == "hooks"
    assert load_settings({"CODER_TASK_AGENT_MODE": "hooks"}).mode == "hooks"
    with pytest.raises(ConfigError, match="CODER_TASK_AGENT_MODE: cannot watch AgentAPI"):
        load_settings({"CODER_MCP_AI_AGENTAPI_URL": "none", "CODER_TASK_AGENT_MODE": "poll"})


@pytest.mark.parametrize(
    ("variable", "nearest"),
    [
        ("CODER_TASK_AGENT_SHUTDOWN_BUGDET", "CODER_TASK_AGENT_SHUTDOWN_BUDGET"),
        ("CODER_TASK_AGENT_LOGLEVEL", "CODER_TASK_AGENT_LOG_LEVEL"),
        ("CODER_TASK_AGENT_TASK_ID", "CODER_TASK_ID"),
        ("CODER_TASK_AGENT_XYZZY", None),
    ],
)
def test_misspelled_variable_is_warned_naming_the_nearest(
    variable: str, nearest: str | None
) -> None:
    (warning,) = load_settings({variable: "3"}).warnings
    assert warning.startswith(f"{variable} is not a setting of this program and is ignored")
    if nearest is None:
        assert "did you mean" not in warning
    else:
        assert warning.endswith(f"did you mean {nearest}?")


def test_every_known_variable_is_silent() -> None:
    env = dict.fromkeys(TUNABLE_VARIABLES, "1")
    assert Environment(env).misspelled() == []


@pytest.mark.parametrize(
    ("env", "task", "url", "pid_file", "state_file", "snapshot", "persistence", "problem"),
    [
        # The module's inputs alone.
        (
            {"ARG_TASK_ID": TASK, "ARG_AGENTAPI_PORT": "3300", "ARG_MODULE_DIR_NAME": ".claude"},
            TASK,
            "http://localhost:3300",
            "/home/u/.claude/agentapi.pid",
            "/home/u/.claude/agentapi-state.json",
            True,
            False,
            None,
        ),
        # Ours win; an explicit PID file wins over the module directory; only `true` enables.
        (
            {
                "ARG_TASK_ID": "not-it",
                "CODER_TASK_ID": TASK,
                "ARG_AGENTAPI_PORT": "1",
                "CODER_MCP_AI_AGENTAPI_URL": "http://127.0.0.1:9999",
                "ARG_PID_FILE_PATH": "/run/a.pid",
                "ARG_MODULE_DIR_NAME": ".claude",
                "ARG_TASK_LOG_SNAPSHOT": "false",
                "ARG_ENABLE_STATE_PERSISTENCE": "true",
            },
            TASK,
            "http://127.0.0.1:9999",
            "/run/a.pid",
            "/home/u/.claude/agentapi-state.json",
            False,
            True,
            None,
        ),
        # Nothing: no PID file known, the snapshot on (the module's default), default port.
        ({}, None, None, None, None, True, False, None),
        # A task id that is not a UUID, a port that is not a port: logged, never fatal.
        (
            {"ARG_TASK_ID": "task-7", "ARG_AGENTAPI_PORT": "http"},
            None,
            None,
            None,
            None,
            True,
            False,
            "ARG_TASK_ID: 'task-7' is not a UUID",
        ),
    ],
)
def test_stop_hook_environment(  # noqa: PLR0917 - one row of the table
    env: dict[str, str],
    task: str | None,
    url: str | None,
    pid_file: str | None,
    state_file: str | None,
    snapshot: bool,
    persistence: bool,
    problem: str | None,
) -> None:
    merged, inputs = stop_hook_environment({"HOME": "/home/u", **env})
    settings = load_settings(merged)
    assert settings.task_id == (UUID(task) if task else None)
    assert settings.agentapi_url == (url or "http://localhost:3284")
    assert inputs.pid_file == (Path(pid_file) if pid_file else None)
    assert inputs.state_file == (Path(state_file) if state_file else None)
    assert inputs.snapshot is snapshot
    assert inputs.state_persistence is persistence
    assert inputs.task_id_unset is not any(env.get(v) for v in ("ARG_TASK_ID", "CODER_TASK_ID"))
    if problem is None:
        assert inputs.problems == ()
    else:
        assert inputs.problems[0].startswith(problem)


@pytest.mark.parametrize(
    ("changes", "variable"),
    [
        ({"shutdown_budget": -1.0}, "CODER_TASK_AGENT_SHUTDOWN_BUDGET"),
        ({"poll_interval": 0.0}, "CODER_TASK_AGENT_POLL_INTERVAL"),
        ({"working_debounce": float("nan")}, "CODER_TASK_AGENT_WORKING_DEBOUNCE"),
        ({"mode": "sometimes"}, "CODER_TASK_AGENT_MODE"),
        ({"log_level": "loud"}, "CODER_TASK_AGENT_LOG_LEVEL"),
        ({"log_format": "xml"}, "CODER_TASK_AGENT_LOG_FORMAT"),
        ({"watchdog_interval": 0.0}, "WATCHDOG_USEC"),
    ],
)
def test_settings_built_directly_are_validated(changes: dict[str, object], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings(**changes)  # type: ignore[arg-type]
    assert caught.value.variable == variable


def test_systemd_variables_are_read_by_settings_only() -> None:
    settings = load_settings({"NOTIFY_SOCKET": "@sd", "WATCHDOG_USEC": "8000000"})
    assert (settings.notify_socket, settings.watchdog_interval) == ("@sd", 4.0)
    assert load_settings({}).watchdog_interval is None
