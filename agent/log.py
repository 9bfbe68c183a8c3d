"""Logging for every command: structured lines, the agent token masked, configured once.

JSON lines on stderr when it is not a terminal, a console rendering on one; `render` makes every
line. The daemon and the heavy paths log through structlog (`configure`, whose last processor is
`render`); the short commands a hook runs call `Writer`, standard library only, so they cost
about what starting Python costs (issue 14). The one masking rule is `mask`: the token, and any
piece of it of PIECE characters or more (something may have cut it before us), is replaced; text
from outside is masked, then cut, or a token split by the cut would leave its head unmasked.
"""

from __future__ import annotations

import json
import re
import sys
import time

# True for type checkers only: `typing` stays off the hooks' path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, MutableMapping, Sequence
    from typing import Any, TextIO

    from structlog.typing import FilteringBoundLogger

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


LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


def render(
    level: str, event: str, fields: Mapping[str, object], secrets: Sequence[str], console: bool
) -> str:
    """The log line, every field masked (`scrub`): JSON with the fields, then event, level,
    timestamp, mono and any exception; or the console layout, any exception on the lines below."""
    seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z"
    # Durations measured from the log hold whatever the wall clock did.
    mono = round(time.monotonic(), 4)
    record = {key: scrub(value, secrets) for key, value in fields.items()}
    said = scrub(event, secrets)
    if console:
        exception = record.pop("exception", None)
        record["mono"] = mono
        pairs = " ".join(f"{key}={_console_repr(record[key])}" for key in sorted(record))
        line = f"{stamp} [{level:<9}] {said:<30} {pairs}".rstrip(" ")
        return line if exception is None else f"{line}\n{exception}"
    record.update(event=said, level=level, timestamp=stamp, mono=mono)
    if "exception" in record:  # last, where structlog's format_exc_info puts it
        record["exception"] = record.pop("exception")
    return json.dumps(record)


def _console_repr(value: object) -> str:
    if isinstance(value, str) and not set(value) & {" ", "\t", "=", "\r", "\n", '"', "'"}:
        return value
    return repr(value)


class Writer:
    """Log lines (`render`) at a level, standard library only; `configure` hands structlog one."""

    def __init__(
        self,
        level: str = "info",
        fmt: str = "auto",
        secrets: Iterable[Secret | str] = (),
        stream: TextIO | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.threshold = LEVELS.get(level, 20)
        self.console = fmt == "console" or (fmt == "auto" and self.stream.isatty())
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
        if LEVELS[level] < self.threshold:
            return
        self.write(render(level, event, fields, self.secrets, self.console))

    def write(self, line: str) -> None:
        """`line` on the stream; a stream that cannot take it (closed, a full disk, a pipe
        nobody reads) loses the line, never the caller: a log line is no reason to stop."""
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            return  # stderr unusable: nothing to tell

    def processor(self, logger: object, method: str, event: MutableMapping[str, Any]) -> str:
        """structlog's last processor: the same line (`level` from add_log_level)."""
        return render(event.pop("level"), event.pop("event"), event, self.secrets, self.console)


def configure(
    level: str = "info",
    fmt: str = "auto",
    secrets: Iterable[Secret | str] = (),
    stream: TextIO | None = None,
) -> None:
    """Configure structlog for the process, once, at start."""
    import structlog  # noqa: PLC0415 - not on the hooks' path

    writer = Writer(level, fmt, secrets, stream)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            # Tracebacks become text before `render` masks them: a secret in an exception too.
            structlog.processors.format_exc_info,
            writer.processor,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(writer.threshold),
        logger_factory=lambda *_: _Sink(writer),
        cache_logger_on_first_use=True,
    )


class _Sink:
    """structlog's logger: each line through `Writer.write`. structlog's own loggers raise what
    the write raises, and a full disk under stderr ended the daemon's supervision (exit 5)."""

    def __init__(self, writer: Writer) -> None:
        self._writer = writer

    def msg(self, message: str) -> None:
        self._writer.write(message)

    log = debug = info = warn = warning = err = error = critical = exception = fatal = msg


def configure_from(settings: Settings, stream: TextIO | None = None) -> None:
    configure(settings.log_level, settings.log_format, settings.masks, stream)


def get_logger(name: str) -> FilteringBoundLogger:
    """structlog's logger for `name`, structlog imported at the call (not at module import)."""
    import structlog  # noqa: PLC0415 - not on the hooks' path

    logger: FilteringBoundLogger = structlog.get_logger(name)
    return logger
