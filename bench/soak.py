"""`python -m bench.soak` (`make soak`): the daemon for half an hour under everything at once.

Status flips (prompts, each a turn with its message rewritten in place), explicit reports
through the socket, `/events` streams dropped under the daemon, and Coder outages (503 and 429
bursts) — all on loopback, the stand-ins served from this process, the daemon a real
subprocess. Every few seconds its RSS, open descriptors and threads are read from /proc; the
Coder stand-in notes every status it stores. At the end the agent is left stable, the daemon
must bring Coder to the same state (idle), then SIGTERM must save exactly one snapshot.

Results go to bench/results/soak.json (samples, every delivered state, a summary with the RSS
trend over the second half). The run is bounded: `--minutes` plus five minutes at most.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
import httpx

from agent.log import configure
from agent.reportsocket.client import exchange
from bench.harness import (
    SLUG,
    TASK_ID,
    TOKEN,
    Arrivals,
    Peers,
    RecordingStore,
    machine,
    rss_kb,
    wait_for,
)
from standins.agentapi import AgentAPIStandIn, run_agentapi_standin
from standins.agentapi.scenario import PromptScript, Scenario
from standins.coder import CoderStandIn, Fault, run_coder_standin
from standins.coder.store import Task

RESULTS = Path(__file__).parent / "results"
SAMPLE_EVERY = 5.0
# Scenario seconds are divided by this: a turn of a few seconds, its message rewritten ~10/s.
SPEED = 4.0
SCENARIO = Scenario(
    send_seconds=0.4,
    settle_seconds=2.0,
    prompts=(
        PromptScript(
            match="default",
            think_seconds=1.0,
            lines=tuple(f"● step {i}: {'─' * 60}" for i in range(30)),
            lines_per_second=40.0,
            finish="● Done.",
        ),
    ),
)


@dataclass
class Counts:
    prompts: int = 0
    busy: int = 0
    explicit: int = 0
    stream_drops: int = 0
    outages: int = 0
    rate_limits: int = 0
    report_errors: list[str] = field(default_factory=list)


@dataclass
class Sample:
    t: float
    rss_kb: int
    fds: int
    threads: int


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@asynccontextmanager
async def stand_ins(workdir: Path) -> AsyncIterator[Peers]:
    arrivals = Arrivals()
    agentapi = AgentAPIStandIn(SCENARIO, speed=SPEED)
    async with anyio.create_task_group() as group:
        agentapi_port = await group.start(run_agentapi_standin, agentapi)
        agentapi_url = f"http://127.0.0.1:{agentapi_port}"
        store = RecordingStore(workdir / "coder.db", arrivals)
        task = Task(TASK_ID, "soak", "soak", "active", (SLUG,), agentapi_url)
        coder = CoderStandIn(store, TOKEN, [task], rate_limit=10**9)
        coder_port = await group.start(run_coder_standin, coder)
        yield Peers(
            agentapi, coder, agentapi_url, f"http://127.0.0.1:{coder_port}", arrivals, workdir
        )
        group.cancel_scope.cancel()
    store.close()


async def prompt(client: httpx.AsyncClient, url: str, text: str) -> bool:
    answer = await client.post(f"{url}/message", json={"content": text, "type": "user"})
    return answer.status_code == 200


async def explicit(socket_path: Path, state: str, message: str) -> dict[str, Any]:
    request = {"state": state, "message": message, "uri": ""}
    return await anyio.to_thread.run_sync(exchange, socket_path, request, 10.0)


async def drive(p: Peers, socket_path: Path, seconds: float, rng: random.Random, c: Counts) -> None:
    """The workload: a prompt when the agent is free, drops, outages and explicit reports."""
    end = time.monotonic() + seconds
    next_drop = time.monotonic() + rng.uniform(20, 60)
    next_outage = time.monotonic() + rng.uniform(40, 120)
    next_explicit = time.monotonic() + rng.uniform(30, 90)
    async with httpx.AsyncClient(timeout=30) as client:
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_drop:
                p.agentapi.close_streams()
                c.stream_drops += 1
                next_drop = now + rng.uniform(20, 60)
            if now >= next_outage:
                if rng.random() < 0.7:
                    p.coder.faults.append(Fault("app-status", 503, times=rng.randint(2, 8)))
                    c.outages += 1
                else:
                    p.coder.faults.append(
                        Fault("app-status", 429, times=rng.randint(1, 3), retry_after=2)
                    )
                    c.rate_limits += 1
                next_outage = now + rng.uniform(40, 120)
            if now >= next_explicit and p.agentapi.status == "stable":
                try:
                    await explicit(socket_path, "complete", f"Soak checkpoint {c.explicit}")
                    c.explicit += 1
                except OSError as exc:
                    c.report_errors.append(type(exc).__name__)
                next_explicit = now + rng.uniform(30, 90)
            if p.agentapi.status == "stable":
                if await prompt(client, p.agentapi_url, f"Soak prompt {c.prompts}: do step"):
                    c.prompts += 1
                else:
                    c.busy += 1
            await anyio.sleep(rng.uniform(1.0, 6.0))


async def sample(pid: int, start: float, out: list[Sample]) -> None:
    while True:
        try:
            out.append(Sample(time.perf_counter() - start, rss_kb(pid), fds(pid), threads(pid)))
        except (FileNotFoundError, ProcessLookupError):
            return
        await anyio.sleep(SAMPLE_EVERY)


def slope_mb_per_hour(points: list[Sample]) -> float:
    """Least-squares slope of RSS over time, in MB per hour (0 with fewer than 2 samples)."""
    if len(points) < 2:
        return 0.0
    xs = [s.t for s in points]
    ys = [s.rss_kb / 1024 for s in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var * 3600


async def soak(minutes: float, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)  # noqa: S311 - a reproducible workload, not a secret
    counts = Counts()
    samples: list[Sample] = []
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp, anyio.fail_after(minutes * 60 + 300):
        workdir = Path(tmp)
        socket_path = workdir / "run" / "report.sock"
        log_path = workdir / "daemon.log"
        async with stand_ins(workdir) as p:
            env = p.env(
                CODER_TASK_AGENT_SOCKET=str(socket_path),
                CODER_TASK_AGENT_LOG_LEVEL="info",
                CODER_TASK_AGENT_REQUEST_TIMEOUT="3",
            )
            with log_path.open("wb") as log_file:
                process = await anyio.open_process(
                    [sys.executable, "-m", "agent", "run"],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=log_file,
                )
            start = time.perf_counter()
            async with anyio.create_task_group() as group:
                group.start_soon(sample, process.pid, start, samples)
                await drive(p, socket_path, minutes * 60, rng, counts)
                # Settle: no more faults, the last turn ends, Coder must follow AgentAPI.
                p.coder.faults.clear()
                await wait_for(lambda: p.agentapi.status == "stable", within=120)
                settle_start = time.perf_counter()
                with contextlib.suppress(TimeoutError):
                    await wait_for(
                        lambda: bool(p.arrivals.statuses) and p.arrivals.statuses[-1][1] == "idle",
                        within=120,
                    )
                settled_after = time.perf_counter() - settle_start
                final_state = p.arrivals.statuses[-1][1] if p.arrivals.statuses else None
                agentapi_status = p.agentapi.status
                snapshots_before = len(p.arrivals.snapshots)
                process.send_signal(signal.SIGTERM)
                with anyio.fail_after(60):
                    exit_code = await process.wait()
                group.cancel_scope.cancel()
            snapshots = len(p.arrivals.snapshots) - snapshots_before
            rows = p.coder.store.statuses()
            delivered = [
                (round(t - start, 3), state, row["message"])
                for (t, state), row in zip(p.arrivals.statuses, rows, strict=True)
            ]
        log_lines = log_path.read_text(errors="replace").splitlines()
        problems: dict[str, int] = {}
        for line in log_lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("level") in ("warning", "error", "critical"):
                problems[entry["event"]] = problems.get(entry["event"], 0) + 1
        token_in_log = any(TOKEN in line for line in log_lines)

    second_half = [s for s in samples if s.t >= samples[-1].t / 2] if samples else []
    # The same report (state and message) twice in a row: only a re-send after an unknown
    # outcome (a 503 the stand-in may send after storing nothing, which the daemon cannot
    # tell apart from one sent after storing) may cause one.
    repeats = sum(1 for a, b in itertools.pairwise(delivered) if a[1:] == b[1:])
    summary = {
        "minutes": minutes,
        "seed": seed,
        "exit_code": exit_code,
        "snapshots_at_stop": snapshots,
        "final_coder_state": final_state,
        "agentapi_status": agentapi_status,
        "final_state_matches": final_state == "idle" and agentapi_status == "stable",
        "settled_after_s": round(settled_after, 3),
        "statuses_delivered": len(delivered),
        "same_report_twice_in_a_row": repeats,
        "rss_mb": {
            "first": round(samples[0].rss_kb / 1024, 1) if samples else None,
            "last": round(samples[-1].rss_kb / 1024, 1) if samples else None,
            "max": round(max(s.rss_kb for s in samples) / 1024, 1) if samples else None,
            "second_half_slope_mb_per_hour": round(slope_mb_per_hour(second_half), 2),
        },
        "fds": {"min": min(s.fds for s in samples), "max": max(s.fds for s in samples)},
        "threads": {"min": min(s.threads for s in samples), "max": max(s.threads for s in samples)},
        "workload": counts.__dict__,
        "daemon_problems_logged": problems,
        "token_in_log": token_in_log,
    }
    return {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "summary": summary,
        "samples": [s.__dict__ for s in samples],
        "delivered": delivered,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--out", type=Path, default=RESULTS / "soak.json")
    args = parser.parse_args()
    configure("warning", "console")  # the stand-ins' request lines would drown the summary
    result = anyio.run(soak, args.minutes, args.seed)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    summary = result["summary"]
    print(json.dumps(summary, indent=1))
    ok = summary["final_state_matches"] and summary["exit_code"] == 0
    sys.exit(0 if ok and summary["snapshots_at_stop"] == 1 else 1)


if __name__ == "__main__":
    main()
