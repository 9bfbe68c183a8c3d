"""An https URL for a plain-http server: every HTTP stack names a TLS failure (issue 21, item 5).

The Coder stand-in is a real plain-HTTP server on a loopback port (bound to port 0); the agent
is given `https://` for it. Whatever asks (the direct `report` through httpx, the one-shot
`snapshot` through http.client, the daemon's httpx client), the error must say that TLS failed
because the server does not speak it, not a bare `ConnectError: [SSL: ...]`. The stand-in
hangs up on the TLS hello (OpenSSL: UNEXPECTED_EOF_WHILE_READING); a server that answers it
with `400 Bad Request` as Python's http.server does (WRONG_VERSION_NUMBER) is named alike.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable

import anyio
import anyio.abc
import pytest

from agent import http_blocking
from agent.config import Environment, Secret, read
from agent.errors import NotSent, TLSRefused
from agent.http_async import coder_http, request
from agent.wire import tls_context
from tests.e2e.conftest import TOKEN, Peers, finish, start_agent
from tests.faults.test_coder_faults import UNTIL_THE_BUDGET_ENDS, ended_by_the_budget

pytestmark = pytest.mark.anyio

NOT_TLS = (
    "TLS failed in the handshake (the server does not speak TLS: an https URL for plain http?)"
)


def https(url: str) -> str:
    assert url.startswith("http://")
    return "https://" + url.removeprefix("http://")


def failures(stderr: str, event: str) -> list[str]:
    """The `error` field of every log line `event`."""
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [str(line.get("error")) for line in lines if line.get("event") == event]


async def test_a_direct_report_names_the_tls_failure(peers: Peers) -> None:
    env = peers.env(
        CODER_AGENT_URL=https(peers.coder_url),
        CODER_TASK_AGENT_STATUS_TRANSPORT="http",
        # A hang-up on the hello is retried until the deadline (twice this): short.
        CODER_TASK_AGENT_REQUEST_TIMEOUT="2",
    )
    code, stderr = await finish(await start_agent(["report", "complete", "Done"], env))
    assert code == 5, stderr  # not delivered
    (error,) = failures(stderr, "report_failed")
    # Its window (two request timeouts) opens before the client is made, and the stand-in must
    # hang up within it: a loaded machine can leave no attempt finished. The same client's
    # naming is proved below in one process, one attempt (the daemon's).
    if not error.endswith(("deadline reached before the attempt", "no answer before the deadline")):
        assert NOT_TLS in error, error
    assert peers.coder.store.statuses() == []


async def test_a_one_shot_snapshot_names_the_tls_failure(peers: Peers) -> None:
    peers.agentapi.put_message("user", "kept for the upload")
    # Retried until the budget ends, as a hang-up may be passing: the short budget.
    env = peers.env(CODER_AGENT_URL=https(peers.coder_url), **UNTIL_THE_BUDGET_ENDS)
    code, stderr = await finish(await start_agent(["snapshot"], env))
    # Not delivered (exit 5), once /messages answered in time: it shares the budget.
    if ended_by_the_budget(code, stderr):
        (error,) = failures(stderr, "snapshot_failed")
        assert error.startswith(f"Coder POST log-snapshot {https(peers.coder_url)}/"), error
        assert NOT_TLS in error
    assert peers.snapshot_requests() == []


async def test_the_daemons_client_names_the_tls_failure(peers: Peers) -> None:
    environment = Environment(peers.env())
    settings = read(environment)
    async with coder_http(settings, https(peers.coder_url), Secret(TOKEN), environment) as http:
        with anyio.fail_after(10), pytest.raises(NotSent) as failed:
            await request(http, "Coder", "GET", "/api/v2/buildinfo", deadline=5.0, max_body=1024)
    assert NOT_TLS in str(failed.value)
    assert TOKEN not in str(failed.value)


async def answer_400(stream: anyio.abc.SocketStream) -> None:
    """A plain-HTTP server's answer to a TLS hello (what Python's http.server sends)."""
    async with stream:
        try:
            await stream.receive()
            await stream.send(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
        except (anyio.BrokenResourceError, anyio.EndOfStream, OSError):
            return


async def through_http_client(url: str) -> None:
    call = functools.partial(
        http_blocking.request,
        url,
        "GET",
        "/messages",
        service="AgentAPI",
        what="GET /messages",
        timeout=5.0,
        max_body=1024,
        error_body=1024,
        tls=tls_context(verify=True, trust_env=False),
    )
    await anyio.to_thread.run_sync(call)


async def through_httpx(url: str) -> None:
    settings = read(Environment({"CODER_AGENT_URL": url, "CODER_AGENT_TOKEN": TOKEN}))
    async with coder_http(settings, url, Secret(TOKEN), Environment({})) as http:
        await request(http, "Coder", "GET", "/api/v2/buildinfo", deadline=5.0, max_body=1024)


@pytest.mark.parametrize("ask", [through_http_client, through_httpx], ids=["http.client", "httpx"])
async def test_a_plain_http_answer_to_the_hello_is_named_in_both_stacks(
    ask: Callable[[str], Awaitable[None]],
) -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    with anyio.fail_after(20):
        async with listener, anyio.create_task_group() as group:
            group.start_soon(listener.serve, answer_400)
            with pytest.raises(TLSRefused) as failed:  # an answer that is not TLS: for good
                await ask(f"https://127.0.0.1:{port}")
            group.cancel_scope.cancel()
    assert NOT_TLS in str(failed.value)
    assert "[SSL: WRONG_VERSION_NUMBER] wrong version number" in str(failed.value)
    assert "_ssl.c" not in str(failed.value)
