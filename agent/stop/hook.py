"""`coder-task-agent stop-hook`: a drop-in for the agentapi module's `agentapi-shutdown.sh`.

Coder's `agentapi` Terraform module stops AgentAPI with a bash script run at workspace stop. It
(a) sends SIGUSR1 so that AgentAPI >= 0.12 saves its state, then sleeps 1 s; (b) uploads the log
snapshot with jq, counting characters where the server counts bytes; (c) SIGTERMs AgentAPI and
waits for it with no upper bound; and always exits 0, because a failing stop script marks the
agent's shutdown as errored. This command takes the same `ARG_*` inputs (agent.stop.inputs,
`stop_hook_environment`) and does the same steps, each one bounded:

1. `GET /messages` before anything else. The Coder agent runs every stop script at once, and the
   module's own script SIGTERMs AgentAPI as soon as it starts when it finds the PID file: the
   conversation must be read before that, so only the standard library is imported until then.
2. SIGUSR1 when state persistence is on and the running AgentAPI has a state file, then a wait
   that ends as soon as the state file is replaced (AgentAPI writes a temporary file and renames
   it), at most STATE_SAVE_WAIT. It runs beside step 3, not before it.
3. The snapshot upload: the stop path's blocking shell, `snapshot`'s (agent.stop.oneshot), with
   the conversation read in step 1 (or, when AgentAPI did not answer, the one its state file
   holds); its caps, deadlines and log lines are the daemon's.
4. SIGTERM, a wait of at most `agentapi_stop_timeout`, then SIGKILL (logged as a warning).

It exits 0 whatever happened, the outcome logged; `--strict` gives the ExitCode of the outcome.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from agent import config
from agent.config import Settings
from agent.errors import ConfigError
from agent.models import ExitCode
from agent.stop import oneshot
from agent.stop import outcome as steps
from agent.stop.inputs import StopHookInputs, stop_hook_environment
from agent.stop.outcome import Outcome
from agent.stop.process import (
    AgentAPIProcess,
    Unusable,
    find_process,
    read_state_file,
    save_state,
    terminate,
)

if TYPE_CHECKING:
    import structlog.typing

    from agent.agentapi import Message
    from agent.clock import Clock

T = TypeVar("T")


def run_stop_hook(
    flags: Mapping[str, tuple[str, str]], *, strict: bool, env: Mapping[str, str] | None = None
) -> int:
    """The whole stop hook; returns 0 unless `strict` (then the outcome's ExitCode)."""
    started = time.monotonic()
    merged, inputs = stop_hook_environment(env)
    problems = list(inputs.problems)
    try:
        settings = config.read(merged, flags)
    except ConfigError as exc:
        problems.append(f"{exc}; no snapshot is taken")
        settings = _fallback_settings(merged)
        usable = False
    else:
        usable = True
    snapshot = usable and inputs.snapshot and settings.task_id is not None
    fetched = None
    if snapshot and not settings.hooks_mode:
        # Step 1, before anything else (see the module docstring).
        within = steps.fetch_window(settings.stop_fetch_timeout, settings.shutdown_budget)
        fetched = oneshot.fetch(settings.agentapi_url, within)
    plan = None
    if snapshot:
        try:
            plan = oneshot.Plan(settings)
        except ConfigError as exc:
            problems.append(f"{exc}; no snapshot is taken")

    import anyio  # noqa: PLC0415
    import structlog  # noqa: PLC0415

    from agent.clock import SYSTEM_CLOCK  # noqa: PLC0415
    from agent.log import configure_from  # noqa: PLC0415

    configure_from(settings)
    log = structlog.get_logger("agent.stop.hook")
    for warning in settings.warnings:
        log.warning("configuration_warning", problem=warning)
    for problem in problems:
        log.error("stop_hook_input_problem", problem=problem)
    deadline = started + settings.shutdown_budget
    snap = _Snap(plan, fetched, deadline) if plan is not None and fetched is not None else None
    outcome = anyio.run(_stop, settings, inputs, snap, deadline - time.monotonic(), SYSTEM_CLOCK)
    code = outcome.exit_code
    if code == ExitCode.OK and problems:
        code = ExitCode.USAGE
    log.info("stop_hook_finished", outcome=outcome.value, exit_code=int(code), strict=strict)
    return int(code) if strict else 0


def _fallback_settings(merged: Mapping[str, str]) -> Settings:
    """Settings good enough to stop AgentAPI when the full set is unusable."""
    keep = (
        "CODER_MCP_AI_AGENTAPI_URL",
        "CODER_TASK_AGENT_LOG_LEVEL",
        "CODER_TASK_AGENT_LOG_FORMAT",
    )
    for subset in ({k: merged[k] for k in keep if k in merged}, {}):
        with contextlib.suppress(ConfigError):
            return config.read(subset)
    return Settings()  # pragma: no cover - the empty environment always loads


class _Snap:
    """What the snapshot step has: the upload's plan, step 1's answer, the monotonic deadline."""

    def __init__(self, plan: oneshot.Plan, fetched: oneshot.Fetched, deadline: float) -> None:
        self.plan = plan
        self.fetched = fetched
        self.deadline = deadline


async def _stop(
    settings: Settings,
    inputs: StopHookInputs,
    snap: _Snap | None,
    remaining: float,
    clock: Clock,
) -> Outcome:
    """Steps 2 to 4 (step 1 ran before the event loop existed), timed on `clock`."""
    import anyio  # noqa: PLC0415

    log = _log()
    deadline = clock.now() + max(0.0, remaining)
    process = find_process(inputs)
    log.info(
        "stop_hook_started",
        agentapi=None if settings.hooks_mode else settings.agentapi_url,
        agentapi_pid=process.pid if process else None,
        snapshot=snap is not None,
        state_persistence=inputs.state_persistence,
    )
    # Read while AgentAPI still runs: its /proc entry goes when it exits.
    known, state_file = process.state_file() if process is not None else (False, None)
    if state_file is None and not known:
        state_file = inputs.state_file
    outcome = Outcome.INTERRUPTED
    work = anyio.CancelScope()
    try:
        async with anyio.create_task_group() as outer:

            async def hurry_on_signal() -> None:
                # Our own SIGTERM (the stop script's timeout): abandon the upload and the state
                # wait, but still stop AgentAPI, which is bounded anyway.
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for signum in signals:
                        log.warning("stop_hook_hurried", signal=signal.Signals(signum).name)
                        work.cancel()

            outer.start_soon(hurry_on_signal)
            with work:
                async with anyio.create_task_group() as group:
                    if process is not None:
                        group.start_soon(save_state, process, inputs, known, state_file, clock)
                    saved = state_file if inputs.state_persistence else None
                    outcome = await _snapshot(
                        settings,
                        inputs,
                        snap,
                        deadline,
                        process=process,
                        state_file=saved,
                        clock=clock,
                    )
            if process is not None:
                await terminate(process, settings.agentapi_stop_timeout, clock)
            outer.cancel_scope.cancel()
    finally:
        if process is not None:
            process.close()
    return outcome


def _log() -> structlog.typing.FilteringBoundLogger:
    import structlog  # noqa: PLC0415

    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger("agent.stop.hook")
    return logger


async def _snapshot(
    settings: Settings,
    inputs: StopHookInputs,
    snap: _Snap | None,
    deadline: float,
    *,
    process: AgentAPIProcess | None,
    state_file: Path | None,
    clock: Clock,
) -> Outcome:
    """Step 3: the blocking shell's upload (in a thread, beside step 2) of step 1's messages."""
    log = _log()
    if not inputs.snapshot:
        log.info("snapshot_skipped", reason="ARG_TASK_LOG_SNAPSHOT is not true")
        return Outcome.SKIPPED
    if settings.hooks_mode:
        log.info("snapshot_skipped", reason="there is no AgentAPI (CODER_MCP_AI_AGENTAPI_URL=none)")
        return Outcome.SKIPPED
    if snap is None:
        # Exactly what is missing: a task id nobody set is logged nowhere else.
        reason = "the settings it needs are unusable (logged above)"
        if inputs.task_id_unset:
            reason = "no task id: neither CODER_TASK_ID nor ARG_TASK_ID is set"
        log.info("snapshot_skipped", reason=reason)
        return Outcome.SKIPPED
    oneshot.start(log, snap.deadline)
    messages = oneshot.took(log, snap.fetched, state_file)
    if messages is None:
        messages = await _from_state_file(state_file, process, deadline, clock)
    live = messages
    return await _in_thread(
        lambda: oneshot.upload(snap.plan, live, deadline=snap.deadline, out=log)
    )


async def _in_thread(work: Callable[[], T]) -> T:
    """`work()` in a thread of its own, awaited; abandoned (left to end at its own deadline)
    when the caller is cancelled. A daemon thread: the process does not wait for it at exit."""
    import anyio  # noqa: PLC0415
    import anyio.from_thread  # noqa: PLC0415
    import anyio.lowlevel  # noqa: PLC0415

    done = anyio.Event()
    token = anyio.lowlevel.current_token()
    result: list[tuple[T | None, BaseException | None]] = []

    def run() -> None:
        try:
            result.append((work(), None))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            result.append((None, exc))
        with contextlib.suppress(RuntimeError):  # the event loop is gone: nobody awaits
            anyio.from_thread.run_sync(done.set, token=token)

    threading.Thread(target=run, name="snapshot upload", daemon=True).start()
    await done.wait()
    value, error = result[0]
    if error is not None:
        raise error
    return value  # type: ignore[return-value]  # None only with an error


async def _from_state_file(
    path: Path | None, process: AgentAPIProcess | None, deadline: float, clock: Clock
) -> list[Message] | None:
    """The conversation AgentAPI saved in its state file, when `/messages` could not be read.

    That happens when the module's own stop script SIGTERMed AgentAPI first: AgentAPI then
    saves its state (when persistence is on) and stops answering. If it is still stopping, its
    exit is awaited (at most half the time left), so the file holds its last save.
    """
    import anyio  # noqa: PLC0415

    log = _log()
    if path is None:
        return None
    if process is not None and process.alive():
        await process.wait_exit(max(0.0, (deadline - clock.now()) / 2), clock)
    try:
        messages, age = await anyio.to_thread.run_sync(read_state_file, path)
    except Unusable as exc:
        log.warning("agentapi_state_file_unusable", path=str(path), error=str(exc))
        return None
    log.info(
        "snapshot_from_state_file",
        path=str(path),
        messages=len(messages),
        age_s=None if age is None else round(age, 1),
    )
    return messages
