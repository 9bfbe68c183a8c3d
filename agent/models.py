"""The domain types every other module shares: app states, status reports, exit codes.

Pure: no I/O, no third-party imports. The pure rules (`rules`), the snapshot builder, both
clients and the command line import these from here, so importing the rules never loads an
HTTP library (see docs/architecture.md).

The hooks' fast path (`agent.reportsocket.client`) imports this module too, and must not pay for
`typing` (it pulls in `re` and more): `AgentStatus` is therefore built on first use, and
`TYPE_CHECKING` is a plain constant that type checkers treat as true.
"""

from __future__ import annotations

import enum

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal

    # AgentAPI's `/status` and `status_change` values.
    AgentStatus = Literal["running", "stable"]
else:

    def __getattr__(name: str) -> object:
        if name == "AgentStatus":
            from typing import Literal  # noqa: PLC0415 - off the fast path

            return Literal["running", "stable"]
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# The server refuses a status message longer than this many UTF-8 bytes (exactly 160 is fine).
MAX_STATUS_MESSAGE_BYTES = 160
ELLIPSIS = "…"
REPLACEMENT = "\ufffd"


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


class AppStatus:
    """One app-status report, immutable. Two reports are the same report when all three fields are.

    Written out rather than a frozen dataclass: the hooks' fast path imports this module, and
    importing `dataclasses` alone costs about as much as the rest of that path.

    Built from text that comes from outside (a hook's argument, a prompt, a socket request),
    so construction is the boundary: what UTF-8 cannot carry is replaced (`clean_text`) and the
    message is shortened to the server's limit (`shorten`). Every path that reports (socket,
    direct, hooks, the rules) therefore sends the same bytes for the same input, and nothing
    later can fail to encode it.
    """

    __slots__ = ("message", "state", "uri")
    __match_args__ = ("state", "message", "uri")
    state: AppState
    message: str
    uri: str

    def __init__(self, state: AppState, message: str = "", uri: str = "") -> None:
        object.__setattr__(self, "state", state)
        object.__setattr__(self, "message", shorten(message))
        object.__setattr__(self, "uri", clean_text(uri))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"AppStatus is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"AppStatus is immutable: cannot delete {name!r}")

    def _key(self) -> tuple[AppState, str, str]:
        return (self.state, self.message, self.uri)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not AppStatus:
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"AppStatus(state={self.state!r}, message={self.message!r}, uri={self.uri!r})"


class ExitCode(enum.IntEnum):
    """Every exit code of every command; docs/operations.md's table is this one."""

    OK = 0  # done: delivered, uploaded, skipped on purpose, stopped cleanly
    USAGE = 2  # usage or configuration error; the message names the variable or flag
    NO_CONVERSATION = 3  # AgentAPI did not answer and nothing else held the conversation
    REJECTED = 4  # the server refused the request (400, 401): retrying cannot help
    UNDELIVERED = 5  # not delivered before the deadline (down, 5xx, 429 until the end)
    INTERRUPTED = 6  # a second signal asked to hurry: the work was abandoned


def clean_text(text: str) -> str:
    """`text` with what UTF-8 or the server's database cannot hold replaced by U+FFFD.

    Lone surrogates are what Python makes of bytes that are not UTF-8 (a Latin-1 commit subject
    passed as an argument arrives as U+DC80-U+DCFF); encoding them raises. NUL is refused by
    the server's database (PostgreSQL text), which answers 500 and so would be retried forever.
    """
    if text.isascii():
        return text.replace("\x00", REPLACEMENT) if "\x00" in text else text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Rare, and short texts: a plain loop keeps `re` off the hooks' fast path.
        text = "".join(REPLACEMENT if "\ud800" <= c <= "\udfff" else c for c in text)
    return text.replace("\x00", REPLACEMENT) if "\x00" in text else text


def shorten(text: str, limit: int = MAX_STATUS_MESSAGE_BYTES) -> str:
    """`text` cleaned (`clean_text`) and cut to at most `limit` UTF-8 bytes, at a character
    boundary, ending in an ellipsis. Idempotent: shortening a shortened text changes nothing."""
    text = clean_text(text)
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    keep = limit - len(ELLIPSIS.encode())
    cut = raw[:keep]
    # Step back over continuation bytes so no character is split.
    while cut and (cut[-1] & 0xC0) == 0x80:
        cut = cut[:-1]
    if cut and cut[-1] >= 0xC0:
        cut = cut[:-1]
    return cut.decode("utf-8").rstrip() + ELLIPSIS


def first_line(text: str, default: str) -> str:
    """The first non-blank line of `text`, stripped and shortened; `default` when there is none."""
    for line in text.splitlines():
        if line.strip():
            return shorten(line.strip())
    return default
