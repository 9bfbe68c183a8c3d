"""What Coder's agentapi module hands its stop script (`ARG_*`), mapped onto our settings.

The stop hook (`agent.stop.hook`) is a drop-in for that script, so it takes the same inputs,
read through the one reader of the environment; our own variables win where both are set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from agent.config import Environment, task_id, text, verbatim


@dataclass(frozen=True)
class StopHookInputs:
    """The module's inputs that have no variable of ours."""

    snapshot: bool = True  # ARG_TASK_LOG_SNAPSHOT is `true` (or unset: the module's default)
    state_persistence: bool = False  # ARG_ENABLE_STATE_PERSISTENCE=true: SIGUSR1 first
    pid_file: Path | None = None  # ARG_PID_FILE_PATH, else $HOME/$ARG_MODULE_DIR_NAME/agentapi.pid
    state_file: Path | None = None  # used when AgentAPI's own environment does not say
    problems: tuple[str, ...] = ()  # each logged and its part skipped, never a failed stop
    task_id_unset: bool = False  # neither CODER_TASK_ID nor ARG_TASK_ID (outside a task)


def stop_hook_environment(
    env: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], StopHookInputs]:
    """The environment to read the settings from (`env`, else the process's), `ARG_*` mapped
    onto our variables, and the inputs that have none. Never raises: a bad task id is dropped
    (and reported in `problems`) so that the rest of the stop still happens."""
    environment = Environment(env)
    problems: list[str] = []

    def arg(name: str) -> str:
        return environment.read(name, text, "")

    task_variable = "CODER_TASK_ID" if environment.is_set("CODER_TASK_ID") else "ARG_TASK_ID"
    task = arg(task_variable)
    mapped: dict[str, str | None] = {"CODER_TASK_ID": None}
    if task:
        try:
            mapped["CODER_TASK_ID"] = task_id(task)
        except ValueError:
            problems.append(f"{task_variable}: {task!r} is not a UUID; no snapshot is taken")

    port = arg("ARG_AGENTAPI_PORT")
    if not environment.is_set("CODER_MCP_AI_AGENTAPI_URL") and port:
        if port.isascii() and port.isdigit() and 0 < int(port) < 65536:
            mapped["CODER_MCP_AI_AGENTAPI_URL"] = f"http://localhost:{int(port)}"
        else:
            problems.append(f"ARG_AGENTAPI_PORT: {port!r} is not a port; using 3284")

    module_dir = arg("ARG_MODULE_DIR_NAME")
    home = environment.read("HOME", verbatim, "")
    module_path = Path(home) / module_dir if module_dir and home else None
    pid_file = arg("ARG_PID_FILE_PATH")
    state_file = arg("ARG_STATE_FILE_PATH")
    inputs = StopHookInputs(
        # Unset or blank: the module's default, true.
        snapshot=environment.read("ARG_TASK_LOG_SNAPSHOT", text, "true") == "true",
        state_persistence=arg("ARG_ENABLE_STATE_PERSISTENCE") == "true",
        pid_file=Path(pid_file) if pid_file else _under(module_path, "agentapi.pid"),
        state_file=Path(state_file) if state_file else _under(module_path, "agentapi-state.json"),
        problems=tuple(problems),
        task_id_unset=not task,
    )
    return environment.replaced(mapped).mapping(), inputs


def _under(directory: Path | None, name: str) -> Path | None:
    return None if directory is None else directory / name
