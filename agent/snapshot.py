"""The log snapshot: AgentAPI messages in, the exact request body bytes out. Pure.

Coder reads the upload through a 65536-byte limit and answers 400 past it, so everything here is
measured on the bytes actually sent: compact JSON, UTF-8, non-ASCII characters unescaped (smaller
than `\\uXXXX` for CJK and emoji), JSON escapes counted at their escaped size.

Policy, in order:

1. Only `user` and `agent` messages are kept (any other role would break every later read of
   the task's logs). Of those, the `max_messages` newest form the window, in AgentAPI's order.
2. If the whole window fits, it is sent whole.
3. Otherwise contents are cut, never whole small messages dropped: the newest message first gets
   its full size or the larger of half the content budget and what the others leave free; the
   other messages are then water-filled: each keeps min(its size, c) for the largest cap c that
   fits, so only the largest ones are cut and all are cut to the same size; bytes left over go
   back to the newest. A cut removes a message's *beginning* (the end of an agent's output is
   what matters), at a character boundary (never inside a UTF-8 sequence, never leaving a
   combining mark without its base), and starts the content with a marker such as
   `[… 12345 bytes cut …]` + newline, counting the UTF-8 bytes removed.
4. A message is dropped (oldest first, so the run stays contiguous and ends with the newest) only
   when even its minimal form (envelope and marker) cannot fit. With 64 KB and ten messages that
   cannot happen; it matters for small budgets only.
5. With at least one usable message there is always a body: the newest is always present.

Content is otherwise passed through byte for byte: escapes, emoji, combining marks, control
characters. A lone surrogate (possible when the JSON AgentAPI sent had one) cannot be UTF-8; it
is sent as its `\\uXXXX` escape, so the body is always valid UTF-8 and valid JSON. Times are
passed through as the text AgentAPI sent.

Cost: only the window is looked at, and a content longer than the budget is cut to its last
`max_bytes` characters before any encoding, so a 50 MB message costs one slice.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

# The server reads the body through this limit and answers 400 past it.
MAX_BODY_BYTES = 65536
MAX_MESSAGES = 10
ROLES = frozenset({"user", "agent"})
# Below this a budget cannot hold a message envelope, its time and a cut marker.
MIN_BODY_BYTES = 1024

_HEAD = b'{"messages":['
_TAIL = b"]}"
_SURROGATE = re.compile("[\ud800-\udfff]")


class SnapshotMessage(Protocol):
    """What the builder needs of a message (agent.agentapi.Message fits)."""

    @property
    def id(self) -> int: ...
    @property
    def role(self) -> str: ...
    @property
    def content(self) -> str: ...
    @property
    def time(self) -> str: ...


@dataclass(frozen=True)
class Snapshot:
    """The body to POST and what went into it."""

    body: bytes
    message_count: int
    dropped: int
    truncated: int


def marker(cut_bytes: int) -> str:
    """The visible note at the start of a cut message."""
    return f"[… {cut_bytes} bytes cut …]\n"


def build_snapshot(
    messages: Sequence[SnapshotMessage],
    *,
    max_bytes: int = MAX_BODY_BYTES,
    max_messages: int = MAX_MESSAGES,
) -> Snapshot | None:
    """The snapshot body for `messages` (oldest first); None when no message is usable.

    Raises ValueError when `max_bytes` < MIN_BODY_BYTES or `max_messages` < 1.
    """
    if max_bytes < MIN_BODY_BYTES:
        raise ValueError(f"max_bytes must be at least {MIN_BODY_BYTES}, got {max_bytes}")
    if max_messages < 1:
        raise ValueError(f"max_messages must be at least 1, got {max_messages}")
    window: list[SnapshotMessage] = []
    for message in reversed(messages):
        if message.role in ROLES:
            window.append(message)
            if len(window) == max_messages:
                break
    if not window:
        return None
    window.reverse()
    size = len(window)
    parts = [_Part.of(m, max_bytes) for m in window]
    while True:
        plan = _plan(parts, max_bytes)
        if plan is not None:
            break
        if len(parts) == 1:
            raise ValueError("the newest message's id, role and time alone exceed the budget")
        parts = parts[1:]  # rule 4: the oldest goes
    body, truncated = _render(parts, plan)
    return Snapshot(
        body=body, message_count=len(parts), dropped=size - len(parts), truncated=truncated
    )


@dataclass(frozen=True)
class _Part:
    """One message, pre-measured: the fixed JSON around its content, the content's size."""

    message: SnapshotMessage
    prefix: bytes  # {"id":N,"content":
    suffix: bytes  # ,"role":"...","time":"..."}
    size: int  # encoded content size with quotes; max_bytes + 1 stands for "larger than any budget"
    original: int  # UTF-8 size of the content as AgentAPI sent it
    reserve: int  # encoded size of the largest marker it could need, without quotes

    @classmethod
    def of(cls, message: SnapshotMessage, max_bytes: int) -> _Part:
        content = message.content
        prefix = b'{"id":%d,"content":' % message.id
        suffix = b',"role":' + _encode(message.role) + b',"time":' + _encode(message.time) + b"}"
        if len(content) > max_bytes:
            size = max_bytes + 1  # every character costs at least one byte
            original = len(content) if content.isascii() else _raw_len(content)
        else:
            size = len(_encode(content))
            original = _raw_len(content)
        reserve = len(_encode(marker(original))) - 2
        return cls(message, prefix, suffix, size, original, reserve)

    @property
    def fixed(self) -> int:
        return len(self.prefix) + len(self.suffix)


def _plan(parts: list[_Part], max_bytes: int) -> list[int] | None:
    """Content allocations (encoded bytes with quotes) for each part, or None if none fit."""
    budget = max_bytes - len(_HEAD) - len(_TAIL) - (len(parts) - 1) - sum(p.fixed for p in parts)
    sizes = [p.size for p in parts]
    if sum(sizes) <= budget:
        return sizes
    minimal = [p.reserve + 2 for p in parts]
    if budget < minimal[-1] + sum(min(s, m) for s, m in zip(sizes[:-1], minimal[:-1], strict=True)):
        return None
    *others, newest = sizes
    newest_share = min(newest, max(budget // 2, budget - sum(others)))
    cap = _water_level(others, budget - newest_share)
    allocation = [min(s, cap) for s in others]
    for s, a, m in zip(others, allocation, minimal[:-1], strict=True):
        if a < s and a < m:
            return None  # a cut message would not even hold its marker: drop the oldest
    allocation.append(min(newest, budget - sum(allocation)))
    if allocation[-1] < newest and allocation[-1] < minimal[-1]:
        return None
    return allocation


def _water_level(sizes: list[int], room: int) -> int:
    """The largest cap c with sum(min(s, c) for s in sizes) <= room."""
    if sum(sizes) <= room:
        return max(sizes, default=0)
    ordered = sorted(sizes)
    used = 0
    for index, size in enumerate(ordered):
        remaining = len(ordered) - index
        if used + size * remaining > room:
            return max(0, (room - used) // remaining)
        used += size
    return ordered[-1]  # pragma: no cover - the first branch returned already


def _render(parts: list[_Part], plan: list[int]) -> tuple[bytes, int]:
    pieces: list[bytes] = []
    truncated = 0
    for part, allocation in zip(parts, plan, strict=True):
        if allocation >= part.size:
            content = _encode(part.message.content)
        else:
            content = _cut(part.message.content, allocation, part.reserve, part.original)
            truncated += 1
        pieces.append(part.prefix + content + part.suffix)
    return _HEAD + b",".join(pieces) + _TAIL, truncated


def _cut(content: str, allocation: int, reserve: int, original: int) -> bytes:
    """The encoded marker + longest tail of `content` within `allocation` bytes (with quotes)."""
    room = allocation - reserve  # for the tail, with its quotes
    candidate = content[-room:] if room > 0 else ""
    low, high = 0, len(candidate)  # find the smallest start whose tail fits
    while low < high:
        middle = (low + high) // 2
        if len(_encode(candidate[middle:])) <= room:
            high = middle
        else:
            low = middle + 1
    start = low
    while start < len(candidate) and unicodedata.combining(candidate[start]):
        start += 1  # do not orphan combining marks from their base character
    tail = candidate[start:]
    cut = original - _raw_len(tail)
    return _encode(marker(cut) + tail)


def _encode(text: str) -> bytes:
    """Compact JSON string literal, UTF-8, lone surrogates escaped."""
    literal = json.dumps(text, ensure_ascii=False)
    try:
        return literal.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", literal).encode("utf-8")


def _raw_len(text: str) -> int:
    """UTF-8 byte length of `text` as AgentAPI meant it (lone surrogates at their 3 bytes)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", errors="surrogatepass"))
