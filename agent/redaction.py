"""Masking the agent token in whatever is written out: one rule for both log writers.

structlog's processor (`agent.logconfig`) and the hooks' standard-library writer
(`agent.reportsocket.client`, which must not import structlog) both mask through `scrub`, so a line
says the same thing whichever path wrote it. Standard library only, nothing at import.
"""

from __future__ import annotations

# A plain constant that type checkers treat as true: `typing` is not imported on the hooks' path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

REDACTED = "[REDACTED]"


def scrub(value: object, secrets: Sequence[str]) -> object:
    """`value` with every secret replaced by REDACTED, in strings, containers and reprs."""
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {key: scrub(item, secrets) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(item, secrets) for item in value]
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return scrub(repr(value), secrets)
