"""Benchmarks of the hook paths (issue 14), side by side in one run, medians.

- the interpreter's floor (`python -c pass`), `report` and `snapshot` handed to a running daemon,
  and `hook AGENT` for every agent of the registry (agent.hooks) with an event that reports,
  run in turn in every repeat so that a noisy machine weighs on all of them alike;
- a hook with no daemon and a Coder that accepts connections but never answers (issue 20):
  the hook budget (1 s by default) is what the agent waits, start to exit;
- Coder's reference stop script (bash + curl + jq, `reference-stop.sh`), the yardstick of the
  one-shot `snapshot` and of the daemon's stop path.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Protocol

import anyio

from agent.hooks import AGENTS
from bench.harness import (
    TASK_ID,
    TOKEN,
    Peers,
    Variant,
    daemon_log,
    median,
    peers,
    start_daemon,
    stop,
)
from bench.harness import wait_for as wait_until

REFERENCE = Path(__file__).parent / "reference-stop.sh"
# One event per agent that reports a status (a tool about to run), as the agent sends it:
# extra arguments and stdin.
_TOOL = {"hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": {"command": "ls"}}
HOOK_EVENTS: dict[str, tuple[list[str], bytes]] = {
    "claude-code": ([], json.dumps(_TOOL).encode()),
    "codex": ([json.dumps({"type": "agent-turn-complete", "last-assistant-message": "Done"})], b""),
    "gemini": ([], json.dumps({"hook_event_name": "BeforeTool", "tool_name": "ls"}).encode()),
    "qwen": ([], json.dumps(_TOOL).encode()),
    "cursor": ([], json.dumps({"hook_event_name": "preToolUse", "tool_name": "Shell"}).encode()),
    "copilot": (["--event", "preToolUse"], json.dumps({"toolName": "bash"}).encode()),
    "goose": ([], json.dumps({"event": "PreToolUse", "tool_name": "developer__shell"}).encode()),
    "auggie": ([], json.dumps({**_TOOL, "tool_name": "launch-process"}).encode()),
    "kiro": ([], json.dumps({"hook_event_name": "preToolUse", "tool_name": "shell"}).encode()),
    "opencode": (
        [],
        json.dumps({"type": "tool.execute.before", "properties": {"tool": "bash"}}).encode(),
    ),
}
MISSING = [tool for tool in ("bash", "curl", "jq") if shutil.which(tool) is None]


def reference_available() -> str | None:
    """None when the reference script can run, else why not."""
    if MISSING:
        return f"reference script skipped: {', '.join(MISSING)} not installed"
    return None


def header_file(workdir: Path) -> Path:
    path = workdir / "headers"
    path.write_text(f"Coder-Session-Token: {TOKEN}\n")
    path.chmod(0o600)
    return path


def reference_env(p: Peers, workdir: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "AGENTAPI_URL": p.agentapi_url,
        "CODER_AGENT_URL": p.coder_url,
        "TASK_ID": TASK_ID,
        "HEADER_FILE": str(header_file(workdir)),
    }


async def timed(
    argv: list[str], env: dict[str, str], stdin: bytes | None = None, cwd: str | None = None
) -> float:
    """Exec to exit of `argv` (fed `stdin`, in `cwd`), in seconds; the command must succeed."""
    start = time.perf_counter()
    result = await anyio.run_process(argv, input=stdin, env=env, cwd=cwd, check=False)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, (argv, result.stderr.decode()[-800:])
    return elapsed


async def run_reference(p: Peers, workdir: Path) -> float:
    """One run of the reference script against the stand-ins."""
    return await timed(["bash", str(REFERENCE)], reference_env(p, workdir))


class Rows(Protocol):
    """The results table of `bench.__main__`."""

    def add(
        self,
        group: str,
        case: str,
        value: float,
        unit: str,
        target: str,
        ok: bool | None,
        note: str = "",
    ) -> None: ...


async def bench_hooks(table: Rows, repeats: int, workdir: Path, variants: list[Variant]) -> None:
    """`report`, `snapshot` and every agent's `hook` through the installed console script (what
    agents' hooks run), handed to a running daemon, against the interpreter's floor.

    `report` and `snapshot` for each variant in turn in every repeat (`--before`); the hooks of
    the registry for this checkout only (the agents came with it). One daemon (this checkout's)
    takes every variant's requests: the socket's protocol is the same, and what is measured is
    the short-lived client.
    """
    assert HOOK_EVENTS.keys() == AGENTS.keys(), "an agent of the registry has no benchmark"
    add = table.add
    floor: list[float] = []
    samples: dict[str, list[float]] = {
        f"{name} ({variant.name})": [] for variant in variants for name in ("report", "snapshot")
    }
    samples.update({f"hook {agent} ({variants[-1].name})": [] for agent in HOOK_EVENTS})
    async with peers(workdir) as p:
        p.agentapi.replace_history([f"message {i}: short text" for i in range(3)])
        env = p.env()
        process = await start_daemon(env)
        await wait_until(lambda: bool(p.arrivals.statuses))
        await anyio.sleep(0.3)  # the replay settles into the mirror
        for i in range(repeats):
            floor.append(await timed([sys.executable, "-c", "pass"], env))
            state = "working" if i % 2 else "idle"
            for variant in variants:
                report = [*variant.script(), "report", state, f"step {i}"]
                samples[f"report ({variant.name})"].append(await timed(report, env))
                snapshot = [*variant.script(), "snapshot"]
                samples[f"snapshot ({variant.name})"].append(await timed(snapshot, env))
            for name, (args, stdin) in HOOK_EVENTS.items():
                hook = [*variants[-1].script(), "hook", name, *args]
                samples[f"hook {name} ({variants[-1].name})"].append(await timed(hook, env, stdin))
        assert await stop(process) == 0, daemon_log(workdir)
    base = median(floor)
    add("hooks (daemon running)", "python -c pass (the floor)", base * 1000, "ms", "-", None)
    for name, times in samples.items():
        ratio = median(times) / base
        add(
            "hooks (daemon running)",
            f"{name}, console script",
            median(times) * 1000,
            "ms",
            "<= 3x floor",
            ratio <= 3.0,
            f"{ratio:.2f}x the floor",
        )


async def bench_hook_budget(table: Rows, repeats: int, workdir: Path) -> None:
    """`hook claude-code` and `hook codex`, no daemon, Coder a black hole: exec to exit.

    The kernel accepts the connections (the listener's backlog) and nobody ever answers: the
    worst a network does. Each hook must give up within its budget (1 s by default).
    """
    run_dir = workdir / "budget-run"
    run_dir.mkdir(mode=0o700)
    claude = json.dumps({"hook_event_name": "UserPromptSubmit", "prompt": "Fix the tests"})
    codex = json.dumps({"type": "agent-turn-complete", "last-assistant-message": "Done"})
    with socket.create_server(("127.0.0.1", 0), backlog=1024) as listener:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "CODER_AGENT_URL": f"http://127.0.0.1:{listener.getsockname()[1]}",
            "CODER_AGENT_TOKEN": TOKEN,
            "CODER_MCP_APP_STATUS_SLUG": "agent",
            "CODER_TASK_AGENT_SOCKET": str(run_dir / "report.sock"),  # no daemon listens
            "CODER_AGENT_SOCKET_PATH": str(run_dir / "no-agent.sock"),
            "CODER_TASK_AGENT_LOG_FORMAT": "json",
        }
        cases = {
            "claude-code": ([sys.executable, "-m", "agent", "hook", "claude-code"], claude),
            "codex": ([sys.executable, "-m", "agent", "hook", "codex", codex], ""),
        }
        samples: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(repeats):
            for name, (argv, stdin) in cases.items():
                start = time.perf_counter()
                result = await anyio.run_process(argv, input=stdin.encode(), env=env, check=False)
                samples[name].append(time.perf_counter() - start)
                assert result.returncode == 0, result.stderr.decode()[-800:]
                assert result.stdout == b"", result.stdout[:200]
                assert b"not delivered within the hook budget" in result.stderr, result.stderr[
                    -800:
                ]
    for name, times in samples.items():
        value = median(times)
        table.add(
            "hook budget (no daemon)",
            f"hook {name}, Coder never answers",
            value * 1000,
            "ms",
            "<= 1000 ms",
            value <= 1.0,
            f"max {max(times) * 1000:.0f} ms over {len(times)}",
        )
