"""The stand-in's task page in a real headless Chromium.

The page is served on loopback by the Coder stand-in; Chromium loads it with a virtual time
budget (timers run as fast as the page lets them, network fetches are waited for) and dumps the
DOM, which is parsed here. Chromium runs as a subprocess while the server keeps serving on the
test's event loop. Install it with `apt-get install chromium` (Debian); without it the browser
tests are skipped.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from standins.coder import CoderStandIn, run_coder_standin
from standins.coder.store import Store, Task
from standins.http import Handler, Request, Response, json_response, serve

TOKEN = "page-token-8e21"
TASK = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"
TIME = "2025-06-01T10:00:00Z"
STATUS = "/api/v2/workspaceagents/me/app-status"
SNAPSHOT = f"/api/v2/workspaceagents/me/tasks/{TASK}/log-snapshot?format=agentapi"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (Debian: apt-get install chromium); the page test needs it",
)
HOSTILE_PROMPT = "<script>window.pwned = 1</script> please fix <img src=x onerror=alert(1)>"
HOSTILE_ANSWER = "<b>bold</b> & done\n╭────╮\n│ ok │\n╰────╯"
HOSTILE_STATUS = "Tests <b>fail</b> & stop"

pytestmark = pytest.mark.anyio


# -- a small DOM, from Chromium's --dump-dom output --------------------------------------------


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def all(self, match: Callable[[Node], bool]) -> list[Node]:
        found = [self] if match(self) else []
        for child in self.children:
            if isinstance(child, Node):
                found += child.all(match)
        return found

    def by_id(self, ident: str) -> Node:
        (node,) = self.all(lambda n: n.attrs.get("id") == ident)
        return node

    def tags(self, tag: str) -> list[Node]:
        return self.all(lambda n: n.tag == tag)


_VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "wbr",
}


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(html: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


# -- serving and browsing -------------------------------------------------------------------------


@dataclass
class FakeAgentAPI:
    messages: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: Request) -> Response:
        if (request.method, request.path) == ("GET", "/messages"):
            return json_response({"messages": self.messages})
        return json_response({"title": "Not Found"}, status=404)


@dataclass
class Page:
    standin: CoderStandIn
    url: str
    base: str
    agentapi: FakeAgentAPI
    http: httpx.AsyncClient

    async def status(self, state: str, message: str) -> None:
        body = {"app_slug": "claude", "state": state, "message": message, "uri": ""}
        answer = await self.http.patch(STATUS, json=body, headers={"Coder-Session-Token": TOKEN})
        assert answer.status_code == 200, answer.text

    async def snapshot(self, messages: list[dict[str, Any]]) -> None:
        answer = await self.http.post(
            SNAPSHOT,
            content=json.dumps({"messages": messages}).encode(),
            headers={"Coder-Session-Token": TOKEN},
        )
        assert answer.status_code == 204, answer.text

    async def task_status(self, status: str) -> None:
        answer = await self.http.post(f"/dev/tasks/{TASK}/status", json={"status": status})
        assert answer.status_code == 200, answer.text


@asynccontextmanager
async def serving(
    tmp_path: Path, wrap: Callable[[CoderStandIn, Handler], Handler] | None = None
) -> AsyncIterator[Page]:
    """The stand-in on loopback (its handler optionally wrapped) and a fake AgentAPI."""
    agentapi = FakeAgentAPI()
    store = Store(tmp_path / "coder.db")
    try:
        async with anyio.create_task_group() as group:
            agentapi_port = await group.start(partial(serve, agentapi.handle))
            agentapi_url = f"http://127.0.0.1:{agentapi_port}"
            task = Task(TASK, "alice", "page-test", "active", ("claude",), agentapi_url)
            standin = CoderStandIn(store, TOKEN, [task])
            if wrap is None:
                port = await group.start(partial(run_coder_standin, standin))
            else:
                port = await group.start(partial(serve, wrap(standin, standin.handle)))
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, timeout=5, trust_env=False) as http:
                yield Page(standin, f"{base}/tasks/alice/{TASK}", base, agentapi, http)
            group.cancel_scope.cancel()
    finally:
        store.close()


async def dump_dom(url: str, profile: Path, budget_ms: int = 5000) -> Node:
    """Load `url` in headless Chromium for `budget_ms` of virtual time; the resulting DOM."""
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-proxy-server",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--virtual-time-budget={budget_ms}",
        "--dump-dom",
        url,
    ]
    env = {**os.environ, "HOME": str(profile)}
    # The server answers on this event loop while Chromium runs: run_process awaits, never blocks.
    # A timeout cancels it, which kills Chromium.
    with anyio.fail_after(60):
        done = await anyio.run_process(command, env=env, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    html = done.stdout.decode("utf-8")
    assert "<html" in html, html[:500]
    return parse(html)


# -- tests ----------------------------------------------------------------------------------------


@needs_chromium
async def test_page_shows_the_timeline_and_the_saved_conversation_as_text(
    tmp_path: Path,
) -> None:
    with anyio.fail_after(90):
        async with serving(tmp_path) as page:
            await page.status("working", "Starting")
            await page.status("idle", "Waiting for input")
            await page.status("failure", HOSTILE_STATUS)
            await page.snapshot(
                [
                    {"id": 0, "content": HOSTILE_PROMPT, "role": "user", "time": TIME},
                    {"id": 1, "content": HOSTILE_ANSWER, "role": "agent", "time": TIME},
                ]
            )
            await page.task_status("paused")
            dom = await dump_dom(page.url, tmp_path / "profile")

    items = dom.by_id("timeline").tags("li")
    assert [li.attrs["data-state"] for li in items] == ["failed", "idle", "working"]
    assert [li.tags("span")[0].text() for li in items] == ["failed", "idle", "working"]
    assert HOSTILE_STATUS in items[0].text()
    assert "failure" not in dom.by_id("timeline").text()
    assert dom.by_id("current-state").attrs["data-state"] == "failed"
    assert dom.by_id("current-message").text() == HOSTILE_STATUS

    source = dom.by_id("conversation-source")
    assert source.attrs["data-source"] == "snapshot"
    assert "snapshot saved" in source.text()
    entries = dom.by_id("conversation").all(lambda n: "data-type" in n.attrs)
    assert [e.attrs["data-type"] for e in entries] == ["input", "output"]
    assert [e.tags("pre")[0].text() for e in entries] == [HOSTILE_PROMPT, HOSTILE_ANSWER]
    # Shown as text, never parsed as markup: no element came out of the content.
    assert dom.tags("img") == []
    assert dom.tags("b") == []
    assert len(dom.tags("script")) == 1  # the page's own
    assert int(dom.tags("body")[0].attrs["data-refreshes"]) >= 2
    # Loaded: no placeholder left, and three statuses leave the timeline open.
    assert dom.tags("body")[0].attrs["data-loaded"] == "true"
    assert "Loading" not in dom.text()
    assert dom.by_id("conversation").attrs["aria-busy"] == "false"
    assert dom.by_id("refreshed").text().startswith("20")
    assert "open" in dom.by_id("timeline-section").attrs
    assert dom.by_id("timeline-count").text() == "(3 statuses, newest first)"


@needs_chromium
async def test_page_refreshes_by_itself_from_live_to_snapshot(tmp_path: Path) -> None:
    # One page load. The server changes the task right after answering the page's first
    # conversation request, so the page can only show the change by fetching again on its own.
    answered: list[dict[str, Any]] = []

    def wrap(standin: CoderStandIn, inner: Handler) -> Handler:
        async def handler(request: Request) -> Response:
            response = await inner(request)
            if request.path.endswith("/logs"):
                answered.append(json.loads(response.body))
                if len(answered) == 1:
                    standin.store.add_status(TASK, "claude", "complete", "All done", "")
                    standin.store.set_task_status(TASK, "paused")
            return response

        return handler

    with anyio.fail_after(90):
        async with serving(tmp_path, wrap) as page:
            page.agentapi.messages = [
                {"id": 0, "content": "live hello from the agent", "role": "agent", "time": TIME}
            ]
            await page.status("working", "Busy")
            await page.snapshot(
                [{"id": 0, "content": "saved at shutdown", "role": "agent", "time": TIME}]
            )
            dom = await dump_dom(page.url, tmp_path / "profile", budget_ms=5000)

    # The first render saw the live task...
    assert answered[0]["snapshot"] is False
    assert answered[0]["logs"][0]["content"] == "live hello from the agent"
    # ...and the page, left alone, picked up the change.
    assert len(answered) >= 2
    assert all(later["snapshot"] is True for later in answered[1:])
    assert int(dom.tags("body")[0].attrs["data-refreshes"]) >= 2
    assert dom.by_id("current-state").attrs["data-state"] == "complete"
    assert [li.attrs["data-state"] for li in dom.by_id("timeline").tags("li")] == [
        "complete",
        "working",
    ]
    assert "All done" in dom.by_id("timeline").text()
    assert dom.by_id("task-status").text() == "paused"
    assert dom.by_id("conversation-source").attrs["data-source"] == "snapshot"
    assert "saved at shutdown" in dom.by_id("conversation").text()
    assert "live hello" not in dom.by_id("conversation").text()


async def test_page_shows_a_loading_state_until_its_first_fetch(tmp_path: Path) -> None:
    # What the browser shows before the script's first fetch answers: the page as served.
    with anyio.fail_after(10):
        async with serving(tmp_path) as page:
            answer = await page.http.get(f"/tasks/alice/{TASK}")
    dom = parse(answer.text)
    assert dom.tags("body")[0].attrs["data-loaded"] == "false"
    assert dom.by_id("refreshed").text() == "loading…"
    assert "never" not in dom.by_id("refreshed").text()
    conversation = dom.by_id("conversation")
    assert conversation.attrs["aria-busy"] == "true"
    assert "Loading the conversation" in conversation.text()
    assert "Loading" in dom.by_id("timeline").text()


@needs_chromium
async def test_a_long_timeline_collapses_so_the_conversation_stays_in_view(
    tmp_path: Path,
) -> None:
    with anyio.fail_after(90):
        async with serving(tmp_path) as page:
            for turn in range(4):
                await page.status("working", f"Turn {turn}")
                await page.status("idle", f"Done with turn {turn}")
            page.agentapi.messages = [
                {"id": 0, "content": "the conversation", "role": "agent", "time": TIME}
            ]
            dom = await dump_dom(page.url, tmp_path / "profile")

    section = dom.by_id("timeline-section")
    assert section.tag == "details"
    assert "open" not in section.attrs, "eight statuses: collapsed"
    assert dom.by_id("timeline-count").text() == "(8 statuses, newest first)"
    assert len(dom.by_id("timeline").tags("li")) == 8, "still there, one click away"
    assert "the conversation" in dom.by_id("conversation").text()


@needs_chromium
async def test_a_task_that_cannot_be_read_does_not_stay_loading(tmp_path: Path) -> None:
    def wrap(standin: CoderStandIn, inner: Handler) -> Handler:
        async def handler(request: Request) -> Response:
            if request.path.startswith("/api/v2/tasks/"):
                return json_response({"message": "Internal error."}, status=500)
            return await inner(request)

        return handler

    with anyio.fail_after(90):
        async with serving(tmp_path, wrap) as page:
            dom = await dump_dom(page.url, tmp_path / "profile")
    assert "HTTP 500: Internal error." in dom.by_id("page-error").text()
    assert dom.by_id("conversation").text() == "not loaded: see the error above"
    assert dom.by_id("conversation").attrs["aria-busy"] == "false"


async def test_page_is_self_contained_with_a_strict_policy(tmp_path: Path) -> None:
    with anyio.fail_after(10):
        async with serving(tmp_path) as page:
            answer = await page.http.get(f"/tasks/alice/{TASK}")
            again = await page.http.get(f"/tasks/me/{TASK}")
            missing = await page.http.get("/tasks/alice/9d8c7b6a-0000-4d3c-8b2a-1f0e9d8c7b6a")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    policy = answer.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "connect-src 'self'" in policy
    nonce = policy.split("'nonce-")[1].split("'")[0]
    assert f'<script nonce="{nonce}">' in answer.text
    assert nonce not in again.text  # a fresh nonce for every response
    assert "{{nonce}}" not in answer.text
    assert ".innerHTML" not in answer.text  # content goes in with textContent only
    for external in ("src=", 'href="http', "@import", "url("):
        assert external not in answer.text
    assert missing.status_code == 404
