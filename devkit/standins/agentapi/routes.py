"""AgentAPI's HTTP routes over the conversation and the scripted agent.

`GET /status`, `GET /messages`, `POST /message`, `POST /upload`, `GET /events`. `POST /message`
holds a lock for its whole duration (the scenario's `send_seconds`, then until the agent has
started): `GET /status` and `GET /messages` wait for it, `/events` does not. A send while the agent
is `running` answers 500 (not 409). A Host header whose host part is not localhost, 127.0.0.1 or
::1 gets a plain-text 400; unknown routes get Go's plain-text 404, known paths with another method
an empty 405.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import anyio

from standins.agentapi.agent import ScriptedAgent
from standins.agentapi.bodies import decode_message_body, parse_multipart
from standins.agentapi.conversation import Conversation
from standins.agentapi.wire import (
    JSONObject,
    json_answer,
    messages_answer,
    plain,
    problem,
    send_failed,
)
from standins.http import Request, Response

BUSY_MESSAGE = "message can only be sent when the agent is waiting for user input"
EMPTY_MESSAGE = "message must not be empty"
# AgentAPI's default allowed hosts, as its host check compares them (hostname, port ignored).
ALLOWED_HOSTS = ("localhost", "127.0.0.1", "::1")
# 10 MiB: AgentAPI reads an upload through this limit and answers 400 past it.
UPLOAD_LIMIT = 10 << 20
# Whitespace AgentAPI trims from a prompt before sending it (msgfmt.TrimWhitespace).
_PROMPT_WHITESPACE = " \t\n\r\f\v"
# The paths AgentAPI routes, with their methods (for the 405's Allow header).
_ROUTES = {
    "/status": "GET",
    "/messages": "GET",
    "/message": "POST",
    "/upload": "POST",
    "/events": "GET",
}
_EVENT_STREAM_HEADERS = [
    ("content-type", "text/event-stream"),
    ("cache-control", "no-cache, no-store, must-revalidate"),
    ("pragma", "no-cache"),
    ("expires", "0"),
    ("x-accel-buffering", "no"),
]


@dataclass(frozen=True)
class RequestRecord:
    """One request the stand-in answered."""

    method: str
    path: str
    status: int


class Routes:
    """The HTTP handler (`handle`); uploads go under `upload_dir` (a new temporary one if None)."""

    def __init__(
        self,
        conversation: Conversation,
        agent: ScriptedAgent,
        *,
        upload_dir: Path | None,
        log: Callable[[str], None] | None,
    ) -> None:
        self.conversation = conversation
        self.agent = agent
        self.log = log
        self.requests: deque[RequestRecord] = deque(maxlen=10_000)
        self.owns_upload_dir = upload_dir is None
        self._upload_dir = upload_dir
        self._lock = anyio.Lock()

    @property
    def lock_waiters(self) -> int:
        """Requests waiting for the send lock (GET /status, GET /messages, POST /message)."""
        return self._lock.statistics().tasks_waiting

    @property
    def upload_dir(self) -> Path:
        if self._upload_dir is None:
            self._upload_dir = Path(tempfile.mkdtemp(prefix="agentapi-uploads-"))
        return self._upload_dir

    @property
    def created_upload_dir(self) -> Path | None:
        """The temporary upload directory, when one was created (to remove it at the end)."""
        return self._upload_dir if self.owns_upload_dir else None

    async def handle(self, request: Request) -> Response:
        """Answer one request as AgentAPI would."""
        response = await self._route(request)
        self.requests.append(RequestRecord(request.method, request.path, response.status))
        if self.log is not None:
            self.log(f"{request.method} {request.target} {response.status}")
        return response

    async def _route(self, request: Request) -> Response:
        host = request.headers.get("host", "")
        if not host_allowed(host):
            allowed = ", ".join(ALLOWED_HOSTS)
            return plain(400, f"Invalid host header. Allowed hosts: {allowed}\n")
        route = (request.method, request.path)
        conversation = self.conversation
        if route == ("GET", "/status"):
            async with self._lock:
                payload: JSONObject = {
                    "status": conversation.status,
                    "agent_type": conversation.agent_type,
                    "transport": "pty",
                }
                return json_answer(host, "StatusResponseBody", payload)
        if route == ("GET", "/messages"):
            async with self._lock:
                return messages_answer(host, conversation.messages)
        if route == ("POST", "/message"):
            return await self._post_message(request, host)
        if route == ("POST", "/upload"):
            return await self._upload(request, host)
        if route == ("GET", "/events"):
            return Response(
                status=200, headers=_EVENT_STREAM_HEADERS, stream=conversation.subscribe()
            )
        allowed_methods = _ROUTES.get(request.path)
        if allowed_methods is not None:
            return Response(status=405, headers=[("allow", allowed_methods)])
        return plain(404, "404 page not found\n")

    async def _post_message(self, request: Request, host: str) -> Response:
        decoded = decode_message_body(request, host)
        if isinstance(decoded, Response):
            return decoded
        content, kind = decoded
        async with self._lock:
            if kind == "raw":
                self.agent.keystrokes(content)
                return json_answer(host, "MessageResponseBody", {"ok": True})
            if self.conversation.status != "stable":
                return send_failed(host, BUSY_MESSAGE)
            prompt = content.strip(_PROMPT_WHITESPACE)
            if not prompt:
                return send_failed(host, EMPTY_MESSAGE)
            await self.agent.accept(prompt)
        return json_answer(host, "MessageResponseBody", {"ok": True})

    async def _upload(self, request: Request, host: str) -> Response:
        parts = parse_multipart(request.headers.get("content-type", ""), request.body)
        if isinstance(parts, str):
            message = f"cannot read multipart form: {parts}"
            return problem(
                host, 422, "validation failed", [{"location": "body", "message": message}]
            )
        files = [p for p in parts if p.name == "file" and p.filename]
        if len(files) != 1:
            message = (
                "File required"
                if not files
                else "Multiple files received but only one was expected"
            )
            return problem(
                host, 422, "validation failed", [{"location": "file", "message": message}]
            )
        upload = files[0]
        if len(upload.data) > UPLOAD_LIMIT:
            return problem(host, 400, "file size exceeds 10MB limit")
        # Like AgentAPI: a directory per content checksum, the file under its base name.
        checksum = hashlib.sha256(upload.data).hexdigest()[:16]
        directory = anyio.Path(self.upload_dir) / checksum
        target = directory / PurePosixPath(upload.filename or "").name
        try:
            await directory.mkdir(mode=0o755, parents=True, exist_ok=True)
            await target.write_bytes(upload.data)
        except OSError as exc:
            return problem(
                host,
                500,
                "unexpected error occurred",
                [{"message": f"failed to write file: {exc}"}],
            )
        return json_answer(host, "UploadResponseBody", {"ok": True, "filePath": str(target)})


def host_allowed(host: str) -> bool:
    """AgentAPI's check: the Host header's hostname (port ignored, any case) is allowed."""
    if not host:
        return False
    try:
        parts = urlsplit("http://" + host)
        _ = parts.port  # a non-numeric port is a parse error in Go too
    except ValueError:
        return False
    if parts.netloc != host or parts.hostname is None:
        return False
    return parts.hostname in ALLOWED_HOSTS
