"""Logging for every command: structured lines, the agent token masked, configured once.

Logs are events with fields: JSON lines on stderr when stderr is not a terminal (journald,
containers, pipes), a readable console rendering on a terminal. The daemon and the heavy paths
log through structlog (`configure`, which imports structlog when called); the short commands a
hook runs (`report`, `hook`, `snapshot` without a daemon) write the same lines with `Writer`,
the standard library only, so that they cost about what starting Python costs (issue 14).

The masking rule is here and nowhere else (`mask`): every secret (the agent token) is replaced
wherever it appears, and so is any piece of it of `PIECE` characters or more, in case something
cut it before it reached us. Mask, then cut: text from outside (a server's error answer, a
daemon's words) is masked before it is shortened (`mask(..., limit=N)`), never the other way
round, or a token split by the cut would leave its head unmasked. Both writers run every field
through `scrub` at the end, tracebacks included.
"""

from __future__ import annotations

import json
import sys
import time

# A plain constant that type checkers treat as true: `typing` is not imported on the hooks' path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, MutableMapping, Sequence
    from typing import Any, ClassVar, TextIO

    from agent.config import Secret, Settings

REDACTED = "[REDACTED]"
# A piece of the token this long or longer is masked too: a random 8-character run of a token
# does not occur in ordinary text, and 8 characters of a token are too many to show.
PIECE = 8


def mask(text: str, secrets: Sequence[str], limit: int | None = None) -> str:
    """`text` with every secret, and every piece of one of PIECE characters or more, replaced
    by REDACTED; then cut to `limit` characters when given (mask, then cut)."""
    for secret in secrets:
        if not secret:
            continue
        if secret in text:
            text = text.replace(secret, REDACTED)
        if len(secret) > PIECE:
            text = _mask_pieces(text, secret)
    if limit is not None:
        text = text[:limit]
    return text


def _mask_pieces(text: str, secret: str) -> str:
    """`text` with every run made of PIECE-character windows of `secret` replaced."""
    spans: list[tuple[int, int]] = []
    for start in range(len(secret) - PIECE + 1):
        piece = secret[start : start + PIECE]
        found = text.find(piece)
        while found != -1:
            spans.append((found, found + PIECE))
            found = text.find(piece, found + 1)
    if not spans:
        return text
    spans.sort()
    parts: list[str] = []
    kept = 0  # text before this index is written out
    begin, end = spans[0]
    for span_begin, span_end in spans[1:]:
        if span_begin <= end:  # overlapping or touching: one masked run
            end = max(end, span_end)
            continue
        parts += [text[kept:begin], REDACTED]
        kept, (begin, end) = end, (span_begin, span_end)
    parts += [text[kept:begin], REDACTED, text[end:]]
    return "".join(parts)


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


# -- structlog, for the daemon and the heavy paths ---------------------------------------------


class _Redactor:
    """A structlog processor that masks secret values in every field."""

    def __init__(self, secrets: Sequence[str]) -> None:
        self._values = secrets

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
    fmt: str = "auto",
    secrets: Iterable[Secret | str] = (),
    stream: TextIO | None = None,
) -> None:
    """Configure structlog for the process. Call once, at start."""
    import logging  # noqa: PLC0415 - structlog's path only

    import structlog  # noqa: PLC0415 - not on the hooks' path

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
    processors += [structlog.processors.format_exc_info, _Redactor(_texts(secrets))]
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
    """Configure structlog as `settings` ask, masking their token."""
    configure(settings.log_level, settings.log_format, settings.masks, stream)


# -- the short commands' writer (standard library only) ----------------------------------------


class Writer:
    """Log lines in the format `configure` gives structlog, with the token masked.

    JSON lines when stderr is not a terminal, the console rendering on one; same keys, same
    order (fields, then event, level, timestamp, mono).
    """

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
        """The writer `settings` ask for, masking the token."""
        return cls(settings.log_level, settings.log_format, settings.masks)

    def debug(self, event: str, **fields: object) -> None:
        """Write a debug line."""
        self._emit("debug", event, fields)

    def info(self, event: str, **fields: object) -> None:
        """Write an info line."""
        self._emit("info", event, fields)

    def warning(self, event: str, **fields: object) -> None:
        """Write a warning line."""
        self._emit("warning", event, fields)

    def error(self, event: str, **fields: object) -> None:
        """Write an error line."""
        self._emit("error", event, fields)

    def _emit(self, level: str, event: str, fields: dict[str, object]) -> None:
        if self._LEVELS[level] < self._threshold:
            return
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
        stamp += f".{int(now % 1 * 1_000_000):06d}Z"
        record = {key: scrub(value, self.secrets) for key, value in fields.items()}
        if self._console:
            record["mono"] = round(time.monotonic(), 4)
            pairs = " ".join(f"{key}={_console_repr(record[key])}" for key in sorted(record))
            line = f"{stamp} [{level:<9}] {scrub(event, self.secrets):<30} {pairs}".rstrip()
        else:
            record.update(
                event=scrub(event, self.secrets),
                level=level,
                timestamp=stamp,
                mono=round(time.monotonic(), 4),
            )
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
