"""At the stop a report is never overtaken by the daemon's older one: Coder ends with the newest.

A workspace stop stops the agent too, whose hooks fire while the daemon winds down (Claude Code's
`SessionEnd`). The daemon's final flush may still be sending an older wanted status, held by a
slow Coder; here the Coder stand-in holds the daemon's `working` until the hook has run, so the
two cross whenever the hook's report can take another road than the daemon's one reporter.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from standins.http import Request, Response
from tests.e2e.conftest import Peers, finish, start_agent, terminate
from tests.e2e.test_hooks import claude, hook, statuses
from tests.fakes import wait_until
from tests.faults.servers import serve_on_loopback

pytestmark = pytest.mark.anyio


class SlowCoder:
    """The Coder stand-in, holding every `working` status PATCH while `holding` until `release`."""

    def __init__(self, peers: Peers) -> None:
        self.peers = peers
        self.holding = False
        self.held = 0  # `working` PATCHes that arrived while holding
        self.release = anyio.Event()

    async def handle(self, request: Request) -> Response:
        status = request.path.endswith("/app-status")
        if self.holding and status and json.loads(request.body).get("state") == "working":
            self.held += 1
            await self.release.wait()
        return await self.peers.coder.handle(request)


@asynccontextmanager
async def slow_coder(peers: Peers) -> AsyncIterator[tuple[SlowCoder, str]]:
    coder = SlowCoder(peers)
    async with anyio.create_task_group() as group:
        port = await group.start(
            lambda task_status: serve_on_loopback(coder.handle, task_status=task_status)
        )
        yield coder, f"http://127.0.0.1:{port}"
        coder.release.set()
        group.cancel_scope.cancel()


@pytest.mark.parametrize("mode", ["events", "poll", "hooks"])
async def test_a_hook_during_the_stop_is_not_overtaken_by_the_final_flush(
    peers: Peers, mode: str
) -> None:
    async with slow_coder(peers) as (coder, url):
        env = peers.env(
            CODER_AGENT_URL=url,
            CODER_TASK_AGENT_MODE=mode,
            CODER_TASK_AGENT_POLL_INTERVAL="0.05",
            # The hook's working stands against AgentAPI's `stable` (rule 4b) for the whole test.
            CODER_TASK_AGENT_WORKING_DEBOUNCE="600",
            # Whatever the machine's load, the budget never ends the test's wait for the hook.
            CODER_TASK_AGENT_SHUTDOWN_BUDGET="60",
        )
        daemon = await start_agent(["run"], env)
        await wait_until((peers.workdir / "run" / "report.sock").exists, within=20)
        if mode != "hooks":
            await wait_until(lambda: peers.states() == ["idle"], within=20)
        coder.holding = True
        prompt = claude("UserPromptSubmit", prompt="Refactor the parser")
        assert (await hook("claude-code", env, prompt))[0] == 0
        await wait_until(lambda: coder.held == 1, within=20)  # the reporter's send, held
        terminate(daemon)
        # The watchers are torn down (the reporter's send abandoned) and the stop path's final
        # flush sends `working` again: held too. Now the agent's session ends.
        await wait_until(lambda: coder.held == 2, within=20)
        code, stderr = await hook("claude-code", env, claude("SessionEnd", reason="other"))
        assert code == 0, stderr
        coder.release.set()
        code, stderr = await finish(daemon, within=30)
    assert code == 0, stderr
    assert statuses(peers)[-1] == ("idle", "Session ended"), statuses(peers)
    assert '"no_daemon"' not in stderr
