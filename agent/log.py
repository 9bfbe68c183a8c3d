"""Logging for every command: structured lines, the agent token masked, configured once.

JSON lines on stderr when it is not a terminal, a console rendering on one; `render` makes every
line. The daemon and the heavy paths log through structlog (`configure`, whose last processor is
`render`); the short commands a hook runs call `Writer`, standard library only, so they cost
about what starting Python costs (issue 14). The one masking rule is `mask`: the token, and any
piece of it of PIECE characters or more (something may have cut it before us), is replaced; text
from outside is masked, then cut, or a token split by the cut would leave its head unmasked.

The daemon's lines never wait for stderr (`background`). A write to stderr blocks when the reader
does not read: a pipe nobody drains (a start-up script that backgrounds the daemon without
redirecting it: the Coder agent stops reading once the script exits), a slow terminal, a stuck
journald socket. Written from the event loop, one such write froze the whole daemon: no status
reports, and SIGTERM not honoured until the pipe drained, so SIGKILL lost the snapshot. So in the
daemon `Writer.write` only queues the line (`Backlog`, bounded) and one thread of its own writes
them, a daemon thread: the exit never waits for a stuck sink. Full, the backlog drops its oldest
lines, counted: the newest (the stop's `snapshot_uploaded`, `daemon_stopped`) matter most, and
the next line written says how many went (`log_lines_dropped`). At the daemon's exit the backlog
has FLUSH_SECONDS to go out; a sink still stuck then loses it, never the exit code. Only the
write moves: each line is rendered and masked by the caller, as before. The short commands
write directly: they live a moment and their lines must be out before they exit.

Not O_NONBLOCK on descriptor 2: it changes the open file description, shared with whoever else
holds it (the shell that started us, the Coder agent, other processes on the same pipe), which
would then get EAGAIN; a dup shares it too. Not an unbounded queue (memory grows for as long as
the sink is stuck), nor a blocking one (the freeze again), nor a write from the event loop with a
timeout (lines come from worker threads and from `logging` too, and a write that has started
cannot be abandoned).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections import deque

# True for type checkers only: `typing` stays off the hooks' path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
    from contextlib import AbstractContextManager
    from typing import Any, TextIO

    from structlog.typing import FilteringBoundLogger

    from agent.config import Secret, Settings

REDACTED = "[REDACTED]"
# A fault's message in characters, cut after masking (a cut could split a token): a line.
MAX_ERROR_CHARS = 300
_PACKAGE = os.path.dirname(os.path.abspath(__file__))
# A random 8-character run of a token does not occur in ordinary text, and is too much to show.
PIECE = 8
# The daemon's lines waiting for stderr, in characters: a few thousand lines (a few hundred
# characters each), a megabyte or two of memory at most while the sink is stuck.
BACKLOG_CHARS = 1_000_000
# At the daemon's exit, how long the lines still waiting may take to go out: the stop path's
# budget is over by then, and what starts the daemon waits a margin beyond it (docs/deploy.md).
FLUSH_SECONDS = 1.0
DROPPED = "log_lines_dropped"


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


def describe(exc: BaseException, secrets: Sequence[str]) -> dict[str, str]:
    """What `exc` was, in the fields of one line and never a traceback: its type, its message
    masked and cut, and where in `agent/` it was raised (`at`: a bug is found without one)."""
    try:
        message = mask(" ".join(str(exc).split()), secrets, limit=MAX_ERROR_CHARS)
    except Exception:  # noqa: BLE001 - a message that cannot be made is not shown
        message = "(its message could not be read)"
    fields = {"error_type": type(exc).__name__, "error": message}
    tb = exc.__traceback__
    while tb is not None:  # to the deepest frame of ours: `agent/http_async.py:160 in request`
        code = tb.tb_frame.f_code
        if code.co_filename.startswith(_PACKAGE):
            relative = "agent" + code.co_filename[len(_PACKAGE) :]
            fields["at"] = f"{relative}:{tb.tb_lineno} in {code.co_name}"
        tb = tb.tb_next
    return fields


def _texts(secrets: Iterable[Secret | str]) -> tuple[str, ...]:
    values = (s if isinstance(s, str) else s.reveal() for s in secrets)
    return tuple(v for v in values if v)


LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


def render(
    level: str, event: str, fields: Mapping[str, object], secrets: Sequence[str], console: bool
) -> str:
    """The log line, every field masked (`scrub`): JSON with the fields, then event, level,
    timestamp and mono; or the console layout. One line: an exception is `describe`d."""
    seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z"
    # Durations measured from the log hold whatever the wall clock did.
    mono = round(time.monotonic(), 4)
    record = {key: scrub(value, secrets) for key, value in fields.items()}
    said = scrub(event, secrets)
    if console:
        record["mono"] = mono
        pairs = " ".join(f"{key}={_console_repr(record[key])}" for key in sorted(record))
        return f"{stamp} [{level:<9}] {said:<30} {pairs}".rstrip(" ")
    record.update(event=said, level=level, timestamp=stamp, mono=mono)
    return json.dumps(record)


def _console_repr(value: object) -> str:
    if isinstance(value, str) and not set(value) & {" ", "\t", "=", "\r", "\n", '"', "'"}:
        return value
    return repr(value)


class Writer:
    """Log lines (`render`) at a level, standard library only; `configure` hands structlog one.

    Written directly, or by a thread of their own once `background` is called (the daemon)."""

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
        self._background: _Background | None = None

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
        """`line` on the stream, or handed to the writing thread once `background` started it
        (from any thread: it never waits for the stream)."""
        if self._background is not None:
            self._background.put(line)
        else:
            self._write_now(line)

    def _write_now(self, line: str) -> None:
        """A stream that cannot take `line` (closed, a full disk, a pipe whose reader is gone)
        loses the line, never the caller: a log line is no reason to stop."""
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            return  # stderr unusable: nothing to tell

    def dropped(self, count: int) -> str:
        """The line saying `count` lines were dropped before it, at any level: it says what the
        log itself lost."""
        fields = {
            "dropped": count,
            "reason": "stderr did not take them in time: the oldest waiting were dropped",
        }
        return render("warning", DROPPED, fields, self.secrets, self.console)

    def background(self, capacity: int = BACKLOG_CHARS) -> None:
        """From now on the lines are written by a thread of their own (the module's docstring)."""
        if self._background is None:
            self._background = _Background(self._write_now, self.dropped, Backlog(capacity))

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the lines handed to the thread to be written; True
        once they are (at once when written directly)."""
        return self._background is None or self._background.flush(timeout)

    def processor(self, logger: object, method: str, event: MutableMapping[str, Any]) -> str:
        """structlog's last processor: the same line (`level` from add_log_level); an exception
        logged with it (`log.exception`, `exc_info=`) is `describe`d, never a traceback."""
        exc = event.pop("exc_info", None)
        exc = sys.exc_info()[1] if exc is True else exc[1] if isinstance(exc, tuple) else exc
        if isinstance(exc, BaseException):
            event.update(describe(exc, self.secrets))
        return render(event.pop("level"), event.pop("event"), event, self.secrets, self.console)


class Backlog:
    """Lines waiting for the sink, at most `capacity` characters; the decisions alone (the
    caller holds the lock). Full, it drops its oldest lines and counts them."""

    def __init__(self, capacity: int = BACKLOG_CHARS) -> None:
        self.capacity = capacity
        self._lines: deque[str] = deque()
        self._chars = 0
        self._dropped = 0  # since the last `take`, all older than the lines held

    def __bool__(self) -> bool:
        """Something to write: lines, or the count of those dropped."""
        return bool(self._lines) or self._dropped > 0

    def put(self, line: str) -> None:
        self._lines.append(line)
        self._chars += len(line)
        while self._chars > self.capacity:  # the oldest first: the newest matter most
            self._chars -= len(self._lines.popleft())
            self._dropped += 1

    def take(self) -> tuple[int, list[str]]:
        """How many lines were dropped since the last take, then the lines held, oldest first:
        in that order they were said (the dropped ones came before those kept)."""
        taken = (self._dropped, list(self._lines))
        self._lines.clear()
        self._chars = self._dropped = 0
        return taken


class _Background:
    """The thread writing the daemon's lines: it alone waits for the stream."""

    def __init__(
        self, write: Callable[[str], None], dropped: Callable[[int], str], backlog: Backlog
    ) -> None:
        import threading  # noqa: PLC0415 - the daemon's only: not on the hooks' path

        self._write = write
        self._dropped = dropped
        self._backlog = backlog
        self._changed = threading.Condition()
        self._writing = False  # a batch taken and not all written yet
        # A daemon thread: the interpreter's exit does not wait for it, stuck or not.
        threading.Thread(target=self._run, name="log-writer", daemon=True).start()

    def put(self, line: str) -> None:
        with self._changed:  # held for the backlog's bookkeeping only, never for a write
            self._backlog.put(line)
            self._changed.notify_all()

    def flush(self, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(self._written, timeout)

    def _written(self) -> bool:
        return not self._writing and not self._backlog

    def _run(self) -> None:
        while True:
            with self._changed:
                self._writing = False
                self._changed.notify_all()  # for `flush`
                self._changed.wait_for(self._backlog.__bool__)
                dropped, lines = self._backlog.take()
                self._writing = True
            for line in self._batch(dropped, lines):
                try:
                    self._write(line)
                except Exception:  # noqa: BLE001, S112 - the thread must outlive any one line
                    continue

    def _batch(self, dropped: int, lines: list[str]) -> Iterator[str]:
        if dropped:
            yield self._dropped(dropped)
        yield from lines


def configure(
    level: str = "info",
    fmt: str = "auto",
    secrets: Iterable[Secret | str] = (),
    stream: TextIO | None = None,
) -> None:
    """Configure structlog for the process, once, at start."""
    import structlog  # noqa: PLC0415 - not on the hooks' path

    writer = Writer(level, fmt, secrets, stream)
    _configured[:] = [writer]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            writer.processor,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(writer.threshold),
        logger_factory=lambda *_: _Sink(writer),
        cache_logger_on_first_use=True,
    )
    _route_library_logging(writer)


# The writer of the last `configure`: `background` moves its writes off the caller.
_configured: list[Writer] = []


def background(flush_seconds: float = FLUSH_SECONDS) -> AbstractContextManager[None]:
    """Inside it, the configured writer's lines are written by a thread of their own (the
    daemon: the module's docstring); at its end they have `flush_seconds` to go out."""
    from contextlib import contextmanager  # noqa: PLC0415 - not on the hooks' path

    @contextmanager
    def moved() -> Iterator[None]:
        for writer in _configured:
            writer.background()
        try:
            yield
        finally:
            for writer in _configured:
                writer.flush(flush_seconds)

    return moved()


class _Sink:
    """structlog's logger: each line through `Writer.write`. structlog's own loggers raise what
    the write raises, and a full disk under stderr ended the daemon's supervision (exit 5)."""

    def __init__(self, writer: Writer) -> None:
        self._writer = writer

    def msg(self, message: str) -> None:
        self._writer.write(message)

    log = debug = info = warn = warning = err = error = critical = exception = fatal = msg


def _route_library_logging(writer: Writer) -> None:
    """What the libraries log through the standard `logging` (asyncio's "Exception in
    callback", a warning) becomes our line, `library_log`: its default handler prints tracebacks,
    unmasked. `logging` is loaded already (structlog imports it)."""
    import logging  # noqa: PLC0415

    class Bridge(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            try:
                said = mask(record.getMessage(), writer.secrets, limit=MAX_ERROR_CHARS)
            except Exception:  # noqa: BLE001 - logging's own handling prints a traceback
                return  # a record that cannot be made (its arguments do not fit) is dropped
            fields: dict[str, object] = {"logger": record.name, "message": said}
            if record.exc_info is not None and record.exc_info[1] is not None:
                fields.update(describe(record.exc_info[1], writer.secrets))
            level = "error" if record.levelno >= logging.ERROR else "warning"
            writer._emit(level, "library_log", fields)

    logging.captureWarnings(True)
    logging.root.handlers[:] = [Bridge()]
    logging.root.setLevel(logging.WARNING)


def configure_from(settings: Settings, stream: TextIO | None = None) -> None:
    configure(settings.log_level, settings.log_format, settings.masks, stream)


def get_logger(name: str) -> FilteringBoundLogger:
    """structlog's logger for `name`, structlog imported at the call (not at module import)."""
    import structlog  # noqa: PLC0415 - not on the hooks' path

    logger: FilteringBoundLogger = structlog.get_logger(name)
    return logger
