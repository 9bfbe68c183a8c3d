"""The scripted agent behind the AgentAPI stand-in: it plays a scenario's turns on the screen.

A prompt sets the status `running` (the typed prompt changes the screen); the agent then thinks
under a spinner, streams its lines into one agent message rewritten in place, may stop at a
permission question (which reads `stable` although the turn is not done, as with Claude Code),
and finishes. `stable` comes only after the screen has not changed for the scenario's
`settle_seconds` (AgentAPI: 2 s). Every scenario duration is divided by `speed`; sleeps come from
the injected clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import anyio
import anyio.abc

from standins.agentapi.clock import Clock
from standins.agentapi.conversation import Conversation
from standins.agentapi.scenario import COLUMNS, Scenario

# AgentAPI snapshots the screen every 25 ms: the agent message changes at most this often.
SNAPSHOT_INTERVAL = 0.025
# How often the spinner line of a working agent changes.
SPINNER_INTERVAL = 0.1
# Claude Code's spinner glyphs (the fourth is U+2217 ASTERISK OPERATOR).
SPINNER = "·✢✳\u2217✻✽"


@dataclass
class _Turn:
    """The agent message being written during one scripted turn."""

    id: int
    shown: list[str]
    elapsed: float = 0.0
    frame: int = 0


class ScriptedAgent:
    """Plays `scenario` (replaceable between turns) on `conversation`, `speed` times faster.

    Turns run in `group`, the task group of whoever serves the stand-in (`attach`).
    """

    def __init__(
        self, conversation: Conversation, scenario: Scenario, *, speed: float, clock: Clock
    ) -> None:
        if not speed > 0:
            raise ValueError("speed must be positive")
        self.conversation = conversation
        self.scenario = scenario
        self.speed = speed
        self.clock = clock
        self.group: anyio.abc.TaskGroup | None = None
        self._turn_scope: anyio.CancelScope | None = None
        self._key_waiter: anyio.Event | None = None
        self._key = ""

    def start_up(self) -> None:
        """If the scenario starts `running`, become `stable` after its startup time."""
        starting = self.conversation.status == "running" and self.scenario.startup_seconds > 0
        if self.group is not None and starting:
            self.group.start_soon(self._finish_startup)

    async def accept(self, prompt: str) -> None:
        """Type the prompt, then return once the agent has started on it (AgentAPI's send)."""
        if self.group is None:
            raise RuntimeError("the stand-in is not being served (see run_agentapi_standin)")
        sent_at = self.clock.now_ns()
        if self._turn_scope is not None:  # e.g. a turn left waiting at a permission question
            self._turn_scope.cancel()
        self.conversation.set_status("running")  # the typed prompt changes the screen
        await self._sleep(self.scenario.send_seconds)
        self.conversation.append_message("user", prompt, sent_at)
        await self.group.start(self._play_turn, prompt)

    def keystrokes(self, keys: str) -> None:
        """A `raw` message: answers a pending permission question; otherwise it changes nothing."""
        if self._key_waiter is not None:
            self._key = keys
            self._key_waiter.set()

    # -- a turn -------------------------------------------------------------------------------

    async def _play_turn(
        self, prompt: str, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        script = self.scenario.for_prompt(prompt)
        screen = self.conversation
        with anyio.CancelScope() as scope:
            self._turn_scope = scope
            try:
                turn = _Turn(screen.append_message("agent", spinner(0, 0.0, "Thinking")), [])
                task_status.started()
                rate = script.lines_per_second
                await self._work(turn, [], script.think_seconds, rate, "Thinking")
                await self._work(turn, script.output_lines(), 0.0, rate, "Working")
                if script.permission_prompt is not None:
                    if not await self._ask(turn, script.permission_prompt):
                        turn.shown += [
                            "  ⎿  User rejected the command",
                            "",
                            "● OK, I won't do that. What should I do instead?",
                        ]
                        screen.rewrite_message(turn.id, render(turn.shown))
                        await self._settle()
                        return
                    await self._work(turn, list(script.after_permission), 0.0, rate, "Working")
                await self._sleep(SPINNER_INTERVAL)  # the spinner goes, the summary comes
                if script.finish:
                    turn.shown.append(script.finish)
                screen.rewrite_message(turn.id, render(turn.shown))
                await self._settle()
            finally:
                if self._turn_scope is scope:
                    self._turn_scope = None

    async def _work(
        self, turn: _Turn, lines: Sequence[str], min_seconds: float, rate: float, verb: str
    ) -> None:
        """Stream `lines` at `rate` a second under a spinner, for at least `min_seconds`."""
        tick = min(SPINNER_INTERVAL, max(SNAPSHOT_INTERVAL, 1.0 / rate))
        spent = 0.0
        shown = 0
        while shown < len(lines) or spent < min_seconds - 1e-9:
            step = tick if shown < len(lines) else min(tick, min_seconds - spent)
            await self._sleep(step)
            spent += step
            turn.elapsed += step
            turn.frame += 1
            shown = min(len(lines), math.floor(spent * rate + 1e-9))
            line = spinner(turn.frame, turn.elapsed, verb)
            self.conversation.rewrite_message(turn.id, render([*turn.shown, *lines[:shown]], line))
        turn.shown.extend(lines)

    async def _ask(self, turn: _Turn, question: str) -> bool:
        """Show a permission question, read `stable`, wait for a keystroke; True for yes."""
        await self._sleep(SPINNER_INTERVAL)
        self.conversation.rewrite_message(
            turn.id, render([*turn.shown, "", *permission_box(question)])
        )
        await self._settle()
        self._key_waiter = anyio.Event()
        try:
            await self._key_waiter.wait()
        finally:
            self._key_waiter = None
        self.conversation.set_status("running")
        return self._key.strip() not in ("2", "n", "N", "no", "\x1b")

    async def _settle(self) -> None:
        """The screen stays unchanged for the settle time, then the status is `stable`."""
        await self._sleep(self.scenario.settle_seconds)
        self.conversation.set_status("stable")

    async def _finish_startup(self) -> None:
        await self._sleep(self.scenario.startup_seconds)
        if self._turn_scope is None:
            self.conversation.set_status("stable")

    async def _sleep(self, scenario_seconds: float) -> None:
        await self.clock.sleep(scenario_seconds / self.speed)


# -- what the agent's screen shows ------------------------------------------------------------


def spinner(frame: int, elapsed: float, verb: str) -> str:
    """Claude Code's status line while it works."""
    glyph = SPINNER[frame % len(SPINNER)]
    return f"{glyph} {verb}… ({int(elapsed)}s · esc to interrupt)"


def render(lines: Sequence[str], status_line: str | None = None) -> str:
    """The agent message: its lines, and the spinner under them while it works."""
    shown = [*lines, "", status_line] if status_line is not None else list(lines)
    return "\n".join(shown).strip("\n")


def permission_box(question: str) -> list[str]:
    """Claude Code's permission question, 80 columns wide."""
    width = COLUMNS - 4
    body = [
        *question.splitlines(),
        "",
        "Do you want to proceed?",
        "\u276f 1. Yes",  # U+276F, the selection marker
        "  2. No, and tell Claude what to do differently (esc)",
    ]
    return [
        "╭" + "─" * (COLUMNS - 2) + "╮",
        *(f"│ {line[:width].ljust(width)} │" for line in body),
        "╰" + "─" * (COLUMNS - 2) + "╯",
    ]
