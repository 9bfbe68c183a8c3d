"""The domain types every module shares: app states, status reports, exit codes. Pure.

The hooks' fast path imports this module and must not pay for `typing` or `dataclasses` (issue
14): `AgentStatus` is built on first use, `TYPE_CHECKING` is a plain constant type checkers
treat as true, and the immutable values are written out on `Frozen`.
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


class Frozen:
    """An immutable value whose fields are its `__match_args__`, set once with `_set`."""

    __slots__ = ()
    __match_args__: tuple[str, ...] = ()

    def _set(self, **fields: object) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def _key(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__match_args__)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__match_args__)
        return f"{type(self).__name__}({fields})"


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


class AppStatus(Frozen):
    """One app-status report. Construction is the boundary for text from outside: it is
    cleaned and shortened here, so every path sends the same bytes and none fails to encode."""

    __slots__ = ("message", "state", "uri")
    __match_args__ = ("state", "message", "uri")
    state: AppState
    message: str
    uri: str

    def __init__(self, state: AppState, message: str = "", uri: str = "") -> None:
        self._set(state=state, message=shorten(message), uri=clean_text(uri))


class ExitCode(enum.IntEnum):
    """Every exit code of every command; docs/operations.md's table is this one."""

    OK = 0  # done: delivered, uploaded, skipped on purpose, stopped cleanly
    USAGE = 2  # usage or configuration error; the message names the variable or flag
    NO_CONVERSATION = 3  # AgentAPI did not answer and nothing else held the conversation
    REJECTED = 4  # the server refused the request (400, 401): retrying cannot help
    UNDELIVERED = (
        5  # not delivered before the deadline (down, 5xx, 429 until the end), or TLS refused
    )
    INTERRUPTED = 6  # a second signal asked to hurry: the work was abandoned


def clean_text(text: str) -> str:
    """`text` with lone surrogates and NUL replaced by U+FFFD.

    Lone surrogates are what Python makes of bytes that are not UTF-8 (a Latin-1 commit subject
    as an argument); encoding them raises. NUL is refused by the server's PostgreSQL with a 500,
    which would be retried forever.
    """
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # Rare, and short texts: a plain loop keeps `re` off the hooks' fast path.
            text = "".join(REPLACEMENT if "\ud800" <= c <= "\udfff" else c for c in text)
    return text.replace("\x00", REPLACEMENT)


def shorten(text: str) -> str:
    """`text` cleaned and cut to MAX_STATUS_MESSAGE_BYTES at a character boundary, ending in an
    ellipsis. Idempotent."""
    text = clean_text(text)
    raw = text.encode("utf-8")
    if len(raw) <= MAX_STATUS_MESSAGE_BYTES:
        return text
    # "ignore" drops the character the cut split (the text is valid UTF-8 before the cut).
    cut = raw[: MAX_STATUS_MESSAGE_BYTES - len(ELLIPSIS.encode())].decode("utf-8", "ignore")
    return cut.rstrip() + ELLIPSIS


def first_line(text: str, default: str) -> str:
    """The first non-blank line of `text`, stripped and shortened; `default` when there is none."""
    for line in text.splitlines():
        if line.strip():
            return shorten(line.strip())
    return default
