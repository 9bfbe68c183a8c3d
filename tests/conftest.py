"""Shared fixtures: the anyio backend, and a log capture usable by every test."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

# Where a test's time goes, longest first: property runs of many examples (CPU), then real
# processes waited on (e2e, faults), then in-process loopback servers (the devkit's stand-ins),
# then the rest. Directories as seen from the repository's root.
_SLOW_DIRECTORIES: dict[tuple[str, ...], int] = {
    ("tests", "e2e"): 1,
    ("tests", "faults"): 1,
    ("devkit", "tests"): 2,
}
_QUICK = 3


def _expected_length(item: pytest.Item) -> int:
    """0 for the longest kind of test, `_QUICK` for the quickest."""
    if getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
        return 0
    relative = Path(str(item.path)).relative_to(Path(__file__).parent.parent)
    return _SLOW_DIRECTORIES.get(relative.parts[:2], _QUICK)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long tests first, the many quick ones last.

    pytest-xdist hands tests out in this order: when a long one comes last, one worker is still
    busy with it while the others idle, and `make test` waits for it. With the quick ones last,
    the workers fill the end of the run evenly. The sort is stable, so the order is the same on
    every worker (xdist requires that) and, within a kind, is the collection order.
    """
    items.sort(key=_expected_length)


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


@pytest.fixture(autouse=True)
def _standard_logging_restored() -> Iterator[None]:
    """`agent.log.configure` routes the standard `logging` to its writer, for the process: a
    test that configures it in-process leaves the next test pytest's own."""
    handlers, level = logging.root.handlers[:], logging.root.level
    yield
    logging.captureWarnings(False)
    logging.root.handlers[:] = handlers
    logging.root.setLevel(level)


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port refusing every connection for the test's duration (tests.deadports)."""
    from tests.deadports import refusing_port  # noqa: PLC0415 - only tests that need one

    with refusing_port() as port:
        yield port


@pytest.fixture
def refused_url(refused_port: int) -> str:
    """`http://127.0.0.1:PORT` at `refused_port`: where "nothing listens" is a test's premise."""
    return f"http://127.0.0.1:{refused_port}"


@pytest.fixture(autouse=True)
def _signal_handlers_restored() -> Iterator[None]:
    """`agent.boundary` takes SIGINT, SIGTERM and SIGHUP for the process's life (a command is
    the process): a test that runs a command in-process leaves the next test pytest's own."""
    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    handlers = {signum: signal.getsignal(signum) for signum in stops}
    yield
    for signum, handler in handlers.items():
        signal.signal(signum, handler)
