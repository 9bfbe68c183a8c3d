"""The Coder stand-in over real loopback sockets: every answer of contracts.md section 2."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from agent.standins.agentapi import AgentAPIStandIn, run_agentapi_standin
from agent.standins.coder import CoderStandIn, run_coder_standin
from agent.standins.store import Store, Task

pytestmark = pytest.mark.anyio
TOKEN = "standin-token-1234"
TASK = "3f0e1d2c-4b5a-4697-8887-a9b0c1d2e3f4"
STATUS = "/api/v2/workspaceagents/me/app-status"
SNAPSHOT = f"/api/v2/workspaceagents/me/tasks/{TASK}/log-snapshot"
TIME = "2025-06-01T10:00:00.123456789Z"


@dataclass
class Env:
    coder: CoderStandIn
    agentapi: AgentAPIStandIn
    http: httpx.AsyncClient
    db: Path

    async def patch(self, body: Any, token: str | None = TOKEN) -> httpx.Response:
        headers = {"Coder-Session-Token": token} if token else {}
        return await self.http.patch(STATUS, json=body, headers=headers)

    async def upload(
        self, body: bytes, query: str = "format=agentapi", path: str = SNAPSHOT
    ) -> httpx.Response:
        return await self.http.post(
            f"{path}?{query}" if query else path,
            content=body,
            headers={"Coder-Session-Token": TOKEN, "content-type": "application/json"},
        )


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    agentapi = AgentAPIStandIn()
    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            agentapi_port = await group.start(run_agentapi_standin, agentapi)
            task = Task(
                TASK, "alice", "fix-bug", "active", ("claude",), f"http://127.0.0.1:{agentapi_port}"
            )
            coder = CoderStandIn(Store(tmp_path / "db.sqlite"), TOKEN, [task], rate_limit=50)
            port = await group.start(run_coder_standin, coder)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
                yield Env(coder, agentapi, http, tmp_path / "db.sqlite")
            group.cancel_scope.cancel()
        coder.store.close()


def status_body(**overrides: str) -> dict[str, str]:
    return {"app_slug": "claude", "state": "working", "message": "hi", "uri": "", **overrides}


def snapshot_body(messages: list[dict[str, Any]] | None = None, **extra: Any) -> bytes:
    if messages is None:
        messages = [
            {"id": 0, "content": "hello", "role": "agent", "time": TIME},
            {"id": 1, "content": "do it", "role": "user", "time": TIME},
        ]
    return json.dumps({"messages": messages, **extra}).encode()


@pytest.mark.parametrize("state", ["working", "idle", "complete", "failure"])
async def test_app_status_accepts_the_wire_states(env: Env, state: str) -> None:
    answer = await env.patch(status_body(state=state))
    assert answer.status_code == 200
    assert answer.content == b"null"
    assert env.coder.store.statuses()[-1]["state"] == state


@pytest.mark.parametrize(
    ("body", "token", "code", "words"),
    [
        (status_body(), None, 401, "not provided"),
        (status_body(), "wrong", 401, "invalid"),
        (status_body(state="failed"), TOKEN, 400, "Invalid state"),
        (status_body(message="x" * 161), TOKEN, 400, "too long"),
        (status_body(message="é" * 81), TOKEN, 400, "too long"),
        (status_body(app_slug="nope"), TOKEN, 400, 'No app found with slug \\"nope\\"'),
    ],
)
async def test_app_status_rejections(
    env: Env, body: dict[str, str], token: str | None, code: int, words: str
) -> None:
    answer = await env.patch(body, token)
    assert answer.status_code == code
    assert words in answer.text
    assert env.coder.store.statuses() == []


async def test_app_status_edges(env: Env) -> None:
    assert (await env.patch(status_body(message="x" * 160))).status_code == 200
    assert (await env.patch(status_body(message="é" * 80))).status_code == 200
    bad = await env.http.patch(STATUS, content=b"{oops", headers={"Coder-Session-Token": TOKEN})
    assert bad.status_code == 400
    await env.patch(status_body())
    await env.patch(status_body())
    assert len(env.coder.store.statuses()) == 4, "no de-duplication: every call stores a row"


async def test_snapshot_upload_and_replace(env: Env) -> None:
    assert (await env.upload(snapshot_body())).status_code == 204
    second = snapshot_body(
        [{"id": 5, "content": "only", "role": "agent", "time": TIME}], **{"$schema": "x"}
    )
    answer = await env.upload(second)
    assert answer.status_code == 204
    assert answer.content == b""
    stored = env.coder.store.snapshot(TASK)
    assert stored is not None
    assert stored[0] == second
    assert (await env.upload(snapshot_body([]))).status_code == 204


@pytest.mark.parametrize(
    ("query", "path", "code", "words"),
    [
        ("", SNAPSHOT, 400, "format"),
        ("format=json", SNAPSHOT, 400, "format"),
        ("format=agentapi&x=1", SNAPSHOT, 400, "unknown query"),
        ("format=agentapi", SNAPSHOT.replace(TASK, "not-a-uuid"), 400, "UUID"),
        (
            "format=agentapi",
            SNAPSHOT.replace(TASK, "11111111-2222-4333-8444-555555555555"),
            404,
            "not found",
        ),
    ],
)
async def test_snapshot_request_rejections(
    env: Env, query: str, path: str, code: int, words: str
) -> None:
    answer = await env.upload(snapshot_body(), query=query, path=path)
    assert answer.status_code == code
    assert words in answer.text


async def test_unknown_task_is_404_even_with_a_huge_body(env: Env) -> None:
    path = SNAPSHOT.replace(TASK, "11111111-2222-4333-8444-555555555555")
    answer = await env.upload(b"x" * 200_000, path=path)
    assert answer.status_code == 404


async def test_body_limit_is_65536_and_past_it_400_not_413(env: Env) -> None:
    base = snapshot_body([{"id": 0, "content": "", "role": "agent", "time": TIME}])
    room = 65536 - len(base)
    exact = snapshot_body([{"id": 0, "content": "x" * room, "role": "agent", "time": TIME}])
    assert len(exact) == 65536
    assert (await env.upload(exact)).status_code == 204
    over = snapshot_body([{"id": 0, "content": "x" * (room + 1), "role": "agent", "time": TIME}])
    answer = await env.upload(over)
    assert answer.status_code == 400
    assert answer.json()["message"] == "Failed to decode request payload."


@pytest.mark.parametrize(
    "body",
    [
        b"{nope",
        b"{}",
        b'{"messages": null}',
        snapshot_body([{"id": "1", "content": "x", "role": "agent", "time": TIME}]),
        snapshot_body([{"id": 1.5, "content": "x", "role": "agent", "time": TIME}]),
        snapshot_body([{"id": 1, "content": "x", "role": "agent", "time": "yesterday"}]),
    ],
)
async def test_malformed_snapshots_are_400(env: Env, body: bytes) -> None:
    answer = await env.upload(body)
    assert answer.status_code == 400
    assert answer.json()["message"] == "Failed to decode request payload."


async def test_tasks_disabled_is_404(env: Env) -> None:
    env.coder.tasks_enabled = False
    assert (await env.upload(snapshot_body())).status_code == 404


async def test_rate_limit(env: Env) -> None:
    codes = [(await env.patch(status_body())).status_code for _ in range(52)]
    assert codes[:50] == [200] * 50
    assert codes[50:] == [429, 429]


async def test_read_path_round_trip(env: Env) -> None:
    base = f"/api/v2/tasks/alice/{TASK}"
    await env.patch(status_body(state="failure", message="tests fail"))
    task = (await env.http.get(base)).json()
    assert task["current_state"]["state"] == "failed"
    assert task["status"] == "active"
    env.agentapi.put_message("user", "live prompt")
    live = (await env.http.get(f"{base}/logs")).json()
    assert live["snapshot"] is False
    assert live["logs"][-1] == {**live["logs"][-1], "content": "live prompt", "type": "input"}
    await env.http.post(f"/dev/tasks/{TASK}/status", json={"status": "paused"})
    empty = (await env.http.get(f"{base}/logs")).json()
    assert empty == {"logs": [], "snapshot": True}
    await env.upload(snapshot_body())
    stored = (await env.http.get(f"{base}/logs")).json()
    assert stored["snapshot"] is True
    assert "snapshot_at" in stored
    assert [(e["id"], e["type"]) for e in stored["logs"]] == [(0, "output"), (1, "input")]
    await env.http.post(f"/dev/tasks/{TASK}/status", json={"status": "error"})
    conflict = await env.http.get(f"{base}/logs")
    assert conflict.status_code == 409
    assert conflict.json()["message"] == "Cannot fetch logs for task in current state."


async def test_state_survives_a_restart(env: Env) -> None:
    await env.patch(status_body(state="complete"))
    await env.upload(snapshot_body())
    reopened = Store(env.db)
    try:
        assert reopened.statuses()[-1]["state"] == "complete"
        assert reopened.snapshot(TASK) is not None
    finally:
        reopened.close()


async def test_faults_are_consumed_in_order(env: Env) -> None:
    faults = [
        {"route": "log-snapshot", "status": 503, "times": 2},
        {"route": "log-snapshot", "status": 429, "retry_after": 3},
    ]
    assert (await env.http.post("/dev/faults", json=faults)).status_code == 200
    codes = [(await env.upload(snapshot_body())) for _ in range(4)]
    assert [c.status_code for c in codes] == [503, 503, 429, 204]
    assert codes[2].headers["retry-after"] == "3"


async def test_dev_requests_never_hold_the_token(env: Env) -> None:
    await env.patch(status_body())
    await env.patch(status_body(), token="bad")
    answer = await env.http.get("/dev/requests")
    assert TOKEN not in answer.text
    assert [r["token_ok"] for r in answer.json()["requests"]] == [True, False]


async def test_task_page_is_served(env: Env) -> None:
    page = await env.http.get(f"/tasks/alice/{TASK}")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "Status timeline" in page.text
