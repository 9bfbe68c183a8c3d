"""Logging: JSON or console, and the token masked wherever it would appear."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import structlog

from agent.logconfig import configure
from agent.redaction import REDACTED
from agent.settings import Secret

SECRET = "tok-5f2b9c1e7d"


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_the_token_is_masked_everywhere(fmt: str) -> None:
    out = io.StringIO()
    configure("debug", fmt, [Secret(SECRET)], stream=out)  # type: ignore[arg-type]
    log = structlog.get_logger("test")
    log.info("plain", value=f"Bearer {SECRET}", nested={"list": [SECRET, 1]}, obj=Secret(SECRET))
    try:
        raise RuntimeError(f"server echoed {SECRET}")
    except RuntimeError:
        log.exception("failed")
    text = out.getvalue()
    assert SECRET not in text
    assert text.count(REDACTED) >= 3
    assert "RuntimeError" in text, "the traceback itself is kept"


def test_json_lines_and_level_filter() -> None:
    out = io.StringIO()
    configure("warning", "json", stream=out)
    log = structlog.get_logger("test")
    log.info("hidden")
    log.warning("shown", count=3)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["event"], line["level"], line["count"]) for line in lines] == [
        ("shown", "warning", 3)
    ]
    assert lines[0]["timestamp"].endswith("Z")


def test_auto_is_json_when_not_a_terminal() -> None:
    out = io.StringIO()
    configure("info", "auto", stream=out)
    structlog.get_logger("test").info("event_name")
    assert json.loads(out.getvalue())["event"] == "event_name"
