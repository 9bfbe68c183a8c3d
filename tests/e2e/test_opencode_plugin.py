"""agent/hooks/opencode.js, run by Node as OpenCode would run it, against fake OpenCode calls.

OpenCode itself is not run here: a driver imports the plugin, calls its handlers the way
OpenCode does (`event`, `chat.message`, `tool.execute.before`, with a fake SDK client), and the
plugin spawns its command. Checked: the handlers return without waiting for the hook, the hooks
run one at a time in the order of the events, and, through the real `hook opencode` handed to a
report socket, each event reports what agent/hooks/opencode.py says.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
from pathlib import Path

import anyio
import pytest

from agent.models import AppStatus
from agent.reportsocket.server import serve_reports
from tests.e2e.conftest import Peers

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed"),
]

PLUGIN = Path(__file__).resolve().parents[2] / "agent" / "hooks" / "opencode.js"
# The calls OpenCode makes during one turn with a subagent, a permission prompt and an error.
DRIVER = """
const { CoderTaskAgent } = await import(process.argv[2]);
const client = { session: { messages: async ({ path }) => ({ data: [
  { info: { role: "user", sessionID: path.id }, parts: [{ type: "text", text: "q" }] },
  { info: { role: "assistant" }, parts: [
    { type: "text", text: "Three files.\\nA, B, C" }, { type: "tool", tool: "bash" },
  ] },
] }) } };
const hooks = await CoderTaskAgent({ client, project: {}, directory: ".", worktree: "." });
const event = (type, properties) => hooks.event({ event: { type, properties } });
await event("session.created", { info: { id: "s1", title: "New session" } });
await hooks["chat.message"](
  { sessionID: "s1", agent: "build" },
  { message: {}, parts: [{ type: "text", text: '"List files"' }] },
);
await event("session.status", { sessionID: "s1", status: { type: "busy" } });
await hooks["tool.execute.before"]({ tool: "bash", sessionID: "s1", callID: "c1" }, { args: {} });
await event("session.created", { info: { id: "s2", parentID: "s1" } });
await hooks["tool.execute.before"]({ tool: "read", sessionID: "s2", callID: "c2" }, { args: {} });
await event("message.updated", { info: { id: "m1" } });
await event("permission.asked", { id: "p1", sessionID: "s1", permission: "bash" });
await event("session.idle", { sessionID: "s1" });
await event("session.error", {
  sessionID: "s1", error: { name: "APIError", data: { message: "Rate limited" } },
});
await event("session.idle", { sessionID: "s1" });
console.log("handlers returned");
"""


def node_env(command: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CODER_TASK_AGENT_COMMAND": str(command),
        **extra,
    }


async def test_handlers_return_at_once_and_hooks_run_in_order(tmp_path: Path) -> None:
    """The first hook blocks on a FIFO until the test lets it go: the handlers must not wait
    for it, and no later hook may run before it (a later one finishing first would be
    recorded first)."""
    gate, record, first = tmp_path / "gate", tmp_path / "record", tmp_path / "first"
    os.mkfifo(gate)
    command = tmp_path / "hook.sh"
    command.write_text(
        "#!/bin/sh\n"
        f'if mkdir "{first}" 2>/dev/null; then head -c 1 "{gate}" >/dev/null; fi\n'
        f'cat >> "{record}"\necho >> "{record}"\n'
    )
    command.chmod(0o700)
    (tmp_path / "plugin.mjs").write_text(PLUGIN.read_text())
    (tmp_path / "driver.mjs").write_text(DRIVER)
    with anyio.fail_after(60):
        process = await anyio.open_process(
            ["node", str(tmp_path / "driver.mjs"), str(tmp_path / "plugin.mjs")],
            env=node_env(command),
        )
        async with process:
            assert process.stdout is not None
            # Every handler returned while the first hook still waits at the gate.
            assert await process.stdout.receive() == b"handlers returned\n"
            assert not record.exists()
            gate_fd = await anyio.to_thread.run_sync(os.open, gate, os.O_WRONLY)
            os.write(gate_fd, b"g")
            os.close(gate_fd)
            assert await process.wait() == 0
    sent = [json.loads(line) for line in record.read_text().splitlines()]
    assert [envelope["type"] for envelope in sent] == [
        "session.created",
        "chat.message",
        "session.status",
        "tool.execute.before",
        "session.created",
        "tool.execute.before",
        "permission.asked",
        "session.idle",
        "session.error",
        "session.idle",
    ]
    assert sent[1]["properties"] == {"sessionID": "s1", "text": '"List files"'}
    assert [e.get("parentID") for e in sent[4:6]] == ["s1", "s1"]  # the subagent's session
    assert sent[7]["answer"] == "Three files.\nA, B, C"  # read through OpenCode's client
    assert sent[9] == {
        "type": "session.idle",
        "properties": {"sessionID": "s1"},
        "afterError": True,
    }


async def test_each_event_reports_through_hook_opencode(peers: Peers, tmp_path: Path) -> None:
    """The plugin spawning the real `coder-task-agent hook opencode`, handed to a report socket."""
    command = tmp_path / "coder-task-agent"
    command.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m agent "$@"\n')
    command.chmod(0o700)
    (tmp_path / "plugin.mjs").write_text(PLUGIN.read_text())
    (tmp_path / "driver.mjs").write_text(DRIVER)
    hooks: list[AppStatus] = []
    env = {**peers.env(), **node_env(command), "PYTHONPATH": str(PLUGIN.parents[2])}
    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            await group.start(
                functools.partial(serve_reports, on_hook_report=hooks.append),
                peers.workdir / "run" / "report.sock",
                hooks.append,
            )
            result = await anyio.run_process(
                ["node", str(tmp_path / "driver.mjs"), str(tmp_path / "plugin.mjs")],
                env=env,
                check=False,
            )
            group.cancel_scope.cancel()
    assert result.returncode == 0, result.stderr
    assert [(s.state.value, s.message) for s in hooks] == [
        ("idle", "Waiting for input"),
        ("working", "List files"),
        ("working", "Using bash"),
        ("idle", "Waiting for permission to use bash"),
        ("idle", "Three files."),
        ("idle", "Turn stopped: Rate limited"),
    ]
