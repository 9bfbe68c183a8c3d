"""The domain types every other module shares: app states, status reports, exit codes.

Pure: no I/O, no third-party imports. The pure rules (`status`), the snapshot builder, both
clients and the command line import these from here, so importing the rules never loads an
HTTP library (see README, "Architecture").
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

# AgentAPI's `/status` and `status_change` values.
AgentStatus = Literal["running", "stable"]

# The server refuses a status message longer than this many UTF-8 bytes (exactly 160 is fine).
MAX_STATUS_MESSAGE_BYTES = 160
ELLIPSIS = "…"


class AppState(enum.StrEnum):
    """A task's app state, in the words the user sees."""

    WORKING = "working"
    IDLE = "idle"
    COMPLETE = "complete"
    FAILED = "failed"

    @property
    def wire(self) -> str:
        """The word the server accepts: `failure` for FAILED (`failed` is a 400)."""
        return "failure" if self is AppState.FAILED else self.value


@dataclass(frozen=True)
class AppStatus:
    """One app-status report. Two reports are the same report when all three fields are."""

    state: AppState
    message: str = ""
    uri: str = ""


class ExitCode(enum.IntEnum):
    """Every exit code of every command; README's table is this one."""

    OK = 0  # done: delivered, uploaded, skipped on purpose, stopped cleanly
    USAGE = 2  # usage or configuration error; the message names the variable or flag
    NO_CONVERSATION = 3  # AgentAPI did not answer and nothing else held the conversation
    REJECTED = 4  # the server refused the request (400, 401): retrying cannot help
    UNDELIVERED = 5  # not delivered before the deadline (down, 5xx, 429 until the end)
    INTERRUPTED = 6  # a second signal asked to hurry: the work was abandoned


def shorten(text: str, limit: int = MAX_STATUS_MESSAGE_BYTES) -> str:
    """`text` cut to at most `limit` UTF-8 bytes, at a character boundary, ending in an ellipsis."""
    raw = text.encode("utf-8", errors="surrogatepass")
    if len(raw) <= limit:
        return text
    keep = limit - len(ELLIPSIS.encode())
    cut = raw[:keep]
    # Step back over continuation bytes so no character is split.
    while cut and (cut[-1] & 0xC0) == 0x80:
        cut = cut[:-1]
    if cut and cut[-1] >= 0xC0:
        cut = cut[:-1]
    return cut.decode("utf-8", errors="surrogatepass").rstrip() + ELLIPSIS
