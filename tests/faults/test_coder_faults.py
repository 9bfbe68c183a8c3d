"""Coder misbehaving during the stop snapshot and during status reports (real subprocesses)."""

from __future__ import annotations

import json

import anyio
import pytest

from standins.http import Request, Response
from tests.e2e.conftest import TOKEN, Peers, finish, peers, start_agent, terminate
from tests.fakes import wait_until
from tests.faults.servers import (
    Behaviour,
    Scripted,
    answer,
    once_then_stored,
    reset_server,
    serve_on_loopback,
)

pytestmark = pytest.mark.anyio
_ = peers  # the fixture, shared with the end-to-end tests
# The short budget of a test whose outcome needs it to run out (tests/faults/__init__.py).
BUDGET = 2.0
# What a test whose process ends on its own gives it: no loaded machine exhausts these.
ENDS_ON_ITS_OWN = {
    "CODER_TASK_AGENT_SHUTDOWN_BUDGET": "60",
    "CODER_TASK_AGENT_REQUEST_TIMEOUT": "60",
    "CODER_TASK_AGENT_STOP_FETCH_TIMEOUT": "60",
}
# Until the budget ends: the short budget. The one-shot's fetch of /messages shares it and, on
# a loaded machine, may use all of it (ended_by_the_budget).
UNTIL_THE_BUDGET_ENDS = {
    "CODER_TASK_AGENT_SHUTDOWN_BUDGET": str(BUDGET),
    "CODER_TASK_AGENT_STOP_FETCH_TIMEOUT": "60",
}
# Past its deadline the stop path only cancels and logs; on a loaded 2-core machine a
# scheduling delay can still add a little. Measured on the process's own monotonic clock.
OVERRUN = 1.0


def events(stderr: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert all(TOKEN not in json.dumps(line) for line in lines)
    return lines


def named(stderr: str, event: str) -> list[dict[str, object]]:
    return [line for line in events(stderr) if line["event"] == event]


def stop_path_seconds(stderr: str, start: str = "snapshot_started") -> tuple[float, float]:
    """How long the stop path took by the process's own monotonic clock, and its budget.

    From the `start` line to the process's last log line; the budget is the one
    `snapshot_started` logged. Timing from outside would also count interpreter start-up and
    the machine's load; the process's own timestamps hold on a busy machine.
    """
    lines = events(stderr)
    first = next(line for line in lines if line["event"] == start)
    budget = next(line for line in lines if line["event"] == "snapshot_started")["budget_s"]
    assert isinstance(budget, float | int)
    elapsed = float(str(lines[-1]["mono"])) - float(str(first["mono"]))
    return elapsed, float(budget)


def assert_within_budget(stderr: str, start: str = "snapshot_started") -> None:
    elapsed, budget = stop_path_seconds(stderr, start)
    assert elapsed <= budget + OVERRUN, f"the stop path took {elapsed:.2f} s of {budget} s"


def ended_by_the_budget(code: int, stderr: str) -> bool:
    """Check how a one-shot `snapshot` under UNTIL_THE_BUDGET_ENDS ended; True when the
    process's own log says an upload was attempted.

    Its fetch of /messages comes first, within the same budget, from a server the machine's
    load may keep from answering in time. Then the one correct ending is the fetch's: no
    conversation (exit 3), nothing attempted; or the fetch answers with no time left and the
    upload ends before its first attempt. Either way one line ends it, within the budget.
    What an upload does against the fault until the budget ends is proved where nothing shares
    the budget (test_the_daemons_stop_path_retries_until_the_budget_ends: its mirror needs no
    fetch), and that each fault is retried by the ENDS_ON_ITS_OWN tests.
    """
    assert_within_budget(stderr)
    assert named(stderr, "snapshot_skipped") == []
    assert named(stderr, "snapshot_uploaded") == []
    (failed,) = named(stderr, "snapshot_failed")  # one line, not one per retry
    if named(stderr, "agentapi_messages_timeout"):
        assert code == 3, stderr
        assert str(failed["reason"]).startswith("AgentAPI did not answer"), failed
        return False
    assert named(stderr, "agentapi_messages_failed") == [], stderr  # it answered
    assert code == 5, stderr
    assert failed["reason"] == "not delivered before the deadline"
    return "deadline reached before the attempt" not in str(failed["error"])


async def snapshot_against(peers: Peers, coder_url: str, **env: str) -> tuple[int, str]:
    """The one-shot snapshot uploading to `coder_url`, at debug level (`snapshot_retry` is the
    process's own record of each retry). ENDS_ON_ITS_OWN unless `env` says otherwise: a test
    whose outcome needs the budget to run out passes UNTIL_THE_BUDGET_ENDS."""
    settings = {
        "CODER_AGENT_URL": coder_url,
        "CODER_TASK_AGENT_LOG_LEVEL": "debug",
        **ENDS_ON_ITS_OWN,
        **env,
    }
    process = await start_agent(["snapshot"], peers.env(**settings))
    return await finish(process)


@pytest.mark.parametrize(
    ("name", "behaviour", "expected_code"),
    [
        ("401", answer(401, {"message": "Invalid token"}), 4),
        (
            "400",
            answer(
                400,
                {
                    "message": "Failed to decode request payload.",
                    "validations": [{"field": "messages", "detail": "required"}],
                },
            ),
            4,
        ),
        ("404", answer(404, {"message": "Resource not found"}), 0),
    ],
)
async def test_an_answer_no_retry_can_change_ends_the_stop_path_at_once(
    peers: Peers, name: str, behaviour: Behaviour, expected_code: int
) -> None:
    server = Scripted(behaviour)
    async with anyio.create_task_group() as group:
        port = await group.start(serve_on_loopback, server.handle)
        code, stderr = await snapshot_against(peers, f"http://127.0.0.1:{port}")
        group.cancel_scope.cancel()
    assert code == expected_code, stderr
    assert len(server.requests) == 1, f"{name} must not be retried"
    assert named(stderr, "snapshot_retry") == []
    outcome = named(stderr, "snapshot_failed") + named(stderr, "snapshot_skipped")
    assert len(outcome) == 1, "one clear line per problem"


# Each with what the process's `snapshot_retry` line names of the first attempt.
WORTH_RETRYING = [
    ("500", answer(500, {"message": "Internal error"}), "500"),
    ("503", answer(503, {"message": "Unavailable"}), "503"),
    ("429", answer(429, {"message": "rate limited"}), "429"),
    ("30 s late", answer(204, delay=30), "no full answer within 1 s"),
]


@pytest.mark.parametrize(("name", "behaviour", "said"), WORTH_RETRYING)
async def test_what_is_worth_retrying_is_retried_and_then_uploaded(
    peers: Peers, name: str, behaviour: Behaviour, said: str
) -> None:
    # A count of attempts within a short budget would measure the load, not the decision.
    server = Scripted(once_then_stored(behaviour))
    async with anyio.create_task_group() as group:
        port = await group.start(serve_on_loopback, server.handle)
        # A late answer is given up at the request timeout (1 s), not at the budget's end.
        timeout = "1" if name == "30 s late" else "60"
        code, stderr = await snapshot_against(
            peers, f"http://127.0.0.1:{port}", CODER_TASK_AGENT_REQUEST_TIMEOUT=timeout
        )
        group.cancel_scope.cancel()
    assert code == 0, stderr
    retries = named(stderr, "snapshot_retry")
    assert retries, f"{name} is worth retrying"
    assert said in str(retries[0]["error"]), retries[0]
    assert len(server.requests) >= 2
    (uploaded,) = named(stderr, "snapshot_uploaded")
    assert uploaded["retries"] == len(retries)


@pytest.mark.parametrize(("name", "behaviour", "said"), WORTH_RETRYING)
async def test_what_is_worth_retrying_ends_with_the_budget(
    peers: Peers, name: str, behaviour: Behaviour, said: str
) -> None:
    server = Scripted(behaviour)
    async with anyio.create_task_group() as group:
        port = await group.start(serve_on_loopback, server.handle)
        code, stderr = await snapshot_against(
            peers, f"http://127.0.0.1:{port}", **UNTIL_THE_BUDGET_ENDS
        )
        # Not how many attempts fit in the budget: that is the machine's load.
        if ended_by_the_budget(code, stderr):
            # Attempted, so sent: the server reads it even if the process has gone.
            await wait_until(lambda: len(server.requests) >= 1, within=20)
        group.cancel_scope.cancel()


@pytest.mark.parametrize(("name", "behaviour", "said"), WORTH_RETRYING)
async def test_the_daemons_stop_path_retries_until_the_budget_ends(
    peers: Peers, name: str, behaviour: Behaviour, said: str
) -> None:
    # The daemon's stop path takes its mirror's snapshot (its stream is current): nothing
    # comes before the upload within the budget, which starts at the signal. So the upload is
    # attempted at least once whatever the load, unlike the one-shot's (ended_by_the_budget).
    peers.agentapi.put_message("user", "kept in the mirror")
    patches: list[dict[str, object]] = []

    async def coder(request: Request) -> Response:
        if request.method == "PATCH":
            patches.append(json.loads(request.body))
            return await answer(200, None)(request)
        return await behaviour(request)

    server = Scripted(coder)
    async with anyio.create_task_group() as group:
        port = await group.start(serve_on_loopback, server.handle)
        env = {"CODER_AGENT_URL": f"http://127.0.0.1:{port}", **UNTIL_THE_BUDGET_ENDS}
        process = await start_agent(["run"], peers.env(**env))
        # Reported from the stream: its replay, the message included, is in the mirror.
        await wait_until(lambda: any(p["state"] == "idle" for p in patches), within=20)
        terminate(process)
        code, stderr = await finish(process)
        assert named(stderr, "agentapi_messages_fetched") == [], "the mirror, not a fetch"
        assert named(stderr, "agentapi_messages_timeout") == []
        # Attempted at least once (the server may read it after the process has gone).
        await wait_until(
            lambda: any(r.path.endswith("/log-snapshot") for r in server.requests), within=20
        )
        group.cancel_scope.cancel()
    assert code == 5, stderr
    assert_within_budget(stderr, start="stop_requested")
    assert named(stderr, "snapshot_skipped") == []
    (failed,) = named(stderr, "snapshot_failed")  # one line, not one per retry
    assert failed["reason"] == "not delivered before the deadline"


async def test_retry_after_is_honoured(peers: Peers) -> None:
    times: list[float] = []

    async def behaviour(request: Request) -> Response:
        times.append(anyio.current_time())
        if len(times) == 1:
            return await answer(503, {"message": "later"}, [("retry-after", "2")])(request)
        return Response(status=204)

    server = Scripted(behaviour)
    async with anyio.create_task_group() as group:
        port = await group.start(serve_on_loopback, server.handle)
        code, stderr = await snapshot_against(peers, f"http://127.0.0.1:{port}")
        group.cancel_scope.cancel()
    assert code == 0, stderr
    assert len(times) == 2
    # The policy alone would retry within 0.2 s; load can shift when each request is read,
    # not shrink a 2 s wait to under 1.5 s.
    assert times[1] - times[0] >= 1.5


async def test_connection_refused(peers: Peers, refused_url: str) -> None:
    code, stderr = await snapshot_against(peers, refused_url, **UNTIL_THE_BUDGET_ENDS)
    if ended_by_the_budget(code, stderr):
        (failed,) = named(stderr, "snapshot_failed")
        # The refusal, or an attempt the deadline cut off naming the refusal before it.
        assert "refused" in str(failed["error"]) or "before the deadline" in str(failed["error"])


async def test_reset_mid_response_is_retried_until_the_budget_ends(peers: Peers) -> None:
    hits: list[int] = []
    async with anyio.create_task_group() as group:
        port = await group.start(
            lambda task_status: reset_server(task_status=task_status, hits=hits)
        )
        code, stderr = await snapshot_against(
            peers, f"http://127.0.0.1:{port}", **UNTIL_THE_BUDGET_ENDS
        )
        if ended_by_the_budget(code, stderr):
            await wait_until(lambda: len(hits) >= 1, within=20)
        group.cancel_scope.cancel()


async def test_reset_mid_response_is_retried_and_then_uploaded(peers: Peers) -> None:
    hits: list[int] = []
    stored = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
    async with anyio.create_task_group() as group:
        port = await group.start(
            lambda task_status: reset_server(task_status=task_status, hits=hits, then=stored)
        )
        code, stderr = await snapshot_against(peers, f"http://127.0.0.1:{port}")
        group.cancel_scope.cancel()
    assert code == 0, stderr
    assert len(hits) == 2, "a reset is worth retrying"
    assert len(named(stderr, "snapshot_retry")) == 1
    (uploaded,) = named(stderr, "snapshot_uploaded")
    assert uploaded["retries"] == 1


async def test_redirect_to_another_origin_is_not_followed(peers: Peers) -> None:
    elsewhere = Scripted(answer(204))
    async with anyio.create_task_group() as group:
        other = await group.start(serve_on_loopback, elsewhere.handle)
        redirect = Scripted(answer(307, None, [("location", f"http://127.0.0.2:{other}/steal")]))
        port = await group.start(serve_on_loopback, redirect.handle)
        code, stderr = await snapshot_against(peers, f"http://127.0.0.1:{port}")
        group.cancel_scope.cancel()
    assert code == 4, stderr
    assert len(redirect.requests) == 1
    assert elsewhere.requests == [], "the token never travels to another origin"
    assert "redirect not followed" in stderr


async def test_status_reports_survive_an_outage_and_deliver_the_latest(peers: Peers) -> None:
    outage = anyio.Event()
    patches: list[dict[str, object]] = []
    accepted: list[dict[str, object]] = []

    async def behaviour(request: Request) -> Response:
        if request.method == "PATCH":
            patch = json.loads(request.body)
            patches.append(patch)
            if not outage.is_set():
                return await answer(503, {"message": "down"})(request)
            accepted.append(patch)
            return await answer(200, None)(request)
        return Response(status=204)

    server = Scripted(behaviour)
    async with anyio.create_task_group() as group:
        port = await group.start(serve_on_loopback, server.handle)
        process = await start_agent(["run"], peers.env(CODER_AGENT_URL=f"http://127.0.0.1:{port}"))
        await wait_until(lambda: len(patches) >= 3, within=20)
        peers.agentapi.put_message("user", "new work during the outage")
        peers.agentapi.set_status("running")
        await wait_until(lambda: any(p["state"] == "working" for p in patches), within=20)
        peers.agentapi.set_status("stable")
        await wait_until(lambda: patches[-1]["state"] == "idle", within=20)
        outage.set()
        await wait_until(lambda: bool(accepted), within=40)
        assert accepted == [patches[-1]]
        assert accepted[0]["state"] == "idle", "the latest state, not a stale one"
        delivered = len(patches)
        terminate(process)
        code, stderr = await finish(process)
        group.cancel_scope.cancel()
    assert code == 0, stderr
    assert len(patches) == delivered, "nothing more once the latest is delivered"
    failures = named(stderr, "status_delivery_failed")
    tried = [(p["state"], p["message"]) for p in patches[:-1]]
    streaks = sum(1 for i, p in enumerate(tried) if i == 0 or tried[i - 1] != p)
    assert 1 <= len(failures) <= streaks < len(tried), "one line per streak, not per retry"


async def test_status_rejection_is_not_retried(peers: Peers) -> None:
    patches: list[dict[str, object]] = []

    async def behaviour(request: Request) -> Response:
        if request.method == "PATCH":
            patches.append(json.loads(request.body))
            return await answer(
                400,
                {
                    "message": "Failed to find workspace app.",
                    "detail": 'No app found with slug "agent"',
                },
            )(request)
        return Response(status=204)

    server = Scripted(behaviour)
    async with anyio.create_task_group() as group:
        port = await group.start(serve_on_loopback, server.handle)
        process = await start_agent(["run"], peers.env(CODER_AGENT_URL=f"http://127.0.0.1:{port}"))
        await wait_until(lambda: len(patches) == 1, within=20)
        terminate(process)
        code, stderr = await finish(process)
        group.cancel_scope.cancel()
    assert code == 0
    assert len(patches) == 1, "a rejection is not retried, not even at stop"
    rejected = named(stderr, "status_rejected")
    assert len(rejected) == 1
    assert 'No app found with slug \\"agent\\"' in json.dumps(rejected[0])
