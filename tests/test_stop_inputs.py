"""The stop hook's inputs: the agentapi module's `ARG_*` variables mapped onto ours."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import read
from agent.stop.inputs import stop_hook_environment

TASK = "6f1c2a3b-4d5e-4f60-8a1b-2c3d4e5f6a7b"


@pytest.mark.parametrize(
    ("env", "task", "url", "pid_file", "state_file", "snapshot", "persistence", "problem"),
    [
        # The module's inputs alone.
        (
            {"ARG_TASK_ID": TASK, "ARG_AGENTAPI_PORT": "3300", "ARG_MODULE_DIR_NAME": ".claude"},
            TASK,
            "http://localhost:3300",
            "/home/u/.claude/agentapi.pid",
            "/home/u/.claude/agentapi-state.json",
            True,
            False,
            None,
        ),
        # Ours win; an explicit PID file wins over the module directory; only `true` enables.
        (
            {
                "ARG_TASK_ID": "not-it",
                "CODER_TASK_ID": TASK,
                "ARG_AGENTAPI_PORT": "1",
                "CODER_MCP_AI_AGENTAPI_URL": "http://127.0.0.1:9999",
                "ARG_PID_FILE_PATH": "/run/a.pid",
                "ARG_MODULE_DIR_NAME": ".claude",
                "ARG_TASK_LOG_SNAPSHOT": "false",
                "ARG_ENABLE_STATE_PERSISTENCE": "true",
            },
            TASK,
            "http://127.0.0.1:9999",
            "/run/a.pid",
            "/home/u/.claude/agentapi-state.json",
            False,
            True,
            None,
        ),
        # Nothing: no PID file known, the snapshot on (the module's default), default port.
        ({}, None, None, None, None, True, False, None),
        # A task id that is not a UUID, a port that is not a port: logged, never fatal.
        (
            {"ARG_TASK_ID": "task-7", "ARG_AGENTAPI_PORT": "http"},
            None,
            None,
            None,
            None,
            True,
            False,
            "ARG_TASK_ID: 'task-7' is not a UUID",
        ),
    ],
)
def test_stop_hook_environment(  # noqa: PLR0917 - one row of the table
    env: dict[str, str],
    task: str | None,
    url: str | None,
    pid_file: str | None,
    state_file: str | None,
    snapshot: bool,
    persistence: bool,
    problem: str | None,
) -> None:
    merged, inputs = stop_hook_environment({"HOME": "/home/u", **env})
    settings = read(merged)
    assert settings.task_id == task
    assert settings.agentapi_url == (url or "http://localhost:3284")
    assert inputs.pid_file == (Path(pid_file) if pid_file else None)
    assert inputs.state_file == (Path(state_file) if state_file else None)
    assert inputs.snapshot is snapshot
    assert inputs.state_persistence is persistence
    assert inputs.task_id_unset is not any(env.get(v) for v in ("ARG_TASK_ID", "CODER_TASK_ID"))
    if problem is None:
        assert inputs.problems == ()
    else:
        assert inputs.problems[0].startswith(problem)
