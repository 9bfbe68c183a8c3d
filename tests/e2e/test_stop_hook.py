"""`python -m agent stop-hook` against a stand-in AgentAPI process that receives real signals.

The stand-in (tests/e2e/agentapi_process.py) records, in order, every `GET /messages` and every
signal it gets, so each test reads what the hook did to AgentAPI, and in which order, from it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.abc
import pytest

from tests.e2e.conftest import TASK_ID, Peers, finish, start_agent

pytestmark = pytest.mark.anyio

MODULE_DIR = ".agentapi-module"


@dataclass
class FakeAgentAPI:
    process: anyio.abc.Process
    directory: Path
    port: int
    pid_file: Path | None

    def record(self) -> list[str]:
        path = self.directory / "record"
        return path.read_text().splitlines() if path.exists() else []


_FAKES: list[anyio.abc.Process] = []


@pytest.fixture(autouse=True)
async def _stop_fakes() -> AsyncIterator[None]:
    """Every stand-in process is killed and reaped by the test that started it."""
    yield
    while _FAKES:
        process = _FAKES.pop()
        if process.returncode is None:
            process.kill()
        with anyio.fail_after(10):
            await process.aclose()


async def start_fake_agentapi(
    directory: Path,
    *,
    pid_file: Path | None,
    state_file: Path | None = None,
    ignore_term: bool = False,
) -> FakeAgentAPI:
    await anyio.Path(directory).mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "tests.e2e.agentapi_process", str(directory)]
    if pid_file is not None:
        args += ["--pid-file", str(pid_file)]
    if ignore_term:
        args.append("--ignore-term")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTAPI_")}
    if state_file is not None:
        env["AGENTAPI_STATE_FILE"] = str(state_file)
        env["AGENTAPI_SAVE_STATE"] = "true"
    process = await anyio.open_process(
        args,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _FAKES.append(process)
    port_file = directory / "port"
    with anyio.fail_after(20):
        # Another process's file: nothing to wait on but its appearance.
        while not await anyio.Path(port_file).exists():  # noqa: ASYNC110
            await anyio.sleep(0.01)
    return FakeAgentAPI(process, directory, int(port_file.read_text()), pid_file)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def hook_env(peers: Peers, home: Path, port: int, **extra: str) -> dict[str, str]:
    """The environment the agentapi module gives its stop script, with our Coder variables."""
    env = peers.env(HOME=str(home), ARG_TASK_ID=TASK_ID, ARG_AGENTAPI_PORT=str(port))
    # The module passes the task and the port as ARG_*: ours are unset unless a test sets them.
    del env["CODER_TASK_ID"], env["CODER_MCP_AI_AGENTAPI_URL"]
    env.update(extra)
    return env


def events(stderr: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def names(stderr: str) -> list[str]:
    return [str(e["event"]) for e in events(stderr)]


async def test_drop_in_with_pid_file_and_state_persistence(peers: Peers, home: Path) -> None:
    """The module's default layout: PID file under $HOME/$ARG_MODULE_DIR_NAME."""
    state = home / MODULE_DIR / "agentapi-state.json"
    fake = await start_fake_agentapi(
        peers.workdir / "agentapi", pid_file=home / MODULE_DIR / "agentapi.pid", state_file=state
    )
    env = hook_env(
        peers,
        home,
        fake.port,
        ARG_MODULE_DIR_NAME=MODULE_DIR,
        ARG_ENABLE_STATE_PERSISTENCE="true",
        ARG_TASK_LOG_SNAPSHOT="true",
    )
    code, stderr = await finish(await start_agent(["stop-hook"], env))
    assert code == 0, stderr
    # The conversation was read before AgentAPI was signalled at all; the state save came
    # before the SIGTERM.
    assert fake.record() == ["GET /messages", "SIGUSR1", "SIGTERM"]
    with anyio.fail_after(10):
        assert await fake.process.wait() == 0
    assert state.exists()
    stored = peers.snapshot()
    assert stored is not None
    assert [m["content"] for m in stored["messages"]][-1] == "Fixed: it raced a timer"
    seen = names(stderr)
    assert seen.index("agentapi_state_saved") < seen.index("agentapi_stopped")
    assert seen.index("snapshot_uploaded") < seen.index("agentapi_stopped")
    assert seen[-1] == "stop_hook_finished"


async def test_without_a_pid_file_the_snapshot_is_still_taken(peers: Peers, home: Path) -> None:
    fake = await start_fake_agentapi(peers.workdir / "agentapi", pid_file=None)
    env = hook_env(peers, home, fake.port, ARG_MODULE_DIR_NAME=MODULE_DIR)
    code, stderr = await finish(await start_agent(["stop-hook"], env))
    assert code == 0, stderr
    assert fake.record() == ["GET /messages"]
    assert fake.process.returncode is None  # nothing told it to stop
    assert "snapshot_uploaded" in names(stderr)
    (unknown,) = [e for e in events(stderr) if e["event"] == "agentapi_pid_unknown"]
    assert "no PID file at" in str(unknown["reason"])


async def test_a_pid_file_older_than_the_process_holding_its_pid_is_not_signalled(
    peers: Peers, home: Path
) -> None:
    # AgentAPI ended long ago and its PID now belongs to another program: the PID file was
    # written an hour before that program started. Nothing is signalled; the snapshot is saved.
    pid_file = peers.workdir / "agentapi.pid"
    fake = await start_fake_agentapi(peers.workdir / "agentapi", pid_file=pid_file)
    an_hour_ago = time.time() - 3600
    os.utime(pid_file, (an_hour_ago, an_hour_ago))
    env = hook_env(peers, home, fake.port, ARG_PID_FILE_PATH=str(pid_file))
    code, stderr = await finish(await start_agent(["stop-hook"], env))
    assert code == 0, stderr
    assert fake.record() == ["GET /messages"], "no signal reached it"
    assert fake.process.returncode is None
    assert "snapshot_uploaded" in names(stderr)
    (reused,) = [e for e in events(stderr) if e["event"] == "agentapi_pid_reused"]
    assert reused["pid"] == fake.process.pid


async def test_agentapi_ignoring_sigterm_is_killed(peers: Peers, home: Path) -> None:
    pid_file = peers.workdir / "custom" / "agentapi.pid"
    fake = await start_fake_agentapi(
        peers.workdir / "agentapi", pid_file=pid_file, ignore_term=True
    )
    # Ours win over ARG_*: the URL here is right, the port in ARG_AGENTAPI_PORT is not.
    env = hook_env(
        peers,
        home,
        9,
        CODER_MCP_AI_AGENTAPI_URL=f"http://127.0.0.1:{fake.port}",
        ARG_PID_FILE_PATH=str(pid_file),
        CODER_TASK_AGENT_AGENTAPI_STOP_TIMEOUT="0.5",
    )
    code, stderr = await finish(await start_agent(["stop-hook", "--strict"], env))
    assert code == 0, stderr
    with anyio.fail_after(10):
        assert await fake.process.wait() == -9
    assert fake.record() == ["GET /messages", "SIGTERM"]
    seen = names(stderr)
    assert "snapshot_uploaded" in seen
    assert "agentapi_killed" in seen
    assert "agentapi_stopped" not in seen


async def test_task_id_not_a_uuid_is_logged_and_agentapi_still_stopped(
    peers: Peers, home: Path
) -> None:
    pid_file = peers.workdir / "agentapi.pid"
    fake = await start_fake_agentapi(peers.workdir / "agentapi", pid_file=pid_file)
    env = hook_env(peers, home, fake.port, ARG_TASK_ID="task-42", ARG_PID_FILE_PATH=str(pid_file))
    code, stderr = await finish(await start_agent(["stop-hook"], env))
    assert code == 0, stderr
    assert fake.record() == ["SIGTERM"]
    assert peers.snapshot_requests() == []
    (problem,) = [e for e in events(stderr) if e["event"] == "stop_hook_input_problem"]
    assert "ARG_TASK_ID: 'task-42' is not a UUID" in str(problem["problem"])
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    ("change", "reason", "logged_above"),
    [
        ({"ARG_TASK_ID": ""}, "no task id: neither CODER_TASK_ID nor ARG_TASK_ID is set", False),
        ({"ARG_TASK_ID": "task-42"}, "unusable (logged above)", True),
        ({"CODER_AGENT_URL": ""}, "unusable (logged above)", True),
    ],
)
async def test_a_skipped_snapshot_names_what_is_missing(
    peers: Peers,
    home: Path,
    *,
    refused_port: int,
    change: dict[str, str],
    reason: str,
    logged_above: bool,
) -> None:
    env = hook_env(peers, home, refused_port, **change)
    code, stderr = await finish(await start_agent(["stop-hook"], env))
    assert code == 0, stderr
    (skipped,) = [e for e in events(stderr) if e["event"] == "snapshot_skipped"]
    assert reason in str(skipped["reason"])
    problems = [e for e in events(stderr) if e["event"] == "stop_hook_input_problem"]
    assert bool(problems) is logged_above, "said to be logged above only when it is"


async def test_strict_gives_our_exit_codes(peers: Peers, home: Path, refused_port: int) -> None:
    env = hook_env(peers, home, refused_port, ARG_TASK_ID="task-42")
    code, _ = await finish(await start_agent(["stop-hook", "--strict"], env))
    assert code == 2
    # AgentAPI gone (the port refuses): exit 0, or 3 with --strict; the URL is named.
    env = hook_env(peers, home, refused_port)
    code, stderr = await finish(await start_agent(["stop-hook"], env))
    assert code == 0
    (unread,) = [e for e in events(stderr) if e["event"] == "agentapi_messages_failed"]
    assert f"http://localhost:{refused_port}/messages" in str(unread["error"])
    assert [e["reason"] for e in events(stderr) if e["event"] == "snapshot_failed"] == [
        "AgentAPI did not answer, so there is no conversation to save"
    ]
    code, _ = await finish(await start_agent(["stop-hook", "--strict"], env))
    assert code == 3


async def test_snapshot_off_and_no_state_file(peers: Peers, home: Path) -> None:
    """ARG_TASK_LOG_SNAPSHOT=false: no fetch. Persistence on, but AgentAPI has no state file."""
    pid_file = peers.workdir / "agentapi.pid"
    fake = await start_fake_agentapi(peers.workdir / "agentapi", pid_file=pid_file)
    env = hook_env(
        peers,
        home,
        fake.port,
        ARG_TASK_LOG_SNAPSHOT="false",
        ARG_ENABLE_STATE_PERSISTENCE="true",
        ARG_PID_FILE_PATH=str(pid_file),
    )
    code, stderr = await finish(await start_agent(["stop-hook", "--strict"], env))
    assert code == 0, stderr
    assert fake.record() == ["SIGTERM"]
    assert peers.snapshot_requests() == []
    skipped = [e for e in events(stderr) if e["event"] == "agentapi_state_save_skipped"]
    assert skipped[0]["reason"] == "AgentAPI runs without a state file"


async def test_race_lost_the_conversation_comes_from_the_state_file(
    peers: Peers, home: Path
) -> None:
    """The module's own script SIGTERMed AgentAPI first: it saved its state and stopped."""
    state = home / MODULE_DIR / "agentapi-state.json"
    pid_file = home / MODULE_DIR / "agentapi.pid"
    fake = await start_fake_agentapi(
        peers.workdir / "agentapi", pid_file=pid_file, state_file=state
    )
    fake.process.terminate()  # what the module's script does as soon as it starts
    with anyio.fail_after(10):
        assert await fake.process.wait() == 0
    env = hook_env(
        peers,
        home,
        fake.port,
        ARG_MODULE_DIR_NAME=MODULE_DIR,
        ARG_ENABLE_STATE_PERSISTENCE="true",
    )
    code, stderr = await finish(await start_agent(["stop-hook", "--strict"], env))
    assert code == 0, stderr
    stored = peers.snapshot()
    assert stored is not None
    assert [m["content"] for m in stored["messages"]][-1] == "Fixed: it raced a timer"
    (used,) = [e for e in events(stderr) if e["event"] == "snapshot_from_state_file"]
    assert used["path"] == str(state)
    assert used["messages"] == 3
    # Without state persistence there is nothing to fall back on: exit 3 under --strict.
    env["ARG_ENABLE_STATE_PERSISTENCE"] = "false"
    code, stderr = await finish(await start_agent(["stop-hook", "--strict"], env))
    assert code == 3
    assert "snapshot_from_state_file" not in names(stderr)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (str(2**31), "past the largest PID"),  # used to end the hook before the upload
        ("1", "init"),
        ("pgrp", "process group"),  # the test's process group is the hook's
        ("parent", "its parent"),  # the test process started the hook
        ("fifo", "FIFO"),  # used to hang the hook
    ],
)
async def test_a_pid_file_naming_what_must_never_be_signalled(
    peers: Peers, home: Path, content: str, words: str
) -> None:
    fake = await start_fake_agentapi(peers.workdir / "agentapi", pid_file=None)
    pid_file = peers.workdir / "agentapi.pid"
    if content == "fifo":
        os.mkfifo(pid_file, 0o600)
    else:
        value = {"pgrp": os.getpgrp(), "parent": os.getpid()}.get(content, content)
        pid_file.write_text(f"{value}\n")
    env = hook_env(peers, home, fake.port, ARG_PID_FILE_PATH=str(pid_file))
    code, stderr = await finish(await start_agent(["stop-hook", "--strict"], env))
    assert code == 0, stderr  # the upload's outcome: nothing ended the hook before it
    assert "snapshot_uploaded" in names(stderr)
    assert fake.record() == ["GET /messages"]
    (refused,) = [e for e in events(stderr) if e["event"] == "agentapi_pid_refused"]
    assert str(pid_file) in str(refused["problem"])
    assert words in str(refused["problem"])
