"""The demo, end to end, as a user runs it: exit 0, every step shown, nothing left behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def demo_env(tmp_path: Path) -> dict[str, str]:
    """The demo makes its work directory under TMPDIR: this test's own directory."""
    return {**os.environ, "TMPDIR": str(tmp_path)}


def agent_processes(tmp_path: Path) -> set[int]:
    """Pids of processes this test's demo started: their argv or environment names its
    work directory (another demo running on the machine at the same time does not count)."""
    mark = str(tmp_path).encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            seen = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        if mark in seen:
            found.add(int(entry.name))
    return found


def test_demo_runs_the_whole_loop(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "standins", "demo", "--speed", "8"],
        env=demo_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    received = re.findall(r"Coder received status (\w+)", out)
    assert received == ["idle", "working", "idle", "complete"]
    assert '"snapshot": true' in out
    assert "Fix the failing date parser test" in out
    assert "demo finished: every step happened" in out
    assert ".venv/bin/coder-task-agent-dev coder" in out, "the closing tip works from a checkout"
    assert "\033[" not in out, "plain output when piped"
    assert agent_processes(tmp_path) == set(), "no process left behind"


# Ctrl-C at a terminal: SIGINT raises KeyboardInterrupt. A process started with SIGINT ignored
# (a background job of a shell without job control, some CI runners) keeps it ignored, and
# Python then installs no handler: the test would inherit whatever its runner was given.
AS_AT_A_TERMINAL = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from standins.cli import main; raise SystemExit(main())"
)


def test_demo_cleans_up_when_interrupted(tmp_path: Path) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-c", AS_AT_A_TERMINAL, "demo", "--speed", "0.2"],
        env=demo_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert demo.stdout is not None
    for line in demo.stdout:
        if "sending a prompt" in line:
            break
    else:
        pytest.fail("the demo never reached the prompt step")
    demo.send_signal(signal.SIGINT)
    rest = demo.stdout.read()
    demo.stdout.close()
    assert demo.wait(timeout=30) == 130, rest
    assert "interrupted" in rest
    deadline = time.monotonic() + 10
    while agent_processes(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert agent_processes(tmp_path) == set(), "no process left behind after Ctrl-C"
