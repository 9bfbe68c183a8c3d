"""The agents whose own hooks report the task's status: ONE table, read by everything else.

Why a registry: the `hook AGENT` command, its fast argument dispatch (agent.cli), its help, the
docs (docs/hooks.md, checked against this table by tests/test_docs.py) and the installer
all need the list of agents and how each one calls us. Adding an agent is one row here and one
mapping module `agent.hooks.<module>`, nothing else: its `event_of(payload, name) -> HookEvent`
(pure: the agent's payload in, one event of agent.hooks.events out; the rules that turn events
into statuses live there, once, for every agent) and its `install_target() -> Target` (what
`hook install` writes into the agent's configuration, in the vocabulary of agent.hooks.targets;
`install_targets()` below is the table). A mapping module is a table, the agent's event
names to the builders of agent.hooks.payload (`event_of = mapping({...})`), and writes out only
what is its agent's alone.

This package is on the hooks' fast path (an agent runs `hook` at every prompt and every tool
call): it imports nothing, and the mapping module of the calling agent only is imported, when
it is needed.

Columns:
- `reads`: where the payload arrives. STDIN: JSON on stdin. ARGUMENT_OR_STDIN: the last argument
  when one is given (Codex's `notify` program), else stdin (Codex's lifecycle hooks).
- `stdout`: what the hook prints on stdout, always: nothing, except where the agent reads stdout
  as its decision and something is safer than nothing (Gemini CLI parses stderr as the decision
  when stdout is empty, and shows it to the user: `{}` makes it ignore stderr).
- `stderr_shown`: the agent shows the hook's stderr to the user even at exit 0 (Auggie, on tool
  hooks): the hook then logs errors only unless CODER_TASK_AGENT_LOG_LEVEL says otherwise.
"""

from __future__ import annotations

# A plain constant that type checkers treat as true: `typing` is not imported on this path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from agent.hooks.events import HookEvent
    from agent.hooks.targets import Target

STDIN = "stdin"
ARGUMENT_OR_STDIN = "last argument, else stdin"


class Agent:
    """One row of the registry: an agent, how its hooks call us, and which module maps them."""

    __slots__ = ("label", "module", "name", "reads", "stderr_shown", "stdout")

    def __init__(
        self,
        name: str,
        label: str,
        module: str,
        *,
        reads: str = STDIN,
        stdout: str = "",
        stderr_shown: bool = False,
    ) -> None:
        self.name = name
        self.label = label
        self.module = module
        self.reads = reads
        self.stdout = stdout
        self.stderr_shown = stderr_shown

    def event_of(self, payload: Mapping[str, object], name: str = "") -> HookEvent:
        """What `payload` says happened; `name` is the event's name when the payload lacks it
        (`--event`). Imports the agent's mapping module on first use."""
        module = __import__(f"agent.hooks.{self.module}", fromlist=["event_of"])
        event: HookEvent = module.event_of(payload, name)
        return event

    def install_target(self) -> Target:
        """What `hook install` writes for this agent (agent.hooks.targets has the vocabulary).
        Imports the agent's mapping module, where the target is built beside the mapping."""
        module = __import__(f"agent.hooks.{self.module}", fromlist=["install_target"])
        target: Target = module.install_target()
        return target


AGENTS: dict[str, Agent] = {
    agent.name: agent
    for agent in (
        Agent("claude-code", "Claude Code", "claude_code"),
        Agent("codex", "Codex CLI", "codex", reads=ARGUMENT_OR_STDIN),
        Agent("gemini", "Gemini CLI", "gemini", stdout="{}"),
        Agent("qwen", "Qwen Code", "qwen"),
        Agent("cursor", "Cursor CLI", "cursor"),
        Agent("copilot", "GitHub Copilot CLI", "copilot"),
        Agent("goose", "Goose", "goose"),
        Agent("auggie", "Auggie", "auggie", stderr_shown=True),
        Agent("kiro", "Kiro CLI", "kiro"),
        Agent("opencode", "OpenCode (through agent/hooks/opencode.js)", "opencode"),
    )
}


def install_targets() -> dict[str, Target]:
    """Every agent's install target, by name, in the registry's order: the one table `hook
    install` and its tests read (each row imports its agent's mapping module)."""
    return {name: agent.install_target() for name, agent in AGENTS.items()}
