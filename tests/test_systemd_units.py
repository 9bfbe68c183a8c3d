"""The shipped systemd units: valid for systemd, hardened, and consistent with the daemon.

Fast checks (tens of milliseconds each) that need only `systemd-analyze`, not a running systemd.
Booting a real systemd with the units is tests/system/test_systemd.py's job.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from agent.config import PREFIX, VARIABLES
from agent.config import read as read_settings
from agent.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_UNIT = ROOT / "systemd" / "coder-task-agent.service"
USER_UNIT = ROOT / "systemd" / "user" / "coder-task-agent.service"
ENV_EXAMPLE = ROOT / "systemd" / "env.example"
INSTALLED_SCRIPT = "/opt/coder-task-agent/venv/bin/coder-task-agent"
# The exposure the system unit must stay at or under (0 locked down, 10 fully exposed).
MAX_EXPOSURE = 2.5

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is missing (apt-get install systemd)",
)


def directives(unit: Path) -> dict[str, list[str]]:
    """`Key=value` lines of a unit file, every value of each key, in order."""
    found: dict[str, list[str]] = {}
    for line in unit.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def runnable_copy(unit: Path, directory: Path) -> Path:
    """A copy of `unit` whose ExecStart names an executable stub instead of INSTALLED_SCRIPT.

    `systemd-analyze verify` refuses a unit whose command does not exist; the package is not
    installed in /opt on the test machine. Nothing else in the unit changes.
    """
    stub = directory / "coder-task-agent"
    stub.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    stub.chmod(0o755)
    text = unit.read_text(encoding="utf-8")
    assert f"ExecStart={INSTALLED_SCRIPT} run\n" in text
    copy = directory / unit.name
    copy.write_text(text.replace(f"ExecStart={INSTALLED_SCRIPT}", f"ExecStart={stub}"), "utf-8")
    return copy


def analyze(*args: str, runtime_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        # A user manager's view needs a runtime directory even offline.
        env={"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": str(runtime_dir), "HOME": "/nonexistent"},
    )


@needs_analyze
@pytest.mark.parametrize(
    ("unit", "scope"), [(SYSTEM_UNIT, "--system"), (USER_UNIT, "--user")], ids=["system", "user"]
)
def test_unit_passes_systemd_analyze_verify(unit: Path, scope: str, tmp_path: Path) -> None:
    copy = runnable_copy(unit, tmp_path)
    result = analyze(scope, "verify", str(copy), runtime_dir=tmp_path)
    # verify exits 0 on unknown keys and bad values (it only warns): any output is a failure.
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


@needs_analyze
def test_system_unit_exposure_is_low(tmp_path: Path) -> None:
    result = analyze(
        "security", "--offline=true", "--no-pager", str(SYSTEM_UNIT), runtime_dir=tmp_path
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    exposure = float(found.group(1))
    assert exposure <= MAX_EXPOSURE, result.stdout


def test_units_run_the_daemon_as_a_notify_service_with_time_to_save() -> None:
    for unit in (SYSTEM_UNIT, USER_UNIT):
        found = directives(unit)
        assert found["Type"] == ["notify"]
        assert found["ExecStart"] == [f"{INSTALLED_SCRIPT} run"]
        assert found["KillSignal"] == ["SIGTERM"]
        assert found["Restart"] == ["on-failure"]
        assert found["RestartPreventExitStatus"] == ["2 CREDENTIALS"]
        assert found["RuntimeDirectory"] == ["coder-task-agent"]
        assert found["RuntimeDirectoryMode"] == ["0700"]
        assert found["LoadCredential"][0].startswith("coder-agent-token:")
        # One SIGTERM, then the whole default budget and a margin before SIGKILL.
        assert float(found["TimeoutStopSec"][0]) >= 2 * read_settings({}).shutdown_budget
    assert directives(SYSTEM_UNIT)["EnvironmentFile"] == ["-/etc/coder-task-agent/env"]
    assert directives(SYSTEM_UNIT)["LoadCredential"] == [
        "coder-agent-token:/etc/coder-task-agent/token"
    ]


def example_variables() -> dict[str, str]:
    """Every `KEY=value` of env.example, commented out or not."""
    found: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"#?([A-Z][A-Z0-9_]*)=(.*)", line.strip())
        if match:
            found[match.group(1)] = match.group(2)
    return found


def test_env_example_documents_every_tunable_with_valid_values() -> None:
    variables = example_variables()
    # Every setting of ours the daemon reads (not the OpenCode plugin's CODER_TASK_AGENT_COMMAND).
    tunables = {n for n, v in VARIABLES.items() if n.startswith(PREFIX) and v.field is not None}
    assert tunables <= set(variables)
    assert "CODER_AGENT_TOKEN" not in variables  # the token goes in the credential, not here
    settings = read_settings({**variables, "CODER_AGENT_TOKEN": "example"})
    settings.require_coder()


def test_env_example_active_lines_are_only_the_required_url() -> None:
    active = [
        line
        for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert active == ["CODER_AGENT_URL=https://coder.example.com"]
    with pytest.raises(ConfigError, match="CODER_AGENT_TOKEN"):
        read_settings({"CODER_AGENT_URL": "https://coder.example.com"}).require_coder()
