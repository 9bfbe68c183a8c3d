"""The daemon in-process, against the fakes: watch, report, stop, snapshot."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import pytest
from structlog.testing import capture_logs

from agent.agentapi import AgentAPIClient
from agent.clock import SYSTEM_CLOCK, Clock
from agent.coder.httpapi import CoderClient
from agent.coder.route import StatusSender
from agent.config import Environment, Secret, Settings
from agent.daemon.daemon import Daemon, supervised, task_id_warning
from agent.daemon.stop import TEARDOWN_GRACE
from agent.models import AppState, AppStatus
from agent.stop.upload import Outcome
from tests.fakes import FakeAgentAPI, FakeCoder, Recorded, Scripted, message, wait_until
from tests.manualclock import ManualClock
from tests.planted import Plant, each
from tests.socketclient import request, send_to_daemon

pytestmark = pytest.mark.anyio
TASK = "6f1c2a3b-4d5e-4f60-8a1b-2c3d4e5f6a7b"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        coder_url="http://coder.test",
        token=Secret("t"),
        task_id=TASK,
        app_slug="claude",
        shutdown_budget=2.0,
        agentapi_timeout=0.5,
        stop_fetch_timeout=0.2,
        poll_interval=0.01,
        working_debounce=0.05,
        socket_path=tmp_path / "run" / "report.sock",
    )


@dataclass
class Running:
    daemon: Daemon
    agentapi: FakeAgentAPI
    coder: FakeCoder
    exit_code: int | None = None

    def states(self) -> list[str]:
        return [s["state"] for s in self.coder.statuses]


@asynccontextmanager
async def running(
    settings: Settings,
    agentapi: FakeAgentAPI | None = None,
    coder: FakeCoder | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> AsyncIterator[Running]:
    agentapi = agentapi or FakeAgentAPI()
    coder = coder or FakeCoder()
    with anyio.fail_after(10):
        async with (
            agentapi.client() as agentapi_http,
            coder.client() as coder_http,
            anyio.create_task_group() as group,
        ):
            coder_client = CoderClient(coder_http, settings.app_slug, clock=clock)
            daemon = Daemon(
                settings,
                # One clock for everything, request deadlines included, as run_daemon does.
                AgentAPIClient(agentapi_http, clock=clock),
                coder_client,
                StatusSender("http", None, socket=None, http=coder_client.patch_app_status),
                clock=clock,
            )
            handle = Running(daemon, agentapi, coder)

            async def run() -> None:
                handle.exit_code = await daemon.run(handle_signals=False)

            group.start_soon(run)
            await daemon.ready.wait()
            yield handle


async def stop(handle: Running) -> int:
    handle.daemon.stop_path.request_stop("test")
    await wait_until(lambda: handle.exit_code is not None)
    assert handle.exit_code is not None
    return handle.exit_code


async def drive(clock: ManualClock, done: Callable[[], bool]) -> None:
    """Move the manual clock from one due time to the next (whenever a task waits on it) until
    `done`: every wait the daemon takes passes in order, and no real time is waited for."""
    with anyio.fail_after(10):
        while not done():
            await wait_until(lambda: done() or clock.next_due() is not None)
            # Let whatever is running reach its next wait first: a due time read while a task
            # is still being cancelled out of its wait would move the clock for nobody.
            await settled()
            if not done() and clock.next_due() is not None:
                await clock.advance_to_next()


async def settled() -> None:
    """Return once every task is blocked: whatever the last step set off has run."""
    with anyio.fail_after(5):
        await anyio.wait_all_tasks_blocked()


async def stop_on(clock: ManualClock, handle: Running) -> int:
    """`stop`, moving the manual clock through the stop path's waits (retry backoffs)."""
    handle.daemon.stop_path.request_stop("test")
    return await exited_on(clock, handle)


async def exited_on(clock: ManualClock, handle: Running) -> int:
    """The exit code of a stop already requested, moving the manual clock through its waits."""
    await drive(clock, lambda: handle.exit_code is not None)
    assert handle.exit_code is not None
    return handle.exit_code


async def test_events_mode_reports_each_change_in_order(settings: Settings) -> None:
    async with running(settings) as handle:
        await wait_until(lambda: handle.states() == ["idle"])
        await handle.agentapi.put_message("user", "Fix the flaky test\nin CI")
        await handle.agentapi.set_status("running")
        await handle.agentapi.put_message("agent", "Looking at the test...")
        await wait_until(lambda: handle.states() == ["idle", "working"])
        await handle.agentapi.put_message("agent", "Looking at the test... fixed.", id_=2)
        await handle.agentapi.set_status("stable")
        await wait_until(lambda: handle.states() == ["idle", "working", "idle"])
        assert handle.coder.statuses[1]["message"] == "Fix the flaky test"
        assert await stop(handle) == 0
    assert len(handle.coder.snapshots) == 1
    body = json.loads(handle.coder.snapshots[0])
    assert [m["content"] for m in body["messages"]] == [
        "Welcome",
        "Fix the flaky test\nin CI",
        "Looking at the test... fixed.",
    ]
    assert handle.states() == ["idle", "working", "idle"]


async def test_stop_uses_the_mirror_when_agentapi_is_dead(settings: Settings) -> None:
    async with running(settings) as handle:
        await handle.agentapi.put_message("user", "hello")
        await handle.agentapi.put_message("agent", "hi there")
        await wait_until(lambda: len(handle.daemon.mirror) == 3)
        handle.agentapi.down = True
        assert await stop(handle) == Outcome.UPLOADED.exit_code
    body = json.loads(handle.coder.snapshots[0])
    assert [m["content"] for m in body["messages"]] == ["Welcome", "hello", "hi there"]


async def test_stop_uses_the_mirror_when_messages_blocks(settings: Settings) -> None:
    clock = ManualClock()
    async with running(settings, clock=clock) as handle:
        await wait_until(lambda: len(handle.daemon.mirror) == 1 and handle.daemon.mirror.current)
        # The stream is gone, so the stop path fetches; the fetch then hangs.
        handle.agentapi.events_status = 500
        await handle.agentapi.end_streams()
        await wait_until(lambda: not handle.daemon.mirror.current)
        handle.agentapi.block_messages = True
        with capture_logs() as logs:
            handle.daemon.stop_path.request_stop("test")
            # The fetch waits on the clock, which has not moved: nothing is uploaded yet.
            await wait_until(lambda: "GET /messages" in handle.agentapi.requests)
            await settled()
            assert handle.coder.snapshots == []
            stopping_at = clock.now()
            assert await exited_on(clock, handle) == 0
    (gave_up,) = [e for e in logs if e["event"] == "agentapi_messages_timeout"]
    assert gave_up["timeout_s"] == settings.stop_fetch_timeout, "cut at its own timeout"
    assert clock.now() - stopping_at == pytest.approx(settings.stop_fetch_timeout)
    assert json.loads(handle.coder.snapshots[0])["messages"][0]["content"] == "Welcome"
    assert "GET /messages" in handle.agentapi.requests


async def test_stop_retries_the_upload_through_503s(settings: Settings) -> None:
    coder = FakeCoder()
    clock = ManualClock()
    async with running(settings, coder=coder, clock=clock) as handle:
        await wait_until(lambda: handle.states() == ["idle"])
        coder.script += [Scripted(503), Scripted(503)]
        handle.daemon.stop_path.request_stop("test")
        await wait_until(lambda: clock.next_due() is not None)
        # The first 503 was answered; the retry waits for its backoff on the clock, not before.
        await settled()
        assert len([r for r in coder.requests if r.method == "POST"]) == 1
        assert handle.exit_code is None
        assert await exited_on(clock, handle) == 0
        assert clock.now() > 0, "the retries waited their backoff"
    uploads = [r for r in coder.requests if r.method == "POST"]
    assert len(uploads) == 3
    assert len(coder.snapshots) == 1


@pytest.mark.parametrize(
    ("answer", "code"),
    [(Scripted(404), Outcome.SKIPPED.exit_code), (Scripted(401), Outcome.REJECTED.exit_code)],
)
async def test_stop_outcomes(settings: Settings, answer: Scripted, code: int) -> None:
    coder = FakeCoder()
    async with running(settings, coder=coder) as handle:
        await wait_until(lambda: handle.states() == ["idle"])
        coder.script.append(answer)
        assert await stop(handle) == code


async def test_stop_undelivered_within_the_budget(settings: Settings) -> None:
    # Time is the injected clock: every retry wait of the stop path is taken on it, so the
    # budget is checked exactly, whatever else the machine is doing.
    coder = FakeCoder()
    clock = ManualClock()
    settings = settings.replace(shutdown_budget=3.0)
    async with running(settings, coder=coder, clock=clock) as handle:
        await wait_until(lambda: handle.states() == ["idle"])
        coder.script += [Scripted(503)] * 10_000
        start = clock.now()
        assert await stop_on(clock, handle) == Outcome.UNDELIVERED.exit_code
        assert clock.now() - start <= settings.shutdown_budget
    uploads = [r for r in coder.requests if r.method == "POST"]
    assert len(uploads) >= 3, "retried through the budget"


async def test_no_task_id_skips_the_snapshot(settings: Settings) -> None:
    async with running(settings.replace(task_id=None)) as handle:
        await wait_until(lambda: handle.states() == ["idle"])
        assert await stop(handle) == 0
    assert handle.coder.snapshots == []


async def test_second_stop_hurries(settings: Settings) -> None:
    coder = FakeCoder()
    async with running(settings.replace(shutdown_budget=30), coder=coder) as handle:
        await wait_until(lambda: handle.states() == ["idle"])
        coder.script.append(Scripted(204, delay=60))
        handle.daemon.stop_path.request_stop("first")
        await wait_until(lambda: any(r.method == "POST" for r in coder.requests))
        handle.daemon.stop_path.request_stop("second")
        await wait_until(lambda: handle.exit_code is not None)
    assert handle.exit_code == Outcome.INTERRUPTED.exit_code


async def test_reconnect_polls_status_and_does_not_resend(settings: Settings) -> None:
    clock = ManualClock()
    async with running(settings, clock=clock) as handle:
        await wait_until(lambda: handle.states() == ["idle"])
        await handle.agentapi.end_streams()
        # Ended: the watcher reads /status and waits out its reconnect backoff on the clock.
        await wait_until(lambda: clock.next_due() is not None)
        await settled()
        assert handle.agentapi.requests.count("GET /events") == 1, "no reconnect before the wait"
        await drive(clock, lambda: handle.agentapi.requests.count("GET /events") == 2)
        assert clock.now() > 0
        await wait_until(lambda: handle.agentapi.subscribers == 1)
        assert "GET /status" in handle.agentapi.requests
        await handle.agentapi.put_message("user", "next task")
        await wait_until(lambda: handle.states() == ["idle", "working"])
        assert await stop(handle) == 0


async def test_a_transition_during_the_disconnection_is_seen(settings: Settings) -> None:
    clock = ManualClock()
    async with running(settings, clock=clock) as handle:
        await wait_until(lambda: handle.states() == ["idle"])
        handle.agentapi.down = True
        await handle.agentapi.end_streams()
        # The reconnect, after its backoff on the clock, finds AgentAPI down.
        await drive(clock, lambda: handle.daemon._agentapi_failing)
        handle.agentapi.status = "running"
        handle.agentapi.down = False
        # Seen by the next /status read (a poll interval on), then reported once the running
        # has lasted the debounce: both waits pass on the clock.
        await drive(clock, lambda: handle.states() == ["idle", "working"])
        assert clock.now() >= settings.working_debounce
        assert await stop(handle) == 0


async def test_events_unavailable_falls_back_to_polling(settings: Settings) -> None:
    agentapi = FakeAgentAPI()
    agentapi.events_status = 404
    clock = ManualClock()
    async with running(settings, agentapi=agentapi, clock=clock) as handle:
        await wait_until(lambda: handle.states() == ["idle"])
        agentapi.messages.append(
            {"id": 1, "role": "user", "content": "go", "time": "2025-06-01T10:00:00Z"}
        )
        agentapi.status = "running"
        # Nothing is read until the poll interval passes on the clock...
        await wait_until(lambda: clock.next_due() == settings.poll_interval)
        await settled()
        assert handle.states() == ["idle"]
        # ...then the poll sees the new prompt, reported at once (no debounce for a prompt).
        await clock.advance_to_next()
        await wait_until(lambda: handle.states() == ["idle", "working"])
        assert clock.now() == settings.poll_interval
        assert handle.coder.statuses[-1]["message"] == "go"
        assert await stop(handle) == 0


async def test_polling_fetches_messages_only_on_change(settings: Settings) -> None:
    clock = ManualClock()
    async with running(settings.replace(mode="poll"), clock=clock) as handle:
        requests = handle.agentapi.requests
        await wait_until(lambda: requests.count("GET /status") == 1)
        for polls in range(2, 31):
            # One /status read per interval, and not before the interval has passed.
            await wait_until(lambda: clock.next_due() is not None)
            await settled()
            assert requests.count("GET /status") == polls - 1
            await clock.advance_to_next()
            await wait_until(lambda: requests.count("GET /status") == polls)  # noqa: B023
        assert clock.now() == pytest.approx(29 * settings.poll_interval)
        assert requests.count("GET /messages") == 1
        handle.agentapi.status = "running"
        await drive(clock, lambda: handle.states() == ["idle", "working"])
        assert requests.count("GET /messages") == 2
        assert await stop(handle) == 0


async def test_explicit_report_through_the_socket_is_sticky(settings: Settings) -> None:
    assert settings.socket_path is not None
    # On the manual clock the running blip stays shorter than the debounce however slow the
    # machine (on real time, a run slower than the debounce would report working, rightly).
    clock = ManualClock()
    async with running(settings, clock=clock) as handle:
        await wait_until(lambda: handle.states() == ["idle"])
        done = AppStatus(AppState.COMPLETE, "Opened PR #12", "https://git.example/pr/12")
        answer = await send_to_daemon(Path(settings.socket_path), done)
        assert answer == {"ok": True}
        await wait_until(lambda: handle.states() == ["idle", "complete"])
        await handle.agentapi.set_status("running")
        await wait_until(lambda: handle.daemon.rules.agent_status == "running")
        await settled()
        assert handle.states() == ["idle", "complete"], "a blip does not undo the complete"
        await handle.agentapi.set_status("stable")
        # Observed: the rules hold the complete (the reporter would deliver a change at once).
        await wait_until(lambda: handle.daemon.rules.agent_status == "stable")
        await settled()
        assert handle.states() == ["idle", "complete"]
        assert handle.coder.statuses[-1]["uri"] == "https://git.example/pr/12"
        assert await stop(handle) == 0
    assert not await anyio.Path(settings.socket_path).exists()


async def test_a_pending_report_is_flushed_at_stop(settings: Settings) -> None:
    coder = FakeCoder()
    clock = ManualClock()
    async with running(settings, coder=coder, clock=clock) as handle:
        await wait_until(lambda: handle.states() == ["idle"])
        coder.script += [Scripted(503)]
        handle.daemon.explicit_report(AppStatus(AppState.COMPLETE, "done"))
        await wait_until(lambda: len(coder.requests) >= 2)
        # The reporter waits its backoff on the clock, which never moves: only the stop's
        # flush can deliver it.
        await wait_until(lambda: clock.next_due() is not None)
        await settled()
        assert len(coder.requests) == 2
        assert await stop_on(clock, handle) == 0
    assert handle.states() == ["idle", "complete"]


class HangingPatches(FakeCoder):
    """Coder whose status PATCHes never answer once `hang` is set; uploads still succeed."""

    hang = False

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if self.hang and request.method == "PATCH":
            self.requests.append(Recorded(request.method, request.url.path, "", {}, b""))
            await anyio.sleep_forever()
        return await super().handle(request)


async def test_a_hanging_status_flush_is_cut_at_the_budget(settings: Settings) -> None:
    # The flush beside the upload gets the stop's budget on the daemon's clock, and no more.
    coder = HangingPatches()
    clock = ManualClock()
    async with running(settings, coder=coder, clock=clock) as handle:
        await wait_until(lambda: handle.states() == ["idle"])
        coder.hang = True
        handle.daemon.explicit_report(AppStatus(AppState.COMPLETE, "done"))
        await wait_until(lambda: [r.method for r in coder.requests].count("PATCH") == 2)
        with capture_logs() as logs:
            stopping_at = clock.now()
            assert await stop_on(clock, handle) == 0, "the snapshot went all the same"
    assert clock.now() - stopping_at == pytest.approx(settings.shutdown_budget)
    assert len(coder.snapshots) == 1
    assert settings.socket_path is not None
    assert not await anyio.Path(settings.socket_path).exists(), "closed at the budget"
    (undelivered,) = [e for e in logs if e["event"] == "status_not_delivered_at_stop"]
    assert undelivered["state"] == "complete"


async def test_garbage_and_unknown_events_are_survived(settings: Settings) -> None:
    async with running(settings) as handle:
        await wait_until(lambda: handle.states() == ["idle"])
        await handle.agentapi.send_raw_event(b"event: message_update\ndata: {not json\n\n")
        await handle.agentapi.send_raw_event(b"event: future_thing\ndata: {}\n\n")
        await handle.agentapi.set_status("running")
        await wait_until(lambda: handle.states() == ["idle", "working"])
        assert await stop(handle) == 0


async def test_running_is_reported_once_the_debounce_passed(settings: Settings) -> None:
    # The ticker waits on the clock: before the debounce has passed nothing is reported, at
    # the debounce the working is.
    clock = ManualClock()
    async with running(settings, clock=clock) as handle:
        await wait_until(lambda: handle.states() == ["idle"])
        await handle.agentapi.set_status("running")
        await wait_until(lambda: handle.daemon.rules.agent_status == "running")
        await wait_until(lambda: clock.next_due() == settings.working_debounce)
        await settled()
        assert handle.states() == ["idle"]
        clock.advance(settings.working_debounce * 0.9)
        await settled()
        assert handle.states() == ["idle"], "not before the debounce"
        assert await clock.advance_to_next() == settings.working_debounce
        await wait_until(lambda: handle.states() == ["idle", "working"])
        assert await stop(handle) == 0


async def test_without_a_slug_nothing_is_reported_but_the_snapshot_goes(
    settings: Settings,
) -> None:
    async with running(settings.replace(app_slug=None)) as handle:
        await handle.agentapi.set_status("running")
        await wait_until(lambda: handle.daemon.rules.agent_status == "running")
        assert await stop(handle) == 0
    assert handle.coder.statuses == []
    assert len(handle.coder.snapshots) == 1


async def test_an_unusable_socket_path_does_not_stop_the_daemon(
    settings: Settings, tmp_path: Path
) -> None:
    too_long = tmp_path / ("x" * 200) / "report.sock"  # past the 108-byte sun_path limit
    async with running(settings.replace(socket_path=too_long)) as handle:
        await wait_until(lambda: handle.states() == ["idle"])
        assert await stop(handle) == 0


async def test_a_live_stream_is_uploaded_at_stop_without_fetching(settings: Settings) -> None:
    async with running(settings) as handle:
        await handle.agentapi.put_message("user", "hello")
        await handle.agentapi.put_message("agent", "hi there")
        await wait_until(lambda: len(handle.daemon.mirror) == 3 and handle.daemon.mirror.current)
        assert await stop(handle) == 0
    assert "GET /messages" not in handle.agentapi.requests
    body = json.loads(handle.coder.snapshots[0])
    assert [m["content"] for m in body["messages"]] == ["Welcome", "hello", "hi there"]


async def test_after_the_stream_ended_the_stop_path_fetches(settings: Settings) -> None:
    async with running(settings) as handle:
        await wait_until(lambda: handle.daemon.mirror.current)
        handle.agentapi.events_status = 500
        await handle.agentapi.end_streams()
        await wait_until(lambda: not handle.daemon.mirror.current)
        # Said while the stream was down: only a fresh fetch can know it.
        handle.agentapi.messages.append(message(1, "user", "said while the stream was down"))
        assert await stop(handle) == 0
    assert "GET /messages" in handle.agentapi.requests
    body = json.loads(handle.coder.snapshots[0])
    assert body["messages"][-1]["content"] == "said while the stream was down"


async def test_snapshot_now_over_the_socket_and_the_daemon_goes_on(settings: Settings) -> None:
    assert settings.socket_path is not None
    async with running(settings) as handle:
        await handle.agentapi.put_message("user", "save me")
        await wait_until(lambda: len(handle.daemon.mirror) == 2 and handle.daemon.mirror.current)
        answer = await request(Path(settings.socket_path), {"request": "snapshot"})
        assert answer == {"ok": True, "outcome": "uploaded", "exit_code": 0}
        assert len(handle.coder.snapshots) == 1
        assert "GET /messages" not in handle.agentapi.requests
        await handle.agentapi.put_message("agent", "still watching")
        await wait_until(lambda: len(handle.daemon.mirror) == 3)
        assert await stop(handle) == 0
    assert len(handle.coder.snapshots) == 2
    assert json.loads(handle.coder.snapshots[1])["messages"][-1]["content"] == "still watching"


async def test_an_explicit_complete_survives_a_crash_and_restart(settings: Settings) -> None:
    # The first daemon is never stopped cleanly (a crash, a SIGKILL): only its runtime
    # directory survives. The next one must not report idle over the complete.
    assert settings.socket_path is not None
    saved = Path(settings.socket_path).parent / "last-report.json"
    done = AppStatus(AppState.COMPLETE, "Opened PR #12", "https://git.example/pr/12")
    async with running(settings) as first:
        await wait_until(lambda: first.states() == ["idle"])
        first.daemon.explicit_report(done)
        await wait_until(lambda: first.states() == ["idle", "complete"])
        assert saved.exists()
        assert await stop(first) == 0
    assert saved.exists(), "kept across a stop: only a new turn ends it"
    async with running(settings) as second:
        await wait_until(lambda: second.states() == ["complete"])
        await second.agentapi.put_message("user", "next task")
        await wait_until(lambda: second.states() == ["complete", "working"])
        await wait_until(lambda: not saved.exists())
        assert await stop(second) == 0
    assert second.coder.statuses[0]["uri"] == "https://git.example/pr/12"


@each()
async def test_a_planted_memory_is_ignored_at_start(settings: Settings, plant: Plant) -> None:
    # Another user made the runtime directory first, or left something else in the memory's
    # place: the daemon starts, warns once, and reports what it sees (idle), not their complete.
    assert settings.socket_path is not None
    saved = Path(settings.socket_path).parent / "last-report.json"
    saved.parent.mkdir(mode=0o700)
    good = b'{"state": "complete", "message": "Theirs", "uri": "https://evil.example/"}'
    plant.plant(saved, good, 64 * 1024)
    with capture_logs() as logs:
        async with running(settings) as handle:
            await wait_until(lambda: handle.states() == ["idle"])
            assert await stop(handle) == 0
    assert handle.states() == ["idle"]
    assert "last_report_restored" not in [e["event"] for e in logs]
    warned = [e for e in logs if e["event"] in ("untrusted_file_ignored", "last_report_unreadable")]
    assert len(warned) == 1


class GatedCoder(FakeCoder):
    """Notes what was still up when a snapshot upload arrived; holds it while `gate` is closed.

    `gate` is an anyio.Event the test sets to let held uploads be answered; its client allows
    a call a long time, so that only the stop path's own waits (on the manual clock) matter.
    """

    def __init__(self, agentapi: FakeAgentAPI, socket_path: Path) -> None:
        super().__init__()
        self.agentapi = agentapi
        self.socket_path = socket_path
        self.gate: anyio.Event | None = None
        # (event stream subscribers, report socket present) when each upload arrived
        self.at_upload: list[tuple[int, bool]] = []

    def client(self) -> httpx.AsyncClient:
        client = super().client()
        client.timeout = httpx.Timeout(60.0)
        return client

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            self.at_upload.append((self.agentapi.subscribers, self.socket_path.exists()))
            if self.gate is not None:
                await self.gate.wait()
        return await super().handle(request)


async def test_the_upload_goes_before_the_watchers_are_torn_down(settings: Settings) -> None:
    # Their unwinding (the stream, the socket, the reporter) runs on the same event loop: it
    # must not come between the signal and the request.
    assert settings.socket_path is not None
    agentapi = FakeAgentAPI()
    coder = GatedCoder(agentapi, Path(settings.socket_path))
    clock = ManualClock()
    async with running(settings, agentapi=agentapi, coder=coder, clock=clock) as handle:
        await wait_until(lambda: handle.daemon.mirror.current and handle.states() == ["idle"])
        assert await stop_on(clock, handle) == 0
    assert coder.at_upload == [(1, True)], "the stream and the socket were still up"
    assert agentapi.subscribers == 0
    assert not await anyio.Path(settings.socket_path).exists()
    assert len(coder.snapshots) == 1


async def test_a_hanging_upload_holds_the_watchers_only_for_the_grace(settings: Settings) -> None:
    assert settings.socket_path is not None
    socket_path = Path(settings.socket_path)
    agentapi = FakeAgentAPI()
    coder = GatedCoder(agentapi, socket_path)
    coder.gate = anyio.Event()
    clock = ManualClock()
    settings = settings.replace(shutdown_budget=30.0)
    async with running(settings, agentapi=agentapi, coder=coder, clock=clock) as handle:
        await wait_until(lambda: handle.daemon.mirror.current and handle.states() == ["idle"])
        handle.daemon.stop_path.request_stop("first")
        await wait_until(lambda: len(coder.at_upload) == 1)
        # Still watching: a report sent now is taken and delivered like any other.
        done = AppStatus(AppState.COMPLETE, "Saved")
        assert await send_to_daemon(socket_path, done) == {"ok": True}
        await wait_until(lambda: handle.states() == ["idle", "complete"])
        assert agentapi.subscribers == 1
        # The grace passes on the clock with the upload still unanswered: torn down beside it.
        clock.advance(TEARDOWN_GRACE)
        await wait_until(lambda: agentapi.subscribers == 0 and not socket_path.exists())
        assert handle.exit_code is None, "the upload still goes on"
        handle.daemon.stop_path.request_stop("second")
        await wait_until(lambda: handle.exit_code is not None)
    assert handle.exit_code == Outcome.INTERRUPTED.exit_code
    assert coder.snapshots == []


async def test_the_snapshot_is_the_mirror_at_the_signal(settings: Settings) -> None:
    clock = ManualClock()
    async with running(settings, clock=clock) as handle:
        mirror = handle.daemon.mirror
        await wait_until(lambda: mirror.current and handle.states() == ["idle"])
        # The body is built ahead once the mirror has been quiet...
        await drive(clock, lambda: mirror.snapshot_ready)
        # ...and not taken for the current one after a change.
        await handle.agentapi.put_message("user", "said just before the stop")
        await wait_until(lambda: len(mirror) == 2)
        assert not mirror.snapshot_ready
        handle.daemon.stop_path.request_stop("test")
        # Applied by the watchers after the signal (they run on while the upload is sent):
        # not part of the snapshot, which is the mirror as it was at the signal.
        await handle.agentapi.put_message("agent", "said after the stop")
        assert await exited_on(clock, handle) == 0
    body = json.loads(handle.coder.snapshots[0])
    assert [m["content"] for m in body["messages"]] == ["Welcome", "said just before the stop"]
    assert "GET /messages" not in handle.agentapi.requests


async def test_in_hooks_mode_the_stop_does_not_wait_for_an_upload(settings: Settings) -> None:
    # Nothing is uploaded without AgentAPI: the watchers go and the status is flushed at once,
    # not after the grace (the manual clock never moves here).
    clock = ManualClock()
    async with running(settings.replace(mode="hooks"), clock=clock) as handle:
        handle.daemon.hook_report(AppStatus(AppState.WORKING, "Editing"))
        await wait_until(lambda: handle.states() == ["working"])
        assert await stop(handle) == 0
    assert clock.now() == 0
    assert handle.coder.snapshots == []


@pytest.mark.parametrize(
    ("mode", "task", "env", "warned"),
    [
        ("events", None, {"CODER_TASKID": str(TASK)}, "CODER_TASKID"),
        (
            "poll",
            None,
            {"CODER_TASK_UUID": str(TASK), "CODER_TASK": "x"},
            "CODER_TASK, CODER_TASK_UUID",
        ),
        ("events", None, {"TASK": "x"}, None),  # nothing that looks like it: no misspelling named
        ("events", TASK, {"CODER_TASKID": "x"}, ""),  # a task id: no warning
        ("hooks", None, {"CODER_TASKID": "x"}, ""),  # no AgentAPI: no snapshot to miss
    ],
)
def test_task_id_warning(
    settings: Settings, mode: str, task: str | None, env: dict[str, str], warned: str | None
) -> None:
    settings = settings.replace(mode=mode, task_id=task)
    warning = task_id_warning(settings, Environment(env))
    if warned == "":
        assert warning is None
        return
    assert warning is not None
    assert "CODER_TASK_ID is not set" in warning["problem"]
    assert "set CODER_TASK_ID" in warning["fix"]
    if warned is None:
        assert "misspelt" not in warning
    else:
        assert warning["misspelt"].endswith(warned)


async def test_a_daemon_without_a_task_id_warns_at_start(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODER_TASKID", str(TASK))
    with capture_logs() as logs:
        async with running(settings.replace(task_id=None)) as handle:
            await wait_until(lambda: handle.states() == ["idle"])
            events = [e["event"] for e in logs]
            assert events.index("task_id_missing") < events.index("daemon_started")
            assert await stop(handle) == 0
    (warning,) = [e for e in logs if e["event"] == "task_id_missing"]
    assert warning["log_level"] == "warning"
    assert "CODER_TASKID" in warning["misspelt"]


async def test_a_task_that_raises_anything_is_one_line_then_restarted() -> None:
    """Not only the error tree: a library's UnicodeEncodeError is one `unexpected_error` line
    (type, message, where; no traceback) and the task is restarted after its backoff."""
    clock = ManualClock()
    calls: list[int] = []

    async def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise UnicodeEncodeError("ascii", "Retry-After: \u00b2", 13, 14, "not in range")

    with capture_logs() as logs, anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(supervised, flaky, clock)
            await wait_until(lambda: clock.sleepers > 0)  # the restart's backoff
            due = clock.next_due()
            assert due is not None
            clock.advance(due - clock.now())
    assert len(calls) == 2
    (line,) = [entry for entry in logs if entry["event"] == "unexpected_error"]
    assert line["error_type"] == "UnicodeEncodeError"
    assert "codec can't encode" in line["error"]
    assert line["task"].endswith("flaky")
    assert line["at"].startswith("agent/daemon/daemon.py:")
    assert "exc_info" not in line


class HeldWorking(FakeCoder):
    """Coder holding every `working` PATCH until `gate` is set: a slow Coder at the stop."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = anyio.Event()
        self.held = 0

    def client(self) -> httpx.AsyncClient:
        client = super().client()
        client.timeout = httpx.Timeout(60.0)
        return client

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH" and json.loads(request.content)["state"] == "working":
            self.held += 1
            await self.gate.wait()
        return await super().handle(request)


@pytest.mark.parametrize("hooks_mode", [False, True])
async def test_a_report_during_the_final_flush_is_sent_after_it(
    settings: Settings, hooks_mode: bool
) -> None:
    # The socket serves through the stop: a hook's report while the flush sends an older status
    # reaches the one reporter, which sends it last; only then does the socket close.
    assert settings.socket_path is not None
    socket_path = Path(settings.socket_path)
    if hooks_mode:
        settings = settings.replace(mode="hooks")
    coder = HeldWorking()
    clock = ManualClock()  # never moved: the debounce and the budget never come
    async with running(settings, coder=coder, clock=clock) as handle:
        handle.daemon.explicit_report(AppStatus(AppState.WORKING, "Refactor the parser"))
        await wait_until(lambda: coder.held == 1)
        handle.daemon.stop_path.request_stop("test")
        await wait_until(lambda: coder.held == 2)  # the final flush sends it again
        ended: dict[str, object] = {"state": "idle", "message": "Session ended", "source": "hook"}
        assert await request(socket_path, ended) == {"ok": True}
        assert await anyio.Path(socket_path).exists(), "still serving while the flush goes on"
        coder.gate.set()
        await wait_until(lambda: handle.exit_code is not None)
        assert handle.exit_code == 0
    assert [(s["state"], s["message"]) for s in coder.statuses][-1] == ("idle", "Session ended")
    assert not await anyio.Path(socket_path).exists(), "closed after the daemon's last send"
    assert await send_to_daemon(socket_path, AppStatus(AppState.IDLE, "late")) is None


async def test_a_snapshot_request_during_the_stop_gets_the_stops_upload(
    settings: Settings,
) -> None:
    assert settings.socket_path is not None
    socket_path = Path(settings.socket_path)
    agentapi = FakeAgentAPI()
    coder = GatedCoder(agentapi, socket_path)
    coder.gate = anyio.Event()
    clock = ManualClock()
    answers: list[dict[str, object]] = []
    async with running(settings, agentapi=agentapi, coder=coder, clock=clock) as handle:
        await wait_until(lambda: handle.daemon.mirror.current and handle.states() == ["idle"])
        handle.daemon.stop_path.request_stop("test")
        await wait_until(lambda: len(coder.at_upload) == 1)
        async with anyio.create_task_group() as group:

            async def ask() -> None:
                answers.append(await request(socket_path, {"request": "snapshot"}))

            group.start_soon(ask)
            await settled()
            assert answers == [], "waits for the stop's upload"
            coder.gate.set()
        assert await exited_on(clock, handle) == 0
    assert answers == [{"ok": True, "outcome": "uploaded", "exit_code": 0}]
    assert len(coder.at_upload) == 1, "no second upload beside the stop's"
