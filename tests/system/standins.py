"""The two stand-ins as real processes on the host's loopback, for the deployed daemon to talk to.

`python -m standins agentapi` (AgentAPI with a scripted agent) and `python -m standins coder`
(Coder, recording app statuses and snapshots in SQLite), started from the test environment's own
interpreter. A daemon in an nspawn machine or a `--network=host` container reaches them at
127.0.0.1; the test reads what Coder received through the stand-in's /dev/ endpoints.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

TOKEN = "system-test-token-5c81e0d2a7"  # recognisable: must never show in a journal or log
TASK_ID = "3f9a1c2e-7b4d-4e8f-a1b2-c3d4e5f6a7b8"
SLUG = "agent"
# The scripted agent plays 20 times faster than life: a prompt's turn takes well under a second.
SPEED = "20"


@dataclass(frozen=True)
class StandIns:
    coder_url: str
    agentapi_url: str
    workdir: Path

    def environment(self, **extra: str) -> dict[str, str]:
        """The daemon's configuration for these stand-ins (everything but the token)."""
        return {
            "CODER_AGENT_URL": self.coder_url,
            "CODER_TASK_ID": TASK_ID,
            "CODER_MCP_APP_STATUS_SLUG": SLUG,
            "CODER_MCP_AI_AGENTAPI_URL": self.agentapi_url,
            # Fewer seconds of `running` before "working": the scripted turns are short.
            "CODER_TASK_AGENT_WORKING_DEBOUNCE": "0.3",
            **extra,
        }

    def env_file(self, **extra: str) -> str:
        """The environment as systemd's EnvironmentFile= reads it."""
        return "".join(f"{key}={value}\n" for key, value in self.environment(**extra).items())

    def _get(self, path: str) -> httpx.Response:
        return httpx.get(self.coder_url + path, timeout=5.0)

    def statuses(self) -> list[dict[str, Any]]:
        """Every app status Coder received, oldest first."""
        answer = self._get("/dev/app-statuses")
        answer.raise_for_status()
        rows: list[dict[str, Any]] = answer.json()["statuses"]
        return rows

    def states(self) -> list[str]:
        return [str(row["state"]) for row in self.statuses()]

    def snapshot(self) -> dict[str, Any] | None:
        """The stored snapshot body, decoded, or None before one was uploaded."""
        answer = self._get(f"/dev/snapshot/{TASK_ID}")
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        body: dict[str, Any] = json.loads(answer.json()["body"])
        return body

    def snapshot_requests(self) -> list[dict[str, Any]]:
        answer = self._get("/dev/requests")
        answer.raise_for_status()
        return [r for r in answer.json()["requests"] if r["path"].endswith("/log-snapshot")]

    def prompt(self, text: str) -> None:
        """Send the scripted agent a prompt, as a user would through AgentAPI."""
        answer = httpx.post(
            self.agentapi_url + "/message", json={"content": text, "type": "user"}, timeout=30.0
        )
        answer.raise_for_status()


def wait_for(predicate: Callable[[], bool], within: float, what: str) -> None:
    """Poll `predicate` (a real process is on the other side) until true, or fail naming `what`."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        time.sleep(0.05)


def _start(
    args: list[str], port_file: Path, log: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "standins", *args, "--port", "0", "--port-file", str(port_file)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=env,
        )


def _port(process: subprocess.Popen[bytes], port_file: Path, log: Path) -> int:
    deadline = time.monotonic() + 30
    while not port_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"stand-in did not start: {log.read_text(errors='replace')}")
        time.sleep(0.02)
    return int(port_file.read_text(encoding="utf-8").strip())


@contextmanager
def running_standins(workdir: Path) -> Iterator[StandIns]:
    """Both stand-ins, serving on 127.0.0.1 until the block ends (then SIGTERM, then kill)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CODER_")}
    with ExitStack() as stack:
        agentapi_port_file = workdir / "agentapi.port"
        agentapi = _start(
            ["agentapi", "--speed", SPEED, "--quiet"],
            agentapi_port_file,
            workdir / "agentapi.log",
            base,
        )
        stack.callback(_stop, agentapi)
        agentapi_url = (
            f"http://127.0.0.1:{_port(agentapi, agentapi_port_file, workdir / 'agentapi.log')}"
        )
        coder_port_file = workdir / "coder.port"
        coder = _start(
            [
                "coder",
                "--db",
                str(workdir / "coder.db"),
                "--task-id",
                TASK_ID,
                "--app-slug",
                SLUG,
                "--agentapi-url",
                agentapi_url,
            ],
            coder_port_file,
            workdir / "coder.log",
            {**base, "CODER_AGENT_TOKEN": TOKEN},
        )
        stack.callback(_stop, coder)
        coder_url = f"http://127.0.0.1:{_port(coder, coder_port_file, workdir / 'coder.log')}"
        yield StandIns(coder_url, agentapi_url, workdir)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
