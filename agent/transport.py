"""The two `httpx.AsyncClient`s the daemon uses, built once from settings.

AgentAPI is on loopback: no proxy from the environment applies to it. Coder is reached the way
the workspace reaches it (proxy and CA variables honoured), with TLS verification on unless
turned off explicitly. Neither client follows redirects: the token must not leave its origin.
"""

from __future__ import annotations

import ssl

import httpx

from agent.config import Environment, Secret, Settings
from agent.errors import ConfigError
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
    """A client for the Coder server, carrying the agent token header.

    Raises ConfigError naming the variable when the environment's proxy or CA settings are
    unusable (see `environment_error`).
    """
    try:
        return httpx.AsyncClient(
            base_url=url,
            timeout=httpx.Timeout(settings.request_timeout),
            follow_redirects=False,
            verify=_tls(url, verify=settings.tls_verify),
            headers={TOKEN_HEADER: token.reveal(), "user-agent": USER_AGENT},
        )
    except (ValueError, ImportError, OSError, httpx.InvalidURL, ssl.SSLError) as exc:
        raise environment_error(exc, Environment()) from None


def environment_error(exc: Exception, environment: Environment) -> ConfigError:
    """What httpx's refusal to build a client from the environment means, naming the variables.

    httpx reads the proxy (`*_PROXY`, `NO_PROXY`) and CA (`SSL_CERT_FILE`, `SSL_CERT_DIR`)
    variables itself and raises as it builds the client: a scheme it has no transport for
    (`socks5h://` without socksio, `ftp://`), a URL it cannot parse, a CA file that does not
    exist. Each killed every command with a traceback; it is a configuration error, so it says
    which variables, never their values (a proxy URL may carry credentials).
    """
    if isinstance(exc, OSError | ssl.SSLError):
        names = [n for n in ("SSL_CERT_FILE", "SSL_CERT_DIR") if environment.is_set(n)]
        problem = "cannot be loaded as CA certificates"
    else:
        names = sorted(environment.proxies())
        problem = "is not a proxy httpx can use (http://, https://, socks5:// with socksio)"
    if not names:
        names = ["the proxy and CA variables"]
    return ConfigError(", ".join(names), f"{problem} ({type(exc).__name__})")


def _tls(url: str, *, verify: bool) -> bool | ssl.SSLContext:
    """What to give httpx's `verify` for `url`.

    For a plain-http URL no TLS happens at all, so there is nothing to verify and no reason to
    load the CA bundle (about 20 ms of the stop hook's start-up each time): a bare context is
    enough. For https the CA bundle is loaded and certificates are checked unless turned off.
    """
    if url.startswith("http://"):
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return verify
