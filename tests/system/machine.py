"""A throwaway systemd machine: systemd-nspawn booting a copy of the cached rootfs.

scripts/system-setup.sh builds the rootfs once; each `Machine.boot` runs it ephemerally (`-x`:
a private copy, deleted at poweroff), so tests never change the cache. The machine shares the
host's network namespace, so the daemon inside reaches the stand-ins on the host's 127.0.0.1.
It is driven from the host with `nsenter` into the container's PID 1 namespaces, with a clean
environment (the host's PIP_* or CODER_* variables must not leak in).

Both `--register=no` and `--keep-unit` are needed on hosts without a running systemd
(shared/platform.md).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CLEAN_ENV = ("PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8")


class MachineError(RuntimeError):
    """The machine did not boot, or a command in it failed."""


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="utf-8")
        except OSError:
            continue
        # Field 4 is the parent's pid; the command name (field 2) may hold spaces: skip past it.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


@dataclass
class User:
    """A user of the machine with a running user manager."""

    name: str
    uid: int

    @property
    def home(self) -> str:
        return f"/home/{self.name}"


class Machine:
    """A booted nspawn container; `run` executes a command inside it."""

    def __init__(self, process: subprocess.Popen[bytes], leader: int, log: Path) -> None:
        self.process = process
        self.leader = leader
        self.log = log

    @classmethod
    def boot(
        cls,
        rootfs: Path,
        name: str,
        binds: Mapping[Path, str],
        log: Path,
        within: float = 60.0,
    ) -> Machine:
        """Boot `rootfs` ephemerally with `binds` (host path -> container path, read-only)."""
        command = [
            "systemd-nspawn",
            "--quiet",
            "--boot",
            "--ephemeral",
            f"--directory={rootfs}",
            "--register=no",
            "--keep-unit",
            f"--machine={name}",
            *(f"--bind-ro={host}:{inside}" for host, inside in binds.items()),
        ]
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
            )
        deadline = time.monotonic() + within
        leader = None
        while leader is None:
            # The container's PID 1 once it runs systemd: right after the fork the child is still
            # nspawn's own helper, and entering that one finds no systemd to talk to.
            children = [pid for pid in _children(process.pid) if _command(pid) == "systemd"]
            if children:
                leader = children[0]
            elif process.poll() is not None or time.monotonic() > deadline:
                raise MachineError(f"nspawn exited or hung: {log.read_text(errors='replace')}")
            else:
                time.sleep(0.05)
        machine = cls(process, leader, log)
        try:
            machine.wait_running(deadline)
        except BaseException:
            machine.kill()
            raise
        return machine

    def wait_running(self, deadline: float, user: User | None = None) -> None:
        """Wait until the (user) manager has finished starting up."""
        while True:
            # "offline" until PID 1 listens on its bus; --wait then waits for the boot to end.
            state = self.systemctl(
                "is-system-running", "--wait", user=user, check=False, timeout=30
            ).stdout.strip()
            if state in ("running", "degraded"):
                return
            if time.monotonic() > deadline:
                raise MachineError(f"the machine did not come up: {state!r}")
            time.sleep(0.1)

    def run(
        self,
        *argv: str,
        user: User | None = None,
        env: Mapping[str, str] | None = None,
        input_text: str | None = None,
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in the machine, as root or as `user` (with its runtime directory)."""
        command: list[str] = ["nsenter", "-t", str(self.leader), "-a", "env", "-i", *CLEAN_ENV]
        if user is not None:
            command += [
                "runuser",
                "-u",
                user.name,
                "--",
                "env",
                f"HOME={user.home}",
                f"XDG_RUNTIME_DIR=/run/user/{user.uid}",
            ]
        command += [f"{key}={value}" for key, value in (env or {}).items()]
        command += argv
        result = subprocess.run(
            command, input=input_text, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise MachineError(
                f"{shlex.join(argv)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
            )
        return result

    def systemctl(
        self, *args: str, user: User | None = None, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        scope = ("--user",) if user is not None else ()
        return self.run("systemctl", *scope, *args, user=user, check=check, timeout=timeout)

    def show(self, unit: str, *properties: str, user: User | None = None) -> dict[str, str]:
        """`systemctl show` properties of `unit`."""
        answer = self.systemctl("show", unit, "-p", ",".join(properties), user=user).stdout
        return dict(line.split("=", 1) for line in answer.splitlines() if "=" in line)

    def write(self, path: str, text: str, mode: int = 0o600, user: User | None = None) -> None:
        """Create `path` (and its directories) with `text` and `mode`, as root or as `user`."""
        self.run(
            "sh",
            "-ec",
            'mkdir -p "$(dirname "$1")"; cat >"$1"; chmod "$2" "$1"',
            "write",
            path,
            f"{mode:o}",
            user=user,
            input_text=text,
        )

    def cursor(self) -> str:
        """The journal's current position: read entries after it with `journal(after=...)`."""
        answer = self.run("journalctl", "--lines=0", "--show-cursor", "--quiet", "--no-pager")
        return answer.stdout.strip().removeprefix("-- cursor: ")

    def journal(self, identifier: str, after: str) -> list[str]:
        """The messages a program logged under its syslog identifier since `after` (a cursor).

        Read as root from the system journal, which holds the user managers' services too.
        Filtered here, not with `--identifier`: journalctl 252 drops the first match after
        `--after-cursor` when both are given.
        """
        answer = self.run("journalctl", f"--after-cursor={after}", "--output=json", "--no-pager")
        messages = []
        for line in answer.stdout.splitlines():
            entry = json.loads(line)
            if entry.get("SYSLOG_IDENTIFIER") == identifier:
                message = entry.get("MESSAGE")
                # journald exports a message that is not valid UTF-8 as a list of byte values.
                if isinstance(message, list):
                    message = bytes(message).decode("utf-8", errors="replace")
                messages.append(str(message))
        return messages

    def add_user(self, name: str, uid: int, within: float = 30.0) -> User:
        """A user with a home and a lingering user manager, up and running."""
        self.run("useradd", "--create-home", "--uid", str(uid), "--shell", "/bin/sh", name)
        self.run("loginctl", "enable-linger", name)
        user = User(name, uid)
        deadline = time.monotonic() + within
        # systemctl --user talks to the manager's private socket (there is no session bus).
        private = f"/run/user/{uid}/systemd/private"
        while self.run("test", "-S", private, check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise MachineError(f"no user manager for {name}")
            time.sleep(0.05)
        self.wait_running(deadline, user=user)
        return user

    def poweroff(self, within: float = 30.0) -> None:
        """Shut the machine down cleanly (its ephemeral copy is deleted), else kill it."""
        if self.process.poll() is None:
            self.run("systemctl", "poweroff", check=False, timeout=10)
            try:
                self.process.wait(timeout=within)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
