"""Logging, configured once at start.

Logs are events with fields. JSON lines on stderr when stderr is not a terminal (journald,
containers, pipes), a readable console rendering on a terminal. Whatever the format, a last
processor replaces any secret it was given (the agent token) wherever it would appear, including
in rendered tracebacks: the token must reach no log line even by accident.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

from agent.redaction import scrub
from agent.settings import LogFormat, Secret, Settings


class _Redactor:
    """A structlog processor that masks secret values in every string field."""

    def __init__(self, secrets: Iterable[Secret]) -> None:
        self._values = [s.reveal() for s in secrets if s.reveal()]

    def __call__(
        self, logger: object, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if self._values:
            for key, value in event.items():
                event[key] = scrub(value, self._values)
        return event


def _monotonic(
    logger: object, method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    event["mono"] = round(time.monotonic(), 4)
    return event


def configure(
    level: str = "info",
    fmt: LogFormat = "auto",
    secrets: Iterable[Secret] = (),
    stream: TextIO | None = None,
) -> None:
    """Configure structlog for the process. Call once, at start."""
    out = stream if stream is not None else sys.stderr
    console = fmt == "console" or (fmt == "auto" and out.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # Monotonic seconds: durations measured from the log itself (a deadline kept or not)
        # hold whatever the wall clock or the machine's load did.
        _monotonic,
    ]
    # Tracebacks are rendered to text *before* the redactor runs, in both formats, so that a
    # secret inside an exception message is masked too.
    processors += [structlog.processors.format_exc_info, _Redactor(secrets)]
    if console:
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
    else:
        processors.append(structlog.processors.JSONRenderer())
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=True,
    )


def configure_from(settings: Settings, stream: TextIO | None = None) -> None:
    """Configure logging as `settings` ask, masking their token."""
    configure(
        settings.log_level,
        settings.log_format,
        secrets=[settings.token] if settings.token else [],
        stream=stream,
    )
