"""What the AgentAPI stand-in's scripted agent does: a scenario, read from JSON.

A scenario lets the demo, the end-to-end tests and the benchmarks drive the same stand-in through
different conversations (a quick answer, a permission question, 240 KB of build output) without a
real agent. The stand-in (`standins.agentapi`) plays it; this module only describes it.

The file is one JSON object; every key is optional and unknown keys are an error:

    {
      "agent_type": "claude",        // GET /status `agent_type`, and in status_change events
      "startup_screen": "...",       // message 0, the agent's startup screen
      "startup_seconds": 0,          // `running` this long after start, then `stable`
      "send_seconds": 1.0,           // how long POST /message holds the lock before the agent
                                     //   starts (real AgentAPI: at least 1 s, up to about 18 s)
      "settle_seconds": 2.0,         // unchanged screen needed before `stable` (AgentAPI: 2 s)
      "prompts": [                   // the first whose `match` is in the prompt wins,
        {                            //   else the one whose `match` is "default"
          "match": "deploy",         // a substring of the prompt, or "default"
          "think_seconds": 1.5,      // `running`, the message shows only a spinner line
          "lines": ["● Line one", "  ⎿ line two"],   // streamed into the agent message
          "generate": {"lines": 1200, "title": "cargo build"},   // then this many lines of
                                     //   80-column box-drawn output (about 186 bytes a line:
                                     //   430 lines ≈ 80 KB, 1300 lines ≈ 240 KB)
          "lines_per_second": 8,     // streaming rate
          "permission_prompt": "Bash command: rm -rf build",   // stop at a permission question:
                                     //   reads `stable` though the turn is not done; a `raw`
                                     //   keystroke answers it ("2", "n" or Esc: no; else yes)
          "after_permission": ["● Removed build/."],   // streamed once the answer is yes
          "finish": "● Done."        // the last line, once the work is over
        }
      ]
    }

Every duration is in scenario seconds; the stand-in divides them by its `speed` factor.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# 80 columns: AgentAPI's terminal width, and where agent output is hard-wrapped.
COLUMNS = 80

STARTUP_SCREEN = "\n".join(
    [
        "╭───────────────────────────────────────────────────╮",
        "│ ✻ Welcome to Claude Code!                         │",
        "│                                                   │",
        "│   /help for help, /status for your current setup  │",
        "│                                                   │",
        "│   cwd: /home/coder/project                        │",
        "╰───────────────────────────────────────────────────╯",
        "",
        " Tips for getting started:",
        "",
        " 1. Ask Claude to create a new app or clone a repository",
        " 2. Use Claude to help with file analysis, editing, bash commands and git",
        " 3. Be as specific as you would with another engineer for the best results",
    ]
)

DEFAULT_LINES = (
    "● I'll start by running the failing test to see the error.",
    "",
    "● Bash(pytest tests/test_dates.py -x)",
    "  ⎿  FAILED tests/test_dates.py::test_parse_iso - ValueError: bad UTC offset",
    "",
    "● The parser rejects offsets without a colon (+0200). Let me look at it.",
    "",
    "● Read(src/dates.py)",
    "  ⎿  Read 84 lines (ctrl+r to expand)",
    "",
    "● Update(src/dates.py)",
    "  ⎿  Updated src/dates.py with 3 additions and 1 removal",
    "",
    "● Bash(pytest -q)",
    "  ⎿  42 passed in 0.61s",
)

DEFAULT_FINISH = (
    "● Fixed: the date parser now accepts UTC offsets with and without a colon\n"
    "  (+02:00 and +0200), and the whole suite passes."
)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GeneratedOutput(_Frozen):
    """Lines of 80-column, box-drawn terminal output, to make realistically large messages."""

    lines: int = Field(ge=0, le=1_000_000)
    title: str = "build output"


class PromptScript(_Frozen):
    """What the scripted agent does for prompts that `match`."""

    match: str = "default"
    think_seconds: float = Field(default=1.5, ge=0)
    lines: tuple[str, ...] = DEFAULT_LINES
    generate: GeneratedOutput | None = None
    lines_per_second: float = Field(default=8.0, gt=0)
    permission_prompt: str | None = None
    after_permission: tuple[str, ...] = ("● Done with the command.",)
    finish: str = ""

    def output_lines(self) -> list[str]:
        """The lines streamed before any permission question: `lines`, then generated output."""
        out = list(self.lines)
        if self.generate is not None:
            out += box_lines(self.generate.lines, title=self.generate.title)
        return out


DEFAULT_PROMPTS = (
    PromptScript(
        match="rm -rf",
        lines=("● I'll remove the build directory.", "", "● Bash(rm -rf build)"),
        permission_prompt="Bash command\n\n  rm -rf build\n  Remove the build directory",
        after_permission=("  ⎿  (No content)", ""),
        finish="● Removed build/.",
    ),
    PromptScript(
        match="run the build",
        think_seconds=1.0,
        lines=("● Bash(make build)",),
        generate=GeneratedOutput(lines=1200, title="make build"),
        lines_per_second=400.0,
        finish="● The build succeeded.",
    ),
    PromptScript(match="default", finish=DEFAULT_FINISH),
)


class ScenarioError(ValueError):
    """A scenario file that cannot be read or does not follow the format."""


class Scenario(_Frozen):
    """The scripted agent's whole behaviour; the built-in default suits a demo."""

    agent_type: str = "claude"
    startup_screen: str = STARTUP_SCREEN
    startup_seconds: float = Field(default=0.0, ge=0)
    send_seconds: float = Field(default=1.0, ge=0)
    settle_seconds: float = Field(default=2.0, ge=0)
    prompts: tuple[PromptScript, ...] = DEFAULT_PROMPTS

    def for_prompt(self, text: str) -> PromptScript:
        """The first script whose `match` occurs in `text`, else the `default` one."""
        for script in self.prompts:
            if script.match != "default" and script.match in text:
                return script
        for script in self.prompts:
            if script.match == "default":
                return script
        return PromptScript()

    @classmethod
    def parse(cls, text: str) -> Scenario:
        """A scenario from JSON text; raises ScenarioError saying what is wrong."""
        try:
            return cls.model_validate(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ScenarioError(f"not JSON: {exc}") from None
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'scenario'}: {error['msg']}"
                for error in exc.errors()
            )
            raise ScenarioError(problems) from None

    @classmethod
    def load(cls, path: Path) -> Scenario:
        """A scenario from a file; raises ScenarioError naming the file."""
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ScenarioError(f"scenario {str(path)!r}: {exc}") from None
        try:
            return cls.parse(text)
        except ScenarioError as exc:
            raise ScenarioError(f"scenario {str(path)!r}: {exc}") from None


def box_lines(count: int, *, title: str = "build output", start: int = 0) -> list[str]:
    """`count` lines of a box-drawn table, each exactly 80 columns wide.

    Rows alternate with separators made of box-drawing characters (3 bytes each in UTF-8), so a
    line averages about 186 bytes: this is what makes a terminal message 80-240 KB.
    """
    width = COLUMNS - 2
    label = f"─ {title} "[: width - 1]
    top = "╭" + label + "─" * (width - len(label)) + "╮"
    bottom = "╰" + "─" * width + "╯"
    separator = "├" + "─" * 8 + "┼" + "─" * (width - 9) + "┤"
    lines: list[str] = []
    for i in range(count):
        if i == 0:
            lines.append(top)
        elif i == count - 1:
            lines.append(bottom)
        elif i % 2 == 0:
            lines.append(separator)
        else:
            n = start + i // 2 + 1
            bar = "█" * (n % 23) + "░" * (22 - n % 23)
            cell = f" compiling module_{n % 97:02d} {bar} ok "
            lines.append(f"│ {n:06d} │" + cell.ljust(width - 9)[: width - 9] + "│")
    return lines


@functools.lru_cache(maxsize=1)
def _filler_block() -> str:
    return "\n".join(box_lines(64, title="history")) + "\n"


def filler_text(size: int, label: str = "") -> str:
    """Terminal-like text of exactly `size` UTF-8 bytes, starting with `label` (when it fits)."""
    if size <= 0:
        return ""
    block = _filler_block()
    head = f"{label}\n" if label else ""
    needed = size - len(head.encode())
    repeats = max(0, needed) // len(block.encode()) + 1
    raw = (head + block * repeats).encode()[:size]
    text = raw.decode("utf-8", errors="ignore")
    return text + "." * (size - len(text.encode()))
