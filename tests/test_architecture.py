"""The import rules of docs/architecture.md, checked on the source (ast, lazy imports included),
so a change that breaks the shape fails here rather than in review."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from agent.hooks import AGENTS

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ROOT / "agent"
# Pure decision modules: no I/O, no clock, no globals; they import only each other and these
# parts of the standard library.
PURE = {"agent.models", "agent.errors", "agent.rules", "agent.snapshot", "agent.coder.drpc"}
PURE |= {"agent.conversation", "agent.stop.outcome"}
# The hooks' registry, their vocabulary and rules, every agent's mapping module, and the
# vocabulary of install targets (each mapping module builds its agent's target).
PURE |= {"agent.hooks", "agent.hooks.events", "agent.hooks.payload"}
PURE |= {"agent.hooks.targets"}
PURE |= {f"agent.hooks.{agent.module}" for agent in AGENTS.values()}
PURE_STDLIB = {
    "__future__",
    "bisect",
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
# Who may import what: the daemon is started by the CLI only; the watchers feed the daemon only;
# its stop path is a part of the daemon, which owns it.
ONLY_FROM = {
    "agent.daemon.daemon": {"agent.cli"},
    "agent.daemon.watchers": {"agent.daemon.daemon"},
    "agent.daemon.stop": {"agent.daemon.daemon"},
}
DEV_TOOLS = {"standins", "devkit", "bench", "tests"}
# The one clock seam (issue 12): only agent.clock reads anyio's clock, sleeps on it or opens a
# cancel scope with a deadline; everything else takes an injected `Clock`, so tests drive time.
CLOCK = "agent.clock"
ANYIO_TIME = {"sleep", "sleep_until", "current_time", "move_on_after", "fail_after"}
# Reading the process's clock to schedule or wait in async code goes through the Clock too.
STDLIB_TIME = {"monotonic", "monotonic_ns", "perf_counter", "sleep"}
# Stdlib-only fast paths (tests/test_import_discipline.py): they must not import anyio, so
# agent.clock is out of their reach and they keep the standard library's timeouts
# (`socket.settimeout`, `time.monotonic`). Add a module here only for that reason.
STDLIB_FAST_PATHS = {"agent.reportsocket.client", "agent.hooks.command"}
# The one reader of the environment (issue 12): every variable is read, parsed and named in
# errors there, and listed in its table (which the misspelling warnings are judged against).
ENVIRONMENT = "agent.config"
OS_ENVIRONMENT = {"environ", "environb", "getenv", "getenvb"}
# A class past this many lines holds more than one concern: split it before it grows (issue 19).
MAX_CLASS_LINES = 250


def module_name(path: Path) -> str:
    """The module's import name: a package's `__init__.py` is the package, as Python names it
    (so an import of the package and the package's own imports meet in one node)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


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
            if base.split(".")[0] == "agent":
                found.update(
                    f"{base}.{alias.name}"
                    for alias in node.names
                    if _is_module(f"{base}.{alias.name}")
                )
    found.discard("agent")
    return found


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def product() -> dict[str, set[str]]:
    return {
        module_name(path): imports(path.read_text(encoding="utf-8"), module_name(path))
        for path in sorted(PRODUCT.rglob("*.py"))
    }


def test_pure_modules_import_no_io() -> None:
    graph = product()
    assert graph.keys() >= PURE, (
        "a pure module was renamed: update docs/architecture.md and this list"
    )
    offenders = {
        f"{module} imports {imported}"
        for module in PURE
        for imported in graph[module]
        if imported not in PURE and imported not in PURE_STDLIB
    }
    assert offenders == set()


def test_who_may_import_whom() -> None:
    graph = product()
    assert graph.keys() >= ONLY_FROM.keys(), "renamed: update ONLY_FROM and docs/architecture.md"
    offenders = {
        f"{module} imports {imported}"
        for module, imported_modules in graph.items()
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


def test_no_class_holds_more_than_one_concern() -> None:
    offenders = {}
    for path in sorted(PRODUCT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                length = node.end_lineno - node.lineno + 1
                if length > MAX_CLASS_LINES:
                    offenders[f"{module_name(path)}.{node.name}"] = length
    assert offenders == {}


def clock_reads(source: str) -> set[str]:
    """Where `source` reads or waits on time outside the Clock seam (`name` at line N)."""
    found: set[str] = set()
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "anyio" and node.attr in ANYIO_TIME:
                found.add(f"anyio.{node.attr} at line {node.lineno}")
        elif isinstance(node, ast.ImportFrom) and node.module == "anyio":
            found.update(
                f"anyio.{alias.name} at line {node.lineno}"
                for alias in node.names
                if alias.name in ANYIO_TIME
            )
        elif isinstance(node, ast.AsyncFunctionDef):
            found.update(
                f"time.{inner.attr} at line {inner.lineno}"
                for inner in ast.walk(node)
                if isinstance(inner, ast.Attribute)
                and isinstance(inner.value, ast.Name)
                and inner.value.id == "time"
                and inner.attr in STDLIB_TIME
            )
    return found


def test_only_the_clock_module_reads_time_or_sets_deadlines() -> None:
    sources = {
        module_name(path): path.read_text(encoding="utf-8") for path in PRODUCT.rglob("*.py")
    }
    assert sources.keys() >= STDLIB_FAST_PATHS | {CLOCK}, (
        "renamed: update this test and docs/architecture.md"
    )
    offenders = {
        f"{module}: {read}"
        for module, source in sources.items()
        if module != CLOCK and module not in STDLIB_FAST_PATHS
        for read in clock_reads(source)
    }
    assert offenders == set()


def environment_reads(source: str) -> set[str]:
    """Where `source` reads the process environment (`os.name` at line N)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in ("os", "posix")
            and node.attr in OS_ENVIRONMENT
        ):
            found.add(f"{node.value.id}.{node.attr} at line {node.lineno}")
        elif isinstance(node, ast.ImportFrom) and node.module in ("os", "posix"):
            found.update(
                f"{node.module}.{alias.name} at line {node.lineno}"
                for alias in node.names
                if alias.name in OS_ENVIRONMENT
            )
    return found


def test_only_the_environment_module_reads_the_environment() -> None:
    sources = {
        module_name(path): path.read_text(encoding="utf-8") for path in PRODUCT.rglob("*.py")
    }
    assert ENVIRONMENT in sources, "renamed: update this test, docs/architecture.md and config.py"
    assert environment_reads(sources[ENVIRONMENT]), "the reader itself is seen by the checker"
    offenders = {
        f"{module}: {read}"
        for module, source in sources.items()
        if module != ENVIRONMENT
        for read in environment_reads(source)
    }
    assert offenders == set()


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("x = os.environ.get('A')", {"os.environ at line 1"}),
        ("def f():\n    return os.getenv('A')", {"os.getenv at line 2"}),
        ("from os import environ", {"os.environ at line 1"}),
        ("os.environb[b'A']", {"os.environb at line 1"}),
        # Another process's environment is a file: no environment read of ours.
        ("Path(f'/proc/{pid}/environ').read_bytes()", set()),
        ("os.getuid()", set()),
    ],
)
def test_the_environment_checker_sees_every_form(source: str, expected: set[str]) -> None:
    assert environment_reads(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import anyio\nanyio.sleep(1)", {"anyio.sleep at line 2"}),
        ("with anyio.fail_after(2):\n    pass", {"anyio.fail_after at line 1"}),
        ("from anyio import move_on_after, Event", {"anyio.move_on_after at line 1"}),
        ("t = anyio.current_time", {"anyio.current_time at line 1"}),
        ("async def f():\n    return time.monotonic()", {"time.monotonic at line 2"}),
        ("async def f():\n    def g():\n        time.sleep(1)", {"time.sleep at line 3"}),
        # Sync code before the event loop exists (the stop hook's first step) may time itself.
        ("def f():\n    return time.monotonic()", set()),
        ("anyio.lowlevel.checkpoint\nclock.fail_after(1)", set()),
    ],
)
def test_the_clock_checker_sees_every_form(source: str, expected: set[str]) -> None:
    assert clock_reads(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import httpx", {"httpx"}),
        (
            "def f():\n    from agent.daemon import daemon, watchers\n",
            {"agent.daemon", "agent.daemon.daemon", "agent.daemon.watchers"},
        ),
        ("from .models import AppState", {"agent.models"}),
        ("from standins.coder import main", {"standins.coder"}),
    ],
)
def test_the_checker_sees_every_form_of_import(source: str, expected: set[str]) -> None:
    assert imports(source, "agent.rules") == expected


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle among the product's modules (lazy imports included), as module lists.

    A package counts as importing what its modules import only through explicit imports:
    `agent.stop` importing nothing keeps `agent.stop.early` cheap.
    """
    found: list[list[str]] = []
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = path[path.index(module) :]
            if min(cycle) == cycle[0]:  # each cycle once, from its smallest member
                found.append(cycle)
            return
        if module in done:
            return
        for imported in sorted(graph.get(module, set())):
            if imported in graph and imported != module:
                visit(imported, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    return found


def test_no_import_cycles() -> None:
    assert cycles(product()) == []


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
