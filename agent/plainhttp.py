"""One HTTP/1.1 request with the standard library: the one-shot snapshot's client.

Why it exists: `python -m agent snapshot` with no daemon running makes two requests (GET
AgentAPI's `/messages`, POST the snapshot to Coder) and must cost about what Coder's own stop
script costs (issue 14); importing httpx alone takes longer than that whole script. This client
does what `agent.http_async.request` does over httpx, for those two requests only, and nothing more:

- one overall deadline per call, however the server trickles its answer (every read gets only
  the time left), the name lookup included (it runs in a thread when the host is a name other
  than `localhost`, which is loopback without a lookup);
- the answer read through a size cap (a successful answer past it is refused or cut, an error
  answer is cut to its first MAX_ERROR_BODY bytes), `Content-Length`, chunked and close-delimited
  bodies, 1xx answers skipped;
- never a redirect followed: a 3xx is an answer like any other (the token stays here);
- TLS verified by the rules of httpx's `create_ssl_context` (`tls_context`), HTTP/1.1 announced
  by ALPN as httpx does;
- failures in the error tree as `agent.http_async` translates httpx's: NotSent when nothing left
  (refused, no such host, TLS handshake refused), OutcomeUnknown once the request may have left
  (reset, malformed or incomplete answer), and the builtin TimeoutError when the call's deadline
  passed, for the caller to word (as `agent.http_async` and `agent.retry` word theirs).

Why not `http.client`: it imports the `email` package to parse headers, about 15 ms on this
machine, a third of the reference script's whole run; the HTTP/1.1 this client reads (a status
line, headers, a length or chunks) is short enough to read here. It reads it by h11's grammar
(h11 reads the httpx path's answers), so both paths accept and refuse the same answers:
`tests/test_plainhttp_differential.py` holds the two to it on generated well-formed answers and
on damaged ones, and `tests/test_plainhttp.py` pins the rules over a real socket. One request
per connection (`Connection: close`): the path makes two, to two servers. No `Accept-Encoding`
but identity: nothing to decode. Standard library only; `ssl` (and `certifi`,
httpx's own CA bundle) only when a URL is https, `threading` only to look a name up.
"""

from __future__ import annotations

import io
import re
import socket
import time

from agent.errors import BadResponse, NotSent, OutcomeUnknown

# A plain constant that type checkers treat as true: `typing` is not imported on the hooks' path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from collections.abc import Mapping, Sequence

# What both HTTP paths send (agent.transport and agent.coder.httpapi use these too).
USER_AGENT = "coder-task-agent"
TOKEN_HEADER = "Coder-Session-Token"  # noqa: S105 - a header name, not a secret
SNAPSHOT_QUERY = {"format": "agentapi"}
# The status line and headers of an answer (these servers send a few hundred bytes): the bound
# httpcore gives h11 on the httpx path.
MAX_HEAD_BYTES = 100 * 1024
# A chunk-size line, extensions included.
MAX_LINE_BYTES = 4096
_DEFAULT_PORTS = {"http": 80, "https": 443}


def snapshot_route(task_id: object) -> str:
    """The path of the log-snapshot upload for `task_id` (a UUID)."""
    return f"/api/v2/workspaceagents/me/tasks/{task_id}/log-snapshot"


class Origin:
    """A base URL taken apart: where to connect, what to send as Host, the path prefix."""

    __slots__ = ("base", "host", "host_header", "port", "prefix", "scheme")

    def __init__(self, url: str) -> None:
        """`url` as `agent.config` validated it (http or https, a host, no credentials)."""
        self.base = url.rstrip("/")
        scheme, _, rest = url.partition("://")
        self.scheme = scheme.lower()
        netloc, slash, path = rest.partition("/")
        self.prefix = (slash + path).rstrip("/")
        if netloc.startswith("["):
            host, _, port_part = netloc[1:].partition("]")
            port_text = port_part.removeprefix(":")
        else:
            host, _, port_text = netloc.partition(":")
        self.host = host.lower()
        default = _DEFAULT_PORTS[self.scheme]
        self.port = int(port_text) if port_text else default
        shown = f"[{self.host}]" if ":" in self.host else self.host
        # As httpx sends it: the port only when it is not the scheme's own.
        self.host_header = shown if self.port == default else f"{shown}:{self.port}"

    def target(self, path: str, query: Mapping[str, str] | None = None) -> str:
        """The request target for `path` under the base URL's own path, with `query`."""
        target = self.prefix + "/" + path.lstrip("/")
        if query:
            target += "?" + "&".join(f"{key}={value}" for key, value in query.items())
        return target

    def url(self, path: str) -> str:
        """The URL of `path`, as error messages name it (never with the query)."""
        return self.base + "/" + path.lstrip("/")


def tls_context(
    *, verify: bool, trust_env: bool, cert_file: str = "", cert_dir: str = ""
) -> ssl.SSLContext:
    """The TLS context httpx builds for `verify` and `trust_env` (httpx 0.28 `_config.py`).

    Verified: the CA file `cert_file` (SSL_CERT_FILE), else the directory `cert_dir`
    (SSL_CERT_DIR), both only with `trust_env`, else certifi's bundle. Not verified: no
    certificate or name check at all. Raises OSError or ssl.SSLError when a CA source cannot be
    loaded (as httpx would).
    """
    import ssl  # noqa: PLC0415 - only for an https URL

    if not verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif trust_env and cert_file:
        context = ssl.create_default_context(cafile=cert_file)
    elif trust_env and cert_dir:
        context = ssl.create_default_context(capath=cert_dir)
    else:
        import certifi  # noqa: PLC0415 - httpx's own CA bundle, a dependency of httpx

        context = ssl.create_default_context(cafile=certifi.where())
    context.set_alpn_protocols(["http/1.1"])  # as httpcore does without HTTP/2
    return context


def coder_tls_context(
    url: str, *, verify: bool, cert_file: str, cert_dir: str
) -> ssl.SSLContext | None:
    """The context httpx's Coder client would use for `url` (it trusts the environment's
    SSL_CERT_FILE and SSL_CERT_DIR, given here); None for plain http."""
    if not url.startswith("https://"):
        return None
    return tls_context(verify=verify, trust_env=True, cert_file=cert_file, cert_dir=cert_dir)


class Answer:
    """An answer with its body read (through the cap)."""

    __slots__ = ("body", "complete", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes, complete: bool) -> None:
        self.status = status
        self.headers = headers  # lower-case names; a repeated header keeps its last value
        self.body = body
        self.complete = complete  # False when the body was cut at the cap

    @property
    def ok(self) -> bool:
        """A 2xx answer."""
        return 200 <= self.status < 300


def request(
    origin: Origin,
    method: str,
    path: str,
    *,
    service: str,
    what: str,
    timeout: float,
    max_body: int,
    error_body: int,
    whole_body: bool = True,
    headers: Sequence[tuple[str, str]] = (),
    query: Mapping[str, str] | None = None,
    body: bytes | None = None,
    tls: ssl.SSLContext | None = None,
) -> Answer:
    """One call to `origin`, all of it within `timeout` seconds, its answer read through a cap.

    A 2xx body is read through `max_body` (past it: BadResponse with `whole_body`, else cut),
    any other through `error_body`. Raises TimeoutError when `timeout` passes, NotSent when the
    request never left, OutcomeUnknown when it may have, BadResponse (above).
    """
    deadline = time.monotonic() + timeout
    sock = _connect(origin, deadline, service, what, tls)
    try:
        try:
            sock.settimeout(_left(deadline))
            sock.sendall(
                _head(origin, method, path, headers=headers, query=query, body=body) + (body or b"")
            )
            reader = io.BufferedReader(_DeadlineIO(sock, deadline), 65536)
            status, answer_headers = _read_head(reader)
            ok = 200 <= status < 300
            read, complete = _read_body(
                reader, status, answer_headers, max_body if ok else error_body
            )
        except TimeoutError:
            raise
        except _ProtocolError as exc:
            raise OutcomeUnknown(service, what, f"RemoteProtocolError: {exc}") from None
        except OSError as exc:
            raise OutcomeUnknown(service, what, f"{type(exc).__name__}: {exc}") from None
    finally:
        sock.close()
    if ok and whole_body and not complete:
        raise BadResponse(service, what, f"the answer exceeds {max_body} bytes")
    return Answer(status, answer_headers, read, complete)


class _ProtocolError(Exception):
    """The answer is not HTTP/1.1 as it should be (or it ended before it was whole)."""


def _left(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError
    return remaining


def _connect(
    origin: Origin, deadline: float, service: str, what: str, tls: ssl.SSLContext | None
) -> socket.socket:
    """A connected socket (TLS done, when https); NotSent when no connection was made."""
    addresses = _resolve(origin.host, origin.port, deadline, service, what)
    last: OSError | None = None
    for family, kind, proto, _, address in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(_left(deadline))
            sock.connect(address)
        except TimeoutError:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            last = exc
            continue
        except BaseException:
            sock.close()
            raise
        if tls is None:
            return sock
        return _handshake(sock, tls, origin.host, deadline, service=service, what=what)
    raise NotSent(service, what, f"ConnectError: {last}" if last else "ConnectError: no address")


def _handshake(
    sock: socket.socket,
    tls: ssl.SSLContext,
    host: str,
    deadline: float,
    *,
    service: str,
    what: str,
) -> socket.socket:
    import ssl  # noqa: PLC0415 - only for an https URL

    try:
        wrapped = tls.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
        wrapped.settimeout(_left(deadline))
        wrapped.do_handshake()
    except TimeoutError:
        sock.close()
        raise
    except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
        sock.close()
        # httpx raises ConnectError here: nothing of the request has left.
        raise NotSent(service, what, f"ConnectError: {exc}") from None
    except BaseException:
        sock.close()
        raise
    return wrapped


def _resolve(
    host: str, port: int, deadline: float, service: str, what: str
) -> list[tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[object, ...]]]:
    """The addresses of `host`, within the deadline (a name is looked up in a thread)."""
    if host == "localhost":
        # Loopback by definition (RFC 6761), as curl and Go treat it: no lookup, no thread (it
        # is AgentAPI's default address). IPv4 first: many images map only 127.0.0.1.
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 0, "", ("127.0.0.1", port)),
            (socket.AF_INET6, socket.SOCK_STREAM, 0, "", ("::1", port, 0, 0)),
        ]
    family = _address_family(host)
    if family is not None:
        # An address already: no lookup (getaddrinfo would also load the idna codec).
        address = (host, port) if family == socket.AF_INET else (host, port, 0, 0)
        return [(family, socket.SOCK_STREAM, 0, "", address)]
    flags = socket.AI_ADDRCONFIG
    import threading  # noqa: PLC0415 - only to bound a name lookup by the deadline

    found: list[object] = []

    def lookup() -> None:
        try:
            found.append(_addresses(host, port, flags))
        except OSError as exc:
            found.append(exc)

    thread = threading.Thread(target=lookup, daemon=True)
    thread.start()
    thread.join(_left(deadline))
    if not found:
        raise TimeoutError
    result = found[0]
    if isinstance(result, OSError):
        raise NotSent(service, what, f"ConnectError: {result}")
    return result  # type: ignore[return-value]


def _addresses(
    host: str, port: int, flags: int
) -> list[tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[object, ...]]]:
    found = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, flags)
    return [(f, k, p, c, tuple(a)) for f, k, p, c, a in found]


def _address_family(host: str) -> socket.AddressFamily | None:
    """AF_INET or AF_INET6 when `host` is an address of that family; None for a name."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return family
    return None


def _head(
    origin: Origin,
    method: str,
    path: str,
    *,
    headers: Sequence[tuple[str, str]],
    query: Mapping[str, str] | None,
    body: bytes | None,
) -> bytes:
    lines = [
        f"{method} {origin.target(path, query)} HTTP/1.1",
        f"Host: {origin.host_header}",
        "Accept: */*",
        "Accept-Encoding: identity",
        "Connection: close",
        f"User-Agent: {USER_AGENT}",
        *(f"{name}: {value}" for name, value in headers),
    ]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    # Values are ASCII: the token was checked as visible ASCII when the settings were read.
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


class _DeadlineIO(io.RawIOBase):
    """Socket reads that each get only the time left before the call's deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        self._sock.settimeout(_left(self._deadline))
        return self._sock.recv_into(buffer)


if TYPE_CHECKING:
    Reader = io.BufferedReader[_DeadlineIO]


def _read_head(reader: Reader) -> tuple[int, dict[str, str]]:
    """The status and headers of the final answer (1xx answers before it are skipped)."""
    while True:
        status, headers = _one_head(reader)
        if status == 101:
            raise _ProtocolError("101 Switching Protocols, and no switch was asked for")
        if not 100 <= status < 200:
            return status, headers


# The grammar h11 (the httpx path's parser) reads answers with, so that both paths accept and
# refuse the same answers (tests/test_plainhttp_differential.py holds them to it).
_STATUS_LINE = re.compile(rb"HTTP/[0-9]\.[0-9] ([0-9]{3})(?: [^\x00\r\n]*)?")
_FIELD = re.compile(
    rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*((?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?)[ \t]*"
)
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;.*)?[ \t]*\r\n")
_LENGTH = re.compile(rb"[0-9]+")


def _lines(reader: Reader, what: str) -> list[bytes]:
    """The lines of a head (or of trailers) up to the blank one, obsolete folds joined."""
    size = 0
    lines: list[bytes] = []
    first_field = 1 if what == "headers" else 0  # a head starts with its status line
    while True:
        line = reader.readline(MAX_HEAD_BYTES + 1)
        size += len(line)
        if size > MAX_HEAD_BYTES:
            raise _ProtocolError(f"the answer's {what} exceed {MAX_HEAD_BYTES} bytes")
        if not line.endswith(b"\n"):
            raise _ProtocolError(f"the server closed the connection before the answer's {what}")
        line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        if not line:
            return lines
        if line[:1] in (b" ", b"\t"):
            if len(lines) <= first_field:
                raise _ProtocolError(f"a continuation line with nothing to continue: {line[:80]!r}")
            lines[-1] += b" " + line.lstrip(b" \t")  # an obsolete line fold (RFC 9112 5.2)
            continue
        lines.append(line)


def _fields(lines: list[bytes]) -> list[tuple[str, str]]:
    fields = []
    for raw in lines:
        match = _FIELD.fullmatch(raw)
        if match is None:
            raise _ProtocolError(f"malformed header line: {raw[:80]!r}")
        fields.append((match[1].decode("ascii").lower(), match[2].decode("latin-1")))
    return fields


def _one_head(reader: Reader) -> tuple[int, dict[str, str]]:
    lines = _lines(reader, "headers")
    status = _STATUS_LINE.fullmatch(lines[0]) if lines else None
    if status is None:
        raise _ProtocolError(f"not an HTTP/1.1 status line: {(lines or [b''])[0][:80]!r}")
    code = int(status[1])
    if code < 100:
        raise _ProtocolError(f"status {code} is not an HTTP status")
    fields = _fields(lines[1:])
    headers = dict(fields)  # a repeated header keeps its last value
    lengths = [
        part.strip()
        for name, value in fields
        if name == "content-length"
        for part in value.split(",")
    ]
    if lengths:
        if not all(_LENGTH.fullmatch(part.encode("latin-1")) for part in lengths):
            raise _ProtocolError(f"malformed content-length {headers['content-length'][:40]!r}")
        if len({int(part) for part in lengths}) > 1:
            raise _ProtocolError("conflicting content-length headers")
        headers["content-length"] = str(int(lengths[0]))
    encodings = [value for name, value in fields if name == "transfer-encoding"]
    if len(encodings) > 1:
        raise _ProtocolError("more than one transfer-encoding header")
    if encodings:
        if encodings[0].strip().lower() != "chunked":
            raise _ProtocolError(f"unsupported transfer-encoding {encodings[0][:40]!r}")
        headers["transfer-encoding"] = "chunked"
    return code, headers


def _read_body(
    reader: Reader, status: int, headers: dict[str, str], limit: int
) -> tuple[bytes, bool]:
    """At most `limit` bytes of the body, and whether that was all of it (stops reading there)."""
    if status in (204, 304):
        return b"", True
    if "transfer-encoding" in headers:  # checked by _one_head: chunked, and it beats a length
        return _read_chunked(reader, limit)
    length_text = headers.get("content-length")
    if length_text is None:
        data = reader.read(limit + 1)  # until the server closes
        return (data, True) if len(data) <= limit else (data[:limit], False)
    length = int(length_text)
    data = reader.read(min(length, limit))
    if len(data) < min(length, limit):
        raise _ProtocolError("the server closed the connection before the whole body")
    return data, length <= limit


def _read_chunked(reader: Reader, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        line = reader.readline(MAX_LINE_BYTES)
        match = _CHUNK_SIZE.fullmatch(line)
        if match is None:
            raise _ProtocolError(f"malformed or incomplete chunk header {line[:40]!r}")
        length = int(match[1], 16)
        if length == 0:
            _fields(_lines(reader, "trailers"))  # read, checked, and dropped
            return b"".join(chunks), True
        if size + length > limit:
            chunks.append(_exactly(reader, limit - size))
            return b"".join(chunks), False
        chunks.append(_exactly(reader, length))
        size += length
        if reader.read(2) != b"\r\n":
            raise _ProtocolError("a chunk does not end with CRLF")


def _exactly(reader: Reader, count: int) -> bytes:
    data = reader.read(count)
    if len(data) < count:
        raise _ProtocolError("the server closed the connection before the whole body")
    return data
