"""What every benchmark needs: the stand-ins in this process on loopback, the daemon as a real
subprocess, and /proc readings of its memory and CPU."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from standins.agentapi import AgentAPIStandIn, run_agentapi_standin
from standins.coder import CoderStandIn, run_coder_standin
from standins.coder.store import Store, Task
from standins.environment import agent_environment
from standins.http import Request, Response

TOKEN = "bench-token-5e1f0c7a"  # noqa: S105 - a made-up token for loopback stand-ins
TASK_ID = "7d1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
SLUG = "agent"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Arrivals:
    """When the Coder stand-in stored what (perf_counter seconds), and when each snapshot upload
    had been received whole (its HTTP layer handed it over, before any routing or storing)."""

    statuses: list[tuple[float, str]] = field(default_factory=list)
    snapshots: list[tuple[float, int]] = field(default_factory=list)
    snapshot_received: list[float] = field(default_factory=list)


@dataclass
class Peers:
    agentapi: AgentAPIStandIn
    coder: CoderStandIn
    agentapi_url: str
    coder_url: str
    arrivals: Arrivals
    workdir: Path

    def env(self, **extra: str) -> dict[str, str]:
        return agent_environment(
            coder_url=self.coder_url,
            agentapi_url=self.agentapi_url,
            token=TOKEN,
            task_id=TASK_ID,
            app_slug=SLUG,
            socket=self.workdir / "report.sock",
            **{"CODER_TASK_AGENT_LOG_LEVEL": "warning", **extra},
        )


@asynccontextmanager
async def peers(workdir: Path, rate_limit: int = 10**9) -> AsyncIterator[Peers]:
    """Both stand-ins on loopback, recording when things arrive."""
    arrivals = Arrivals()
    agentapi = AgentAPIStandIn(speed=50.0)
    async with anyio.create_task_group() as group:
        agentapi_port = await group.start(run_agentapi_standin, agentapi)
        agentapi_url = f"http://127.0.0.1:{agentapi_port}"
        store = RecordingStore(workdir / f"coder-{time.monotonic_ns()}.db", arrivals)
        task = Task(TASK_ID, "bench", "bench", "active", (SLUG,), agentapi_url)
        coder = ReceiptCoder(store, TOKEN, [task], rate_limit=rate_limit)
        coder.arrivals = arrivals
        coder_port = await group.start(run_coder_standin, coder)
        yield Peers(
            agentapi, coder, agentapi_url, f"http://127.0.0.1:{coder_port}", arrivals, workdir
        )
        group.cancel_scope.cancel()
    store.close()


class ReceiptCoder(CoderStandIn):
    """The Coder stand-in, noting when an upload to the snapshot route was received whole."""

    arrivals: Arrivals

    async def handle(self, request: Request) -> Response:
        if request.method == "POST" and request.path.endswith("/log-snapshot"):
            self.arrivals.snapshot_received.append(time.perf_counter())
        return await super().handle(request)


class RecordingStore(Store):
    """The stand-in's store, noting the arrival time of every status and snapshot."""

    def __init__(self, path: Path, arrivals: Arrivals) -> None:
        super().__init__(path)
        self.arrivals = arrivals

    def add_status(self, task_id: str, slug: str, state: str, message: str, uri: str) -> None:
        self.arrivals.statuses.append((time.perf_counter(), state))
        super().add_status(task_id, slug, state, message, uri)

    def put_snapshot(self, task_id: str, body: bytes) -> None:
        self.arrivals.snapshots.append((time.perf_counter(), len(body)))
        super().put_snapshot(task_id, body)


@dataclass(frozen=True)
class Variant:
    """The code a benchmark runs: this checkout's (`after`), or another's (`--before DIR`).

    `python -m agent` runs in `cwd`, the variant's own checkout: the interpreter puts the
    working directory first on the path, and another checkout's `agent/` would be imported.
    """

    name: str
    python: str
    cwd: str

    def agent(self) -> list[str]:
        return [self.python, "-m", "agent"]

    def script(self) -> list[str]:
        """The installed console script (what agents' hooks run)."""
        return [str(Path(self.python).with_name("coder-task-agent"))]


AFTER = Variant("after", sys.executable, str(Path(__file__).resolve().parent.parent))


def variants(before: str | None) -> list[Variant]:
    """`before` (a checkout with its own .venv) first when given, then this checkout."""
    if before is None:
        return [AFTER]
    root = Path(before).resolve()
    return [Variant("before", str(root / ".venv" / "bin" / "python"), str(root)), AFTER]


async def start_daemon(
    env: dict[str, str], *args: str, variant: Variant = AFTER
) -> anyio.abc.Process:
    return await anyio.open_process(
        [*variant.agent(), "run", *args],
        env=env,
        cwd=variant.cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# Runs the command as a child of a fresh, small interpreter and prints its exit code and peak
# RSS (wait4): a child forked straight from the benchmark's process would report the benchmark's
# own peak (a process's maximum survives exec).
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def peak_rss_mb(argv: list[str], env: dict[str, str], cwd: str) -> tuple[int, float]:
    """Run `argv` to its end; its exit code and its own peak resident memory in MB."""
    result = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, *argv],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=True,
    )
    code, kilobytes = result.stdout.split()
    return int(code), int(kilobytes) / 1024


async def wait_for(predicate: Callable[[], bool], within: float = 60.0) -> None:
    with anyio.fail_after(within):
        while True:
            if predicate():
                return
            await anyio.sleep(0.0005)


async def stop(process: anyio.abc.Process, within: float = 20.0) -> int:
    """SIGTERM (unless it already ended) and the exit code."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    with anyio.fail_after(within):
        return await process.wait()


def daemon_log(workdir: Path) -> str:
    """The last lines the benchmark's daemons wrote."""
    path = workdir / "daemon.log"
    return "\n".join(path.read_text(errors="replace").splitlines()[-20:]) if path.exists() else ""


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(int(memory) / 1024**2, 1),
        "python": sys.version.split()[0],
        "kernel": os.uname().release,
    }
