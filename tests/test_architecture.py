"""The import rules of README's "Architecture" section, checked on the source (ast, lazy imports
included), so a change that breaks the shape fails here rather than in review."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ROOT / "agent"
# Pure decision modules: no I/O, no clock, no globals; they import only each other and these
# parts of the standard library.
PURE = {"agent.models", "agent.errors", "agent.status", "agent.snapshot", "agent.drpc"}
PURE |= {"agent.hookmap", "agent.redaction", "agent.conversation", "agent.stoppath"}
PURE_STDLIB = {
    "__future__",
    "collections",
    "collections.abc",
    "dataclasses",
    "enum",
    "functools",
    "hashlib",
    "itertools",
    "json",
    "math",
    "re",
    "typing",
    "unicodedata",
}
# Who may import what: the daemon is started by the CLI only; the watchers feed the daemon only.
ONLY_FROM = {
    "agent.daemon": {"agent.cli"},
    "agent.watchers": {"agent.daemon"},
}
DEV_TOOLS = {"standins", "devkit", "bench", "tests"}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def imports(source: str, module: str) -> set[str]:
    """Every module `source` imports, at any depth; `from agent import x` counts as agent.x."""
    found: set[str] = set()
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([package, *([base] if base else [])])
            found.add(base)
            if base == "agent":
                found.update(f"agent.{alias.name}" for alias in node.names)
    found.discard("agent")
    return found


def product() -> dict[str, set[str]]:
    return {
        module_name(path): imports(path.read_text(encoding="utf-8"), module_name(path))
        for path in sorted(PRODUCT.rglob("*.py"))
    }


def test_pure_modules_import_no_io() -> None:
    graph = product()
    assert graph.keys() >= PURE, "a pure module was renamed: update README and this list"
    offenders = {
        f"{module} imports {imported}"
        for module in PURE
        for imported in graph[module]
        if imported not in PURE and imported not in PURE_STDLIB
    }
    assert offenders == set()


def test_who_may_import_whom() -> None:
    offenders = {
        f"{module} imports {imported}"
        for module, imported_modules in product().items()
        for imported in imported_modules
        if imported in ONLY_FROM and module not in ONLY_FROM[imported]
    }
    assert offenders == set()


def test_the_product_never_imports_the_stand_ins_or_other_dev_tools() -> None:
    offenders = {
        f"{module} imports {imported}"
        for module, imported_modules in product().items()
        for imported in imported_modules
        if imported.split(".")[0] in DEV_TOOLS
    }
    assert offenders == set()


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import httpx", {"httpx"}),
        ("def f():\n    from agent import daemon, watchers\n", {"agent.daemon", "agent.watchers"}),
        ("from .models import AppState", {"agent.models"}),
        ("from standins.coder import main", {"standins.coder"}),
    ],
)
def test_the_checker_sees_every_form_of_import(source: str, expected: set[str]) -> None:
    assert imports(source, "agent.status") == expected
