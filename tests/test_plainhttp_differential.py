"""The one-shot's HTTP/1.1 reader against h11, the parser the httpx path reads answers with.

`agent.plainhttp` reads answers itself (issue 14: `http.client` costs too much to import on that
path), and the promise is that it behaves like the httpx path. Here h11 is the oracle: for every
well-formed answer hypothesis builds (any status, headers, body, framed by length, by chunks
with extensions and trailers, or by the server closing, after any 1xx answers), both must read
the same status, headers and body; for answers cut short or malformed in the ways a server or a
proxy breaks them, both must refuse. The reader runs on the bytes directly (no socket), so the
examples are many and fast; the loopback tests in test_plainhttp.py cover the socket around it.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import plainhttp

TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
# Framing headers are the framing strategy's to write; the rest are any token.
FRAMING = {"content-length", "transfer-encoding", "connection"}
STATUSES = [200, 201, 202, 204, 301, 302, 304, 400, 401, 403, 404, 409, 422, 429, 500, 502, 503]


@dataclass(frozen=True)
class Read:
    """What a reader made of an answer."""

    status: int
    headers: dict[str, str]
    body: bytes


def read_plain(raw: bytes) -> Read:
    # The reader reads through a buffer whatever is under it: here the bytes themselves.
    reader: Any = io.BufferedReader(io.BytesIO(raw))
    status, headers = plainhttp._read_head(reader)
    body, complete = plainhttp._read_body(reader, status, headers, limit=1 << 30)
    assert complete
    return Read(status, headers, body)


def read_h11(raw: bytes) -> Read:
    """h11 as httpcore drives it: a GET sent, then the answer's bytes, then the end of input."""
    connection = h11.Connection(h11.CLIENT)
    connection.send(h11.Request(method="GET", target="/x", headers=[("Host", "coder")]))
    connection.send(h11.EndOfMessage())
    connection.receive_data(raw)
    connection.receive_data(b"")
    status, headers, body = 0, {}, bytearray()
    while True:
        event = connection.next_event()
        if isinstance(event, h11.InformationalResponse):
            continue
        if isinstance(event, h11.Response):
            status = event.status_code
            headers = {k.decode().lower(): v.decode("latin-1") for k, v in event.headers}
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return Read(status, headers, bytes(body))
        elif event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
            raise h11.RemoteProtocolError("the answer ended before it was whole")


header_names = st.text(TOKEN_CHARS, min_size=1, max_size=20).filter(
    lambda name: name.lower() not in FRAMING
)
# Visible ASCII and inner spaces: what servers send (both readers trim the outer whitespace).
header_values = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=0, max_size=40
).map(str.strip)


@st.composite
def answers(draw: st.DrawFn) -> tuple[bytes, int, dict[str, str], bytes]:
    """A well-formed answer: its bytes, and the status, headers and body it carries."""
    status = draw(st.sampled_from(STATUSES))
    names = draw(st.lists(header_names, max_size=6, unique_by=str.lower))
    headers = {name: draw(header_values) for name in names}
    body = b"" if status in (204, 304) else draw(st.binary(max_size=3000))
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    lines = [f"HTTP/1.1 {status} {draw(st.sampled_from(['OK', 'Whatever', '']))}".rstrip()]
    lines += [f"{name}:{draw(st.sampled_from(['', ' ', '  ']))}{v}" for name, v in headers.items()]
    payload = body
    shown = {name.lower(): value for name, value in headers.items()}
    if status not in (204, 304):
        if framing == "length":
            lines.append(f"Content-Length: {len(body)}")
            shown["content-length"] = str(len(body))
        elif framing == "chunked":
            lines.append("Transfer-Encoding: chunked")
            shown["transfer-encoding"] = "chunked"
            payload = draw(chunked(body))
        else:
            lines.append("Connection: close")
            shown["connection"] = "close"
    interim = draw(st.sampled_from([b"", b"HTTP/1.1 100 Continue\r\n\r\n"]))
    raw = interim + ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload
    return raw, status, shown, body


@st.composite
def chunked(draw: st.DrawFn, body: bytes) -> bytes:
    """`body` in chunks of any sizes, hex in either case, with extensions and trailers."""
    out = bytearray()
    rest = body
    while rest:
        size = draw(st.integers(min_value=1, max_value=len(rest)))
        hex_size = format(size, draw(st.sampled_from(["x", "X"])))
        extension = draw(st.sampled_from(["", ";name=value", ";flag"]))
        out += f"{hex_size}{extension}\r\n".encode() + rest[:size] + b"\r\n"
        rest = rest[size:]
    out += b"0\r\n"
    out += draw(st.sampled_from([b"", b"Trailer-One: 1\r\n", b"A: b\r\nC: d\r\n"]))
    return bytes(out + b"\r\n")


@settings(max_examples=300, deadline=None)
@given(answers())
def test_every_well_formed_answer_reads_as_h11_reads_it(
    answer: tuple[bytes, int, dict[str, str], bytes],
) -> None:
    raw, status, headers, body = answer
    plain, oracle = read_plain(raw), read_h11(raw)
    assert plain == oracle
    assert (plain.status, plain.body) == (status, body)
    assert plain.headers == headers


CUT_OR_MALFORMED = [
    # Cut short: the server closed mid-way.
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",
    b"HTTP/1.1 200 OK",
    b"",
    # Not HTTP/1.1, or not framed as it says.
    b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
    b"HTTP/1.1 2x0 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n0123456789",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n : empty name\r\n\r\n",
]


@pytest.mark.parametrize("raw", CUT_OR_MALFORMED)
def test_an_answer_cut_short_or_malformed_is_refused_by_both(raw: bytes) -> None:
    with pytest.raises(h11.RemoteProtocolError):
        read_h11(raw)
    with pytest.raises(plainhttp._ProtocolError):
        read_plain(raw)


def outcome(reader: Callable[[bytes], Read], raw: bytes) -> Read | None:
    """What `reader` made of `raw`, framing headers aside (h11 rewrites them); None: refused."""
    try:
        read = reader(raw)
    except (h11.RemoteProtocolError, plainhttp._ProtocolError):
        return None
    kept = {
        k: v for k, v in read.headers.items() if k not in {"content-length", "transfer-encoding"}
    }
    return Read(read.status, kept, read.body)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A well-formed answer with a few bytes replaced, inserted or removed anywhere."""
    raw = bytearray(draw(answers())[0])
    # Bytes that matter to a parser more often than chance would pick them.
    interesting = st.sampled_from(list(b"\r\n \t:;,0aF\x00\x01\x7f\xff-"))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        at = draw(st.integers(min_value=0, max_value=len(raw)))
        match draw(st.sampled_from(["replace", "insert", "delete"])):
            case "replace" if at < len(raw):
                raw[at] = draw(interesting)
            case "insert":
                raw.insert(at, draw(interesting))
            case "delete" if at < len(raw):
                del raw[at]
    return bytes(raw)


@settings(max_examples=400, deadline=None)
@given(mutated())
def test_a_damaged_answer_is_accepted_or_refused_as_h11_does(raw: bytes) -> None:
    assert outcome(read_plain, raw) == outcome(read_h11, raw)


# The long run, in `make slow` (CI runs both): 1500 examples here were 6 s of CPU under
# coverage, the longest test of `make test`.
@pytest.mark.slow
@settings(max_examples=5000, deadline=None)
@given(mutated())
def test_a_damaged_answer_is_accepted_or_refused_as_h11_does_long_run(raw: bytes) -> None:
    assert outcome(read_plain, raw) == outcome(read_h11, raw)
