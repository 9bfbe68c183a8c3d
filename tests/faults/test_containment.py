"""Every entry point against every external read it makes: nothing escapes (issue 20).

Not a list of doors: a matrix. Each entry point (`run`, `report`, `snapshot`, `hook claude-code`,
`hook codex`, `stop-hook`, `stop-hook --strict`) runs as a real `python -m agent` subprocess
against loopback fakes, once per fault: every environment variable the program reads (garbage,
huge, bytes that are not UTF-8, empty), every file (the memory file, the token file, AgentAPI's
state and PID files: missing, a FIFO, garbage, nested JSON, huge), every server answer (odd
status codes, headers that are not ASCII, garbage or huge, bodies that are garbage, nested,
huge, trickling, never coming, cut short), every socket answer (the report socket, the agent
socket: garbage, error answers, closing, silence). The assertions are the boundary's promise
(agent.boundary): no traceback, an exit code from the command's documented set, a hook exits 0
with nothing on stdout, and neither the token nor any 8-character piece of it in any output.

A new entry point or a new fault is one row. The whole matrix is `slow` (`make slow`); the
default run takes one fault of each kind against every entry point.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.coder import drpc
from agent.config import VARIABLES
from agent.lastreport import FILE_NAME as MEMORY_FILE
from standins.agentsocket_wire import encode_error

TOKEN = "contain-token-5f8e2a9c7d3b1e64"
TASK_ID = "0b7e3c2a-1d4f-4a5b-8c6d-7e8f9a0b1c2d"
ROOT = Path(__file__).resolve().parents[2]
# Seconds a command may take before the harness calls it hung (the budgets below are ~1 s).
HUNG = 30.0

# -- the fakes ----------------------------------------------------------------------------


def _http(status: int = 200, body: bytes = b"{}", headers: bytes = b"") -> bytes:
    head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
    return head.encode() + headers + b"\r\n" + body


NESTED = b"[" * 200_000 + b"]" * 200_000
NESTED_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000


@dataclass(frozen=True)
class Answer:
    """What the fake HTTP server does with every request (Coder's and AgentAPI's alike)."""

    raw: bytes = _http()
    mode: str = "answer"  # answer, blackhole, trickle, huge


class ThreadedFake:
    """A listening socket served by threads, one per connection, until `close`."""

    def __init__(self, listener: socket.socket) -> None:
        self.listener = listener
        self.stop = threading.Event()
        self._threads = [threading.Thread(target=self._serve, daemon=True)]
        self._threads[0].start()

    def _handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            if self.stop.is_set():
                conn.close()
                return
            handler = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            self._threads.append(handler)
            handler.start()

    def close(self) -> None:
        """Stop serving; every connection is closed by its own thread, which this waits for."""
        self.stop.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept
        self.listener.close()
        for thread in self._threads:
            thread.join(timeout=HUNG)


class HTTPFake(ThreadedFake):
    """A loopback HTTP server (port 0) answering every request with one scripted behaviour."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[bytes] = []  # the head of every request
        super().__init__(socket.create_server(("127.0.0.1", 0)))
        self.port = self.listener.getsockname()[1]

    def _handle(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            conn.settimeout(HUNG)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            self.requests.append(data.split(b"\r\n\r\n", 1)[0])
            mode = self.answer.mode
            if mode == "blackhole":
                self.stop.wait()
            elif mode == "trickle":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                while not self.stop.wait(0.05):
                    conn.sendall(b" ")
            elif mode == "huge":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 200000000\r\n\r\n[")
                block = b"1," * 32768
                while not self.stop.is_set():
                    conn.sendall(block)
            else:
                conn.sendall(self.answer.raw)


class UnixFake(ThreadedFake):
    """A Unix socket server: the report socket's daemon or the Coder agent's socket, faulty."""

    def __init__(self, path: Path, mode: str, *, drpc_errors: bool = False) -> None:
        self.mode = mode
        self.drpc_errors = drpc_errors
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
        listener.listen(16)
        super().__init__(listener)

    def _handle(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            conn.settimeout(HUNG)
            if self.mode == "close":
                return
            if self.mode == "silent":
                self.stop.wait()
                return
            if self.drpc_errors and self.mode == "error":
                self._drpc_errors(conn)
                return
            conn.recv(65536)
            conn.sendall(
                {
                    "garbage": b"\xff\xfe garbage {\n",
                    "error": json.dumps({"ok": False, "error": f"boom {TOKEN}"}).encode() + b"\n",
                    "nested": NESTED + b"\n",
                    "huge": b"x" * 1_000_000,
                }.get(self.mode, b"\x00" * 64)
            )

    def _drpc_errors(self, conn: socket.socket) -> None:
        """Every call answered with a dRPC Error packet whose text carries the token: a 400 that
        coderd relayed (a refusal, not a "try again": the kind that escaped `choose()`)."""
        parser = drpc.FrameParser()
        while not self.stop.is_set():
            data = conn.recv(65536)
            if not data:
                return
            for frame in parser.feed(data):
                if frame.kind == drpc.Kind.MESSAGE and frame.done:
                    text = f"unexpected status code 400: the token {TOKEN} was refused"
                    error = encode_error(0, text)
                    packet = drpc.Frame(drpc.Kind.ERROR, frame.stream, frame.message, error)
                    conn.sendall(drpc.encode_frame(packet))


# -- the world a command runs in ----------------------------------------------------------


@dataclass
class World:
    """The temporary directory, the fakes and the environment of one run."""

    tmp: Path
    http: HTTPFake
    env: dict[bytes, bytes] = field(default_factory=dict)
    closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def run_dir(self) -> Path:
        return self.tmp / "run"

    def set(self, name: str, value: str | bytes | None) -> None:
        key = name.encode()
        if value is None:
            self.env.pop(key, None)
        else:
            self.env[key] = value if isinstance(value, bytes) else os.fsencode(value)


def base_world(tmp: Path, http: HTTPFake) -> World:
    world = World(tmp, http)
    world.run_dir.mkdir(mode=0o700)
    url = f"http://127.0.0.1:{http.port}"
    for name in ("PATH", "LANG", "LC_ALL", "SYSTEMROOT"):
        if name in os.environ:
            world.set(name, os.environ[name])
    values = {
        "PYTHONPATH": str(ROOT),
        "CODER_AGENT_URL": url,
        "CODER_AGENT_TOKEN": TOKEN,
        "CODER_TASK_ID": TASK_ID,
        "CODER_MCP_APP_STATUS_SLUG": "agent",
        "CODER_MCP_AI_AGENTAPI_URL": url,
        "CODER_TASK_AGENT_SOCKET": str(world.run_dir / "report.sock"),
        "CODER_AGENT_SOCKET_PATH": str(tmp / "agent.sock"),
        "CODER_TASK_AGENT_LOG_FORMAT": "json",
        "CODER_TASK_AGENT_LOG_LEVEL": "debug",
        "CODER_TASK_AGENT_SHUTDOWN_BUDGET": "1",
        "CODER_TASK_AGENT_REQUEST_TIMEOUT": "0.5",
        "CODER_TASK_AGENT_AGENTAPI_TIMEOUT": "0.5",
        "CODER_TASK_AGENT_STOP_FETCH_TIMEOUT": "0.3",
        "CODER_TASK_AGENT_AGENTAPI_STOP_TIMEOUT": "0.3",
        "CODER_TASK_AGENT_WORKING_DEBOUNCE": "0.1",
        "HOME": str(tmp),
        "ARG_TASK_ID": TASK_ID,
        "ARG_PID_FILE_PATH": str(tmp / "agentapi.pid"),
        "ARG_STATE_FILE_PATH": str(tmp / "agentapi-state.json"),
        "ARG_ENABLE_STATE_PERSISTENCE": "true",
        "ARG_TASK_LOG_SNAPSHOT": "true",
    }
    for name, value in values.items():
        world.set(name, value)
    return world


# -- entry points -------------------------------------------------------------------------

CLAUDE_EVENT = json.dumps({"hook_event_name": "UserPromptSubmit", "prompt": "Fix the tests"})
CODEX_EVENT = json.dumps({"type": "agent-turn-complete", "last-assistant-message": "Done"})


@dataclass(frozen=True)
class EntryPoint:
    """One command and the exit codes docs/operations.md documents for it."""

    name: str
    argv: tuple[str, ...]
    codes: frozenset[int]
    stdin: bytes = b""
    hook: bool = False
    daemon: bool = False
    stdout: bytes = b""  # a hook's: the registry's `stdout` (agent.hooks), nothing else


ENTRY_POINTS = [
    EntryPoint("run", ("run",), frozenset({0, 2, 3, 4, 5}), daemon=True),
    EntryPoint("report", ("report", "working", "Editing"), frozenset({0, 2, 4, 5})),
    EntryPoint("snapshot", ("snapshot",), frozenset({0, 2, 3, 4, 5})),
    EntryPoint(
        "hook claude-code",
        ("hook", "claude-code"),
        frozenset({0}),
        stdin=CLAUDE_EVENT.encode(),
        hook=True,
    ),
    EntryPoint("hook codex", ("hook", "codex", CODEX_EVENT), frozenset({0}), hook=True),
    EntryPoint("stop-hook", ("stop-hook",), frozenset({0})),
    EntryPoint("stop-hook --strict", ("stop-hook", "--strict"), frozenset({0, 2, 3, 4, 5})),
]


@dataclass
class Outcome:
    code: int
    stdout: bytes
    stderr: bytes


def run_command(entry: EntryPoint, world: World) -> Outcome:
    """Run `entry` in `world`; a daemon is stopped with SIGTERM once started (or dead)."""
    command = [sys.executable, "-m", "agent", *entry.argv]
    if not entry.daemon:
        done = subprocess.run(
            command,
            input=entry.stdin,
            capture_output=True,
            env=world.env,
            cwd=world.tmp,
            timeout=HUNG,
            check=False,
        )
        return Outcome(done.returncode, done.stdout, done.stderr)
    with subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=world.env,
        cwd=world.tmp,
    ) as process:
        return _until_started_then_stopped(process)


def _until_started_then_stopped(process: subprocess.Popen[bytes]) -> Outcome:
    """Read the daemon's log until it says it started (or ends), then SIGTERM: the stop path."""
    lines: queue.Queue[bytes | None] = queue.Queue()
    seen: list[bytes] = []

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + HUNG
    ended = started = False
    while not ended:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break  # neither started nor ended: stopped all the same, and reported below
        ended = line is None
        seen.append(line or b"")
        if line is not None and b'"daemon_started"' in line:
            started = True
            break
    if not ended:
        process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=HUNG)
    while not ended:
        line = lines.get(timeout=HUNG)
        ended = line is None
        seen.append(line or b"")
    assert process.stdout is not None
    stderr = b"".join(seen)
    # A daemon either starts or ends (a configuration error): it never hangs before starting.
    assert started or ended, stderr.decode("utf-8", "replace")[-3000:]
    return Outcome(code, process.stdout.read(), stderr)


def check(entry: EntryPoint, outcome: Outcome) -> None:
    """The boundary's promise."""
    output = outcome.stdout + outcome.stderr
    text = output.decode("utf-8", "replace")
    assert "Traceback" not in text, text[-3000:]
    assert outcome.code in entry.codes, (outcome.code, text[-3000:])
    if entry.hook:
        assert outcome.stdout == entry.stdout, outcome.stdout[:500]
    for start in range(len(TOKEN) - 7):
        piece = TOKEN[start : start + 8]
        assert piece not in text, (piece, text[-3000:])


# -- faults -------------------------------------------------------------------------------

Plant = Callable[[World], object]


@dataclass(frozen=True)
class Fault:
    """One external read gone wrong; `kind` groups them (the default run takes one per kind)."""

    name: str
    kind: str
    env: tuple[tuple[str, str | bytes | None], ...] = ()
    answer: Answer = Answer()
    plant: Plant | None = None


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _huge(path: Path) -> None:
    with path.open("wb") as file:
        file.truncate(64 * 1024 * 1024)  # sparse: costs nothing on disk


def _file_faults(what: str, path_of: Callable[[World], Path], *, json_file: bool) -> list[Fault]:
    contents: dict[str, Plant] = {
        "missing": lambda w: None,
        "fifo": lambda w: _fifo(path_of(w)),
        "garbage": lambda w: path_of(w).write_bytes(b"\xff\xfe\x00garbage\n"),
        "nested JSON": lambda w: path_of(w).write_bytes(NESTED if json_file else NESTED_OBJECT),
        "huge": lambda w: _huge(path_of(w)),
        "a directory": lambda w: path_of(w).mkdir(),
    }
    return [
        Fault(f"{what}: {name}", f"file {name}", plant=plant) for name, plant in contents.items()
    ]


def _token_file(world: World) -> Path:
    path = world.tmp / "token"
    world.set("CODER_AGENT_TOKEN", None)
    world.set("CODER_AGENT_TOKEN_FILE", str(path))
    return path


def _pid_value(value: bytes) -> Plant:
    return lambda world: (world.tmp / "agentapi.pid").write_bytes(value)


FILE_FAULTS = [
    *_file_faults("memory file", lambda w: w.run_dir / MEMORY_FILE, json_file=True),
    *_file_faults("token file", _token_file, json_file=False),
    *_file_faults("AgentAPI state file", lambda w: w.tmp / "agentapi-state.json", json_file=True),
    *_file_faults("AgentAPI PID file", lambda w: w.tmp / "agentapi.pid", json_file=False),
    *(
        Fault(f"AgentAPI PID file: {value!r}", "pid value", plant=_pid_value(value))
        for value in (b"4294967296", b"99999999999999999999999", b"-1", b"0", b"1", b"1e3")
    ),
]

ENV_VALUES: dict[str, str | bytes] = {
    "garbage": "%%not a value\x01",
    "huge": "x" * 100_000,
    "non-UTF-8": b"\xff\xfe\x80abc",
    "empty": "",
}
PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "https_proxy")
ENV_FAULTS = [
    Fault(f"{variable}={label}", f"env {label}", env=((variable, value),))
    for variable in sorted({*VARIABLES, *PROXY_VARIABLES} - {"PATH"})
    for label, value in ENV_VALUES.items()
] + [
    Fault("ALL_PROXY=socks5h://", "env proxy", env=(("ALL_PROXY", "socks5h://127.0.0.1:1"),)),
    Fault("HTTPS_PROXY=ftp://", "env proxy", env=(("HTTPS_PROXY", "ftp://example"),)),
    Fault("HTTPS_PROXY malformed", "env proxy", env=(("HTTPS_PROXY", "http://[::1"),)),
    Fault("SSL_CERT_FILE missing", "env proxy", env=(("SSL_CERT_FILE", "/nonexistent/ca.pem"),)),
]


def _headers(raw: bytes) -> Answer:
    return Answer(_http(503, b"{}", raw))


HTTP_FAULTS = [
    *(
        Fault(f"status {code}", "http status", answer=Answer(_http(code)))
        for code in (100, 101, 301, 307, 400, 401, 404, 429, 500, 503, 999)
    ),
    Fault("Retry-After: ²", "http header", answer=_headers("Retry-After: ²\r\n".encode())),
    Fault(
        "header bytes not UTF-8",
        "http header",
        answer=_headers(b"Retry-After: \xff\xfe\r\nX: \x80\r\n"),
    ),
    Fault("header garbage", "http header", answer=_headers(b"no colon here\r\n")),
    Fault("header huge", "http header", answer=_headers(b"X-Big: " + b"a" * 200_000 + b"\r\n")),
    Fault(
        "Retry-After huge", "http header", answer=_headers(b"Retry-After: " + b"9" * 5000 + b"\r\n")
    ),
    Fault("body garbage", "http body", answer=Answer(_http(200, b"\xff\xfe{garbage"))),
    Fault("body nested JSON", "http body", answer=Answer(_http(200, NESTED))),
    Fault("body nested object", "http body", answer=Answer(_http(200, NESTED_OBJECT))),
    Fault("error body nested", "http body", answer=Answer(_http(400, NESTED))),
    Fault(
        "error body echoing the token",
        "http body",
        answer=Answer(_http(400, json.dumps({"message": "x" * 290 + TOKEN}).encode())),
    ),
    Fault("body huge", "http body", answer=Answer(mode="huge")),
    Fault("body trickling", "http body", answer=Answer(mode="trickle")),
    Fault("never answering", "http silence", answer=Answer(mode="blackhole")),
    Fault(
        "closing mid-body",
        "http body",
        answer=Answer(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"mess'),
    ),
    Fault("closing at once", "http silence", answer=Answer(b"")),
    Fault("not HTTP", "http body", answer=Answer(b"SSH-2.0-OpenSSH\r\n\r\n")),
]


def _report_socket(mode: str) -> Plant:
    def plant(world: World) -> None:
        fake = UnixFake(world.run_dir / "report.sock", mode)
        world.closers.append(fake.close)

    return plant


def _agent_socket(mode: str) -> Plant:
    def plant(world: World) -> None:
        fake = UnixFake(world.tmp / "agent.sock", mode, drpc_errors=True)
        world.closers.append(fake.close)

    return plant


SOCKET_FAULTS = [
    *(
        Fault(f"report socket: {mode}", "report socket", plant=_report_socket(mode))
        for mode in ("garbage", "error", "close", "silent", "nested", "huge")
    ),
    *(
        Fault(f"agent socket: {mode}", "agent socket", plant=_agent_socket(mode))
        for mode in ("garbage", "error", "close", "silent", "huge")
    ),
]

ALL_FAULTS = [*ENV_FAULTS, *FILE_FAULTS, *HTTP_FAULTS, *SOCKET_FAULTS]
# The default run (every entry point against each): the examples issue 20 names, one from each
# family of reads (environment, file, server, socket).
DEFAULT = (
    "ALL_PROXY=socks5h://",
    "memory file: fifo",
    "memory file: nested JSON",
    "Retry-After: ²",
    "error body echoing the token",
    "agent socket: error",
)
DEFAULT_FAULTS = [f for f in ALL_FAULTS if f.name in DEFAULT]
assert len(DEFAULT_FAULTS) == len(DEFAULT), "a DEFAULT name matches no fault"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    http = HTTPFake(Answer())
    world = base_world(tmp_path, http)
    try:
        yield world
    finally:
        for close in world.closers:
            close()
        http.close()


def _apply(world: World, fault: Fault) -> None:
    world.http.answer = fault.answer
    for name, value in fault.env:
        world.set(name, value)
    if fault.plant is not None:
        fault.plant(world)


def _params(faults: list[Fault]) -> list[object]:
    return [
        pytest.param(entry, fault, id=f"{entry.name}-{fault.name}")
        for fault in faults
        for entry in ENTRY_POINTS
    ]


@pytest.mark.parametrize(("entry", "fault"), _params(DEFAULT_FAULTS))
def test_nothing_escapes(entry: EntryPoint, fault: Fault, world: World) -> None:
    _apply(world, fault)
    check(entry, run_command(entry, world))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("entry", "fault"), _params([f for f in ALL_FAULTS if f not in DEFAULT_FAULTS])
)
def test_nothing_escapes_the_whole_matrix(entry: EntryPoint, fault: Fault, world: World) -> None:
    _apply(world, fault)
    check(entry, run_command(entry, world))


# -- a hook's own promises ----------------------------------------------------------------

HOOKS = [e for e in ENTRY_POINTS if e.hook]


@pytest.mark.parametrize("entry", HOOKS, ids=lambda e: e.name)
def test_a_hook_against_a_black_hole_coder_gives_up_within_its_budget(
    entry: EntryPoint, world: World
) -> None:
    """No daemon, Coder accepting and never answering: exit 0, nothing on stdout, one line
    saying the report was given up at the budget (the time is asserted on the injected clock
    in tests/test_hook_budget.py, and measured in bench/)."""
    world.http.answer = Answer(mode="blackhole")
    outcome = run_command(entry, world)
    check(entry, outcome)
    lines = [json.loads(line) for line in outcome.stderr.splitlines()]
    problems = [line for line in lines if line["level"] in ("warning", "error")]
    assert [(p["event"], p.get("reason")) for p in problems] == [
        ("hook_failed", "not delivered within the hook budget")
    ]


def _patches(world: World) -> list[bytes]:
    return [r for r in world.http.requests if r.startswith(b"PATCH ") and b"app-status" in r]


@pytest.mark.parametrize(
    ("entry", "redirections"),
    [
        pytest.param(HOOKS[0], "2>&-", id="claude-code, stderr closed"),
        pytest.param(HOOKS[0], ">&- 2>&-", id="claude-code, stdout and stderr closed"),
        pytest.param(HOOKS[1], "<&- >&- 2>&-", id="codex, all three closed"),
        pytest.param(HOOKS[1], "</dev/null 2>&-", id="codex, stdin empty, stderr closed"),
    ],
)
def test_a_hook_with_closed_standard_descriptors_still_reports(
    entry: EntryPoint, redirections: str, world: World
) -> None:
    world.http.answer = Answer(_http(200, b"{}"))
    # What is tested here is not the time: a loaded machine must not make the report late.
    world.set("CODER_TASK_AGENT_HOOK_BUDGET", "20")
    world.set("CODER_TASK_AGENT_REQUEST_TIMEOUT", "10")
    # The shell closes the descriptors, then execs the command in its place.
    script = f'exec "$@" {redirections}'
    command = ["/bin/sh", "-c", script, "sh", sys.executable, "-m", "agent", *entry.argv]
    done = subprocess.run(
        command,
        input=entry.stdin,
        capture_output=True,
        env=world.env,
        cwd=world.tmp,
        timeout=HUNG,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == b""
    assert len(_patches(world)) == 1, world.http.requests


def test_report_goes_by_http_when_the_agent_socket_answers_ping_with_an_error(
    world: World,
) -> None:
    """The agent socket refusing Ping (a relayed 400) means "socket unusable": HTTP, exit 0.
    It escaped `choose()` before: `report` exited 4 without trying HTTP, the daemon 1."""
    _agent_socket("error")(world)
    # Delivered, so the command ends on its own: a deadline no loaded machine exhausts.
    world.set("CODER_TASK_AGENT_REQUEST_TIMEOUT", "30")
    report = next(e for e in ENTRY_POINTS if e.name == "report")
    outcome = run_command(report, world)
    check(report, outcome)
    assert outcome.code == 0, outcome.stderr
    assert len(_patches(world)) == 1, world.http.requests
