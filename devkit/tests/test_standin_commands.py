"""The stand-ins as a newcomer runs them: `coder-task-agent-dev agentapi|coder` in real processes.

A port already taken is one line and exit 2; the Coder stand-in accepts the slug the user
configured, says in `--help` what it needs and serves, and leaves no temporary files behind.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx
import pytest
from test_coder_standin import TASK, read_all, status_body, wait_for_port

from standins.serving import listen_error, run_server

TOKEN = "newcomer-token-3b7e"
LIMIT = 30  # seconds: each test starts an interpreter or two


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The parent's environment without Coder's variables; temporary files in `tmp_path`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CODER_")}
    return {**base, "TMPDIR": str(tmp_path), **extra}


def leftovers(directory: Path) -> list[Path]:
    """The Coder stand-in's temporary directories in `directory`."""
    return list(directory.glob("coder-standin-*"))


@contextmanager
def taken_port() -> Iterator[int]:
    """A loopback port something else is listening on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize("command", ["agentapi", "coder"])
def test_a_taken_port_is_one_line_and_exit_2(command: str, tmp_path: Path) -> None:
    with taken_port() as port:
        done = subprocess.run(
            [sys.executable, "-m", "standins", command, "--port", str(port)],
            env=env(tmp_path, CODER_AGENT_TOKEN=TOKEN),
            capture_output=True,
            text=True,
            timeout=LIMIT,
            check=False,
        )
    assert done.returncode == 2, done.stderr
    problem = [line for line in done.stderr.splitlines() if not line.startswith("{")]
    assert len(problem) == 1, done.stderr
    assert f"coder-task-agent-dev {command}: cannot listen on 127.0.0.1:{port}" in problem[0]
    assert "--port 0" in problem[0]
    assert "Traceback" not in done.stderr
    assert TOKEN not in done.stderr


def test_run_server_passes_other_failures_on() -> None:
    async def broken() -> None:
        async with anyio.create_task_group():
            raise RuntimeError("not a listening problem")

    with pytest.raises(BaseExceptionGroup) as raised:
        run_server("prog", "127.0.0.1", 1, broken)
    assert raised.group_contains(RuntimeError)


def test_listen_error_names_the_address_and_the_reason() -> None:
    refused = OSError(errno.EACCES, "Permission denied")
    assert listen_error("::1", 80, refused) == (
        "cannot listen on [::1]:80: Permission denied (ports below 1024 need privileges)"
    )


@pytest.mark.anyio
async def test_the_coder_stand_in_accepts_the_configured_slug_and_cleans_up(
    tmp_path: Path,
) -> None:
    port_file = tmp_path / "port"
    command = [sys.executable, "-m", "standins", "coder", "--port", "0"]
    command += ["--port-file", str(port_file), "--task-id", TASK]
    with anyio.fail_after(LIMIT):
        process = await anyio.open_process(
            command,
            env=env(tmp_path, CODER_AGENT_TOKEN=TOKEN),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        try:
            async with anyio.create_task_group() as group:
                stderr: list[str] = []

                async def drain() -> None:
                    stderr.append(await read_all(process.stderr))

                group.start_soon(drain)
                port = await wait_for_port(port_file, process)
                assert leftovers(tmp_path), "the default database is in a temporary directory"
                base = f"http://127.0.0.1:{port}"
                async with httpx.AsyncClient(base_url=base, timeout=5, trust_env=False) as http:
                    for slug in ("claude-code", "codex"):
                        answer = await http.patch(
                            "/api/v2/workspaceagents/me/app-status",
                            json=status_body(app_slug=slug),
                            headers={"Coder-Session-Token": TOKEN},
                        )
                        assert answer.status_code == 200, answer.text
                    rows = (await http.get("/dev/app-statuses")).json()["statuses"]
                    index = (await http.get("/")).text
                process.send_signal(signal.SIGTERM)
                assert await process.wait() == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert [row["app_slug"] for row in rows] == ["claude-code", "codex"]
    assert "/dev/app-statuses" in index
    assert leftovers(tmp_path) == [], "the temporary database is removed"
    assert TOKEN not in stderr[0]


def test_coder_help_says_token_port_slug_and_dev_endpoints() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "standins", "coder", "--help"],
        capture_output=True,
        text=True,
        timeout=LIMIT,
        check=False,
    )
    assert done.returncode == 0
    shown = done.stdout
    for needed in (
        "CODER_AGENT_TOKEN",
        "--token-file",
        "default 3000",
        "default: any slug",
        "/dev/tasks/{task}/status",
        '{"status": "paused"}',
        "/dev/app-statuses",
        "/dev/faults",
    ):
        assert needed in shown, needed


def test_the_missing_token_message_says_what_to_do(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "standins", "coder"],
        env=env(tmp_path),
        capture_output=True,
        text=True,
        timeout=LIMIT,
        check=False,
    )
    assert done.returncode == 2
    assert "set CODER_AGENT_TOKEN to the token the daemon will send" in done.stderr
    assert leftovers(tmp_path) == []
