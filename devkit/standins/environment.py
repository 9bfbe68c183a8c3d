"""The environment a product process (`python -m agent`) gets when run next to the stand-ins.

Shared by the demo, the benchmarks and the tests, so that all three start the daemon exactly as
a workspace would: the parent's environment without anything Coder or systemd injected into it,
plus the daemon's own variables.
"""

from __future__ import annotations

import os
from pathlib import Path

# Inherited variables that would point the child at the wrong Coder or systemd.
_DROPPED_PREFIXES = ("CODER_", "NOTIFY_SOCKET", "WATCHDOG_")
# Inherited variables that would route the child's requests to the stand-ins through a proxy
# or change which CA it trusts (the tests that want them set them).
_DROPPED_NAMES = frozenset(
    {"http_proxy", "https_proxy", "all_proxy", "no_proxy", "ssl_cert_file", "ssl_cert_dir"}
)


def agent_environment(
    *,
    coder_url: str,
    agentapi_url: str,
    token: str,
    task_id: str,
    app_slug: str,
    socket: Path,
    **extra: str,
) -> dict[str, str]:
    """The child's environment: the token travels here, never on a command line."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_DROPPED_PREFIXES) and k.lower() not in _DROPPED_NAMES
    }
    return {
        **base,
        "PYTHONUNBUFFERED": "1",
        "CODER_AGENT_URL": coder_url,
        "CODER_AGENT_TOKEN": token,
        "CODER_TASK_ID": task_id,
        "CODER_MCP_APP_STATUS_SLUG": app_slug,
        "CODER_MCP_AI_AGENTAPI_URL": agentapi_url,
        "CODER_TASK_AGENT_SOCKET": str(socket),
        # Never the real agent's socket of the machine the tests run on (a Coder workspace):
        # a test that wants one serves a stand-in there.
        "CODER_AGENT_SOCKET_PATH": str(socket.parent / "coder-agent.sock"),
        "CODER_TASK_AGENT_LOG_FORMAT": "json",
        **extra,
    }
