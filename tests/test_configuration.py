"""`agent.configuration`: the light reading of the configuration that `Settings` is built from."""

from __future__ import annotations

import uuid
from dataclasses import MISSING, fields
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from agent.configuration import Configuration, task_id
from agent.settings import Settings, load_settings, settings_from

TASK = "6f1c2a3b-4d5e-4f60-8a1b-2c3d4e5f6a7b"


def test_the_defaults_are_the_settings_defaults() -> None:
    plain = Configuration({}).fields()
    for field in fields(Settings):
        if field.name == "socket_path":
            continue  # always set by the reader (the default depends on the environment)
        default = field.default
        value = plain[field.name]
        if isinstance(default, Path):
            value = Path(str(value))
        assert default is not MISSING
        assert value == default, field.name


def test_settings_are_built_from_the_configuration() -> None:
    env = {"CODER_AGENT_URL": "https://c.example/", "CODER_AGENT_TOKEN": "t", "CODER_TASK_ID": TASK}
    built = load_settings(env)
    assert built.task_id == uuid.UUID(TASK)
    assert built.coder_url == "https://c.example"
    assert isinstance(built.socket_path, Path)
    again = settings_from(Configuration({**Configuration({}).fields(), "socket_path": "/s"}))
    assert again.socket_path == Path("/s")


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
@settings(max_examples=1000, deadline=None)
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
