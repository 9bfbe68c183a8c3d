"""Shared fixtures: the anyio backend, and a log capture usable by every test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """The daemon runs on asyncio; tests pin it."""
    return "asyncio"


@pytest.fixture(autouse=True, scope="session")
def _never_the_real_agent_socket() -> Iterator[None]:
    """Run inside a Coder workspace, the suite must not report to the real agent's socket.

    Settings read from the environment (and every subprocess that inherits it) get a path that
    does not exist; a test that wants an agent socket serves a stand-in at a path of its own.
    """
    previous = os.environ.get("CODER_AGENT_SOCKET_PATH")
    os.environ["CODER_AGENT_SOCKET_PATH"] = "/nonexistent/coder-task-agent-tests/coder-agent.sock"
    yield
    if previous is None:
        del os.environ["CODER_AGENT_SOCKET_PATH"]
    else:
        os.environ["CODER_AGENT_SOCKET_PATH"] = previous


@pytest.fixture(autouse=True)
def _reap_agent_processes() -> Iterator[None]:
    """No `python -m agent` subprocess outlives the test that started it."""
    yield
    from tests.e2e.conftest import reap  # noqa: PLC0415 - only tests that start processes

    reap()
