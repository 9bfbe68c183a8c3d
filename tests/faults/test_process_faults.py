"""What the process is given rather than what it reads: standard streams that take no bytes,
a descriptor limit, URLs no HTTP client can send. Every entry point, as a real subprocess.

tests/faults/test_containment.py sends faults down the reads a command makes; these come from
the process's surroundings, where an escape is not an exception the boundary catches but what
happens around it: the interpreter's last flush at exit failing (exit 120, "Exception ignored"),
a finaliser's exception printed after the command's own line, a log line's write ending the
daemon, a configuration value accepted and then met as an HTTP client's own error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest

from agent.hooks import AGENTS
from tests.e2e.conftest import STARTED, Peers, peers, terminate
from tests.fakes import wait_until
from tests.faults.test_containment import (
    CLAUDE_EVENT,
    ENTRY_POINTS,
    HUNG,
    EntryPoint,
    Outcome,
    World,
    check,
    run_command,
    world,
)

_ = (peers, world)

BY_NAME = {entry.name: entry for entry in ENTRY_POINTS}
# The commands that write on stdout, besides the ones every fault test runs.
PRINTING = [
    EntryPoint(
        "hook gemini",
        ("hook", "gemini"),
        frozenset({0}),
        stdin=CLAUDE_EVENT.encode(),
        hook=True,
        stdout=AGENTS["gemini"].stdout.encode(),
    ),
    EntryPoint("hook install", ("hook", "install", "claude-code"), frozenset({0, 2, 6})),
    EntryPoint("--help", ("--help",), frozenset({0})),
]
SHORT = [entry for entry in ENTRY_POINTS if not entry.daemon] + PRINTING


def _run(entry: EntryPoint, world: World, *, stdout: int, stderr: int, first: str = "") -> int:
    """`entry` in `world` with the given descriptors as stdout and stderr; its exit code.
    `first`: what /bin/sh does (`ulimit -n 5`) before it execs the command."""
    command = [sys.executable, "-m", "agent", *entry.argv]
    if first:
        command = ["/bin/sh", "-c", f'{first}; exec "$@"', "sh", *command]
    done = subprocess.run(
        command,
        input=entry.stdin,
        stdout=stdout,
        stderr=stderr,
        env=world.env,
        cwd=world.tmp,
        timeout=HUNG,
        check=False,
    )
    return done.returncode


@contextmanager
def _unwritable(kind: str) -> Iterator[int]:
    """A descriptor no byte can be written to: /dev/full (ENOSPC) or a pipe nobody reads
    (EPIPE: Python ignores SIGPIPE, so a write raises BrokenPipeError)."""
    if kind == "a full disk":
        with open("/dev/full", "wb") as full:
            yield full.fileno()
        return
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        yield write_end
    finally:
        os.close(write_end)


KINDS = ("a full disk", "a pipe nobody reads")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("entry", "stream"),
    # stdout: the commands that write on it; stderr: every one, as every one logs.
    [(entry, "stdout") for entry in PRINTING] + [(entry, "stderr") for entry in SHORT],
    ids=lambda x: x if isinstance(x, str) else x.name,
)
def test_a_stream_that_takes_no_bytes_changes_no_exit_code(
    entry: EntryPoint, stream: str, kind: str, world: World, tmp_path: Path
) -> None:
    """The command does what it does and exits as it would have: the output it could not write
    is lost, not turned into exit 120 and an "Exception ignored" traceback (a hook's 0 too)."""
    # Compared with a run on healthy streams: a loaded machine must not make either one late.
    world.set("CODER_TASK_AGENT_HOOK_BUDGET", "20")
    world.set("CODER_TASK_AGENT_REQUEST_TIMEOUT", "10")
    expected = _run(entry, world, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert expected in entry.codes
    other = tmp_path / "other"
    with _unwritable(kind) as bad, other.open("wb") as kept:
        streams = {"stdout": kept.fileno(), "stderr": kept.fileno(), stream: bad}
        code = _run(entry, world, stdout=streams["stdout"], stderr=streams["stderr"])
    said = other.read_bytes()
    assert code == expected, said[-2000:]
    assert b"Traceback" not in said, said[-2000:]
    assert b"Exception ignored" not in said, said[-2000:]


@pytest.mark.parametrize("entry", SHORT, ids=lambda e: e.name)
def test_descriptors_exhausted_are_one_line_each_not_a_traceback(
    entry: EntryPoint, world: World, tmp_path: Path
) -> None:
    """`ulimit -n 5`: the event loop cannot make its self-pipe. The command's own line, and the
    half-made loop's finaliser (Python's "Exception ignored") as one line too."""
    out, err = tmp_path / "out", tmp_path / "err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        code = _run(
            entry, world, stdout=stdout.fileno(), stderr=stderr.fileno(), first="ulimit -n 5"
        )
    check(entry, Outcome(code, out.read_bytes(), err.read_bytes()))
    assert b"Exception ignored" not in err.read_bytes()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.anyio
async def test_the_daemon_outlives_a_stderr_that_takes_no_bytes(peers: Peers, kind: str) -> None:
    """Every log line fails to be written; the daemon reports and saves the snapshot at SIGTERM
    all the same (the first failed line ended its supervision: exit 5)."""
    with _unwritable(kind) as bad:
        process = await anyio.open_process(
            [sys.executable, "-m", "agent", "run"],
            env=peers.env(CODER_TASK_AGENT_LOG_LEVEL="debug"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=bad,
        )
    STARTED.append(process)
    await wait_until(lambda: peers.states() == ["idle"], within=20)
    terminate(process)
    with anyio.fail_after(HUNG):
        code = await process.wait()
    assert code == 0
    assert peers.snapshot() is not None


# Values each parser accepted and a layer below could not use, with the commands reading them.
URL_READERS = ("run", "report", "snapshot", "stop-hook --strict", "hook claude-code")
AGENTAPI_READERS = ("run", "snapshot", "stop-hook --strict")
UNUSABLE: list[tuple[str, str, bytes, tuple[str, ...]]] = [
    ("CODER_AGENT_URL", "a host of bytes not UTF-8", b"http://\xff", URL_READERS),
    ("CODER_AGENT_URL", "a host the IDNA codec refuses", b"http://a..b", URL_READERS),
    ("CODER_AGENT_URL", "a path of bytes not UTF-8", b"http://127.0.0.1:1/p\xff", URL_READERS),
    ("CODER_AGENT_URL", "a path not ASCII", "http://127.0.0.1:1/p\u00e4".encode(), URL_READERS),
    ("CODER_MCP_AI_AGENTAPI_URL", "a host of bytes not UTF-8", b"http://\xff", AGENTAPI_READERS),
    (
        "CODER_MCP_AI_AGENTAPI_URL",
        "a host the IDNA codec refuses",
        b"http://a..b",
        AGENTAPI_READERS,
    ),
    (
        "CODER_MCP_AI_AGENTAPI_URL",
        "a path not ASCII",
        b"http://localhost/p\xc3\xa4",
        AGENTAPI_READERS,
    ),
    # Finite, so "positive" held; past what a socket's timeout holds (OverflowError: exit 5).
    ("CODER_TASK_AGENT_REQUEST_TIMEOUT", "1e20 seconds", b"1e20", ("run", "snapshot", "report")),
    (
        "CODER_TASK_AGENT_SHUTDOWN_BUDGET",
        "1e20 seconds",
        b"1e20",
        ("snapshot", "stop-hook --strict"),
    ),
]


@pytest.mark.parametrize(
    ("variable", "value", "entry"),
    [
        pytest.param(variable, value, BY_NAME[name], id=f"{variable}={label}-{name}")
        for variable, label, value, names in UNUSABLE
        for name in names
    ],
)
def test_a_value_no_layer_below_can_use_is_a_configuration_error_naming_it(
    variable: str, value: bytes, entry: EntryPoint, world: World
) -> None:
    """Refused where settings are read, naming the variable (exit 2; a hook logs it and exits
    0), not met later as an error of an HTTP client or a socket: `unexpected_error` (exit 5), a
    traceback in a name lookup's thread, or a proxy variable blamed."""
    world.set(variable, value)
    outcome = run_command(entry, world)
    check(entry, outcome)
    text = outcome.stderr.decode("utf-8", "replace")
    assert outcome.code == (0 if entry.hook else 2), text[-2000:]
    assert variable in text, text[-2000:]
    events = [json.loads(line).get("event") for line in text.splitlines() if line[:1] == "{"]
    assert "unexpected_error" not in events, text[-2000:]


def test_hook_install_reports_a_path_its_stdout_cannot_encode(world: World, tmp_path: Path) -> None:
    """An ASCII stdout and a home directory that is not ASCII: the files are written, and the
    report says so escaped (a UnicodeEncodeError after the writes was exit 2, "refused")."""
    home = tmp_path / "h\u00f6me"
    home.mkdir()
    world.set("HOME", str(home))
    world.set("PYTHONIOENCODING", "ascii")
    install = PRINTING[1]
    outcome = run_command(install, world)
    check(install, outcome)
    assert outcome.code == 0, outcome.stderr
    assert (home / ".claude" / "settings.json").is_file()
    assert b"created: " in outcome.stdout
    assert b"h\\xf6me" in outcome.stdout


@pytest.mark.parametrize(
    ("raised", "code", "event"),
    [
        ("KeyboardInterrupt", 6, "command_interrupted"),
        ("ImportError('broken')", 2, "unexpected_error"),
    ],
)
def test_what_the_installers_imports_raise_is_inside_the_boundary(
    raised: str, code: int, event: str, world: World, tmp_path: Path
) -> None:
    """`hook install` loads more than any other short command, and loaded it before the
    boundary: a Ctrl-C then, or a broken dependency, was a traceback. A module the installer
    imports (`shlex`, shadowed on PYTHONPATH) raising stands for either, at a known moment."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "shlex.py").write_text(f"raise {raised}\n")
    world.set("PYTHONPATH", f"{shadow}{os.pathsep}{os.fsdecode(world.env[b'PYTHONPATH'])}")
    install = PRINTING[1]
    outcome = run_command(install, world)
    check(install, outcome)
    assert outcome.code == code, outcome.stderr
    lines = [json.loads(line) for line in outcome.stderr.splitlines()]
    assert [line["event"] for line in lines] == [event]
