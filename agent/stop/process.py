"""The AgentAPI process as `stop-hook` sees it: found by its PID file, asked to save, stopped.

The parts of agent.stop.hook that touch another process (a PID from a file, /proc, signals).
Standard library only at module level (the hook reads the conversation before anything heavy);
anyio is imported inside the waits. AgentAPI's files go through the one trust check
(agent.reportsocket.trust), and no PID is signalled before `signal_refusal` passed.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from agent.log import get_logger
from agent.reportsocket.trust import Untrusted, proc_stat, read_checked, refusal

if TYPE_CHECKING:
    from agent.agentapi import Message
    from agent.clock import Clock
    from agent.stop.inputs import StopHookInputs

# The module's script sleeps this long after SIGUSR1; the wait ends sooner when the save is seen.
# AgentAPI skips the save when nothing changed since the last one: then this bound ends it.
STATE_SAVE_WAIT = 1.0
# After SIGKILL the kernel ends the process at once; this only covers a loaded machine.
KILL_WAIT = 2.0
POLL_INTERVAL = 0.02
# A PID file holds a number and a newline: anything longer is not one.
PID_FILE_MAX_BYTES = 64
# The kernel's PID_MAX_LIMIT on 64-bit systems: no PID is larger, whatever pid_max says.
PID_MAX_LIMIT = 2**22
# `agentapi --version` prints e.g. "agentapi version 0.12.1"; state persistence needs 0.12.0.
_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)\s*$")
STATE_MIN_VERSION = (0, 12, 0)
# Seconds a process may seem to have started after its PID file was written: /proc's boot time
# is in whole seconds, file systems keep coarse timestamps, the clock may be stepped. A PID
# reused this soon after AgentAPI wrote its file would need AgentAPI to die at once.
PID_FILE_SLACK = 5.0
# /proc/PID/environ and cmdline (exec bounds both together to 6 MiB), /proc/stat (a line a CPU):
# past this, the entry is not what it should be, and is taken as unknown, never cut.
PROC_MAX_BYTES = 8 << 20
# `agentapi --version` prints one short line.
VERSION_MAX_BYTES = 4096


class AgentAPIProcess:
    """The AgentAPI process, pinned by a pidfd when possible: a PID reused after it exited is
    never signalled, and its exit is an event, not a poll (our child or not)."""

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
        state = proc_stat(self.pid) or ["X"]  # unreadable: gone
        return state[0] not in ("Z", "X")

    def send(self, signum: signal.Signals) -> bool:
        """Send `signum`; False when the process is gone or not ours to signal."""
        if signal_refusal(self.pid) is not None:
            return False  # never reached through read_pid: a last guard before any signal
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
            while self.alive():  # no pidfd (an old kernel): poll
                await clock.sleep(POLL_INTERVAL)
            return True
        return not self.alive()

    def state_file(self) -> tuple[bool, Path | None]:
        """(known, path): whether AgentAPI's environment and command line could be read (the
        module's main.sh exports AGENTAPI_STATE_FILE only when AgentAPI supports it), its file."""
        from agent.config import read_regular  # noqa: PLC0415 - one home for a capped read

        try:
            environ = read_regular(f"/proc/{self.pid}/environ", PROC_MAX_BYTES).split(b"\0")
            argv = read_regular(f"/proc/{self.pid}/cmdline", PROC_MAX_BYTES).split(b"\0")
        except OSError:  # FileTooLarge included: a cut environment could lose the variable
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
    """When process `pid` started, in seconds since the epoch (whole at best: /proc's boot time
    is in seconds), or None if unknown."""
    fields = proc_stat(pid)
    if fields is None:
        return None
    try:
        from agent.config import read_regular  # noqa: PLC0415

        lines = read_regular("/proc/stat", PROC_MAX_BYTES).decode("ascii", "replace").splitlines()
        boot = next(line for line in lines if line.startswith("btime "))
        # The start time, in clock ticks since boot, is field 22 of proc(5).
        return int(boot.split()[1]) + int(fields[22 - 3]) / os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, IndexError, ValueError):
        return None


class Unusable(Exception):
    """AgentAPI's PID file or state file refused (untrusted, no usable value); names it and why."""


def read_pid(path: Path) -> int | None:
    """The PID in the PID file (ours, or root's: a start script run as root); None when there
    is none. Unusable when refused, not a number, or never to be signalled (`signal_refusal`)."""
    try:
        raw = _read(path, PID_FILE_MAX_BYTES)
    except FileNotFoundError:
        return None
    text = raw.decode("ascii", errors="replace").strip()
    if not (text.isascii() and text.isdigit()):
        raise Unusable(f"{str(path)!r} holds no PID ({text[:40]!r})")
    pid = int(text)
    problem = signal_refusal(pid)
    if problem is not None:
        raise Unusable(f"{str(path)!r} names PID {pid}, {problem}")
    return pid


def _read(path: Path, max_bytes: int) -> bytes:
    """The file through the trust check, ours or root's; FileNotFoundError, or Unusable."""
    try:
        return read_checked(path, max_bytes=max_bytes, root_ok=True)
    except FileNotFoundError:
        raise
    except (Untrusted, OSError) as exc:
        raise Unusable(refusal(path, exc)) from None


def signal_refusal(pid: int) -> str | None:
    """Why process `pid` (read from a file) must never be signalled, or None when it may be."""
    if pid <= 1:
        return "which is init or, 0 and below, a whole process group"
    limit = pid_max()
    if pid > limit:
        return f"past the largest PID of this system ({limit})"
    for ours, what in (
        (os.getpid(), "this very process"),
        (os.getppid(), "its parent"),
        (os.getpgrp(), "the leader of its process group"),
        (os.getsid(0), "the leader of its session"),
    ):
        if pid == ours:
            return f"which is {what}"
    return None


def pid_max() -> int:
    """The largest PID this system gives (/proc/sys/kernel/pid_max), at most PID_MAX_LIMIT."""
    try:
        with open("/proc/sys/kernel/pid_max", "rb") as file:
            value = int(file.read(32))
    except (OSError, ValueError):
        return PID_MAX_LIMIT
    return value if 1 < value <= PID_MAX_LIMIT else PID_MAX_LIMIT


def read_state_file(path: Path) -> tuple[list[Message], float | None]:
    """The conversation in AgentAPI's state file (read like the PID file, through the
    conversation's cap) and the file's age in seconds. Raises Unusable naming it and why."""
    from agent.agentapi import parse_state_file  # noqa: PLC0415 - pydantic, off the early path
    from agent.conversation import MAX_MESSAGES_BYTES  # noqa: PLC0415
    from agent.errors import BadResponse  # noqa: PLC0415

    try:
        body = _read(path, MAX_MESSAGES_BYTES)
    except FileNotFoundError as exc:
        raise Unusable(refusal(path, exc)) from None
    try:
        messages = parse_state_file(body)
    # Any content: not the state file's shape, nesting past the parser's limits, no memory left.
    except (BadResponse, ValueError, RecursionError, MemoryError) as exc:
        raise Unusable(f"{str(path)!r} is not AgentAPI's state file ({exc})") from None
    try:
        age: float | None = time.time() - os.stat(path).st_mtime
    except OSError:
        age = None
    return messages, age


def version_supports_state(output: str) -> bool:
    """Whether `agentapi --version` names a version with state persistence (as the module
    checks: a version that is not x.y.z, a custom build, passes)."""
    match = _VERSION.search(output.strip())
    if match is None:
        return True
    return tuple(int(part) for part in match.groups()) >= STATE_MIN_VERSION


def _agentapi_version(timeout: float = 1.0) -> str:
    """What `agentapi --version` prints within `timeout` s; "" (unknown) past it or past
    VERSION_MAX_BYTES: it is killed then, never read whole."""
    from agent.hooks.command import read_stdin  # noqa: PLC0415 - the one capped read of a pipe

    try:
        child = subprocess.Popen(
            ["agentapi", "--version"],  # noqa: S607 - the module's check, on the same PATH
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    with child:
        try:
            return read_stdin(child.stdout, timeout, VERSION_MAX_BYTES).decode(errors="replace")
        except (TimeoutError, ValueError, OSError):
            return ""
        finally:
            child.kill()  # done or not: nothing more is read


def _file_identity(path: Path | None) -> tuple[int, int, int] | None:
    if path is None:
        return None
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


def find_process(inputs: StopHookInputs) -> AgentAPIProcess | None:
    """The running AgentAPI named by the PID file, pinned; None (logged) when there is none."""
    log = get_logger("agent.stop.process")
    if inputs.pid_file is None:
        log.info(
            "agentapi_pid_unknown",
            reason="neither ARG_PID_FILE_PATH nor ARG_MODULE_DIR_NAME is set: AgentAPI is not "
            "signalled",
        )
        return None
    try:
        pid = read_pid(inputs.pid_file)
    except Unusable as exc:
        log.warning("agentapi_pid_refused", problem=str(exc), reason="AgentAPI is not signalled")
        return None
    if pid is None:
        log.info(
            "agentapi_pid_unknown",
            reason=f"no PID file at {inputs.pid_file}: AgentAPI is not signalled",
        )
        return None
    process = AgentAPIProcess(pid)
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
    """`pid` started after `pid_file` was written: AgentAPI's PID, now another program's.
    Unknown times count as not reused (the module's own script never checks)."""
    started = started_at(pid)
    try:
        written = pid_file.stat().st_mtime
    except OSError:
        return False
    return started is not None and started > written + PID_FILE_SLACK


async def save_state(
    process: AgentAPIProcess, inputs: StopHookInputs, known: bool, path: Path | None, clock: Clock
) -> None:
    """Step 2: SIGUSR1, and a wait that ends when the state file is replaced; `known`, `path`:
    what AgentAPI's own configuration says of it (`AgentAPIProcess.state_file`)."""
    import anyio  # noqa: PLC0415

    log = get_logger("agent.stop.process")
    if not inputs.state_persistence:
        log.info("agentapi_state_save_skipped", reason="ARG_ENABLE_STATE_PERSISTENCE is not true")
        return
    if known and path is None:
        log.info("agentapi_state_save_skipped", reason="AgentAPI runs without a state file")
        return
    if not known:
        # Ask the binary, as the module's script does: SIGUSR1 stops an AgentAPI older than 0.12.
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
        # Another process's file: nothing to wait on but its metadata.
        while path is None or _file_identity(path) == before:
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


async def terminate(process: AgentAPIProcess, within: float, clock: Clock) -> None:
    """Step 4: SIGTERM, at most `within` seconds (on `clock`), then SIGKILL."""
    log = get_logger("agent.stop.process")
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
