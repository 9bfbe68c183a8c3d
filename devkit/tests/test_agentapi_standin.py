"""The AgentAPI stand-in over real loopback sockets, held to AgentAPI's own OpenAPI document.

Every JSON answer any test here receives is validated against AgentAPI's OpenAPI document
(tests/contracts/agentapi-openapi.json) by a response hook, and every `/events` frame any test
reads against the matching `oneOf` schema of the event stream; `test_contract_*` make sure every
route and event kind is covered.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from standins.agentapi import (
    BUSY_MESSAGE,
    EMPTY_MESSAGE,
    SUBSCRIBER_BUFFER,
    UPLOAD_LIMIT,
    AgentAPIStandIn,
    ManualClock,
    go_time,
    main,
    require_loopback,
    run_agentapi_standin,
)
from standins.agentapi.scenario import (
    DEFAULT_FINISH,
    GeneratedOutput,
    PromptScript,
    Scenario,
    ScenarioError,
    box_lines,
    filler_text,
)
from tests.contracts.openapi import Contract, load_spec
from tests.fakes import wait_until

pytestmark = pytest.mark.anyio

LIMIT = 10.0  # seconds: the bound of every async test
# Go's RFC 3339 with nanoseconds: up to nine fraction digits, never a trailing zero.
GO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,8}[1-9])?Z")

Event = tuple[str, dict[str, Any]]


# -- the contract -----------------------------------------------------------------------------


CONTRACT = Contract(load_spec())


async def check_contract(response: httpx.Response) -> None:
    """httpx response hook: hold every JSON answer to the document."""
    media = response.headers.get("content-type", "").split(";")[0]
    if media not in ("application/json", "application/problem+json"):
        return
    await response.aread()
    request = response.request
    CONTRACT.check_answer(
        request.method, request.url.path, response.status_code, media, response.json()
    )


# -- helpers ----------------------------------------------------------------------------------


@asynccontextmanager
async def served(standin: AgentAPIStandIn) -> AsyncIterator[httpx.AsyncClient]:
    """The stand-in on a free loopback port, and a client for it."""
    async with anyio.create_task_group() as group:
        port: int = await group.start(partial(run_agentapi_standin, standin))
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            timeout=5.0,
            event_hooks={"response": [check_contract]},
        ) as http:
            yield http
        group.cancel_scope.cancel()


class EventStream:
    """The frames of one `/events` answer, checked for AgentAPI's framing and the contract."""

    def __init__(self, response: httpx.Response) -> None:
        self._chunks = response.aiter_bytes()
        self._buffer = b""

    async def next(self) -> Event | None:
        """The next event, or None when the stream has ended."""
        while b"\n\n" not in self._buffer:
            chunk = await anext(self._chunks, None)
            if chunk is None:
                assert self._buffer == b"", "the stream ended inside a frame"
                return None
            self._buffer += chunk
        frame, self._buffer = self._buffer.split(b"\n\n", 1)
        # Exactly `event:` and one `data:` line: no id:, no retry:, no comment heartbeat.
        event_line, data_line = frame.decode().split("\n")
        assert event_line.startswith("event: ")
        assert data_line.startswith("data: ")
        name, data = (
            event_line.removeprefix("event: "),
            json.loads(data_line.removeprefix("data: ")),
        )
        CONTRACT.check_event(name, data)
        return name, data

    async def take(self, count: int) -> list[Event]:
        events = []
        for _ in range(count):
            event = await self.next()
            assert event is not None, "the stream ended early"
            events.append(event)
        return events

    async def rest(self) -> list[Event]:
        """Every event until the stream ends."""
        events = []
        while (event := await self.next()) is not None:
            events.append(event)
        return events


@asynccontextmanager
async def subscribed(http: httpx.AsyncClient) -> AsyncIterator[EventStream]:
    async with http.stream("GET", "/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        yield EventStream(response)


def quick(**script: Any) -> Scenario:
    """A short scenario: no typing delay, a brief think, three lines, half a second to settle."""
    prompt = {
        "think_seconds": 0.2,
        "lines": ("one", "two", "three"),
        "lines_per_second": 10.0,
        "finish": "done",
        **script,
    }
    return Scenario(send_seconds=0.0, settle_seconds=0.5, prompts=(PromptScript(**prompt),))


def time_ns(value: str) -> int:
    """Nanoseconds since the epoch of a Go-formatted time (checking the format on the way)."""
    assert GO_TIME.fullmatch(value), value
    whole, _, fraction = value.removesuffix("Z").partition(".")
    seconds = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    return int(seconds) * 1_000_000_000 + int(fraction.ljust(9, "0"))


def prompt(content: str) -> dict[str, str]:
    return {"content": content, "type": "user"}


# -- GET /status, GET /messages, $schema ------------------------------------------------------


async def test_status_and_messages_at_start() -> None:
    with anyio.fail_after(LIMIT):
        async with served(AgentAPIStandIn()) as http:
            status = await http.get("/status")
            messages = await http.get("/messages")
    port = http.base_url.port
    assert status.status_code == 200
    assert status.headers["content-type"] == "application/json"
    assert status.headers["link"] == '</schemas/StatusResponseBody.json>; rel="describedBy"'
    assert list(status.json()) == ["$schema", "status", "agent_type", "transport"]
    assert status.json() == {
        "$schema": f"http://127.0.0.1:{port}/schemas/StatusResponseBody.json",
        "status": "stable",
        "agent_type": "claude",
        "transport": "pty",
    }
    (startup,) = messages.json()["messages"]
    assert messages.json()["$schema"].endswith("/schemas/MessagesResponseBody.json")
    assert startup["id"] == 0
    assert startup["role"] == "agent"
    assert "╭" in startup["content"]
    assert "Welcome" in startup["content"]
    time_ns(startup["time"])


@pytest.mark.parametrize(
    ("host", "scheme"),
    [("localhost:{port}", "http"), ("127.0.0.1:{port}", "http"), ("[::1]:{port}", "https")],
)
async def test_schema_urls_follow_the_host_header_like_huma(host: str, scheme: str) -> None:
    with anyio.fail_after(LIMIT):
        async with served(AgentAPIStandIn()) as http:
            header = host.format(port=http.base_url.port)
            answer = await http.get("/status", headers={"host": header})
            problem = await http.post("/message", json={}, headers={"host": header})
    assert answer.json()["$schema"] == f"{scheme}://{header}/schemas/StatusResponseBody.json"
    assert problem.json()["$schema"] == f"{scheme}://{header}/schemas/ErrorModel.json"


async def test_json_is_encoded_like_go() -> None:
    standin = AgentAPIStandIn()
    standin.append_message("user", "a <b> & c\u2028 — ✓")
    with anyio.fail_after(LIMIT):
        async with served(standin) as http:
            answer = await http.get("/messages")
    assert r'"a \u003cb\u003e \u0026 c\u2028 — ✓"' in answer.text
    assert answer.json()["messages"][1]["content"] == "a <b> & c\u2028 — ✓"


def test_go_time() -> None:
    base = 1_748_772_000 * 1_000_000_000
    assert go_time(base) == "2025-06-01T10:00:00Z"
    assert go_time(base + 123_456_789) == "2025-06-01T10:00:00.123456789Z"
    assert go_time(base + 120_000_000) == "2025-06-01T10:00:00.12Z"
    assert go_time(base + 1) == "2025-06-01T10:00:00.000000001Z"


# -- a scripted turn --------------------------------------------------------------------------


async def test_a_prompt_plays_a_turn_that_rewrites_one_message_in_place() -> None:
    clock = ManualClock()
    scenario = quick(think_seconds=0.3).model_copy(
        update={"send_seconds": 1.0, "settle_seconds": 2.0}
    )
    standin = AgentAPIStandIn(scenario, clock=clock)
    start = clock.now_ns()
    with anyio.fail_after(LIMIT):
        async with served(standin) as http, subscribed(http) as stream:
            assert [name for name, _ in await stream.take(2)] == ["message_update", "status_change"]
            answers: list[httpx.Response] = []

            async def send() -> None:
                answers.append(await http.post("/message", json=prompt("hello")))

            async with anyio.create_task_group() as group:
                group.start_soon(send)
                await standin.wait_for(lambda: standin.status == "running")
                await clock.advance(1.0)  # the prompt is typed: the agent starts on it
            assert answers[0].json() == {
                "$schema": answers[0].json()["$schema"],
                "ok": True,
            }
            assert (await http.get("/status")).json()["status"] == "running"

            await clock.advance(0.7)  # 0.3 s of thinking, three lines at 10 a second, the end
            assert standin.messages[2].content == "one\ntwo\nthree\ndone"
            await clock.advance(1.99)
            status = (await http.get("/status")).json()["status"]
            assert status == "running", "stable only after 2 s of an unchanged screen"
            await clock.advance(0.01)
            assert (await http.get("/status")).json()["status"] == "stable"

            stable = ("status_change", {"status": "stable", "agent_type": "claude"})
            events: list[Event] = []
            while not events or events[-1] != stable:
                events += await stream.take(1)
            final = (await http.get("/messages")).json()["messages"]

    assert events[0] == ("status_change", {"status": "running", "agent_type": "claude"})
    assert events[-1] == ("status_change", {"status": "stable", "agent_type": "claude"})
    user = events[1][1]
    assert user == {"id": 1, "role": "user", "message": "hello", "time": go_time(start)}
    agent = [data for _, data in events[2:-1]]
    assert {(a["id"], a["role"]) for a in agent} == {(2, "agent")}
    assert all("content" not in a for a in agent), "the text field of an event is `message`"
    times = [time_ns(a["time"]) for a in agent]
    assert times == sorted(set(times)), "each rewrite moves the message's time"
    assert times[0] == start + 1_000_000_000
    assert "Thinking" in agent[0]["message"]
    assert all("esc to interrupt" in a["message"] for a in agent[:-1]), "a spinner while working"
    bodies = [a["message"].split("\n\n")[0] for a in agent[4:-1]]
    assert bodies == ["one", "one\ntwo", "one\ntwo\nthree"]
    assert agent[-1]["message"] == "one\ntwo\nthree\ndone"
    assert [m["id"] for m in final] == [0, 1, 2]
    assert final[2]["content"] == agent[-1]["message"]
    assert final[2]["time"] == agent[-1]["time"]


async def test_the_default_scenario_runs_fast_with_a_speed_factor() -> None:
    standin = AgentAPIStandIn(speed=1000.0)  # the real clock; 2 s of settling is 2 ms
    with anyio.fail_after(LIMIT):
        async with served(standin) as http:
            answer = await http.post("/message", json=prompt("Fix the failing date parser test"))
            assert answer.status_code == 200
            await standin.wait_for(lambda: standin.status == "stable")
            messages = (await http.get("/messages")).json()["messages"]
    assert [m["role"] for m in messages] == ["agent", "user", "agent"]
    assert messages[2]["content"].endswith(DEFAULT_FINISH)
    assert "esc to interrupt" not in messages[2]["content"]


async def test_generated_output_makes_a_large_message_of_80_columns() -> None:
    clock = ManualClock()
    script = {"think_seconds": 0.0, "lines": (), "finish": ""}
    scenario = quick(generate=GeneratedOutput(lines=1200), lines_per_second=400.0, **script)
    standin = AgentAPIStandIn(scenario, clock=clock)
    with anyio.fail_after(LIMIT):
        async with served(standin) as http:
            await http.post("/message", json=prompt("build it"))
            await clock.advance(10.0)
            assert standin.status == "stable"
            content = (await http.get("/messages")).json()["messages"][2]["content"]
    assert 80_000 <= len(content.encode()) <= 240_000
    assert all(len(line) <= 80 for line in content.splitlines())
    assert "─" in content


@pytest.mark.parametrize(("key", "approved"), [("1", True), ("\r", True), ("2", False)])
async def test_a_permission_question_reads_stable_until_a_raw_keystroke(
    key: str, approved: bool
) -> None:
    clock = ManualClock()
    scenario = quick(
        think_seconds=0.0,
        lines=("● Bash(rm -rf build)",),
        permission_prompt="Bash command\n\n  rm -rf build",
        after_permission=("  ⎿  (No content)",),
        finish="● Removed build/.",
    )
    standin = AgentAPIStandIn(scenario, clock=clock)
    with anyio.fail_after(LIMIT):
        async with served(standin) as http:
            await http.post("/message", json=prompt("rm -rf build"))
            await clock.advance(0.1 + 0.1 + 0.5)  # the line, the question, unchanged 0.5 s
            assert standin.status == "stable", "a permission question reads stable"
            assert "Do you want to proceed?" in standin.messages[2].content
            await clock.advance(60.0)
            assert standin.status == "stable", "it waits for an answer"
            answer = await http.post("/message", json={"content": key, "type": "raw"})
            assert answer.json()["ok"] is True
            await standin.wait_for(lambda: standin.status == "running")
            await clock.advance(5.0)
            assert standin.status == "stable"
    content = standin.messages[2].content
    assert "Do you want to proceed?" not in content
    assert content.endswith("● Removed build/.") is approved
    assert ("User rejected" in content) is not approved


async def test_a_new_prompt_at_a_permission_question_abandons_it() -> None:
    clock = ManualClock()
    standin = AgentAPIStandIn(quick(think_seconds=0.0, permission_prompt="Allow?"), clock=clock)
    with anyio.fail_after(LIMIT):
        async with served(standin) as http:
            await http.post("/message", json=prompt("first"))
            await clock.advance(10.0)
            assert "Allow?" in standin.messages[2].content
            answer = await http.post("/message", json=prompt("something else"))
            await clock.advance(10.0)
            await http.post("/message", json={"content": "1", "type": "raw"})
            await clock.advance(10.0)
    assert answer.status_code == 200
    assert [m.role for m in standin.messages] == ["agent", "user", "agent", "user", "agent"]
    assert "Do you want to proceed?" in standin.messages[2].content, "left as it was"
    assert standin.messages[4].content.endswith("done")


async def test_the_agent_reads_running_while_it_starts_up() -> None:
    clock = ManualClock()
    standin = AgentAPIStandIn(Scenario(startup_seconds=3.0), clock=clock)
    with anyio.fail_after(LIMIT):
        async with served(standin) as http:
            assert (await http.get("/status")).json()["status"] == "running"
            refused = await http.post("/message", json=prompt("too early"))
            await clock.advance(3.0)
            assert (await http.get("/status")).json()["status"] == "stable"
    assert refused.status_code == 500
    assert BUSY_MESSAGE in refused.json()["errors"][0]["message"]


async def test_a_raw_message_is_accepted_and_kept_out_of_the_history() -> None:
    standin = AgentAPIStandIn()
    with anyio.fail_after(LIMIT):
        async with served(standin) as http:
            answer = await http.post("/message", json={"content": "\x1b[A", "type": "raw"})
    assert answer.status_code == 200
    assert answer.json()["ok"] is True
    assert len(standin.messages) == 1
    assert standin.status == "stable"


# -- the send lock and a send while running ---------------------------------------------------


async def test_the_send_lock_blocks_status_and_messages_but_not_events() -> None:
    clock = ManualClock()
    standin = AgentAPIStandIn(quick().model_copy(update={"send_seconds": 5.0}), clock=clock)
    done: list[str] = []
    answers: dict[str, httpx.Response] = {}
    with anyio.fail_after(LIMIT):
        async with served(standin) as http:

            async def call(name: str, method: str, path: str, **kwargs: Any) -> None:
                answers[name] = await http.request(method, path, **kwargs)
                done.append(name)

            async with anyio.create_task_group() as group:
                group.start_soon(partial(call, "send", "POST", "/message", json=prompt("go")))
                await standin.wait_for(lambda: standin.status == "running")  # typing, lock held
                group.start_soon(call, "status", "GET", "/status")
                group.start_soon(call, "messages", "GET", "/messages")
                await wait_until(lambda: standin.lock_waiters == 2, within=LIMIT)
                async with subscribed(http) as stream:
                    replay = await stream.take(2)
                assert replay[1] == ("status_change", {"status": "running", "agent_type": "claude"})
                assert done == [], "GET /status and GET /messages wait for the send"
                await clock.advance(5.0)
    assert done[0] == "send"
    assert sorted(done[1:]) == ["messages", "status"]
    assert answers["status"].json()["status"] == "running"
    roles = [m["role"] for m in answers["messages"].json()["messages"]]
    assert roles == ["agent", "user", "agent"]


async def test_a_send_while_running_is_a_500_problem() -> None:
    standin = AgentAPIStandIn(quick(think_seconds=3600.0))  # the turn outlives the test
    with anyio.fail_after(LIMIT):
        async with served(standin) as http:
            assert (await http.post("/message", json=prompt("first"))).status_code == 200
            assert standin.status == "running"
            answer = await http.post("/message", json=prompt("second"))
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["link"] == '</schemas/ErrorModel.json>; rel="describedBy"'
    body = answer.json()
    assert BUSY_MESSAGE in body["errors"][0]["message"]
    assert body == {
        "$schema": body["$schema"],
        "title": "Internal Server Error",
        "status": 500,
        "detail": "unexpected error occurred",
        "errors": [{"message": f"failed to send message: {BUSY_MESSAGE}"}],
    }
    assert [m.content for m in standin.messages if m.role == "user"] == ["first"]


async def test_a_status_set_from_python_is_what_a_send_sees() -> None:
    standin = AgentAPIStandIn()
    standin.set_status("running")
    with anyio.fail_after(LIMIT):
        async with served(standin) as http:
            answer = await http.post("/message", json=prompt("hello"))
    assert answer.status_code == 500
    assert BUSY_MESSAGE in answer.json()["errors"][0]["message"]


async def test_a_prompt_is_trimmed_and_an_empty_one_is_a_500() -> None:
    clock = ManualClock()
    standin = AgentAPIStandIn(quick(), clock=clock)
    with anyio.fail_after(LIMIT):
        async with served(standin) as http:
            empty = await http.post("/message", json=prompt(" \n\t "))
            trimmed = await http.post("/message", json=prompt("  hello \n"))
    assert empty.status_code == 500
    assert empty.json()["errors"] == [{"message": f"failed to send message: {EMPTY_MESSAGE}"}]
    assert trimmed.status_code == 200
    assert standin.messages[1].content == "hello"


# -- request validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "location", "message"),
    [
        ({"content": "x"}, "body", "expected required property type to be present"),
        ({"type": "user"}, "body", "expected required property content to be present"),
        ({"content": 5, "type": "user"}, "body.content", "expected string"),
        ({"content": "x", "type": "shout"}, "body.type", 'expected value to be one of "user, raw"'),
        ({"content": "x", "type": "user", "extra": 1}, "body.extra", "unexpected property"),
        (["not", "an", "object"], "body", "expected object"),
    ],
)
async def test_schema_violations_are_422_problems(
    body: object, location: str, message: str
) -> None:
    standin = AgentAPIStandIn()
    with anyio.fail_after(LIMIT):
        async with served(standin) as http:
            answer = await http.post("/message", json=body)
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert (problem["title"], problem["status"], problem["detail"]) == (
        "Unprocessable Entity",
        422,
        "validation failed",
    )
    assert {(e["location"], e["message"]) for e in problem["errors"]} == {(location, message)}
    assert len(standin.messages) == 1


@pytest.mark.parametrize(
    ("content", "content_type", "status", "detail"),
    [
        # huma answers 400, not 422, when the body is not JSON at all, or empty.
        (b"{nope", "application/json", 400, "validation failed"),
        (b"", "application/json", 400, "request body is required"),
        (b'{"content":"x","type":"user"}', "text/plain", 415, "validation failed"),
        (
            json.dumps(prompt("x" * (1 << 20))).encode(),
            "application/json",
            413,
            "request body is too large limit=1048576 bytes",
        ),
    ],
)
async def test_bodies_huma_refuses_before_validation(
    content: bytes, content_type: str, status: int, detail: str
) -> None:
    with anyio.fail_after(LIMIT):
        async with served(AgentAPIStandIn()) as http:
            answer = await http.post(
                "/message", content=content, headers={"content-type": content_type}
            )
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"] == detail


async def test_a_schema_key_in_the_request_is_allowed() -> None:
    body = {**prompt("hi"), "$schema": "http://localhost:3284/schemas/MessageRequestBody.json"}
    with anyio.fail_after(LIMIT):
        async with served(AgentAPIStandIn(quick(), clock=ManualClock())) as http:
            answer = await http.post("/message", json=body)
    assert answer.status_code == 200


# -- Host allowlist and routing ---------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:3284", "localhost.evil", "10.0.0.1:80", "localhost:http", ""],
)
async def test_a_host_header_off_the_allowlist_is_a_plain_400(host: str) -> None:
    with anyio.fail_after(LIMIT):
        async with served(AgentAPIStandIn()) as http:
            answers = [
                await http.get(path, headers={"host": host}) for path in ("/status", "/nope")
            ]
    for answer in answers:
        assert answer.status_code == 400
        assert answer.headers["content-type"] == "text/plain; charset=utf-8"
        assert answer.text == "Invalid host header. Allowed hosts: localhost, 127.0.0.1, ::1\n"


@pytest.mark.parametrize("host", ["localhost", "LocalHost:1", "127.0.0.1:3284", "[::1]", "[::1]:9"])
async def test_allowed_hosts_with_or_without_a_port(host: str) -> None:
    with anyio.fail_after(LIMIT):
        async with served(AgentAPIStandIn()) as http:
            answer = await http.get("/status", headers={"host": host})
    assert answer.status_code == 200


async def test_unknown_routes_are_404_and_wrong_methods_405() -> None:
    standin = AgentAPIStandIn()
    with anyio.fail_after(LIMIT):
        async with served(standin) as http:
            missing = await http.get("/nope")
            trailing = await http.get("/status/")
            wrong = await http.delete("/status")
    for answer in (missing, trailing):
        assert answer.status_code == 404
        assert answer.headers["content-type"] == "text/plain; charset=utf-8"
        assert answer.text == "404 page not found\n"
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET"
    assert wrong.content == b""
    recorded = [(r.method, r.path, r.status) for r in standin.requests]
    assert recorded == [("GET", "/nope", 404), ("GET", "/status/", 404), ("DELETE", "/status", 405)]


# -- /events ----------------------------------------------------------------------------------


async def test_events_replay_the_state_on_connect_then_send_changes_only() -> None:
    standin = AgentAPIStandIn()
    standin.append_message("user", "first")
    standin.append_message("agent", "reply")
    standin.add_error("rate limited", "warning")
    standin.add_error("crashed")
    with anyio.fail_after(LIMIT):
        async with served(standin) as http:
            async with subscribed(http) as stream:
                replay = await stream.take(6)
                standin.rewrite_message(2, "reply, rewritten")
                standin.set_status("running")
                standin.add_error("again")
                standin.append_message("user", "second")
                live = await stream.take(4)
                assert standin.subscriber_backlogs == [0]
            async with subscribed(http) as again:
                reconnect = await again.take(8)
    names = [name for name, _ in replay]
    assert names == ["message_update"] * 3 + ["status_change"] + ["agent_error"] * 2
    assert [data["id"] for _, data in replay[:3]] == [0, 1, 2]
    assert replay[1][1]["message"] == "first"
    assert replay[3][1] == {"status": "stable", "agent_type": "claude"}
    assert [(d["message"], d["level"]) for _, d in replay[4:]] == [
        ("rate limited", "warning"),
        ("crashed", "error"),
    ]
    assert [name for name, _ in live] == [
        "message_update",
        "status_change",
        "agent_error",
        "message_update",
    ]
    assert live[0][1]["id"] == 2
    assert live[0][1]["message"] == "reply, rewritten"
    assert live[3][1]["id"] == 3
    assert [name for name, _ in reconnect] == (
        ["message_update"] * 4 + ["status_change"] + ["agent_error"] * 3
    ), "a reconnect replays everything again"


async def test_close_streams_ends_every_stream_like_a_restart() -> None:
    standin = AgentAPIStandIn()
    with anyio.fail_after(LIMIT):
        async with served(standin) as http:
            async with subscribed(http) as one, subscribed(http) as two:
                await one.take(2)
                await two.take(2)
                assert standin.subscriber_count == 2
                standin.close_streams()
                assert await one.rest() == []
                assert await two.rest() == []
            await standin.wait_for(lambda: standin.subscriber_count == 0)
            async with subscribed(http) as three:
                assert len(await three.take(2)) == 2


async def test_a_subscriber_more_than_1024_events_behind_is_dropped() -> None:
    standin = AgentAPIStandIn()
    with anyio.fail_after(LIMIT):
        async with served(standin) as http, subscribed(http) as stream:
            await stream.take(2)
            for i in range(SUBSCRIBER_BUFFER + 1):  # no await: the subscriber cannot keep up
                standin.rewrite_message(0, f"update {i}")
            assert standin.subscriber_count == 0
            rest = await stream.rest()
    assert len(rest) == SUBSCRIBER_BUFFER, "what was queued arrives, then the stream ends"
    assert rest[-1][1]["message"] == f"update {SUBSCRIBER_BUFFER - 1}"


async def test_a_subscriber_that_keeps_up_is_not_dropped() -> None:
    standin = AgentAPIStandIn()
    received: list[Event] = []
    with anyio.fail_after(LIMIT):
        async with served(standin) as http, subscribed(http) as stream:
            await stream.take(2)

            async def read(count: int) -> None:
                received.extend(await stream.take(count))

            async with anyio.create_task_group() as group:
                group.start_soon(read, 3 * 600)
                for burst in range(3):
                    for i in range(600):
                        standin.rewrite_message(0, f"burst {burst} update {i}")
                    await wait_until(lambda: max(standin.subscriber_backlogs) == 0, within=LIMIT)
            assert standin.subscriber_count == 1
    assert received[-1][1]["message"] == "burst 2 update 599"


# -- upload -----------------------------------------------------------------------------------


async def test_upload_stores_the_file_under_a_checksum_directory(tmp_path: Path) -> None:
    standin = AgentAPIStandIn(upload_dir=tmp_path)
    with anyio.fail_after(LIMIT):
        async with served(standin) as http:
            answer = await http.post("/upload", files={"file": ("../../etc/notes.txt", b"hello")})
            exact = await http.post("/upload", files={"file": ("big.bin", b"\0" * UPLOAD_LIMIT)})
    assert answer.status_code == 200
    body = answer.json()
    assert body["$schema"].endswith("/schemas/UploadResponseBody.json")
    assert body["ok"] is True
    stored = Path(body["filePath"])
    assert stored.name == "notes.txt"
    assert stored.parent.parent == tmp_path
    assert re.fullmatch(r"[0-9a-f]{16}", stored.parent.name)
    assert await anyio.Path(stored).read_bytes() == b"hello"
    assert exact.status_code == 200, "exactly 10 MiB is accepted"


@pytest.mark.parametrize(
    ("kwargs", "status", "location", "message"),
    [
        ({"files": {"other": ("x.txt", b"x")}}, 422, "file", "File required"),
        (
            {"data": {"file": "not a file"}, "files": {"x": ("x", b"")}},
            422,
            "file",
            "File required",
        ),
        (
            {"files": [("file", ("a.txt", b"a")), ("file", ("b.txt", b"b"))]},
            422,
            "file",
            "Multiple files received but only one was expected",
        ),
        (
            {"content": b"raw", "headers": {"content-type": "application/octet-stream"}},
            422,
            "body",
            "cannot read multipart form: request Content-Type isn't multipart/form-data",
        ),
        (
            {"content": b"x", "headers": {"content-type": "multipart/form-data"}},
            422,
            "body",
            "cannot read multipart form: no multipart boundary param in Content-Type",
        ),
    ],
)
async def test_upload_without_exactly_one_file_is_a_422(
    kwargs: dict[str, Any], status: int, location: str, message: str
) -> None:
    with anyio.fail_after(LIMIT):
        async with served(AgentAPIStandIn()) as http:
            answer = await http.post("/upload", **kwargs)
    assert answer.status_code == status
    assert answer.json()["errors"] == [{"location": location, "message": message}]


async def test_upload_over_10_mib_is_a_400_and_the_temporary_directory_goes_away() -> None:
    standin = AgentAPIStandIn()
    with anyio.fail_after(LIMIT):
        async with served(standin) as http:
            over = await http.post("/upload", files={"file": ("a.bin", b"\0" * (UPLOAD_LIMIT + 1))})
            small = await http.post("/upload", files={"file": ("a.txt", b"ok")})
            uploads = standin.upload_dir
    assert over.status_code == 400
    assert over.json()["detail"] == "file size exceeds 10MB limit"
    assert small.status_code == 200
    stored = anyio.Path(small.json()["filePath"])
    assert stored.is_relative_to(uploads)
    assert not await stored.exists(), "removed when serving stops"


# -- histories and big messages ---------------------------------------------------------------


async def test_a_preloaded_history_and_a_5_mb_message_come_back_whole() -> None:
    standin = AgentAPIStandIn()
    standin.preload(2000, 2048)
    big = filler_text(5_000_000, "big")
    standin.append_message("agent", big)
    with anyio.fail_after(LIMIT):
        async with served(standin) as http:
            messages = (await http.get("/messages")).json()["messages"]
    assert [m["id"] for m in messages] == list(range(2002))
    assert all(len(m["content"].encode()) == 2048 for m in messages[1:2001])
    assert [m["role"] for m in messages[1:5]] == ["user", "agent", "user", "agent"]
    assert messages[2001]["content"] == big
    assert len(big.encode()) == 5_000_000


# -- scenarios --------------------------------------------------------------------------------


def test_a_scenario_file_is_read_and_matched(tmp_path: Path) -> None:
    path = tmp_path / "scenario.json"
    path.write_text(
        json.dumps(
            {
                "agent_type": "goose",
                "settle_seconds": 0.5,
                "prompts": [
                    {"match": "deploy", "think_seconds": 0, "permission_prompt": "Allow?"},
                    {"match": "logs", "lines": [], "generate": {"lines": 400}},
                    {"match": "default", "lines": ["ok"], "finish": "Done."},
                ],
            }
        )
    )
    scenario = Scenario.load(path)
    assert scenario.agent_type == "goose"
    assert scenario.for_prompt("please deploy it").permission_prompt == "Allow?"
    assert len(scenario.for_prompt("show the logs").output_lines()) == 400
    assert scenario.for_prompt("hello").lines == ("ok",)
    assert AgentAPIStandIn(scenario).agent_type == "goose"
    assert AgentAPIStandIn(scenario, agent_type="aider").agent_type == "aider"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{broken", "not JSON"),
        ('{"prompts": [{"think": 1}]}', "prompts.0.think"),
        ('{"settle_seconds": -1}', "settle_seconds"),
        ('{"prompts": [{"lines_per_second": 0}]}', "lines_per_second"),
    ],
)
def test_a_bad_scenario_file_says_what_is_wrong(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "scenario.json"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=re.escape(problem)) as raised:
        Scenario.load(path)
    assert "scenario.json" in str(raised.value)
    with pytest.raises(ScenarioError, match="No such file"):
        Scenario.load(tmp_path / "missing.json")


def test_box_lines_are_80_columns_and_about_186_bytes() -> None:
    lines = box_lines(1200)
    assert {len(line) for line in lines} == {80}
    assert lines[0].startswith("╭─ build output")
    assert lines[-1].startswith("╰")
    assert 200_000 < len("\n".join(lines).encode()) < 240_000
    assert [len(filler_text(n, "label").encode()) for n in (0, 1, 5, 2048)] == [0, 1, 5, 2048]


# -- the clock --------------------------------------------------------------------------------


async def test_a_manual_clock_wakes_sleepers_in_order_only_when_advanced() -> None:
    clock = ManualClock()
    woken: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woken.append(name)

    with anyio.fail_after(LIMIT):
        async with anyio.create_task_group() as group:
            group.start_soon(sleeper, "late", 2.0)
            group.start_soon(sleeper, "early", 1.0)
            await wait_until(lambda: clock.sleepers == 2, within=LIMIT)
            await clock.advance(0.5)
            assert woken == []
            await clock.advance(2.0)
            assert woken == ["early", "late"]
            with anyio.move_on_after(0) as scope:
                await clock.sleep(1.0)
            assert scope.cancelled_caught
            assert clock.sleepers == 0, "a cancelled sleep forgets its deadline"
    assert clock.now_ns() == 1_748_772_002_500_000_000


# -- serving, the CLI -------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com", ""])  # noqa: S104
async def test_refuses_to_listen_off_loopback(host: str) -> None:
    with anyio.fail_after(LIMIT), pytest.raises(ValueError, match="loopback only"):
        await run_agentapi_standin(AgentAPIStandIn(), host=host)


def test_loopback_addresses_are_allowed() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        require_loopback(host)


def test_main_refuses_bad_arguments(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for argv, problem in (
        (["--host", "0.0.0.0"], "loopback only"),  # noqa: S104
        (["--speed", "0"], "--speed"),
        (["--scenario", str(tmp_path / "missing.json")], "missing.json"),
    ):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
        assert problem in capsys.readouterr().err


async def test_the_cli_serves_until_sigterm_and_exits_0(tmp_path: Path) -> None:
    port_file = anyio.Path(tmp_path / "port")
    command = [sys.executable, "-m", "standins", "agentapi", "--port", "0"]
    command += ["--port-file", str(port_file), "--agent-type", "goose"]
    command += ["--preload-messages", "4", "--preload-size", "100"]
    with anyio.fail_after(LIMIT):
        process = await anyio.open_process(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            while not await port_file.exists():
                assert process.returncode is None, "the stand-in exited early"
                await anyio.sleep(0.01)
            port = int(await port_file.read_text())
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", event_hooks={"response": [check_contract]}
            ) as http:
                status = (await http.get("/status")).json()
                messages = (await http.get("/messages")).json()["messages"]
                async with subscribed(http) as stream:
                    await stream.take(len(messages) + 1)
                    process.send_signal(signal.SIGTERM)
                    assert await stream.rest() == [], "the event stream simply ends"
            assert await process.wait() == 0
            assert process.stderr is not None
            stderr = b"".join([chunk async for chunk in process.stderr]).decode()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            await process.aclose()
    assert status["agent_type"] == "goose"
    assert [len(m["content"].encode()) for m in messages[1:]] == [100] * 4
    assert f"listening on http://127.0.0.1:{port}" in stderr
    assert "GET /status 200" in stderr


# -- the contract, as a whole -----------------------------------------------------------------


async def test_contract_every_route_and_event_was_checked_against_the_document() -> None:
    assert set(CONTRACT.spec["paths"]) == {"/status", "/messages", "/message", "/upload", "/events"}
    standin = AgentAPIStandIn(quick(think_seconds=3600.0))
    with anyio.fail_after(LIMIT):
        async with served(standin) as http:
            await http.get("/status")
            await http.get("/messages")
            await http.post("/message", json={"content": 1})
            await http.post("/upload", files={"file": ("a.txt", b"a")})
            await http.post("/upload", files={"nope": ("a.txt", b"a")})
            async with subscribed(http) as stream:
                standin.add_error("boom")
                await stream.take(3)
                await http.post("/message", json=prompt("go"))
                await http.post("/message", json=prompt("again"))
                await stream.take(3)
    assert {
        ("GET", "/status", 200),
        ("GET", "/messages", 200),
        ("POST", "/message", 200),
        ("POST", "/message", 422),
        ("POST", "/message", 500),
        ("POST", "/upload", 200),
        ("POST", "/upload", 422),
    } <= CONTRACT.answers
    assert set(CONTRACT.events) == {"message_update", "status_change", "agent_error"}
    assert CONTRACT.event_names == set(CONTRACT.events)
