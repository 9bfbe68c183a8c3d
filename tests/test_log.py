"""Logging: JSON or console, one format from both writers, and the token masked everywhere.

Mask, then cut: text from outside is masked before it is shortened, so no cut can leave a piece
of the token showing, whatever offset the token sits at (tested at every one around the cut).
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import warnings
from collections.abc import Iterator, Mapping

import httpx
import pytest
import structlog

from agent import wire
from agent.config import Secret
from agent.http_async import status_error
from agent.log import (
    DROPPED,
    PIECE,
    REDACTED,
    Backlog,
    Writer,
    background,
    configure,
    mask,
    render,
    scrub,
)

SECRET = "tok-5f2b9c1e7d"
# As long as a Coder agent token (a UUID).
TOKEN = "5f0c4e55-33a8-4c1b-9a46-0c6cf1b8e2d7"


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


# -- the masking rule -------------------------------------------------------------------------


def test_the_whole_token_and_every_piece_of_eight_or_more_are_masked() -> None:
    assert mask(f"a {TOKEN} b", (TOKEN,)) == f"a {REDACTED} b"
    for length in range(PIECE, len(TOKEN)):
        for start in range(len(TOKEN) - length + 1):
            piece = TOKEN[start : start + length]
            shown = mask(f"said: {piece}!", (TOKEN,))
            assert shown == f"said: {REDACTED}!", (start, length)


def test_a_piece_shorter_than_eight_is_left_and_so_is_other_text() -> None:
    assert mask(f"x{TOKEN[: PIECE - 1]}y", (TOKEN,)) == f"x{TOKEN[: PIECE - 1]}y"
    assert mask("nothing to hide here", (TOKEN,)) == "nothing to hide here"
    assert mask("t is not masked without secrets", ()) == "t is not masked without secrets"


def test_pieces_apart_are_masked_apart_and_overlapping_ones_as_one() -> None:
    head, tail = TOKEN[:10], TOKEN[-10:]
    assert mask(f"{head} and {tail}", (TOKEN,)) == f"{REDACTED} and {REDACTED}"
    assert mask(f"{TOKEN}{TOKEN[:12]}", (TOKEN,)) == REDACTED * 2


@pytest.mark.parametrize("limit", [20, 300])
def test_mask_then_cut_leaves_no_piece_whatever_the_offset(limit: int) -> None:
    for offset in range(limit - len(TOKEN) - 2, limit + 2):
        text = "x" * max(0, offset) + TOKEN + "y" * 50
        shown = mask(text, (TOKEN,), limit=limit)
        assert len(shown) <= limit
        assert not _has_piece(shown, TOKEN, 4), offset


def _has_piece(text: str, secret: str, length: int) -> bool:
    return any(secret[i : i + length] in text for i in range(len(secret) - length + 1))


def test_scrub_masks_inside_containers_and_reprs() -> None:
    value = {"k": [f"Bearer {SECRET}", 1, None], "o": Secret(SECRET), "t": (SECRET,)}
    assert SECRET not in json.dumps(scrub(value, (SECRET,)))


# -- a server's words, masked before they are cut ----------------------------------------------


def test_a_server_echoing_the_token_at_any_offset_keeps_no_piece_of_it() -> None:
    for offset in range(wire.MAX_DETAIL_CHARS - len(TOKEN) - 2, wire.MAX_DETAIL_CHARS + 2):
        words = "e" * offset + TOKEN + " and more"
        for body in (words.encode(), json.dumps({"message": words}).encode()):
            detail = wire.problem_detail(body, (TOKEN,))
            assert len(detail) <= wire.MAX_DETAIL_CHARS
            assert not _has_piece(detail, TOKEN, 4), offset
            error = wire.answer_error("Coder", "PATCH", 400, body, secrets=(TOKEN,))
            assert not _has_piece(str(error), TOKEN, 4), offset


def test_the_httpx_path_masks_the_token_its_request_carried() -> None:
    request = httpx.Request("PATCH", "https://c.example/x", headers={"Coder-Session-Token": TOKEN})
    for offset in (0, wire.MAX_DETAIL_CHARS - 20, wire.MAX_DETAIL_CHARS - 3):
        body = json.dumps({"message": "e" * offset + TOKEN}).encode()
        error = status_error("Coder", "PATCH", httpx.Response(400, content=body, request=request))
        assert not _has_piece(str(error), TOKEN, 4), offset
    bare = status_error("Coder", "PATCH", httpx.Response(400, content=b"no request"))
    assert "no request" in str(bare)


# -- structlog --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_the_token_is_masked_everywhere(fmt: str) -> None:
    out = io.StringIO()
    configure("debug", fmt, [Secret(SECRET)], stream=out)
    log = structlog.get_logger("test")
    log.info("plain", value=f"Bearer {SECRET}", nested={"list": [SECRET, 1]}, obj=Secret(SECRET))
    log.info("cut", value=f"...{TOKEN[:9]}")
    try:
        raise RuntimeError(f"server echoed {SECRET}")
    except RuntimeError:
        log.exception("failed")
    text = out.getvalue()
    assert SECRET not in text
    assert text.count(REDACTED) == 3
    assert "RuntimeError" in text
    assert "Traceback" not in text


def test_an_exception_logged_is_one_line_never_a_traceback() -> None:
    out = io.StringIO()
    configure("debug", "json", [TOKEN], stream=out)
    try:
        raise ValueError(f"echoed {TOKEN[3:20]}\n  on two lines " + "x" * 400)
    except ValueError as exc:
        structlog.get_logger("test").error("failed", exc_info=exc)
    (line,) = out.getvalue().splitlines()
    fields = json.loads(line)
    assert fields["error_type"] == "ValueError"
    assert fields["error"].startswith(f"echoed {REDACTED} on two lines xx")
    assert len(fields["error"]) == 300, "masked, then cut"
    assert "at" not in fields, "raised in the test, not in agent/"
    assert "exc_info" not in fields


def test_what_a_library_logs_through_logging_is_our_line_masked() -> None:
    out = io.StringIO()
    configure("info", "json", [TOKEN], stream=out)
    try:
        raise OSError(f"callback saw {TOKEN}")
    except OSError as exc:
        # As asyncio's loop does with an exception in a callback.
        logging.getLogger("asyncio").error("Exception in callback %s", "cb()", exc_info=exc)
    logging.getLogger("httpx").info("HTTP Request: below the threshold")
    with warnings.catch_warnings():  # the suite makes warnings errors: shown, here
        warnings.simplefilter("always")
        warnings.warn(f"deprecated, said with {TOKEN}", UserWarning, stacklevel=1)
    logging.getLogger("bad").error("%s %s", "one argument for two")  # noqa: PLE1206 - on purpose: cannot be rendered
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(f["event"], f["level"], f["logger"]) for f in lines] == [
        ("library_log", "error", "asyncio"),
        ("library_log", "warning", "py.warnings"),
    ]
    assert lines[0]["message"] == "Exception in callback cb()"
    assert (lines[0]["error_type"], lines[0]["error"]) == ("OSError", f"callback saw {REDACTED}")
    assert TOKEN not in out.getvalue()
    assert REDACTED in lines[1]["message"]


def test_a_piece_of_the_token_is_masked_in_a_log_line() -> None:
    out = io.StringIO()
    configure("debug", "json", [TOKEN], stream=out)
    structlog.get_logger("test").info("cut", value=f"...{TOKEN[:9]}")
    assert json.loads(out.getvalue())["value"] == f"...{REDACTED}"


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


# -- the one line: `render`, used by structlog's pipeline and by Writer -------------------------

FIELDS: dict[str, object] = {
    "error": f"server said: Coder-Session-Token: {SECRET}",
    "socket": "/run/x/report.sock",
    "count": 3,
    "none": None,
    "quoted": "it's",
}
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"


def test_a_json_line_has_the_fields_then_event_level_and_times_token_masked() -> None:
    line = render("warning", "report_refused", FIELDS, (SECRET,), console=False)
    assert SECRET not in line
    record = json.loads(line)
    assert list(record) == [*FIELDS, "event", "level", "timestamp", "mono"]
    assert record["error"] == f"server said: Coder-Session-Token: {REDACTED}"
    assert record["event"] == "report_refused"
    assert record["level"] == "warning"
    assert re.fullmatch(STAMP, record["timestamp"])
    assert isinstance(record["mono"], float)


def test_a_console_line_is_time_level_event_then_sorted_fields_token_masked() -> None:
    stamp, rest = render("warning", "report_refused", FIELDS, (SECRET,), console=True).split(" ", 1)
    assert re.fullmatch(STAMP, stamp)
    assert _no_mono(rest) == (
        "[warning  ] report_refused                 count=3"
        f" error='server said: Coder-Session-Token: {REDACTED}' mono=M none=None"
        ' quoted="it\'s" socket=/run/x/report.sock'
    )
    assert _no_mono(render("info", "e", {}, (), console=True).split(" ", 1)[1]) == (
        "[info     ] e                              mono=M"
    )


def _no_mono(line: str) -> str:
    return re.sub(r"mono=[0-9.]+", "mono=M", line)


def test_structlog_and_the_writer_both_print_what_render_makes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[object, ...]] = []

    def fake(
        level: str, event: str, fields: Mapping[str, object], secrets: object, console: bool
    ) -> str:
        calls.append((level, event, dict(fields), secrets, console))
        return f"{level} {event}"

    monkeypatch.setattr("agent.log.render", fake)
    out = io.StringIO()
    configure("debug", "json", [Secret(SECRET)], stream=out)
    structlog.get_logger("x").warning("report_refused", count=3)
    Writer("debug", "json", (SECRET,), out).warning("report_refused", count=3)
    assert out.getvalue() == "warning report_refused\n" * 2
    assert calls[0] == calls[1] == ("warning", "report_refused", {"count": 3}, (SECRET,), False)


def test_the_writer_honours_the_level() -> None:
    out = io.StringIO()
    writer = Writer("warning", "json", (), out)
    writer.info("quiet")
    writer.error("loud")
    assert [json.loads(line)["event"] for line in out.getvalue().splitlines()] == ["loud"]


# -- the daemon's lines, written by a thread of their own ---------------------------------------

# What the tests below wait at most for the writing thread: a bound on failure, never a margin.
HUNG = 30.0


def test_a_full_backlog_drops_its_oldest_lines_and_counts_them() -> None:
    backlog = Backlog(capacity=9)
    assert not backlog
    for line in ("aaa", "bbb", "ccc", "ddd", "eeeee"):
        backlog.put(line)
    assert backlog.take() == (3, ["ddd", "eeeee"]), "the newest kept, the dropped counted"
    assert not backlog
    assert backlog.take() == (0, [])


def test_the_count_of_dropped_lines_is_given_once_and_before_the_lines_kept() -> None:
    backlog = Backlog(capacity=3)
    backlog.put("old")
    backlog.put("new")
    assert backlog, "the count alone is something to write"
    assert backlog.take() == (1, ["new"])
    backlog.put("abc")
    assert backlog.take() == (0, ["abc"])


def test_a_line_longer_than_the_backlog_is_dropped_and_counted() -> None:
    backlog = Backlog(capacity=3)
    backlog.put("ab")
    backlog.put("longer")
    assert backlog.take() == (2, [])


class StuckStream(io.StringIO):
    """A stderr whose first write blocks until `release` (a pipe nobody reads, then read)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def write(self, text: str) -> int:
        self.entered.set()
        assert self.release.wait(HUNG), "never released"
        return super().write(text)


def test_lines_written_while_the_stream_is_stuck_wait_or_are_dropped_then_counted() -> None:
    stream = StuckStream()
    writer = Writer("info", "json", (), stream)
    lines = [json.dumps({"event": "line", "n": n}) for n in range(10)]
    writer.background(capacity=len(lines[0]) * 3)
    writer.write(lines[0])
    assert stream.entered.wait(HUNG)  # the thread is inside the stream's write, held there
    for line in lines[1:]:
        writer.write(line)  # returns: the caller never waits for the stream
    assert not writer.flush(timeout=0), "still stuck"
    stream.release.set()
    assert writer.flush(timeout=HUNG)
    said = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert said[0] == {"event": "line", "n": 0}
    assert said[1]["event"] == DROPPED
    assert said[1]["dropped"] == 6
    assert said[2:] == [{"event": "line", "n": n} for n in (7, 8, 9)], "the newest kept"


def test_lines_from_many_threads_each_arrive_whole() -> None:
    out = io.StringIO()
    configure("info", "json", [TOKEN], stream=out)
    with background(flush_seconds=HUNG):
        log = structlog.get_logger("test")

        def say(thread: int) -> None:
            for n in range(200):
                log.info("line", thread=thread, n=n, secret=TOKEN)

        threads = [threading.Thread(target=say, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    said = [json.loads(line) for line in out.getvalue().splitlines()]
    assert sorted((line["thread"], line["n"]) for line in said) == [
        (t, n) for t in range(4) for n in range(200)
    ]
    assert TOKEN not in out.getvalue(), "masked by the caller, as before"
    for thread_id in range(4):
        mine = [line["n"] for line in said if line["thread"] == thread_id]
        assert mine == sorted(mine), "in the order said"
