"""Fixtures of the system tier: a real systemd (nspawn) and a real image (podman).

Everything here needs root and what scripts/system-setup.sh prepares (packages, local base
images, a bootable rootfs, a wheelhouse); where something is missing the tests skip and say
which. Expensive things are built once per session: the machine with the package installed,
and the image.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.system.machine import Machine
from tests.system.standins import StandIns, running_standins

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("CODER_TASK_AGENT_CI_CACHE", "/var/cache/coder-task-agent-ci"))
SETUP = "run `sudo bash scripts/system-setup.sh` first"
# Where docs/deploy.md installs the package, and so where the units expect it.
VENV = "/opt/coder-task-agent/venv"
IMAGE = "localhost/coder-task-agent:system-test"


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("system tests need root (systemd-nspawn, podman storage, nsenter)")


def _require_tools(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} missing: {SETUP}")


def wheelhouse_key() -> str:
    """The key scripts/system-setup.sh files the wheelhouse under: uv.lock + the build system.

    The same bytes as its `cat uv.lock <(sed -n '/^\\[build-system\\]/,/^\\[/p' pyproject.toml)`:
    the [build-system] table through the next table's header line.
    """
    lines = (ROOT / "pyproject.toml").read_text(encoding="utf-8").splitlines(keepends=True)
    table: list[str] = []
    for line in lines:
        if table and line.startswith("["):
            table.append(line)
            break
        if table or line.startswith("[build-system]"):
            table.append(line)
    data = (ROOT / "uv.lock").read_bytes() + "".join(table).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def podman(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run podman with this machine's quirks (the test-only CONTAINERS_CONF from the setup)."""
    env = {**os.environ, "CONTAINERS_CONF": str(CACHE / "containers.conf")}
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


@pytest.fixture
def standins(tmp_path: Path) -> Iterator[StandIns]:
    """Fresh AgentAPI and Coder stand-ins on the host's loopback, for one test."""
    with running_standins(tmp_path) as running:
        yield running


@pytest.fixture(scope="session")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machine]:
    """A booted systemd machine with the package installed as docs/deploy.md says.

    `python3 -m venv /opt/coder-task-agent/venv`, then `pip install` of the read-only source
    tree, offline from the cached wheelhouse, and the system unit copied to /etc/systemd/system.
    """
    _require_root()
    _require_tools("systemd-nspawn", "nsenter")
    rootfs = CACHE / "nspawn-rootfs"
    if not (rootfs / ".complete").exists():
        pytest.skip(f"no cached nspawn rootfs in {rootfs}: {SETUP}")
    wheels = CACHE / "wheelhouse" / wheelhouse_key()
    if not (wheels / ".complete").exists():
        pytest.skip(f"no wheelhouse for this uv.lock in {wheels}: {SETUP}")
    workdir = tmp_path_factory.mktemp("nspawn")
    booted = Machine.boot(
        rootfs,
        name=f"cta-test-{os.getpid()}",
        binds={ROOT: "/mnt/src", wheels: "/mnt/wheels"},
        log=workdir / "nspawn.log",
    )
    try:
        booted.run("python3", "-m", "venv", VENV)
        booted.run(
            f"{VENV}/bin/pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-index",
            "--find-links=/mnt/wheels",
            "/mnt/src",
        )
        booted.run(
            "install",
            "-m",
            "0644",
            "/mnt/src/systemd/coder-task-agent.service",
            "/etc/systemd/system/",
        )
        booted.systemctl("daemon-reload")
        yield booted
    finally:
        booted.poweroff()


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The project's image, built from the Dockerfile with the locally made base image."""
    _require_root()
    _require_tools("podman")
    conf = CACHE / "containers.conf"
    if not conf.exists():
        pytest.skip(f"no {conf}: {SETUP}")
    base = "docker.io/library/python:3.11-slim"
    if podman("image", "exists", base).returncode != 0:
        pytest.skip(f"no local {base} image (nothing can be pulled here): {SETUP}")
    log = tmp_path_factory.mktemp("podman") / "build.log"
    built = podman("build", "--pull=never", "-t", IMAGE, str(ROOT), timeout=600)
    log.write_text(built.stdout + built.stderr, encoding="utf-8")
    assert built.returncode == 0, built.stdout + built.stderr
    return IMAGE
