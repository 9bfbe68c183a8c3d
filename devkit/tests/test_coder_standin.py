"""The Coder stand-in over real loopback sockets: every answer of contracts.md section 2.

Where coderd's own source words an answer, the stand-in uses those words, so these tests pin
them too. A tiny fake AgentAPI served on loopback stands in for live logs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest

from standins.coder import (
    DECODE_FAILED,
    LOGS_CONFLICT,
    NOT_FOUND,
    RATE_LIMIT,
    ROUTE_NOT_FOUND,
    CoderStandIn,
    Fault,
    run_coder_standin,
)
from standins.coder.store import Store, Task
from standins.http import Request, Response, json_response, serve

TOKEN = "standin-token-5d1c9b7e2a"
UUID_TOKEN = "5f0c4e55-33a8-4c1b-9a46-0c6cf1b8e2d7"
TASK = "3f0e1d2c-4b5a-4697-8887-a9b0c1d2e3f4"
OTHER = "6a1b2c3d-4e5f-4a6b-9c7d-8e9f0a1b2c3d"  # exists on the server, in another workspace
UNKNOWN = "11111111-2222-4333-8444-555555555555"
STATUS = "/api/v2/workspaceagents/me/app-status"
TIME = "2025-06-01T10:00:00.123456789Z"
MISSING = 'Cookie "coder_session_token" must be provided.'
UNAUTHORIZED = "Workspace agent not authorized."


def snapshot_path(task: str = TASK) -> str:
    return f"/api/v2/workspaceagents/me/tasks/{task}/log-snapshot"


def status_body(**overrides: Any) -> dict[str, Any]:
    return {"app_slug": "claude", "state": "working", "message": "hi", "uri": "", **overrides}


def message(
    id_: Any = 0, content: Any = "hello", role: Any = "agent", time: Any = TIME
) -> dict[str, Any]:
    return {"id": id_, "content": content, "role": role, "time": time}


def snapshot_body(
    messages: list[Any] | None = None, schema: str | None = None, **extra: Any
) -> bytes:
    if messages is None:
        messages = [message(0, "hello", "agent"), message(1, "do it", "user")]
    payload = {"messages": messages, **extra}
    if schema is not None:
        payload["$schema"] = schema
    return json.dumps(payload, ensure_ascii=False).encode()


def sized_snapshot(size: int) -> bytes:
    """A valid snapshot body of exactly `size` bytes."""
    room = size - len(snapshot_body([message(0, "")]))
    body = snapshot_body([message(0, "x" * room)])
    assert len(body) == size
    return body


@dataclass
class FakeAgentAPI:
    """Just enough AgentAPI for live logs: GET /messages answers `messages`."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    calls: int = 0

    async def handle(self, request: Request) -> Response:
        self.calls += 1
        if (request.method, request.path) == ("GET", "/messages"):
            return json_response(
                {"$schema": "http://x/MessagesResponseBody.json", "messages": self.messages}
            )
        return json_response({"title": "Not Found", "status": 404}, status=404)


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Env:
    standin: CoderStandIn
    http: httpx.AsyncClient
    agentapi: FakeAgentAPI
    agentapi_url: str

    async def patch(self, body: Any, token: str | None = TOKEN) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {} if token is None else {"Coder-Session-Token": token}
        return await self.http.patch(STATUS, content=content, headers=headers)

    async def upload(
        self,
        body: bytes,
        *,
        task: str = TASK,
        query: str = "format=agentapi",
        token: str | None = TOKEN,
    ) -> httpx.Response:
        headers = {"content-type": "application/json"}
        if token is not None:
            headers["Coder-Session-Token"] = token
        target = snapshot_path(task) + (f"?{query}" if query else "")
        return await self.http.post(target, content=body, headers=headers)

    async def set_status(self, status: str, task: str = TASK) -> None:
        answer = await self.http.post(f"/dev/tasks/{task}/status", json={"status": status})
        assert answer.status_code == 200, answer.text

    async def json(self, path: str) -> Any:
        answer = await self.http.get(path)
        assert answer.status_code == 200, answer.text
        return answer.json()


def default_tasks(agentapi_url: str) -> list[Task]:
    return [
        Task(TASK, "alice", "fix-bug", "active", ("claude", "helper"), agentapi_url),
        Task(OTHER, "bob", "elsewhere", "active", ("remote",), agentapi_url, other_workspace=True),
    ]


@asynccontextmanager
async def harness(
    tmp_path: Path,
    *,
    token: str = TOKEN,
    tasks: list[Task] | None = None,
    within: float = 10.0,
    **options: Any,
) -> AsyncIterator[Env]:
    """The stand-in (on tmp_path/coder.db) and a fake AgentAPI, both on loopback, for one test."""
    agentapi = FakeAgentAPI()
    store = Store(tmp_path / "coder.db")
    try:
        with anyio.fail_after(within):
            async with anyio.create_task_group() as group:
                agentapi_port = await group.start(partial(serve, agentapi.handle))
                agentapi_url = f"http://127.0.0.1:{agentapi_port}"
                standin = CoderStandIn(
                    store, token, default_tasks(agentapi_url) if tasks is None else tasks, **options
                )
                port = await group.start(partial(run_coder_standin, standin))
                base = f"http://127.0.0.1:{port}"
                async with httpx.AsyncClient(base_url=base, timeout=5, trust_env=False) as http:
                    yield Env(standin, http, agentapi, agentapi_url)
                group.cancel_scope.cancel()
    finally:
        store.close()


pytestmark = pytest.mark.anyio


# -- auth -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "words"),
    [(None, MISSING), ("", MISSING), ("wrong-token", UNAUTHORIZED), (TOKEN + "x", UNAUTHORIZED)],
)
async def test_app_status_without_the_right_token_is_401(
    tmp_path: Path, token: str | None, words: str
) -> None:
    async with harness(tmp_path) as env:
        answer = await env.patch(status_body(), token=token)
        assert answer.status_code == 401
        assert answer.json()["message"] == words
        assert env.standin.store.statuses() == []


@pytest.mark.parametrize(
    ("token", "words"), [(None, MISSING), ("", MISSING), ("wrong-token", UNAUTHORIZED)]
)
async def test_log_snapshot_without_the_right_token_is_401(
    tmp_path: Path, token: str | None, words: str
) -> None:
    async with harness(tmp_path) as env:
        answer = await env.upload(snapshot_body(), token=token)
        assert answer.status_code == 401
        assert answer.json()["message"] == words
        assert env.standin.store.snapshot(TASK) is None


async def test_a_malformed_token_is_401_when_agent_tokens_are_uuids(tmp_path: Path) -> None:
    async with harness(tmp_path, token=UUID_TOKEN) as env:
        malformed = await env.patch(status_body(), token="not-a-uuid")
        assert malformed.status_code == 401
        assert malformed.json() == {
            "message": "Workspace agent token invalid.",
            "detail": "An agent token must be a valid UUIDv4.",
        }
        other = await env.patch(status_body(), token=UUID_TOKEN.replace("7", "8"))
        assert (other.status_code, other.json()["message"]) == (401, UNAUTHORIZED)
        # Go parses the token as a UUID, so its case does not matter.
        assert (await env.patch(status_body(), token=UUID_TOKEN.upper())).status_code == 200


async def test_a_token_in_the_query_string_is_refused_and_never_recorded(tmp_path: Path) -> None:
    async with harness(tmp_path) as env:
        answer = await env.http.patch(
            f"{STATUS}?coder_session_token={TOKEN}", content=json.dumps(status_body())
        )
        assert answer.status_code == 401
        upload = await env.upload(snapshot_body(), query=f"format=agentapi&token={TOKEN}")
        assert upload.status_code == 400  # the snapshot route takes no query key but `format`
        recorded = await env.http.get("/dev/requests")
        assert TOKEN not in recorded.text
        assert [r["query"] for r in recorded.json()["requests"]] == [
            "coder_session_token=%5BREDACTED%5D",
            "format=agentapi&token=%5BREDACTED%5D",
        ]


# -- PATCH app-status -----------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["working", "idle", "complete", "failure"])
async def test_app_status_accepts_the_wire_states_with_200_null(tmp_path: Path, state: str) -> None:
    async with harness(tmp_path) as env:
        answer = await env.patch(status_body(state=state, uri="https://example.com/pr/1"))
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json; charset=utf-8"
        assert answer.content == b"null\n"  # coderd's httpapi.Write(..., nil)
        assert answer.json() is None
        (row,) = env.standin.store.statuses()
        assert (row["task_id"], row["app_slug"], row["state"]) == (TASK, "claude", state)
        assert (row["message"], row["uri"]) == ("hi", "https://example.com/pr/1")


@pytest.mark.parametrize("state", ["failed", "", "done", "Working"])
async def test_app_status_refuses_any_other_state(tmp_path: Path, state: str) -> None:
    async with harness(tmp_path) as env:
        answer = await env.patch(status_body(state=state))
        assert answer.status_code == 400
        assert answer.json()["message"] == "Invalid state provided."
        assert answer.json()["detail"] == f"invalid state: {json.dumps(state)}"
        assert env.standin.store.statuses() == []


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("x" * 160, 200),
        ("x" * 161, 400),
        ("é" * 80, 200),  # 160 bytes
        ("é" * 80 + "x", 400),  # 81 characters, 161 bytes
        ("👍" * 40, 200),  # 160 bytes in 40 characters
        ("€" * 54, 400),  # 54 characters but 162 bytes
        ("漢" * 53 + "x", 200),  # 160 bytes
    ],
)
async def test_app_status_message_is_measured_in_utf8_bytes(
    tmp_path: Path, text: str, code: int
) -> None:
    async with harness(tmp_path) as env:
        answer = await env.patch(status_body(message=text))
        assert answer.status_code == code
        if code == 400:
            assert answer.json()["message"] == "Message is too long."
            assert env.standin.store.statuses() == []
        else:
            assert env.standin.store.statuses()[0]["message"] == text


@pytest.mark.parametrize("slug", ["nope", "remote", "Claude", ""])
async def test_app_status_for_an_app_this_agent_lacks_is_400(tmp_path: Path, slug: str) -> None:
    async with harness(tmp_path) as env:
        answer = await env.patch(status_body(app_slug=slug))
        assert answer.status_code == 400
        assert answer.json() == {
            "message": "Failed to get workspace app.",
            "detail": f"No app found with slug {json.dumps(slug)}",
        }
        assert env.standin.store.statuses() == []


@pytest.mark.parametrize(
    "body",
    [b"{oops", b"", b"   ", b"[]", b'"working"', b'{"state": 5}', b'{"message": ["x"]}', b"NaN"],
)
async def test_app_status_with_malformed_json_is_400(tmp_path: Path, body: bytes) -> None:
    async with harness(tmp_path) as env:
        answer = await env.patch(body)
        assert answer.status_code == 400
        assert answer.json()["message"] == "Request body must be valid JSON."
        assert env.standin.store.statuses() == []


async def test_app_status_body_decodes_like_go(tmp_path: Path) -> None:
    # Unknown and deprecated keys are ignored, names match case-insensitively, a null leaves the
    # zero value, and whatever follows the first JSON value is not read.
    body = (
        b'{"App_Slug": "helper", "STATE": "idle", "message": null, "icon": "x",'
        b' "needs_user_attention": true, "extra": {"a": 1}} trailing'
    )
    async with harness(tmp_path) as env:
        assert (await env.patch(body)).status_code == 200
        (row,) = env.standin.store.statuses()
        assert (row["app_slug"], row["state"], row["message"], row["uri"]) == (
            "helper",
            "idle",
            "",
            "",
        )


async def test_every_app_status_call_stores_a_row(tmp_path: Path) -> None:
    async with harness(tmp_path) as env:
        for _ in range(3):
            assert (await env.patch(status_body(state="idle", message="same"))).status_code == 200
        rows = env.standin.store.statuses()
        assert [(r["state"], r["message"]) for r in rows] == [("idle", "same")] * 3
        assert [r["seq"] for r in rows] == sorted({r["seq"] for r in rows})


# -- POST log-snapshot ----------------------------------------------------------------------------


async def test_snapshot_upload_is_204_and_stored_byte_for_byte(tmp_path: Path) -> None:
    body = snapshot_body([message(0, "Refactor 漢字 👍 <b>", "user")])
    async with harness(tmp_path) as env:
        answer = await env.upload(body)
        assert answer.status_code == 204
        assert answer.content == b""
        stored = await env.json(f"/dev/snapshot/{TASK}")
        assert stored["body"] == body.decode()
        assert stored["bytes"] == len(body)
        assert stored["task_id"] == TASK
        assert stored["stored_at"].endswith("Z")


@pytest.mark.parametrize(
    ("task", "detail"),
    [
        ("not-a-uuid", "invalid UUID length: 10"),
        (TASK[:-1], "invalid UUID length: 35"),
        (TASK[:-1] + "z", "invalid UUID format"),
        (TASK.replace("-", "_"), "invalid UUID format"),
    ],
)
async def test_snapshot_task_must_be_a_uuid(tmp_path: Path, task: str, detail: str) -> None:
    async with harness(tmp_path) as env:
        answer = await env.upload(snapshot_body(), task=task)
        assert answer.status_code == 400
        assert answer.json() == {"message": "Invalid task ID format.", "detail": detail}


@pytest.mark.parametrize("task", [TASK.upper(), TASK.replace("-", "")])
async def test_snapshot_task_accepts_the_uuid_forms_go_parses(tmp_path: Path, task: str) -> None:
    async with harness(tmp_path) as env:
        assert (await env.upload(snapshot_body(), task=task)).status_code == 204
        assert env.standin.store.snapshot(TASK) is not None


@pytest.mark.parametrize(
    ("query", "words", "fields"),
    [
        ("", "Invalid query parameters.", ["format"]),
        ("format=", "Invalid query parameters.", ["format"]),
        ("format=json", "Invalid format parameter.", []),
        ("format=AgentAPI", "Invalid format parameter.", []),
        ("format=agentapi&x=1", "Invalid query parameters.", ["x"]),
        ("x=1", "Invalid query parameters.", ["format", "x"]),
    ],
)
async def test_snapshot_query_is_format_agentapi_and_nothing_else(
    tmp_path: Path, query: str, words: str, fields: list[str]
) -> None:
    async with harness(tmp_path) as env:
        answer = await env.upload(snapshot_body(), query=query)
        assert answer.status_code == 400
        assert answer.json()["message"] == words
        assert [v["field"] for v in answer.json().get("validations", [])] == fields
        assert env.standin.store.snapshot(TASK) is None


@pytest.mark.parametrize("task", [UNKNOWN, OTHER])
async def test_unknown_or_foreign_task_is_404_before_the_body_is_read(
    tmp_path: Path, task: str
) -> None:
    huge = b"{" * 300_000  # malformed and far past the limit: only a 404 can come first
    async with harness(tmp_path) as env:
        answer = await env.upload(huge, task=task)
        assert answer.status_code == 404
        assert answer.json() == {"message": NOT_FOUND}
        assert (await env.upload(huge)).status_code == 400  # the same body for a known task


async def test_65536_bytes_are_accepted_and_65537_are_400_not_413(tmp_path: Path) -> None:
    async with harness(tmp_path) as env:
        exact = sized_snapshot(65536)
        assert (await env.upload(exact)).status_code == 204
        answer = await env.upload(sized_snapshot(65537))
        assert answer.status_code == 400
        assert answer.json() == {"message": DECODE_FAILED, "detail": "http: request body too large"}
        stored = env.standin.store.snapshot(TASK)
        assert stored is not None
        assert stored.body == exact


async def test_only_the_first_json_value_is_read_like_gos_decoder(tmp_path: Path) -> None:
    # json.Decoder stops at the end of the first value, so bytes past it (even past the limit)
    # are never read: coderd accepts such a body.
    async with harness(tmp_path) as env:
        assert (await env.upload(snapshot_body() + b" " * 70_000)).status_code == 204


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{nope", id="malformed"),
        pytest.param(b"", id="empty"),
        pytest.param(b"[]", id="array"),
        pytest.param(b'{"messages": {}}', id="messages-object"),
        pytest.param(b'{"messages": [5]}', id="message-number"),
        pytest.param(b'{"$schema": 5, "messages": []}', id="schema-number"),
        pytest.param(snapshot_body([message(id_="1")]), id="id-string"),
        pytest.param(snapshot_body([message(id_=1.5)]), id="id-fraction"),
        pytest.param(b'{"messages": [{"id": 1e2}]}', id="id-exponent"),
        pytest.param(b'{"messages": [{"id": 1.0}]}', id="id-point-zero"),
        pytest.param(snapshot_body([message(id_=True)]), id="id-bool"),
        pytest.param(snapshot_body([message(id_=2**63)]), id="id-past-int64"),
        pytest.param(snapshot_body([message(content=5)]), id="content-number"),
        pytest.param(snapshot_body([message(role=["agent"])]), id="role-array"),
        pytest.param(snapshot_body([message(time=5)]), id="time-number"),
        pytest.param(snapshot_body([message(time="yesterday")]), id="time-words"),
        pytest.param(snapshot_body([message(time="2025-06-01 10:00:00Z")]), id="time-space"),
        pytest.param(snapshot_body([message(time="2025-06-01t10:00:00Z")]), id="time-lower-t"),
        pytest.param(snapshot_body([message(time="2025-06-01T10:00:00z")]), id="time-lower-z"),
        pytest.param(snapshot_body([message(time="2025-06-01T10:00:00")]), id="time-no-zone"),
        pytest.param(snapshot_body([message(time="2025-06-01")]), id="time-date-only"),
        pytest.param(snapshot_body([message(time="2025-02-30T10:00:00Z")]), id="time-feb-30"),
        pytest.param(snapshot_body([message(time="2025-06-01T24:00:00Z")]), id="time-hour-24"),
        pytest.param(snapshot_body([message(time="2025-06-01T10:60:00Z")]), id="time-minute-60"),
        pytest.param(snapshot_body([message(time="2025-06-01T10:00:60Z")]), id="time-second-60"),
        pytest.param(snapshot_body([message(time="2025-06-01T10:00:00+24:00")]), id="time-off-24"),
        pytest.param(
            snapshot_body([message(time="2025-06-01T10:00:00+0200")]), id="time-off-colon"
        ),
        pytest.param(snapshot_body([message(time="2025-06-01T10:00:00.Z")]), id="time-empty-frac"),
        pytest.param(snapshot_body([message(time="2025-06-01T10:00:00,5Z")]), id="time-comma"),
        pytest.param(snapshot_body([message(time="2025-06-01T1:00:00Z")]), id="time-one-digit"),
    ],
)
async def test_undecodable_snapshots_are_400(tmp_path: Path, body: bytes) -> None:
    async with harness(tmp_path) as env:
        answer = await env.upload(body)
        assert answer.status_code == 400
        assert answer.json()["message"] == DECODE_FAILED
        assert env.standin.store.snapshot(TASK) is None


@pytest.mark.parametrize(
    "body", [b"{}", b'{"messages": null}', b"null", b'{"$schema": "x", "other": [1]}']
)
async def test_missing_or_null_messages_are_400(tmp_path: Path, body: bytes) -> None:
    async with harness(tmp_path) as env:
        answer = await env.upload(body)
        assert answer.status_code == 400
        assert answer.json() == {
            "message": "Invalid agentapi payload structure.",
            "detail": 'Missing required "messages" field.',
        }


@pytest.mark.parametrize(
    "time",
    [
        "2025-06-01T10:00:00Z",
        "2025-06-01T10:00:00.5Z",
        "2025-06-01T10:00:00.123456789Z",
        "2025-06-01T10:00:00+02:00",
        "2025-06-01T10:00:00-07:30",
        "2025-06-01T10:00:00.123456789+05:30",
        "2024-02-29T23:59:59Z",
        "2025-06-01T10:00:00.1234567891Z",  # Go reads nine digits and ignores the rest
    ],
)
async def test_go_rfc3339nano_times_are_accepted(tmp_path: Path, time: str) -> None:
    async with harness(tmp_path) as env:
        assert (await env.upload(snapshot_body([message(time=time)]))).status_code == 204


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"messages": []}', id="empty-list"),
        pytest.param(snapshot_body(schema="http://x/MessagesResponseBody.json"), id="schema"),
        pytest.param(snapshot_body([{**message(), "extra": 1}], more=True), id="unknown-keys"),
        pytest.param(b'{"Messages": [{"ID": 3, "Role": "user", "Time": null}]}', id="folded-names"),
        pytest.param(snapshot_body([message(id_=-(2**63))]), id="int64-min"),
        pytest.param(snapshot_body([message(role="system")]), id="any-role"),
    ],
)
async def test_acceptable_snapshots_are_204(tmp_path: Path, body: bytes) -> None:
    async with harness(tmp_path) as env:
        assert (await env.upload(body)).status_code == 204


async def test_each_upload_replaces_the_previous_one(tmp_path: Path) -> None:
    first = snapshot_body()
    second = snapshot_body([message(7, "only this", "agent")], schema="x")
    async with harness(tmp_path) as env:
        assert (await env.upload(first)).status_code == 204
        assert (await env.upload(second)).status_code == 204
        assert (await env.json(f"/dev/snapshot/{TASK}"))["body"] == second.decode()
        await env.set_status("paused")
        logs = await env.json(f"/api/v2/tasks/alice/{TASK}/logs")
        assert [(e["id"], e["content"]) for e in logs["logs"]] == [(7, "only this")]


async def test_rate_limit_is_per_endpoint_then_429(tmp_path: Path) -> None:
    clock = FakeClock()
    async with harness(tmp_path, rate_limit=3, clock=clock) as env:
        codes = [(await env.patch(status_body())).status_code for _ in range(3)]
        assert codes == [200, 200, 200]
        limited = await env.patch(status_body())
        assert limited.status_code == 429
        assert limited.json() == {
            "message": "You've been rate limited for sending more than 3 requests in 1m0s."
        }
        assert limited.headers["retry-after"] == "60"
        assert len(env.standin.store.statuses()) == 3
        # The other endpoint has its own budget.
        assert (await env.upload(snapshot_body())).status_code == 204
        clock.now += 59.0
        assert (await env.patch(status_body())).status_code == 429
        clock.now += 1.0
        assert (await env.patch(status_body())).status_code == 200


def test_the_default_rate_limit_is_512_a_minute(tmp_path: Path) -> None:
    store = Store(tmp_path / "coder.db")
    try:
        standin = CoderStandIn(store, TOKEN)
        assert (standin.rate_limit, standin.rate_window, RATE_LIMIT) == (512, 60.0, 512)
    finally:
        store.close()


async def test_without_coder_tasks_the_snapshot_route_is_absent(tmp_path: Path) -> None:
    async with harness(tmp_path, tasks_enabled=False) as env:
        for task in (TASK, UNKNOWN, OTHER, "not-a-uuid"):
            answer = await env.upload(snapshot_body(), task=task)
            assert answer.status_code == 404
            assert answer.json() == {"message": ROUTE_NOT_FOUND}
        assert env.standin.store.snapshot(TASK) is None
        assert (await env.patch(status_body())).status_code == 200
        env.standin.tasks_enabled = True  # the switch is live
        assert (await env.upload(snapshot_body())).status_code == 204


async def test_wrong_methods_and_unknown_agent_routes(tmp_path: Path) -> None:
    async with harness(tmp_path) as env:
        headers = {"Coder-Session-Token": TOKEN}
        assert (await env.http.post(STATUS, json=status_body(), headers=headers)).status_code == 405
        answer = await env.http.get(snapshot_path() + "?format=agentapi", headers=headers)
        assert answer.status_code == 405
        unknown = await env.http.get("/api/v2/workspaceagents/me/manifest", headers=headers)
        assert (unknown.status_code, unknown.json()) == (404, {"message": ROUTE_NOT_FOUND})


# -- the read side --------------------------------------------------------------------------------


async def test_task_current_state_is_the_latest_status_with_failure_shown_as_failed(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path) as env:
        before = await env.json(f"/api/v2/tasks/alice/{TASK}")
        assert (before["id"], before["name"], before["owner_name"]) == (TASK, "fix-bug", "alice")
        assert (before["status"], before["current_state"]) == ("active", None)
        await env.patch(status_body(state="working", message="on it"))
        await env.patch(status_body(state="failure", message="tests fail", uri="https://x/1"))
        task = await env.json(f"/api/v2/tasks/alice/{TASK}")
        latest = env.standin.store.statuses()[-1]
        assert task["current_state"] == {
            "timestamp": latest["created_at"],
            "state": "failed",
            "message": "tests fail",
            "uri": "https://x/1",
        }
        # By name, and as "me", like Coder; another user's view or an unknown task is a 404.
        assert (await env.json("/api/v2/tasks/alice/fix-bug"))["id"] == TASK
        assert (await env.json(f"/api/v2/tasks/me/{TASK}"))["id"] == TASK
        for path in (f"/api/v2/tasks/bob/{TASK}", f"/api/v2/tasks/alice/{UNKNOWN}"):
            missing = await env.http.get(path)
            assert (missing.status_code, missing.json()) == (404, {"message": NOT_FOUND})


async def test_paused_task_reads_the_snapshot_back(tmp_path: Path) -> None:
    async with harness(tmp_path) as env:
        assert (await env.upload(snapshot_body())).status_code == 204
        await env.set_status("paused")
        stored_at = (await env.json(f"/dev/snapshot/{TASK}"))["stored_at"]
        logs = await env.json(f"/api/v2/tasks/alice/{TASK}/logs")
        assert logs == {
            "count": 2,
            "logs": [
                {"id": 0, "content": "hello", "type": "output", "time": TIME},
                {"id": 1, "content": "do it", "type": "input", "time": TIME},
            ],
            "snapshot": True,
            "snapshot_at": stored_at,
        }
        assert env.agentapi.calls == 0


@pytest.mark.parametrize("status", ["paused", "pending", "initializing"])
async def test_without_a_snapshot_the_logs_are_empty_but_marked_snapshot(
    tmp_path: Path, status: str
) -> None:
    async with harness(tmp_path) as env:
        await env.set_status(status)
        logs = await env.json(f"/api/v2/tasks/alice/{TASK}/logs")
        assert logs == {"count": 0, "logs": [], "snapshot": True}


async def test_active_task_reads_live_from_agentapi(tmp_path: Path) -> None:
    async with harness(tmp_path) as env:
        env.agentapi.messages = [
            {"id": 0, "content": "╭ screen ╮", "role": "agent", "time": TIME},
            {"id": 1, "content": "live prompt", "role": "user", "time": "2025-06-01T10:00:01Z"},
        ]
        assert (await env.upload(snapshot_body())).status_code == 204  # ignored while active
        logs = await env.json(f"/api/v2/tasks/alice/{TASK}/logs")
        assert logs == {
            "count": 2,
            "logs": [
                {"id": 0, "content": "╭ screen ╮", "type": "output", "time": TIME},
                {
                    "id": 1,
                    "content": "live prompt",
                    "type": "input",
                    "time": "2025-06-01T10:00:01Z",
                },
            ],
            "snapshot": False,
        }
        assert env.agentapi.calls == 1


async def test_live_logs_with_agentapi_down_are_a_clear_502(
    tmp_path: Path, refused_url: str
) -> None:
    down = refused_url
    async with harness(tmp_path, tasks=[Task(TASK, "alice", "fix-bug", agentapi_url=down)]) as env:
        answer = await env.http.get(f"/api/v2/tasks/alice/{TASK}/logs")
        assert answer.status_code == 502
        assert answer.json()["message"] == "Failed to get messages from task app."
        assert f"AgentAPI at {down} is unreachable" in answer.json()["detail"]


async def test_live_logs_with_a_bad_agentapi_answer_are_502(tmp_path: Path) -> None:
    async with harness(tmp_path) as env:
        env.agentapi.messages = [{"id": 0, "content": "?", "role": "robot", "time": TIME}]
        answer = await env.http.get(f"/api/v2/tasks/alice/{TASK}/logs")
        assert answer.status_code == 502
        assert answer.json() == {
            "message": "Invalid task app response.",
            "detail": 'invalid agentapi message role "robot"',
        }


@pytest.mark.parametrize("status", ["error", "unknown"])
async def test_error_or_unknown_task_logs_are_409(tmp_path: Path, status: str) -> None:
    async with harness(tmp_path) as env:
        assert (await env.upload(snapshot_body())).status_code == 204
        await env.set_status(status)
        answer = await env.http.get(f"/api/v2/tasks/alice/{TASK}/logs")
        assert answer.status_code == 409
        assert answer.json() == {"message": LOGS_CONFLICT, "detail": f'Task status is "{status}".'}


async def test_a_snapshot_with_another_role_breaks_every_read_with_500(tmp_path: Path) -> None:
    async with harness(tmp_path) as env:
        body = snapshot_body([message(0, "x", "agent"), message(1, "y", "system")])
        assert (await env.upload(body)).status_code == 204  # roles are not checked on upload
        await env.set_status("paused")
        answer = await env.http.get(f"/api/v2/tasks/alice/{TASK}/logs")
        assert answer.status_code == 500
        assert answer.json() == {
            "message": "Invalid snapshot data.",
            "detail": 'invalid agentapi message role "system"',
        }


# -- state in SQLite ------------------------------------------------------------------------------


async def test_state_survives_a_restart_on_the_same_database(tmp_path: Path) -> None:
    async with harness(tmp_path) as env:
        await env.patch(status_body(state="working", message="first"))
        await env.patch(status_body(state="failure", message="second"))
        assert (await env.upload(snapshot_body())).status_code == 204
        await env.set_status("paused")
        stored_at = (await env.json(f"/dev/snapshot/{TASK}"))["stored_at"]
    # A new stand-in on the same file; its configuration says "active", the stored status wins.
    async with harness(tmp_path) as env:
        task = await env.json(f"/api/v2/tasks/alice/{TASK}")
        assert (task["status"], task["current_state"]["state"]) == ("paused", "failed")
        statuses = (await env.json(f"/dev/app-statuses?task={TASK}"))["statuses"]
        assert [(s["state"], s["shown_as"], s["message"]) for s in statuses] == [
            ("working", "working", "first"),
            ("failure", "failed", "second"),
        ]
        logs = await env.json(f"/api/v2/tasks/alice/{TASK}/logs")
        assert (logs["snapshot"], logs["snapshot_at"], logs["count"]) == (True, stored_at, 2)


# -- dev endpoints --------------------------------------------------------------------------------


async def test_faults_are_consumed_in_order(tmp_path: Path) -> None:
    faults = [
        {"route": "log-snapshot", "status": 503, "times": 2, "retry_after": 7},
        {"route": "app-status", "status": 500},
        {"route": "log-snapshot", "status": 429, "retry_after": 3},
    ]
    async with harness(tmp_path) as env:
        added = await env.http.post("/dev/faults", json=faults)
        assert added.status_code == 200
        assert len(added.json()["faults"]) == 3
        uploads = [await env.upload(snapshot_body()) for _ in range(4)]
        assert [a.status_code for a in uploads] == [503, 503, 429, 204]
        assert [a.headers.get("retry-after") for a in uploads] == ["7", "7", "3", None]
        assert uploads[0].json()["message"] == "Injected fault."
        assert [(await env.patch(status_body())).status_code for _ in range(2)] == [500, 200]
        assert (await env.json("/dev/faults")) == {"faults": []}
        snapshot_calls = [r for r in env.standin.requests if r["route"] == "log-snapshot"]
        assert [r["status"] for r in snapshot_calls] == [503, 503, 429, 204]
        assert len(env.standin.store.statuses()) == 1


async def test_faults_from_python_and_their_validation(tmp_path: Path) -> None:
    async with harness(tmp_path) as env:
        env.standin.faults += [Fault("app-status", 502), Fault("app-status", None)]
        assert (await env.patch(status_body())).status_code == 502
        assert (await env.patch(status_body())).status_code == 200  # a delay-only fault
        for bad in (
            {"route": "nope", "status": 503},
            {"route": "app-status", "status": 503, "times": 0},
            {"route": "app-status", "status": "503"},
            {"route": "app-status", "status": 700},
            {"route": "app-status", "status": 503, "when": "now"},
            {"route": "app-status", "delay": -1},
        ):
            answer = await env.http.post("/dev/faults", json=[bad])
            assert (answer.status_code, answer.json()["message"]) == (400, "Invalid fault list.")
        assert (await env.http.post("/dev/faults", json={"faults": "x"})).status_code == 400
        await env.http.post("/dev/faults", json={"faults": [{"route": "app-status"}]})
        assert (await env.http.delete("/dev/faults")).json() == {"faults": []}
        assert (await env.patch(status_body())).status_code == 200
        with pytest.raises(ValueError, match="route"):
            Fault("snapshot")


async def test_dev_requests_record_what_arrived_but_never_the_token(tmp_path: Path) -> None:
    async with harness(tmp_path) as env:
        await env.patch(status_body(message="x" * 10))
        await env.patch(status_body(), token="some-other-token")
        body = snapshot_body()
        await env.upload(body)
        await env.http.get(f"/api/v2/tasks/alice/{TASK}")  # the read side is not recorded
        await env.http.get("/api/v2/nothing-here")
        answer = await env.http.get("/dev/requests")
        assert TOKEN not in answer.text
        rows = answer.json()["requests"]
        assert [
            (r["method"], r["path"], r["query"], r["token"], r["token_ok"], r["status"])
            for r in rows
        ] == [
            ("PATCH", STATUS, "", "matched", True, 200),
            ("PATCH", STATUS, "", "mismatched", False, 401),
            ("POST", snapshot_path(), "format=agentapi", "matched", True, 204),
            ("GET", "/api/v2/nothing-here", "", "missing", False, 404),
        ]
        assert rows[2]["body_bytes"] == len(body)
        assert all(r["time"].endswith("Z") for r in rows)
        assert (await env.http.delete("/dev/requests")).status_code == 204
        assert (await env.json("/dev/requests")) == {"requests": []}


async def test_dev_task_status_and_listing(tmp_path: Path) -> None:
    async with harness(tmp_path) as env:
        changed = await env.http.post(f"/dev/tasks/{TASK}/status", json={"status": "paused"})
        assert (changed.status_code, changed.json()["status"]) == (200, "paused")
        for target, body, code in (
            (TASK, {"status": "sleeping"}, 400),
            (TASK, {"state": "paused"}, 400),
            (TASK, ["paused"], 400),
            ("not-a-uuid", {"status": "paused"}, 400),
            (UNKNOWN, {"status": "paused"}, 404),
        ):
            answer = await env.http.post(f"/dev/tasks/{target}/status", json=body)
            assert answer.status_code == code, (target, body)
        tasks = (await env.json("/dev/tasks"))["tasks"]
        assert [(t["id"], t["status"]) for t in tasks] == [(TASK, "paused"), (OTHER, "active")]
        assert (await env.http.get(f"/dev/snapshot/{UNKNOWN}")).status_code == 404
        assert (await env.http.get("/dev/app-statuses?task=nope")).status_code == 400
        assert (await env.http.get("/dev/nothing")).status_code == 404
        index = await env.http.get("/")
        assert f"/tasks/alice/{TASK}" in index.text


# -- the command line -----------------------------------------------------------------------------


async def wait_for_port(path: Path, process: anyio.abc.Process) -> int:
    while not await anyio.Path(path).exists():
        assert process.returncode is None, "the stand-in exited early"
        await anyio.sleep(0.01)
    return int(await anyio.Path(path).read_text())


async def read_all(stream: anyio.abc.ByteReceiveStream | None) -> str:
    assert stream is not None
    chunks = [chunk async for chunk in stream]
    return b"".join(chunks).decode("utf-8", errors="replace")


async def run_main(tmp_path: Path, extra: list[str], env: dict[str, str], token: str) -> str:
    """`main` in a real process: serve, take one status, stop on SIGTERM; returns its stderr."""
    port_file = tmp_path / "port"
    args = [
        "--port",
        "0",
        "--port-file",
        str(port_file),
        "--db",
        str(tmp_path / "cli.db"),
        "--task-id",
        TASK,
        "--user",
        "alice",
        "--app-slug",
        "claude",
        *extra,
    ]
    code = "import sys; from standins.coder import main; sys.exit(main(sys.argv[1:]))"
    process = await anyio.open_process(
        [sys.executable, "-c", code, *args], env=env, stdin=subprocess.DEVNULL
    )
    assert token not in " ".join(args)
    try:
        async with anyio.create_task_group() as group:
            stderr: list[str] = []

            async def drain() -> None:
                stderr.append(await read_all(process.stderr))

            group.start_soon(drain)
            port = await wait_for_port(port_file, process)
            async with httpx.AsyncClient(timeout=5, trust_env=False) as http:
                answer = await http.patch(
                    f"http://127.0.0.1:{port}{STATUS}",
                    json=status_body(),
                    headers={"Coder-Session-Token": token},
                )
                assert answer.status_code == 200
                page = await http.get(f"http://127.0.0.1:{port}/tasks/alice/{TASK}")
                assert page.status_code == 200
            process.send_signal(signal.SIGTERM)
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return stderr[0]


def child_env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CODER_")}
    return {**base, **extra}


async def test_main_serves_until_sigterm_and_exits_0(tmp_path: Path) -> None:
    with anyio.fail_after(30):
        stderr = await run_main(tmp_path, [], child_env(CODER_AGENT_TOKEN=TOKEN), TOKEN)
    assert TOKEN not in stderr
    events = [json.loads(line)["event"] for line in stderr.splitlines() if line.startswith("{")]
    assert "coder_standin_listening" in events
    assert "coder_standin_stopping" in events
    store = Store(tmp_path / "cli.db")
    try:
        assert [row["state"] for row in store.statuses()] == ["working"]
    finally:
        store.close()


async def test_main_reads_the_token_from_a_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-token-0c9d\n")
    with anyio.fail_after(30):
        stderr = await run_main(
            tmp_path, ["--token-file", str(token_file)], child_env(), "file-token-0c9d"
        )
    assert "file-token-0c9d" not in stderr


def test_main_refuses_to_start_without_a_token_or_with_a_bad_task_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from standins.coder import main  # noqa: PLC0415

    monkeypatch.delenv("CODER_AGENT_TOKEN", raising=False)
    assert main(["--db", str(tmp_path / "x.db")]) == 2
    assert "CODER_AGENT_TOKEN" in capsys.readouterr().err
    assert main(["--token-file", str(tmp_path / "absent")]) == 2
    assert "--token-file" in capsys.readouterr().err
    monkeypatch.setenv("CODER_AGENT_TOKEN", TOKEN)
    assert main(["--task-id", "nope"]) == 2
    assert "--task-id" in capsys.readouterr().err
