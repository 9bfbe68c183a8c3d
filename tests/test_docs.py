"""The documentation against the code: the facts a reader copies (exit codes, variables, rule
numbers, log event names, commands) and every link between the pages.

Why: these pages are written by hand beside the code they describe, and nothing else notices
when one drifts (README's rule numbers once disagreed with agent/rules.py's). Each check reads
the page as a reader would, a table or a numbered list, and compares it with the code's own list.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import io
import re
import shlex
from pathlib import Path

import pytest

from agent import rules
from agent.cli import _parser
from agent.config import VARIABLES
from agent.hooks import AGENTS
from agent.hooks.install import _parser as install_parser
from agent.models import ExitCode

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
PAGES = [
    README,
    *sorted(DOCS.glob("*.md")),
    ROOT / "devkit" / "README.md",
    ROOT / "bench" / "README.md",
]
LINK = re.compile(r"\]\(([^)\s]+)\)")  # the target of [text](target); text may hold [ ]


def section(page: Path, heading: str) -> str:
    """The text under `heading` (a `#` line, any level) up to the next heading of any level."""
    text = page.read_text(encoding="utf-8")
    match = re.search(rf"^#+ {re.escape(heading)}\n(.*?)(?=^#|\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"{page.name} has no heading {heading!r}"
    return match.group(1)


def first_column(text: str) -> list[str]:
    """The first cell of every row of the Markdown tables in `text`, header and rule excluded."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    cells = [row.split("|")[1].strip() for row in rows]
    return [cell for cell in cells if cell and not set(cell) <= {"-"}][1:]


def numbered(text: str) -> list[int]:
    """The numbers of a Markdown numbered list (`1. ...` at the start of a line)."""
    return [int(n) for n in re.findall(r"^(\d+)\. ", text, re.MULTILINE)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)
    return {slug(h) for h in re.findall(r"^#+ (.*)$", text, re.MULTILINE)}


def test_the_exit_code_table_is_the_enum() -> None:
    codes = {int(cell) for cell in first_column(section(DOCS / "operations.md", "Exit codes"))}
    assert codes == {code.value for code in ExitCode}


def test_every_variable_the_program_reads_is_on_the_configuration_page() -> None:
    page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert [name for name in VARIABLES if f"`{name}`" not in page] == []


@pytest.mark.parametrize(
    ("page", "heading"),
    [
        (DOCS / "configuration.md", "Configuration"),
        (README, "The variables a template author sets"),
    ],
)
def test_every_variable_a_table_names_exists(page: Path, heading: str) -> None:
    names = re.findall(r"`([A-Z][A-Z0-9_]+)`", " ".join(first_column(section(page, heading))))
    assert names, "the table was found"
    assert [name for name in names if name not in VARIABLES] == []


def test_the_rules_page_numbers_the_rules_as_the_code_does() -> None:
    assert rules.__doc__
    in_code = numbered(rules.__doc__)
    assert in_code == list(range(1, len(in_code) + 1))
    assert numbered((DOCS / "rules.md").read_text(encoding="utf-8")) == in_code


def rules_list(text: str) -> str:
    """The numbered list of rules in `text`, from `1. ` to the first line that is not part of
    it, whitespace normalised (the docstring and the page wrap alike, but need not)."""
    lines = text[re.search(r"^1\. ", text, re.MULTILINE).start() :].splitlines()  # type: ignore[union-attr]
    kept = []
    for line in lines:
        if line and not (line[0].isdigit() or line[0] == " "):
            break
        kept.append(line)
    return " ".join(" ".join(kept).split())


def test_the_rules_page_says_what_the_code_says() -> None:
    assert rules.__doc__
    page = (DOCS / "rules.md").read_text(encoding="utf-8")
    assert rules_list(page) == rules_list(rules.__doc__)


def test_every_rule_number_the_docs_mention_exists() -> None:
    assert rules.__doc__
    known = set(numbered(rules.__doc__))
    mentioned = {
        (page.name, int(n))
        for page in PAGES
        for n in re.findall(r"\brules? (\d+)\b", page.read_text(encoding="utf-8"))
    }
    assert {(name, n) for name, n in mentioned if n not in known} == set()


@pytest.mark.parametrize(
    ("page", "heading"),
    [(DOCS / "operations.md", "Logs and troubleshooting"), (DOCS / "stop-hook.md", "What it logs")],
)
def test_every_log_event_a_page_lists_is_logged_by_the_product(page: Path, heading: str) -> None:
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "agent").rglob("*.py"))
    events = set(re.findall(r"`([a-z]+(?:_[a-z]+)+)`", section(page, heading)))
    events -= {"stop_hook_active"}  # Claude Code's field, not an event of ours
    assert len(events) > 5, "the event names were found"
    assert sorted(e for e in events if f'"{e}"' not in source) == []


def test_the_readme_command_table_has_a_page_for_every_command() -> None:
    parser = _parser()
    commands = next(
        action.choices
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    table = section(README, "Commands")
    for command in commands:
        row = next((r for r in table.splitlines() if f"[`coder-task-agent {command}" in r), None)
        assert row, f"README's command table has no row for {command}"
        target = LINK.search(row)
        assert target, row
        assert (ROOT / target.group(1)).is_file(), row


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists() or (file.suffix == ".md" and anchor and anchor not in anchors(file)):
            broken.append(target)
    assert broken == []


def test_the_hooks_page_has_a_row_for_every_agent_of_the_registry() -> None:
    rows = first_column(section(DOCS / "hooks.md", "Agents"))
    assert rows == [f"`{name}`" for name in AGENTS]


def test_the_readme_stays_a_five_minute_read() -> None:
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 200


def architecture_rooms() -> list[str]:
    """Every module the architecture page's table names (first column), relative to `agent`."""
    cells = first_column(section(DOCS / "architecture.md", "Rooms"))
    return [name for cell in cells for name in re.findall(r"`([^`]+)`", cell)]


def module_file(name: str) -> Path:
    """The file of `name` as the architecture page writes it (`stop.oneshot`, `hooks/x.js`)."""
    if "/" in name:
        return ROOT / "agent" / name
    path = ROOT.joinpath("agent", *name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def test_every_module_the_architecture_page_names_exists() -> None:
    rooms = architecture_rooms()
    assert len(rooms) > 30, "the table was found"
    assert [name for name in rooms if not module_file(name).is_file()] == []


def test_every_module_of_the_product_is_on_the_architecture_page() -> None:
    page = (DOCS / "architecture.md").read_text(encoding="utf-8")
    product = ROOT / "agent"
    missing = []
    for path in sorted([*product.rglob("*.py"), *product.rglob("*.js")]):
        relative = path.relative_to(product)
        if relative == Path("__init__.py"):
            continue  # the package itself
        parts = relative.with_suffix("").parts
        dotted = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if f"`{dotted}`" not in page and f"`{relative.as_posix()}`" not in page:
            missing.append(relative.as_posix())
    assert missing == []


def test_the_hooks_page_gives_each_agent_one_install_line_the_cli_takes() -> None:
    rows = [
        line.split("|")[1:3]
        for line in section(DOCS / "hooks.md", "Agents").splitlines()
        if line.startswith("| `")
    ]
    assert [agent.strip() for agent, _ in rows] == [f"`{name}`" for name in AGENTS]
    parser = install_parser()
    for agent, line in rows:
        argv = line.strip().strip("`").split()
        assert argv[:4] == ["coder-task-agent", "hook", "install", agent.strip().strip("`")]
        parser.parse_args(argv[2:])  # exits (SystemExit) on a line the command would refuse


def test_the_readme_template_installs_the_hooks_with_the_command() -> None:
    text = README.read_text(encoding="utf-8")
    template = text[text.index("## In a Coder template") : text.index("## Commands")]
    assert "coder-task-agent hook install claude-code" in template
    assert "coder-task-agent hook install codex" in template
    assert "jq" not in template


def test_every_test_a_page_cites_exists() -> None:
    # A page that cites a test as the proof of a behaviour must cite one that runs: a renamed or
    # deleted test leaves the claim without its proof (docs/faults.md cited four such names).
    files = [*(ROOT / "tests").rglob("*.py"), *(ROOT / "devkit" / "tests").rglob("*.py")]
    defined = {path.stem for path in files} | {
        name
        for path in files
        for name in re.findall(r"def (test_\w+)", path.read_text(encoding="utf-8"))
    }
    cited = {
        (page.name, name)
        for page in PAGES
        for name in re.findall(r"`(?:[\w/.]+::)?(test_[\w*]+)", page.read_text(encoding="utf-8"))
    }
    assert len(cited) > 100, "the pages cite their tests in backticks"
    missing = sorted(
        (page, name) for page, name in cited if not fnmatch.filter(defined, name.split("[")[0])
    )
    assert missing == []


# -- what a reader copies: command lines, variable names, defaults, names in backticks ---------

# The names a page may print that belong to others: the test's own tooling, Terraform's and the
# agentapi module's arguments, the agents' payloads, libraries and the system.
FOREIGN_VARIABLES = {
    "CODER_TASK_AGENT_CI_CACHE",  # scripts/system-setup.sh and tests/system: not the product's
}
FOREIGN_NAMES = {
    # Coder's Terraform resources and the agentapi module's arguments.
    *("coder_app", "coder_script", "run_on_start", "run_on_stop", "agentapi_port"),
    *("enable_state_persistence", "module_dir_name", "pid_file_path", "task_log_snapshot"),
    # The agents' own payload fields and values (docs/hooks.md).
    *("agent_completed", "agent_needs_input", "apply_patch", "auth_success", "error_context"),
    *("session_id", "stop_hook_active", "stop_reason", "tool_input"),
    # Libraries and the system.
    *("current_time", "perf_counter", "sleep_until", "default_ulimits", "no_new_privs"),
}
CODE_BLOCK = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
# `coder-task-agent COMMAND ...` or `python -m agent COMMAND ...`, not a path such as
# /opt/coder-task-agent/venv nor coder-task-agent-dev (its own check below).
COMMAND_LINE = re.compile(
    r"(?<![\w/.-])(?:[\w./-]*/)?(?:coder-task-agent|python -m agent) (?=[a-z])"
)
# What a page writes in place of a value: the first agent, a state.
PLACEHOLDERS = {"AGENT": next(iter(AGENTS)), "STATE": "working", "PAYLOAD": "{}"}


def printed_lines() -> list[tuple[str, str]]:
    """(page, text) for every line of a code block (continuations joined) and every inline
    code span of every page."""
    lines = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        prose = CODE_BLOCK.sub("", text)
        for block in CODE_BLOCK.findall(text):
            for line in block.replace("\\\n", " ").splitlines():
                if line.lstrip().startswith("#"):
                    prose += "\n" + line  # a comment: prose, its spans a name or a command
                else:
                    lines.append((page.name, line))
        lines += [(page.name, span) for span in re.findall(r"`([^`\n]+)`", prose)]
    return lines


def command_lines() -> list[tuple[str, list[str]]]:
    """Every `coder-task-agent` command a page prints for a reader to run, as the argument list
    the program gets: up to the first shell operator or comment, placeholders filled in. A
    synopsis (`[--flag]`, `...`, `COMMAND`) is not a command line."""
    found = []
    for page, line in printed_lines():
        match = COMMAND_LINE.search(line)
        if not match:
            continue
        rest = line[match.end() :]
        if line[: match.start()].endswith('"'):  # a command inside a JSON string: its own text
            rest = rest[: rest.index('"')]
        lexer = shlex.shlex(rest, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        argv = []
        for token in lexer:
            if token in {"&", "&&", "||", "|", ";", ">>", ">", "<", "2>&1"} or token[0] in "<>":
                break
            argv.append(PLACEHOLDERS.get(token, token))
        if any(t.startswith("[") or t in {"...", "COMMAND"} or "|" in t for t in argv):
            continue
        if line == match.group() + argv[0]:
            continue  # `coder-task-agent report` in prose names the command
        found.append((page, argv))
    return found


def test_every_command_line_a_page_prints_is_one_the_program_takes() -> None:
    lines = command_lines()
    assert len(lines) > 20, "the pages' command lines were found"
    parser, installer = _parser(), install_parser()
    refused = []
    for page, argv in lines:
        try:
            with (
                contextlib.redirect_stderr(io.StringIO()),
                contextlib.redirect_stdout(io.StringIO()),
            ):
                if argv[:2] in (["hook", "install"], ["hook", "uninstall"]):
                    installer.parse_args(argv[1:])
                else:
                    parser.parse_args(argv)
        except SystemExit as exit_:
            if exit_.code != 0 or argv[-1:] not in (["--help"], ["-h"]):
                refused.append((page, " ".join(argv)))
    assert refused == []


def test_every_devkit_command_a_page_prints_exists() -> None:
    from standins.cli import COMMANDS  # noqa: PLC0415 - the devkit, for this test only

    printed = {
        (page, name)
        for page, line in printed_lines()
        for name in re.findall(r"coder-task-agent-dev ([a-z][\w-]*)", line)
    }
    assert printed, "the pages' devkit commands were found"
    assert {(page, name) for page, name in printed if name not in COMMANDS} == set()


def test_every_variable_a_page_names_is_read_by_the_program() -> None:
    # The variables a template author copies: a misspelt or renamed one is silently ignored
    # (or warned about as a typo) by the daemon, so every name on every page must be one it reads.
    files = [*PAGES, *(ROOT / "systemd").rglob("*"), ROOT / "Dockerfile"]
    named = {
        (path.name, name)
        for path in files
        if path.is_file()
        for name in re.findall(r"\b(?:CODER|ARG)_[A-Z0-9_]*[A-Z0-9]\b", path.read_text("utf-8"))
    }
    assert len(named) > 20, "the variables were found"
    unknown = {(p, n) for p, n in named if n not in VARIABLES and n not in FOREIGN_VARIABLES}
    assert unknown == set()


def test_every_default_the_configuration_page_gives_is_the_codes() -> None:
    rows = [
        [cell.strip() for cell in line.split("|")[1:3]]
        for line in section(DOCS / "configuration.md", "Configuration").splitlines()
        if line.startswith("| `")
    ]
    assert len(rows) > 15, "the table was found"
    wrong = []
    for name_cell, default_cell in rows:
        variable = VARIABLES.get(name_cell.strip("`"))
        if variable is None or variable.field is None:
            continue  # a file, a credential: no default
        value = re.fullmatch(r"`([^`]+)`", default_cell)
        printed = variable.parse(value.group(1)) if value else None
        if printed != variable.default:
            wrong.append((variable.name, default_cell, variable.default))
    assert wrong == []


def test_every_name_a_page_puts_in_backticks_is_one_the_code_knows() -> None:
    # Log events above all (faults.md, hooks.md, report.md... name them in their prose, beyond
    # the tables checked above): a renamed event leaves the old name on the page, and a reader
    # greps the log for it in vain. A name is known when the product says it (a quoted string:
    # events and fields), defines it (a function, a test, a module), or is someone else's.
    product = [*(ROOT / "agent").rglob("*.py"), *(ROOT / "agent").rglob("*.js")]
    said = {
        name
        for path in product
        for name in re.findall(r"[\"']([a-z]+(?:_[a-z0-9]+)+)[\"']", path.read_text("utf-8"))
    }
    files = [
        path for d in ("agent", "devkit", "bench", "tests") for path in (ROOT / d).rglob("*.py")
    ]
    defined = {path.stem for path in files} | {
        name for path in files for name in re.findall(r"def (\w+)", path.read_text("utf-8"))
    }
    named = {
        (page.name, name)
        for page in PAGES
        for name in re.findall(r"`([a-z]+(?:_[a-z0-9]+)+)`", page.read_text("utf-8"))
    }
    assert len(named) > 100, "the names were found"
    known = said | defined | FOREIGN_NAMES
    assert sorted((page, name) for page, name in named if name not in known) == []


def test_every_setting_the_deploy_page_quotes_from_the_system_unit_is_the_units() -> None:
    # `TimeoutStopSec=15`, `WatchdogSec=30`...: a reader sizes the shutdown budget by them. A
    # directive the unit sets, quoted with a value, must be one of its lines (a directive the
    # unit leaves out is advice for a drop-in).
    lines = (ROOT / "systemd" / "coder-task-agent.service").read_text("utf-8").splitlines()
    set_here = {line.split("=")[0] for line in lines if re.match(r"[A-Z]\w+=", line)}
    text = CODE_BLOCK.sub("", section(DOCS / "deploy.md", "The system unit"))
    quoted = re.findall(r"`([A-Z]\w+=[^`]+)`", text)
    assert len(quoted) > 5, "the settings were found"
    assert [q for q in quoted if q.split("=")[0] in set_here and q not in lines] == []
