"""The documentation against the code: the facts a reader copies (exit codes, variables, rule
numbers, log event names, commands) and every link between the pages.

Why: these pages are written by hand beside the code they describe, and nothing else notices
when one drifts (README's rule numbers once disagreed with agent/rules.py's). Each check reads
the page as a reader would, a table or a numbered list, and compares it with the code's own list.
"""

from __future__ import annotations

import argparse
import fnmatch
import re
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
