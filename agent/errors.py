"""The one error tree: callers decide by branch, never by a library's exception.

Library exceptions are translated at the client boundary only (`agent.wire` for both HTTP
clients, `agent.coder.agentsocket` for the agent socket). No message here holds the token:
errors carry the server's own words (which never echo the header) and the request's path.
Only TryAgain is retried (agent.retry).

NotSent versus OutcomeUnknown matters for a request that changes state: after a NotSent (or any
answer, even a 4xx) the server's state is what it was; after an OutcomeUnknown (or a 5xx, which
the server may send after applying the change) it is unknown, so the reporter sends its next
wanted status even when it equals the last confirmed one. A plain TransportError counts as
unknown: the safe side.
"""

from __future__ import annotations


class Interrupted(KeyboardInterrupt):
    """A stop signal ended a short command: `signal` names it (SIGINT, SIGTERM, SIGHUP).

    Raised by the handlers agent.boundary installs. Not an AgentError: a BaseException, as Ctrl-C
    is, so nothing that contains an Exception swallows it, and whatever takes Ctrl-C as the end
    of the work takes a stop script's `timeout` (SIGTERM) or a closing terminal (SIGHUP) alike.
    """

    def __init__(self, signal: str) -> None:
        super().__init__(signal)
        self.signal = signal


class AgentError(Exception):
    """Base of every error the daemon raises on purpose."""


class ConfigError(AgentError):
    """A setting is missing or malformed; raised at start, naming the variable (or flag)."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


class UsageError(ConfigError):
    """A command-line argument is wrong; names the argument."""


class BadFile(AgentError):
    """`hook install`: a file it must edit is not valid JSON/TOML or not the shape the agent
    reads; names the file, which is left untouched."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}; left untouched")
        self.path = path
        self.problem = problem


class RemoteError(AgentError):
    """A call to AgentAPI or Coder failed; `service` says which, `what` names the call."""

    def __init__(self, service: str, what: str, detail: str, status: int | None = None) -> None:
        where = f"{service} {what}"
        if status is not None:
            where += f" answered {status}"
        super().__init__(f"{where}: {detail}" if detail else where)
        self.service = service
        self.what = what
        self.detail = detail
        self.status = status


class TryAgain(RemoteError):
    """The same request may succeed later; `retry_after` is the server's hint in seconds."""

    def __init__(
        self,
        service: str,
        what: str,
        detail: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(service, what, detail, status)
        self.retry_after = retry_after


class TransportError(TryAgain):
    """The request did not complete."""


class NotSent(TransportError):
    """The request never left (refused, DNS, connect timeout): nothing changed."""


class TLSRefused(NotSent):
    """The TLS handshake failed in a way only a change elsewhere fixes: the server's certificate
    is not trusted, or what answered does not speak TLS. Within one call's deadline it is not
    retried (agent.retry); the daemon's reporter retries it, since a renewed certificate can."""


class OutcomeUnknown(TransportError):
    """Sent, but no full answer came (timeout, reset): the server may have applied it."""


class CutOff(OutcomeUnknown):
    """The caller's deadline cut an attempt off (`agent.retry.cut_off`); its words name what
    the attempt before it told, which says more than the cut."""


class ServerError(TryAgain):
    """5xx (a 503 may carry Retry-After)."""


class RateLimited(TryAgain):
    """429."""

    def __init__(
        self, service: str, what: str, detail: str, retry_after: float | None = None
    ) -> None:
        super().__init__(service, what, detail, 429, retry_after)


class NotListening(NotSent):
    """No agent socket, or nobody listens on it."""


class Rejected(RemoteError):
    """A 4xx: the request itself is wrong; retrying it cannot help."""


class Unauthorized(Rejected):
    """401: the token is missing, malformed, unknown or no longer valid."""


class Unsupported(RemoteError):
    """404 on log-snapshot (no Coder Tasks, or the task is gone), or `unknown rpc` from an
    agent socket that predates the method."""


class UntrustedSocket(RemoteError):
    """The agent socket is another user's, a symlink, or not a socket: never used."""


class BadResponse(RemoteError):
    """An answer that is not what the contract says (malformed JSON, wrong types)."""
