"""The two `httpx.AsyncClient`s the daemon uses, built once from settings.

AgentAPI is on loopback: no proxy from the environment applies to it. Coder is reached the way
the workspace reaches it (proxy and CA variables honoured), with TLS verification on unless
turned off explicitly. Neither client follows redirects: the token must not leave its origin.
"""

from __future__ import annotations

import ssl

import httpx

from agent.config import Secret, Settings
from agent.plainhttp import TOKEN_HEADER, USER_AGENT

__all__ = ["USER_AGENT", "agentapi_http", "coder_http"]


def agentapi_http(settings: Settings) -> httpx.AsyncClient:
    """A client for the local AgentAPI."""
    return httpx.AsyncClient(
        base_url=settings.agentapi_url,
        timeout=httpx.Timeout(settings.agentapi_timeout),
        follow_redirects=False,
        trust_env=False,
        verify=_tls(settings.agentapi_url, verify=True),
        headers={"user-agent": USER_AGENT},
    )


def coder_http(settings: Settings, url: str, token: Secret) -> httpx.AsyncClient:
    """A client for the Coder server, carrying the agent token header."""
    return httpx.AsyncClient(
        base_url=url,
        timeout=httpx.Timeout(settings.request_timeout),
        follow_redirects=False,
        verify=_tls(url, verify=settings.tls_verify),
        headers={TOKEN_HEADER: token.reveal(), "user-agent": USER_AGENT},
    )


def _tls(url: str, *, verify: bool) -> bool | ssl.SSLContext:
    """What to give httpx's `verify` for `url`.

    For a plain-http URL no TLS happens at all, so there is nothing to verify and no reason to
    load the CA bundle (about 20 ms of the stop hook's start-up each time): a bare context is
    enough. For https the CA bundle is loaded and certificates are checked unless turned off.
    """
    if url.startswith("http://"):
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return verify
