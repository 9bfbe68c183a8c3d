"""constraints.txt against uv.lock: the documented wheel install gets the locked versions.

Why: a wheel's metadata carries pyproject.toml's lower bounds only (`httpx>=0.28`), so a bare
`pip install coder_task_agent-*.whl` takes whatever is newest that day. docs/deploy.md installs
with `pip install -c constraints.txt`, and that file is only worth it while it pins exactly what
uv.lock resolved for the product's runtime dependencies (`make constraints` regenerates it).
Read with tomllib, no uv needed.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = "coder-task-agent"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)")


def canonical(name: str) -> str:
    """A distribution name as pip compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_runtime(lock: dict[str, Any]) -> dict[str, str]:
    """Every package the product needs at run time, by uv.lock: its `dependencies` (never its
    dev group) and theirs, extras included, markers ignored (constraints keep them, pins all)."""
    packages = {canonical(p["name"]): p for p in lock["package"]}
    wanted: dict[str, str] = {}
    todo = [PRODUCT]
    while todo:
        edges = list(packages[canonical(todo.pop())].get("dependencies", []))
        for edge in list(edges):  # `httpx[http2]`: the extra's own dependencies too
            optional = packages[canonical(edge["name"])].get("optional-dependencies", {})
            edges += [dep for extra in edge.get("extra", []) for dep in optional[extra]]
        for edge in edges:
            name = canonical(edge["name"])
            if name not in wanted:
                wanted[name] = packages[name]["version"]
                todo.append(name)
    return wanted


def pinned(text: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"constraints.txt: not a pin: {line!r}"
        pins[canonical(match.group(1))] = match.group(2)
    return pins


def test_constraints_pin_exactly_the_locked_runtime_dependencies() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    constraints = (ROOT / "constraints.txt").read_text(encoding="utf-8")
    assert pinned(constraints) == locked_runtime(lock), "run `make constraints`"


def test_the_runtime_closure_follows_dependencies_only() -> None:
    lock = {
        "package": [
            {
                "name": PRODUCT,
                "version": "0.1.0",
                "dependencies": [{"name": "httpx"}, {"name": "Typing_Extensions"}],
                "dev-dependencies": {"dev": [{"name": "pytest"}]},
            },
            {"name": "httpx", "version": "0.28.1", "dependencies": [{"name": "idna"}]},
            {"name": "idna", "version": "3.10"},
            {"name": "typing-extensions", "version": "4.12.2"},
            {"name": "pytest", "version": "8.3.0"},
        ]
    }
    assert locked_runtime(lock) == {
        "httpx": "0.28.1",
        "idna": "3.10",
        "typing-extensions": "4.12.2",
    }
    assert pinned("# header\nhttpx==0.28.1\n    # via x\nidna==3.10 ; python_version < '4'\n") == {
        "httpx": "0.28.1",
        "idna": "3.10",
    }
