"""The one error tree of the daemon.

Every failure the daemon can meet is one of these, so callers decide by branch and never by
inspecting library exceptions. HTTP answers and transport failures are translated at the client
boundary (`agent.http_async` for httpx, `agent.http_blocking` for http.client, both through
`agent.wire`) and nowhere else; the Coder agent socket's answers and socket errors in
`agent.coder.agentsocket`.

    AgentError
    ├── ConfigError          bad configuration at start; names the variable (or flag)
    │   └── UsageError       a bad command-line argument (the report command's state...)
    ├── BadFile              `hook install`: a file it must edit is not valid JSON/TOML (or not
    │                        the shape the agent reads); names the file, which is left untouched
    └── RemoteError          the other service did not do what was asked
        ├── TryAgain         worth retrying: the same request may succeed later
        │   ├── TransportError    the request did not complete
        │   │   ├── NotSent           it never left: connection refused, DNS, connect timeout
        │   │   │   └── NotListening  no agent socket, or nobody listens on it
        │   │   └── OutcomeUnknown    it was sent, no answer came: timeout, reset, deadline
        │   │       └── CutOff        the caller's deadline ended the attempt
        │   ├── ServerError       5xx (other than AgentAPI's "agent busy" answer)
        │   └── RateLimited       429
        │   (both carry the server's Retry-After, which retries honour)
        ├── Rejected         a 4xx: the request itself is wrong; retrying it cannot help
        │   ├── Unauthorized      401: missing, malformed or unknown token
        │   └── AgentBusy         AgentAPI refused a message while the agent is running
        ├── Unsupported      404 on the log-snapshot route: this server has no Coder Tasks;
        │                    `unknown rpc` on the agent socket: an agent without the method
        ├── UntrustedSocket  the agent socket is another user's, a symlink, or not a socket
        └── BadResponse      an answer that is not what the contract says (garbage, wrong types)

`agent.retry.deliver` retries the TryAgain branch only. "Not sent" and "outcome unknown" differ
for a request that changes state: after a NotSent (or any answer, even a 4xx) the server's state is
what it was; after an OutcomeUnknown (or a 5xx, which the server may send after applying the
change) it is unknown, so the reporter sends its next wanted status even when it equals the last
confirmed one. A plain TransportError counts as unknown: that is the safe side.

No message here ever contains the agent token: errors carry the server's own words (which
never echo the header) and the request's path.
"""

from __future__ import annotations


class AgentError(Exception):
    """Base of every error the daemon raises on purpose."""


class ConfigError(AgentError):
    """A setting is missing or malformed; raised at start, before anything runs."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


class UsageError(ConfigError):
    """A command-line argument is wrong; names the argument."""


class BadFile(AgentError):
    """A file `hook install` must edit cannot be edited safely; names the file."""

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

    retry_after: float | None = None


class TransportError(TryAgain):
    """The request did not complete: refused, reset, timed out."""


class NotSent(TransportError):
    """The request never reached the server (refused, DNS, connect timeout): nothing changed."""


class OutcomeUnknown(TransportError):
    """The request was sent but no full answer came: the server may or may not have applied it."""


class CutOff(OutcomeUnknown):
    """The caller's deadline cut an attempt off (`agent.retry.cut_off`): it may have reached
    the server. Its words name what the attempt before it told, which says more than the cut."""


class ServerError(TryAgain):
    """The server answered 5xx (a 503 may carry Retry-After)."""

    def __init__(
        self,
        service: str,
        what: str,
        detail: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(service, what, detail, status=status)
        self.retry_after = retry_after


class RateLimited(TryAgain):
    """The server answered 429; `retry_after` is its hint in seconds, if any."""

    def __init__(
        self, service: str, what: str, detail: str, retry_after: float | None = None
    ) -> None:
        super().__init__(service, what, detail, status=429)
        self.retry_after = retry_after


class NotListening(NotSent):
    """Nothing listens at the agent socket (absent, or refused): the request was never sent."""


class Rejected(RemoteError):
    """The server refused the request as wrong (a 4xx); retrying it cannot help."""


class Unauthorized(Rejected):
    """401: the token is missing, malformed, unknown or no longer valid."""


class AgentBusy(Rejected):
    """AgentAPI refused a message because the agent is not waiting for input."""


class Unsupported(RemoteError):
    """The server has no such route or method.

    404 on log-snapshot (Coder Tasks disabled or task gone), or `unknown rpc` from an agent
    socket that predates the method.
    """


class UntrustedSocket(RemoteError):
    """The agent socket is not ours to trust (another user's, a symlink...): never used."""


class BadResponse(RemoteError):
    """The answer does not match the contract (malformed JSON, wrong types)."""
