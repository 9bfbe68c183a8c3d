"""Each entry path, run as a real subprocess, imports only what its path needs (issue 14).

Agent hooks run `report` at every step of a turn and `snapshot` at every stop: handed to a
running daemon they must cost about what starting Python costs, so they may import the standard
library and `agent`'s stdlib-only modules, nothing else. Not timed: this asserts *which* modules
were imported (`python -X importtime` lists every one), so the discipline cannot silently
regress; the timings live in bench/.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import anyio
import anyio.abc
import pytest

from agent.hooks import AGENTS
from agent.models import AppStatus
from agent.reportsocket.server import serve_reports
from tests.e2e.conftest import TOKEN
from tests.hookturns import first_reporting_call

pytestmark = pytest.mark.anyio

HEAVY = {"httpx", "httpcore", "h11", "pydantic", "pydantic_core", "structlog", "anyio", "tenacity"}
# Standard-library modules that cost more than the rest of the fast path: argparse, dataclasses
# (inspect, ast...), pathlib, typing, and what a full validation of the settings needs.
SLOW_STDLIB = {"argparse", "dataclasses", "inspect", "pathlib", "typing", "uuid", "urllib"}
# What the handed-over path does without: `socket` (enums of its constants, `selectors`:
# agent.reportsocket.client uses `_socket`), and `struct` and `math`, extension modules each
# loaded for one call. `json` (and `re` with it) comes in: the request, the answer and every log
# line are JSON, and one JSON implementation is worth its few milliseconds (bench/README.md).
HOOK_WRAPPERS = {"socket", "selectors", "struct", "math"}
WRAPPERS = HOOK_WRAPPERS
# Stdlib-only modules of ours a fast path may use.
FAST_OURS = {
    "agent",
    "agent.boundary",
    "agent.cli",
    "agent.config",
    "agent.errors",
    "agent.hooks",
    "agent.hooks.command",
    "agent.hooks.events",
    "agent.hooks.payload",
    "agent.log",
    "agent.models",
    "agent.reportsocket",
    "agent.reportsocket.client",
    "agent.reportsocket.trust",
}
# Each agent's mapping module, imported by its own `hook AGENT` only (Qwen's reuses Claude Code's).
MAPPINGS = {f"agent.hooks.{agent.module}" for agent in AGENTS.values()}
USES = {"qwen": {"agent.hooks.claude_code"}}
NEVER_ON_ONE_SHOT = {
    "agent.daemon.daemon",
    "agent.reportsocket.server",
    "agent.daemon.mirror",
    "agent.daemon.reporter",
    "agent.rules",
}
# A report sent straight to Coder applies the reporting rules (agent.rules) to the memory file
# the daemon keeps (agent.lastreport): the rules, not the daemon.
NEVER_ON_DIRECT_REPORT = NEVER_ON_ONE_SHOT - {"agent.rules"}
NEVER_EXCEPT_ITS_COMMAND = {"standins", "agent.standins", "agent.demo"}


async def imported(args: list[str], env: dict[str, str]) -> tuple[int, set[str], str]:
    """Run `python -X importtime -m agent ARGS`; its exit code, imported modules and log lines."""
    result = await anyio.run_process(
        [sys.executable, "-X", "importtime", "-m", "agent", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    stderr = result.stderr.decode("utf-8", errors="replace")
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    modules.discard("imported package")
    logs = "\n".join(line for line in stderr.splitlines() if not line.startswith("import time:"))
    return result.returncode, modules, logs


def tops(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def base_env(tmp_path: Path, refused_url: str, **extra: str) -> dict[str, str]:
    """Coder and AgentAPI at a port that refuses: whatever listens on this machine (AgentAPI's
    default port included) is never reached."""
    return {
        "PATH": "/usr/bin:/bin",
        "CODER_AGENT_URL": refused_url,
        "CODER_MCP_AI_AGENTAPI_URL": refused_url,
        "CODER_AGENT_TOKEN": TOKEN,
        "CODER_TASK_ID": "0b7e3c2a-1d4f-4a5b-8c6d-7e8f9a0b1c2d",
        "CODER_MCP_APP_STATUS_SLUG": "agent",
        "CODER_TASK_AGENT_SOCKET": str(tmp_path / "run" / "report.sock"),
        # Not the real agent's socket (a direct report would go there when it exists).
        "CODER_AGENT_SOCKET_PATH": str(tmp_path / "coder-agent.sock"),
        "CODER_TASK_AGENT_LOG_FORMAT": "json",
        **extra,
    }


async def snapshot_now() -> tuple[str, int]:
    return "uploaded", 0


@pytest.mark.parametrize(
    "args",
    [
        ["report", "complete", "Done"],
        ["snapshot"],
        ["hook", "codex", '{"type": "agent-turn-complete", "last-assistant-message": "Done"}'],
    ],
)
async def test_handed_to_a_daemon_only_the_standard_library(
    tmp_path: Path, refused_url: str, args: list[str]
) -> None:
    received: list[AppStatus] = []
    hooks: list[AppStatus] = []
    path = tmp_path / "run" / "report.sock"
    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            await group.start(
                functools.partial(
                    serve_reports, on_snapshot=snapshot_now, on_hook_report=hooks.append
                ),
                path,
                received.append,
            )
            code, modules, logs = await imported(args, base_env(tmp_path, refused_url))
            group.cancel_scope.cancel()
    assert code == 0, logs
    assert tops(modules) & HEAVY == set(), logs
    ours = {m for m in modules if m.split(".")[0] == "agent"}
    assert tops(modules) & SLOW_STDLIB == set(), logs
    assert tops(modules) & (HOOK_WRAPPERS if args[0] == "hook" else WRAPPERS) == set(), logs
    assert ours <= FAST_OURS | MAPPINGS
    assert ours & MAPPINGS == ({"agent.hooks.codex"} if args[0] == "hook" else set())
    assert "agent.reportsocket.client" in ours
    if args[0] == "hook":
        assert [(s.state.value, s.message) for s in hooks] == [("idle", "Done")]
    assert TOKEN not in logs
    if args[0] == "report":
        assert [s.message for s in received] == ["Done"]


@pytest.mark.parametrize("agent", list(AGENTS))
async def test_every_agents_hook_imports_its_own_mapping_and_the_standard_library(
    tmp_path: Path, refused_url: str, agent: str
) -> None:
    hooks: list[AppStatus] = []
    call = first_reporting_call(agent)
    path = tmp_path / "run" / "report.sock"
    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            await group.start(
                functools.partial(serve_reports, on_hook_report=hooks.append), path, hooks.append
            )
            result = await anyio.run_process(
                [sys.executable, "-X", "importtime", "-m", "agent", "hook", agent, *call.args],
                env=base_env(tmp_path, refused_url),
                input=call.stdin,
                check=False,
            )
            group.cancel_scope.cancel()
    stderr = result.stderr.decode()
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert result.returncode == 0, stderr
    assert [(s.state.value, s.message) for s in hooks] == [call.reports]
    assert tops(modules) & (HEAVY | SLOW_STDLIB | HOOK_WRAPPERS) == set()
    ours = {m for m in modules if m.split(".")[0] == "agent"}
    assert ours - FAST_OURS == {f"agent.hooks.{AGENTS[agent].module}"} | USES.get(agent, set())


async def test_report_without_a_daemon_imports_the_direct_path_only(
    tmp_path: Path, refused_url: str
) -> None:
    code, modules, logs = await imported(
        ["report", "idle", "x"],
        base_env(tmp_path, refused_url, CODER_TASK_AGENT_REQUEST_TIMEOUT="0.2"),
    )
    assert code == 5, logs  # nothing listens at the Coder URL: not delivered
    assert '"no_daemon"' in logs  # the direct path's one outcome line
    assert {"httpx", "anyio"} <= tops(modules)
    assert modules & (NEVER_ON_DIRECT_REPORT | NEVER_EXCEPT_ITS_COMMAND) == set()


# The one-shot snapshot's blocking shell: ours that it may use besides FAST_OURS.
PLAIN_OURS = FAST_OURS | {
    "agent.retry",
    "agent.conversation",
    "agent.wire",
    "agent.http_blocking",
    "agent.stop",
    "agent.stop.oneshot",
    "agent.config",
    "agent.snapshot",
    "agent.stop.outcome",
}


async def test_snapshot_without_a_daemon_takes_the_blocking_shell(
    tmp_path: Path, refused_url: str
) -> None:
    code, modules, logs = await imported(
        ["snapshot"], base_env(tmp_path, refused_url, CODER_TASK_AGENT_SHUTDOWN_BUDGET="0.5")
    )
    assert code == 3, logs  # no AgentAPI, no daemon mirror: no conversation
    assert "agent.stop.oneshot" in modules
    assert tops(modules) & HEAVY == set(), logs
    # http.client (with the email package it parses headers with) is the one HTTP client of the
    # short commands; OpenSSL (`_ssl`, a third of http.client's import), a CA bundle and threads
    # only for an https URL or a name to look up; `_signal` without the enums `signal` builds.
    # (`ssl` itself is listed, loading nothing: http.client's attempt, refused on purpose.)
    assert {"http.client", "email.parser"} <= modules
    assert tops(modules) & {"_ssl", "certifi", "asyncio", "threading", "signal"} == set()
    # urllib.parse is how a URL is checked (agent.config, http.client).
    assert tops(modules) & SLOW_STDLIB == {"urllib"}, logs
    ours = {m for m in modules if m.split(".")[0] == "agent"}
    assert ours <= PLAIN_OURS, ours - PLAIN_OURS
    assert TOKEN not in logs


async def test_snapshot_with_a_proxy_hands_the_upload_to_httpx(
    tmp_path: Path, refused_url: str
) -> None:
    # A listening AgentAPI is needed for the upload to be tried: a conversation of one message.
    # The proxy refuses what it is asked to carry (401): the process ends on its own, so its
    # budgets are ones no loaded machine exhausts.
    async def serve(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            asked = await stream.receive()
            if not asked.startswith(b"GET /messages"):
                await stream.send(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
                return
            body = (
                b'{"messages":[{"id":1,"role":"user","content":"hi",'
                b'"time":"2026-01-01T00:00:00Z"}]}'
            )
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n"
            await stream.send(head.encode() + body)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    url = f"http://127.0.0.1:{listener.extra(anyio.abc.SocketAttribute.local_port)}"
    env = base_env(
        tmp_path,
        refused_url,
        CODER_TASK_AGENT_SHUTDOWN_BUDGET="60",
        CODER_TASK_AGENT_REQUEST_TIMEOUT="60",
        CODER_TASK_AGENT_STOP_FETCH_TIMEOUT="60",
        HTTP_PROXY=url,  # AgentAPI and the proxy: one listener
        CODER_MCP_AI_AGENTAPI_URL=url,
    )
    with anyio.fail_after(60):
        async with listener, anyio.create_task_group() as group:
            group.start_soon(listener.serve, serve)
            code, modules, logs = await imported(["snapshot"], env)
            group.cancel_scope.cancel()
    assert code == 4, logs  # the proxy's refusal: the upload went to it
    assert {"agent.http_async", "httpx"} <= modules
    assert modules & (NEVER_ON_ONE_SHOT | NEVER_EXCEPT_ITS_COMMAND) == set()


async def test_the_daemon_imports_no_stand_in(tmp_path: Path) -> None:
    # `--version` parses like any command and leaves before the daemon starts; the import of
    # the daemon itself is checked by importing it as the `run` path does.
    result = await anyio.run_process(
        [sys.executable, "-X", "importtime", "-c", "import agent.cli, agent.daemon.daemon"],
        check=False,
    )
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.decode().splitlines()
        if line.startswith("import time:")
    }
    assert "agent.daemon.daemon" in modules
    assert {m for m in modules if m.startswith(tuple(NEVER_EXCEPT_ITS_COMMAND))} == set()
