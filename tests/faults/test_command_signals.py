"""A stop signal to a short command: SIGTERM, SIGHUP and Ctrl-C end it alike, with its line.

A stop script's `timeout` SIGTERMs `snapshot` mid-upload, an agent's hook timeout SIGTERMs its
hook, a closing terminal SIGHUPs whatever runs in it: their default actions ended the process
with no line at all, so nothing said why no snapshot was stored. Real `python -m agent`
subprocesses, real signals; each lands at a known moment: mid-request (a server that holds the
request, so the command is waiting on it), or as early as the command can take it (the process
frozen with SIGSTOP as soon as its handler is installed, signalled, then let go).
`stop-hook` takes a signal as "hurry": AgentAPI is still stopped (tests below).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.abc
import pytest

from standins.http import Request, Response
from tests.e2e.conftest import CLIENT, STARTED, Peers, finish, peers, start_agent
from tests.e2e.test_stop_hook import _stop_fakes, home, hook_env, start_fake_agentapi
from tests.fakes import wait_until
from tests.faults.servers import Scripted, serve_on_loopback
from tests.faults.test_coder_faults import named
from tests.faults.test_lifecycle_faults import catches

pytestmark = pytest.mark.anyio
_ = (peers, home, _stop_fakes)


SIGNALS = [signal.SIGTERM, signal.SIGHUP, signal.SIGINT]
GEMINI_EVENT = json.dumps({"hook_event_name": "BeforeAgent", "prompt": "Fix the tests"})

# Where the request is held (`arrived` set once it is): the environment that sends it there.
Hold = Callable[[Peers, anyio.Event], AbstractAsyncContextManager[dict[str, str]]]


@asynccontextmanager
async def coder_holds(peers: Peers, arrived: anyio.Event) -> AsyncIterator[dict[str, str]]:
    """Coder, for a command with no daemon to hand its request to: it takes the first request
    and never answers it."""
    async with held(arrived) as url:
        # A request timeout longer than any test: only the signal ends the wait.
        yield {"CODER_AGENT_URL": url, "CODER_TASK_AGENT_REQUEST_TIMEOUT": "600"}


@asynccontextmanager
async def held(arrived: anyio.Event) -> AsyncIterator[str]:
    """A loopback HTTP server's URL that takes each request and never answers it."""

    async def hold(request: Request) -> Response:
        arrived.set()
        await anyio.sleep_forever()
        raise AssertionError("never answered")

    async with anyio.create_task_group() as group:
        port = await group.start(serve_on_loopback, Scripted(hold).handle)
        yield f"http://127.0.0.1:{port}"
        group.cancel_scope.cancel()


@asynccontextmanager
async def daemon_holds(peers: Peers, arrived: anyio.Event) -> AsyncIterator[dict[str, str]]:
    """A daemon's report socket that reads the command's request line and never answers."""

    async def hold(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            received = b""
            while not received.endswith(b"\n"):
                received += await stream.receive()
            arrived.set()
            await anyio.sleep_forever()

    listener = await anyio.create_unix_listener(peers.workdir / "run" / "report.sock")
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, hold)
        yield {}
        group.cancel_scope.cancel()


@dataclass(frozen=True)
class Short:
    """A short command, where its request is held, and what it exits with on a signal."""

    name: str
    argv: tuple[str, ...]
    hold: Hold
    code: int
    stdin: bytes = b""
    # The stop path's own ending, logged before the command's line (the one-shot snapshot).
    ending: str | None = None


# Handed to a daemon, `report` and a hook wait REQUEST_TIMEOUT (2 s) for its answer: a margin,
# not a hold. `snapshot` waits for the daemon's whole stop budget.
SHORT = [
    Short("report", ("report", "complete", "Shipped"), coder_holds, 6),
    Short("hook", ("hook", "gemini"), coder_holds, 0, stdin=GEMINI_EVENT.encode()),
    Short("snapshot", ("snapshot",), coder_holds, 6, ending="snapshot_interrupted"),
    Short("snapshot by a daemon", ("snapshot",), daemon_holds, 6),
]


def takes_every_stop_signal(pid: int) -> bool:
    """True once the process handles SIGHUP, the last stop signal agent.boundary takes (SIGINT
    is Python's own from its start: waiting for it would signal the interpreter's start-up)."""
    return catches(pid, signal.SIGHUP)


async def signal_at_once(process: anyio.abc.Process, signum: signal.Signals) -> None:
    """`signum` to `process` as soon as its handlers are installed: frozen there, signalled,
    let go; the signal lands while it still loads its modules."""
    await wait_until(lambda: takes_every_stop_signal(process.pid), within=20)
    process.send_signal(signal.SIGSTOP)
    process.send_signal(signum)
    process.send_signal(signal.SIGCONT)


async def run_short(
    short: Short, env: dict[str, str], until: Callable[[anyio.abc.Process], Awaitable[None]]
) -> tuple[int, list[dict[str, object]], bytes]:
    """`short` with `env`, signalled by `until`; its exit code, log lines and stdout (a hook's
    event on its stdin: `start_agent` gives none)."""
    process = await anyio.open_process(
        [sys.executable, "-m", "agent", *short.argv],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    STARTED.append(process)
    if short.argv[0] == "snapshot":
        CLIENT[process.pid] = "stdlib"  # `finish` checks the one-shot's shell
    try:
        assert process.stdin is not None
        await process.stdin.send(short.stdin)
        await process.stdin.aclose()
        await until(process)
        code, stderr = await finish(process)
        assert process.stdout is not None
        stdout = b"".join([chunk async for chunk in process.stdout])
    finally:
        if process.returncode is None:
            process.kill()
        await process.aclose()
    lines = [json.loads(line) for line in stderr.splitlines()]
    return code, lines, stdout


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: s.name)
@pytest.mark.parametrize("short", SHORT, ids=lambda s: s.name)
async def test_a_stop_signal_mid_request_ends_the_command_with_its_line(
    peers: Peers, short: Short, signum: signal.Signals
) -> None:
    arrived = anyio.Event()

    async def when_held(process: anyio.abc.Process) -> None:
        with anyio.fail_after(30):
            await arrived.wait()
        process.send_signal(signum)

    async with short.hold(peers, arrived) as extra:
        code, lines, stdout = await run_short(short, peers.env(**extra), when_held)
    assert code == short.code, lines
    events = [line["event"] for line in lines]
    ending = [short.ending] if short.ending else []
    assert events[-1 - len(ending) :] == [*ending, "command_interrupted"], events
    assert lines[-1]["signal"] == signum.name
    assert lines[-1]["command"] == short.argv[0]
    assert "unexpected_error" not in events
    if short.ending:
        (interrupted,) = [line for line in lines if line["event"] == short.ending]
        assert interrupted["signal"] == signum.name
        assert interrupted["outcome"] == "interrupted"
        assert peers.snapshot() is None
    assert stdout == b"", "a hook interrupted prints nothing for its agent"


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: s.name)
@pytest.mark.parametrize("short", SHORT, ids=lambda s: s.name)
async def test_a_stop_signal_as_early_as_it_can_be_taken_is_one_line_too(
    peers: Peers, short: Short, signum: signal.Signals
) -> None:
    """As soon as the boundary has taken the signals, while the command still loads its
    modules (its request held all the same: it cannot end before the signal)."""

    async def at_once(process: anyio.abc.Process) -> None:
        await signal_at_once(process, signum)

    async with short.hold(peers, anyio.Event()) as extra:
        code, lines, stdout = await run_short(short, peers.env(**extra), at_once)
    assert code == short.code, lines
    events = [line["event"] for line in lines]
    assert events[-1] == "command_interrupted", events
    assert lines[-1]["signal"] == signum.name
    assert "unexpected_error" not in events
    assert stdout == b""


# -- stop-hook: a signal is a hurry; AgentAPI is stopped all the same -------------------------


@pytest.mark.parametrize("strict", [False, True], ids=["", "--strict"])
@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: s.name)
@pytest.mark.parametrize("when", ["as it loads", "during step 1"])
async def test_a_stop_signal_before_the_loop_still_stops_agentapi(
    peers: Peers, home: Path, when: str, signum: signal.Signals, strict: bool
) -> None:
    """The `/messages` read (step 1) and the imports run before the event loop that takes
    signals: a SIGTERM there ended the hook with no line, and AgentAPI was never stopped. As it
    loads, agent.cli runs the command line again, hurried; during step 1 the read is cut."""
    pid_file = peers.workdir / "agentapi.pid"
    fake = await start_fake_agentapi(peers.workdir / "agentapi", pid_file=pid_file)
    arrived = anyio.Event()
    env = hook_env(
        peers,
        home,
        fake.port,
        ARG_PID_FILE_PATH=str(pid_file),
        ARG_TASK_LOG_SNAPSHOT="true",
        ARG_ENABLE_STATE_PERSISTENCE="true",
    )
    async with held(arrived) as url:  # step 1's `GET /messages` never answered
        env["CODER_MCP_AI_AGENTAPI_URL"] = url  # ours wins over ARG_AGENTAPI_PORT
        process = await start_agent(["stop-hook", *(["--strict"] if strict else [])], env)
        if when == "as it loads":
            await signal_at_once(process, signum)
        else:
            with anyio.fail_after(30):
                await arrived.wait()
            process.send_signal(signum)
        code, stderr = await finish(process)
    assert code == (6 if strict else 0), stderr
    with anyio.move_on_after(10):
        await fake.process.wait()
    assert fake.process.returncode == 0, (stderr, fake.record())
    assert fake.record() == ["SIGTERM"], "no state save asked: stopped at once"
    events = [json.loads(line) for line in stderr.splitlines()]
    names = [line["event"] for line in events]
    (hurried,) = named(stderr, "stop_hook_hurried")
    assert hurried["signal"] == signum.name
    assert names.index("stop_hook_hurried") < names.index("agentapi_stopped")
    assert names[-1] == "stop_hook_finished"
    assert events[-1]["outcome"] == "interrupted"
    assert "command_interrupted" not in names
    assert "unexpected_error" not in names
    assert peers.snapshot_requests() == []


# -- a stop signal whose handler runs where Python drops what it raises -------------------------

# A command whose body frees an object with a weakref callback that gets a real SIGTERM (as
# importlib's callback runs as each module lock is freed, many times per import): the handler
# runs inside the callback, whose exception Python drops; then the body goes on to its next
# step (`snapshot`'s: the upload, held by Coder), which returns 0.
SIGNALLED_IN_A_CALLBACK = """
import os, signal, sys, weakref
from agent.boundary import contained

class Freed:
    pass

def next_step():
    return 0

def body():
    kept = Freed()
    ref = weakref.ref(kept, lambda _: os.kill(os.getpid(), signal.SIGTERM))
    del kept
    return {ending}

sys.exit(contained("snapshot", body, unexpected=lambda: 1))
"""


@pytest.mark.parametrize(
    ("ending", "code", "events"),
    [("next_step()", 6, ["command_interrupted"]), ("0", 0, [])],
    ids=["then a step", "then the end"],
)
async def test_a_stop_signal_taken_inside_a_callback_still_ends_the_command(
    peers: Peers, ending: str, code: int, events: list[str]
) -> None:
    """Its exception, dropped there, is raised at the command's next call: one line, exit 6
    (the signal was lost: `snapshot` went on to wait its whole budget on Coder, deaf to more).
    Once the body has returned it is too late, as for any signal: its code, no traceback."""
    script = SIGNALLED_IN_A_CALLBACK.format(ending=ending)
    done = await anyio.run_process([sys.executable, "-c", script], env=peers.env(), check=False)
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert done.returncode == code, done.stderr
    assert [line["event"] for line in lines] == events
    assert all(line["signal"] == "SIGTERM" for line in lines)
