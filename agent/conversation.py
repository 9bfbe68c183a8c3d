"""AgentAPI's `GET /messages` answer, read and checked with the standard library only.

One rule for both readers: the typed client (`agent.agentapi`) and the one-shot snapshot
(`agent.stop.oneshot`, which must not import pydantic) keep and drop the same messages, and
`agent.agentapi.Message` states the same rule for events (a property test holds them equal).
Read tolerantly: one malformed message must not cost the whole history (the snapshot would then
post nothing), so each message that cannot be understood is dropped and counted. Times are
kept as AgentAPI's text (Go prints nanoseconds, which a datetime would round).
"""

from __future__ import annotations

import json
import re

from agent.errors import BadResponse

SERVICE = "AgentAPI"
# The largest `/messages` answer read: histories are terminal text, megabytes for a long session;
# past this the answer is refused (the stop path then falls back to the mirror) rather than
# parsed into several times its size in memory.
MAX_MESSAGES_BYTES = 128 * 1024 * 1024
# The date-time form Coder's snapshot endpoint parses (a fraction of any length).
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
# Every name a role has gone by, to the two Coder reads back; other roles are kept here and left
# out where a snapshot is built.
ROLES = {
    "user": "user",
    "input": "user",
    "human": "user",
    "agent": "agent",
    "output": "agent",
    "assistant": "agent",
}


def check_time(value: str) -> str:
    if not RFC3339.match(value):
        raise ValueError("time is not RFC 3339")
    return value


def normalise_role(value: object) -> str:
    """`user` or `agent` for any known name of those roles; another role as it came."""
    if not isinstance(value, str):
        raise ValueError("role is not text")  # noqa: TRY004 - pydantic reports ValueError only
    return ROLES.get(value.strip().lower(), value)


class WireMessage:
    """One message as checked here; fits `agent.snapshot.SnapshotMessage`."""

    __slots__ = ("content", "id", "role", "time")

    def __init__(self, id: int, role: str, content: str, time: str) -> None:
        self.id = id
        self.role = role
        self.content = content
        self.time = time

    def __repr__(self) -> str:
        return f"WireMessage(id={self.id!r}, role={self.role!r}, time={self.time!r})"


def check_message(item: object) -> WireMessage:
    """One decoded entry of `messages` as a message (unknown keys ignored: every answer carries
    `$schema`; `type` is the older name of `role`); ValueError saying what is wrong."""
    if not isinstance(item, dict):
        raise ValueError("not an object")  # noqa: TRY004 - a reason the caller collects
    ident = item.get("id")
    if not isinstance(ident, int) or isinstance(ident, bool):
        raise ValueError("id: not an integer")  # noqa: TRY004
    key = "role" if "role" in item else "type"
    if key not in item:
        raise ValueError("role: missing")
    role = normalise_role(item[key])
    for name in ("content", "time"):
        if not isinstance(item.get(name), str):
            raise ValueError(f"{name}: not text")  # noqa: TRY004
    return WireMessage(ident, role, item["content"], check_time(item["time"]))


class History:
    """The messages kept, and why each other one was dropped."""

    __slots__ = ("dropped", "messages")

    def __init__(self, messages: list[WireMessage], dropped: list[str]) -> None:
        self.messages = messages
        self.dropped = dropped

    def dropped_fields(self) -> dict[str, object] | None:
        """The `agentapi_messages_dropped` fields; None when a snapshot leaves nothing out."""
        other = sum(1 for m in self.messages if m.role not in ("user", "agent"))
        if not self.dropped and not other:
            return None
        return {
            "dropped": len(self.dropped) + other,
            "malformed": len(self.dropped),
            "other_roles": other,
            "kept": len(self.messages) - other,
            "first": self.dropped[0][:300] if self.dropped else "a role other than user or agent",
        }


def read_history(body: bytes) -> History:
    """Every message that can be understood; BadResponse only when the answer as a whole is
    not UTF-8 JSON of an object with a `messages` array."""
    try:
        answer: object = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise BadResponse(SERVICE, "GET /messages", f"body: not JSON ({exc})"[:300]) from None
    if not isinstance(answer, dict):
        raise BadResponse(SERVICE, "GET /messages", "body: not a JSON object")
    items = answer.get("messages")
    if not isinstance(items, list):
        raise BadResponse(SERVICE, "GET /messages", "messages: not an array")
    kept: list[WireMessage] = []
    dropped: list[str] = []
    for index, item in enumerate(items):
        try:
            kept.append(check_message(item))
        except ValueError as exc:
            dropped.append(f"messages.{index}: {exc}")
    return History(kept, dropped)
