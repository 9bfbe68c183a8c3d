"""Reading a field of an agent's hook payload without ever failing on its shape.

Why a module: every mapping reads JSON written by another program, whose fields change between
versions (camelCase in one, snake_case in the next, a string where an object was). A field of
the wrong type is treated as absent, so a mapping never raises on odd input; these readers are
that rule, once. Pure and standard-library only (the hooks' fast path).
"""

from __future__ import annotations

# A plain constant that type checkers treat as true: `typing` is not imported on this path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping


def text(payload: Mapping[str, object], *keys: str) -> str:
    """The first of `keys` whose value is a string; "" when none is.

    A key may be a dotted path into nested objects (`"conversation.agentTextResponse"`).
    """
    for key in keys:
        value = value_at(payload, key)
        if isinstance(value, str):
            return value
    return ""


def value_at(payload: Mapping[str, object], path: str) -> object:
    """The value at the dotted `path`, or None when any step is missing or not an object."""
    first, *rest = path.split(".")
    value = payload.get(first)
    for step in rest:
        if not isinstance(value, dict):
            return None
        value = value.get(step)
    return value


def flag(payload: Mapping[str, object], *keys: str) -> bool | None:
    """The first of `keys` whose value is a boolean; None when none is."""
    for key in keys:
        value = value_at(payload, key)
        if isinstance(value, bool):
            return value
    return None


def folded(name: str) -> str:
    """An event name compared without case: `Stop`, `stop` and `STOP` are one event.

    Copilot and Kiro send the same event as `sessionStart` or `SessionStart` depending on how
    the hook is configured; each mapping lists its names in this form.
    """
    return name.strip().lower()
