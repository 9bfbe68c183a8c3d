"""A stderr nobody reads: the daemon's log lines wait in a bounded backlog, the daemon does not.

A template's start-up script that backgrounds the daemon without redirecting it leaves its
stderr a pipe the Coder agent stops reading once the script exits. Past the pipe's 64 KB a
write blocks; written from the event loop, it froze the daemon: no status reports, and SIGTERM
honoured only once the pipe drained (SIGKILL first: the snapshot lost). Here the daemon's stderr
is a pipe the test reads only when it says so, and a noisy AgentAPI (thousands of events the
daemon logs at debug) fills it, and the backlog behind it, many times over.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import subprocess
import sys
from collections.abc import AsyncIterator

import anyio
import pytest

from standins.http import Request, Response, json_response
from tests.e2e.conftest import STARTED, TOKEN, Peers, peers, terminate
from tests.fakes import TIME, wait_until
from tests.faults.servers import serve_on_loopback
from tests.faults.test_containment import HUNG

pytestmark = pytest.mark.anyio
_ = peers
# Events in one burst, each logged as a line of about 750 bytes: 3 MB of log, past the pipe's
# 64 KB and the daemon's backlog of a million characters (agent.log.BACKLOG_CHARS).
BURST = 4000
PAD = "n" * 600


def frame(name: str, data: object) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def burst(phase: int) -> bytes:
    """BURST events the daemon does not know, each one `agentapi_event_unknown` at debug."""
    return b"".join(frame(f"noise-{phase}-{n:05d}-{PAD}", {}) for n in range(BURST))


def status(state: str) -> bytes:
    return frame("status_change", {"status": state, "agent_type": "claude"})


class NoisyAgentAPI:
    """AgentAPI whose event stream sends what the test puts in `frames`, after a conversation."""

    CONVERSATION = (
        {"id": 0, "role": "user", "message": "Fix the parser", "time": TIME},
        {"id": 1, "role": "agent", "message": "Done.", "time": TIME},
    )

    def __init__(self) -> None:
        self.frames, self._sent = anyio.create_memory_object_stream[bytes](math.inf)

    def close(self) -> None:
        self.frames.close()
        self._sent.close()

    async def handle(self, request: Request) -> Response:
        if request.path == "/status":
            return json_response({"status": "stable", "agent_type": "claude"})
        if request.path == "/messages":
            return json_response({"messages": list(self.CONVERSATION)})

        async def stream() -> AsyncIterator[bytes]:
            for message in self.CONVERSATION:
                yield frame("message_update", message)
            yield status("stable")
            async for chunk in self._sent:
                yield chunk

        return Response(headers=[("content-type", "text/event-stream")], stream=stream())


class Unread:
    """The daemon's stderr: a pipe whose reading end only `read_now` reads (without waiting)."""

    def __init__(self) -> None:
        self.read_end, self.write_end = os.pipe()
        flags = fcntl.fcntl(self.read_end, fcntl.F_GETFL)
        # Our own end of our own pipe: the daemon's end stays blocking, as a real stderr is.
        fcntl.fcntl(self.read_end, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        self.got = bytearray()

    def read_now(self) -> bytes:
        """Everything the pipe holds now; the daemon's writes can go on."""
        while True:
            try:
                chunk = os.read(self.read_end, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.got += chunk
        return bytes(self.got)

    def lines(self) -> list[dict[str, object]]:
        text = self.read_now().decode()
        return [json.loads(line) for line in text.splitlines()]


def noise(lines: list[dict[str, object]], phase: int) -> list[int]:
    prefix = f"noise-{phase}-"
    return [
        int(str(line["name"])[len(prefix) :].split("-")[0])
        for line in lines
        if line["event"] == "agentapi_event_unknown" and str(line["name"]).startswith(prefix)
    ]


async def test_a_stderr_nobody_reads_never_stops_the_status_nor_the_snapshot(
    peers: Peers,
) -> None:
    agentapi = NoisyAgentAPI()
    stderr = Unread()
    with contextlib.closing(agentapi):
        code = await stop_with_stderr_full(peers, agentapi, stderr)
    assert code == 0, "snapshot uploaded"
    snapshot = peers.snapshot()
    assert snapshot is not None
    assert [m["content"] for m in snapshot["messages"]] == ["Fix the parser", "Done."]
    said = stderr.read_now()  # what the pipe held at the exit: the oldest lines of burst 2
    os.close(stderr.read_end)
    assert TOKEN.encode() not in said


async def stop_with_stderr_full(peers: Peers, agentapi: NoisyAgentAPI, stderr: Unread) -> int:
    """The daemon against `agentapi`, its stderr filled, read once, filled again, then stopped:
    its exit code."""
    async with anyio.create_task_group() as group:
        port = await group.start(serve_on_loopback, agentapi.handle)
        env = peers.env(
            CODER_MCP_AI_AGENTAPI_URL=f"http://127.0.0.1:{port}",
            CODER_TASK_AGENT_MODE="events",
            CODER_TASK_AGENT_LOG_LEVEL="debug",
        )
        process = await anyio.open_process(
            [sys.executable, "-m", "agent", "run"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr.write_end,
        )
        os.close(stderr.write_end)
        STARTED.append(process)
        await wait_until(lambda: peers.states() == ["idle"], within=HUNG)

        # Stderr full, the backlog overflowing: the status still reaches Coder. The stream is
        # ordered: `working` sent means every event of the burst was taken and logged.
        await agentapi.frames.send(burst(1) + status("running"))
        await wait_until(lambda: peers.states()[-1:] == ["working"], within=HUNG)

        # Read again: the lines that waited come out, the count of those dropped before them.
        await wait_until(lambda: BURST - 1 in noise(stderr.lines(), 1), within=HUNG)
        lines = stderr.lines()
        dropped = [i for i, line in enumerate(lines) if line["event"] == "log_lines_dropped"]
        assert dropped, "a line says lines were dropped"
        first = dropped[0]
        before, after = noise(lines[:first], 1), noise(lines[first:], 1)
        assert before == list(range(len(before))), "the lines before the drop, in order"
        assert after == sorted(after)
        assert after[-1] == BURST - 1, "the newest kept"
        missing = BURST - len(before) - len(after)
        assert missing > 0
        counted = sum(int(str(lines[i]["dropped"])) for i in dropped)
        assert counted >= missing  # other lines (the status's) may have been dropped too

        # Unread again and filled again; then the stop, with the pipe still full.
        await agentapi.frames.send(burst(2) + status("stable"))
        await wait_until(lambda: peers.states()[-1:] == ["idle"], within=HUNG)
        terminate(process)
        with anyio.fail_after(HUNG):
            code = await process.wait()
        group.cancel_scope.cancel()
    return code
