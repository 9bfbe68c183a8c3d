"""What ships: the product's wheel carries the product only, and the product never imports the
development tools (the stand-ins and the demo live in devkit/, a distribution of their own)."""

from __future__ import annotations

import ast
import zipfile
from pathlib import Path

import pytest
from hatchling.builders.wheel import WheelBuilder

from agent.cli import main

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ROOT / "agent"
# Top-level packages the product must never import: they are not installed in a workspace.
DEV_ONLY = ("standins", "tests", "bench", "hatchling")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_the_product_never_imports_the_dev_tools() -> None:
    offenders = {
        f"{path.relative_to(ROOT)}: {module}"
        for path in sorted(PRODUCT.rglob("*.py"))
        for module in imported_modules(path)
        if module.split(".")[0] in DEV_ONLY
    }
    assert offenders == set()


def test_the_import_check_sees_lazy_imports(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from standins.coder import main\n    import bench.harness\n")
    assert imported_modules(source) == {"standins.coder", "bench.harness"}


def test_the_product_wheel_holds_no_stand_in_demo_or_page(tmp_path: Path) -> None:
    built = list(WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"]))
    assert len(built) == 1
    wheel = Path(built[0])
    assert wheel.name.startswith("coder_task_agent-"), "docs/deploy.md's install command names this"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    outside = [n for n in names if not n.startswith(("agent/", "coder_task_agent-"))]
    assert outside == []
    assert "agent/cli.py" in names
    # OpenCode's plugin: `hook install opencode` copies it.
    assert "agent/hooks/opencode.js" in names
    assert not [n for n in names if "standin" in n or "demo" in n or n.endswith(".html")]
    assert "coder-task-agent = agent.cli:main" in scripts
    assert "coder-task-agent-dev" not in scripts


def test_the_product_cli_lists_only_product_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    for command in ("run", "snapshot", "report"):
        assert command in shown
    for dev_command in ("mock-agentapi", "dev-server", "demo", "standin"):
        assert dev_command not in shown


@pytest.mark.parametrize("command", ["mock-agentapi", "dev-server", "demo"])
def test_the_old_dev_commands_are_gone(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command])
    assert exited.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
