"""The one-shot `snapshot` (no daemon) against misbehaving servers: the stop path's blocking shell.

Each ends with the documented exit code and log events, the deadline kept by the process's own
clock, the token in no output (`finish` checks it, and that the blocking shell ran).
"""

from __future__ import annotations

import json
import shutil
import signal
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.abc
import pytest
import trustme

from agent.retry import CALL_BACKOFF
from standins.http import Request, Response, json_response, text_response
from tests.e2e.conftest import TASK_ID, Peers, finish, peers, start_agent
from tests.fakes import TIME, wait_until
from tests.faults.servers import Behaviour, Scripted, answer, once_then_stored, serve_on_loopback
from tests.faults.test_coder_faults import (
    ENDS_ON_ITS_OWN,
    OVERRUN,
    UNTIL_THE_BUDGET_ENDS,
    ended_by_the_budget,
    named,
    snapshot_against,
    stop_path_seconds,
)

pytestmark = pytest.mark.anyio
_ = peers

GOOD = {"id": 1, "role": "user", "content": "keep me", "time": TIME}


async def snapshot_from(
    peers: Peers, agentapi: Behaviour, command: tuple[str, ...] = ("snapshot",), **env: str
) -> tuple[int, str]:
    """The one-shot snapshot (or `command`) with a scripted AgentAPI (the Coder stand-in receives
    the upload). Each ends on its own: an answer, or the fetch timeout a test sets."""
    server = Scripted(agentapi)
    async with anyio.create_task_group() as group:
        port = await group.start(serve_on_loopback, server.handle)
        settings = {
            "CODER_MCP_AI_AGENTAPI_URL": f"http://127.0.0.1:{port}",
            **ENDS_ON_ITS_OWN,
            **env,
        }
        result = await finish(await start_agent(list(command), peers.env(**settings)))
        group.cancel_scope.cancel()
    return result


@pytest.mark.parametrize(
    ("name", "behaviour"),
    [
        ("not JSON", lambda request: _raw(b"<html>oops</html>")),
        ("null", answer(200, None)),
        ("wrong types", answer(200, {"status": 42, "messages": "many"})),
        ("no messages key", answer(200, {"$schema": "x"})),
        ("500", answer(500, {"title": "Internal Server Error", "status": 500})),
        ("Host 400", lambda request: _text_400()),
        ("redirect", None),
    ],
)
async def test_an_answer_that_is_not_a_conversation_is_exit_3(
    peers: Peers, name: str, behaviour: Behaviour | None
) -> None:
    if behaviour is None:
        # To the peers' AgentAPI, which answers a conversation: followed, it would be exit 0.
        behaviour = answer(302, None, [("location", f"{peers.agentapi_url}/messages")])
    code, stderr = await snapshot_from(peers, behaviour)
    assert code == 3, f"{name}: {stderr}"
    assert len(named(stderr, "agentapi_messages_failed")) == 1
    assert len(named(stderr, "snapshot_failed")) == 1
    assert peers.snapshot_requests() == [], "nothing is uploaded in place of the conversation"


async def _raw(body: bytes) -> Response:
    return Response(status=200, body=body, headers=[("content-type", "application/json")])


async def _text_400() -> Response:
    return text_response("Invalid host header", status=400)


async def test_one_malformed_message_costs_only_itself(peers: Peers) -> None:
    history = {
        "$schema": "x",
        "messages": [
            {"id": 0, "role": "agent", "content": "welcome", "time": TIME},
            {"id": "one", "role": "user", "content": "bad id", "time": TIME},
            {"id": 2, "type": "input", "content": "old role name", "time": TIME},
            {"id": 3, "role": "robot", "content": "not uploaded", "time": TIME},
            {"id": 4, "role": "agent", "content": "bad time", "time": "yesterday"},
        ],
    }
    code, stderr = await snapshot_from(peers, answer(200, history))
    assert code == 0, stderr
    body = peers.snapshot()
    assert body is not None
    assert [(m["id"], m["role"]) for m in body["messages"]] == [(0, "agent"), (2, "user")]
    (dropped,) = named(stderr, "agentapi_messages_dropped")
    assert (dropped["dropped"], dropped["malformed"], dropped["other_roles"]) == (3, 2, 1)
    assert "bad id" not in stderr, "message bodies are not logged"


async def test_a_hanging_agentapi_is_cut_off_at_the_fetch_timeout(peers: Peers) -> None:
    async def hang(request: Request) -> Response:
        await anyio.sleep(60)
        return json_response({"messages": [GOOD]})

    code, stderr = await snapshot_from(peers, hang, CODER_TASK_AGENT_STOP_FETCH_TIMEOUT="0.5")
    assert code == 3, stderr
    (timeout,) = named(stderr, "agentapi_messages_timeout")
    assert timeout["timeout_s"] == 0.5
    elapsed, _ = stop_path_seconds(stderr)
    assert elapsed <= 0.5 + OVERRUN


async def test_a_trickling_agentapi_is_cut_off_at_the_fetch_timeout(peers: Peers) -> None:
    async def trickle(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            yield b'{"messages": ['
            while True:  # a byte at a time: a per-read timeout would never fire
                await anyio.sleep(0.05)
                yield b" "

        return Response(headers=[("content-type", "application/json")], stream=body())

    code, stderr = await snapshot_from(peers, trickle, CODER_TASK_AGENT_STOP_FETCH_TIMEOUT="0.5")
    assert code == 3, stderr
    elapsed, _ = stop_path_seconds(stderr)
    assert elapsed <= 0.5 + OVERRUN


async def _trickle(request: Request) -> Response:
    async def body() -> AsyncIterator[bytes]:
        yield b'{"messages": ['
        while True:  # a byte at a time, for ever: only an overall deadline ends it
            await anyio.sleep(0.05)
            yield b" "

    return Response(headers=[("content-type", "application/json")], stream=body())


async def _huge(request: Request) -> Response:
    async def body() -> AsyncIterator[bytes]:
        while True:  # 300 MB announced, sent for as long as anyone reads
            yield b" " * 65536

    return Response(headers=[("content-length", "300000000")], stream=body())


async def _never(request: Request) -> Response:
    await anyio.sleep_forever()
    raise AssertionError  # pragma: no cover


@pytest.mark.parametrize("command", [("snapshot",), ("stop-hook", "--strict")])
@pytest.mark.parametrize(
    ("behaviour", "line"),
    [
        (_trickle, "agentapi_messages_timeout"),
        # Refused by its announced length at once: a fetch timeout the load cannot reach.
        (_huge, "agentapi_messages_failed"),
        (_never, "agentapi_messages_timeout"),
    ],
    ids=["trickle", "300 MB", "never answers"],
)
async def test_a_hostile_agentapi_is_bounded_for_both_commands(
    peers: Peers, command: tuple[str, ...], behaviour: Behaviour, line: str
) -> None:
    # One blocking shell reads /messages for both commands: under one deadline (the fetch
    # timeout) and through the 128 MiB cap (a larger answer is refused, not read). Unbounded,
    # either command would hang here (the test's own bound) or read 300 MB.
    timeout = "0.5" if line == "agentapi_messages_timeout" else "60"
    code, stderr = await snapshot_from(
        peers, behaviour, command, CODER_TASK_AGENT_STOP_FETCH_TIMEOUT=timeout
    )
    assert code == 3, stderr  # no conversation
    (failed,) = named(stderr, line)
    if line == "agentapi_messages_timeout":
        assert failed["timeout_s"] == 0.5
    else:
        assert "exceeds 134217728 bytes" in str(failed["error"])
    assert peers.snapshot_requests() == []


async def test_a_chunked_history_is_read_whole(peers: Peers) -> None:
    messages = [{"id": i, "role": "agent", "content": f"line {i}", "time": TIME} for i in range(5)]
    text = json.dumps({"messages": messages}).encode()

    async def chunked(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            for at in range(0, len(text), 7):
                yield text[at : at + 7]

        return Response(headers=[("content-type", "application/json")], stream=body())

    code, stderr = await snapshot_from(peers, chunked)
    assert code == 0, stderr
    body = peers.snapshot()
    assert body is not None
    assert [m["content"] for m in body["messages"]] == [f"line {i}" for i in range(5)]


@pytest.mark.parametrize(("count", "size"), [(10, 1_000_000), (1, 5_000_000)])
async def test_a_multi_megabyte_history_keeps_the_newest_tail(
    peers: Peers, count: int, size: int
) -> None:
    for i in range(count):
        # 14 UTF-8 bytes a repeat: terminal text, box drawing and shades.
        peers.agentapi.put_message("agent", f"start {i} " + "│ ░▒▓ " * (size // 14) + f" end {i}")
    # The Python stand-in serialises megabytes far slower than AgentAPI (Go) on a loaded machine.
    env = peers.env(CODER_TASK_AGENT_STOP_FETCH_TIMEOUT="30", CODER_TASK_AGENT_SHUTDOWN_BUDGET="40")
    code, stderr = await finish(await start_agent(["snapshot"], env), within=60)
    assert code == 0, stderr
    stored = peers.coder.store.snapshot(TASK_ID)
    assert stored is not None
    assert len(stored[0]) <= 65536
    body = json.loads(stored[0])
    assert body["messages"][-1]["content"].endswith(f" end {count - 1}")
    (uploaded,) = named(stderr, "snapshot_uploaded")
    assert int(str(uploaded["truncated"])) >= 1


async def _trickling_coder(request: Request) -> Response:
    async def body() -> AsyncIterator[bytes]:
        while True:  # a byte at a time: a per-read timeout would never fire
            await anyio.sleep(0.05)
            yield b" "

    return Response(status=200, stream=body())


async def test_a_trickling_coder_is_cut_off_at_the_request_timeout_and_retried(
    peers: Peers,
) -> None:
    server = Scripted(once_then_stored(_trickling_coder))
    async with anyio.create_task_group() as group:
        port = await group.start(serve_on_loopback, server.handle)
        code, stderr = await snapshot_against(
            peers, f"http://127.0.0.1:{port}", CODER_TASK_AGENT_REQUEST_TIMEOUT="1"
        )
        group.cancel_scope.cancel()
    assert code == 0, stderr
    retries = named(stderr, "snapshot_retry")
    assert "no full answer within 1 s" in str(retries[0]["error"]), "cut off at 1 s, retried"
    assert len(server.requests) >= 2


async def test_a_trickling_coder_is_cut_off_at_the_budget(peers: Peers) -> None:
    server = Scripted(_trickling_coder)
    async with anyio.create_task_group() as group:
        port = await group.start(serve_on_loopback, server.handle)
        # The request timeout (60 s) would not cut it: only the budget does.
        code, stderr = await snapshot_against(
            peers, f"http://127.0.0.1:{port}", **UNTIL_THE_BUDGET_ENDS
        )
        if ended_by_the_budget(code, stderr):
            (failed,) = named(stderr, "snapshot_failed")
            assert "no answer before the deadline" in str(failed["error"]), failed
            await wait_until(lambda: len(server.requests) >= 1, within=20)
        group.cancel_scope.cancel()


async def test_a_retry_after_past_the_deadline_is_not_waited_for(peers: Peers) -> None:
    server = Scripted(answer(503, {"message": "later"}, [("retry-after", "60")]))
    async with anyio.create_task_group() as group:
        port = await group.start(serve_on_loopback, server.handle)
        # Retry-After is honoured up to the cap: with a budget of the cap, the wait ends past the
        # deadline however fast the first attempt was, and the process ends on its own.
        code, stderr = await snapshot_against(
            peers,
            f"http://127.0.0.1:{port}",
            CODER_TASK_AGENT_SHUTDOWN_BUDGET=str(CALL_BACKOFF.cap),
        )
        group.cancel_scope.cancel()
    # The fetch shares the budget: on a loaded machine it may leave no time for the attempt.
    if ended_by_the_budget(code, stderr):
        assert len(server.requests) == 1, "a wait past the deadline is not taken"
        elapsed, budget = stop_path_seconds(stderr)
        assert elapsed < budget, "the last error is raised at once, not at the deadline"
        (failed,) = named(stderr, "snapshot_failed")
        assert "503" in str(failed["error"])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_during_the_upload_stops_at_once(
    peers: Peers, signum: signal.Signals
) -> None:
    arrived = anyio.Event()

    async def hang(request: Request) -> Response:
        arrived.set()
        await anyio.sleep(60)
        return Response(status=204)

    server = Scripted(hang)
    async with anyio.create_task_group() as group:
        port = await group.start(serve_on_loopback, server.handle)
        env = peers.env(
            CODER_AGENT_URL=f"http://127.0.0.1:{port}", CODER_TASK_AGENT_SHUTDOWN_BUDGET="30"
        )
        process = await start_agent(["snapshot"], env)
        with anyio.fail_after(30):
            await arrived.wait()
        process.send_signal(signum)
        code, stderr = await finish(process)
        group.cancel_scope.cancel()
    assert code == 6, stderr
    (interrupted,) = named(stderr, "snapshot_interrupted")
    assert interrupted["signal"] == signum.name
    assert named(stderr, "snapshot_failed") == []
    assert named(stderr, "snapshot_uploaded") == []
    elapsed, budget = stop_path_seconds(stderr)
    assert elapsed < budget / 2, "it stopped on the signal, not at the deadline"


async def test_a_proxy_variable_carries_the_upload_not_the_read(peers: Peers) -> None:
    # A proxy that answers 401 for what it is asked to carry: the upload goes to it (httpx,
    # which honours the variable, carries it) and never reaches Coder; AgentAPI, on loopback,
    # is read directly. The 401 ends the process on its own, whatever the load.
    asked: list[bytes] = []

    async def proxy(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            asked.append(await stream.receive(65536))
            await stream.send(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    env = peers.env(HTTP_PROXY=f"http://127.0.0.1:{port}", **ENDS_ON_ITS_OWN)
    peers.agentapi.put_message("user", "through the proxy")
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, proxy)
        code, stderr = await finish(await start_agent(["snapshot"], env))
        group.cancel_scope.cancel()
    assert code == 4, stderr  # the proxy's refusal, not "no conversation": the read worked
    assert peers.snapshot_requests() == []
    assert named(stderr, "agentapi_messages_failed") == []
    (request,) = asked
    # A proxy is asked for the whole URL, Coder's.
    assert request.startswith(f"POST {peers.coder_url}/api/".encode()), request[:200]


# -- TLS: a real HTTPS server on loopback with a certificate from a CA made here -----------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def snapshot_over_tls(
    peers: Peers, ca: trustme.CA, tmp_path: Path, **env: str
) -> tuple[int, str, Scripted]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = Scripted(_stored)
    async with anyio.create_task_group() as group:
        port = await group.start(lambda task_status: _serve_tls(server, context, task_status))
        code, stderr = await snapshot_against(peers, f"https://127.0.0.1:{port}", **env)
        group.cancel_scope.cancel()
    return code, stderr, server


async def _stored(request: Request) -> Response:
    return Response(status=204)


async def _serve_tls(
    server: Scripted, context: ssl.SSLContext, task_status: anyio.abc.TaskStatus[int]
) -> None:
    await serve_on_loopback(server.handle, tls=context, task_status=task_status)


async def test_an_unknown_certificate_is_refused_by_default(
    peers: Peers, ca: trustme.CA, tmp_path: Path
) -> None:
    # The refusal ends the stop path at once, one attempt, since no retry within the budget
    # could fix the certificate (snapshot_against: a budget no load exhausts, debug lines).
    code, stderr, server = await snapshot_over_tls(peers, ca, tmp_path)
    assert code == 5, stderr
    assert server.requests == [], "nothing was sent to a server that could not be verified"
    (failed,) = named(stderr, "snapshot_failed")
    assert "CERTIFICATE_VERIFY_FAILED" in str(failed["error"])
    assert str(failed["reason"]).startswith("refused in the TLS handshake"), failed
    assert failed["retries"] == 0
    assert named(stderr, "snapshot_retry") == []


async def test_ssl_cert_file_is_trusted(peers: Peers, ca: trustme.CA, tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    code, stderr, server = await snapshot_over_tls(peers, ca, tmp_path, SSL_CERT_FILE=str(bundle))
    assert code == 0, stderr
    assert len(server.requests) == 1
    assert named(stderr, "snapshot_uploaded")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl hashes the CA directory")
async def test_ssl_cert_dir_is_trusted(peers: Peers, ca: trustme.CA, tmp_path: Path) -> None:
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    hashed = await anyio.run_process(["openssl", "x509", "-hash", "-noout", "-in", str(pem)])
    directory = tmp_path / "certs"
    directory.mkdir()
    (directory / f"{hashed.stdout.decode().strip()}.0").write_bytes(pem.read_bytes())
    code, stderr, server = await snapshot_over_tls(peers, ca, tmp_path, SSL_CERT_DIR=str(directory))
    assert code == 0, stderr
    assert len(server.requests) == 1


async def test_tls_verification_off_accepts_it_with_a_warning(
    peers: Peers, ca: trustme.CA, tmp_path: Path
) -> None:
    code, stderr, server = await snapshot_over_tls(
        peers, ca, tmp_path, CODER_TASK_AGENT_TLS_VERIFY="false"
    )
    assert code == 0, stderr
    assert len(server.requests) == 1
    (warning,) = named(stderr, "configuration_warning")
    assert "TLS_VERIFY is off" in str(warning["problem"])


async def test_a_ca_file_that_cannot_be_loaded_is_a_configuration_error(
    peers: Peers, tmp_path: Path, refused_url: str
) -> None:
    missing = str(tmp_path / "no-such-ca.pem")
    https = "https" + refused_url.removeprefix("http")
    env = peers.env(CODER_AGENT_URL=https, SSL_CERT_FILE=missing)
    code, stderr = await finish(await start_agent(["snapshot"], env))
    assert code == 2, stderr
    assert "configuration error: SSL_CERT_FILE" in stderr
    assert "Traceback" not in stderr
