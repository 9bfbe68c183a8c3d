"""The image from the Dockerfile, run next to the stand-ins as it would run next to AgentAPI.

`--network=host` stands for the shared network namespace of a sidecar (a pod, or
`--network=container:agentapi`): the daemon reaches AgentAPI and Coder on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.config import read as read_settings
from tests.system.conftest import podman
from tests.system.standins import TOKEN, StandIns, wait_for

pytestmark = pytest.mark.system

UID = 10001  # the Dockerfile's user
BASE = "docker.io/library/python:3.11-slim"
# What the project adds on top of the base image: the venv (pydantic-core is most of it).
MAX_ADDED_BYTES = 40 * 1024 * 1024
# `podman stop -t 10`, like `docker stop`'s default: SIGTERM, then SIGKILL after 10 s.
STOP_TIMEOUT = 10
BUDGET = read_settings({}).shutdown_budget


def inspect(name: str, kind: str = "container") -> dict[str, Any]:
    answer = podman(kind, "inspect", name)
    assert answer.returncode == 0, answer.stderr
    found: dict[str, Any] = json.loads(answer.stdout)[0]
    return found


def test_image_runs_as_non_root_without_build_tools(image: str) -> None:
    config = inspect(image, "image")["Config"]
    assert config["User"] == f"{UID}:{UID}"
    assert config["Entrypoint"] == ["coder-task-agent"]
    assert config["Cmd"] == ["run"]
    assert config["StopSignal"] in ("SIGTERM", "15")

    probe = podman(
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        image,
        "-c",
        "id -u; id -g; command -v uv gcc cc || true; ls /opt/venv/bin",
    )
    assert probe.returncode == 0, probe.stderr
    uid, gid, *rest = probe.stdout.split()
    assert (uid, gid) == (str(UID), str(UID))
    assert rest[:1] == ["coder-task-agent"], "uv or a compiler is in the image"
    assert not any(name.startswith(("pip", "activate", "Activate")) for name in rest)

    size = inspect(image, "image")["Size"]
    base_size = inspect(BASE, "image")["Size"]
    assert size - base_size < MAX_ADDED_BYTES, f"{size} bytes, the base {base_size}"

    version = podman("run", "--rm", image, "--version")
    assert version.stdout.startswith("coder-task-agent "), version.stderr


def test_configuration_error_exits_2_naming_the_variable(image: str) -> None:
    answer = podman("run", "--rm", image)
    assert answer.returncode == 2
    assert "CODER_AGENT_URL" in answer.stderr


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    """The token as a mounted secret: a file only the container's user can read."""
    path = tmp_path / "secret" / "coder-agent-token"
    path.parent.mkdir()
    path.write_text(TOKEN + "\n", encoding="utf-8")
    os.chown(path, UID, UID)
    path.chmod(0o400)
    return path


@pytest.fixture
def container_name(standins: StandIns) -> Iterator[str]:
    """A container name, removed after the test (before the stand-ins stop)."""
    name = f"cta-test-{os.getpid()}-{time.monotonic_ns()}"
    yield name
    podman("rm", "--force", "--time", "0", name)


def test_container_reports_and_saves_the_snapshot_on_podman_stop(
    image: str, standins: StandIns, token_file: Path, container_name: str
) -> None:
    environment = [
        f"--env={key}={value}"
        for key, value in standins.environment(
            CODER_AGENT_TOKEN_FILE="/run/secrets/coder-agent-token"
        ).items()
    ]
    started = podman(
        "run",
        "--detach",
        f"--name={container_name}",
        "--network=host",
        # What docs/deploy.md's Kubernetes securityContext asks for: a read-only root (podman
        # then mounts a tmpfs on /tmp, where the report socket goes), no capabilities, no
        # privilege escalation.
        "--read-only",
        "--cap-drop=all",
        "--security-opt=no-new-privileges",
        f"--volume={token_file}:/run/secrets/coder-agent-token:ro",
        *environment,
        image,
    )
    assert started.returncode == 0, started.stderr

    wait_for(lambda: standins.states() == ["idle"], 30, "the first status (idle)")
    standins.prompt("Bump the version")
    wait_for(
        lambda: standins.states() == ["idle", "working", "idle"], 30, "working, then idle again"
    )
    top = podman("top", container_name, "user", "args")
    daemon = [line for line in top.stdout.splitlines() if "coder-task-agent run" in line]
    assert daemon, top.stdout
    assert daemon[0].split()[0] in ("coder-task-agent", str(UID)), top.stdout  # not root

    began = time.monotonic()
    stopped = podman("stop", f"--time={STOP_TIMEOUT}", container_name, timeout=60)
    stop_seconds = time.monotonic() - began
    assert stopped.returncode == 0, stopped.stderr

    state = inspect(container_name)["State"]
    # Exit 0, not 137: it finished its stop path before podman's SIGKILL.
    assert state["ExitCode"] == 0, state
    assert stop_seconds < BUDGET + 1, f"podman stop took {stop_seconds:.1f} s"
    snapshot = standins.snapshot()
    assert snapshot is not None, "no snapshot reached Coder"
    assert "Bump the version" in [message["content"] for message in snapshot["messages"]]

    logs = podman("logs", container_name)
    lines = (logs.stdout + logs.stderr).splitlines()
    events = [json.loads(line)["event"] for line in lines]
    assert {"daemon_started", "status_delivered", "snapshot_uploaded"} <= set(events)
    assert events[-1] == "daemon_stopped"
    assert "report_socket_unavailable" not in events  # /tmp was writable for the socket
    assert not any(TOKEN in line for line in lines)
