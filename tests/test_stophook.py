"""The stop hook's parts that need no Coder: PID files, versions, AgentAPI's own configuration."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from agent.agentapi import parse_state_file
from agent.errors import BadResponse
from agent.stop import process as process_module
from agent.stop.process import (
    AgentAPIProcess,
    Unusable,
    read_pid,
    started_at,
    version_supports_state,
)
from tests.fakes import wait_until
from tests.manualclock import ManualClock


@pytest.mark.parametrize(
    ("content", "pid", "words"),
    [
        ("4242\n", 4242, ""),
        ("", None, "holds no PID"),
        ("12abc", None, "holds no PID"),
        ("-42", None, "holds no PID"),
        ("1", None, "init"),
        ("0", None, "process group"),
        (str(2**31), None, "past the largest PID"),
        (str(2**64), None, "past the largest PID"),
        (None, None, None),  # no file: no PID, nothing wrong
    ],
)
def test_read_pid(tmp_path: Path, content: str | None, pid: int | None, words: str | None) -> None:
    path = tmp_path / "agentapi.pid"
    if content is not None:
        path.write_text(content)
    if words:
        with pytest.raises(Unusable, match=words) as refused:
            read_pid(path)
        assert str(path) in str(refused.value), "the message names the file"
    else:
        assert read_pid(path) == pid


@pytest.mark.parametrize(
    ("output", "supported"),
    [
        ("agentapi version 0.12.0\n", True),
        ("agentapi version 0.12.1", True),
        ("agentapi version 1.0.0", True),
        ("agentapi version 0.11.9", False),
        ("agentapi version 0.10.0", False),
        ("agentapi version latest", True),  # the module's rule: not x.y.z passes
        ("", True),
    ],
)
def test_version_supports_state(output: str, supported: bool) -> None:
    assert version_supports_state(output) is supported


def _sleeper(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    """A process that says when it runs (before that, /proc shows its parent's environment)."""
    code = "import time; print('ready', flush=True); time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE)
    assert child.stdout is not None
    assert child.stdout.readline() == b"ready\n"
    return child


@pytest.mark.parametrize(
    ("extra_env", "args", "expected"),
    [
        (
            {"AGENTAPI_STATE_FILE": "/s/state.json", "AGENTAPI_SAVE_STATE": "true"},
            (),
            "/s/state.json",
        ),
        ({}, ("--state-file", "/s/a.json"), "/s/a.json"),
        ({}, ("--state-file=/s/b.json",), "/s/b.json"),
        ({"AGENTAPI_STATE_FILE": "/s/c.json", "AGENTAPI_SAVE_STATE": "false"}, (), None),
        ({}, (), None),
    ],
)
def test_state_file_is_read_from_the_running_process(
    extra_env: dict[str, str], args: tuple[str, ...], expected: str | None
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTAPI_")}
    child = _sleeper({**env, **extra_env}, *args)
    try:
        process = AgentAPIProcess(child.pid)
        try:
            assert process.state_file() == (True, Path(expected) if expected else None)
        finally:
            process.close()
    finally:
        child.kill()
        child.communicate()


def test_started_at_reads_when_a_process_started() -> None:
    before = time.time()
    child = _sleeper(dict(os.environ))
    try:
        started = started_at(child.pid)
    finally:
        child.kill()
        child.communicate()
    assert started is not None
    # The child started between the two readings; /proc's boot time is in whole seconds, so
    # the answer may be off by up to a second (not a timing margin: a loaded machine cannot
    # move it out of this bracket).
    assert before - 2 <= started <= time.time() + 2
    assert started_at(2**22 + 1) is None  # past pid_max: no such process


@pytest.mark.anyio
async def test_process_signals_and_exit_through_the_pidfd() -> None:
    child = _sleeper(dict(os.environ))
    process = AgentAPIProcess(child.pid)
    try:
        assert process.alive()
        clock = ManualClock()
        results: list[bool] = []
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:

                async def wait() -> None:
                    results.append(await process.wait_exit(0.05, clock))

                group.start_soon(wait)
                await wait_until(lambda: clock.deadlines == 1)
                await clock.advance_to_next()
            assert results == [False], "still running when its time was up"
            assert process.send(signal.SIGTERM)
            # Not reaped yet (a zombie of this test): still counts as gone. The manual clock
            # never moves here: only the exit can end this wait.
            assert await process.wait_exit(10, clock)
        assert not process.alive()
    finally:
        process.close()
        child.communicate()
    assert not process.send(signal.SIGTERM)  # reaped: gone


def test_state_file_in_agentapis_format() -> None:
    body = (
        b'{"version":1,"messages":[{"id":0,"message":"Welcome","role":"agent",'
        b'"time":"2026-01-01T10:00:00.123456789Z"},{"id":1,"message":"Go","role":"user",'
        b'"time":"2026-01-01T10:00:01+02:00"}],"initial_prompt":"","initial_prompt_sent":true}'
    )
    messages = parse_state_file(body)
    assert [(m.id, m.role, m.content) for m in messages] == [
        (0, "agent", "Welcome"),
        (1, "user", "Go"),
    ]
    assert messages[0].time == "2026-01-01T10:00:00.123456789Z"  # as AgentAPI wrote it
    with pytest.raises(BadResponse, match="state file"):
        parse_state_file(b'{"version":1}')


def test_a_process_table_entry_past_its_cap_is_unknown_not_cut(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Cut, the environment could lose AGENTAPI_STATE_FILE and pass for "no state file".
    monkeypatch.setattr("agent.stop.process.PROC_MAX_BYTES", 4096)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTAPI_")}
    child = _sleeper({**env, "PADDING": "x" * 8192, "AGENTAPI_STATE_FILE": "/s/state.json"})
    try:
        process = AgentAPIProcess(child.pid)
        try:
            assert process.state_file() == (False, None)
        finally:
            process.close()
    finally:
        child.kill()
        child.communicate()


@pytest.mark.parametrize(
    ("script", "timeout", "expected"),
    [
        ("echo 'agentapi version 0.12.1'", 5.0, "agentapi version 0.12.1\n"),
        # 20 MB, then the end: read to its cap only (too long for a version: unknown).
        ("yes 0.11.0 | head -c 20000000", 5.0, ""),
        ("exec sleep 60", 0.3, ""),  # never ends: killed at the timeout
    ],
)
def test_the_binarys_version_is_read_capped_and_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str, timeout: float, expected: str
) -> None:
    program = tmp_path / "agentapi"
    program.write_text(f"#!/bin/sh\n{script}\n")
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert process_module._agentapi_version(timeout) == expected
