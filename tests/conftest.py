"""Shared fixtures: the anyio backend, and a log capture usable by every test."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """The daemon runs on asyncio; tests pin it."""
    return "asyncio"
