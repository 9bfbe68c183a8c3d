"""Chaos end to end: a real `python -m agent run` against the Coder stand-in behind a front that
fails, cuts answers and applies requests late, while the agent flips between working and idle.
What users judge first: the status Coder ends up showing is the agent's, never stuck."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from standins.http import Request, Response
from tests.e2e.conftest import Peers, finish, peers, start_agent, terminate
from tests.fakes import wait_until
from tests.faults.servers import serve_on_loopback

pytestmark = pytest.mark.anyio
_ = peers


class FlakyCoder:
    """In front of the Coder stand-in, records the state of every PATCH. `flapping`: each other
    request a 503 (nothing applied); the others applied, their answer alternately whole or cut
    off after its head (the outcome unknown to the sender). `late`: a working's PATCH is
    answered cut off and held (`held`), applied just after the next other report is.
    `fail_next_idle`: the next idle PATCH gets a 503, then the front is `up` (`recovered_at`:
    the index in `seen` from which it is)."""

    def __init__(self, peers: Peers) -> None:
        self.coder = peers.coder
        self.mode = "up"
        self.seen: list[tuple[str, str]] = []  # (state, what the front did)
        self._count = 0
        self.held: list[Request] = []  # `late`: a working's PATCH, answered cut, not applied yet
        self.fail_next_idle = False
        self.recovered_at: int | None = None

    async def handle(self, request: Request) -> Response:
        state = str(json.loads(request.body).get("state", "")) if request.method == "PATCH" else ""
        self._count += 1
        if self.fail_next_idle and state == "idle":
            # Coder recovers right after this failure, decided here rather than by the test
            # racing the daemon's retries (which, on a loaded machine, can get the idle
            # through while still flapping, leaving nothing to send once it recovers).
            self.fail_next_idle = False
            self.seen.append((state, "503"))
            self.mode = "up"
            self.recovered_at = len(self.seen)
            return Response(status=503, body=b'{"message":"down"}')
        if self.mode == "late" and state == "working":
            self.held.append(request)
            self.seen.append((state, "held, answer cut"))
            return self._cut()
        if self.mode == "flapping" and self._count % 2:
            self.seen.append((state, "503"))
            return Response(status=503, body=b'{"message":"down"}')
        response = await self.coder.handle(request)
        if self.mode == "late" and state and self.held:
            # The proxy's upstream applies the held working only now, after this report.
            await self.coder.handle(self.held[-1])  # the working the daemon last sent
            self.held.clear()
        if self.mode != "flapping" or self._count % 4 == 0:
            self.seen.append((state, "applied"))
            return response
        self.seen.append((state, "applied, answer cut"))
        return self._cut()

    @staticmethod
    def _cut() -> Response:
        """A 200 whose head goes out and whose connection then drops."""

        async def cut() -> AsyncIterator[bytes]:
            yield b"{"
            raise anyio.BrokenResourceError

        return Response(status=200, headers=[("content-length", "100")], stream=cut())

    def states(self) -> list[str]:
        return [state for state, _ in self.seen if state]


@asynccontextmanager
async def flaky_coder(peers: Peers) -> AsyncIterator[tuple[FlakyCoder, str]]:
    front = FlakyCoder(peers)
    async with anyio.create_task_group() as group:
        port = await group.start(serve_on_loopback, front.handle)
        yield front, f"http://127.0.0.1:{port}"
        group.cancel_scope.cancel()


@pytest.mark.parametrize("mode", ["events", "poll"])
async def test_a_flapping_coder_ends_showing_the_truth_sent_once_it_recovers(
    peers: Peers, mode: str
) -> None:
    async with flaky_coder(peers) as (front, url):
        process = await start_agent(
            ["run"],
            peers.env(
                CODER_AGENT_URL=url,
                CODER_TASK_AGENT_MODE=mode,
                CODER_TASK_AGENT_POLL_INTERVAL="0.05",
            ),
        )
        await wait_until(lambda: peers.states() == ["idle"], within=20)
        front.mode = "flapping"
        for turn in range(6):
            peers.agentapi.put_message("user", f"Prompt {turn}")
            peers.agentapi.set_status("running")
            await wait_until(lambda: front.states()[-1:] == ["working"], within=20)
            peers.agentapi.put_message("agent", f"Answer {turn}")
            # The last turn's idle fails once and Coder recovers: the daemon must send it again.
            front.fail_next_idle = turn == 5
            peers.agentapi.set_status("stable")
            await wait_until(lambda: front.states()[-1:] == ["idle"], within=20)
        await wait_until(lambda: front.recovered_at is not None, within=20)
        settled = front.recovered_at
        await wait_until(lambda: front.seen[-1:] == [("idle", "applied")], within=40)
        terminate(process)
        code, stderr = await finish(process)
    assert code == 0, stderr
    assert peers.states()[-1] == "idle", front.seen
    after = [(state, did) for state, did in front.seen[settled:] if state]
    # Once when Coder recovers; an older working's outcome was unknown, so the idle may be
    # sent once more REQUEST_TIMEOUT later (agent.daemon.reporter), if the stop comes after.
    assert after[:1] == [("idle", "applied")], "sent when Coder recovers"
    assert after[1:] in ([], [("idle", "applied")]), "then nothing else"


async def test_a_working_applied_late_after_the_idle_is_overwritten_by_the_idle(
    peers: Peers,
) -> None:
    # A proxy took the working's PATCH and dropped the connection (the daemon never learnt
    # the outcome); the agent went idle, the idle was delivered, and only then the proxy's
    # upstream applied the working. Coder showed working for good.
    async with flaky_coder(peers) as (front, url):
        process = await start_agent(
            ["run"], peers.env(CODER_AGENT_URL=url, CODER_TASK_AGENT_REQUEST_TIMEOUT="2")
        )
        await wait_until(lambda: peers.states() == ["idle"], within=20)
        front.mode = "late"
        peers.agentapi.put_message("user", "Ship it")
        peers.agentapi.set_status("running")
        await wait_until(lambda: bool(front.held), within=20)
        peers.agentapi.set_status("stable")
        await wait_until(lambda: peers.states()[-1:] == ["working"], within=20)  # applied late
        assert peers.states() == ["idle", "idle", "working"]
        await wait_until(lambda: len(peers.states()) > 3, within=20)
        terminate(process)
        code, stderr = await finish(process)
    assert code == 0, stderr
    assert peers.states()[3:] == ["idle"], "the idle sent once more, REQUEST_TIMEOUT later"
    assert '"status_resent"' in stderr
