"""The two `httpx.AsyncClient`s the daemon uses, built once from settings.

AgentAPI is on loopback: no proxy from the environment applies to it. Coder is reached the way
the workspace reaches it (proxy and CA variables honoured), with TLS verification on unless
turned off explicitly. Neither client follows redirects: the token must not leave its origin.
"""

from __future__ import annotations

import httpx

from agent.coder import TOKEN_HEADER
from agent.settings import Secret, Settings

USER_AGENT = "coder-task-agent"


def agentapi_http(settings: Settings) -> httpx.AsyncClient:
    """A client for the local AgentAPI."""
    return httpx.AsyncClient(
        base_url=settings.agentapi_url,
        timeout=httpx.Timeout(settings.agentapi_timeout),
        follow_redirects=False,
        trust_env=False,
        headers={"user-agent": USER_AGENT},
    )


def coder_http(settings: Settings, url: str, token: Secret) -> httpx.AsyncClient:
    """A client for the Coder server, carrying the agent token header."""
    return httpx.AsyncClient(
        base_url=url,
        timeout=httpx.Timeout(settings.request_timeout),
        follow_redirects=False,
        verify=settings.tls_verify,
        headers={TOKEN_HEADER: token.reveal(), "user-agent": USER_AGENT},
    )
