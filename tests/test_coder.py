"""The Coder client against an in-process fake: every answer in contracts.md section 2."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.coder.httpapi import CoderClient
from agent.errors import (
    CutOff,
    RateLimited,
    Rejected,
    RemoteError,
    ServerError,
    TransportError,
    TryAgain,
    Unauthorized,
    Unsupported,
)
from agent.models import AppState, AppStatus, clean_text, shorten
from agent.retry import Backoff, deliver
from agent.wire import parse_retry_after
from tests.fakes import TOKEN, FakeCoder, Scripted, wait_until
from tests.manualclock import ManualClock

TASK = "6f1c2a3b-4d5e-4f60-8a1b-2c3d4e5f6a7b"
pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("state", "wire"),
    [("working", "working"), ("idle", "idle"), ("complete", "complete"), ("failed", "failure")],
)
async def test_app_status_wire_body(state: str, wire: str) -> None:
    fake = FakeCoder()
    async with fake.client() as http:
        await CoderClient(http, "claude").patch_app_status(
            AppStatus(AppState(state), "hello", "https://x/pr/1")
        )
    (request,) = fake.requests
    assert request.method == "PATCH"
    assert request.path == "/api/v2/workspaceagents/me/app-status"
    assert request.headers["coder-session-token"] == TOKEN
    assert request.json() == {
        "app_slug": "claude",
        "state": wire,
        "message": "hello",
        "uri": "https://x/pr/1",
    }


async def test_long_message_is_shortened_not_rejected() -> None:
    fake = FakeCoder()
    async with fake.client() as http:
        await CoderClient(http, "a").patch_app_status(AppStatus(AppState.WORKING, "é" * 200))
    sent = fake.requests[0].json()["message"]
    assert len(sent.encode()) <= 160
    assert sent.endswith("…")
    assert sent.startswith("éé")


def test_shorten_edges() -> None:
    assert shorten("x" * 160) == "x" * 160
    assert len(shorten("x" * 161).encode()) == 160
    assert shorten("") == ""
    emoji = shorten("👍" * 100)
    assert len(emoji.encode()) <= 160
    assert set(emoji[:-1]) == {"👍"}


@given(st.text(max_size=400))
def test_shorten_property(text: str) -> None:
    out = shorten(text)
    assert len(out.encode("utf-8")) <= 160  # strict: nothing unencodable is left
    cleaned = clean_text(text)
    if len(cleaned.encode("utf-8")) <= 160:
        assert out == cleaned
    else:
        assert out.endswith("…")
        assert cleaned.startswith(out[:-1])


async def test_snapshot_upload_request() -> None:
    fake = FakeCoder()
    async with fake.client() as http:
        await CoderClient(http).upload_log_snapshot(TASK, b'{"messages":[]}')
    (request,) = fake.requests
    assert request.method == "POST"
    assert request.path == f"/api/v2/workspaceagents/me/tasks/{TASK}/log-snapshot"
    assert request.query == "format=agentapi"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["coder-session-token"] == TOKEN
    assert request.body == b'{"messages":[]}'


@pytest.mark.parametrize(
    ("answer", "error", "words"),
    [
        (Scripted(400, b'{"message":"Failed to decode request payload."}'), Rejected, "decode"),
        (Scripted(401, b'{"message":"Invalid token"}'), Unauthorized, "Invalid token"),
        (Scripted(404, b'{"message":"Resource not found"}'), Unsupported, "not found"),
        (Scripted(500, b"boom"), ServerError, "boom"),
        (Scripted(503, b""), ServerError, "503"),
        (Scripted(429, b"slow down", {"retry-after": "7"}), RateLimited, "slow down"),
        (Scripted(307, b"", {"location": "https://evil.test/"}), Rejected, "redirect"),
        (
            Scripted(0, transport_error=True),
            TransportError,
            "POST log-snapshot http://coder.test/api/v2/workspaceagents/me/tasks/",
        ),
    ],
)
async def test_snapshot_errors_map_to_the_tree(
    answer: Scripted, error: type[Exception], words: str
) -> None:
    fake = FakeCoder()
    fake.script.append(answer)
    async with fake.client() as http:
        with pytest.raises(error) as caught:
            await CoderClient(http).upload_log_snapshot(TASK, b"{}")
    assert words in str(caught.value)
    assert TOKEN not in str(caught.value)
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after == 7.0


async def test_an_error_names_the_url_requested_under_a_base_path() -> None:
    # httpx appends the path to the base URL's own path (a Coder behind a path prefix); the
    # error must name that URL, not the one URL.join would make without the prefix.
    fake = FakeCoder()
    fake.script.append(Scripted(0, transport_error=True))
    async with httpx.AsyncClient(
        base_url="http://coder.test/prefix", transport=fake.transport()
    ) as http:
        with pytest.raises(TransportError) as caught:
            await CoderClient(http).upload_log_snapshot(TASK, b"{}")
    assert fake.requests[0].path.startswith("/prefix/api/v2/")
    assert f"http://coder.test/prefix/api/v2/workspaceagents/me/tasks/{TASK}/" in str(caught.value)


async def test_app_status_404_is_a_rejection_not_unsupported() -> None:
    fake = FakeCoder()
    fake.script.append(Scripted(404, b"{}"))
    async with fake.client() as http:
        with pytest.raises(Rejected):
            await CoderClient(http, "a").patch_app_status(AppStatus(AppState.IDLE))


async def test_app_status_400_carries_the_server_message() -> None:
    fake = FakeCoder()
    fake.script.append(Scripted(400, b'{"message":"No app found with slug \\"nope\\""}'))
    async with fake.client() as http:
        with pytest.raises(Rejected, match='No app found with slug "nope"'):
            await CoderClient(http, "nope").patch_app_status(AppStatus(AppState.IDLE))


async def test_redirect_is_not_followed() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(302, headers={"location": "https://elsewhere.test/steal"})

    async with httpx.AsyncClient(
        base_url="https://coder.test", transport=httpx.MockTransport(handler)
    ) as http:
        with pytest.raises(Rejected):
            await CoderClient(http, "a").patch_app_status(AppStatus(AppState.IDLE))
    assert seen == ["https://coder.test/api/v2/workspaceagents/me/app-status"]


def test_retry_after_forms() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    http_date = "Wed, 21 Oct 2015 07:28:10 GMT"
    assert parse_retry_after(http_date, now=1445412480.0) == 10.0


async def test_deliver_retries_try_again_until_success() -> None:
    fake = FakeCoder()
    fake.script += [Scripted(503), Scripted(0, transport_error=True)]
    retries: list[float] = []
    async with fake.client() as http:
        client = CoderClient(http)
        await deliver(
            lambda: client.upload_log_snapshot(TASK, b"{}"),
            deadline=anyio.current_time() + 5,
            backoff=Backoff(base=0.001, cap=0.002),
            on_retry=lambda exc, wait: retries.append(wait),
        )
    assert len(fake.requests) == 3
    assert len(retries) == 2
    assert fake.snapshots == [b"{}"]


@pytest.mark.parametrize("status", [400, 401, 404])
async def test_deliver_never_retries_a_rejection(status: int) -> None:
    fake = FakeCoder()
    fake.script.append(Scripted(status))
    async with fake.client() as http:
        client = CoderClient(http)
        with pytest.raises((Rejected, Unsupported)):
            await deliver(
                lambda: client.upload_log_snapshot(TASK, b"{}"),
                deadline=anyio.current_time() + 5,
                backoff=Backoff(base=0.001, cap=0.002),
            )
    assert len(fake.requests) == 1


async def test_deliver_stops_before_the_deadline() -> None:
    # Every wait is taken on the manual clock, moved by this test from one due time to the
    # next: the deadline is checked exactly, whatever the machine is doing.
    fake = FakeCoder()
    fake.script += [Scripted(503)] * 1000
    clock = ManualClock(start=50.0)
    planned: list[float] = []  # when each retry's wait would end
    failed: list[BaseException] = []

    def on_retry(exc: RemoteError, wait: float) -> None:
        planned.append(clock.now() + wait)

    with anyio.fail_after(10):
        async with fake.client() as http, anyio.create_task_group() as group:
            client = CoderClient(http, clock=clock)

            async def call() -> None:
                try:
                    await deliver(
                        lambda: client.upload_log_snapshot(TASK, b"{}"),
                        deadline=50.2,
                        backoff=Backoff(base=0.01, cap=0.05),
                        clock=clock,
                        on_retry=on_retry,
                    )
                except TryAgain as exc:
                    failed.append(exc)

            group.start_soon(call)
            while not failed:
                await wait_until(lambda: bool(failed) or clock.sleepers > 0)
                if clock.sleepers:
                    await clock.advance_to_next()
    assert planned
    assert all(end < 50.2 for end in planned), "no wait is planned past the deadline"
    assert clock.now() < 50.2
    assert len(fake.requests) == len(planned) + 1 >= 3


async def test_deliver_honours_retry_after_only_when_it_fits() -> None:
    fake = FakeCoder()
    fake.script.append(Scripted(429, headers={"retry-after": "30"}))
    with anyio.fail_after(2):
        async with fake.client() as http:
            client = CoderClient(http)
            with pytest.raises(RateLimited):
                await deliver(
                    lambda: client.upload_log_snapshot(TASK, b"{}"),
                    deadline=anyio.current_time() + 1,
                )
    assert len(fake.requests) == 1


@asynccontextmanager
async def delivering(
    fake: FakeCoder, clock: ManualClock, deadline: float
) -> AsyncIterator[list[BaseException]]:
    """An upload delivered on `clock` in the background; the list gets what it failed with."""
    failed: list[BaseException] = []
    async with fake.client() as http, anyio.create_task_group() as group:
        client = CoderClient(http, clock=clock)

        async def call() -> None:
            try:
                await deliver(
                    lambda: client.upload_log_snapshot(TASK, b"{}"), deadline=deadline, clock=clock
                )
            except TransportError as exc:
                failed.append(exc)

        group.start_soon(call)
        yield failed


async def test_deliver_cuts_a_slow_attempt_at_the_deadline() -> None:
    fake = FakeCoder()
    fake.script.append(Scripted(204, delay=3600))  # answers long after any deadline here
    clock = ManualClock()
    with anyio.fail_after(10):
        async with delivering(fake, clock, deadline=0.1) as failed:
            await wait_until(lambda: len(fake.requests) == 1)
            clock.advance(0.09)
            await anyio.wait_all_tasks_blocked()
            assert failed == [], "not cut before the deadline"
            assert await clock.advance_to_next() == pytest.approx(0.1)
    assert len(failed) == 1
    assert "deadline" in str(failed[0])


async def test_deliver_cut_off_at_the_deadline_names_what_the_attempt_before_told() -> None:
    # A 503 with its words, then an attempt the delivery's deadline (1 s, shorter than the
    # request's own) cuts: the error raised names both.
    fake = FakeCoder()
    fake.script += [Scripted(503, b'{"message": "Database is down"}'), Scripted(204, delay=3600)]
    clock = ManualClock()
    with anyio.fail_after(10):
        async with delivering(fake, clock, deadline=1.0) as failed:
            while not failed:
                await wait_until(lambda: bool(failed) or clock.next_due() is not None)
                if not failed:
                    await anyio.wait_all_tasks_blocked()
                    await clock.advance_to_next()
    (error,) = failed
    assert isinstance(error, CutOff)
    assert "no answer before the deadline" in str(error)
    assert "Database is down" in str(error)
    assert len(fake.requests) == 2


async def test_missing_slug_is_a_rejection() -> None:
    fake = FakeCoder()
    async with fake.client() as http:
        with pytest.raises(Rejected, match="no app slug"):
            await CoderClient(http, None).patch_app_status(AppStatus(AppState.IDLE))
    assert fake.requests == []


def test_wire_words() -> None:
    assert [s.wire for s in AppState] == ["working", "idle", "complete", "failure"]
    assert json.dumps(AppState.FAILED.value) == '"failed"'
