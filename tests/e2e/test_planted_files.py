"""Files planted where another user could write, met by real `hook` and `run` processes.

The whole table of plants runs against each reader in tests/test_trust.py and
tests/test_daemon.py; here the commands themselves, as the agent and systemd run them: each
goes on, warns once, and exits with its documented code, bounded by the harness's timeouts (a
FIFO opened the usual way would hang them).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.e2e.conftest import Peers, finish, start_agent, terminate
from tests.e2e.test_hooks import claude, hook, statuses
from tests.fakes import wait_until
from tests.planted import OTHER_UID

pytestmark = pytest.mark.anyio

THEIRS = {"state": "complete", "message": "Theirs", "uri": "https://evil.example/"}


def warnings_about(stderr: str, path: Path) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [
        line
        for line in lines
        if line["event"] == "untrusted_file_ignored" and line["file"] == str(path)
    ]


async def test_a_hook_with_a_fifo_for_memory_returns_at_once(peers: Peers) -> None:
    memory = peers.workdir / "run" / "last-report.json"  # `peers` made the directory, 0700
    os.mkfifo(memory, 0o600)
    # No daemon: the hook reports straight to Coder, after reading the rules' memory.
    code, stderr = await hook("claude-code", peers.env(), claude("Stop", stop_hook_active=False))
    assert code == 0, stderr  # `hook` asserts an empty stdout, under its own timeout
    assert statuses(peers) == [("idle", "Turn finished")]
    (warning,) = warnings_about(stderr, memory)
    assert "FIFO" in str(warning["problem"])


def _fifo(memory: Path) -> None:
    os.mkfifo(memory, 0o600)


def _their_directory(memory: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a directory to another user needs root")
    # Another user made the runtime directory first and left their complete in it.
    os.chmod(memory.parent, 0o755)  # noqa: S103 - theirs, readable by all
    memory.write_text(json.dumps(THEIRS))
    os.chown(memory.parent, OTHER_UID, OTHER_UID)


@pytest.mark.parametrize("plant", [_fifo, _their_directory], ids=["FIFO", "their directory"])
async def test_a_daemon_starts_past_a_planted_memory_and_stops_on_sigterm(
    peers: Peers, plant: object
) -> None:
    memory = peers.workdir / "run" / "last-report.json"
    assert callable(plant)
    plant(memory)
    daemon = await start_agent(["run"], peers.env())
    # What AgentAPI says (idle), never their complete.
    await wait_until(lambda: peers.states() == ["idle"], within=20)
    terminate(daemon)
    code, stderr = await finish(daemon)
    assert code == 0, stderr
    assert peers.states() == ["idle"]
    assert "Theirs" not in json.dumps(peers.coder.store.statuses())
    assert "last_report_restored" not in stderr
    assert len(warnings_about(stderr, memory)) == 1
