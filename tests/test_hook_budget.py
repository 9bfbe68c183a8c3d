"""A hook's budget (issue 20, item 6): whatever the network does, a hook is back within it.

Timed on the injected clock: a Coder that accepts connections and never answers holds the
direct report exactly until the budget ends, not the two request timeouts it used to.
The subprocess side (exit 0, nothing on stdout, `hook_failed`) is in
tests/faults/test_containment.py.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator

import anyio
import pytest

from agent.config import Secret, Settings
from agent.direct import _report
from agent.hooks import command
from agent.hooks.command import process_started, run_hook
from agent.models import AppState, AppStatus, ExitCode
from tests.fakes import wait_until
from tests.manualclock import ManualClock

TOKEN = "budget-token-0a1b2c3d4e5f6789"


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A loopback port whose kernel accepts connections that nobody ever answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as listener:
        yield listener.getsockname()[1]


@pytest.mark.anyio
async def test_a_direct_report_to_a_black_hole_ends_when_the_budget_does(black_hole: int) -> None:
    settings = Settings(
        coder_url=f"http://127.0.0.1:{black_hole}",
        token=Secret(TOKEN),
        app_slug="agent",
        status_transport="http",
        request_timeout=5.0,
    )
    clock = ManualClock()
    codes: list[ExitCode] = []

    async def report() -> None:
        codes.append(await _report(settings, AppStatus(AppState.WORKING, "x"), clock, "", 0.7))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(report)
            # The attempt is in flight: its deadline (and the request's own) wait on the clock.
            await wait_until(lambda: clock.deadlines >= 2)
            clock.advance(0.7)
    assert codes == [ExitCode.UNDELIVERED]
    assert clock.now() == pytest.approx(0.7)  # not a request timeout (5 s), not two


def test_the_hook_hands_over_only_what_is_left_of_its_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    given: list[float] = []

    def hand_over(settings: object, status: AppStatus, within: float) -> int:
        given.append(within)
        return int(ExitCode.UNDELIVERED)

    monkeypatch.setattr(command, "hand_over", hand_over)
    event = json.dumps({"hook_event_name": "UserPromptSubmit", "prompt": "go"}).encode()
    # A budget this test's own pauses cannot use up (a loaded machine can stall it a second).
    env = {"CODER_TASK_AGENT_HOOK_BUDGET": "60", "CODER_TASK_AGENT_SOCKET": "/nonexistent/s"}
    started = time.monotonic() - 0.5  # the process started half a second ago
    read, write = os.pipe()
    os.write(write, event)
    os.close(write)
    with os.fdopen(read, "rb") as stdin:
        assert run_hook("claude-code", [], {}, stdin=stdin, env=env, started=started) == 0
    (within,) = given
    # 60 s from the process's start, less what went before and the exit's reserve.
    assert 0 < within <= 60 - 0.5 - command.EXIT_RESERVE


def test_a_start_that_took_the_whole_budget_still_hands_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    given: list[float] = []

    def hand_over(settings: object, status: AppStatus, within: float) -> int:
        given.append(within)
        return 0

    monkeypatch.setattr(command, "hand_over", hand_over)
    env = {"CODER_TASK_AGENT_SOCKET": "/nonexistent/s"}
    event = json.dumps({"type": "agent-turn-complete", "last-assistant-message": "Done"})
    assert run_hook("codex", [event], {}, env=env, started=time.monotonic() - 5) == 0
    assert given == [command.MIN_HAND_OVER]


def test_the_process_start_is_in_the_past_and_recent() -> None:
    now = time.monotonic()
    started = process_started()
    assert now - 60 <= started <= now


def test_stdin_that_never_ends_or_trickles_is_cut_at_one_deadline() -> None:
    read, write = os.pipe()
    stop = threading.Event()

    def trickle() -> None:  # a byte every 10 ms, never an end: each read gets data
        while not stop.wait(0.01):
            os.write(write, b" ")

    thread = threading.Thread(target=trickle)
    thread.start()
    try:
        with os.fdopen(read, "rb") as stdin, pytest.raises(TimeoutError, match=r"within 0\.3 s"):
            command.read_stdin(stdin, within=0.3)
    finally:
        stop.set()
        thread.join()
        os.close(write)


def test_stdin_past_its_cap_is_refused_not_read_whole() -> None:
    with open("/dev/zero", "rb") as endless, pytest.raises(ValueError, match="larger than"):
        command.read_stdin(endless, within=60)
