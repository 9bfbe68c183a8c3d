"""`coder-task-agent-dev demo` (`make demo`): the whole loop on one machine, on loopback.

It starts the AgentAPI stand-in, the Coder stand-in and the daemon, sends a prompt, shows each
app status the server receives as it arrives, has the agent report `complete`, stops the
"workspace" (SIGTERM to the daemon, then AgentAPI), marks the task paused and prints the task's
logs exactly as the read endpoint returns them from the snapshot. Every step is checked: a step
that did not happen fails the demo with a non-zero exit. No process is left behind, on success,
failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TextIO

import httpx

from standins.environment import agent_environment

TASK_ID = "8b2e7c1a-5f3d-4e6b-9a0c-1d2e3f4a5b6c"
USER = "demo"
# README's example slug: the Coder stand-in is told to accept exactly this one, like a template's
# `coder_app`.
SLUG = "claude-code"
PROMPT = "Fix the failing date parser test and explain the fix"
STEP_TIMEOUT = 20.0
# The last line: how to keep a stand-in up from this checkout (the demo's stop with it).
TIP = (
    "(the stand-ins stop with the demo; to keep a task page up, run from this checkout\n"
    " `CODER_AGENT_TOKEN=any-token .venv/bin/coder-task-agent-dev coder` (after `make sync`);\n"
    " `.venv/bin/coder-task-agent-dev coder --help` says how to point the daemon at it)"
)


class DemoFailed(Exception):
    """A step of the demo did not happen."""


class Console:
    """Progress lines: marks and colour on a terminal, plain text when piped."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.started = time.monotonic()

    def _paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.tty else text

    def step(self, text: str) -> None:
        self._line(self._paint("==>", "1;34"), text)

    def ok(self, text: str) -> None:
        self._line(self._paint("ok ", "32") if self.tty else "ok ", text)

    def status(self, state: str, message: str) -> None:
        word = self._paint(f"{state:<8}", "1;33" if state == "working" else "1;32")
        self._line(self._paint("<- ", "36"), f"Coder received status {word} {message!r}")

    def fail(self, text: str) -> None:
        self._line(self._paint("!! ", "1;31"), text)

    def raw(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _line(self, mark: str, text: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"{elapsed:5.1f}s {mark} {text}", file=self.out, flush=True)


class Processes:
    """Child processes, each in its own session so that cleanup reaches all of them."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self, name: str, module: str, args: list[str], env: dict[str, str]
    ) -> subprocess.Popen[bytes]:
        """`python -m MODULE ARGS` with this interpreter: `agent` (the product) or `standins`."""
        log = (self.workdir / f"{name}.log").open("wb")
        child = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", module, *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        log.close()
        self.children.append((name, child))
        return child

    def stop_all(self) -> None:
        for _name, child in self.children:
            if child.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for _name, child in self.children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.wait()

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.workdir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_for(what: str, check: Callable[[], Any], timeout: float = STEP_TIMEOUT) -> Any:
    """Poll `check` until it returns something truthy; DemoFailed after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(httpx.HTTPError, OSError, ValueError):
            result = check()
            if result:
                return result
        time.sleep(0.05)
    raise DemoFailed(f"timed out after {timeout:.0f}s waiting for {what}")


def read_port(path: Path) -> int:
    text = path.read_text().strip() if path.exists() else ""
    return int(text) if text else 0


class Demo:
    """The demo's steps, in order."""

    def __init__(self, console: Console, workdir: Path, speed: float) -> None:
        self.console = console
        self.workdir = workdir
        self.speed = speed
        self.procs = Processes(workdir)
        self.token = secrets.token_urlsafe(24)
        self.seen_statuses = 0
        self.statuses: list[dict[str, Any]] = []

    def env(self, **extra: str) -> dict[str, str]:
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("CODER_", "NOTIFY_SOCKET", "WATCHDOG_"))
        }
        return {**base, "PYTHONUNBUFFERED": "1", **extra}

    def run(self) -> None:
        c = self.console
        c.step("starting the AgentAPI stand-in (a scripted agent)")
        agentapi_port_file = self.workdir / "agentapi.port"
        self.procs.start(
            "agentapi",
            "standins",
            [
                "agentapi",
                "--port",
                "0",
                "--port-file",
                str(agentapi_port_file),
                "--speed",
                str(self.speed),
            ],
            self.env(),
        )
        agentapi_port = self.wait_port("agentapi", agentapi_port_file)
        agentapi = f"http://127.0.0.1:{agentapi_port}"
        c.ok(f"AgentAPI stand-in on {agentapi}")

        c.step("starting the Coder stand-in")
        coder_port_file = self.workdir / "coder.port"
        self.procs.start(
            "coder",
            "standins",
            [
                "coder",
                "--port",
                "0",
                "--port-file",
                str(coder_port_file),
                "--db",
                str(self.workdir / "coder.db"),
                "--task-id",
                TASK_ID,
                "--user",
                USER,
                "--app-slug",
                SLUG,
                "--agentapi-url",
                agentapi,
            ],
            self.env(CODER_AGENT_TOKEN=self.token),
        )
        coder_port = self.wait_port("coder", coder_port_file)
        coder = f"http://127.0.0.1:{coder_port}"
        c.ok(f"Coder stand-in on {coder}")

        c.step("starting the daemon: python -m agent run")
        daemon_env = agent_environment(
            coder_url=coder,
            agentapi_url=agentapi,
            token=self.token,
            task_id=TASK_ID,
            app_slug=SLUG,
            socket=self.workdir / "run" / "report.sock",
        )
        daemon = self.procs.start("daemon", "agent", ["run"], daemon_env)
        with httpx.Client(timeout=5.0) as http:
            self.converse(http, agentapi, coder, daemon_env)
            self.stop_workspace(daemon)
            self.read_back(http, coder)

    def wait_port(self, name: str, path: Path) -> int:
        """The port a child wrote, failing at once if the child died instead."""
        child = dict(self.procs.children)[name]

        def ready() -> int:
            if child.poll() is not None:
                raise DemoFailed(f"the {name} process exited with {child.returncode}")
            return read_port(path)

        port: int = wait_for(f"the {name} process to listen", ready)
        return port

    def converse(
        self, http: httpx.Client, agentapi: str, coder: str, daemon_env: dict[str, str]
    ) -> None:
        """A prompt, the agent's work, and its explicit `complete` report."""
        c = self.console
        self.expect_status(http, coder, "idle")

        c.step(f"sending a prompt to the agent: {PROMPT!r}")
        answer = http.post(f"{agentapi}/message", json={"content": PROMPT, "type": "user"})
        if answer.status_code != 200:
            raise DemoFailed(f"AgentAPI refused the prompt: {answer.status_code} {answer.text}")
        self.expect_status(http, coder, "working")
        self.expect_status(http, coder, "idle", timeout=60)

        c.step('the agent reports: python -m agent report complete "..."')
        report = subprocess.run(  # noqa: S603 - our own interpreter and module
            [
                sys.executable,
                "-m",
                "agent",
                "report",
                "complete",
                "Fixed the date parser; all tests pass",
                "--uri",
                f"{coder}/tasks/{USER}/{TASK_ID}",
            ],
            env=daemon_env,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
            check=False,
        )
        if report.returncode != 0:
            raise DemoFailed(f"the report command failed: {report.stderr.strip()}")
        self.expect_status(http, coder, "complete")

    def stop_workspace(self, daemon: subprocess.Popen[bytes]) -> None:
        """SIGTERM to the daemon (it uploads the snapshot), then to AgentAPI."""
        c = self.console
        c.step("stopping the workspace: SIGTERM to the daemon, then to AgentAPI")
        daemon.send_signal(signal.SIGTERM)
        try:
            code = daemon.wait(timeout=STEP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise DemoFailed("the daemon did not exit after SIGTERM") from None
        if code != 0:
            raise DemoFailed(f"the daemon exited with {code}:\n{self.procs.log_tail('daemon')}")
        c.ok("daemon exited 0 after uploading the snapshot")
        for name, child in self.procs.children:
            if name == "agentapi":
                child.send_signal(signal.SIGTERM)
                child.wait(timeout=STEP_TIMEOUT)
        c.ok("AgentAPI stopped")

    def read_back(self, http: httpx.Client, coder: str) -> None:
        """Pause the task and read its logs back: they must come from the snapshot."""
        c = self.console
        c.step("marking the task paused, as Coder does once the workspace is stopped")
        marked = http.post(f"{coder}/dev/tasks/{TASK_ID}/status", json={"status": "paused"})
        if marked.status_code >= 300:
            raise DemoFailed(f"could not pause the task: {marked.status_code} {marked.text}")

        c.step(f"GET /api/v2/tasks/{USER}/{TASK_ID}/logs (served from the snapshot)")
        logs = http.get(f"{coder}/api/v2/tasks/{USER}/{TASK_ID}/logs")
        if logs.status_code != 200:
            raise DemoFailed(f"reading the logs failed: {logs.status_code} {logs.text}")
        body = logs.json()
        c.raw(json.dumps(body, indent=2, ensure_ascii=False))
        entries = body.get("logs") or []
        if body.get("snapshot") is not True or not entries:
            raise DemoFailed("the logs did not come from a stored snapshot")
        if not any(PROMPT in str(e.get("content", "")) for e in entries):
            raise DemoFailed("the snapshot does not hold the prompt")
        c.ok(f"{len(entries)} messages saved; the task page was {coder}/tasks/{USER}/{TASK_ID}")
        c.raw(TIP)

    def expect_status(
        self, http: httpx.Client, coder: str, state: str, timeout: float = STEP_TIMEOUT
    ) -> None:
        def arrived() -> bool:
            answer = http.get(f"{coder}/dev/app-statuses")
            answer.raise_for_status()
            payload = answer.json()
            rows = payload.get("statuses", payload) if isinstance(payload, dict) else payload
            for row in rows[self.seen_statuses :]:
                self.seen_statuses += 1
                shown = "failed" if row.get("state") == "failure" else row.get("state")
                self.console.status(str(shown), str(row.get("message", "")))
                self.statuses.append(row)
                if shown == state:
                    return True
            return False

        wait_for(f"the {state!r} status at Coder", arrived, timeout)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; 0 when every step happened."""
    parser = argparse.ArgumentParser(prog="coder-task-agent demo", description=__doc__)
    parser.add_argument(
        "--speed",
        type=float,
        default=4.0,
        help="how much faster than real time the scripted agent works",
    )
    args = parser.parse_args(argv)
    console = Console(sys.stdout)
    with tempfile.TemporaryDirectory(prefix="coder-task-agent-demo-") as tmp:
        workdir = Path(tmp)
        (workdir / "run").mkdir(mode=0o700)
        demo = Demo(console, workdir, args.speed)
        try:
            with _interrupts_raise():
                demo.run()
        except DemoFailed as exc:
            console.fail(f"demo failed: {exc}")
            for name in ("daemon", "agentapi", "coder"):
                tail = demo.procs.log_tail(name)
                if tail:
                    console.raw(f"--- {name} log (last lines) ---\n{tail}")
            return 1
        except KeyboardInterrupt:
            console.fail("interrupted")
            return 130
        finally:
            demo.procs.stop_all()
    console.ok("demo finished: every step happened")
    return 0


@contextmanager
def _interrupts_raise() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt too, so cleanup runs either way."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
