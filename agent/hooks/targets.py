"""What `hook install` puts where: the vocabulary of an agent's install target.

Each agent's own target (its files, events, entries and notes) is `install_target()` in its
mapping module (`agent.hooks.<module>`), beside the mapping of the payloads those entries send
us, so adding an agent is one registry row (agent.hooks.AGENTS) and one mapping module; this
module holds what targets share (the dataclasses, our command, the entry shapes several agents
use); the table is `agent.hooks.install_targets()`, built from the registry, which this module
does not import (the registry names its types). The facts behind every target are in
the research notes on agent hooks (config files, event names, entry shapes, units of
`timeout`); `docs/hook-install.md` is the user's view of the table. The engine that merges these
entries into the user's files is `agent.hooks.install`; nothing here does I/O.

Every hook runs the bare command `coder-task-agent`, found on the agent's PATH (not an absolute
path): the configuration survives an upgrade or a rebuilt image that moves the executable, and
the agent started by the same start-up script sees the same PATH as the install did. `install`
warns when the command is not on PATH where it runs. Our entries are recognised by their command
(`coder-task-agent hook AGENT`, whatever directory it is named from), so an entry a person wrote
with an absolute path counts as ours too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

EXECUTABLE = "coder-task-agent"
# Replaced by the scope's root directory (home or project) where an entry must name a file.
ROOT = "{root}"

Json = dict[str, object]
Events = tuple[tuple[str, Json], ...]


def command(agent: str) -> str:
    """The shell command an agent's hook runs."""
    return f"{EXECUTABLE} hook {agent}"


@dataclass(frozen=True)
class JsonHooks:
    """Our entries merged into a JSON settings file that also holds the user's things.

    `events` lists, per event name, the one entry appended to `hooks.EVENT` (a list).
    `skeleton` is what a new file holds besides `hooks` (and what, left alone after an
    uninstall, means the file was ours). `comments`: the agent reads the file as JSON with
    comments (JSONC), so the install accepts and keeps them.
    """

    user: str
    project: str
    events: Events
    skeleton: Json = field(default_factory=dict)
    comments: bool = False
    wrapper: str | None = None  # a wrapper's file name that also marks an entry as ours


@dataclass(frozen=True)
class CodexNotify:
    """Codex's `notify` program in `config.toml` (TOML, one program: the user's runs after)."""

    user: str = ".codex/config.toml"
    project: str = ".codex/config.toml"


@dataclass(frozen=True)
class OwnFile:
    """A file that is wholly ours: written whole, removed whole.

    `text` is its content, or `resource` names a file shipped in this package.
    """

    user: str
    project: str
    text: str = ""
    resource: str | None = None
    mode: int = 0o644


Spec = JsonHooks | CodexNotify | OwnFile


@dataclass(frozen=True)
class Target:
    """One agent: the files install writes, the directories that are wholly ours, the notes."""

    agent: str
    files: tuple[Spec, ...]
    # Directories that are ours alone (relative to the root): removed once empty on uninstall.
    own_dirs: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def matcher_group(agent: str, **handler_extra: object) -> Json:
    """A Claude-style matcher group with our one command handler."""
    return {"hooks": [{"type": "command", "command": command(agent), **handler_extra}]}


def gemini_style(agent: str, settings: str, events: tuple[str, ...], tool: str) -> JsonHooks:
    """Gemini CLI's settings, whose hooks Qwen Code's follow: a named handler for each event,
    the `tool` event's matching every tool; JSON with comments."""
    handler = {"type": "command", "name": EXECUTABLE, "command": command(agent)}
    group: Json = {"hooks": [handler]}
    every_tool: Json = {"matcher": ".*", "hooks": [handler]}
    entries = tuple((event, every_tool if event == tool else group) for event in events)
    return JsonHooks(settings, settings, entries, comments=True)
