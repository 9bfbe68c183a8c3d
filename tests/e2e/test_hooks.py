"""`hook AGENT` as real subprocesses, for every agent, with and without a daemon.

The daemon runs without AgentAPI (`CODER_MCP_AI_AGENTAPI_URL=none`): its status comes from the
agent's hooks only, which is how Coder's newer Claude Code and Codex modules run the agents.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from collections.abc import Mapping

import anyio
import pytest

from agent.hooks import AGENTS
from agent.models import AppStatus
from agent.reportsocket.server import serve_reports
from standins.coder.faults import Fault
from tests.e2e.conftest import TOKEN, Peers, finish, start_agent, terminate
from tests.fakes import wait_until
from tests.hookturns import TURNS

pytestmark = pytest.mark.anyio


async def hook(
    agent: str, env: Mapping[str, str], stdin: bytes = b"", *args: str
) -> tuple[int, str]:
    """Run `python -m agent hook AGENT ARGS` with `stdin`; its exit code and stderr.

    Asserts what every hook run must give the agent: exactly the stdout its registry row says
    (nothing, or Gemini's `{}`: several agents add a hook's stdout to the model's context or
    read it as a decision) and no token anywhere.
    """
    with anyio.fail_after(30):
        result = await anyio.run_process(
            [sys.executable, "-m", "agent", "hook", agent, *args],
            input=stdin,
            env=dict(env),
            check=False,
        )
    stderr = result.stderr.decode("utf-8", errors="replace")
    expected = AGENTS[agent].stdout.encode() if agent in AGENTS else b""
    assert result.stdout == expected
    assert TOKEN not in stderr
    return result.returncode, stderr


async def snapshot_now() -> tuple[str, int]:
    return "uploaded", 0


@pytest.mark.parametrize("agent", list(AGENTS))
async def test_every_agents_turn_reaches_the_report_socket(peers: Peers, agent: str) -> None:
    """Each call of a realistic turn, one process each, handed to a listening report socket."""
    received: list[AppStatus] = []
    hooks: list[AppStatus] = []
    env = peers.env()
    expected = [call.reports for call in TURNS[agent] if call.reports is not None]
    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            await group.start(
                functools.partial(
                    serve_reports, on_snapshot=snapshot_now, on_hook_report=hooks.append
                ),
                peers.workdir / "run" / "report.sock",
                received.append,
            )
            for call in TURNS[agent]:
                code, stderr = await hook(agent, env, call.stdin, *call.args)
                assert code == 0, stderr
                assert stderr == "", stderr  # handed over: nothing to say
            group.cancel_scope.cancel()
    assert [(s.state.value, s.message) for s in hooks] == expected
    assert received == []  # every report is marked as a hook's: rule 7 applies to them
    assert statuses(peers) == []  # the daemon (here: nobody) delivers, not the hook


def claude(event: str, **fields: object) -> bytes:
    return json.dumps({"session_id": "s1", "hook_event_name": event, **fields}).encode()


def statuses(peers: Peers) -> list[tuple[str, str]]:
    return [(row["state"], row["message"]) for row in peers.coder.store.statuses()]


async def test_a_daemon_without_agentapi_reports_from_hooks(peers: Peers) -> None:
    env = peers.env(CODER_MCP_AI_AGENTAPI_URL="none")
    daemon = await start_agent(["run"], env)
    socket = peers.workdir / "run" / "report.sock"
    await wait_until(socket.exists, within=20)

    code, _ = await hook("claude-code", env, claude("SessionStart", source="startup"))
    assert code == 0
    await wait_until(lambda: len(statuses(peers)) == 1, within=10)
    prompt = claude("UserPromptSubmit", prompt="Refactor the parser\nand its tests")
    assert (await hook("claude-code", env, prompt))[0] == 0
    # Each delivered before the next: the reporter sends the latest, so two reports in quick
    # succession could rightly become one.
    await wait_until(lambda: len(statuses(peers)) == 2, within=10)
    tool = claude("PreToolUse", tool_name="Bash", tool_input={"command": "pytest"})
    assert (await hook("claude-code", env, tool))[0] == 0
    await wait_until(lambda: len(statuses(peers)) == 3, within=10)
    code, stderr = await finish(await start_agent(["report", "complete", "Opened PR #3"], env))
    assert code == 0, stderr
    # Claude Code's Stop and SessionEnd come after the agent's own `report complete`: they
    # must not turn the task back to idle.
    assert (await hook("claude-code", env, claude("Stop", stop_hook_active=False)))[0] == 0
    assert (await hook("claude-code", env, claude("SessionEnd", reason="other")))[0] == 0
    terminate(daemon)  # the stop path flushes anything still pending
    code, stderr = await finish(daemon)
    assert code == 0, stderr
    assert statuses(peers) == [
        ("idle", "Waiting for input"),
        ("working", "Refactor the parser"),
        ("working", "Using Bash"),
        ("complete", "Opened PR #3"),
    ]
    lines = [json.loads(line) for line in stderr.splitlines()]
    (started,) = [line for line in lines if line["event"] == "daemon_started"]
    assert started["agentapi"] is None
    assert started["mode"] == "hooks"
    assert "hooks only" in started["status_from"]
    assert not any(line["event"].startswith("agentapi_") for line in lines)
    assert list(peers.agentapi.requests) == []  # AgentAPI was never asked anything
    (skipped,) = [line for line in lines if line["event"] == "snapshot_skipped"]
    assert "no AgentAPI" in skipped["reason"]


async def test_without_a_daemon_a_hook_reports_straight_to_coder(peers: Peers) -> None:
    env = peers.env()
    payload = json.dumps(
        {"type": "agent-turn-complete", "turn-id": "1", "last-assistant-message": "Done."}
    )
    code, stderr = await hook("codex", env, b"", payload)
    assert code == 0, stderr
    assert statuses(peers) == [("idle", "Done.")]
    (line,) = [json.loads(line) for line in stderr.splitlines()]  # one line, not three
    assert (line["event"], line["direct"]) == ("report_delivered", True)
    assert "no socket at" in line["no_daemon"]


async def test_without_a_daemon_the_rules_still_hold(peers: Peers) -> None:
    """Each hook is its own process: the rules' memory is the daemon's file, kept between them."""
    env = peers.env()
    code, stderr = await finish(await start_agent(["report", "complete", "Opened PR #3"], env))
    assert code == 0, stderr
    assert '"no_daemon"' in stderr
    # Claude Code's Stop after the agent's own `report complete`: not sent, the task stays done.
    code, stderr = await hook("claude-code", env, claude("Stop", stop_hook_active=False))
    assert code == 0
    (held,) = [json.loads(line) for line in stderr.splitlines() if "report_held" in line]
    assert (held["state"], held["shown"]) == ("idle", "complete")
    assert statuses(peers) == [("complete", "Opened PR #3")]
    # A daemon started now restores it (the same file), as after a crash.
    daemon = await start_agent(["run"], peers.env(CODER_MCP_AI_AGENTAPI_URL="none"))
    await wait_until((peers.workdir / "run" / "report.sock").exists, within=20)
    terminate(daemon)
    code, stderr = await finish(daemon)
    assert code == 0, stderr
    assert "last_report_restored" in stderr
    # The next prompt ends the hold; the turn's end is idle again.
    prompt = claude("UserPromptSubmit", prompt="Now the docs")
    assert (await hook("claude-code", env, prompt))[0] == 0
    assert (await hook("claude-code", env, claude("Stop", stop_hook_active=False)))[0] == 0
    assert statuses(peers)[-2:] == [("working", "Now the docs"), ("idle", "Turn finished")]
    assert not (peers.workdir / "run" / "last-report.json").exists()


@pytest.mark.parametrize(
    ("agent", "stdin", "args", "words"),
    [
        ("claude-code", b"not json", (), "the event is not JSON"),
        ("claude-code", b"[1, 2]", (), "the event is not a JSON object"),
        ("codex", b"", (), "the event is not JSON"),
        ("gemini", b"{", (), "the event is not JSON"),
        ("kiro", b"[" * 100_000, (), "the event is not JSON"),
        ("claude-code", b"{}", ("{}",), "claude-code passes the event on stdin"),
        ("claude", b"{}", (), "unknown agent 'claude'"),
    ],
)
async def test_bad_input_never_fails_the_agent(
    peers: Peers, agent: str, stdin: bytes, args: tuple[str, ...], words: str
) -> None:
    code, stderr = await hook(agent, peers.env(), stdin, *args)
    assert code == 0
    (line,) = [json.loads(line) for line in stderr.splitlines() if "hook_failed" in line]
    assert words in line["error"]
    assert statuses(peers) == []


async def test_a_huge_event_is_cut_not_read_whole(peers: Peers) -> None:
    big = b'{"hook_event_name": "UserPromptSubmit", "prompt": "' + b"x" * (17 << 20) + b'"}'
    # subprocess's communicate, not anyio's: the hook stops reading and exits, and the writer
    # then meets a closed pipe, which communicate ignores (as an agent would).
    argv = [sys.executable, "-m", "agent", "hook", "claude-code"]
    with anyio.fail_after(60):
        result = await anyio.to_thread.run_sync(
            lambda: subprocess.run(
                argv, input=big, env=peers.env(), capture_output=True, check=False
            )
        )
    assert (result.returncode, result.stdout) == (0, b"")
    assert b"larger than" in result.stderr
    assert statuses(peers) == []


@pytest.mark.parametrize(
    ("agent", "redirections"),
    [("claude-code", "<&-"), ("claude-code", "<&- 2>&-"), ("gemini", "<&- >&- 2>&-")],
)
async def test_closed_standard_streams_never_fail_the_agent(
    peers: Peers, agent: str, redirections: str
) -> None:
    """An agent may start the hook with stdin, stdout or stderr closed: still exit 0."""
    script = f'exec "$0" -m agent hook {agent} {redirections}'
    with anyio.fail_after(30):
        result = await anyio.run_process(
            ["sh", "-c", script, sys.executable], env=peers.env(), check=False
        )
    assert result.returncode == 0, result.stderr
    if "2>&-" not in redirections:
        assert b"no event: stdin is closed" in result.stderr


# `--then-r`: an abbreviation, which the fast dispatch leaves to argparse; both forms must
# give the payload that follows the option to the hook.
@pytest.mark.parametrize("option", ["--then-run", "--then-r"])
async def test_codex_notify_runs_the_users_program_after_reporting(
    peers: Peers, option: str
) -> None:
    """The chaining contract of the installer: `--then-run JSON` and Codex's PAYLOAD appended."""
    out = peers.workdir / "notified.json"
    program = [sys.executable, "-c", f"import sys; open({str(out)!r}, 'w').write(sys.argv[-1])"]
    payload = json.dumps({"type": "agent-turn-complete", "last-assistant-message": "Shipped."})
    code, stderr = await hook("codex", peers.env(), b"", option, json.dumps(program), payload)
    assert code == 0, stderr
    assert statuses(peers) == [("idle", "Shipped.")]
    assert json.loads(out.read_text()) == json.loads(payload)


async def test_codex_notify_chain_survives_a_missing_program(peers: Peers) -> None:
    payload = json.dumps({"type": "agent-turn-complete", "last-assistant-message": "Shipped."})
    then = json.dumps(["/nonexistent/notify-program", "--flag"])
    code, stderr = await hook("codex", peers.env(), b"", "--then-run", then, payload)
    assert code == 0
    assert statuses(peers) == [("idle", "Shipped.")]
    (line,) = [json.loads(x) for x in stderr.splitlines() if "hook_then_run_failed" in x]
    assert line["program"] == "/nonexistent/notify-program"


async def test_a_then_run_that_is_not_a_json_array_is_logged(peers: Peers) -> None:
    payload = json.dumps({"type": "agent-turn-complete", "last-assistant-message": "Shipped."})
    code, stderr = await hook("codex", peers.env(), b"", "--then-run", "notify-send", payload)
    assert code == 0
    assert statuses(peers) == [("idle", "Shipped.")]
    (line,) = [json.loads(x) for x in stderr.splitlines() if "hook_then_run_failed" in x]
    assert "not a JSON array" in line["error"]


async def test_an_unparseable_event_still_runs_the_users_program(peers: Peers) -> None:
    out = peers.workdir / "notified.txt"
    program = [sys.executable, "-c", f"import sys; open({str(out)!r}, 'w').write(sys.argv[-1])"]
    code, _ = await hook("codex", peers.env(), b"", "--then-run", json.dumps(program), "not json")
    assert code == 0
    assert out.read_text() == "not json"


async def test_coder_down_never_fails_the_agent(peers: Peers, refused_url: str) -> None:
    env = peers.env(CODER_AGENT_URL=refused_url, CODER_TASK_AGENT_REQUEST_TIMEOUT="0.3")
    code, stderr = await hook("claude-code", env, claude("Stop"))
    assert code == 0
    # Logged once, one line; which error it names (refused, or the deadline) depends on the
    # machine's load.
    (line,) = [json.loads(line) for line in stderr.splitlines()]
    assert (line["event"], line["direct"]) == ("hook_failed", True)
    assert "no_daemon" in line


async def test_where_the_agent_shows_stderr_a_delivered_report_prints_nothing(
    peers: Peers, refused_url: str
) -> None:
    """Auggie shows a tool hook's stderr to the user: only errors are logged there."""
    tool = json.dumps({"hook_event_name": "PreToolUse", "tool_name": "view"}).encode()
    code, stderr = await hook("auggie", peers.env(), tool)
    assert (code, stderr) == (0, "")
    assert statuses(peers) == [("working", "Using view")]
    down = peers.env(CODER_AGENT_URL=refused_url, CODER_TASK_AGENT_REQUEST_TIMEOUT="0.3")
    code, stderr = await hook("auggie", down, tool)
    assert code == 0
    assert [json.loads(line)["event"] for line in stderr.splitlines()] == ["hook_failed"]


async def test_an_event_that_reports_nothing_sends_nothing(peers: Peers) -> None:
    code, stderr = await hook("claude-code", peers.env(), claude("PostToolUse", tool_name="Bash"))
    assert code == 0
    assert stderr == ""
    assert statuses(peers) == []


def test_hook_is_in_the_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agent", "hook", "--help"], capture_output=True, check=False
    )
    assert result.returncode == 0
    assert b"claude-code" in result.stdout


async def test_a_complete_coder_never_got_is_sent_in_place_of_a_later_hooks_idle(
    peers: Peers,
) -> None:
    """The daemon takes `report complete` while Coder fails, and dies (SIGKILL) before it could
    deliver it. The next hook's idle, sent straight to Coder, is held by the complete (rule 7):
    holding it against a complete Coder never got would leave Coder showing what it showed
    before (a working, for ever). The complete is sent instead, once."""
    peers.coder.faults = [Fault("app-status", status=503, times=10_000)]
    env = peers.env(CODER_MCP_AI_AGENTAPI_URL="none")
    daemon = await start_agent(["run"], env)
    await wait_until((peers.workdir / "run" / "report.sock").exists, within=20)
    code, stderr = await finish(await start_agent(["report", "complete", "Opened PR #4"], env))
    assert code == 0, stderr
    await wait_until(lambda: len(peers.coder.requests) > 0, within=10)  # it tried, and failed
    daemon.kill()
    await daemon.wait()
    peers.coder.faults = []
    stop = claude("Stop", stop_hook_active=False)
    for _ in range(2):
        code, stderr = await hook("claude-code", env, stop)
        assert code == 0, stderr
    assert statuses(peers) == [("complete", "Opened PR #4")]
