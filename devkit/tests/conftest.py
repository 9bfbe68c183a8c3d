"""The devkit's tests share the product tests' fixtures (anyio backend, process reaping)."""

from tests.conftest import (
    _never_the_real_agent_socket,
    _reap_agent_processes,
    anyio_backend,
    refused_port,
    refused_url,
)

__all__ = [
    "_never_the_real_agent_socket",
    "_reap_agent_processes",
    "anyio_backend",
    "refused_port",
    "refused_url",
]
