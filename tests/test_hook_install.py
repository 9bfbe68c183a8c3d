"""`hook install` / `hook uninstall` (agent.hooks.install, agent.hooks.targets).

The promise tested here: install appends our entries and touches no byte of the user's (their
file is a subsequence of the result, and parses to theirs plus ours); a second install changes
nothing; uninstall gives back the user's file byte for byte; a file that cannot be edited safely
is refused, untouched, with exit 2 and one line; --dry-run writes nothing.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomlkit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.hooks import AGENTS, install, install_targets
from agent.hooks.targets import JsonHooks, OwnFile

ROOT = Path(__file__).resolve().parent.parent


def run(*argv: str, home: Path, cwd: Path | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = install.main(list(argv), home=home, cwd=cwd or home, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` with its bytes (directories are not files)."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def is_subsequence(small: str, big: str) -> bool:
    rest = iter(big)
    return all(char in rest for char in small)


def strip_comments(text: str) -> str:
    """JSONC to JSON: comments out, strings (which may hold `//` or `/*`) kept."""
    return re.sub(
        r'("(?:\\.|[^"\\])*")|//[^\n]*|/\*.*?\*/', lambda m: m.group(1) or "", text, flags=re.S
    )


def ours(agent: str) -> str:
    return f"coder-task-agent hook {agent}"


def commands_in(value: object) -> list[str]:
    found: list[str] = []
    if isinstance(value, list):
        for item in value:
            found += commands_in(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key in ("command", "bash") and isinstance(item, str):
                found.append(item)
            else:
                found += commands_in(item)
    return found


# -- the table: what each agent gets in an empty home -------------------------------------------

# Claude Code's hooked events; Qwen Code, its fork, gets the same.
CLAUDE_STYLE_EVENTS = {
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PermissionRequest",
    "Notification",
    "Stop",
    "StopFailure",
    "SessionEnd",
}
EXPECTED = {
    "claude-code": (
        ".claude/settings.json",
        CLAUDE_STYLE_EVENTS,
    ),
    "codex": (
        ".codex/hooks.json",
        {
            "SessionStart",
            "UserPromptSubmit",
            "PreToolUse",
            "PermissionRequest",
            "Stop",
            "Interrupt",
            "SessionEnd",
        },
    ),
    "gemini": (
        ".gemini/settings.json",
        {"SessionStart", "BeforeAgent", "BeforeTool", "Notification", "AfterAgent", "SessionEnd"},
    ),
    "qwen": (
        ".qwen/settings.json",
        CLAUDE_STYLE_EVENTS,
    ),
    # Only names Cursor knows: an unknown one voids the whole file.
    "cursor": (
        ".cursor/hooks.json",
        {"sessionStart", "beforeSubmitPrompt", "preToolUse", "stop", "sessionEnd"},
    ),
    "copilot": (
        ".copilot/hooks/coder-task-agent.json",
        {
            "SessionStart",
            "UserPromptSubmit",
            "PreToolUse",
            "notification",
            "Stop",
            "ErrorOccurred",
            "SessionEnd",
        },
    ),
    "goose": (
        ".agents/plugins/coder-task-agent/hooks/hooks.json",
        {"SessionStart", "UserPromptSubmit", "PreToolUse", "Stop", "SessionEnd"},
    ),
    "auggie": (
        ".augment/settings.json",
        {"SessionStart", "PromptSubmit", "PreToolUse", "Notification", "Stop", "SessionEnd"},
    ),
}


def test_every_agent_of_the_brief_has_a_row() -> None:
    assert set(install_targets()) == {*EXPECTED, "kiro", "opencode"}


def test_every_registry_row_gives_its_own_target() -> None:
    """The table is the registry's: each row's mapping module builds the target of its agent."""
    table = install_targets()
    assert list(table) == list(AGENTS)
    for name, agent in AGENTS.items():
        assert table[name].agent == name
        assert agent.install_target() == table[name]


@pytest.mark.parametrize("agent", sorted(EXPECTED))
def test_install_registers_our_command_on_the_status_events(agent: str, tmp_path: Path) -> None:
    relative, events = EXPECTED[agent]
    code, out, err = run("install", agent, home=tmp_path)
    assert (code, err) == (0, "")
    path = tmp_path / relative
    assert f"created: {path}" in out
    document = json.loads(path.read_text())
    assert set(document["hooks"]) == events
    for event in events:
        (entry,) = document["hooks"][event]
        programs = commands_in(entry)
        assert programs, event
        if agent == "auggie":
            assert programs == [str(tmp_path / ".augment/hooks/coder-task-agent.sh")]
        else:
            assert programs == [ours(agent)]


def test_kiro_gets_a_3x_hooks_file_of_its_own(tmp_path: Path) -> None:
    assert run("install", "kiro", home=tmp_path)[0] == 0
    document = json.loads((tmp_path / ".kiro/hooks/coder-task-agent.json").read_text())
    assert document["version"] == "v1"
    triggers = [hook["trigger"] for hook in document["hooks"]]
    assert triggers == ["SessionStart", "UserPromptSubmit", "PreToolUse", "Stop"]
    assert {hook["action"]["command"] for hook in document["hooks"]} == {ours("kiro")}


def test_opencode_gets_the_shipped_plugin(tmp_path: Path) -> None:
    assert run("install", "opencode", home=tmp_path)[0] == 0
    shipped = (ROOT / "agent/hooks/opencode.js").read_bytes()
    assert (tmp_path / ".config/opencode/plugins/coder-task-agent.js").read_bytes() == shipped
    assert run("install", "opencode", "--scope", "project", home=tmp_path)[0] == 0
    assert (tmp_path / ".opencode/plugins/coder-task-agent.js").read_bytes() == shipped


def test_codex_gets_notify_and_hooks_with_the_trust_note(tmp_path: Path) -> None:
    code, out, _ = run("install", "codex", home=tmp_path)
    assert code == 0
    config = (tmp_path / ".codex/config.toml").read_text()
    assert tomlkit.parse(config)["notify"] == ["coder-task-agent", "hook", "codex"]
    assert "trusted" in out
    assert "--dangerously-bypass-hook-trust" in out


def test_auggie_gets_an_executable_wrapper(tmp_path: Path) -> None:
    assert run("install", "auggie", home=tmp_path)[0] == 0
    wrapper = tmp_path / ".augment/hooks/coder-task-agent.sh"
    assert wrapper.read_text() == "#!/bin/sh\nexec coder-task-agent hook auggie\n"
    assert os.access(wrapper, os.X_OK)
    assert run("uninstall", "auggie", home=tmp_path)[0] == 0
    assert not wrapper.exists()


@pytest.mark.parametrize("agent", sorted(install_targets()))
def test_a_fresh_home_round_trips_and_install_is_idempotent(agent: str, tmp_path: Path) -> None:
    assert run("install", agent, home=tmp_path)[0] == 0
    installed = tree(tmp_path)
    assert installed
    code, out, _ = run("install", agent, home=tmp_path)
    assert code == 0
    assert tree(tmp_path) == installed
    assert [line.split(":")[0] for line in out.splitlines() if ": /" in line] == [
        "unchanged"
    ] * len(install_targets()[agent].files)
    assert run("uninstall", agent, home=tmp_path)[0] == 0
    assert tree(tmp_path) == {}
    code, out, _ = run("uninstall", agent, home=tmp_path)
    assert code == 0
    assert "nothing of coder-task-agent's found" in out


@pytest.mark.parametrize("agent", sorted(install_targets()))
def test_project_scope_writes_under_the_project(agent: str, tmp_path: Path) -> None:
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    code, _, _ = run(
        "install", agent, "--scope", "project", "--project-dir", str(project), home=home
    )
    assert code == 0
    assert tree(home) == {}
    written = tree(project)
    target = install_targets()[agent]
    assert set(written) == {spec.project for spec in target.files}
    assert run("uninstall", agent, "--project-dir", str(project), home=home)[0] == 0
    assert tree(project) == {}


def test_the_goose_plugin_directory_goes_unless_something_else_is_in_it(tmp_path: Path) -> None:
    plugin = tmp_path / ".agents/plugins/coder-task-agent"
    assert run("install", "goose", home=tmp_path)[0] == 0
    assert json.loads((plugin / "plugin.json").read_text())["name"] == "coder-task-agent"
    assert run("uninstall", "goose", home=tmp_path)[0] == 0
    assert not plugin.exists()
    assert (tmp_path / ".agents/plugins").is_dir()  # not ours alone
    assert run("install", "goose", home=tmp_path)[0] == 0
    (plugin / "README").write_text("mine\n")
    assert run("uninstall", "goose", home=tmp_path)[0] == 0
    assert tree(plugin) == {"README": b"mine\n"}


# -- rich existing files: the user's bytes survive -----------------------------------------------

CLAUDE = """{
    "$schema": "https://json.schemastore.org/claude-code-settings.json",
    "model": "opus",
    "env": {"GREETING": "grüß dich ✓ \\u00e9", "EMPTY": ""},
    "permissions": {
        "allow": ["Bash(npm run test:*)", "Read(~/.zshrc)"],
        "deny": []
    },
    "hooks": {
        "Stop": [
            {
                "hooks": [
                    {"type": "command", "command": "notify-send 'done' \\"ok\\""}
                ]
            }
        ],
        "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "~/guard"}]}],
        "PostToolUse": [ ]
    },
    "statusLine": {"type": "command", "command": "echo hi"},
    "x-unknown": [1, 2.50, 1e3, true, null, {"deep": {"deeper": ["z"]}}]
}"""

CODEX_HOOKS_CRLF_TABS = (
    '{\r\n\t"hooks": {\r\n\t\t"Stop": [\r\n'
    '\t\t\t{"hooks": [{"type": "command", "command": "afplay done.wav"}]}\r\n'
    '\t\t]\r\n\t},\r\n\t"other": 1\r\n}\r\n'
)

GEMINI_JSONC = """// Gemini settings, edited by hand
{
  "theme": "GitHub", // the dark one
  /* hooks below */
  "hooks": {
    "BeforeTool": [
      // block rm
      {"matcher": "run_shell_command", "hooks": [{"type": "command", "command": "guard"}]} // x
    ],
    "AfterModel": []
  },
  "url": "http://example.com/*not a comment*/ and // not one either"
}
"""
GEMINI_VALUE = {
    "theme": "GitHub",
    "hooks": {
        "BeforeTool": [
            {"matcher": "run_shell_command", "hooks": [{"type": "command", "command": "guard"}]}
        ],
        "AfterModel": [],
    },
    "url": "http://example.com/*not a comment*/ and // not one either",
}

QWEN_JSONC = """{
   "model": {"name": "qwen3-coder"},   // model
   "ui": {"theme": "Qwen Dark"}
   // end
}"""
QWEN_VALUE = {"model": {"name": "qwen3-coder"}, "ui": {"theme": "Qwen Dark"}}

CURSOR_ONE_LINE = (
    '{"version": 1, "hooks": {"stop": [{"command": "./audio.sh"}], '
    '"afterFileEdit": [{"command": "fmt"}]}}'
)

AUGGIE = """{
  "model": "claude",
  "hooks": {
    "Stop": [{"hooks": [{"type": "command", "command": "/home/me/stop.sh", "timeout": 5000}]}]
  }
}
"""

RICH = [
    ("claude-code", ".claude/settings.json", CLAUDE, None),
    ("codex", ".codex/hooks.json", CODEX_HOOKS_CRLF_TABS, None),
    ("gemini", ".gemini/settings.json", GEMINI_JSONC, GEMINI_VALUE),
    ("qwen", ".qwen/settings.json", QWEN_JSONC, QWEN_VALUE),
    ("cursor", ".cursor/hooks.json", CURSOR_ONE_LINE, None),
    ("auggie", ".augment/settings.json", AUGGIE, None),
    ("claude-code", ".claude/settings.json", "\ufeff" + CLAUDE + "\n", None),
]


def expected_after(agent: str, before: dict[str, object], home: Path) -> dict[str, object]:
    """The user's document with our entry appended to each of our events."""
    (spec,) = [s for s in install_targets()[agent].files if isinstance(s, JsonHooks)]
    after: dict[str, object] = json.loads(json.dumps(before))
    hooks = after.setdefault("hooks", {})
    assert isinstance(hooks, dict)
    for event, entry in spec.events:
        hooks.setdefault(event, []).append(
            json.loads(json.dumps(entry).replace("{root}", str(home)))
        )
    return after


@pytest.mark.parametrize(("agent", "relative", "text", "value"), RICH)
def test_a_rich_file_keeps_its_bytes(
    agent: str, relative: str, text: str, value: dict[str, object] | None, tmp_path: Path
) -> None:
    path = tmp_path / relative
    path.parent.mkdir(parents=True)
    path.write_bytes(text.encode())
    before = value if value is not None else json.loads(text.removeprefix("\ufeff"))

    code, out, err = run("install", agent, home=tmp_path)
    assert (code, err) == (0, "")
    assert f"changed: {path}" in out
    installed = path.read_bytes().decode()
    assert is_subsequence(text, installed), "install only adds"
    parsed = installed.removeprefix("\ufeff")
    parsed = strip_comments(parsed) if value is not None else parsed
    assert json.loads(parsed) == expected_after(agent, before, tmp_path)
    if "\r\n" in text:
        assert "\n" not in installed.replace("\r\n", "")

    assert run("install", agent, home=tmp_path)[0] == 0
    assert path.read_bytes().decode() == installed

    code, out, _ = run("uninstall", agent, home=tmp_path)
    assert code == 0
    assert path.read_bytes() == text.encode()


def test_our_entries_are_added_in_the_files_own_layout(tmp_path: Path) -> None:
    path = tmp_path / ".claude/settings.json"
    path.parent.mkdir()
    path.write_text(CLAUDE)
    run("install", "claude-code", home=tmp_path)
    lines = path.read_text().splitlines()
    entry = '{"hooks": [{"type": "command", "command": "coder-task-agent hook claude-code"}]}'
    # A list on separate lines gets ours on a line of its own, at the same indentation.
    assert "            " + entry in lines
    # A list on one line gets ours on that line.
    assert any(
        line.startswith('        "PreToolUse": [{') and line.endswith(entry + "],")
        for line in lines
    )
    # A new event, in the file's four spaces.
    at = lines.index('        "SessionStart": [')
    assert lines[at + 1] == "            " + entry


def test_the_cursor_file_holds_only_known_event_names(tmp_path: Path) -> None:
    path = tmp_path / ".cursor/hooks.json"
    path.parent.mkdir()
    path.write_text(CURSOR_ONE_LINE)
    run("install", "cursor", home=tmp_path)
    known = {"sessionStart", "beforeSubmitPrompt", "preToolUse", "stop", "sessionEnd"}
    assert set(json.loads(path.read_text())["hooks"]) == known | {"afterFileEdit"}
    assert "\n" not in path.read_text()  # a one-line file stays on one line


def test_uninstall_keeps_what_the_user_added_after_ours(tmp_path: Path) -> None:
    path = tmp_path / ".claude/settings.json"
    path.parent.mkdir()
    path.write_text(CLAUDE)
    run("install", "claude-code", home=tmp_path)
    document = json.loads(path.read_text())
    text = path.read_text().replace(
        'coder-task-agent hook claude-code"}]}\n        ],\n        "PreToolUse"',
        'coder-task-agent hook claude-code"}]},\n            {"hooks": [{"type": "command", '
        '"command": "later"}]}\n        ],\n        "PreToolUse"',
        1,
    )
    assert text != path.read_text()
    path.write_text(text)
    run("uninstall", "claude-code", home=tmp_path)
    left = json.loads(path.read_text())
    assert [commands_in(e) for e in left["hooks"]["Stop"]] == [
        ["notify-send 'done' \"ok\""],
        ["later"],
    ]
    assert "coder-task-agent" not in path.read_text()
    del document  # what the user had besides is checked byte for byte above


def test_an_entry_naming_us_from_a_directory_counts_as_ours(tmp_path: Path) -> None:
    path = tmp_path / ".cursor/hooks.json"
    path.parent.mkdir()
    mine = (
        '{"version": 1, "hooks": {"stop": [{"command": "/opt/bin/coder-task-agent hook cursor"}]}}'
    )
    path.write_text(mine)
    run("install", "cursor", home=tmp_path)
    assert json.loads(path.read_text())["hooks"]["stop"] == [
        {"command": "/opt/bin/coder-task-agent hook cursor"}
    ]
    run("uninstall", "cursor", home=tmp_path)
    assert not path.exists()  # nothing but ours and the skeleton was left


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
USER_ENTRY = st.fixed_dictionaries(
    {"hooks": st.just([{"type": "command", "command": "theirs"}])},
    optional={"matcher": st.text(max_size=4)},
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    others=st.dictionaries(
        st.text(max_size=5).filter(lambda k: k != "hooks"), JSON_VALUES, min_size=1, max_size=4
    ),
    # Not `{}` (documented: an empty `hooks` of the user's goes with ours).
    events=st.none()
    | st.dictionaries(
        st.sampled_from(["Stop", "PreToolUse", "Mine", "SessionEnd"]),
        st.lists(USER_ENTRY, min_size=1, max_size=2),
        min_size=1,
        max_size=3,
    ),
    indent=st.sampled_from([None, 0, 1, 2, 4, "\t"]),
    separators=st.sampled_from([(",", ":"), (", ", ": "), (" , ", " : ")]),
    ensure_ascii=st.booleans(),
)
def test_any_claude_settings_round_trip(
    *,
    tmp_path_factory: pytest.TempPathFactory,
    others: dict[str, object],
    events: dict[str, object] | None,
    indent: int | str | None,
    separators: tuple[str, str],
    ensure_ascii: bool,
) -> None:
    home = tmp_path_factory.mktemp("home")
    document = dict(others) if events is None else {**others, "hooks": events}
    text = json.dumps(document, indent=indent, separators=separators, ensure_ascii=ensure_ascii)
    path = home / ".claude/settings.json"
    path.parent.mkdir()
    path.write_text(text)
    assert run("install", "claude-code", home=home)[0] == 0
    installed = path.read_text()
    assert is_subsequence(text, installed)
    assert json.loads(installed) == expected_after("claude-code", document, home)
    assert run("install", "claude-code", home=home)[0] == 0
    assert path.read_text() == installed
    assert run("uninstall", "claude-code", home=home)[0] == 0
    assert path.read_text() == text


@pytest.mark.parametrize(
    ("text", "left"),
    [
        ('{\n  "hooks": {},\n  "model": "x"\n}\n', '{\n  "model": "x"\n}\n'),
        ('{"model": "x", "hooks": {"Stop": []}}', '{"model": "x"}'),
        ("{}", None),
        ("  \n", None),
    ],
)
def test_what_uninstall_cannot_tell_from_ours_goes_too(
    text: str, left: str | None, tmp_path: Path
) -> None:
    """Documented: an empty `hooks` or event list, or a file holding nothing else."""
    path = tmp_path / ".claude/settings.json"
    path.parent.mkdir()
    path.write_text(text)
    run("install", "claude-code", home=tmp_path)
    run("uninstall", "claude-code", home=tmp_path)
    if left is None:
        assert not path.exists()
    else:
        assert path.read_text() == left


# -- Codex's config.toml -------------------------------------------------------------------------

CODEX_TOML = """# Codex, edited by hand
model = "gpt-5.5-codex"  # the big one
notify = ["notify-send", "Codex says"] # desktop pop-up

# >>> coder-managed: codex module >>>
approval_policy = "never"
# <<< coder-managed: codex module <<<

[model_providers.local]
base_url = "http://localhost:8080/v1"
wire_api = "responses"

[hooks.state."/home/me/.codex/hooks.json:Stop:0:0"]
trusted_hash = "abc"
"""


def test_codex_wraps_the_users_notify_and_gives_it_back(tmp_path: Path) -> None:
    path = tmp_path / ".codex/config.toml"
    path.parent.mkdir()
    path.write_text(CODEX_TOML)
    code, out, _ = run("install", "codex", home=tmp_path)
    assert code == 0
    assert "keeps running" in out
    config = path.read_text()
    notify = tomlkit.parse(config)["notify"]
    assert notify[:4] == ["coder-task-agent", "hook", "codex", "--then-run"]
    assert json.loads(notify[4]) == ["notify-send", "Codex says"]
    assert len(notify) == 5
    assert config.replace(config.splitlines()[2], "") == CODEX_TOML.replace(
        CODEX_TOML.splitlines()[2], ""
    ), "only the notify line changed"
    assert "# desktop pop-up" in config.splitlines()[2]
    assert run("install", "codex", home=tmp_path)[0] == 0
    assert path.read_text() == config
    assert run("uninstall", "codex", home=tmp_path)[0] == 0
    assert path.read_text() == CODEX_TOML
    assert not (tmp_path / ".codex/hooks.json").exists()


def test_an_empty_codex_config_is_ours_after_install(tmp_path: Path) -> None:
    """Documented: a config.toml holding nothing but our notify is removed by uninstall."""
    path = tmp_path / ".codex/config.toml"
    path.parent.mkdir()
    path.write_text("")
    run("install", "codex", home=tmp_path)
    run("uninstall", "codex", home=tmp_path)
    assert not path.exists()


@pytest.mark.parametrize(
    "text",
    [
        'model = "o3"',
        "[profiles.fast]\nmodel = 'o4-mini'\n",
        "# c\r\n[a]\r\nb = 1\r\n",
        "\ufeffa = 1\n",
        "\n\n[a]\nb = 1",
    ],
)
def test_codex_without_notify_gets_ours_first_and_loses_it_exactly(
    text: str, tmp_path: Path
) -> None:
    path = tmp_path / ".codex/config.toml"
    path.parent.mkdir()
    path.write_bytes(text.encode())
    assert run("install", "codex", home=tmp_path)[0] == 0
    config = path.read_bytes().decode()
    assert tomlkit.parse(config.removeprefix("\ufeff"))["notify"] == [
        "coder-task-agent",
        "hook",
        "codex",
    ]
    assert is_subsequence(text, config)
    assert run("uninstall", "codex", home=tmp_path)[0] == 0
    assert path.read_bytes() == text.encode()


# -- refusals, dry runs, the file system ---------------------------------------------------------


@pytest.mark.parametrize(
    ("agent", "relative", "content", "words"),
    [
        ("claude-code", ".claude/settings.json", b'{"model": "x",}', "not valid JSON"),
        ("claude-code", ".claude/settings.json", b"[1, 2]", "not a JSON object"),
        ("claude-code", ".claude/settings.json", b'{"hooks": []}', "`hooks` is not an object"),
        ("claude-code", ".claude/settings.json", b'{"hooks": {"Stop": {}}}', "`hooks.Stop`"),
        ("claude-code", ".claude/settings.json", b'{"a": 1} // mine', "not valid JSON"),
        ("claude-code", ".claude/settings.json", b'{"a": "\xff"}', "not UTF-8"),
        ("gemini", ".gemini/settings.json", b'{"a": 1 /* open', "not valid JSON"),
        ("codex", ".codex/config.toml", b"model = = 1\n", "not valid TOML"),
        ("codex", ".codex/config.toml", b'notify = "say"\n', "`notify` is not a list"),
        ("codex", ".codex/hooks.json", b"{", "not valid JSON"),
    ],
)
@pytest.mark.parametrize("action", ["install", "uninstall"])
def test_a_file_that_cannot_be_edited_is_refused_untouched(
    *, agent: str, relative: str, content: bytes, words: str, action: str, tmp_path: Path
) -> None:
    path = tmp_path / relative
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    before = tree(tmp_path)
    code, out, err = run(action, agent, home=tmp_path)
    if action == "uninstall" and words in ("`hooks` is not an object", "`hooks.Stop`"):
        assert code == 0  # nothing of ours in there: nothing to refuse
    else:
        assert code == 2
        assert out == ""
        assert err.count("\n") == 1
        assert str(path) in err
        assert words in err
    assert tree(tmp_path) == before


def test_dry_run_prints_the_diff_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / ".codex/config.toml"
    path.parent.mkdir()
    path.write_text(CODEX_TOML)
    before = tree(tmp_path)
    code, out, _ = run("install", "codex", "--dry-run", home=tmp_path)
    assert code == 0
    assert tree(tmp_path) == before
    assert f"--- {path}\n+++ {path}\n" in out
    assert '-notify = ["notify-send", "Codex says"] # desktop pop-up\n' in out
    assert "--- /dev/null\n" in out  # hooks.json would be new
    assert out.endswith("dry run: nothing written\n")
    run("install", "codex", home=tmp_path)
    installed = tree(tmp_path)
    code, out, _ = run("uninstall", "codex", "--dry-run", home=tmp_path)
    assert tree(tmp_path) == installed
    assert "+++ /dev/null" in out


def test_a_file_keeps_its_mode_and_a_symlink_stays_a_symlink(tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles/claude.json"
    dotfiles.parent.mkdir()
    dotfiles.write_text('{"model": "x"}\n')
    dotfiles.chmod(0o600)
    link = tmp_path / ".claude/settings.json"
    link.parent.mkdir()
    link.symlink_to(dotfiles)
    assert run("install", "claude-code", home=tmp_path)[0] == 0
    assert link.is_symlink()
    assert "coder-task-agent" in dotfiles.read_text()
    assert dotfiles.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in dotfiles.parent.iterdir()] == ["claude.json"]  # no temporary left


def test_a_write_error_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / ".claude").write_text("a file where a directory should be")
    code, _, err = run("install", "claude-code", home=tmp_path)
    assert code == 2
    assert err.count("\n") == 1
    assert ".claude" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["install"],
        ["install", "nosuch"],
        ["install", "claude-code", "--scope", "user", "--project-dir", "."],
        ["install", "claude-code", "--project-dir", "does/not/exist"],
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(*argv, home=tmp_path)
    assert code == 2
    assert tree(tmp_path) == {}
    assert "Traceback" not in err + capsys.readouterr().err


def test_a_codex_install_with_one_bad_file_writes_neither(tmp_path: Path) -> None:
    (tmp_path / ".codex").mkdir()
    (tmp_path / ".codex/hooks.json").write_text("{oops")
    assert run("install", "codex", home=tmp_path)[0] == 2
    assert tree(tmp_path) == {".codex/hooks.json": b"{oops"}


def test_runs_us_reads_the_command_words() -> None:
    assert install.runs_us("coder-task-agent hook codex", "codex")
    assert install.runs_us("/usr/local/bin/coder-task-agent hook codex --log-level debug", "codex")
    assert install.runs_us("exec '/a b/coder-task-agent' hook codex", "codex")
    assert not install.runs_us("coder-task-agent hook claude-code", "codex")
    assert not install.runs_us("echo coder-task-agent", "codex")
    assert not install.runs_us("unbalanced 'quote", "codex")
    assert install.runs_us("/h/.augment/hooks/coder-task-agent.sh", "auggie", "coder-task-agent.sh")


def test_own_files_are_data_only() -> None:
    """The table is data: every own file is text or a shipped resource."""
    for target in install_targets().values():
        for spec in target.files:
            if isinstance(spec, OwnFile):
                assert spec.text or spec.resource


# -- end to end: the real command ---------------------------------------------------------------


def test_the_command_installs_and_uninstalls_in_a_project(tmp_path: Path) -> None:
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    settings_file = project / ".claude/settings.json"
    settings_file.parent.mkdir()
    settings_file.write_text(CLAUDE)
    environment = {**os.environ, "HOME": str(home)}
    command = [sys.executable, "-m", "agent", "hook"]
    where = ["claude-code", "--scope", "project", "--project-dir", str(project)]
    done = subprocess.run(
        [*command, "install", *where], env=environment, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert f"changed: {settings_file}" in done.stdout
    assert ours("claude-code") in settings_file.read_text()
    assert tree(home) == {}
    done = subprocess.run(
        [*command, "uninstall", *where],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert settings_file.read_text() == CLAUDE


def test_the_command_refuses_a_broken_file_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / ".gemini").mkdir()
    (tmp_path / ".gemini/settings.json").write_text("{ not json")
    done = subprocess.run(
        [sys.executable, "-m", "agent", "hook", "install", "gemini"],
        env={**os.environ, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("coder-task-agent: hook install: ")
    assert done.stderr.count("\n") == 1
    assert (tmp_path / ".gemini/settings.json").read_text() == "{ not json"


@pytest.mark.parametrize("kind", ["fifo", "directory", "too large"])
@pytest.mark.parametrize("action", ["install", "uninstall"])
def test_a_settings_path_that_is_no_regular_file_or_too_large_is_refused(
    kind: str, action: str, tmp_path: Path
) -> None:
    # A FIFO in its place hung the command for ever (read whole, without a cap): a subprocess,
    # so that a hang is the timeout's failure, not the suite's.
    path = tmp_path / ".claude/settings.json"
    path.parent.mkdir()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        path.write_bytes(b'{"a": "' + b"x" * install.MAX_FILE_BYTES + b'"}')
    done = subprocess.run(
        [sys.executable, "-m", "agent", "hook", action, "claude-code"],
        env={**os.environ, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert str(path) in done.stderr
    said = "larger than" if kind == "too large" else "not a regular file"
    assert said in done.stderr
    assert sorted(p.name for p in path.parent.iterdir()) == ["settings.json"], "nothing written"


def test_tomlkit_is_imported_only_when_a_toml_file_is_edited() -> None:
    probe = "import sys, agent.cli, agent.hooks.install; print('tomlkit' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout == "False\n"
