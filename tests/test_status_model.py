"""Model-based test of the rules and the reporter under random observations and failures.

Whatever happens, the sequence the server receives never holds two identical reports in a row,
and once delivery settles it ends with what the rules want for the last observation.
"""

from __future__ import annotations

import itertools
import random

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.errors import ServerError
from agent.models import AppState, AppStatus
from agent.reporter import Reporter
from agent.retry import Backoff
from agent.status import (
    ExplicitReport,
    Observation,
    RulesState,
    StatusSeen,
    Tick,
    UserMessageSeen,
    step,
)

DEBOUNCE = 3.0

observation_kinds = st.one_of(
    st.tuples(st.just("status"), st.sampled_from(["running", "stable"])),
    st.tuples(st.just("user"), st.integers(min_value=0, max_value=30)),
    st.tuples(st.just("explicit"), st.sampled_from(list(AppState))),
    st.tuples(st.just("hook"), st.sampled_from([AppState.WORKING, AppState.IDLE])),
    st.tuples(st.just("tick"), st.none()),
)
plans = st.lists(st.tuples(observation_kinds, st.floats(min_value=0.0, max_value=5.0)), max_size=60)


def observations(plan: list[tuple[tuple[str, object], float]]) -> list[Observation]:
    out: list[Observation] = []
    now = 0.0
    for (kind, value), gap in plan:
        now += gap
        if kind == "status":
            out.append(StatusSeen("running" if value == "running" else "stable", now))
        elif kind == "user":
            out.append(UserMessageSeen(int(str(value)), f"prompt {value}", now))
        elif kind == "explicit":
            state = AppState(str(value))
            out.append(ExplicitReport(AppStatus(state, f"{state.value} by report"), now))
        elif kind == "hook":
            state = AppState(str(value))
            status = AppStatus(state, f"{state.value} by hook")
            out.append(ExplicitReport(status, now, from_hook=True))
        else:
            out.append(Tick(now))
    return out


def check(plan: list[tuple[tuple[str, object], float]], failure_rate: float, seed: int) -> None:
    rng = random.Random(seed)
    received: list[AppStatus] = []

    async def send(status: AppStatus) -> None:
        if rng.random() < failure_rate:
            raise ServerError("Coder", "PATCH app-status", "flaky", status=503)
        received.append(status)

    async def scenario() -> RulesState:
        reporter = Reporter(send, Backoff(base=0.0, cap=0.0))
        state = RulesState()
        for observation in observations(plan):
            state = step(state, observation, DEBOUNCE)
            reporter.want(state.wanted)
            if rng.random() < 0.5:  # sometimes several changes pile up before a flush
                with anyio.fail_after(5):
                    await reporter.flush()
        with anyio.fail_after(5):
            await reporter.flush()
        assert reporter.pending is None
        return state

    final = anyio.run(scenario)
    for before, after in itertools.pairwise(received):
        assert before != after, "two identical reports in a row"
    if final.wanted is None:
        assert received == []
    else:
        assert received, "something was observed, so something was delivered"
        assert received[-1] == final.wanted


@given(plans, st.sampled_from([0.0, 0.3, 0.7]), st.integers())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_delivered_sequence_properties(
    plan: list[tuple[tuple[str, object], float]], failure_rate: float, seed: int
) -> None:
    check(plan, failure_rate, seed)


@pytest.mark.slow
@given(plans, st.sampled_from([0.0, 0.3, 0.7]), st.integers())
@settings(max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_delivered_sequence_properties_long_run(
    plan: list[tuple[tuple[str, object], float]], failure_rate: float, seed: int
) -> None:
    check(plan, failure_rate, seed)
