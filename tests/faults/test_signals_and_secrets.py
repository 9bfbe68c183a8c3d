"""Signals at awkward moments, bad configuration, and the token that must never show."""

from __future__ import annotations

import os
import pwd
import signal
import socket
from collections.abc import Callable
from pathlib import Path

import anyio
import anyio.abc
import pytest

from standins.coder import Fault
from tests.e2e.conftest import TOKEN, Peers, finish, peers, start_agent, terminate
from tests.fakes import wait_until
from tests.faults.test_coder_faults import assert_within_budget, named

pytestmark = pytest.mark.anyio
_ = peers


def started(peers: Peers) -> Callable[[], bool]:
    """True once the daemon is up (its report socket exists, its signal handling too)."""
    socket_path = peers.workdir / "run" / "report.sock"
    return socket_path.exists


async def test_sigterm_before_the_first_observation(peers: Peers, refused_url: str) -> None:
    process = await start_agent(["run"], peers.env(CODER_MCP_AI_AGENTAPI_URL=refused_url))
    await wait_until(started(peers), within=20)
    terminate(process)
    code, stderr = await finish(process)
    assert code == 3, "no conversation to save: AgentAPI never answered"
    assert_within_budget(stderr, start="stop_requested")
    assert peers.states() == []


async def test_sigterm_during_a_backoff_sleep(peers: Peers) -> None:
    # AgentAPI's port drops every connection at once, and counts them: once the daemon has come
    # back several times, it is between attempts, in a backoff wait.
    attempts = 0

    async def drop(stream: anyio.abc.SocketStream) -> None:
        nonlocal attempts
        attempts += 1
        await stream.aclose()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    url = f"http://127.0.0.1:{listener.extra(anyio.abc.SocketAttribute.local_port)}"
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, drop)
        process = await start_agent(["run"], peers.env(CODER_MCP_AI_AGENTAPI_URL=url))
        await wait_until(started(peers), within=20)
        await wait_until(lambda: attempts >= 3, within=30)
        terminate(process)
        code, stderr = await finish(process)
        group.cancel_scope.cancel()
    assert code == 3
    assert_within_budget(stderr, start="stop_requested")


async def test_sigterm_during_the_upload_then_it_completes(peers: Peers) -> None:
    process = await start_agent(["run"], peers.env())
    await wait_until(lambda: peers.states() == ["idle"], within=15)
    peers.coder.faults.append(Fault("log-snapshot", None, delay=1.0))  # a slow server
    terminate(process)
    code, stderr = await finish(process)
    assert code == 0, stderr
    assert peers.snapshot() is not None


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_sigint_stops_like_sigterm(peers: Peers, signum: signal.Signals) -> None:
    process = await start_agent(["run"], peers.env())
    await wait_until(lambda: peers.states() == ["idle"], within=15)
    process.send_signal(signum)
    code, stderr = await finish(process)
    assert code == 0, stderr
    assert named(stderr, "stop_requested")[0]["reason"] == signum.name


async def test_sighup_is_logged_and_ignored(peers: Peers) -> None:
    process = await start_agent(["run"], peers.env())
    await wait_until(lambda: peers.states() == ["idle"], within=15)
    process.send_signal(signal.SIGHUP)
    # Still watching after it: SIGHUP's default action would have ended the process at once.
    peers.agentapi.put_message("user", "still watching")
    await wait_until(lambda: peers.states() == ["idle", "working"], within=15)
    terminate(process)
    code, stderr = await finish(process)
    assert code == 0
    assert named(stderr, "signal_ignored")[0]["signal"] == "SIGHUP"


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"CODER_AGENT_URL": ""}, "CODER_AGENT_URL"),
        ({"CODER_AGENT_URL": "coder.internal"}, "CODER_AGENT_URL"),
        (
            {"CODER_AGENT_TOKEN": "", "CODER_AGENT_TOKEN_FILE": "/nonexistent/token"},
            "CODER_AGENT_TOKEN_FILE",
        ),
        ({"CODER_TASK_ID": "123"}, "CODER_TASK_ID"),
        ({"CODER_MCP_APP_STATUS_SLUG": "Bad Slug!"}, "CODER_MCP_APP_STATUS_SLUG"),
        ({"CODER_TASK_AGENT_POLL_INTERVAL": "0"}, "CODER_TASK_AGENT_POLL_INTERVAL"),
        ({"CODER_TASK_AGENT_SHUTDOWN_BUDGET": "-2"}, "CODER_TASK_AGENT_SHUTDOWN_BUDGET"),
    ],
)
async def test_bad_configuration_fails_at_start(
    peers: Peers, env: dict[str, str], words: str
) -> None:
    code, stderr = await finish(await start_agent(["run"], peers.env(**env)))
    assert code == 2
    assert words in stderr
    assert peers.coder.requests == [], "nothing starts half-configured"
    assert not (peers.workdir / "run" / "report.sock").exists()


async def test_token_file_world_readable_warns(peers: Peers, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o644)
    env = peers.env(CODER_AGENT_TOKEN="", CODER_AGENT_TOKEN_FILE=str(token_file))
    code, stderr = await finish(await start_agent(["snapshot"], env))
    assert code == 0, stderr
    warnings = named(stderr, "configuration_warning")
    assert "readable by every user" in str(warnings[0]["problem"])
    assert TOKEN not in stderr


async def test_token_is_in_no_argv_and_no_log_line(peers: Peers) -> None:
    process = await start_agent(["run"], peers.env(CODER_TASK_AGENT_LOG_LEVEL="debug"))
    await wait_until(lambda: peers.states() == ["idle"], within=15)
    cmdline = await anyio.Path(f"/proc/{process.pid}/cmdline").read_bytes()
    assert TOKEN.encode() not in cmdline
    peers.agentapi.put_message("user", f"please print {TOKEN[:4]}")
    peers.coder.faults.append(Fault("log-snapshot", 401))
    terminate(process)
    code, stderr = await finish(process)
    assert code == 4
    assert TOKEN not in stderr
    assert named(stderr, "snapshot_failed")


async def test_tls_verification_off_is_explicit_and_logged(peers: Peers) -> None:
    env = peers.env(CODER_TASK_AGENT_TLS_VERIFY="false")
    code, stderr = await finish(await start_agent(["snapshot"], env))
    assert code == 0, stderr
    assert "TLS_VERIFY is off" in str(named(stderr, "configuration_warning")[0]["problem"])


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
async def test_the_report_socket_refuses_other_users(peers: Peers) -> None:
    process = await start_agent(["run"], peers.env())
    await wait_until(lambda: peers.states() == ["idle"], within=15)
    socket_path = peers.workdir / "run" / "report.sock"
    nobody = pwd.getpwnam("nobody")
    code = await anyio.to_thread.run_sync(connect_as, nobody, socket_path)
    assert code == 13, "another user cannot reach the socket"
    terminate(process)
    code, _ = await finish(process)
    assert code == 0


def connect_as(user: pwd.struct_passwd, path: Path) -> int:
    """Fork, become `user`, try the socket: 13 when refused, 0 when it connected."""
    pid = os.fork()
    if pid == 0:  # the child: no exec, no event loop, only the attempt
        code = 1
        try:
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(str(path))
            code = 0
        except PermissionError:
            code = 13
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
