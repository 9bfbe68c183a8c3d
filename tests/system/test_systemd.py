"""The shipped units under a real systemd: readiness, statuses, a stop that saves, the journal.

One nspawn machine per session has the package installed in /opt/coder-task-agent/venv and the
system unit in /etc/systemd/system, as docs/deploy.md says (and enabled, which also keeps the
unit loaded after a stop so that its result can be read); each test writes the environment file
and the credential for its own stand-ins on the host's loopback.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from agent.config import read as read_settings
from tests.system.conftest import ROOT, VENV
from tests.system.machine import Machine, User
from tests.system.standins import TOKEN, StandIns, wait_for

pytestmark = pytest.mark.system

UNIT = "coder-task-agent.service"
IDENTIFIER = "coder-task-agent"  # SyslogIdentifier=
BUDGET = read_settings({}).shutdown_budget
DROP_IN_DIR = f"/etc/systemd/system/{UNIT}.d"
USER_DROP_IN = f".config/systemd/user/{UNIT}.d/sandbox.conf"


@pytest.fixture
def unit(machine: Machine, standins: StandIns) -> Iterator[Machine]:
    """The system unit, enabled; stopped, with its drop-ins and configuration gone, after.

    It asks for `standins` so that it is stopped before they are: a stop with Coder gone would
    spend the whole budget retrying.
    """
    machine.systemctl("enable", "--quiet", UNIT)
    yield machine
    machine.systemctl("stop", UNIT, check=False)
    machine.systemctl("reset-failed", UNIT, check=False)
    machine.run("rm", "-rf", DROP_IN_DIR, "/etc/coder-task-agent")
    machine.systemctl("daemon-reload")


def configure(machine: Machine, standins: StandIns, **extra: str) -> None:
    """/etc/coder-task-agent/{env,token} as an administrator would write them."""
    machine.write("/etc/coder-task-agent/env", standins.env_file(**extra))
    machine.write("/etc/coder-task-agent/token", TOKEN + "\n")


def logged_events(machine: Machine, cursor: str) -> list[dict[str, Any]]:
    """The daemon's journal lines since `cursor`, each parsed as the JSON object it must be."""
    entries = []
    for line in machine.journal(IDENTIFIER, after=cursor):
        entry = json.loads(line)
        assert isinstance(entry, dict), line
        entries.append(entry)
    return entries


def wait_stopped_logged(machine: Machine, cursor: str) -> list[dict[str, Any]]:
    """The journal once it holds `daemon_stopped` (journald may lag the exit by a moment)."""
    wait_for(
        lambda: any(e["event"] == "daemon_stopped" for e in logged_events(machine, cursor)),
        10,
        "daemon_stopped in the journal",
    )
    return logged_events(machine, cursor)


def test_start_waits_for_ready_statuses_flow_and_stop_saves_in_budget(
    unit: Machine, standins: StandIns
) -> None:
    configure(unit, standins)
    cursor = unit.cursor()

    unit.systemctl("start", UNIT)
    # Type=notify: `start` returned only once READY=1 arrived, so the unit is already active,
    # the daemon's STATUS= is shown, and activation came after the exec by the interpreter's
    # start-up (a Type=simple unit is active at the exec itself).
    shown = unit.show(
        UNIT,
        "ActiveState",
        "StatusText",
        "ExecMainStartTimestampMonotonic",
        "ActiveEnterTimestampMonotonic",
        "WatchdogUSec",
    )
    assert shown["ActiveState"] == "active"
    assert shown["StatusText"].startswith(f"watching {standins.agentapi_url}")
    waited = int(shown["ActiveEnterTimestampMonotonic"]) - int(
        shown["ExecMainStartTimestampMonotonic"]
    )
    assert waited > 50_000, shown  # microseconds
    assert shown["WatchdogUSec"] == "30s"

    wait_for(lambda: standins.states() == ["idle"], 20, "the first status (idle)")
    standins.prompt("Summarise the release notes")
    wait_for(
        lambda: standins.states() == ["idle", "working", "idle"], 30, "working, then idle again"
    )
    assert standins.statuses()[1]["message"] == "Summarise the release notes"
    assert standins.snapshot() is None

    unit.systemctl("stop", UNIT)

    snapshot = standins.snapshot()
    assert snapshot is not None, "no snapshot reached Coder"
    contents = [message["content"] for message in snapshot["messages"]]
    assert "Summarise the release notes" in contents
    assert len(standins.snapshot_requests()) == 1
    shown = unit.show(
        UNIT,
        "ActiveState",
        "Result",
        "ExecMainCode",
        "ExecMainStatus",
        "NRestarts",
        "ActiveExitTimestampMonotonic",
        "InactiveEnterTimestampMonotonic",
    )
    assert shown["ActiveState"] == "inactive"
    assert shown["Result"] == "success", shown
    assert shown["ExecMainCode"] == "1", shown  # CLD_EXITED: it exited, it was not killed
    assert shown["ExecMainStatus"] == "0", shown
    assert shown["NRestarts"] == "0", shown
    stopping = int(shown["InactiveEnterTimestampMonotonic"]) - int(
        shown["ActiveExitTimestampMonotonic"]
    )
    assert 0 < stopping < BUDGET * 1_000_000, f"the stop took {stopping / 1e6:.2f} s"

    logged = wait_stopped_logged(unit, cursor)
    events = [entry["event"] for entry in logged]
    assert {"daemon_started", "status_delivered", "stop_requested", "snapshot_uploaded"} <= set(
        events
    )
    assert events[-1] == "daemon_stopped"
    assert logged[-1]["exit_code"] == 0
    assert all({"level", "timestamp"} <= entry.keys() for entry in logged)
    journal = unit.run("journalctl", f"--after-cursor={cursor}", "--no-pager").stdout
    assert TOKEN not in journal


def test_runs_sandboxed_without_privileges(unit: Machine, standins: StandIns) -> None:
    configure(unit, standins)
    unit.systemctl("start", UNIT)
    pid = unit.show(UNIT, "MainPID")["MainPID"]
    status = unit.run("cat", f"/proc/{pid}/status").stdout
    fields = {
        key: value.strip()
        for key, _, value in (line.partition(":") for line in status.splitlines())
    }
    assert fields["Uid"].split()[0] != "0"  # DynamicUser=
    assert int(fields["CapEff"], 16) == 0
    assert int(fields["CapBnd"], 16) == 0
    assert fields["NoNewPrivs"] == "1"
    assert fields["Seccomp"] == "2"  # filter mode: SystemCallFilter=
    # The report socket is in its private runtime directory, which only its user can enter.
    # (-L: kept across restarts, it lives in /run/private and systemd links it from here.)
    listing = unit.run("stat", "-L", "-c", "%a %U", "/run/coder-task-agent").stdout.split()
    assert listing[0] == "700"
    assert unit.run("test", "-S", "/run/coder-task-agent/report.sock", check=False).returncode == 0
    # The credential is where the daemon looks for it, and not in its environment.
    environ = unit.run("cat", f"/proc/{pid}/environ").stdout
    assert TOKEN not in environ
    assert "CREDENTIALS_DIRECTORY=" in environ


def test_watchdog_pings_keep_it_alive(unit: Machine, standins: StandIns) -> None:
    configure(unit, standins)
    unit.write(f"{DROP_IN_DIR}/watchdog.conf", "[Service]\nWatchdogSec=1\n", mode=0o644)
    unit.systemctl("daemon-reload")
    unit.systemctl("start", UNIT)
    # Three watchdog periods: without WATCHDOG=1 pings systemd would have killed it by now.
    time.sleep(3)
    shown = unit.show(UNIT, "ActiveState", "NRestarts", "WatchdogUSec", "Result")
    assert shown == {
        "ActiveState": "active",
        "NRestarts": "0",
        "WatchdogUSec": "1s",
        "Result": "success",
    }


def test_configuration_error_fails_once_and_is_not_restarted(
    unit: Machine, standins: StandIns
) -> None:
    configure(unit, standins, CODER_TASK_AGENT_SHUTDOWN_BUDGET="soon")
    cursor = unit.cursor()
    started = unit.systemctl("start", UNIT, check=False)
    assert started.returncode != 0
    shown = unit.show(UNIT, "ActiveState", "Result", "ExecMainStatus", "NRestarts")
    # RestartPreventExitStatus=2: failed for good, not "activating (auto-restart)".
    assert shown == {
        "ActiveState": "failed",
        "Result": "exit-code",
        "ExecMainStatus": "2",
        "NRestarts": "0",
    }
    wait_for(
        lambda: any(
            "CODER_TASK_AGENT_SHUTDOWN_BUDGET" in line
            for line in unit.journal(IDENTIFIER, after=cursor)
        ),
        10,
        "the variable named in the journal",
    )


def test_missing_token_file_fails_once_and_is_not_restarted(
    unit: Machine, standins: StandIns
) -> None:
    unit.write("/etc/coder-task-agent/env", standins.env_file())
    assert unit.systemctl("start", UNIT, check=False).returncode != 0
    shown = unit.show(UNIT, "ActiveState", "Result", "ExecMainStatus", "NRestarts")
    # 243: systemd's CREDENTIALS exit status, listed in RestartPreventExitStatus=.
    assert shown == {
        "ActiveState": "failed",
        "Result": "exit-code",
        "ExecMainStatus": "243",
        "NRestarts": "0",
    }


@pytest.fixture(scope="module")
def workspace_user(machine: Machine) -> User:
    """The workspace user of a VM workspace: a lingering user manager, the user unit installed."""
    user = machine.add_user("coder", 1000)
    machine.run(
        "install",
        "-D",
        "-m",
        "0644",
        "/mnt/src/systemd/user/coder-task-agent.service",
        f"{user.home}/.config/systemd/user/{UNIT}",
        user=user,
    )
    return user


@pytest.mark.parametrize("sandbox", [False, True], ids=["plain", "sandbox-drop-in"])
def test_user_unit_hooks_report_through_the_socket(
    machine: Machine, workspace_user: User, standins: StandIns, sandbox: bool
) -> None:
    user, home = workspace_user, workspace_user.home
    machine.write(f"{home}/.config/coder-task-agent/env", standins.env_file(), user=user)
    machine.write(f"{home}/.config/coder-task-agent/token", TOKEN + "\n", user=user)
    if sandbox:
        text = (ROOT / "systemd" / "user" / "sandbox.conf").read_text(encoding="utf-8")
        machine.write(f"{home}/{USER_DROP_IN}", text, mode=0o644, user=user)
    cursor = machine.cursor()
    try:
        machine.systemctl("daemon-reload", user=user)
        machine.systemctl("start", UNIT, user=user)
        assert machine.show(UNIT, "ActiveState", user=user) == {"ActiveState": "active"}
        wait_for(lambda: standins.states() == ["idle"], 20, "the first status (idle)")

        # A hook of the agent, as the same user: no Coder URL nor token in its environment, so
        # the report can only have gone through the daemon's socket.
        reported = machine.run(
            f"{VENV}/bin/coder-task-agent",
            "report",
            "complete",
            "Opened PR #12",
            "--uri",
            "https://git.example.com/pr/12",
            user=user,
            check=False,
        )
        assert reported.returncode == 0, reported.stderr
        wait_for(lambda: standins.states() == ["idle", "complete"], 20, "the explicit report")
        assert standins.statuses()[-1]["uri"] == "https://git.example.com/pr/12"

        machine.systemctl("stop", UNIT, user=user)
        assert standins.snapshot() is not None
        logged = wait_stopped_logged(machine, cursor)
        assert logged[-1]["exit_code"] == 0
    finally:
        machine.systemctl("stop", UNIT, user=user, check=False)
        machine.systemctl("reset-failed", UNIT, user=user, check=False)
        machine.run("rm", "-f", f"{home}/{USER_DROP_IN}")


def test_the_unit_under_test_is_the_shipped_one(machine: Machine) -> None:
    installed = machine.run("cat", f"/etc/systemd/system/{UNIT}").stdout
    assert installed == (ROOT / "systemd" / UNIT).read_text(encoding="utf-8")
    version = machine.run(f"{VENV}/bin/coder-task-agent", "--version").stdout
    assert version.startswith("coder-task-agent ")
