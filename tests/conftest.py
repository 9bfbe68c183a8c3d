"""Shared fixtures: the anyio backend, and a log capture usable by every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """The daemon runs on asyncio; tests pin it."""
    return "asyncio"


@pytest.fixture(autouse=True)
def _reap_agent_processes() -> Iterator[None]:
    """No `python -m agent` subprocess outlives the test that started it."""
    yield
    from tests.e2e.conftest import reap  # noqa: PLC0415 - only tests that start processes

    reap()
