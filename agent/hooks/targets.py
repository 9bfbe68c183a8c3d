"""What `hook install` puts where: the vocabulary of install targets.

Each agent's target is `install_target()` in its mapping module, beside the mapping of what its
entries send us; the engine is agent.hooks.install, the user's view docs/hook-install.md. Not on
the hooks' fast path (dataclasses): mapping modules import it inside `install_target`, and it
does not import the registry. Every hook runs the bare EXECUTABLE, found on the agent's PATH, so
the configuration survives an upgrade that moves it; `install` warns when it is not on PATH.
"""

from __future__ import annotations

import json
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
    """Our entries merged into the user's JSON settings: per event, one entry appended to the
    list `hooks.EVENT`. `skeleton`: what a new file holds besides `hooks` (left alone after an
    uninstall, the file was ours). `comments`: the agent reads JSONC."""

    user: str
    project: str
    events: Events
    skeleton: Json = field(default_factory=dict)
    comments: bool = False
    wrapper: str | None = None  # a wrapper's file name that also marks an entry as ours


@dataclass(frozen=True)
class CodexNotify:
    """Codex's `notify` program in `config.toml` (one program: the user's runs after ours)."""

    user: str = ".codex/config.toml"
    project: str = ".codex/config.toml"


@dataclass(frozen=True)
class OwnFile:
    """A file wholly ours, written and removed whole: `text`, or `resource` of this package."""

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
    own_dirs: tuple[str, ...] = ()  # relative to the root; removed once empty on uninstall
    notes: tuple[str, ...] = ()


def json_file(user: str, project: str, document: Json) -> OwnFile:
    """A JSON file wholly ours."""
    return OwnFile(user, project, text=json.dumps(document, indent=2) + "\n")


def matcher_group(agent: str, **handler_extra: object) -> Json:
    """A Claude-style matcher group with our one command handler."""
    return {"hooks": [{"type": "command", "command": command(agent), **handler_extra}]}


def gemini_style(agent: str, settings: str, events: tuple[str, ...], tool: str) -> JsonHooks:
    """Gemini CLI's settings (Qwen Code's follow them): JSONC, a named handler on each event,
    the `tool` event's matching every tool."""
    handler = {"type": "command", "name": EXECUTABLE, "command": command(agent)}
    group: Json = {"hooks": [handler]}
    every_tool: Json = {"matcher": ".*", "hooks": [handler]}
    entries = tuple((event, every_tool if event == tool else group) for event in events)
    return JsonHooks(settings, settings, entries, comments=True)
