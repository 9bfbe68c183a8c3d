"""What Coder's agentapi module hands its stop script (`ARG_*`), mapped onto our settings.

Why a module of its own: the stop hook (`agent.stop.hook`) is a drop-in for the module's
script, so it takes the module's inputs as that script does, read through the one reader of the
environment (`agent.config.Environment`); our own variables win where both are set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from agent.config import Environment, task_id, text, verbatim


@dataclass(frozen=True)
class StopHookInputs:
    """What Coder's agentapi module hands its stop script (`ARG_*`), beyond our own settings."""

    # `ARG_TASK_LOG_SNAPSHOT`: the module's script takes a snapshot unless it is not `true`.
    snapshot: bool = True
    # `ARG_ENABLE_STATE_PERSISTENCE=true`: ask AgentAPI to save its state (SIGUSR1) first.
    state_persistence: bool = False
    # Where AgentAPI wrote its PID (`ARG_PID_FILE_PATH`, else `$HOME/$ARG_MODULE_DIR_NAME/...`).
    pid_file: Path | None = None
    # Where AgentAPI saves its state, when no better source (its own environment) says.
    state_file: Path | None = None
    # Problems with the inputs: each is logged and its part skipped, never a failed stop.
    problems: tuple[str, ...] = ()
    # Neither CODER_TASK_ID nor ARG_TASK_ID is set (outside a task: nothing to snapshot).
    task_id_unset: bool = False


def stop_hook_environment(
    env: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], StopHookInputs]:
    """The stop hook's view of the environment: `ARG_*` inputs mapped onto our variables.

    `env` defaults to the process environment. Returns the environment to read the settings
    from (ours win where both are set) and the inputs that have no variable of ours. Never
    raises: a task id that is not a UUID is dropped (and reported in `problems`) so that the
    rest of the stop still happens.
    """
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
