"""`coder-task-agent stop-hook`: a drop-in for the agentapi module's `agentapi-shutdown.sh`.

Coder's `agentapi` Terraform module stops AgentAPI with a bash script run at workspace stop. It
(a) sends SIGUSR1 so that AgentAPI >= 0.12 saves its state, then sleeps 1 s; (b) uploads the log
snapshot with jq, counting characters where the server counts bytes; (c) SIGTERMs AgentAPI and
waits for it with no upper bound; and always exits 0, because a failing stop script marks the
agent's shutdown as errored. This command takes the same `ARG_*` inputs (agent.settings,
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
import os
import re
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from agent.conversation import MAX_MESSAGES_BYTES
from agent.errors import ConfigError
from agent.models import ExitCode
from agent.settings import Settings, StopHookInputs, load_settings, stop_hook_environment
from agent.stop import oneshot
from agent.stop import outcome as stoppath
from agent.stop.outcome import Outcome

if TYPE_CHECKING:
    from collections.abc import Sequence

    import structlog.typing

    from agent.clock import Clock
    from agent.snapshot import SnapshotMessage

T = TypeVar("T")

# The module's script sleeps this long after SIGUSR1; the wait here ends sooner when the save
# can be seen. AgentAPI skips the save when nothing changed since the last one, so no change
# may ever come: the bound is what ends the wait then.
STATE_SAVE_WAIT = 1.0
# After SIGKILL the kernel ends the process at once; this only covers a loaded machine.
KILL_WAIT = 2.0
POLL_INTERVAL = 0.02
# `agentapi --version` prints e.g. "agentapi version 0.12.1"; state persistence needs 0.12.0.
_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)\s*$")
STATE_MIN_VERSION = (0, 12, 0)


class AgentAPIProcess:
    """The AgentAPI process named by its PID file, signalled through a pidfd when possible.

    A pidfd pins the process: a PID reused after AgentAPI exited is never signalled by mistake,
    and the wait for its exit is an event, not a poll (it also works for a process that is not
    our child, and sees a zombie as gone).
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._fd: int | None = None
        with contextlib.suppress(OSError, AttributeError):
            self._fd = os.pidfd_open(pid)

    def close(self) -> None:
        """Release the pidfd."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def alive(self) -> bool:
        """True while the process runs (a zombie counts as gone)."""
        if self._fd is not None:
            readable, _, _ = select.select([self._fd], [], [], 0)
            return not readable
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return _proc_state(self.pid) not in ("Z", "X", None)

    def send(self, signum: signal.Signals) -> bool:
        """Send `signum`; False when the process is gone or not ours to signal."""
        try:
            if self._fd is not None:
                signal.pidfd_send_signal(self._fd, signum)
            else:
                os.kill(self.pid, signum)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    async def wait_exit(self, within: float, clock: Clock) -> bool:
        """Wait at most `within` seconds (on `clock`) for the process to end; True when it did."""
        import anyio  # noqa: PLC0415 - only imported once the conversation is read

        with clock.move_on_after(within):
            if self._fd is not None:
                await anyio.wait_readable(self._fd)
                return True
            # No pidfd (an old kernel): poll, the process is not ours to wait for.
            while True:
                if not self.alive():
                    return True
                await clock.sleep(POLL_INTERVAL)
        return not self.alive()

    def state_file(self) -> tuple[bool, Path | None]:
        """(known, path): whether AgentAPI's own configuration could be read, and its state file.

        main.sh of the module exports AGENTAPI_STATE_FILE (and AGENTAPI_SAVE_STATE) only when the
        installed AgentAPI supports state persistence; `--state-file` may also be on its command
        line. Unknown when /proc cannot be read (another user, not Linux).
        """
        try:
            environ = Path(f"/proc/{self.pid}/environ").read_bytes().split(b"\0")
            argv = Path(f"/proc/{self.pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False, None
        env = dict(item.decode(errors="replace").partition("=")[::2] for item in environ if item)
        path = env.get("AGENTAPI_STATE_FILE", "")
        save = env.get("AGENTAPI_SAVE_STATE", "")
        for index, raw in enumerate(argv):
            arg = raw.decode(errors="replace")
            if arg == "--state-file" and index + 1 < len(argv):
                path = argv[index + 1].decode(errors="replace")
            elif arg.startswith("--state-file="):
                path = arg.partition("=")[2]
            elif arg.startswith("--save-state="):
                save = arg.partition("=")[2]
        if not path or save.strip().lower() == "false":
            return True, None
        return True, Path(path)


def started_at(pid: int) -> float | None:
    """When process `pid` started, in seconds since the epoch (from /proc), or None if unknown.

    Whole seconds at best: the boot time /proc gives is in seconds.
    """
    fields = _stat_fields(pid)
    if fields is None:
        return None
    try:
        boot = next(
            line
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        # The start time, in clock ticks since boot, is field 22 of proc(5).
        return int(boot.split()[1]) + int(fields[22 - 3]) / os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, IndexError, ValueError):
        return None


def _proc_state(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def _stat_fields(pid: int) -> list[str] | None:
    """`/proc/PID/stat` from field 3 (the state) on, or None when it cannot be read.

    The command name before them may hold spaces and parentheses: they follow the last ')'.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()


# Seconds a process may seem to have started after its PID file was written: the boot time in
# /proc is in whole seconds, some file systems keep coarse timestamps, the clock may be stepped.
# A PID reused this soon after AgentAPI wrote its file would need AgentAPI to die at once.
PID_FILE_SLACK = 5.0


def read_pid(path: Path) -> tuple[int | None, str]:
    """The PID in `path`, or None and why not."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except FileNotFoundError:
        return None, f"no PID file at {path}"
    except OSError as exc:
        return None, f"the PID file {path} cannot be read ({type(exc).__name__})"
    if not (text.isascii() and text.isdigit()) or int(text) <= 1:
        return None, f"the PID file {path} holds no PID ({text[:40]!r})"
    return int(text), ""


def version_supports_state(output: str) -> bool:
    """Whether `agentapi --version` output names a version with state persistence.

    Like the module's check: a version that is not x.y.z (a custom build) passes.
    """
    match = _VERSION.search(output.strip())
    if match is None:
        return True
    return tuple(int(part) for part in match.groups()) >= STATE_MIN_VERSION


def _agentapi_version(timeout: float = 1.0) -> str:
    try:
        done = subprocess.run(
            ["agentapi", "--version"],  # noqa: S607 - the module's check, on the same PATH
            capture_output=True,
            timeout=timeout,
            check=False,
            text=True,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout


def _file_identity(path: Path | None) -> tuple[int, int, int] | None:
    if path is None:
        return None
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


def run_stop_hook(
    flags: Mapping[str, tuple[str, str]], *, strict: bool, env: Mapping[str, str] | None = None
) -> int:
    """The whole stop hook; returns 0 unless `strict` (then the outcome's ExitCode)."""
    started = time.monotonic()
    merged, inputs = stop_hook_environment(env)
    problems = list(inputs.problems)
    try:
        settings = load_settings(merged, flags)
    except ConfigError as exc:
        problems.append(f"{exc}; no snapshot is taken")
        settings = _fallback_settings(merged)
        usable = False
    else:
        usable = True
    snapshot = usable and inputs.snapshot and settings.task_id is not None
    fetched = None
    if snapshot and settings.mode != "hooks":
        # Step 1, before anything else (see the module docstring).
        within = stoppath.fetch_window(settings.stop_fetch_timeout, settings.shutdown_budget)
        fetched = oneshot.fetch(settings.agentapi_url, within)
    plan = None
    if snapshot:
        try:
            plan = oneshot.Plan(oneshot.configuration_for(settings))
        except ConfigError as exc:
            problems.append(f"{exc}; no snapshot is taken")

    import anyio  # noqa: PLC0415
    import structlog  # noqa: PLC0415

    from agent.clock import SYSTEM_CLOCK  # noqa: PLC0415
    from agent.logconfig import configure_from  # noqa: PLC0415

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
            return load_settings(subset)
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
    process = _find_process(inputs)
    log.info(
        "stop_hook_started",
        agentapi=None if settings.mode == "hooks" else settings.agentapi_url,
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
                        group.start_soon(_save_state, process, inputs, known, state_file, clock)
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
                await _terminate(process, settings.agentapi_stop_timeout, clock)
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
    if settings.mode == "hooks":
        log.info("snapshot_skipped", reason="there is no AgentAPI (CODER_MCP_AI_AGENTAPI_URL=none)")
        return Outcome.SKIPPED
    if snap is None:
        log.info("snapshot_skipped", reason="no usable task id or Coder settings (logged above)")
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
) -> Sequence[SnapshotMessage] | None:
    """The conversation AgentAPI saved in its state file, when `/messages` could not be read.

    That happens when the module's own stop script SIGTERMed AgentAPI first: AgentAPI then
    saves its state (when persistence is on) and stops answering. If it is still stopping, its
    exit is awaited (at most half the time left), so the file holds its last save. Read
    through MAX_MESSAGES_BYTES, as `/messages` is.
    """
    import anyio  # noqa: PLC0415

    from agent.agentapi import parse_state_file  # noqa: PLC0415
    from agent.errors import BadResponse  # noqa: PLC0415

    log = _log()
    if path is None:
        return None
    if process is not None and process.alive():
        await process.wait_exit(max(0.0, (deadline - clock.now()) / 2), clock)
    try:
        body, age = await anyio.to_thread.run_sync(_read_state_file, path)
        messages = parse_state_file(body)
    except (OSError, BadResponse) as exc:
        log.warning("agentapi_state_file_unusable", path=str(path), error=str(exc))
        return None
    log.info(
        "snapshot_from_state_file", path=str(path), messages=len(messages), age_s=round(age, 1)
    )
    return messages


def _read_state_file(path: Path) -> tuple[bytes, float]:
    """The state file's bytes (at most MAX_MESSAGES_BYTES) and its age in seconds.

    Raises OSError, also when the file is larger than the cap (it is not read past it).
    """
    with path.open("rb") as file:
        body = file.read(MAX_MESSAGES_BYTES + 1)
        age = time.time() - os.fstat(file.fileno()).st_mtime
    if len(body) > MAX_MESSAGES_BYTES:
        raise OSError(f"the state file is larger than {MAX_MESSAGES_BYTES} bytes")
    return body, age


def _find_process(inputs: StopHookInputs) -> AgentAPIProcess | None:
    log = _log()
    if inputs.pid_file is None:
        log.info(
            "agentapi_pid_unknown",
            reason="neither ARG_PID_FILE_PATH nor ARG_MODULE_DIR_NAME is set: AgentAPI is not "
            "signalled",
        )
        return None
    pid, why = read_pid(inputs.pid_file)
    if pid is None:
        log.info("agentapi_pid_unknown", reason=f"{why}: AgentAPI is not signalled")
        return None
    process = AgentAPIProcess(pid)  # pinned from here on (a pidfd)
    if not process.alive():
        log.info("agentapi_already_stopped", pid=pid)
        process.close()
        return None
    if _reused(pid, inputs.pid_file):
        log.warning(
            "agentapi_pid_reused",
            pid=pid,
            reason="the process holding this PID started after the PID file was written: "
            "not AgentAPI (which ended since), so it is not signalled",
        )
        process.close()
        return None
    return process


def _reused(pid: int, pid_file: Path) -> bool:
    """True when process `pid` started after `pid_file` was written (by PID_FILE_SLACK).

    The module's script writes the PID file right after starting AgentAPI. A process that
    started later holds a PID that AgentAPI left behind when it ended, and signalling it would
    stop (then kill) some other program. Unknown times (no /proc) count as not reused: the
    module's own script signals the PID without any check.
    """
    started = started_at(pid)
    try:
        written = pid_file.stat().st_mtime
    except OSError:
        return False
    return started is not None and started > written + PID_FILE_SLACK


async def _save_state(
    process: AgentAPIProcess, inputs: StopHookInputs, known: bool, path: Path | None, clock: Clock
) -> None:
    """Step 2: SIGUSR1 and a wait that ends when the state file is replaced.

    `known`, `path`: what AgentAPI's own configuration says of its state file (`state_file`).
    """
    import anyio  # noqa: PLC0415

    log = _log()
    if not inputs.state_persistence:
        log.info("agentapi_state_save_skipped", reason="ARG_ENABLE_STATE_PERSISTENCE is not true")
        return
    if known and path is None:
        log.info("agentapi_state_save_skipped", reason="AgentAPI runs without a state file")
        return
    if not known:
        # Its configuration cannot be read: ask the binary, as the module's script does.
        # SIGUSR1 stops an AgentAPI older than 0.12 (the signal's default action).
        version = await anyio.to_thread.run_sync(_agentapi_version)
        if not version_supports_state(version):
            log.info(
                "agentapi_state_save_skipped",
                reason=f"AgentAPI {version.strip()!r} is older than 0.12 (SIGUSR1 would stop it)",
            )
            return
    before = _file_identity(path)
    started = clock.now()
    if not process.send(signal.SIGUSR1):
        log.info("agentapi_state_save_skipped", reason="AgentAPI is gone")
        return
    with clock.move_on_after(STATE_SAVE_WAIT):
        # A file written by another process: nothing to wait on but its metadata.
        while True:
            if path is not None and _file_identity(path) != before:
                break
            await clock.sleep(POLL_INTERVAL)
        waited = clock.now() - started
        log.info("agentapi_state_saved", path=str(path), waited_ms=round(waited * 1000))
        return
    log.info(
        "agentapi_state_save_unconfirmed",
        path=str(path) if path else None,
        waited_s=STATE_SAVE_WAIT,
        reason="no new state file seen (nothing changed since the last save, or a slow save)",
    )


async def _terminate(process: AgentAPIProcess, within: float, clock: Clock) -> None:
    """Step 4: SIGTERM, at most `within` seconds (on `clock`), then SIGKILL."""
    log = _log()
    started = clock.now()
    if not process.send(signal.SIGTERM):
        log.info("agentapi_already_stopped", pid=process.pid)
        return
    if await process.wait_exit(within, clock):
        elapsed = clock.now() - started
        log.info("agentapi_stopped", pid=process.pid, after_ms=round(elapsed * 1000))
        return
    log.warning(
        "agentapi_killed", pid=process.pid, reason=f"still running {within:g} s after SIGTERM"
    )
    process.send(signal.SIGKILL)
    if not await process.wait_exit(KILL_WAIT, clock):
        log.error("agentapi_not_stopped", pid=process.pid, reason="still running after SIGKILL")
