"""A faithful AgentAPI stand-in with a scripted agent: `python -m agent mock-agentapi`.

It behaves like AgentAPI as shared/contracts.md describes it, not like a toy: `$schema` keys,
problem+json errors (422 for schema violations, 500 for a send while the agent runs), the Host
allowlist, message 0 as the startup screen, contiguous ids, the last agent message rewritten in
place with its `time` moving, `POST /message` holding the lock for its whole duration (so
`GET /status` and `GET /messages` wait while `/events` does not), and `/events` replaying the
state on connect with no ids and no heartbeat, dropping a subscriber 1024 events behind.

The agent's behaviour comes from a scenario (JSON):

    {
      "agent_type": "claude",
      "startup_screen": "text of message 0",
      "prompts": [
        {"match": "substring of the prompt, or default",
         "think_seconds": 1.5,            # status running, a spinner line
         "lines": ["...", "..."],         # streamed into the agent message
         "large_output_lines": 0,         # extra 80-column box-drawn lines (big messages)
         "lines_per_second": 20,
         "permission_prompt": "",         # non-empty: stop at this question (reads stable)
         "settle_seconds": 2.0}           # unchanged screen before `stable` (AgentAPI: 2 s)
      ]
    }

All durations are divided by `speed`, so tests and the demo run the same script faster.
"""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectSendStream

from agent.standins.http import Request, Response, json_response, serve, text_response

LOOPBACK = ("127.0.0.1", "localhost", "::1")
ALLOWED_HOSTS = ("localhost", "127.0.0.1", "[::1]")
BUSY_MESSAGE = "message can only be sent when the agent is waiting for user input"
# A subscriber this many events behind is dropped: its stream ends (AgentAPI's own limit).
SUBSCRIBER_BUFFER = 1024
UPLOAD_LIMIT = 10 * 1024 * 1024
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

STARTUP_SCREEN = """\
╭──────────────────────────────────────────────────────────────────────────────╮
│ ✻ Welcome to the scripted agent (AgentAPI stand-in)                          │
│                                                                              │
│   /help for help, /status for your current setup                            │
│                                                                              │
│   cwd: /home/coder/project                                                   │
╰──────────────────────────────────────────────────────────────────────────────╯"""

DEFAULT_LINES = [
    "● I'll start by running the failing test to see the error.",
    "● Bash(pytest tests/test_dates.py -x)",
    "  ⎿ FAILED tests/test_dates.py::test_parse_iso - ValueError: bad offset",
    "● The parser rejects offsets without a colon (+0200). Let me look at it.",
    "● Read(src/dates.py)",
    "● Update(src/dates.py)",
    "  ⎿ Accept both +HH:MM and +HHMM offsets",
    "● Bash(pytest -q)",
    "  ⎿ 42 passed in 0.61s",
    "● Fixed: the date parser now accepts offsets with and without a colon, and the",
    "  whole suite passes.",
]


@dataclass(frozen=True)
class PromptScript:
    """What the scripted agent does for one kind of prompt."""

    match: str = "default"
    think_seconds: float = 1.5
    lines: tuple[str, ...] = tuple(DEFAULT_LINES)
    large_output_lines: int = 0
    lines_per_second: float = 20.0
    permission_prompt: str = ""
    settle_seconds: float = 2.0


@dataclass(frozen=True)
class Scenario:
    """The agent's whole script."""

    agent_type: str = "claude"
    startup_screen: str = STARTUP_SCREEN
    prompts: tuple[PromptScript, ...] = (PromptScript(),)

    def for_prompt(self, text: str) -> PromptScript:
        """The first script whose `match` is in the prompt, else the default one."""
        for script in self.prompts:
            if script.match != "default" and script.match in text:
                return script
        for script in self.prompts:
            if script.match == "default":
                return script
        return PromptScript()

    @classmethod
    def load(cls, path: Path) -> Scenario:
        """Read a scenario file; ValueError with the problem when it is malformed."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            prompts = tuple(
                PromptScript(**{**p, "lines": tuple(p.get("lines", DEFAULT_LINES))})
                for p in raw.get("prompts", [{}])
            )
            return cls(
                agent_type=str(raw.get("agent_type", "claude")),
                startup_screen=str(raw.get("startup_screen", STARTUP_SCREEN)),
                prompts=prompts,
            )
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise ValueError(f"scenario {str(path)!r}: {exc}") from None


def go_time(ns: int | None = None) -> str:
    """RFC 3339 with nanoseconds, as Go prints it."""
    ns = time.time_ns() if ns is None else ns
    seconds, fraction = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


def box_lines(count: int, start: int = 0) -> list[str]:
    """`count` lines of 80-column terminal output with box-drawing characters."""
    out = []
    for i in range(start, start + count):
        body = f" {i:06d} │ build step output ░▒▓ compiling module_{i % 97:02d} … ok"
        out.append(("│" + body)[:79].ljust(79) + "│")
    return out


@dataclass
class _Subscriber:
    send: MemoryObjectSendStream[bytes]
    dropped: bool = False


@dataclass
class AgentAPIStandIn:
    """The stand-in's state and its HTTP handler."""

    scenario: Scenario = field(default_factory=Scenario)
    speed: float = 1.0
    host_for_schema: str = "localhost:3284"
    messages: list[dict[str, Any]] = field(default_factory=list)
    status: str = "stable"
    errors: list[dict[str, Any]] = field(default_factory=list)
    upload_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="agentapi-")))

    def __post_init__(self) -> None:
        self._lock = anyio.Lock()
        self._subscribers: list[_Subscriber] = []
        self._tasks: anyio.abc.TaskGroup | None = None
        self._turn_started = anyio.Event()
        self._messages_cache: tuple[tuple[int, int], bytes] | None = None
        self._version = 0
        if not self.messages:
            self.messages.append(self._entry(0, "agent", self.scenario.startup_screen))

    # -- Python API for tests and benchmarks ----------------------------------------------------

    def attach(self, group: anyio.abc.TaskGroup) -> None:
        """Give the stand-in a task group for the scripted agent's turns."""
        self._tasks = group

    def set_status(self, status: str) -> None:
        """Set the status and tell subscribers."""
        if status != self.status:
            self.status = status
            self._publish("status_change", {"status": status, "agent_type": self.agent_type})

    def put_message(self, role: str, content: str, id_: int | None = None) -> int:
        """Append a message (id None) or rewrite message `id_` in place; returns its id."""
        self._version += 1
        if id_ is None or id_ >= len(self.messages):
            id_ = len(self.messages)
            self.messages.append(self._entry(id_, role, content))
        else:
            self.messages[id_] = self._entry(id_, role, content)
        self._publish(
            "message_update",
            {"id": id_, "role": role, "message": content, "time": self.messages[id_]["time"]},
        )
        return id_

    def add_error(self, message: str, level: str = "error") -> None:
        """Store and publish an agent_error."""
        error = {"message": message, "level": level, "time": go_time()}
        self.errors.append(error)
        self._publish("agent_error", error)

    def preload(self, count: int, size: int) -> None:
        """Append `count` alternating user/agent messages of about `size` bytes each."""
        line = "│ preloaded history line with some terminal text ░▒▓ │\n"
        filler = (line * (size // len(line) + 1))[:size]
        self._version += 1
        for i in range(count):
            self.messages.append(
                self._entry(len(self.messages), "user" if i % 2 == 0 else "agent", filler)
            )

    def replace_history(self, contents: list[str]) -> None:
        """Replace the conversation: message i has this content, alternating agent/user."""
        self._version += 1
        self.messages[:] = [
            self._entry(i, "agent" if i % 2 == 0 else "user", content)
            for i, content in enumerate(contents)
        ]

    def close_streams(self) -> None:
        """End every events stream (as when AgentAPI restarts)."""
        for subscriber in self._subscribers:
            subscriber.send.close()
        self._subscribers.clear()

    @property
    def agent_type(self) -> str:
        return self.scenario.agent_type

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    # -- HTTP -------------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """The HTTP handler."""
        host = request.headers.get("host", "")
        hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if hostname not in ALLOWED_HOSTS:
            return text_response("Invalid host header", status=400)
        route = (request.method, request.path)
        if route == ("GET", "/status"):
            async with self._lock:
                return self._json(
                    "StatusResponseBody",
                    {"status": self.status, "agent_type": self.agent_type, "transport": "pty"},
                )
        if route == ("GET", "/messages"):
            async with self._lock:
                return self._messages_response()
        if route == ("POST", "/message"):
            return await self._post_message(request)
        if route == ("POST", "/upload"):
            return self._upload(request)
        if route == ("GET", "/events"):
            return self._events()
        if request.path in ("/status", "/messages", "/message", "/upload", "/events"):
            return problem(405, "Method Not Allowed", f"method {request.method} not allowed")
        return problem(404, "Not Found", f"no route for {request.path}")

    def _messages_response(self) -> Response:
        # Serialising a multi-megabyte history is the costly part of this answer (the Go server
        # does it far faster): keep the bytes until the conversation changes.
        key = (self._version, len(self.messages))
        if self._messages_cache is None or self._messages_cache[0] != key:
            body = self._json("MessagesResponseBody", {"messages": list(self.messages)}).body
            self._messages_cache = (key, body)
        return Response(
            body=self._messages_cache[1], headers=[("content-type", "application/json")]
        )

    def _json(self, schema: str, payload: dict[str, Any]) -> Response:
        url = f"http://{self.host_for_schema}/schemas/{schema}.json"
        return json_response({"$schema": url, **payload})

    async def _post_message(self, request: Request) -> Response:
        try:
            body = request.json()
        except ValueError as exc:
            return problem(
                422,
                "Unprocessable Entity",
                "validation failed",
                [{"message": f"invalid JSON: {exc}", "location": "body"}],
            )
        issues = _check_message_body(body)
        if issues:
            return problem(422, "Unprocessable Entity", "validation failed", issues)
        content: str = body["content"]
        if body["type"] == "raw":
            return self._json("MessageResponseBody", {"ok": True})
        async with self._lock:
            if self.status == "running":
                return problem(
                    500,
                    "Internal Server Error",
                    "Failed to send message",
                    [{"message": f"failed to send message: {BUSY_MESSAGE}"}],
                )
            self.put_message("user", content)
            self._turn_started = anyio.Event()
            if self._tasks is None:
                raise RuntimeError("the stand-in was not attached to a task group")
            self._tasks.start_soon(self._agent_turn, content)
            # Like AgentAPI, hold the lock until the agent has started on the message.
            with anyio.move_on_after(18):
                await self._turn_started.wait()
        return self._json("MessageResponseBody", {"ok": True})

    def _upload(self, request: Request) -> Response:
        content_type = request.headers.get("content-type", "")
        if "multipart/form-data" not in content_type:
            return problem(422, "Unprocessable Entity", "expected multipart/form-data")
        if len(request.body) > UPLOAD_LIMIT + 64 * 1024:
            return problem(413, "Request Entity Too Large", "the file exceeds 10 MB")
        parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + request.body
        )
        for part in parsed.iter_parts():
            if part.get_param("name", header="content-disposition") == "file":
                data = part.get_payload(decode=True)
                if not isinstance(data, bytes):
                    break
                if len(data) > UPLOAD_LIMIT:
                    return problem(413, "Request Entity Too Large", "the file exceeds 10 MB")
                name = Path(str(part.get_filename() or "upload.bin")).name
                target = self.upload_dir / name
                target.write_bytes(data)
                return self._json("UploadResponseBody", {"ok": True, "filePath": str(target)})
        return problem(
            422,
            "Unprocessable Entity",
            "validation failed",
            [{"message": "expected required property file to be present", "location": "body.file"}],
        )

    def _events(self) -> Response:
        send, receive = anyio.create_memory_object_stream[bytes](SUBSCRIBER_BUFFER)
        replay = [
            _frame(
                "message_update",
                {"id": m["id"], "role": m["role"], "message": m["content"], "time": m["time"]},
            )
            for m in self.messages
        ]
        replay.append(
            _frame("status_change", {"status": self.status, "agent_type": self.agent_type})
        )
        replay += [_frame("agent_error", e) for e in self.errors]
        subscriber = _Subscriber(send)
        self._subscribers.append(subscriber)

        async def stream() -> Any:
            try:
                for frame in replay:
                    yield frame
                async with receive:
                    async for frame in receive:
                        yield frame
            finally:
                send.close()
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return Response(
            headers=[("content-type", "text/event-stream"), ("cache-control", "no-cache")],
            stream=stream(),
        )

    # -- the scripted agent ---------------------------------------------------------------------

    async def _agent_turn(self, prompt: str) -> None:
        script = self.scenario.for_prompt(prompt)
        scale = 1.0 / self.speed
        self.set_status("running")
        agent_id = self.put_message("agent", f"{SPINNER[0]} Thinking…")
        self._turn_started.set()
        steps = max(1, int(script.think_seconds * 10))
        for step in range(steps):
            await anyio.sleep(script.think_seconds * scale / steps)
            self.put_message("agent", f"{SPINNER[step % len(SPINNER)]} Thinking…", agent_id)
        lines = list(script.lines) + box_lines(script.large_output_lines)
        shown: list[str] = []
        interval = scale / max(script.lines_per_second, 0.001)
        for line in lines:
            shown.append(line)
            self.put_message("agent", "\n".join(shown), agent_id)
            await anyio.sleep(interval)
        if script.permission_prompt:
            shown.append(f"\n{script.permission_prompt}\n> 1. Yes  2. No")
            self.put_message("agent", "\n".join(shown), agent_id)
        await anyio.sleep(script.settle_seconds * scale)
        self.set_status("stable")

    # -- helpers ----------------------------------------------------------------------------------

    def _entry(self, id_: int, role: str, content: str) -> dict[str, Any]:
        return {"id": id_, "content": content, "role": role, "time": go_time()}

    def _publish(self, name: str, data: dict[str, Any]) -> None:
        frame = _frame(name, data)
        for subscriber in list(self._subscribers):
            try:
                subscriber.send.send_nowait(frame)
            except anyio.WouldBlock:
                subscriber.dropped = True
                subscriber.send.close()
                self._subscribers.remove(subscriber)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscribers.remove(subscriber)


def _check_message_body(body: object) -> list[dict[str, Any]]:
    if not isinstance(body, dict):
        return [{"message": "expected object", "location": "body", "value": body}]
    issues: list[dict[str, Any]] = []
    for key in ("content", "type"):
        if key not in body:
            issues.append(
                {"message": f"expected required property {key} to be present", "location": "body"}
            )
    for key in body:
        if key not in ("content", "type", "$schema"):
            issues.append({"message": "unexpected property", "location": f"body.{key}"})
    if "content" in body and not isinstance(body["content"], str):
        issues.append(
            {"message": "expected string", "location": "body.content", "value": body["content"]}
        )
    if "type" in body and body["type"] not in ("user", "raw"):
        issues.append(
            {
                "message": 'expected value to be one of "user, raw"',
                "location": "body.type",
                "value": body["type"],
            }
        )
    return issues


def problem(
    status: int, title: str, detail: str, errors: list[dict[str, Any]] | None = None
) -> Response:
    """An RFC 9457 problem+json answer, as AgentAPI (huma) writes them."""
    payload: dict[str, Any] = {
        "$schema": "http://localhost:3284/schemas/ErrorModel.json",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors:
        payload["errors"] = errors
    response = json_response(payload, status=status)
    response.headers = [("content-type", "application/problem+json")]
    return response


def _frame(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def run_agentapi_standin(
    standin: AgentAPIStandIn,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `standin` on loopback until cancelled; reports the bound port."""
    if host not in LOOPBACK:
        raise ValueError(f"the AgentAPI stand-in listens on loopback only, not {host!r}")
    async with anyio.create_task_group() as group:
        standin.attach(group)
        bound = await group.start(
            lambda task_status: serve(standin.handle, host=host, port=port, task_status=task_status)
        )
        standin.host_for_schema = f"localhost:{bound}"
        task_status.started(bound)


def write_port_file(path: Path, port: int) -> None:
    """Write the port atomically so a parent never reads half a number."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(f"{port}\n")
    os.replace(partial, path)


def main(argv: list[str] | None = None) -> int:
    """`python -m agent mock-agentapi`: serve until SIGTERM/SIGINT, then exit 0."""
    parser = argparse.ArgumentParser(
        prog="coder-task-agent mock-agentapi",
        description="A local AgentAPI stand-in with a scripted agent.",
    )
    parser.add_argument("--host", default="127.0.0.1", choices=LOOPBACK)
    parser.add_argument("--port", type=int, default=3284, help="0 picks a free port")
    parser.add_argument("--port-file", type=Path, help="write the bound port here")
    parser.add_argument("--scenario", type=Path, help="a scenario file (see the module docs)")
    parser.add_argument("--speed", type=float, default=1.0, help="run the script N times faster")
    parser.add_argument("--agent-type", default=None)
    parser.add_argument(
        "--large-output",
        type=int,
        default=0,
        metavar="LINES",
        help="add LINES of 80-column box-drawn output to every answer",
    )
    parser.add_argument("--preload-messages", type=int, default=0)
    parser.add_argument("--preload-size", type=int, default=2048)
    args = parser.parse_args(argv)
    try:
        scenario = Scenario.load(args.scenario) if args.scenario else Scenario()
    except ValueError as exc:
        parser.error(str(exc))
    if args.agent_type:
        scenario = Scenario(args.agent_type, scenario.startup_screen, scenario.prompts)
    if args.large_output:
        scenario = Scenario(
            scenario.agent_type,
            scenario.startup_screen,
            tuple(
                PromptScript(**{**p.__dict__, "large_output_lines": args.large_output})
                for p in scenario.prompts
            ),
        )
    if args.speed <= 0:
        parser.error("--speed must be positive")
    standin = AgentAPIStandIn(scenario=scenario, speed=args.speed)
    if args.preload_messages:
        standin.preload(args.preload_messages, args.preload_size)

    async def run() -> None:
        async with anyio.create_task_group() as group:
            port = await group.start(
                lambda task_status: run_agentapi_standin(
                    standin, host=args.host, port=args.port, task_status=task_status
                )
            )
            print(
                f"AgentAPI stand-in listening on http://{args.host}:{port}",
                file=sys.stderr,
                flush=True,
            )
            if args.port_file:
                write_port_file(args.port_file, port)
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    standin.close_streams()
                    group.cancel_scope.cancel()
                    return

    anyio.run(run)
    return 0
