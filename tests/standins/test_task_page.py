"""The task page in real headless Chromium: the timeline, the conversation, escaping, refresh."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from agent.standins.coder import CoderStandIn, run_coder_standin
from agent.standins.store import Store, Task

pytestmark = pytest.mark.anyio
TASK = "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TIME = "2025-06-01T10:00:00.123456789Z"


@pytest.fixture
async def page_server(tmp_path: Path) -> AsyncIterator[tuple[CoderStandIn, str]]:
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (Debian package `chromium`; .ci/run installs it)")
    task = Task(TASK, "bob", "page-test", "paused", ("agent",), "http://127.0.0.1:9")
    coder = CoderStandIn(Store(tmp_path / "db"), "tok", [task])
    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            port = await group.start(run_coder_standin, coder)
            yield coder, f"http://127.0.0.1:{port}/tasks/bob/{TASK}"
            group.cancel_scope.cancel()
    coder.store.close()


async def dump_dom(url: str, profile: Path, budget_ms: int = 4000) -> str:
    assert CHROMIUM is not None
    result = await anyio.run_process(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}",
            "--dump-dom",
            url,
        ],
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return result.stdout.decode("utf-8", errors="replace")


async def test_page_shows_timeline_and_snapshot_escaped(
    page_server: tuple[CoderStandIn, str], tmp_path: Path
) -> None:
    coder, url = page_server
    coder.store.add_status(TASK, "agent", "working", "Fixing <b>bold</b> bug", "")
    coder.store.add_status(TASK, "agent", "failure", "Tests fail", "https://ci.example/1")
    body = {
        "messages": [
            {"id": 0, "content": "<script>alert('x')</script> hello", "role": "user", "time": TIME},
            {"id": 1, "content": "│ box ╭─╮ output │", "role": "agent", "time": TIME},
        ]
    }
    coder.store.put_snapshot(TASK, json.dumps(body).encode())
    dom = await dump_dom(url, tmp_path / "profile")
    assert "Task page-test (bob)" in dom
    assert 'class="state failed">failed<' in dom
    assert "Fixing &lt;b&gt;bold&lt;/b&gt; bug" in dom, "status messages are shown as text"
    assert "Conversation (snapshot saved" in dom
    assert "&lt;script&gt;alert('x')&lt;/script&gt; hello" in dom, "content is text, not markup"
    assert "│ box ╭─╮ output │" in dom
    assert "<b>bold</b>" not in dom


async def test_page_refreshes_by_itself(
    page_server: tuple[CoderStandIn, str], tmp_path: Path
) -> None:
    coder, url = page_server
    coder.store.add_status(TASK, "agent", "working", "first status", "")
    original = coder.task_view
    views = 0

    def task_view(task: Task) -> dict[str, object]:
        # A status arrives right after the page's first load: only a refresh can show it.
        nonlocal views
        views += 1
        if views == 1:
            coder.store.add_status(TASK, "agent", "complete", "arrived after the first load", "")
        return original(task)

    coder.task_view = task_view  # type: ignore[method-assign]
    dom = await dump_dom(url, tmp_path / "profile", budget_ms=6000)
    assert views >= 2, "the page fetched the task again by itself"
    assert "arrived after the first load" in dom
