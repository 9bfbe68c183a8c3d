"""Where each agent reads its hooks, and what `hook install` puts there: one table.

The facts behind every row are in the research notes on agent hooks (config files, event names,
entry shapes, units of `timeout`); `docs/hook-install.md` is the user's view of this table.
The engine that merges these entries into the user's files is `agent.hooks.install`; nothing
here does I/O, so adding an agent is one row.

Every hook runs the bare command `coder-task-agent`, found on the agent's PATH (not an absolute
path): the configuration survives an upgrade or a rebuilt image that moves the executable, and
the agent started by the same start-up script sees the same PATH as the install did. `install`
warns when the command is not on PATH where it runs. Our entries are recognised by their command
(`coder-task-agent hook AGENT`, whatever directory it is named from), so an entry a person wrote
with an absolute path counts as ours too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

EXECUTABLE = "coder-task-agent"
# Auggie runs a hook command only when it is a path to a `.sh` file: a wrapper of ours.
AUGGIE_WRAPPER = "coder-task-agent.sh"
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


def _group(agent: str, **handler_extra: object) -> Json:
    """A Claude-style matcher group with our one command handler."""
    return {"hooks": [{"type": "command", "command": command(agent), **handler_extra}]}


def _claude() -> Target:
    group = _group("claude-code")
    events = [
        (event, group)
        for event in (
            "SessionStart",
            "UserPromptSubmit",
            "PreToolUse",
            "PermissionRequest",
            "Notification",
            "Stop",
            "StopFailure",
        )
    ]
    # SessionEnd hooks share a 1.5 s budget; a hook's own timeout raises it.
    events.append(("SessionEnd", _group("claude-code", timeout=5)))
    return Target(
        "claude-code",
        (JsonHooks(".claude/settings.json", ".claude/settings.json", tuple(events)),),
        notes=("Claude Code reads its settings when a session starts: restart a running one.",),
    )


def _codex() -> Target:
    group = _group("codex")
    short = _group("codex", timeout=3)  # SessionEnd and Interrupt: default 1 s, limit 3 s
    events = (
        ("SessionStart", group),
        ("UserPromptSubmit", group),
        ("PreToolUse", group),
        ("PermissionRequest", group),
        ("Stop", group),
        ("Interrupt", short),
        ("SessionEnd", short),
    )
    return Target(
        "codex",
        (CodexNotify(), JsonHooks(".codex/hooks.json", ".codex/hooks.json", events)),
        notes=(
            "Codex runs the hooks in hooks.json only after a person has reviewed and trusted "
            "them (in Codex's /hooks), or when Codex is started with "
            "--dangerously-bypass-hook-trust; project hooks also need a trusted project. "
            "`notify` (turn end) needs no trust.",
            "A `notify` program you had keeps running: ours reports, then runs yours with the "
            "same payload (uninstall puts yours back).",
        ),
    )


def _gemini_style(agent: str, settings: str, events: tuple[str, ...], tool: str) -> JsonHooks:
    """Gemini CLI's settings, whose hooks Qwen Code's follow: a named handler for each event,
    the `tool` event's matching every tool; JSON with comments."""
    handler = {"type": "command", "name": EXECUTABLE, "command": command(agent)}
    group: Json = {"hooks": [handler]}
    every_tool: Json = {"matcher": ".*", "hooks": [handler]}
    entries = tuple((event, every_tool if event == tool else group) for event in events)
    return JsonHooks(settings, settings, entries, comments=True)


def _gemini() -> Target:
    events: tuple[str, ...] = ("SessionStart", "BeforeAgent", "BeforeTool", "Notification")
    events += ("AfterAgent", "SessionEnd")
    return Target(
        "gemini",
        (_gemini_style("gemini", ".gemini/settings.json", events, "BeforeTool"),),
        notes=(
            "Gemini CLI warns once about new project hooks, then runs them. It fires no event "
            "when a turn ends in an error or is cancelled.",
        ),
    )


def _qwen() -> Target:
    events: tuple[str, ...] = ("SessionStart", "UserPromptSubmit", "PreToolUse")
    events += ("PermissionRequest", "Notification", "Stop", "StopFailure", "SessionEnd")
    return Target(
        "qwen",
        (_gemini_style("qwen", ".qwen/settings.json", events, "PreToolUse"),),
        notes=("Qwen Code runs project hooks only in a trusted folder.",),
    )


def _cursor() -> Target:
    entry: Json = {"command": command("cursor")}
    # Only names Cursor knows: one unknown event name makes it ignore the whole file.
    events = tuple(
        (event, entry)
        for event in ("sessionStart", "beforeSubmitPrompt", "preToolUse", "stop", "sessionEnd")
    )
    return Target(
        "cursor",
        (JsonHooks(".cursor/hooks.json", ".cursor/hooks.json", events, skeleton={"version": 1}),),
        notes=(
            "Only event names Cursor knows are written: one unknown name makes Cursor ignore "
            "the whole hooks.json. Cursor has no permission event, and its prompt and stop "
            "events fire in the interactive TUI only (not with -p). Project hooks need a "
            "trusted workspace.",
        ),
    )


def _copilot() -> Target:
    entry = {"type": "command", "bash": command("copilot"), "timeoutSec": 10}
    # PascalCase events: their payloads name the event (the camelCase ones do not).
    # `notification` stays camelCase (a PascalCase `Notification` is unconfirmed); its payload
    # carries `hook_event_name` anyway.
    events = (
        "SessionStart",
        "UserPromptSubmit",
        "PreToolUse",
        "notification",
        "Stop",
        "ErrorOccurred",
        "SessionEnd",
    )
    document = {"version": 1, "hooks": {event: [entry] for event in events}}
    return Target(
        "copilot",
        (
            OwnFile(
                ".copilot/hooks/coder-task-agent.json",
                ".github/hooks/coder-task-agent.json",
                text=json.dumps(document, indent=2) + "\n",
            ),
        ),
        notes=(
            "The user file goes in ~/.copilot/hooks; with COPILOT_HOME set, Copilot reads "
            "$COPILOT_HOME/hooks instead (copy the file there). Repository hooks "
            "(.github/hooks) load once the folder is trusted.",
        ),
    )


def _goose() -> Target:
    group = _group("goose", timeout=10)
    events = ("SessionStart", "UserPromptSubmit", "PreToolUse", "Stop", "SessionEnd")
    plugin = ".agents/plugins/coder-task-agent"
    hooks = {"hooks": {event: [group] for event in events}}
    return Target(
        "goose",
        (
            OwnFile(
                f"{plugin}/plugin.json",
                f"{plugin}/plugin.json",
                text=json.dumps({"name": EXECUTABLE, "version": "1.0.0"}, indent=2) + "\n",
            ),
            OwnFile(
                f"{plugin}/hooks/hooks.json",
                f"{plugin}/hooks/hooks.json",
                text=json.dumps(hooks, indent=2) + "\n",
            ),
        ),
        own_dirs=(f"{plugin}/hooks", plugin),
        notes=("Goose 1.34.0 or later loads the plugin; it has no permission event.",),
    )


def _auggie() -> Target:
    wrapper = f"{ROOT}/.augment/hooks/{AUGGIE_WRAPPER}"
    handler = {"type": "command", "command": wrapper, "timeout": 10000}  # milliseconds
    group: Json = {"hooks": [handler]}
    events: Events = (
        ("SessionStart", group),
        ("PreToolUse", {"matcher": ".*", "hooks": [handler]}),
        ("Stop", {"metadata": {"includeConversationData": True}, "hooks": [handler]}),
        ("SessionEnd", group),
    )
    return Target(
        "auggie",
        (
            OwnFile(
                f".augment/hooks/{AUGGIE_WRAPPER}",
                f".augment/hooks/{AUGGIE_WRAPPER}",
                text=f"#!/bin/sh\nexec {command('auggie')}\n",
                mode=0o755,
            ),
            JsonHooks(
                ".augment/settings.json",
                ".augment/settings.json",
                events,
                wrapper=AUGGIE_WRAPPER,
            ),
        ),
        notes=(
            "Auggie's prompt-submit event name is unconfirmed, so none is registered: the "
            "status turns working at the first tool call, not at the prompt.",
        ),
    )


def _kiro() -> Target:
    triggers = ("SessionStart", "UserPromptSubmit", "PreToolUse", "Stop")
    document = {
        "version": "v1",
        "hooks": [
            {
                "name": f"{EXECUTABLE} {trigger}",
                "trigger": trigger,
                "action": {"type": "command", "command": command("kiro")},
                "enabled": True,
            }
            for trigger in triggers
        ],
    }
    path = ".kiro/hooks/coder-task-agent.json"
    return Target(
        "kiro",
        (OwnFile(path, path, text=json.dumps(document, indent=2) + "\n"),),
        notes=(
            "This is Kiro CLI 3.x's hooks file. Kiro documents it in the workspace "
            "(--scope project); a user-level ~/.kiro/hooks is unconfirmed. Kiro 2.x reads "
            "hooks from the agent's own config instead (see docs/hook-install.md).",
        ),
    )


def _opencode() -> Target:
    return Target(
        "opencode",
        (
            OwnFile(
                ".config/opencode/plugins/coder-task-agent.js",
                ".opencode/plugins/coder-task-agent.js",
                resource="opencode.js",
            ),
        ),
        notes=("OpenCode loads plugins when it starts: restart a running OpenCode.",),
    )


TARGETS: dict[str, Target] = {
    target.agent: target
    for target in (
        _claude(),
        _codex(),
        _gemini(),
        _qwen(),
        _cursor(),
        _copilot(),
        _goose(),
        _auggie(),
        _kiro(),
        _opencode(),
    )
}
