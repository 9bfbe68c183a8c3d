"""The configuration: one table, one reader, one `Settings`; every bad value fails at start
naming its variable (and its flag)."""

from __future__ import annotations

import os
import pickle
import uuid
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from agent.config import (
    HOOK_FIELDS,
    PREFIX,
    VARIABLES,
    Environment,
    Secret,
    Settings,
    boolean,
    choice,
    positive_seconds,
    read,
    task_id,
    text,
    url,
)
from agent.errors import ConfigError

TASK = "6f1c2a3b-4d5e-4f60-8a1b-2c3d4e5f6a7b"
BASE = {"CODER_AGENT_URL": "https://coder.example.com/", "CODER_AGENT_TOKEN": "tok-123"}


def test_defaults_and_coder_variables() -> None:
    settings = read({**BASE, "CODER_TASK_ID": TASK, "CODER_MCP_APP_STATUS_SLUG": "claude-code"})
    assert settings.coder_url == "https://coder.example.com"
    assert settings.token == Secret("tok-123")
    assert settings.task_id == TASK
    assert settings.app_slug == "claude-code"
    assert settings.agentapi_url == "http://localhost:3284"
    assert settings.shutdown_budget == 5.0
    assert settings.mode == "events"
    assert settings.tls_verify is True
    assert settings.warnings == ()


def test_empty_values_mean_unset() -> None:
    settings = read({"CODER_TASK_ID": "", "CODER_MCP_APP_STATUS_SLUG": " "})
    assert settings.task_id is None
    assert settings.app_slug is None
    assert settings.coder_url is None


def test_tunables() -> None:
    settings = read(
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
    assert settings.socket_path == "/run/x/report.sock"


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("CODER_AGENT_URL", "coder.example.com", "http(s) URL"),
        ("CODER_AGENT_URL", "ftp://coder.example.com", "http(s) URL"),
        ("CODER_AGENT_URL", "http://host:99999", "not a valid URL"),
        ("CODER_AGENT_URL", "https://user:pw@coder.example.com", "credentials"),
        # The API's path is added to the base URL: given twice, every call is a 404.
        ("CODER_AGENT_URL", "https://coder.example.com/api/v2", "base URL ('https://coder"),
        ("CODER_AGENT_URL", "https://coder.example.com/API/v2/", "the API's path"),
        ("CODER_AGENT_URL", "https://coder.example.com/api", "the API's path"),
        ("CODER_MCP_AI_AGENTAPI_URL", "localhost:3284", "http(s) URL"),
        # What no HTTP client can send is refused here, not met as the client's own error:
        # bytes that were not UTF-8 (surrogates), a name the IDNA codec refuses, a space or a
        # path that is not ASCII.
        ("CODER_AGENT_URL", "http://\udcff", "not a valid name"),
        ("CODER_AGENT_URL", "http://a..b", "not a valid name"),
        ("CODER_AGENT_URL", f"http://{'a' * 64}.example", "not a valid name"),
        ("CODER_AGENT_URL", "http://[::1%25\udcff]:1", "not a valid name"),
        ("CODER_AGENT_URL", "http://coder.example/p\udcff", "percent-encode"),
        ("CODER_MCP_AI_AGENTAPI_URL", "http://localhost:3284/p\u00e4", "percent-encode"),
        ("CODER_MCP_AI_AGENTAPI_URL", "http://localhost:3284/a b", "percent-encode"),
        ("CODER_MCP_AI_AGENTAPI_URL", "http://local host:3284", "percent-encode"),
        ("CODER_TASK_ID", "not-a-uuid", "UUID"),
        ("CODER_MCP_APP_STATUS_SLUG", "Claude Code", "app slug"),
        ("CODER_MCP_APP_STATUS_SLUG", "-claude", "app slug"),
        ("CODER_TASK_AGENT_SHUTDOWN_BUDGET", "0", "positive"),
        ("CODER_TASK_AGENT_SHUTDOWN_BUDGET", "-1", "positive"),
        ("CODER_TASK_AGENT_SHUTDOWN_BUDGET", "nan", "positive"),
        ("CODER_TASK_AGENT_SHUTDOWN_BUDGET", "five", "number of seconds"),
        ("CODER_TASK_AGENT_POLL_INTERVAL", "inf", "positive"),
        # Finite, but past what a socket's timeout holds: it overflowed there (exit 5).
        ("CODER_TASK_AGENT_REQUEST_TIMEOUT", "1e20", "at most 86400"),
        ("CODER_TASK_AGENT_SHUTDOWN_BUDGET", "86400.5", "at most 86400"),
        ("CODER_TASK_AGENT_MODE", "push", "events, poll"),
        ("CODER_TASK_AGENT_LOG_LEVEL", "loud", "one of"),
        ("CODER_TASK_AGENT_TLS_VERIFY", "maybe", "true or false"),
        ("CODER_TASK_AGENT_STATUS_TRANSPORT", "grpc", "auto, socket, http"),
        ("CODER_AGENT_TOKEN", "has space", "characters a header cannot carry"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        read({variable: value})
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ")
    assert words in str(caught.value)


def test_status_transport_and_agent_socket() -> None:
    defaults = read({})
    assert defaults.status_transport == "auto"
    assert defaults.agent_socket_path == "/tmp/coder-agent.sock"
    settings = read(
        {
            "CODER_TASK_AGENT_STATUS_TRANSPORT": " Socket ",
            "CODER_AGENT_SOCKET_PATH": " /run/agent/a.sock ",
        }
    )
    assert settings.status_transport == "socket"
    assert settings.agent_socket_path == "/run/agent/a.sock"
    assert read({"CODER_TASK_AGENT_STATUS_TRANSPORT": "http"}).status_transport == "http"
    assert read({"CODER_AGENT_SOCKET_PATH": " "}).agent_socket_path == "/tmp/coder-agent.sock"


def test_flags_win_and_are_named() -> None:
    flags = {"CODER_TASK_AGENT_SHUTDOWN_BUDGET": ("--budget", "2")}
    env = {"CODER_TASK_AGENT_SHUTDOWN_BUDGET": "9"}
    assert read(env, flags).shutdown_budget == 2.0
    with pytest.raises(ConfigError, match=r"^--budget \(CODER_TASK_AGENT_SHUTDOWN_BUDGET\): "):
        read(env, {"CODER_TASK_AGENT_SHUTDOWN_BUDGET": ("--budget", "")})


def test_token_from_file_then_credential(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    token_file.chmod(0o600)
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "coder-agent-token").write_text("from-credential")
    both = {"CODER_AGENT_TOKEN_FILE": str(token_file), "CREDENTIALS_DIRECTORY": str(credentials)}
    assert read(both).token == Secret("from-file")
    assert read({**both, "CODER_AGENT_TOKEN": "direct"}).token == Secret("direct")
    only_credential = {"CREDENTIALS_DIRECTORY": str(credentials)}
    assert read(only_credential).token == Secret("from-credential")
    assert read({"CREDENTIALS_DIRECTORY": str(tmp_path)}).token is None


@pytest.mark.parametrize(
    ("setup", "words"),
    [
        ("missing", "does not exist"),
        ("empty", "the token is empty"),
        ("unreadable", "is not readable"),
        ("binary", "cannot be read"),
        ("fifo", "not a regular file"),
        ("huge", "larger than 65536 bytes"),
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
    elif setup == "fifo":
        os.mkfifo(path)  # nobody writes: a blocking read would never end
    elif setup == "huge":
        path.write_bytes(b"secret" * 20000)  # visible ASCII: cut, it would pass as a token
    with pytest.raises(ConfigError) as caught:
        read({"CODER_AGENT_TOKEN_FILE": str(path)})
    assert caught.value.variable == "CODER_AGENT_TOKEN_FILE"
    assert words in str(caught.value)
    assert "secret" not in str(caught.value)


def test_world_readable_token_file_warns(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("tok")
    path.chmod(0o644)
    settings = read({"CODER_AGENT_TOKEN_FILE": str(path)})
    assert settings.token == Secret("tok")
    assert len(settings.warnings) == 1
    assert "readable by every user" in settings.warnings[0]


def test_tls_off_is_a_warning() -> None:
    settings = read({"CODER_TASK_AGENT_TLS_VERIFY": "false"})
    assert settings.tls_verify is False
    assert any("TLS_VERIFY is off" in w for w in settings.warnings)


def test_secret_never_shows() -> None:
    secret = Secret("hunter2-value")
    settings = Settings(token=secret, coder_url="https://x")
    for shown in (repr(secret), str(secret), repr(settings), f"{secret}", f"{settings}"):
        assert "hunter2-value" not in shown
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
    def default(env: dict[str, str]) -> str | None:
        return read(env).socket_path

    assert default({"RUNTIME_DIRECTORY": "/run/a:/run/b"}) == "/run/a/report.sock"
    assert default({"XDG_RUNTIME_DIR": "/run/user/1000"}) == (
        "/run/user/1000/coder-task-agent/report.sock"
    )
    assert default({}) == f"/tmp/coder-task-agent-{os.getuid()}/report.sock"


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.mode = "poll"
    assert settings.replace(mode="poll").mode == "poll"
    assert settings.mode == "events"


def test_no_agentapi_means_hooks_mode() -> None:
    assert read({"CODER_MCP_AI_AGENTAPI_URL": "none"}).mode == "hooks"
    assert read({"CODER_MCP_AI_AGENTAPI_URL": "None"}).mode == "hooks"
    assert read({"CODER_TASK_AGENT_MODE": "hooks"}).mode == "hooks"
    with pytest.raises(ConfigError, match="CODER_TASK_AGENT_MODE: cannot watch AgentAPI"):
        read({"CODER_MCP_AI_AGENTAPI_URL": "none", "CODER_TASK_AGENT_MODE": "poll"})


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
    (warning,) = read({variable: "3"}).warnings
    assert warning.startswith(f"{variable} is not a setting of this program and is ignored")
    if nearest is None:
        assert "did you mean" not in warning
    else:
        assert warning.endswith(f"did you mean {nearest}?")


def test_every_known_variable_is_silent() -> None:
    env = dict.fromkeys((name for name in VARIABLES if name.startswith(PREFIX)), "1")
    assert Environment(env).misspelled() == []


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
        Settings(**changes)
    assert caught.value.variable == variable


def test_systemd_variables_are_read_by_settings_only() -> None:
    settings = read({"NOTIFY_SOCKET": "@sd", "WATCHDOG_USEC": "8000000"})
    assert (settings.notify_socket, settings.watchdog_interval) == ("@sd", 4.0)
    assert read({}).watchdog_interval is None


# -- built directly ----------------------------------------------------------------------------


def test_settings_built_directly_take_the_table_defaults_and_keep_paths_as_text(
    tmp_path: Path,
) -> None:
    built = Settings()
    for variable in VARIABLES.values():
        if variable.field is not None:
            assert getattr(built, variable.field) == variable.default, variable.name
    given = Settings(socket_path=tmp_path / "s.sock", task_id=uuid.UUID(TASK), request_timeout=2)
    assert given.socket_path == str(tmp_path / "s.sock")
    assert given.task_id == TASK
    assert given.request_timeout == 2.0
    assert given == Settings(socket_path=str(tmp_path / "s.sock"), task_id=TASK, request_timeout=2)
    with pytest.raises(TypeError, match="no field 'shutdown'"):
        Settings(shutdown=1)


@pytest.mark.parametrize(
    ("changes", "variable"),
    [
        ({"coder_url": "coder.example.com"}, "CODER_AGENT_URL"),
        ({"task_id": "task-7"}, "CODER_TASK_ID"),
        ({"token": "plain text"}, "CODER_AGENT_TOKEN"),
        ({"tls_verify": "maybe"}, "CODER_TASK_AGENT_TLS_VERIFY"),
        ({"mode": None}, "CODER_TASK_AGENT_MODE"),
    ],
)
def test_every_field_built_directly_is_checked_by_its_variable(
    changes: dict[str, object], variable: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings(**changes)
    assert caught.value.variable == variable


def test_hooks_mode_is_decided_once() -> None:
    assert Settings(mode="hooks").hooks_mode
    assert not Settings().hooks_mode
    assert read({"CODER_MCP_AI_AGENTAPI_URL": "none"}).hooks_mode


# -- the hooks' fast path: read in part ---------------------------------------------------------


def test_read_in_part_gives_what_a_full_read_gives_for_those_fields(tmp_path: Path) -> None:
    env = {
        "XDG_RUNTIME_DIR": str(tmp_path),
        "CODER_TASK_AGENT_LOG_LEVEL": "WARNING",
        "CODER_TASK_AGENT_LOG_FORMAT": " json ",
        "CODER_TASK_AGENT_SHUTDOWN_BUDGET": "2.5",
        "CODER_AGENT_TOKEN": "tok-123",
        "CODER_AGENT_URL": "not checked on the fast path",
    }
    part = read(env, only=HOOK_FIELDS)
    assert part.socket_path == str(tmp_path / "coder-task-agent" / "report.sock")
    assert (part.log_level, part.log_format, part.shutdown_budget) == ("warning", "json", 2.5)
    assert part.masks == ("tok-123",)
    assert part.warnings == ()
    with pytest.raises(AttributeError):
        _ = part.coder_url
    with pytest.raises(ConfigError, match="CODER_AGENT_URL"):
        part.full()
    whole = read({**env, "CODER_AGENT_URL": "https://c.example"}, only=HOOK_FIELDS).full()
    assert whole.coder_url == "https://c.example"
    assert {f: getattr(whole, f) for f in HOOK_FIELDS} == {f: getattr(part, f) for f in HOOK_FIELDS}
    assert whole.full() is whole


def test_read_in_part_keeps_the_flags_for_the_full_read(tmp_path: Path) -> None:
    flags = {"CODER_TASK_AGENT_SOCKET": ("--socket", str(tmp_path / "s.sock"))}
    part = read({}, flags, only=HOOK_FIELDS)
    assert part.socket_path == str(tmp_path / "s.sock")
    assert part.full().socket_path == str(tmp_path / "s.sock")


def test_every_token_source_is_masked_on_the_fast_path(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-file-456\n")
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "coder-agent-token").write_text("from-credential-789")
    env = {"CODER_AGENT_TOKEN_FILE": str(token_file), "CREDENTIALS_DIRECTORY": str(credentials)}
    assert read(env, only=HOOK_FIELDS).masks == ("from-file-456", "from-credential-789")
    # Unreadable or malformed, it is no error here: the fast path never sends it.
    assert read({"CODER_AGENT_TOKEN": "has space"}, only=HOOK_FIELDS).masks == ("has space",)


def test_a_field_with_a_rule_of_its_own_cannot_be_read_alone() -> None:
    with pytest.raises(ValueError, match="token"):
        read({}, only={"token"})


@pytest.mark.parametrize(
    ("env", "flags", "named"),
    [
        ({"CODER_TASK_AGENT_LOG_LEVEL": "loud"}, {}, "CODER_TASK_AGENT_LOG_LEVEL"),
        ({"CODER_TASK_AGENT_SHUTDOWN_BUDGET": "-1"}, {}, "CODER_TASK_AGENT_SHUTDOWN_BUDGET"),
        (
            {},
            {"CODER_TASK_AGENT_SHUTDOWN_BUDGET": ("--budget", "soon")},
            "--budget (CODER_TASK_AGENT_SHUTDOWN_BUDGET)",
        ),
        ({}, {"CODER_TASK_AGENT_SOCKET": ("--socket", " ")}, "--socket"),
    ],
)
def test_read_in_part_fails_naming_the_variable_or_flag(
    env: dict[str, str], flags: dict[str, tuple[str, str]], named: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        read(env, flags, only=HOOK_FIELDS)
    assert str(caught.value).startswith(named)


# -- the one reader ------------------------------------------------------------------------------

BUDGET = PREFIX + "SHUTDOWN_BUDGET"


def test_a_variable_is_parsed_and_an_unset_or_blank_one_gives_the_default() -> None:
    environment = Environment({BUDGET: " 2.5 ", "CODER_TASK_ID": "  "})
    assert environment.read(BUDGET, positive_seconds, 5.0) == 2.5
    assert environment.read("CODER_TASK_ID", text, None) is None, "blank means unset"
    assert environment.read("CODER_AGENT_URL", text, "default") == "default"
    assert environment.is_set(BUDGET)
    assert not environment.is_set("CODER_TASK_ID")


def test_a_flag_wins_over_the_variable_and_is_parsed_even_when_blank() -> None:
    environment = Environment({BUDGET: "2.5"}, {BUDGET: ("--budget", "7")})
    assert environment.read(BUDGET, positive_seconds, 5.0) == 7.0
    assert environment.name(BUDGET) == f"--budget ({BUDGET})"
    blank = Environment({}, {PREFIX + "SOCKET": ("--socket", "")})
    assert blank.is_set(PREFIX + "SOCKET")
    with pytest.raises(ConfigError, match=r"^--socket \(CODER_TASK_AGENT_SOCKET\): "):
        blank.read(PREFIX + "SOCKET", lambda raw: raw or _fail("must not be empty"), None)


def _fail(problem: str) -> str:
    raise ValueError(problem)


@pytest.mark.parametrize(
    ("env", "flags", "named", "problem"),
    [
        ({BUDGET: "soon"}, {}, BUDGET, "must be a number of seconds, got 'soon'"),
        (
            {BUDGET: "1"},
            {BUDGET: ("--budget", "-1")},
            f"--budget ({BUDGET})",
            "must be a positive number of seconds, at most 86400, got '-1'",
        ),
    ],
)
def test_a_bad_value_is_a_config_error_naming_where_it_came_from(
    env: dict[str, str], flags: dict[str, tuple[str, str]], named: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Environment(env, flags).read(BUDGET, positive_seconds, 5.0)
    assert caught.value.variable == named
    assert caught.value.problem == problem


def test_a_variable_missing_from_the_table_cannot_be_read() -> None:
    environment = Environment({"CODER_TASK_AGENT_NEW_THING": "1"})
    with pytest.raises(LookupError, match="VARIABLES"):
        environment.read("CODER_TASK_AGENT_NEW_THING", text, None)
    with pytest.raises(LookupError):
        Environment({}, {"CODER_TASK_AGENT_NEW_THING": ("--new", "1")})
    with pytest.raises(LookupError):
        environment.replaced({"PATH": "/bin"})


def test_misspellings_are_judged_against_the_table() -> None:
    known = dict.fromkeys((v for v in VARIABLES if v.startswith(PREFIX)), "1")
    assert Environment(known).misspelled() == []
    (warning,) = Environment({**known, PREFIX + "POLL_INTERVALL": "1"}).misspelled()
    assert warning.endswith(f"did you mean {PREFIX}POLL_INTERVAL?")
    assert Environment({"UNRELATED": "1", "ARG_SOMETHING": "x"}).misspelled() == []


def test_replaced_sets_and_unsets_and_keeps_the_flags() -> None:
    environment = Environment(
        {"CODER_TASK_ID": "x", "HOME": "/home/u"}, {BUDGET: ("--budget", "3")}
    )
    replaced = environment.replaced({"CODER_TASK_ID": None, "CODER_AGENT_URL": "http://c"})
    assert replaced.mapping() == {"HOME": "/home/u", "CODER_AGENT_URL": "http://c"}
    assert replaced.read(BUDGET, positive_seconds, 5.0) == 3.0
    assert environment.mapping()["CODER_TASK_ID"] == "x", "the original is unchanged"


def test_the_mapping_is_copied_when_built() -> None:
    source = {BUDGET: "2"}
    environment = Environment(source)
    source[BUDGET] = "9"
    assert environment.read(BUDGET, positive_seconds, 5.0) == 2.0


@pytest.mark.parametrize(
    ("raw", "value"), [("TRUE", True), (" on ", True), ("0", False), ("No", False)]
)
def test_boolean(raw: str, value: bool) -> None:
    assert boolean(raw) is value


def test_a_host_in_unicode_is_a_url_both_clients_send_as_its_idna_form() -> None:
    assert url("https://b\u00fccher.example/") == "https://b\u00fccher.example"
    assert url("http://[::1]:3284/x%20y") == "http://[::1]:3284/x%20y"


def test_parsers_refuse_with_the_value_named() -> None:
    with pytest.raises(ValueError, match="'maybe'"):
        boolean("maybe")
    with pytest.raises(ValueError, match="must be one of a, b, got 'c'"):
        choice("a", "b")("c")
    with pytest.raises(ValueError, match="positive"):
        positive_seconds("inf")


def test_proxies_are_every_proxy_variable_in_any_case() -> None:
    environment = Environment(
        {"HTTPS_PROXY": "http://p:3128", "no_proxy": "localhost", "ftp_proxy": " ", "PATH": "/"}
    )
    assert environment.proxies() == {"HTTPS_PROXY": "http://p:3128", "no_proxy": "localhost"}


# -- the task id, read as uuid reads it ---------------------------------------------------------

HEX = st.text(alphabet="0123456789abcdefABCDEF", min_size=32, max_size=32)
NOISE = st.sampled_from(["", "-", "{", "}", "urn:", "uuid:", " ", "+", "_", "0x", "g", "\u0663"])


@st.composite
def uuid_texts(draw: st.DrawFn) -> str:
    """UUID texts as people write them, and near misses."""
    digits = list(draw(HEX))
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(digits)))
        digits.insert(at, draw(NOISE))
    if draw(st.booleans()):
        del digits[draw(st.integers(0, len(digits) - 1))]
    return "".join(digits)


@given(st.one_of(uuid_texts(), st.text(max_size=40)))
@example(TASK)
@example("{" + TASK.upper() + "}")
@example("urn:uuid:" + TASK)
@example(" " + TASK.replace("-", "") + "\n")
@example("+" + TASK.replace("-", "")[1:])
@example(TASK.replace("-", "")[:16] + "_" + TASK.replace("-", "")[17:])
@hypothesis_settings(max_examples=1000, deadline=None)
def test_a_task_id_is_read_exactly_as_uuid_reads_it(raw: str) -> None:
    try:
        expected: str | None = str(uuid.UUID(raw.strip()))
    except ValueError:
        expected = None
    try:
        got: str | None = task_id(raw)
    except ValueError:
        got = None
    assert got == expected
