"""The AgentAPI stand-in on real loopback sockets, checked against AgentAPI's OpenAPI document."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource

from agent.standins.agentapi import (
    BUSY_MESSAGE,
    SUBSCRIBER_BUFFER,
    AgentAPIStandIn,
    PromptScript,
    Scenario,
    box_lines,
    run_agentapi_standin,
)
from tests.fakes import wait_until

pytestmark = pytest.mark.anyio
SPEC_PATH = Path(__file__).resolve().parents[3] / "shared" / "agentapi-openapi.json"
QUICK = Scenario(
    prompts=(
        PromptScript(
            think_seconds=0.2,
            lines=("one", "two", "three"),
            lines_per_second=50,
            settle_seconds=0.2,
        ),
    )
)


def validator(schema_name: str) -> OAS30Validator:
    if not SPEC_PATH.exists():
        pytest.skip(f"AgentAPI's OpenAPI document is not at {SPEC_PATH}")
    spec = json.loads(SPEC_PATH.read_text())
    registry: Registry[Any] = Registry().with_resource("spec", Resource.opaque(spec))
    return OAS30Validator({"$ref": f"spec#/components/schemas/{schema_name}"}, registry=registry)


def check(schema_name: str, payload: object) -> None:
    validator(schema_name).validate(payload)


@pytest.fixture
async def standin() -> AsyncIterator[tuple[AgentAPIStandIn, httpx.AsyncClient]]:
    agentapi = AgentAPIStandIn(scenario=QUICK, speed=1.0)
    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            port = await group.start(run_agentapi_standin, agentapi)
            async with httpx.AsyncClient(base_url=f"http://localhost:{port}", timeout=5) as http:
                yield agentapi, http
            group.cancel_scope.cancel()


async def read_events(
    http: httpx.AsyncClient, count: int, during: Any = None
) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    async with http.stream("GET", "/events") as response:
        assert response.headers["content-type"] == "text/event-stream"
        name = ""
        started = False
        async for line in response.aiter_lines():
            assert not line.startswith(("id:", "retry:"))
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
                if len(events) == count:
                    return events
            elif during is not None and not started and len(events) >= 1:
                started = True
                await during()
    return events


async def test_status_and_messages_follow_the_contract(
    standin: tuple[AgentAPIStandIn, httpx.AsyncClient],
) -> None:
    _, http = standin
    status = (await http.get("/status")).json()
    check("StatusResponseBody", status)
    assert status["status"] == "stable"
    assert status["$schema"].endswith("/schemas/StatusResponseBody.json")
    messages = (await http.get("/messages")).json()
    check("MessagesResponseBody", messages)
    assert messages["messages"][0]["id"] == 0
    assert messages["messages"][0]["role"] == "agent"
    assert "╭" in messages["messages"][0]["content"]


async def test_a_prompt_runs_the_scripted_turn_and_rewrites_in_place(
    standin: tuple[AgentAPIStandIn, httpx.AsyncClient],
) -> None:
    agentapi, http = standin
    answer = await http.post("/message", json={"content": "hello", "type": "user"})
    assert answer.status_code == 200
    check("MessageResponseBody", answer.json())
    assert agentapi.status == "running"
    first = agentapi.messages[2]
    await wait_until(lambda: agentapi.status == "stable")
    messages = (await http.get("/messages")).json()["messages"]
    assert [m["id"] for m in messages] == [0, 1, 2]
    assert messages[1] == {**messages[1], "role": "user", "content": "hello"}
    assert messages[2]["content"] == "one\ntwo\nthree"
    assert messages[2]["time"] > first["time"], "the rewritten message's time moves"


async def test_send_while_running_is_a_500_problem(
    standin: tuple[AgentAPIStandIn, httpx.AsyncClient],
) -> None:
    agentapi, http = standin
    agentapi.set_status("running")
    answer = await http.post("/message", json={"content": "again", "type": "user"})
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    check("ErrorModel", answer.json())
    assert BUSY_MESSAGE in answer.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"content": "x"},
        {"type": "user"},
        {"content": 5, "type": "user"},
        {"content": "x", "type": "shout"},
        {"content": "x", "type": "user", "extra": 1},
        "not an object",
    ],
)
async def test_schema_violations_are_422(
    standin: tuple[AgentAPIStandIn, httpx.AsyncClient], body: object
) -> None:
    _, http = standin
    answer = await http.post("/message", json=body)
    assert answer.status_code == 422
    check("ErrorModel", answer.json())
    assert answer.json()["errors"]


async def test_invalid_json_is_422(standin: tuple[AgentAPIStandIn, httpx.AsyncClient]) -> None:
    _, http = standin
    answer = await http.post("/message", content=b"{nope")
    assert answer.status_code == 422


async def test_the_send_lock_blocks_status_and_messages_but_not_events(
    standin: tuple[AgentAPIStandIn, httpx.AsyncClient],
) -> None:
    agentapi, http = standin
    agentapi.scenario = Scenario(
        prompts=(PromptScript(think_seconds=0.5, lines=("x",), settle_seconds=0.1),)
    )
    gate = anyio.Event()
    original = agentapi._agent_turn

    async def slow_start(prompt: str) -> None:
        await gate.wait()  # the agent does not start until the test says so
        await original(prompt)

    agentapi._agent_turn = slow_start  # type: ignore[method-assign]
    order: list[str] = []
    async with anyio.create_task_group() as group:

        async def send() -> None:
            await http.post("/message", json={"content": "go", "type": "user"})
            order.append("send done")

        async def status() -> None:
            await http.get("/status")
            order.append("status done")

        group.start_soon(send)
        await wait_until(lambda: len(agentapi.messages) == 2)
        group.start_soon(status)
        events = await read_events(http, 2)
        order.append("events read")
        assert events[0][0] == "message_update"
        await anyio.sleep(0.05)
        assert "status done" not in order, "GET /status waits for the lock"
        gate.set()
    assert order == ["events read", "send done", "status done"]


async def test_events_replay_then_changes(
    standin: tuple[AgentAPIStandIn, httpx.AsyncClient],
) -> None:
    agentapi, http = standin
    agentapi.put_message("user", "first")
    agentapi.add_error("boom", "warning")

    async def change() -> None:
        agentapi.put_message("agent", "later")
        agentapi.set_status("running")

    events = await read_events(http, 6, during=change)
    names = [name for name, _ in events]
    assert names == [
        "message_update",
        "message_update",
        "status_change",
        "agent_error",
        "message_update",
        "status_change",
    ]
    schemas = {
        "message_update": "MessageUpdateBody",
        "status_change": "StatusChangeBody",
        "agent_error": "ErrorBody",
    }
    for name, data in events:
        check(schemas[name], data)
    assert events[1][1]["message"] == "first"
    assert "content" not in events[1][1]


async def test_a_slow_subscriber_is_dropped(
    standin: tuple[AgentAPIStandIn, httpx.AsyncClient],
) -> None:
    agentapi, _ = standin
    response = agentapi._events()
    assert agentapi.subscriber_count == 1
    for i in range(SUBSCRIBER_BUFFER + 1):
        agentapi.put_message("agent", f"update {i}", 0)
    assert agentapi.subscriber_count == 0
    assert response.stream is not None
    frames = [frame async for frame in response.stream]
    assert len(frames) == 2 + SUBSCRIBER_BUFFER  # the replay, then what fit before the drop


@pytest.mark.parametrize("host", ["evil.example", "10.0.0.1:3284", "localhost.evil:80"])
async def test_host_allowlist(
    standin: tuple[AgentAPIStandIn, httpx.AsyncClient], host: str
) -> None:
    _, http = standin
    answer = await http.get("/status", headers={"host": host})
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1:3284", "[::1]:3284", "[::1]"])
async def test_allowed_hosts(standin: tuple[AgentAPIStandIn, httpx.AsyncClient], host: str) -> None:
    _, http = standin
    assert (await http.get("/status", headers={"host": host})).status_code == 200


async def test_upload(standin: tuple[AgentAPIStandIn, httpx.AsyncClient]) -> None:
    _, http = standin
    answer = await http.post("/upload", files={"file": ("notes.txt", b"hello file")})
    assert answer.status_code == 200
    check("UploadResponseBody", answer.json())
    assert await anyio.Path(answer.json()["filePath"]).read_bytes() == b"hello file"
    missing = await http.post("/upload", files={"other": ("x", b"x")})
    assert missing.status_code == 422
    assert (await http.post("/upload", content=b"raw")).status_code == 422


async def test_unknown_routes(standin: tuple[AgentAPIStandIn, httpx.AsyncClient]) -> None:
    _, http = standin
    assert (await http.get("/nope")).status_code == 404
    assert (await http.delete("/status")).status_code == 405


def test_scenario_file_and_large_output(tmp_path: Path) -> None:
    path = tmp_path / "scenario.json"
    path.write_text(
        json.dumps(
            {
                "agent_type": "goose",
                "prompts": [
                    {"match": "deploy", "think_seconds": 0, "permission_prompt": "Allow?"},
                    {"match": "default", "lines": ["ok"]},
                ],
            }
        )
    )
    scenario = Scenario.load(path)
    assert scenario.agent_type == "goose"
    assert scenario.for_prompt("please deploy it").permission_prompt == "Allow?"
    assert scenario.for_prompt("hello").lines == ("ok",)
    lines = box_lines(3000)
    assert all(len(line) == 80 for line in lines)
    assert 200_000 < len("\n".join(lines).encode()) < 800_000
    path.write_text("{broken")
    with pytest.raises(ValueError, match="scenario"):
        Scenario.load(path)


async def test_permission_prompt_reads_stable(
    standin: tuple[AgentAPIStandIn, httpx.AsyncClient],
) -> None:
    agentapi, http = standin
    agentapi.scenario = Scenario(
        prompts=(
            PromptScript(
                think_seconds=0.1,
                lines=("Plan",),
                permission_prompt="Run rm -rf build?",
                settle_seconds=0.1,
            ),
        )
    )
    await http.post("/message", json={"content": "clean", "type": "user"})
    await wait_until(lambda: agentapi.status == "stable")
    assert "Run rm -rf build?" in agentapi.messages[-1]["content"]


def test_preload_history() -> None:
    agentapi = AgentAPIStandIn()
    agentapi.preload(2000, 2048)
    assert len(agentapi.messages) == 2001
    assert all(len(m["content"]) == 2048 for m in agentapi.messages[1:])
    assert [m["id"] for m in agentapi.messages] == list(range(2001))


async def test_refuses_non_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        await run_agentapi_standin(AgentAPIStandIn(), host="0.0.0.0")  # noqa: S104
