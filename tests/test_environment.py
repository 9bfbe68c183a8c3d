"""The one reader of the environment: flag over variable, blanks as unset, errors naming both."""

from __future__ import annotations

import pytest

from agent.environment import (
    PREFIX,
    VARIABLES,
    Environment,
    boolean,
    choice,
    positive_seconds,
    text,
)
from agent.errors import ConfigError
from agent.settings import TUNABLE_VARIABLES

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
            "must be a positive number of seconds, got '-1'",
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


def test_every_tunable_of_settings_is_in_the_table() -> None:
    assert set(TUNABLE_VARIABLES) <= VARIABLES.keys()


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
