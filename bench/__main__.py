"""`make bench` / `python -m bench`: real processes on loopback, medians over repeated runs.

Prints a table and writes bench/results/latest.json (the machine is recorded with the figures).
`--quick` runs every benchmark with fewer repeats and shorter durations (a smoke run).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx

from agent.coder.httpapi import CoderClient
from agent.daemon.reporter import Reporter
from agent.log import configure
from agent.models import AppState, AppStatus
from bench.harness import (
    SLUG,
    TOKEN,
    Variant,
    cpu_seconds,
    daemon_log,
    hwm_kb,
    machine,
    median,
    peak_rss_mb,
    peers,
    percentile,
    rss_kb,
    start_daemon,
    stop,
    variants,
    wait_for,
)
from bench.hooks import (
    bench_hook_budget,
    bench_hooks,
    reference_available,
    run_reference,
    timed,
)
from standins.coder import Fault
from tests.deadports import refusing_port

RESULTS = Path(__file__).parent / "results"
ESCAPES = '"\\\x01\t\n' * 14_000  # 70 KB of quotes, backslashes and control characters


def histories() -> dict[str, list[str]]:
    return {
        "10 small": [f"message {i}: short text" for i in range(10)],
        "2000 x 2 KB": ["x" * 2048 for _ in range(2000)],
        "10 x 1 MB": [("│ terminal line ░▒▓ " * 60 + "\n") * 850 for _ in range(10)],
        "1 x 5 MB": ["y" * 5_000_000],
        "70 KB escape-heavy": [ESCAPES],
    }


class Table:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(
        self,
        group: str,
        case: str,
        value: float,
        unit: str,
        target: str,
        ok: bool | None,
        note: str = "",
    ) -> None:
        row = {
            "group": group,
            "case": case,
            "value": round(value, 4),
            "unit": unit,
            "target": target,
            "met": ok,
            "note": note,
        }
        self.rows.append(row)
        mark = "" if ok is None else ("ok" if ok else "MISSED")
        print(
            f"{group:<22} {case:<34} {value:>10.3f} {unit:<6} {target:<16} {mark:<6} {note}",
            flush=True,
        )


async def stop_once(
    workdir: Path, contents: list[str], reference: bool, variant: Variant
) -> tuple[float, float, float | None]:
    """One daemon stopped by SIGTERM: seconds to the upload received whole and to it stored by
    the Coder stand-in, and the reference script's whole run on the same history (or None)."""
    async with peers(workdir) as p:
        p.agentapi.replace_history(contents)
        process = await start_daemon(p.env(), variant=variant)
        await wait_for(lambda: bool(p.arrivals.statuses))
        await anyio.sleep(0.3)  # let the replay settle into the mirror
        # Serialise the history once before the clock starts: the stand-in is Python,
        # AgentAPI is Go and does it in a fraction of the time; measure the daemon.
        async with httpx.AsyncClient() as http:
            await http.get(f"{p.agentapi_url}/messages")
        start = time.perf_counter()
        process.send_signal(signal.SIGTERM)
        await wait_for(lambda: bool(p.arrivals.snapshots))
        received = p.arrivals.snapshot_received[0] - start
        stored = p.arrivals.snapshots[0][0] - start
        with anyio.fail_after(20):
            assert await process.wait() == 0, daemon_log(workdir)
        # Side by side: the same history, the same stand-ins.
        script = await run_reference(p, workdir) if reference else None
    return received, stored, script


async def bench_stop(table: Table, repeats: int, workdir: Path, variants: list[Variant]) -> None:
    """SIGTERM to the snapshot received by Coder (the whole request read by the stand-in's HTTP
    layer), against the reference script's whole run; the time to stored is in the note. Each
    variant in turn in every repeat, the reference once per repeat.

    One unmeasured round first: the first request of its kind in this process pays the
    stand-ins' cold start (the daemon and the script start afresh in every repeat anyway).
    """
    skip = reference_available()
    await stop_once(workdir, histories()["10 small"], skip is None, variants[-1])
    for name, contents in histories().items():
        samples: dict[str, list[float]] = {v.name: [] for v in variants}
        stored: dict[str, list[float]] = {v.name: [] for v in variants}
        reference: list[float] = []
        for _ in range(repeats):
            for index, variant in enumerate(variants):
                with_script = skip is None and index == 0
                received, saved, script = await stop_once(workdir, contents, with_script, variant)
                samples[variant.name].append(received)
                stored[variant.name].append(saved)
                if script is not None:
                    reference.append(script)
        small = name == "10 small"
        for variant in variants:
            ours = median(samples[variant.name])
            note = f"stored after {median(stored[variant.name]) * 1000:.2f} ms"
            case = f"{name} ({variant.name})"
            if skip is not None:
                table.add("stop snapshot (daemon)", case, ours * 1000, "ms", "-", None, note)
                continue
            faster = median(reference) / ours
            table.add(
                "stop snapshot (daemon)",
                case,
                ours * 1000,
                "ms",
                ">= 10x ref" + (", < 5 ms" if small else ""),
                faster >= 10 and (ours < 0.005 or not small),
                f"reference script {median(reference) * 1000:.0f} ms: {faster:.0f}x faster; {note}",
            )


async def bench_oneshot(table: Table, repeats: int, workdir: Path, variants: list[Variant]) -> None:
    """`snapshot` with no daemon (the blocking shell), each variant and the reference script in
    turn in every repeat."""
    skip = reference_available()
    for name, contents in histories().items():
        ours: dict[str, list[float]] = {v.name: [] for v in variants}
        reference: list[float] = []
        async with peers(workdir) as p:
            p.agentapi.replace_history(contents)
            # No daemon listens here: the one-shot path itself.
            env = p.env(CODER_TASK_AGENT_SOCKET=str(workdir / "nobody" / "report.sock"))
            for _ in range(repeats):
                for variant in variants:
                    command = [*variant.agent(), "snapshot"]
                    ours[variant.name].append(await timed(command, env, cwd=variant.cwd))
                if skip is None:
                    reference.append(await run_reference(p, workdir))
        large = name in ("10 x 1 MB", "1 x 5 MB")
        small = name == "10 small"
        for variant in variants:
            case = f"{name} ({variant.name})"
            mine = median(ours[variant.name])
            if skip is not None:
                table.add("one-shot snapshot", case, mine, "s", "-", None, skip)
                continue
            ratio = mine / median(reference)
            target = "<= 0.2x ref" if large else ("<= 1.5x ref" if small else "-")
            met = ratio <= 0.2 if large else (ratio <= 1.5 if small else None)
            table.add(
                "one-shot snapshot",
                case,
                mine,
                "s",
                target,
                met,
                f"reference script {median(reference):.3f} s: {ratio:.2f}x",
            )


# The `/messages` cap (agent.conversation.MAX_MESSAGES_BYTES) and what an interpreter with our
# modules takes besides it: a short command's peak memory must stay under their sum.
CAP_MB = 128.0
BASELINE_MB = 64.0


async def hostile_messages(declared: bool, *, task_status: anyio.abc.TaskStatus[int]) -> None:
    """An AgentAPI answering every `/messages` with 300 MB of spaces (a length declared, or
    close-delimited), for as long as the client reads."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    head = b"HTTP/1.1 200 OK\r\n"
    head += b"Content-Length: 300000000\r\n\r\n" if declared else b"Connection: close\r\n\r\n"
    block = b" " * 1_048_576

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            try:
                await stream.receive()
                await stream.send(head)
                for _ in range(300):
                    await stream.send(block)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                return

    async with listener:
        task_status.started(listener.extra(anyio.abc.SocketAttribute.local_port))
        await listener.serve(handle)


async def bench_memory(table: Table, repeats: int, workdir: Path, variants: list[Variant]) -> None:
    """Peak memory of `snapshot` (no daemon) and `stop-hook` when AgentAPI answers 300 MB."""
    for declared in (True, False):
        async with peers(workdir) as p, anyio.create_task_group() as group:
            port = await group.start(hostile_messages, declared)
            env = p.env(
                CODER_MCP_AI_AGENTAPI_URL=f"http://127.0.0.1:{port}",
                CODER_TASK_AGENT_SOCKET=str(workdir / "nobody" / "report.sock"),
                CODER_TASK_AGENT_STOP_FETCH_TIMEOUT="4",
                CODER_TASK_AGENT_SHUTDOWN_BUDGET="5",
            )
            for variant in variants:
                for command in ("snapshot", "stop-hook"):
                    peaks = []
                    for _ in range(max(1, repeats // 3)):
                        _, peak = await anyio.to_thread.run_sync(
                            peak_rss_mb, [*variant.agent(), command], env, variant.cwd
                        )
                        peaks.append(peak)
                    how = "declared" if declared else "close-delimited"
                    table.add(
                        "memory, 300 MB /messages",
                        f"{command}, {how} ({variant.name})",
                        max(peaks),
                        "MB",
                        f"<= cap + {BASELINE_MB:.0f} MB",
                        max(peaks) <= CAP_MB + BASELINE_MB,
                        f"peak RSS (wait4), the worst of {len(peaks)}; cap {CAP_MB:.0f} MiB",
                    )
            group.cancel_scope.cancel()


def import_profile() -> str:
    with refusing_port() as port:  # whatever listens on this machine is never reached
        env = {
            **os.environ,
            "CODER_AGENT_URL": f"http://127.0.0.1:{port}",
            "CODER_AGENT_TOKEN": "x",
            "CODER_MCP_AI_AGENTAPI_URL": f"http://127.0.0.1:{port}",
        }
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "agent", "snapshot"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    rows = []
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            parts = [x.strip() for x in line[12:].split("|")]
            if parts[1].isdigit():
                rows.append((int(parts[1]), parts[2]))
    top = sorted(rows, reverse=True)[:8]
    return ", ".join(f"{name.strip()} {us / 1000:.0f} ms" for us, name in top)


def more_than(items: list[tuple[float, str]], count: int) -> bool:
    return len(items) > count


async def bench_latency(table: Table, flips: int, workdir: Path) -> None:
    for mode in ("events", "poll"):
        latencies: list[float] = []
        async with peers(workdir) as p:
            process = await start_daemon(p.env(CODER_TASK_AGENT_MODE=mode))
            await wait_for(lambda: len(p.arrivals.statuses) == 1)
            for i in range(flips):
                count = len(p.arrivals.statuses)
                start = time.perf_counter()
                if i % 2 == 0:
                    p.agentapi.put_message("user", f"prompt {i}")
                    p.agentapi.set_status("running")
                else:
                    p.agentapi.set_status("stable")
                await wait_for(partial(more_than, p.arrivals.statuses, count))
                latencies.append(p.arrivals.statuses[-1][0] - start)
                await anyio.sleep(0.05 if mode == "events" else 0.3)
            assert await stop(process) == 0, daemon_log(workdir)
        p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
        if mode == "events":
            table.add("status latency", "events p50", p50, "ms", "-", None)
            table.add("status latency", "events p99", p99, "ms", "< 50 ms", p99 < 50)
        else:
            table.add("status latency", "poll (1 s) p50", p50, "ms", "-", None)
            table.add("status latency", "poll (1 s) p99", p99, "ms", "< 1020 ms", p99 < 1020)


async def bench_idle(table: Table, seconds: float, workdir: Path) -> None:
    for mode, cpu_target in (("events", 0.2), ("poll", 1.0)):
        async with peers(workdir) as p:
            p.agentapi.replace_history(["x" * 2048 for _ in range(2000)])
            process = await start_daemon(p.env(CODER_TASK_AGENT_MODE=mode))
            await wait_for(lambda: len(p.arrivals.statuses) == 1)
            await anyio.sleep(2)
            requests_before = len(p.coder.requests)
            rss_start, cpu_start, t0 = rss_kb(process.pid), cpu_seconds(process.pid), time.time()
            samples = []
            while time.time() - t0 < seconds:
                await anyio.sleep(1)
                samples.append(rss_kb(process.pid))
            cpu = (cpu_seconds(process.pid) - cpu_start) / (time.time() - t0) * 100
            extra_requests = len(p.coder.requests) - requests_before
            assert await stop(process) == 0, daemon_log(workdir)
        rss_end = samples[-1] / 1024
        growth = (samples[-1] - rss_start) / 1024
        table.add(
            f"idle {mode} ({seconds:.0f} s)",
            "RSS",
            rss_end,
            "MB",
            "< 50 MB",
            rss_end < 50,
            f"growth {growth:+.2f} MB",
        )
        table.add(
            f"idle {mode} ({seconds:.0f} s)",
            "CPU",
            cpu,
            "% core",
            f"< {cpu_target} %",
            cpu < cpu_target,
        )
        table.add(
            f"idle {mode} ({seconds:.0f} s)",
            "requests to Coder",
            extra_requests,
            "req",
            "0",
            extra_requests == 0,
        )


async def bench_growth(table: Table, rewrite_seconds: float, workdir: Path) -> None:
    async with peers(workdir) as p:
        p.agentapi.replace_history(["z" * 2048 for _ in range(25_000)])  # ~50 MB
        start = time.perf_counter()
        process = await start_daemon(p.env())
        await wait_for(lambda: len(p.arrivals.statuses) == 1, within=120)
        replay = time.perf_counter() - start
        peak = hwm_kb(process.pid) / 1024
        after = rss_kb(process.pid) / 1024
        assert await stop(process) == 0, daemon_log(workdir)
    table.add("growth", "50 MB replay: time to first status", replay, "s", "-", None)
    table.add(
        "growth", "50 MB replay: peak RSS", peak, "MB", "bounded", None, f"RSS after {after:.1f} MB"
    )
    async with peers(workdir) as p:
        process = await start_daemon(p.env())
        await wait_for(lambda: len(p.arrivals.statuses) == 1)
        message_id = p.agentapi.put_message("agent", "")
        text = ""
        t0 = time.time()
        first = rss_kb(process.pid)
        rewrites = 0
        while time.time() - t0 < rewrite_seconds:
            text = (text + f"line {rewrites:06d} ░▒▓ output\n")[-300_000:]
            p.agentapi.put_message("agent", text, message_id)
            rewrites += 1
            await anyio.sleep(1 / 40)
        last = rss_kb(process.pid)
        peak = hwm_kb(process.pid) / 1024
        assert await stop(process) == 0, daemon_log(workdir)
    table.add(
        "growth",
        f"40 rewrites/s for {rewrite_seconds:.0f} s: RSS",
        last / 1024,
        "MB",
        "bounded",
        None,
        f"start {first / 1024:.1f} MB, peak {peak:.1f} MB, {rewrites} rewrites",
    )


async def bench_fleet(table: Table, size: int, storm_seconds: float, workdir: Path) -> None:
    async with peers(workdir) as p:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(
            base_url=p.coder_url, headers={"Coder-Session-Token": TOKEN}, timeout=30, limits=limits
        ) as http:
            client = CoderClient(http, SLUG)
            reporters = [Reporter(client.patch_app_status) for _ in range(size)]
            states = [AppState.WORKING, AppState.IDLE, AppState.WORKING, AppState.IDLE]
            async with anyio.create_task_group() as group:
                for reporter in reporters:
                    group.start_soon(reporter.run)
                for index, state in enumerate(states):
                    for reporter in reporters:
                        reporter.want(AppStatus(state, f"change {index}"))
                        reporter.want(AppStatus(state, f"change {index}"))  # a repeat: no send
                    await wait_for(lambda: all(r.pending is None for r in reporters), within=120)
                ratio = len(p.coder.requests) / (size * len(states))
                table.add(
                    f"fleet ({size} reporters)",
                    "requests per state change",
                    ratio,
                    "req",
                    "1.0",
                    abs(ratio - 1.0) < 1e-9,
                )

                # a 503 storm: every report fails until it ends, then the latest must arrive
                p.coder.faults.append(Fault("app-status", 503, times=10**9))
                before = len(p.coder.requests)
                for reporter in reporters:
                    reporter.want(AppStatus(AppState.COMPLETE, "storm"))
                await anyio.sleep(storm_seconds)
                during = len(p.coder.requests) - before
                p.coder.faults.clear()
                recovered = time.perf_counter()
                await wait_for(lambda: all(r.pending is None for r in reporters), within=300)
                catch_up = time.perf_counter() - recovered
                group.cancel_scope.cancel()
        table.add(
            f"fleet ({size} reporters)",
            f"{storm_seconds:.0f} s 503 storm: retries",
            during / storm_seconds,
            "req/s",
            "bounded",
            None,
            f"{during / size:.1f} tries per reporter",
        )
        table.add(
            f"fleet ({size} reporters)",
            "all latest states delivered after",
            catch_up,
            "s",
            "-",
            None,
            "backoff cap 30 s, full jitter",
        )


def house(root: Path) -> tuple[int, int, str]:
    """Lines of the product package (every .py under agent/) and its biggest class: issue 19's
    figures, counted as `../shared/tools/house` counts them."""
    import ast  # noqa: PLC0415 - only this benchmark parses source

    lines, biggest, name = 0, 0, ""
    for path in sorted((root / "agent").rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        lines += len(source.splitlines())
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > biggest:
                    biggest, name = size, f"{path.relative_to(root)}:{node.name}"
    return lines, biggest, name


async def bench_house(table: Table, variants: list[Variant]) -> None:
    for variant in variants:
        lines, biggest, name = house(Path(variant.cwd))
        table.add(
            "house", f"agent/ lines ({variant.name})", lines, "lines", "<= 7500", lines <= 7500
        )
        table.add(
            "house",
            f"biggest class ({variant.name})",
            biggest,
            "lines",
            "<= 250",
            biggest <= 250,
            name,
        )


async def run(args: argparse.Namespace) -> None:
    table = Table()
    print(f"{'group':<22} {'case':<34} {'value':>10} {'unit':<6} {'target':<16}", flush=True)
    chosen_variants = variants(args.before)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = Path(tmp)
        chosen: dict[str, Callable[[], Any]] = {
            "house": lambda: bench_house(table, chosen_variants),
            "hooks": lambda: bench_hooks(table, args.hook_repeats, workdir, chosen_variants),
            "hook-budget": lambda: bench_hook_budget(table, args.budget_repeats, workdir),
            "stop": lambda: bench_stop(table, args.repeats, workdir, chosen_variants),
            "oneshot": lambda: bench_oneshot(table, args.repeats, workdir, chosen_variants),
            "memory": lambda: bench_memory(table, args.repeats, workdir, chosen_variants),
            "latency": lambda: bench_latency(table, args.flips, workdir),
            "idle": lambda: bench_idle(table, args.idle_seconds, workdir),
            "growth": lambda: bench_growth(table, args.rewrite_seconds, workdir),
            "fleet": lambda: bench_fleet(table, args.fleet, args.storm_seconds, workdir),
        }
        for name in args.only or list(chosen):
            await chosen[name]()
    profile = import_profile() if not args.only or "oneshot" in args.only else ""
    if profile:
        print(f"\none-shot import profile (cumulative): {profile}")
    RESULTS.mkdir(exist_ok=True)
    output = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "args": vars(args),
        "variants": {v.name: v.cwd for v in chosen_variants},
        "rows": table.rows,
        "import_profile": profile,
    }
    path = RESULTS / ("quick.json" if args.quick else "latest.json")
    path.write_text(json.dumps(output, indent=2) + "\n")
    print(f"\nwritten: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument(
        "--only",
        nargs="*",
        choices=[
            "house",
            "hooks",
            "hook-budget",
            "stop",
            "oneshot",
            "memory",
            "latency",
            "idle",
            "growth",
            "fleet",
        ],
    )
    parser.add_argument(
        "--before",
        metavar="DIR",
        help="also run hooks, stop, oneshot and memory on the checkout in DIR (with its own "
        ".venv), in turn with this one in every repeat: each figure before and after, one run",
    )
    args = parser.parse_args()
    args.repeats = 2 if args.quick else 7
    args.hook_repeats = 3 if args.quick else 31
    args.budget_repeats = 3 if args.quick else 15
    args.flips = 10 if args.quick else 100
    args.idle_seconds = 5.0 if args.quick else 180.0
    args.rewrite_seconds = 3.0 if args.quick else 60.0
    args.fleet = 100 if args.quick else 1000
    args.storm_seconds = 3.0 if args.quick else 30.0
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # measure installed-like start-up
    configure("error", "console")
    anyio.run(run, args)


if __name__ == "__main__":
    main()
