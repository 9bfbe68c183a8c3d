"""`python -m agent snapshot` as a subprocess against real loopback stand-ins."""

from __future__ import annotations

import json

import pytest

from standins.coder import Fault
from tests.e2e.conftest import TASK_ID, TOKEN, Peers, finish, start_agent, terminate
from tests.fakes import wait_until
from tests.faults.test_coder_faults import (
    ENDS_ON_ITS_OWN,
    UNTIL_THE_BUDGET_ENDS,
    ended_by_the_budget,
)

pytestmark = pytest.mark.anyio


async def test_snapshot_uploads_the_conversation(peers: Peers) -> None:
    peers.agentapi.put_message("user", "Refactor the parser 漢字 👍")
    peers.agentapi.put_message("agent", "Done: " + "x" * 200_000)
    code, stderr = await finish(await start_agent(["snapshot"], peers.env()))
    assert code == 0, stderr
    (request,) = peers.snapshot_requests()
    assert request["method"] == "POST"
    assert request["path"] == f"/api/v2/workspaceagents/me/tasks/{TASK_ID}/log-snapshot"
    assert request["query"] == "format=agentapi"
    assert request["token_ok"] is True
    assert request["status"] == 204
    assert request["body_bytes"] <= 65536
    body = peers.snapshot()
    assert body is not None
    contents = [m["content"] for m in body["messages"]]
    assert contents[1] == "Refactor the parser 漢字 👍"
    assert contents[-1].endswith("x" * 1000)
    assert contents[-1].startswith("[… ")
    assert TOKEN not in stderr
    events = [json.loads(line)["event"] for line in stderr.splitlines()]
    assert "snapshot_uploaded" in events


async def test_the_full_command_line_takes_the_same_path(peers: Peers) -> None:
    # A repeated option is argparse's to parse (not the hooks' fast path): `Settings` are read
    # first, and the one-shot path still runs from them.
    peers.agentapi.put_message("user", "parsed by argparse")
    args = ["snapshot", "--budget", "4", "--budget", "5", "--log-level", "debug"]
    code, stderr = await finish(await start_agent(args, peers.env()))
    assert code == 0, stderr
    started = [json.loads(line) for line in stderr.splitlines() if "snapshot_started" in line]
    assert started[0]["budget_s"] <= 5
    body = peers.snapshot()
    assert body is not None
    assert body["messages"][-1]["content"] == "parsed by argparse"


async def test_no_task_id_is_skipped(peers: Peers) -> None:
    code, stderr = await finish(await start_agent(["snapshot"], peers.env(CODER_TASK_ID="")))
    assert code == 0
    assert "snapshot_skipped" in stderr
    assert "no task id" in stderr
    assert peers.snapshot_requests() == []


async def test_server_without_tasks_is_unsupported(peers: Peers) -> None:
    peers.coder.tasks_enabled = False
    code, stderr = await finish(await start_agent(["snapshot"], peers.env()))
    assert code == 0
    assert "unsupported by this server" in stderr


async def test_rejected_upload_exits_4(peers: Peers) -> None:
    code, stderr = await finish(
        await start_agent(["snapshot"], peers.env(CODER_AGENT_TOKEN="wrong-token"))
    )
    assert code == 4
    assert "snapshot_failed" in stderr
    assert "wrong-token" not in stderr


async def test_retries_through_503_then_uploads(peers: Peers) -> None:
    peers.coder.faults += [Fault("log-snapshot", 503, times=2)]
    code, stderr = await finish(await start_agent(["snapshot"], peers.env(**ENDS_ON_ITS_OWN)))
    assert code == 0, stderr
    assert [r["status"] for r in peers.snapshot_requests()] == [503, 503, 204]


async def test_coder_down_exits_5_within_the_budget(peers: Peers, refused_url: str) -> None:
    env = peers.env(CODER_AGENT_URL=refused_url, **UNTIL_THE_BUDGET_ENDS)
    code, stderr = await finish(await start_agent(["snapshot"], env))
    # By the process's own clock: timing from outside would count start-up and the load too.
    # Exit 5 once /messages answered in time (it shares the budget: exit 3 when it did not).
    ended_by_the_budget(code, stderr)


async def test_agentapi_down_exits_3(peers: Peers, refused_url: str) -> None:
    env = peers.env(CODER_MCP_AI_AGENTAPI_URL=refused_url)
    code, stderr = await finish(await start_agent(["snapshot"], env))
    assert code == 3
    assert "AgentAPI did not answer" in stderr


async def test_bad_configuration_exits_2_naming_the_variable(peers: Peers) -> None:
    code, stderr = await finish(
        await start_agent(["snapshot"], peers.env(CODER_TASK_ID="not-a-uuid"))
    )
    assert code == 2
    assert "CODER_TASK_ID" in stderr
    code, stderr = await finish(await start_agent(["snapshot", "--budget", "-3"], peers.env()))
    assert code == 2
    assert "--budget (CODER_TASK_AGENT_SHUTDOWN_BUDGET)" in stderr


async def test_with_a_daemon_running_the_daemon_uploads(peers: Peers) -> None:
    peers.agentapi.put_message("user", "Save this now")  # before the daemon: in its replay
    daemon = await start_agent(["run"], peers.env())
    await wait_until(lambda: peers.states() == ["idle"], within=15)
    code, stderr = await finish(await start_agent(["snapshot"], peers.env()))
    assert code == 0, stderr
    events = [json.loads(line)["event"] for line in stderr.splitlines()]
    assert events == ["snapshot_by_daemon"]
    (request,) = peers.snapshot_requests()
    assert request["status"] == 204
    body = peers.snapshot()
    assert body is not None
    assert body["messages"][-1]["content"] == "Save this now"
    terminate(daemon)
    code, daemon_log = await finish(daemon)
    assert code == 0
    assert "snapshot_requested" in daemon_log


def shape(stderr: str) -> list[tuple[str, str, list[str]]]:
    """The stop path's lines (event, level, field names): what both commands must print alike."""
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [
        (line["event"], line["level"], sorted(line))
        for line in lines
        if line["event"].startswith(("snapshot_", "agentapi_messages"))
    ]


@pytest.mark.parametrize(
    "scenario", ["uploaded after a 503", "unsupported", "rejected", "agentapi down"]
)
async def test_snapshot_and_stop_hook_print_the_same_lines(
    peers: Peers, refused_url: str, scenario: str
) -> None:
    # One blocking shell (agent.stop.oneshot) for both commands: the stop hook has no lines of
    # its own for the stop path, and ends as `snapshot` does (`--strict` gives its exit code).
    peers.agentapi.put_message("user", "the same for both commands")
    env = {"CODER_TASK_AGENT_LOG_LEVEL": "debug"}
    if scenario == "rejected":
        env["CODER_AGENT_TOKEN"] = "wrong-token"
    if scenario == "agentapi down":
        env["CODER_MCP_AI_AGENTAPI_URL"] = refused_url
    peers.coder.tasks_enabled = scenario != "unsupported"
    results = {}
    for command in (["snapshot"], ["stop-hook", "--strict"]):
        if scenario == "uploaded after a 503":
            peers.coder.faults += [Fault("log-snapshot", 503, times=1)]
        results[command[0]] = await finish(await start_agent(command, peers.env(**env)))
    (snapshot_code, snapshot_log), (hook_code, hook_log) = results["snapshot"], results["stop-hook"]
    assert snapshot_code == hook_code, (snapshot_log, hook_log)
    assert shape(snapshot_log) == shape(hook_log), (snapshot_log, hook_log)
    assert shape(snapshot_log), snapshot_log
