"""The agents whose own hooks report the task's status: ONE table, read by the `hook` command,
its fast dispatch and help (agent.cli), the installer and docs/hooks.md (tests/test_docs.py).

Adding an agent is one row here and one mapping module `agent.hooks.<module>` holding
`event_of(payload, name) -> HookEvent` (pure, a table of agent.hooks.payload's builders; the
rules are agent.hooks.events') and `install_target() -> Target` (agent.hooks.targets). On the
hooks' fast path: this imports nothing, and only the calling agent's mapping module is imported.

`reads`: STDIN, or ARGUMENT_OR_STDIN (the last argument when there is one: Codex's `notify`).
`stdout`: what the hook prints; nothing, except where the agent parses stdout and an empty one
is worse (Gemini then takes stderr as its decision and shows it: `{}`). `stderr_shown`: the
agent shows stderr even at exit 0 (Auggie): the hook logs errors only, unless the level is set.
"""

from __future__ import annotations

TYPE_CHECKING = False  # true for type checkers: `typing` is not imported on the hooks' path
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
        """What `payload` says happened; `name` (`--event`) when the payload lacks it."""
        module = __import__(f"agent.hooks.{self.module}", fromlist=["event_of"])
        event: HookEvent = module.event_of(payload, name)
        return event

    def install_target(self) -> Target:
        """What `hook install` writes for this agent."""
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
    """Every agent's install target, by name, in the registry's order (`hook install`'s table)."""
    return {name: agent.install_target() for name, agent in AGENTS.items()}
