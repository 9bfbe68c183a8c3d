"""Logging for every command: structured lines, the agent token masked, configured once.

JSON lines on stderr when it is not a terminal, a console rendering on one. The daemon and the
heavy paths log through structlog (`configure`); the short commands a hook runs write the same
lines with `Writer`, standard library only, so they cost about what starting Python costs
(issue 14). The one masking rule is `mask`: the token, and any piece of it of PIECE characters
or more (something may have cut it before us), is replaced; text from outside is masked, then
cut, or a token split by the cut would leave its head unmasked. Both writers scrub every field.
"""

from __future__ import annotations

import json
import re
import sys
import time

# True for type checkers only: `typing` stays off the hooks' path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, MutableMapping, Sequence
    from typing import Any, ClassVar, TextIO

    from agent.config import Secret, Settings

REDACTED = "[REDACTED]"
# A random 8-character run of a token does not occur in ordinary text, and is too much to show.
PIECE = 8


def mask(text: str, secrets: Sequence[str], limit: int | None = None) -> str:
    """`text` with every secret, and every piece of one of PIECE characters or more, replaced
    by REDACTED; then cut to `limit` characters when given (mask, then cut)."""
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
        if len(secret) > PIECE:
            text = _mask_pieces(text, secret)
    return text if limit is None else text[:limit]


def _mask_pieces(text: str, secret: str) -> str:
    """`text` with every run covered by PIECE-character windows of `secret` (overlapping or
    touching ones as one run) replaced."""
    covered = bytearray(len(text))
    for start in range(len(secret) - PIECE + 1):
        piece = secret[start : start + PIECE]
        found = text.find(piece)
        while found != -1:
            covered[found : found + PIECE] = b"\x01" * PIECE
            found = text.find(piece, found + 1)
    parts: list[str] = []
    kept = 0  # text before this index is written out
    for run in re.finditer(b"\x01+", covered):
        parts += [text[kept : run.start()], REDACTED]
        kept = run.end()
    return "".join([*parts, text[kept:]])


def scrub(value: object, secrets: Sequence[str]) -> object:
    """`value` masked (`mask`) in strings, containers and reprs."""
    if isinstance(value, str):
        return mask(value, secrets) if secrets else value
    if isinstance(value, dict):
        return {key: scrub(item, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(item, secrets) for item in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return scrub(repr(value), secrets)


def _texts(secrets: Iterable[Secret | str]) -> tuple[str, ...]:
    values = (s if isinstance(s, str) else s.reveal() for s in secrets)
    return tuple(v for v in values if v)


def _redact(
    secrets: Sequence[str], logger: object, method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """The structlog processor (bound to `secrets`) that masks every field."""
    if secrets:
        for key, value in event.items():
            event[key] = scrub(value, secrets)
    return event


def _monotonic(
    logger: object, method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    event["mono"] = round(time.monotonic(), 4)
    return event


def configure(
    level: str = "info",
    fmt: str = "auto",
    secrets: Iterable[Secret | str] = (),
    stream: TextIO | None = None,
) -> None:
    """Configure structlog for the process, once, at start."""
    import functools  # noqa: PLC0415 - structlog's path only
    import logging  # noqa: PLC0415

    import structlog  # noqa: PLC0415 - not on the hooks' path

    out = stream if stream is not None else sys.stderr
    console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer = (
        structlog.dev.ConsoleRenderer(colors=False)
        if console
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _monotonic,  # durations measured from the log hold whatever the wall clock did
            # Tracebacks become text before the redactor: a secret in an exception is masked.
            structlog.processors.format_exc_info,
            functools.partial(_redact, _texts(secrets)),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=True,
    )


def configure_from(settings: Settings, stream: TextIO | None = None) -> None:
    configure(settings.log_level, settings.log_format, settings.masks, stream)


class Writer:
    """The lines `configure` gives structlog (same keys, same order), standard library only."""

    _LEVELS: ClassVar[dict[str, int]] = {"debug": 10, "info": 20, "warning": 30, "error": 40}

    def __init__(
        self,
        level: str = "info",
        fmt: str = "auto",
        secrets: Iterable[Secret | str] = (),
        stream: TextIO | None = None,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._threshold = self._LEVELS.get(level, 20)
        self._console = fmt == "console" or (fmt == "auto" and self._stream.isatty())
        self.secrets = _texts(secrets)

    @classmethod
    def for_settings(cls, settings: Settings) -> Writer:
        return cls(settings.log_level, settings.log_format, settings.masks)

    def debug(self, event: str, **fields: object) -> None:
        self._emit("debug", event, fields)

    def info(self, event: str, **fields: object) -> None:
        self._emit("info", event, fields)

    def warning(self, event: str, **fields: object) -> None:
        self._emit("warning", event, fields)

    def error(self, event: str, **fields: object) -> None:
        self._emit("error", event, fields)

    def _emit(self, level: str, event: str, fields: dict[str, object]) -> None:
        if self._LEVELS[level] < self._threshold:
            return
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
        stamp += f".{int(now % 1 * 1_000_000):06d}Z"
        record = {key: scrub(value, self.secrets) for key, value in fields.items()}
        said = scrub(event, self.secrets)
        mono = round(time.monotonic(), 4)
        if self._console:
            record["mono"] = mono
            pairs = " ".join(f"{key}={_console_repr(record[key])}" for key in sorted(record))
            line = f"{stamp} [{level:<9}] {said:<30} {pairs}".rstrip()
        else:
            record.update(event=said, level=level, timestamp=stamp, mono=mono)
            line = json.dumps(record)
        try:
            self._stream.write(line + "\n")
            self._stream.flush()
        except (OSError, ValueError):
            return  # stderr closed: nothing to tell


def _console_repr(value: object) -> str:
    if isinstance(value, str) and not set(value) & {" ", "\t", "=", "\r", "\n", '"', "'"}:
        return value
    return repr(value)
