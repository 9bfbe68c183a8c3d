"""Status through the Coder agent's socket: the daemon and `report` as real subprocesses.

The agent-socket stand-in stores what it relays in the Coder stand-in's store, so
`peers.states()` is the one history Coder shows whichever way a status came; the Coder
stand-in's request log tells the HTTP ones apart.
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import anyio
import anyio.abc
import httpx
import pytest

from standins.agentsocket import AgentSocketStandIn, SocketFault, run_agent_socket_standin
from tests.e2e.conftest import Peers, finish, start_agent, terminate
from tests.fakes import wait_until

pytestmark = pytest.mark.anyio


class AgentSocket:
    """The stand-in agent socket at the path the daemon's environment names."""

    def __init__(self, peers: Peers, group: anyio.abc.TaskGroup) -> None:
        self.peers = peers
        self.group = group
        self.path: Path = peers.workdir / "run" / "coder-agent.sock"
        self._scope = anyio.CancelScope()

    async def start(self, standin: AgentSocketStandIn | None = None) -> AgentSocketStandIn:
        standin = standin or AgentSocketStandIn()
        standin.store = self.peers.coder.store
        scope = self._scope = anyio.CancelScope()

        async def serve(*, task_status: anyio.abc.TaskStatus[Path]) -> None:
            with scope:
                await run_agent_socket_standin(standin, self.path, task_status=task_status)

        await self.group.start(serve)
        return standin

    async def stop(self) -> None:
        self._scope.cancel()
        await wait_until(lambda: not self.path.exists(), within=20)


def patched(peers: Peers) -> list[str]:
    """The states that came by HTTP PATCH (the stand-in records every request)."""
    rows = [r for r in peers.coder.requests if r["path"].endswith("/app-status")]
    return [str(r["status"]) for r in rows]


def relayed(standin: AgentSocketStandIn) -> list[str]:
    return [s.state for s in standin.statuses]


def events(stderr: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


class Log:
    """The daemon's log lines, read while it runs (`finish` then drains the rest)."""

    def __init__(self, process: anyio.abc.Process) -> None:
        self.process = process
        self.data = b""

    async def delivered(self, count: int, within: float = 15.0) -> None:
        """Wait until the daemon itself confirmed `count` deliveries (not only the server)."""
        assert self.process.stderr is not None
        with anyio.fail_after(within):
            while self.text().count('"event": "status_delivered"') < count:
                self.data += await self.process.stderr.receive()

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


async def send_prompt(peers: Peers, text: str) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.post(
            f"{peers.agentapi_url}/message", json={"content": text, "type": "user"}
        )
        assert answer.status_code == 200, answer.text


async def test_the_daemon_reports_through_the_socket(peers: Peers, tmp_path: Path) -> None:
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.setblocking(False)
    async with anyio.create_task_group() as group:
        agent = AgentSocket(peers, group)
        standin = await agent.start()
        env = peers.env(NOTIFY_SOCKET=str(tmp_path / "notify.sock"))
        process = await start_agent(["run"], env)
        log = Log(process)
        await log.delivered(1)
        await send_prompt(peers, "Write the release notes")
        await log.delivered(3)
        terminate(process)
        code, rest = await finish(process)
        stderr = log.text() + rest
        group.cancel_scope.cancel()
    assert code == 0, stderr
    assert relayed(standin) == ["idle", "working", "idle"]
    assert standin.statuses[1].message == "Write the release notes"
    assert patched(peers) == []
    # The snapshot has no socket method: it still goes by HTTP, with the token.
    assert len(peers.snapshot_requests()) == 1
    started = next(e for e in events(stderr) if e["event"] == "daemon_started")
    assert started["status_transport"] == "socket"
    assert standin.protocol_errors == []
    # systemd's STATUS= says it too.
    notices = []
    with notify:
        while True:
            try:
                notices.append(notify.recv(65536).decode())
            except BlockingIOError:
                break
    ready = next(n for n in notices if "READY=1" in n)
    assert "status via socket" in ready


async def test_report_without_a_daemon_needs_no_token_on_the_socket(peers: Peers) -> None:
    env = peers.env()
    del env["CODER_AGENT_TOKEN"], env["CODER_AGENT_URL"]
    async with anyio.create_task_group() as group:
        agent = AgentSocket(peers, group)
        standin = await agent.start()
        report = await start_agent(
            ["report", "complete", "Shipped it", "--uri", "https://x.io"], env
        )
        code, stderr = await finish(report)
        group.cancel_scope.cancel()
    assert code == 0, stderr
    assert relayed(standin) == ["complete"]
    assert (standin.statuses[0].message, standin.statuses[0].uri) == ("Shipped it", "https://x.io")
    assert peers.coder.requests == []
    delivered = next(e for e in events(stderr) if e["event"] == "report_delivered")
    assert delivered["transport"] == "socket"


async def test_a_hooks_mode_daemon_needs_no_token_on_the_socket(peers: Peers) -> None:
    # No AgentAPI, so no snapshot to upload; the agent's socket takes the status without a
    # token: the daemon runs in a workspace whose processes get none, and says so.
    env = peers.env(CODER_MCP_AI_AGENTAPI_URL="none")
    del env["CODER_AGENT_TOKEN"], env["CODER_AGENT_URL"]
    async with anyio.create_task_group() as group:
        agent = AgentSocket(peers, group)
        standin = await agent.start()
        process = await start_agent(["run"], env)
        report_socket = peers.workdir / "run" / "report.sock"
        await wait_until(report_socket.exists, within=15)
        report = await start_agent(["report", "complete", "Shipped it"], env)
        assert (await finish(report))[0] == 0
        await wait_until(lambda: relayed(standin) == ["complete"], within=15)
        terminate(process)
        code, stderr = await finish(process)
        group.cancel_scope.cancel()
    assert code == 0, stderr
    assert peers.coder.requests == []
    (warning,) = [e for e in events(stderr) if e["event"] == "status_socket_only"]
    assert "CODER_AGENT_URL is not set" in str(warning["reason"])
    started = next(e for e in events(stderr) if e["event"] == "daemon_started")
    assert started["status_transport"] == "socket"


async def test_a_daemon_that_must_upload_still_needs_the_token(peers: Peers) -> None:
    # Watching AgentAPI means a snapshot at stop, which only HTTP carries: refused at start.
    env = peers.env()
    del env["CODER_AGENT_TOKEN"]
    code, stderr = await finish(await start_agent(["run"], env))
    assert code == 2, stderr
    assert "CODER_AGENT_TOKEN" in stderr


async def test_report_without_socket_or_token_names_what_is_missing(peers: Peers) -> None:
    env = peers.env()
    del env["CODER_AGENT_TOKEN"]
    code, stderr = await finish(await start_agent(["report", "idle", "x"], env))
    assert code == 2, stderr
    assert "CODER_AGENT_TOKEN" in stderr


async def test_an_old_agent_means_http(peers: Peers) -> None:
    async with anyio.create_task_group() as group:
        agent = AgentSocket(peers, group)
        standin = await agent.start(AgentSocketStandIn(methods=("Ping",)))
        process = await start_agent(["run"], peers.env())
        log = Log(process)
        await log.delivered(1)
        report = await start_agent(["report", "complete", "Done"], peers.env())
        assert (await finish(report))[0] == 0
        await log.delivered(2)
        terminate(process)
        code, rest = await finish(process)
        stderr = log.text() + rest
        group.cancel_scope.cancel()
    assert peers.states() == ["idle", "complete"]
    assert code == 0, stderr
    assert patched(peers) == ["200", "200"]
    assert relayed(standin) == []
    # Asked once (the unknown rpc), never again for this agent.
    assert [c.method for c in standin.calls] == ["Ping", "UpdateAppStatus"]
    changed = [e for e in events(stderr) if e["event"] == "status_transport_changed"]
    assert [(e["previous"], e["transport"]) for e in changed] == [("socket", "http")]


async def test_a_switch_mid_run_neither_resends_nor_loses(peers: Peers) -> None:
    async with anyio.create_task_group() as group:
        agent = AgentSocket(peers, group)
        first = await agent.start()
        process = await start_agent(["run"], peers.env())
        log = Log(process)
        await log.delivered(1)
        await agent.stop()  # the agent goes away (restarting, say)
        await send_prompt(peers, "Fix the build")
        await log.delivered(3)
        # Back, still reconnecting to coderd for its first answer.
        second = await agent.start(AgentSocketStandIn(faults=[SocketFault("not_connected")]))
        report = await start_agent(["report", "complete", "Build fixed"], peers.env())
        assert (await finish(report))[0] == 0
        await log.delivered(4)
        terminate(process)
        code, rest = await finish(process)
        stderr = log.text() + rest
        group.cancel_scope.cancel()
    assert code == 0, stderr
    assert peers.states() == ["idle", "working", "idle", "complete"]
    assert relayed(first) == ["idle"]
    assert patched(peers) == ["200", "200"]
    assert relayed(second) == ["complete"]
    assert [c.answer.split(":")[0] for c in second.calls if c.method == "UpdateAppStatus"] == [
        "error",
        "ok",
    ]
    changed = [e for e in events(stderr) if e["event"] == "status_transport_changed"]
    assert [(e["previous"], e["transport"]) for e in changed] == [
        ("socket", "http"),
        ("http", "socket"),
    ]


async def test_forced_socket_waits_for_the_agent(peers: Peers) -> None:
    env = peers.env(CODER_TASK_AGENT_STATUS_TRANSPORT="socket")
    async with anyio.create_task_group() as group:
        agent = AgentSocket(peers, group)
        process = await start_agent(["run"], env)
        log = Log(process)
        # No socket yet: nothing is sent by HTTP; the reporter keeps trying.
        await wait_until(lambda: agent.path.parent.joinpath("report.sock").exists(), within=15)
        standin = await agent.start()
        await log.delivered(1, within=40)
        terminate(process)
        code, rest = await finish(process)
        stderr = log.text() + rest
        group.cancel_scope.cancel()
    assert code == 0, stderr
    assert relayed(standin) == ["idle"]
    assert patched(peers) == []
    assert sum(e["event"] == "status_delivery_failed" for e in events(stderr)) <= 1


async def test_a_hook_without_a_daemon_uses_the_socket(peers: Peers) -> None:
    env = peers.env()
    del env["CODER_AGENT_TOKEN"], env["CODER_AGENT_URL"]
    event = json.dumps({"hook_event_name": "UserPromptSubmit", "prompt": "Add a changelog"})
    async with anyio.create_task_group() as group:
        agent = AgentSocket(peers, group)
        standin = await agent.start()
        with anyio.fail_after(30):
            result = await anyio.run_process(
                [sys.executable, "-m", "agent", "hook", "claude-code"],
                input=event.encode(),
                env=env,
                check=False,
            )
        group.cancel_scope.cancel()
    assert result.returncode == 0
    assert result.stdout == b""
    assert [(s.state, s.message) for s in standin.statuses] == [("working", "Add a changelog")]
    assert peers.coder.requests == []
