"""`python -m agent run` as a subprocess: statuses in order, a real SIGTERM, the snapshot."""

from __future__ import annotations

import json
import signal
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest
import trustme

from standins.coder import Fault
from tests.e2e.conftest import TOKEN, Peers, finish, start_agent, terminate
from tests.fakes import wait_until
from tests.faults.servers import serve_on_loopback
from tests.faults.test_coder_faults import ENDS_ON_ITS_OWN

pytestmark = pytest.mark.anyio


async def send_prompt(peers: Peers, text: str) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.post(
            f"{peers.agentapi_url}/message", json={"content": text, "type": "user"}
        )
        assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("mode", ["events", "poll"])
async def test_status_flips_reach_coder_in_order_and_sigterm_saves(peers: Peers, mode: str) -> None:
    process = await start_agent(
        ["run"], peers.env(CODER_TASK_AGENT_MODE=mode, CODER_TASK_AGENT_POLL_INTERVAL="0.05")
    )
    await wait_until(lambda: peers.states() == ["idle"], within=15)
    await send_prompt(peers, "Write the release notes")
    await wait_until(lambda: peers.states() == ["idle", "working", "idle"], within=15)
    working = peers.coder.store.statuses()[1]
    assert working["message"] == "Write the release notes"
    terminate(process)
    code, stderr = await finish(process)
    assert code == 0, stderr
    assert len(peers.snapshot_requests()) == 1
    body = peers.snapshot()
    assert body is not None
    assert body["messages"][1]["content"] == "Write the release notes"
    assert TOKEN not in stderr
    lines = [json.loads(line) for line in stderr.splitlines()]
    assert {"daemon_started", "status_delivered", "snapshot_uploaded", "daemon_stopped"} <= {
        line["event"] for line in lines
    }


def refuses(url: str) -> bool:
    """True once nothing listens at `url` (a connection is refused)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


async def test_sigterm_with_agentapi_dead_uses_the_mirror(peers: Peers) -> None:
    peers.agentapi.put_message("user", "remember me")
    process = await start_agent(["run"], peers.env())
    await wait_until(lambda: peers.states() == ["idle"], within=15)
    peers.kill_agentapi()
    await wait_until(lambda: refuses(peers.agentapi_url), within=15)
    with socket.socket() as other:  # a server would take it (SO_REUSEADDR, as anyio binds)
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with pytest.raises(OSError, match="in use"):  # still the test's
            other.bind(("127.0.0.1", int(peers.agentapi_url.rsplit(":", 1)[1])))
    terminate(process)
    code, stderr = await finish(process)
    assert code == 0, stderr
    body = peers.snapshot()
    assert body is not None
    assert [m["content"] for m in body["messages"]][-1] == "remember me"


async def test_sigterm_with_coder_503_twice_then_204(peers: Peers) -> None:
    process = await start_agent(["run"], peers.env())
    await wait_until(lambda: peers.states() == ["idle"], within=15)
    peers.coder.faults += [Fault("log-snapshot", 503, times=2)]
    terminate(process)
    code, stderr = await finish(process)
    assert code == 0, stderr
    assert [r["status"] for r in peers.snapshot_requests()] == [503, 503, 204]


async def test_a_proxy_variable_hands_the_daemons_upload_to_httpx(peers: Peers) -> None:
    # httpx honours proxies, the daemon's own line does not: with a proxy variable set the
    # snapshot goes up through httpx (`finish` checks the path `snapshot_started` names).
    process = await start_agent(["run"], peers.env(NO_PROXY="localhost,127.0.0.1"))
    await wait_until(lambda: peers.states() == ["idle"], within=15)
    terminate(process)
    code, stderr = await finish(process)
    assert code == 0, stderr
    assert '"client": "httpx"' in stderr
    assert len(peers.snapshot_requests()) == 1


@asynccontextmanager
async def coder_over_tls(peers: Peers, ca: trustme.CA) -> AsyncIterator[str]:
    """The Coder stand-in behind HTTPS on loopback, its certificate from `ca`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    async with anyio.create_task_group() as group:
        port = await group.start(
            lambda task_status: serve_on_loopback(
                peers.coder.handle, tls=context, task_status=task_status
            )
        )
        yield f"https://127.0.0.1:{port}"
        group.cancel_scope.cancel()


async def test_the_daemons_line_trusts_ssl_cert_file_over_https(
    peers: Peers, tmp_path: Path
) -> None:
    # The line builds its own TLS context from the process's environment, as httpx does.
    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    peers.agentapi.put_message("user", "over TLS")
    async with coder_over_tls(peers, ca) as url:
        env = peers.env(CODER_AGENT_URL=url, SSL_CERT_FILE=str(bundle))
        process = await start_agent(["run"], env)
        await wait_until(lambda: peers.states() == ["idle"], within=15)
        terminate(process)
        code, stderr = await finish(process)
    assert code == 0, stderr
    body = peers.snapshot()
    assert body is not None
    assert body["messages"][-1]["content"] == "over TLS"


async def test_the_daemons_line_refuses_an_unknown_certificate(
    peers: Peers, tmp_path: Path
) -> None:
    async with coder_over_tls(peers, trustme.CA()) as url:
        # A budget no load can exhaust: neither the pending status nor the snapshot is retried
        # at the stop, since no retry within it could fix the certificate.
        env = peers.env(CODER_AGENT_URL=url, **ENDS_ON_ITS_OWN)
        process = await start_agent(["run"], env)
        # Started (its report socket is there): the status cannot be delivered either.
        await wait_until((peers.workdir / "run" / "report.sock").exists, within=15)
        terminate(process)
        code, stderr = await finish(process)
    assert code == 5, stderr
    assert "CERTIFICATE_VERIFY_FAILED" in stderr
    assert peers.snapshot_requests() == [], "nothing sent to a server that could not be verified"
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    (failed,) = [line for line in lines if line["event"] == "snapshot_failed"]
    assert failed["reason"].startswith("refused in the TLS handshake"), failed


async def test_report_command_through_the_daemon(peers: Peers) -> None:
    process = await start_agent(["run"], peers.env())
    await wait_until(lambda: peers.states() == ["idle"], within=15)
    report = await start_agent(
        ["report", "complete", "Shipped it", "--uri", "https://example.com/pr/1"], peers.env()
    )
    code, stderr = await finish(report)
    assert code == 0, stderr
    assert "report_direct" not in stderr
    await wait_until(lambda: peers.states() == ["idle", "complete"], within=15)
    terminate(process)
    code, _ = await finish(process)
    assert code == 0
    last = peers.coder.store.statuses()[-1]
    assert (last["message"], last["uri"]) == ("Shipped it", "https://example.com/pr/1")


async def test_report_command_without_a_daemon_goes_straight_to_coder(peers: Peers) -> None:
    report = await start_agent(["report", "failed", "Out of disk"], peers.env())
    code, stderr = await finish(report)
    assert code == 0, stderr
    assert '"no_daemon"' in stderr  # the direct path's one outcome line
    assert peers.coder.store.statuses()[-1]["state"] == "failure"


async def test_report_command_refuses_bad_input(peers: Peers) -> None:
    code, stderr = await finish(await start_agent(["report", "done", "x"], peers.env()))
    assert code == 2
    assert "state: must be one of working, idle, complete, failed" in stderr
    code, stderr = await finish(await start_agent(["report", "complete"], peers.env()))
    assert code == 2
    assert "summary" in stderr


async def test_second_sigterm_hurries(peers: Peers) -> None:
    process = await start_agent(["run"], peers.env(CODER_TASK_AGENT_SHUTDOWN_BUDGET="30"))
    await wait_until(lambda: peers.states() == ["idle"], within=15)
    slow = Fault("log-snapshot", 503, times=1000, delay=60)
    peers.coder.faults.append(slow)
    terminate(process)
    await wait_until(lambda: slow.times < 1000, within=15)  # the upload hangs on the server
    assert process.returncode is None
    process.send_signal(signal.SIGTERM)
    code, stderr = await finish(process, within=10)
    assert code == 6, stderr
    assert "stop_hurried" in stderr
