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
# A piece of a secret this long is masked too: text cut from outside (a server's echo shortened
# to a limit, a message split across lines) can carry part of a token, and 8 characters of a
# random token are already worth guessing the rest from.
PIECE = 8


def mask(text: str, secrets: Sequence[str]) -> str:
    """`text` with every secret, and every piece of PIECE characters of one, replaced by REDACTED.

    Mask, then cut: a caller shortening text from outside masks it first, or the cut could
    leave a piece of a token that no longer matches the whole.
    """
    for secret in secrets:
        if not secret:
            continue
        if secret in text:
            text = text.replace(secret, REDACTED)
        if len(secret) <= PIECE:
            continue
        for start in range(len(secret) - PIECE + 1):
            piece = secret[start : start + PIECE]
            if piece in text:
                text = text.replace(piece, REDACTED)
    return text


def scrub(value: object, secrets: Sequence[str]) -> object:
    """`value` masked (`mask`) in strings, containers and reprs."""
    if isinstance(value, str):
        return mask(value, secrets) if secrets else value
    if isinstance(value, dict):
        return {key: scrub(item, secrets) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(item, secrets) for item in value]
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return scrub(repr(value), secrets)
