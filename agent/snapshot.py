"""The log snapshot: AgentAPI messages in, the exact request body bytes out. Pure.

Coder reads the upload through a 65536-byte limit and answers 400 past it, so everything is
measured on the bytes sent: compact JSON `{"messages":[{"id":..,"content":..,"role":..,
"time":..},...]}`, UTF-8, non-ASCII unescaped (smaller than `\\uXXXX` for CJK and emoji), every
escape at its escaped size (a control character costs 6 bytes).

Terms. The *window*: the `max_messages` newest messages of role `user` or `agent`, in the order
given (AgentAPI's, never re-sorted); other roles are left out first, as Coder accepts them on
upload but then fails every read of the task's logs. A message's *size*: its content's JSON
literal as sent, quotes included. Its *minimal form*: the smaller of its size and the literal of
the cut marker alone. The *budget* B: what `max_bytes` leaves for the content literals once the
frame and every kept message's id, role and time are counted.

Policy, in order:
1. Drop: while the window's minimal forms do not fit, the oldest message is left out, so what
   is sent is a contiguous run ending with the newest (only small budgets ever need this).
2. Whole: if every size fits in B, every message is sent whole.
3. Newest: it is allotted N = min(its size, B - the others' minimal forms, max(its minimal form,
   ceil(B / 2), B - the others' sizes)): whole when it takes at most half the budget, whatever
   the others leave when they fit whole, and when cut, no older message gets more than it.
4. Water-fill: each older message is allotted min(its size, max(its minimal form, c)) for the
   largest integer c with which they fit in B - N. Rounding's leftover bytes go one each to the
   newest of the cut older messages; what the older ones are not allotted goes to the newest.
5. Cut: a message over its allotment loses its *beginning* (the end of an agent's output is
   what matters): the content becomes `[… K bytes cut …]`, a newline, and the longest tail that
   fits, K being the UTF-8 bytes removed. Never inside a UTF-8 sequence, an escape or a
   surrogate pair, and past up to eight combining marks (category M) so the tail does not start
   with an orphaned mark. Cuts go oldest first, each handing what it leaves unused to the next,
   so a cut body falls short of `max_bytes` by at most 43 bytes (a character that did not fit,
   5 bytes, plus any half pair or marks skipped).

With one usable message there is always a body (a single 50 MB message yields its last 64 KB).
Content is otherwise passed byte for byte (escapes, emoji, marks, control characters, NUL). A
lone surrogate (from JSON AgentAPI sent) goes as its `\\uXXXX` escape, so the body is valid
UTF-8 and JSON, and counts 3 bytes in K; ids and times go as given (times as AgentAPI's text,
nanoseconds included). Cost: a content longer than `max_bytes` characters cannot fit whole, so
only its last `max_bytes` characters are ever encoded, and its length is counted in chunks.
"""

from __future__ import annotations

import bisect
import json
import unicodedata

from agent.models import Frozen

# True for type checkers only: the one-shot snapshot must not pay for `typing` (issue 14).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Protocol

    class SnapshotMessage(Protocol):
        """What the builder reads of a message; agent.agentapi.Message fits. An int `cut_bytes`,
        if present, counts UTF-8 bytes the daemon's mirror already dropped from the beginning:
        they count in K, so the body is the same as from the whole message."""

        @property
        def id(self) -> int: ...
        @property
        def role(self) -> str: ...
        @property
        def content(self) -> str: ...
        @property
        def time(self) -> str: ...  # RFC 3339 text as AgentAPI sent it (nanoseconds survive)


MAX_BODY_BYTES = 65536
MAX_MESSAGES = 10
# Below this a budget cannot be relied on to hold one message's id, role, time and cut marker.
MIN_BODY_BYTES = 1024
ROLES = frozenset({"user", "agent"})

_HEAD = b'{"messages":['
_TAIL = b"]}"
# A character's JSON form is 1 byte (ASCII) to 6 bytes (`\u0001`, or a lone surrogate's escape).
_MAX_CHAR_BYTES = 6
_MAX_MARKS = 8
# Characters per slice when counting the UTF-8 length of a long content: bounded memory.
_COUNT_CHUNK = 1 << 18


class Snapshot(Frozen):
    """The body to POST and what went into it."""

    __slots__ = ("body", "dropped", "message_count", "truncated")
    __match_args__ = ("body", "message_count", "dropped", "truncated")
    body: bytes
    message_count: int
    dropped: int  # messages of the window left out entirely
    truncated: int  # messages whose beginning was cut

    def __init__(self, *, body: bytes, message_count: int, dropped: int, truncated: int) -> None:
        self._set(body=body, message_count=message_count, dropped=dropped, truncated=truncated)

    def __repr__(self) -> str:
        return (
            f"Snapshot(body=<{len(self.body)} bytes>, message_count={self.message_count}, "
            f"dropped={self.dropped}, truncated={self.truncated})"
        )


def marker(cut_bytes: int) -> str:
    """The visible note that starts a cut message's content."""
    return f"[… {cut_bytes} bytes cut …]\n"


def build_snapshot(
    messages: Sequence[SnapshotMessage],
    *,
    max_bytes: int = MAX_BODY_BYTES,
    max_messages: int = MAX_MESSAGES,
) -> Snapshot | None:
    """The body for `messages` (oldest first); None when none is `user` or `agent`.

    ValueError for `max_bytes` < MIN_BODY_BYTES, `max_messages` < 1, or a newest message whose
    id, role and time alone exceed `max_bytes` (AgentAPI's never do).
    """
    if max_bytes < MIN_BODY_BYTES:
        raise ValueError(f"max_bytes must be at least {MIN_BODY_BYTES}, got {max_bytes}")
    if max_messages < 1:
        raise ValueError(f"max_messages must be at least 1, got {max_messages}")
    window: list[_Part] = []
    for message in reversed(messages):
        if message.role in ROLES:
            window.append(_Part(message, max_bytes))
            if len(window) == max_messages:
                break
    if not window:
        return None
    window.reverse()
    first = 0  # rule 1: drop the oldest while the minimal forms do not fit
    need = _frame(window) + sum(p.minimal for p in window)
    while need > max_bytes:
        if first == len(window) - 1:
            raise ValueError(
                f"message {window[first].message.id}: its id, role and time alone exceed "
                f"max_bytes={max_bytes}"
            )
        dropped = window[first]
        need -= len(dropped.prefix) + len(dropped.suffix) + dropped.minimal + 1  # 1: a comma
        first += 1
    kept = window[first:]
    budget = max_bytes - _frame(kept)
    pieces: list[bytes] = []
    truncated = 0
    carry = 0
    for part, allotment in zip(kept, _allot(kept, budget), strict=True):
        if allotment + carry >= part.size:
            literal = _encode(part.message.content)
            if allotment < part.size:
                carry -= part.size - allotment
        else:
            literal = _cut(part, allotment + carry)
            carry += allotment - len(literal)
            truncated += 1
        pieces.append(part.prefix + literal + part.suffix)
    body = _HEAD + b",".join(pieces) + _TAIL
    return Snapshot(
        body=body, message_count=len(kept), dropped=len(window) - len(kept), truncated=truncated
    )


class _Part:
    """One message, measured: the JSON around its content, the sizes of its content literal."""

    __slots__ = ("message", "minimal", "original", "prefix", "size", "suffix")

    def __init__(self, message: SnapshotMessage, max_bytes: int) -> None:
        content = message.content
        self.message = message
        self.prefix = b'{"id":%d,"content":' % message.id
        self.suffix = (
            b',"role":' + _encode(message.role) + b',"time":' + _encode(message.time) + b"}"
        )
        # UTF-8 bytes of the whole content (a lone surrogate counts 3), a mirror's cut included.
        self.original = utf8_len(content) + getattr(message, "cut_bytes", 0)
        # The whole literal; max_bytes + 1 stands for "more than any budget".
        self.size = max_bytes + 1 if len(content) > max_bytes else len(_encode(content))
        self.minimal = min(self.size, len(_encode(marker(self.original))))


def _frame(parts: Sequence[_Part]) -> int:
    """Bytes of the body that are not content literals."""
    fixed = sum(len(p.prefix) + len(p.suffix) for p in parts)
    return len(_HEAD) + len(_TAIL) + max(len(parts) - 1, 0) + fixed


def _allot(parts: Sequence[_Part], budget: int) -> list[int]:
    """Bytes allotted to each content literal (rules 2 to 4); their sum is at most `budget`."""
    sizes = [p.size for p in parts]
    if sum(sizes) <= budget:
        return sizes
    *older, newest = parts
    newest_share = min(
        newest.size,
        budget - sum(p.minimal for p in older),
        max(newest.minimal, (budget + 1) // 2, budget - sum(p.size for p in older)),
    )
    room = budget - newest_share
    level = _water_level(older, room)
    allotments = [min(p.size, max(p.minimal, level)) for p in older]
    spare = room - sum(allotments)
    for index in reversed(range(len(older))):
        if spare == 0:
            break
        if allotments[index] < older[index].size:
            allotments[index] += 1
            spare -= 1
    allotments.append(min(newest.size, budget - sum(allotments)))
    return allotments


def _water_level(parts: Sequence[_Part], room: int) -> int:
    """The largest c with sum(min(size, max(minimal, c))) <= room; the minimal forms fit."""
    levels = range(max((p.size for p in parts), default=0) + 1)
    fitting = bisect.bisect_right(
        levels, room, key=lambda level: sum(min(p.size, max(p.minimal, level)) for p in parts)
    )
    return fitting - 1


def _cut(part: _Part, allotment: int) -> bytes:
    """The marker and the longest tail within `allotment` (at least the marker-only literal,
    less than the whole literal)."""
    content = part.message.content
    cut = part.original
    while True:
        room = allotment - len(_encode(marker(cut))) + 2  # the marker literal's quotes are shared
        start = _tail_start(content, room)
        tail = content[start:]
        now_cut = part.original - utf8_len(tail)
        if len(str(now_cut)) == len(str(cut)):
            return _encode(marker(now_cut) + tail)
        cut = now_cut  # a shorter count: the marker shrank, so the tail may grow


def _tail_start(content: str, room: int) -> int:
    """Where the longest tail whose literal fits in `room` bytes begins, on a boundary."""
    start = max(len(content) - (room - 2), 0)
    excess = len(_encode(content[start:])) - room
    if excess > 0:
        # Dropping `excess` characters frees at least `excess` bytes; fewer than
        # excess / _MAX_CHAR_BYTES cannot free enough. The first start whose tail fits (False
        # sorts before True):
        starts = range(start + -(-excess // _MAX_CHAR_BYTES), min(start + excess, len(content)))
        start = starts.start + bisect.bisect_left(
            starts, True, key=lambda candidate: len(_encode(content[candidate:])) <= room
        )
    if 0 < start < len(content) and _is_pair(content[start - 1 : start + 1]):
        start += 1  # not the second half of a pair without its first
    skipped = start
    while skipped < len(content) and unicodedata.category(content[skipped]).startswith("M"):
        skipped += 1
        if skipped - start > _MAX_MARKS:
            return start  # marks all the way: no base to wait for
    return skipped


def _is_pair(chars: str) -> bool:
    """A high surrogate, then a low one."""
    return "\ud800" <= chars[0] <= "\udbff" and "\udc00" <= chars[1] <= "\udfff"


def _encode(text: str) -> bytes:
    """The compact JSON string literal of `text`, UTF-8, lone surrogates as escapes."""
    # Only a lone surrogate cannot be UTF-8 (json has escaped every backslash already), and
    # backslashreplace writes it as `\udXXX`, its JSON escape.
    return json.dumps(text, ensure_ascii=False).encode("utf-8", errors="backslashreplace")


def utf8_len(text: str) -> int:
    """UTF-8 length of `text`, a lone surrogate at its 3 bytes; bounded memory for long texts."""
    if text.isascii():
        return len(text)
    return sum(
        len(text[at : at + _COUNT_CHUNK].encode("utf-8", errors="surrogatepass"))
        for at in range(0, len(text), _COUNT_CHUNK)
    )
