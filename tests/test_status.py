"""The reporting rules, scenario by scenario (rule numbers as in agent.rules)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from agent.models import AppState, AppStatus, first_line
from agent.rules import (
    IDLE_MESSAGE,
    WORKING_MESSAGE,
    ExplicitReport,
    HistorySeen,
    Observation,
    RulesState,
    StatusSeen,
    Tick,
    UserMessageSeen,
    history_of,
    next_deadline,
    step,
)

DEBOUNCE = 3.0


@dataclass(frozen=True)
class Msg:
    id: int
    role: str
    content: str
    time: str = "2025-06-01T10:00:00Z"


WORKING = AppStatus(AppState.WORKING, WORKING_MESSAGE)
IDLE = AppStatus(AppState.IDLE, IDLE_MESSAGE)
COMPLETE = AppStatus(AppState.COMPLETE, "Fixed the bug", "https://git/pr/7")
FAILED = AppStatus(AppState.FAILED, "Tests do not pass")


def linked(status: AppStatus, uri: str = COMPLETE.uri) -> AppStatus:
    """`status` carrying the uri rule 8 keeps."""
    return AppStatus(status.state, status.message, uri)


def run(observations: Sequence[Observation], state: RulesState | None = None) -> list[object]:
    """The wanted status after each observation."""
    current = state or RulesState()
    wanted: list[object] = []
    for observation in observations:
        current = step(current, observation, DEBOUNCE)
        wanted.append(current.wanted)
    return wanted


def changes(observations: Sequence[Observation]) -> list[object]:
    """Only the changes of the wanted status: what would be delivered."""
    out: list[object] = []
    for wanted in run(observations):
        if wanted is not None and (not out or out[-1] != wanted):
            out.append(wanted)
    return out


def prompt(
    user_id: int, text: str = "Fix the login bug\nmore detail", at: float = 0.0
) -> Observation:
    return UserMessageSeen(user_id, text, at)


def test_rule1_first_observation_running_is_working() -> None:
    assert run([StatusSeen("running", 0)]) == [WORKING]


def test_rule1_first_observation_stable_is_idle() -> None:
    assert run([StatusSeen("stable", 0)]) == [IDLE]


def test_rule2_history_is_baseline_and_a_new_prompt_is_working_at_once() -> None:
    observations: list[Observation] = [
        prompt(1, at=0),
        prompt(3, at=0),
        StatusSeen("stable", 0.1),
        prompt(5, "  \n  Add tests for the parser  \n", at=10),
    ]
    assert run(observations) == [
        None,
        None,
        IDLE,
        AppStatus(AppState.WORKING, "Add tests for the parser"),
    ]


def test_rule2_an_old_or_repeated_user_id_is_not_new() -> None:
    observations: list[Observation] = [
        prompt(3),
        StatusSeen("stable", 0),
        prompt(3, at=5),
        prompt(1, at=6),
    ]
    assert changes(observations) == [IDLE]


def test_rule2_prompt_message_is_shortened_to_160_bytes() -> None:
    state = step(RulesState(), StatusSeen("stable", 0), DEBOUNCE)
    state = step(state, prompt(1, "ü" * 500, at=1), DEBOUNCE)
    assert state.wanted is not None
    assert len(state.wanted.message.encode()) <= 160
    assert first_line("", WORKING_MESSAGE) == WORKING_MESSAGE


def test_rule3_typing_blip_sends_nothing() -> None:
    observations: list[Observation] = [
        StatusSeen("stable", 0),
        StatusSeen("running", 10),
        Tick(12.9),
        StatusSeen("stable", 12.95),
        Tick(20),
    ]
    assert changes(observations) == [IDLE]


def test_rule3_running_that_lasts_is_working_after_the_debounce() -> None:
    observations: list[Observation] = [
        StatusSeen("stable", 0),
        StatusSeen("running", 10),
        Tick(12.99),
        Tick(13),
    ]
    assert run(observations) == [IDLE, IDLE, IDLE, WORKING]


def test_rule3_a_later_status_observation_also_brings_the_debounce_due() -> None:
    observations: list[Observation] = [
        StatusSeen("stable", 0),
        StatusSeen("running", 10),
        StatusSeen("running", 14),
    ]
    assert run(observations)[-1] == WORKING


def test_rule4_running_then_stable_is_idle() -> None:
    observations: list[Observation] = [
        StatusSeen("stable", 0),
        prompt(1, at=1),
        StatusSeen("running", 1.2),
        StatusSeen("stable", 30),
    ]
    assert changes(observations) == [
        IDLE,
        AppStatus(AppState.WORKING, "Fix the login bug"),
        IDLE,
    ]


@pytest.mark.parametrize("explicit", [COMPLETE, FAILED])
def test_rule4_explicit_complete_or_failed_is_not_replaced_by_idle(explicit: AppStatus) -> None:
    observations: list[Observation] = [
        StatusSeen("stable", 0),
        prompt(1, at=1),
        StatusSeen("running", 1.5),
        ExplicitReport(explicit, 20),
        StatusSeen("stable", 21),
        StatusSeen("running", 40),  # a blip: shorter than the debounce
        StatusSeen("stable", 41),
        Tick(100),
    ]
    assert run(observations)[-5:] == [explicit] * 5


def test_rule4_complete_holds_until_working_again_by_debounce() -> None:
    observations: list[Observation] = [
        StatusSeen("stable", 0),
        ExplicitReport(COMPLETE, 1),
        StatusSeen("running", 10),
        Tick(13),
        StatusSeen("stable", 20),
    ]
    # The complete's link stays on what follows (rule 8).
    assert run(observations)[-3:] == [COMPLETE, linked(WORKING), linked(IDLE)]


def test_failed_then_a_new_prompt_is_working_then_idle() -> None:
    observations: list[Observation] = [
        StatusSeen("stable", 0),
        ExplicitReport(FAILED, 1),
        prompt(2, "Try again with Python 3.12", at=5),
        StatusSeen("running", 5.3),
        StatusSeen("stable", 50),
    ]
    assert changes(observations) == [
        IDLE,
        FAILED,
        AppStatus(AppState.WORKING, "Try again with Python 3.12"),
        IDLE,
    ]


def test_rule5_explicit_sets_everything_even_before_any_observation() -> None:
    working = AppStatus(AppState.WORKING, "Running the test suite", "https://ci/1")
    assert run([ExplicitReport(working, 0), StatusSeen("stable", 1)]) == [
        working,
        AppStatus(AppState.IDLE, IDLE_MESSAGE, "https://ci/1"),
    ]
    assert run([ExplicitReport(COMPLETE, 0), StatusSeen("stable", 1)]) == [COMPLETE, COMPLETE]


def test_stale_stable_right_after_a_prompt_does_not_flap() -> None:
    observations: list[Observation] = [
        StatusSeen("stable", 0),
        prompt(1, at=10),
        StatusSeen("stable", 10.5),  # the agent has not started yet
        StatusSeen("running", 11),
        StatusSeen("stable", 30),
    ]
    assert changes(observations) == [
        IDLE,
        AppStatus(AppState.WORKING, "Fix the login bug"),
        IDLE,
    ]


def test_a_prompt_the_agent_never_starts_on_goes_idle_after_the_debounce() -> None:
    observations: list[Observation] = [
        StatusSeen("stable", 0),
        prompt(1, at=10),
        StatusSeen("stable", 10.5),
    ]
    state = RulesState()
    for observation in observations:
        state = step(state, observation, DEBOUNCE)
    assert next_deadline(state, DEBOUNCE) == 13.0
    assert step(state, Tick(12.9), DEBOUNCE).wanted == AppStatus(
        AppState.WORKING, "Fix the login bug"
    )
    assert step(state, Tick(13), DEBOUNCE).wanted == IDLE


def test_start_running_then_stable() -> None:
    assert changes([StatusSeen("running", 0), StatusSeen("stable", 9)]) == [WORKING, IDLE]


def history(*users: tuple[int, str], last_id: int | None = None, at: float = 0.0) -> Observation:
    """A whole history: the agent's startup screen (id 0), then these user messages."""
    messages = [Msg(0, "agent", "Welcome"), *(Msg(i, "user", text) for i, text in users)]
    if last_id is not None:
        messages.append(Msg(last_id, "agent", "answer"))
    return history_of(messages, at)


def test_reconnect_replay_does_not_change_the_wanted_status() -> None:
    state = RulesState()
    for observation in [history((1, "a"), (3, "b")), StatusSeen("stable", 0), prompt(5, at=3)]:
        state = step(state, observation, DEBOUNCE)
    before = state.wanted
    state = step(state, StatusSeen("stable", 60), DEBOUNCE)
    settled = state.wanted
    state = step(state, history((1, "a"), (3, "b"), (5, "Fix"), at=70), DEBOUNCE)
    assert state.wanted == settled
    state = step(state, StatusSeen("stable", 70), DEBOUNCE)
    assert before == AppStatus(AppState.WORKING, "Fix the login bug")
    assert state.wanted == settled == IDLE
    state = step(state, prompt(7, "next", at=80), DEBOUNCE)
    assert state.wanted == AppStatus(AppState.WORKING, "next")


def test_a_prompt_sent_while_the_stream_was_down_is_reported_from_the_replay() -> None:
    state = RulesState()
    for observation in [history((1, "a")), StatusSeen("stable", 0)]:
        state = step(state, observation, DEBOUNCE)
    assert state.wanted == IDLE
    state = step(state, history((1, "a"), (3, "Deploy it\nnow"), at=10), DEBOUNCE)
    assert state.wanted == AppStatus(AppState.WORKING, "Deploy it")
    assert state.restarts == 0


@pytest.mark.parametrize(
    ("after", "why"),
    [
        (history(at=5), "ids went backwards: only the startup screen"),
        (history((1, "another conversation"), at=5), "the first user message differs"),
        (history((1, "a"), at=5), "same first prompt, but ids went backwards"),
    ],
)
def test_agentapi_restart_is_proved_by_the_history(after: HistorySeen, why: str) -> None:
    state = RulesState()
    for observation in [history((1, "a"), (3, "b"), last_id=4), StatusSeen("stable", 0)]:
        state = step(state, observation, DEBOUNCE)
    state = step(state, after, DEBOUNCE)
    assert state.restarts == 1, why


def test_agentapi_restart_resets_the_baseline() -> None:
    state = RulesState()
    for observation in [history((41, "old")), StatusSeen("stable", 0)]:
        state = step(state, observation, DEBOUNCE)
    state = step(state, history(at=5), DEBOUNCE)  # a fresh AgentAPI: no user message yet
    assert (state.restarts, state.wanted) == (1, IDLE)
    state = step(state, prompt(1, "first prompt after restart", at=6), DEBOUNCE)
    assert state.wanted == AppStatus(AppState.WORKING, "first prompt after restart")


def test_a_prompt_already_in_a_restarted_history_is_new() -> None:
    state = RulesState()
    for observation in [history((41, "old")), StatusSeen("stable", 0)]:
        state = step(state, observation, DEBOUNCE)
    state = step(state, history((1, "sent after the restart"), at=5), DEBOUNCE)
    assert state.wanted == AppStatus(AppState.WORKING, "sent after the restart")


def test_a_repeated_running_reading_does_not_undo_an_explicit_complete() -> None:
    # A poller reads `running` every interval after the hook said complete; the stream would
    # have said it once. Both must keep the complete until a real change.
    observations: list[Observation] = [StatusSeen("running", 0), ExplicitReport(COMPLETE, 1)]
    observations += [StatusSeen("running", 1 + t / 2) for t in range(20)]
    observations += [Tick(20), StatusSeen("stable", 21), Tick(30)]
    assert changes(observations) == [WORKING, COMPLETE]


def test_next_deadline() -> None:
    state = step(RulesState(), StatusSeen("stable", 0), DEBOUNCE)
    assert next_deadline(state, DEBOUNCE) is None
    state = step(state, StatusSeen("running", 4), DEBOUNCE)
    assert next_deadline(state, DEBOUNCE) == 7.0
    state = step(state, Tick(7), DEBOUNCE)
    assert next_deadline(state, DEBOUNCE) is None


def hook(state: AppState, message: str, at: float) -> ExplicitReport:
    return ExplicitReport(AppStatus(state, message), at, from_hook=True)


@pytest.mark.parametrize("explicit", [COMPLETE, FAILED])
def test_rule7_a_hook_idle_does_not_replace_complete_or_failed(explicit: AppStatus) -> None:
    observations: list[Observation] = [
        hook(AppState.WORKING, "Fix the bug", 0),
        ExplicitReport(explicit, 5),
        hook(AppState.IDLE, "Turn finished", 6),  # Claude Code's Stop hook, after `report`
        hook(AppState.IDLE, "Session ended", 7),
    ]
    assert run(observations)[-3:] == [explicit] * 3


def test_rule7_a_hook_working_ends_the_hold() -> None:
    observations: list[Observation] = [
        ExplicitReport(COMPLETE, 0),
        hook(AppState.WORKING, "Now the docs", 1),  # a new prompt
        hook(AppState.IDLE, "Turn finished", 2),
    ]
    assert run(observations) == [
        COMPLETE,
        AppStatus(AppState.WORKING, "Now the docs", COMPLETE.uri),
        AppStatus(AppState.IDLE, "Turn finished", COMPLETE.uri),
    ]


def test_rule7_stable_keeps_an_idle_already_shown() -> None:
    """AgentAPI and hooks together: the hook's words stay, no second idle report."""
    permission = AppStatus(AppState.IDLE, "Waiting for permission to use Bash")
    observations: list[Observation] = [
        StatusSeen("stable", 0),
        prompt(1, at=1),
        StatusSeen("running", 1.5),
        hook(AppState.IDLE, permission.message, 4),
        StatusSeen("stable", 6),  # a permission prompt reads stable
    ]
    assert changes(observations) == [
        IDLE,
        AppStatus(AppState.WORKING, "Fix the login bug"),
        permission,
    ]


@pytest.mark.parametrize(
    "after_the_debounce",
    [Tick(5.0), StatusSeen("running", 5.0)],
    ids=["stream: the debounce's tick", "poll: the same reading again"],
)
def test_rule7_a_hooks_idle_yields_to_running_that_lasts(after_the_debounce: Observation) -> None:
    """A hook's idle handed over late (the last turn's Stop, after the next prompt), or a
    permission granted before AgentAPI read `stable`: the agent works on and AgentAPI reads
    `running` throughout, with no change to restart rule 3's clock. The idle must not last the
    whole turn."""
    finished = AppStatus(AppState.IDLE, "Turn finished")
    observations: list[Observation] = [
        StatusSeen("stable", 0),
        prompt(1, at=1),
        StatusSeen("running", 1.5),
        hook(AppState.IDLE, finished.message, 2),
        Tick(4.99),
        after_the_debounce,
        StatusSeen("stable", 9),
    ]
    assert run(observations)[-4:] == [finished, finished, WORKING, IDLE]


def test_rule7_an_explicit_idle_while_running_stands() -> None:
    """`report idle` is the agent speaking on purpose, mid-answer: its words stay (rule 10c)."""
    idle = AppStatus(AppState.IDLE, "Waiting for the API key")
    observations: list[Observation] = [
        StatusSeen("running", 0),
        ExplicitReport(idle, 1),
        Tick(10),
        StatusSeen("running", 11),
        StatusSeen("stable", 12),
    ]
    assert run(observations)[-4:] == [idle] * 4


def test_rule7_an_explicit_idle_still_replaces_complete() -> None:
    """Only a hook's idle yields: `report idle` is the agent speaking on purpose."""
    idle = AppStatus(AppState.IDLE, "Waiting for the API key")
    assert run([ExplicitReport(COMPLETE, 0), ExplicitReport(idle, 1)]) == [COMPLETE, idle]


# -- rule 4: a working never outlives the agent's idleness --------------------------------------


@pytest.mark.parametrize(
    "after_the_grace",
    [Tick(4.0), StatusSeen("stable", 4.0)],
    ids=["stream: the debounce's tick", "poll: the same reading again"],
)
@pytest.mark.parametrize("from_hook", [False, True])
def test_rule4b_an_explicit_working_the_agent_never_starts_ends_in_idle(
    after_the_grace: Observation, from_hook: bool
) -> None:
    working = AppStatus(AppState.WORKING, "Deploying")
    observations: list[Observation] = [
        StatusSeen("stable", 0),
        ExplicitReport(working, 1, from_hook=from_hook),
        StatusSeen("stable", 2),  # read again within the grace: the agent may not have started
        Tick(3.99),
        after_the_grace,
    ]
    assert run(observations) == [IDLE, working, working, working, IDLE]


def test_rule4_an_explicit_working_confirmed_by_running_ends_at_the_next_stable() -> None:
    working = AppStatus(AppState.WORKING, "Deploying")
    observations: list[Observation] = [
        StatusSeen("stable", 0),
        ExplicitReport(working, 1),
        StatusSeen("running", 1.5),
        StatusSeen("stable", 2),  # before the debounce: the running confirmed the working
    ]
    assert run(observations)[-1] == IDLE


def test_rule4_an_explicit_working_while_running_ends_at_the_next_stable() -> None:
    working = AppStatus(AppState.WORKING, "Deploying")
    observations: list[Observation] = [
        StatusSeen("running", 0),
        ExplicitReport(working, 1),
        StatusSeen("stable", 1.5),
    ]
    assert run(observations) == [WORKING, working, IDLE]


def test_rule4b_a_hook_idle_within_the_grace_keeps_its_words() -> None:
    permission = AppStatus(AppState.IDLE, "Waiting for permission to use Bash")
    observations: list[Observation] = [
        StatusSeen("stable", 0),
        prompt(1, at=1),
        hook(AppState.IDLE, permission.message, 2),
        Tick(4),
        StatusSeen("stable", 5),
    ]
    assert run(observations)[-3:] == [permission] * 3


# -- rule 8: the last reported uri stays -------------------------------------------------------

PR = "https://git/pr/9"


def test_rule8_the_uri_stays_on_derived_statuses_and_hook_reports() -> None:
    observations: list[Observation] = [
        StatusSeen("stable", 0),
        ExplicitReport(AppStatus(AppState.WORKING, "Opening the PR", PR), 1),
        StatusSeen("running", 1.5),
        StatusSeen("stable", 2),
        prompt(1, "Address the review", at=3),
        StatusSeen("running", 3.5),
        hook(AppState.IDLE, "Turn finished", 4),
        StatusSeen("stable", 5),
        StatusSeen("running", 10),
        Tick(13),
    ]
    assert changes(observations) == [
        IDLE,
        AppStatus(AppState.WORKING, "Opening the PR", PR),
        linked(IDLE, PR),
        AppStatus(AppState.WORKING, "Address the review", PR),
        AppStatus(AppState.IDLE, "Turn finished", PR),
        linked(WORKING, PR),
    ]


@pytest.mark.parametrize(
    ("report", "uri"),
    [
        (AppStatus(AppState.WORKING, "Next step"), ""),  # a message and no uri: cleared
        (AppStatus(AppState.WORKING, ""), PR),  # neither: kept
        (AppStatus(AppState.WORKING, "", "https://git/pr/10"), "https://git/pr/10"),
    ],
)
def test_rule8_an_explicit_report_replaces_or_keeps_the_uri(report: AppStatus, uri: str) -> None:
    observations: list[Observation] = [
        ExplicitReport(AppStatus(AppState.COMPLETE, "Opened the PR", PR), 0),
        ExplicitReport(report, 1),
        StatusSeen("stable", 2),
    ]
    assert run(observations)[1:] == [
        AppStatus(report.state, report.message, uri),
        AppStatus(AppState.IDLE, IDLE_MESSAGE, uri),
    ]


# -- rule 9: the texts of derived statuses ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("\n  \n  Fix the parser  \nthen the docs", "Fix the parser"),
        (" \n\t\n", WORKING_MESSAGE),
        ("", WORKING_MESSAGE),
        ("ü" * 100, "ü" * 78 + "…"),
    ],
)
def test_rule9_a_prompt_says_its_first_non_blank_line(text: str, message: str) -> None:
    state = step(RulesState(), StatusSeen("stable", 0), DEBOUNCE)
    assert state.wanted == AppStatus(AppState.IDLE, "Waiting for input")
    state = step(state, prompt(1, text, at=1), DEBOUNCE)
    assert state.wanted == AppStatus(AppState.WORKING, message)
    assert len(message.encode()) <= 160


def test_rule9_the_fixed_texts() -> None:
    assert (WORKING_MESSAGE, IDLE_MESSAGE) == ("Working", "Waiting for input")
    assert changes([StatusSeen("stable", 0), StatusSeen("running", 1), Tick(4)]) == [
        AppStatus(AppState.IDLE, "Waiting for input"),
        AppStatus(AppState.WORKING, "Working"),
    ]
