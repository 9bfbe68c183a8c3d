"""`coder-task-agent stop-hook`: a drop-in for the agentapi module's `agentapi-shutdown.sh`.

The same `ARG_*` inputs (agent.stop.inputs) and steps, each bounded (docs/stop-hook.md):
1. `GET /messages` first, with nothing beyond the standard library imported: the module's own
   script, run at the same time, SIGTERMs AgentAPI as soon as it starts;
2. SIGUSR1 and a wait for the state file to be replaced (agent.stop.process), beside
3. the upload by `snapshot`'s blocking shell (agent.stop.oneshot), from the state file when
   step 1 got nothing;
4. SIGTERM, then SIGKILL past `agentapi_stop_timeout`.
It exits 0 whatever happened (a failing stop script marks the shutdown as errored);
`--strict` gives the outcome's ExitCode.

A stop signal (SIGTERM: the stop script's `timeout`; SIGINT; SIGHUP) means "hurry", never
"abort": the snapshot is abandoned, AgentAPI is still stopped (step 4 is bounded anyway). Before
the event loop (step 1 mostly) the signal arrives as agent.boundary's Interrupted; from the loop's
start to its end it is queued for the loop's receiver; after it, nothing is left to hurry.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import threading
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from agent import config
from agent.config import Settings
from agent.errors import ConfigError
from agent.log import configure_from, get_logger
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
    from agent.snapshot import SnapshotMessage

    # What the snapshot step has: the upload's plan, step 1's answer, the monotonic deadline.
    Snap = tuple[oneshot.Plan, oneshot.Fetched, float]


# The signals that hurry the stop hook, by the names `stop_hook_hurried` gives them.
STOPS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def run_stop_hook(
    flags: Mapping[str, tuple[str, str]],
    *,
    strict: bool,
    env: Mapping[str, str] | None = None,
    hurried: str | None = None,
) -> int:
    """The whole stop hook; returns 0 unless `strict` (then the outcome's ExitCode).

    A stop signal before the loop is agent.boundary's Interrupted, which agent.cli answers by
    calling again with `hurried` (the signal's name): no step 1, no snapshot, AgentAPI stopped.
    """
    started = time.monotonic()
    ready = _prepare(flags, env, snapshot=hurried is None)
    # Held from here until the loop's receiver is open: a signal then is a hurry too.
    unheld = signal.pthread_sigmask(signal.SIG_BLOCK, STOPS) - set(STOPS)
    return _run(ready, started, strict=strict, signals=_Signals(unheld, hurried))


class _Ready:
    """What steps 2 to 4 start from: the inputs, the settings, step 1's work."""

    __slots__ = ("inputs", "problems", "settings", "snap_parts")

    def __init__(
        self,
        inputs: StopHookInputs,
        settings: Settings,
        problems: list[str],
        snap_parts: tuple[oneshot.Plan, oneshot.Fetched] | None,
    ) -> None:
        self.inputs = inputs
        self.settings = settings
        self.problems = problems
        self.snap_parts = snap_parts


def _prepare(
    flags: Mapping[str, tuple[str, str]], env: Mapping[str, str] | None, *, snapshot: bool
) -> _Ready:
    """The inputs and settings, and with `snapshot` step 1 (see the module docstring) and the
    upload's plan; then what the loop needs loaded and the log configured."""
    merged, inputs = stop_hook_environment(env)
    problems = list(inputs.problems)
    usable = True
    try:
        settings = config.read(merged, flags)
    except ConfigError as exc:
        problems.append(f"{exc}; no snapshot is taken")
        settings = _fallback_settings(merged)
        usable = False
    snapshot = snapshot and usable and inputs.snapshot and settings.task_id is not None
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

    import anyio  # noqa: PLC0415, F401 - loaded while a signal is still a hurry

    from agent.clock import SYSTEM_CLOCK  # noqa: PLC0415, F401

    configure_from(settings)
    parts = (plan, fetched) if plan is not None and fetched is not None else None
    return _Ready(inputs, settings, problems, parts)


def _run(ready: _Ready, started: float, *, strict: bool, signals: _Signals) -> int:
    """Steps 2 to 4 in the event loop; the exit code. The stop signals are held when it is
    called (until the loop's receiver takes them) and from the loop's end: `stop_hook_finished`
    is the last line, and its code the exit code."""
    import anyio  # noqa: PLC0415

    from agent.clock import SYSTEM_CLOCK  # noqa: PLC0415

    settings = ready.settings
    log = get_logger("agent.stop.hook")
    for warning in settings.warnings:
        log.warning("configuration_warning", problem=warning)
    for problem in ready.problems:
        log.error("stop_hook_input_problem", problem=problem)
    deadline = started + settings.shutdown_budget
    snap = None if ready.snap_parts is None else (*ready.snap_parts, deadline)
    remaining = deadline - time.monotonic()
    stop = functools.partial(_stop, signals=signals)
    outcome = anyio.run(stop, settings, ready.inputs, snap, remaining, SYSTEM_CLOCK)
    # The loop's receiver gave them back to their default actions as it closed (asyncio does):
    # held, and now ignored, till the exit.
    for signum in STOPS:
        signal.signal(signum, signal.SIG_IGN)
    code = outcome.exit_code
    if code == ExitCode.OK and ready.problems:
        code = ExitCode.USAGE
    log.info("stop_hook_finished", outcome=outcome.value, exit_code=int(code), strict=strict)
    return int(code) if strict else 0


class _Signals:
    """How `_stop` takes the stop signals: the mask to restore once its receiver is open, and
    the signal that arrived before the loop, if one did."""

    __slots__ = ("hurried", "unheld")

    def __init__(self, unheld: set[int | signal.Signals], hurried: str | None) -> None:
        self.unheld = unheld  # the signal mask before the stop signals were held
        self.hurried = hurried


def _fallback_settings(merged: Mapping[str, str]) -> Settings:
    """Settings good enough to stop AgentAPI when the full set is unusable."""
    keep = (
        "CODER_MCP_AI_AGENTAPI_URL",
        "CODER_TASK_AGENT_LOG_LEVEL",
        "CODER_TASK_AGENT_LOG_FORMAT",
    )
    with contextlib.suppress(ConfigError):
        return config.read({k: merged[k] for k in keep if k in merged})
    return config.read({})  # the empty environment always loads


async def _stop(
    settings: Settings,
    inputs: StopHookInputs,
    snap: Snap | None,
    remaining: float,
    clock: Clock,
    *,
    signals: _Signals,
) -> Outcome:
    """Steps 2 to 4 (step 1 ran before the event loop existed), timed on `clock`."""
    import anyio  # noqa: PLC0415

    # First thing: a signal held since before the loop is delivered to the receiver now.
    with anyio.open_signal_receiver(*STOPS) as received:
        signal.pthread_sigmask(signal.SIG_SETMASK, signals.unheld)
        try:
            return await _steps(
                settings, inputs, snap, remaining, clock, hurried=signals.hurried, received=received
            )
        finally:
            signal.pthread_sigmask(signal.SIG_BLOCK, STOPS)


async def _steps(
    settings: Settings,
    inputs: StopHookInputs,
    snap: Snap | None,
    remaining: float,
    clock: Clock,
    *,
    hurried: str | None,
    received: AsyncIterator[int],
) -> Outcome:
    """Steps 2 to 4; with `hurried` (a signal before the loop) step 4 alone. A signal from
    `received` abandons steps 2 and 3."""
    import anyio  # noqa: PLC0415

    log = get_logger("agent.stop.hook")
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
    if hurried is not None:
        log.warning("stop_hook_hurried", signal=hurried)
        work.cancel()  # steps 2 and 3 are not started: AgentAPI is stopped at once
    try:
        async with anyio.create_task_group() as outer:

            async def hurry_on_signal() -> None:
                # Our own SIGTERM (the stop script's timeout): abandon the upload and the state
                # wait, but still stop AgentAPI, which is bounded anyway.
                async for signum in received:
                    log.warning("stop_hook_hurried", signal=signal.Signals(signum).name)
                    work.cancel()

            outer.start_soon(hurry_on_signal)
            with work:
                if hurried is None:
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


async def _snapshot(
    settings: Settings,
    inputs: StopHookInputs,
    snap: Snap | None,
    deadline: float,
    *,
    process: AgentAPIProcess | None,
    state_file: Path | None,
    clock: Clock,
) -> Outcome:
    """Step 3: step 1's messages (else the state file's) uploaded by the blocking shell, in a
    thread beside step 2; `deadline` on `clock`, the shell's own on time.monotonic."""
    log = get_logger("agent.stop.hook")
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
    plan, fetched, monotonic_deadline = snap
    oneshot.start(log, monotonic_deadline)
    messages: Sequence[SnapshotMessage] | None = oneshot.took(log, fetched, state_file)
    if messages is None:
        messages = await _from_state_file(state_file, process, deadline, clock)
    return await _upload_in_thread(plan, messages, monotonic_deadline, log)


async def _upload_in_thread(
    plan: oneshot.Plan,
    messages: Sequence[SnapshotMessage] | None,
    deadline: float,
    log: structlog.typing.FilteringBoundLogger,
) -> Outcome:
    """`oneshot.upload` in a daemon thread of its own (the process does not wait for it at exit),
    awaited; abandoned, to end at its own deadline, when the caller is cancelled."""
    from concurrent.futures import Future  # noqa: PLC0415 - loaded with anyio's asyncio

    import anyio  # noqa: PLC0415
    import anyio.from_thread  # noqa: PLC0415
    import anyio.lowlevel  # noqa: PLC0415

    done = anyio.Event()
    token = anyio.lowlevel.current_token()
    result: Future[Outcome] = Future()

    def run() -> None:
        try:
            result.set_result(oneshot.upload(plan, messages, deadline=deadline, out=log))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            result.set_exception(exc)
        with contextlib.suppress(RuntimeError):  # the event loop is gone: nobody awaits
            anyio.from_thread.run_sync(done.set, token=token)

    threading.Thread(target=run, name="snapshot upload", daemon=True).start()
    await done.wait()
    return result.result()


async def _from_state_file(
    path: Path | None, process: AgentAPIProcess | None, deadline: float, clock: Clock
) -> list[Message] | None:
    """The state file's conversation, for when the module's script SIGTERMed AgentAPI first
    (it saves, then stops answering); awaits its exit (half the time left) for the last save."""
    import anyio  # noqa: PLC0415

    log = get_logger("agent.stop.hook")
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
