"""Coder's wire, as far as the two agent endpoints need it: coderd's answers and Go's decoding.

coderd's JSON answers (`httpapi.Write`: HTML-escaped, newline-terminated) and error bodies
(`codersdk.Response`: `message`, `detail`, `validations`); Go's encoding/json rules for request
bodies (the first value of the body is read, unknown keys are ignored, field names match
case-insensitively, a JSON `null` leaves a field at its zero value); Go's strict RFC 3339 times,
its UUID parsing, and the snapshot body read through http.MaxBytesReader.
"""

from __future__ import annotations

import calendar
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

from standins.http import Response

# The snapshot body is read through this limit (http.MaxBytesReader); past it the JSON decoder
# fails and the server answers 400 "Failed to decode request payload.", not 413.
SNAPSHOT_BODY_LIMIT = 65536

# coderd's own words, where a client or a test may match on them.
NOT_FOUND = "Resource not found or you do not have access to this resource"
ROUTE_NOT_FOUND = "Route not found."
DECODE_FAILED = "Failed to decode request payload."
LOGS_CONFLICT = "Cannot fetch logs for task in current state."


# -- Coder's answers ----------------------------------------------------------------------------


def coder_json(
    payload: object, status: int = 200, headers: Iterable[tuple[str, str]] = ()
) -> Response:
    """A JSON answer as coderd's httpapi.Write makes it: HTML-escaped, newline-terminated."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(raw, escaped)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return Response(
        status=status,
        body=(text + "\n").encode(),
        headers=[("content-type", "application/json; charset=utf-8"), *headers],
    )


def coder_error(
    status: int,
    message: str,
    detail: str = "",
    validations: list[dict[str, str]] | None = None,
    headers: Iterable[tuple[str, str]] = (),
) -> Response:
    """Coder's error body, codersdk.Response: `message`, and `detail`/`validations` when set."""
    payload: dict[str, object] = {"message": message}
    if detail:
        payload["detail"] = detail
    if validations:
        payload["validations"] = validations
    return coder_json(payload, status=status, headers=headers)


def go_quote(text: str) -> str:
    """`text` as Go's %q prints it (close enough for ASCII and printable Unicode)."""
    return json.dumps(text, ensure_ascii=False)


# -- Go's encoding/json, as far as these two bodies need it ---------------------------------------


class WireError(ValueError):
    """A body Go's encoding/json (or time.Time) refuses; the text goes into the `detail`."""


@dataclass(frozen=True)
class _Number:
    """A JSON number written with a fraction or an exponent: Go refuses it for an integer."""

    text: str


class _Object:
    """A JSON object as its members in document order: Go assigns struct fields in that order."""

    __slots__ = ("members",)

    def __init__(self, members: Iterable[tuple[str, Any]]) -> None:
        self.members = list(members)


def _refuse_constant(name: str) -> NoReturn:
    raise WireError(f"invalid character {name[0]!r} looking for beginning of value")


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def go_decode(raw: bytes) -> Any:
    """The first JSON value in `raw`, decoded the way Go's json.Decoder reads a request body.

    Invalid UTF-8 and lone surrogate escapes become U+FFFD; whatever follows the first value is
    not read; NaN and Infinity are refused; an empty body is "EOF". Raises WireError.
    """
    text = raw.decode("utf-8", errors="replace").lstrip(" \t\r\n")
    if not text:
        raise WireError("EOF")
    decoder = json.JSONDecoder(
        object_pairs_hook=_Object, parse_float=_Number, parse_constant=_refuse_constant
    )
    try:
        value, _end = decoder.raw_decode(text)
    except json.JSONDecodeError as exc:
        raise WireError(f"invalid JSON: {exc.msg} (offset {exc.pos})") from None
    except RecursionError:
        raise WireError("exceeded max depth") from None
    return _scrub(value)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, _Object):
        return _Object((_scrub(k), _scrub(v)) for k, v in value.members)
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


Kind = Literal["string", "bool", "int64", "time", "messages"]
GO_ZERO_TIME = "0001-01-01T00:00:00Z"
_ZERO: dict[Kind, Any] = {"string": "", "bool": False, "int64": 0, "time": GO_ZERO_TIME}
_GO_TYPE: dict[Kind, str] = {
    "string": "string",
    "bool": "bool",
    "int64": "int64",
    "time": "time.Time",
    "messages": "[]agentapisdk.Message",
}
_INT64 = (-(2**63), 2**63 - 1)

# agentsdk.PatchAppStatus (`icon` and `needs_user_attention` are deprecated and ignored).
PATCH_APP_STATUS: dict[str, Kind] = {
    "app_slug": "string",
    "icon": "string",
    "message": "string",
    "needs_user_attention": "bool",
    "state": "string",
    "uri": "string",
}
# agentapisdk.Message and agentapisdk.GetMessagesResponse.
AGENTAPI_MESSAGE: dict[str, Kind] = {
    "content": "string",
    "id": "int64",
    "role": "string",
    "time": "time",
}
GET_MESSAGES_RESPONSE: dict[str, Kind] = {"$schema": "string", "messages": "messages"}


def go_struct(value: Any, fields: Mapping[str, Kind], type_name: str) -> dict[str, Any]:
    """`value` (from go_decode) unmarshalled into a Go struct with these JSON fields.

    Missing fields keep their zero value, and so does a field given as `null` (a slice becomes
    nil: None); names match exactly, else case-insensitively; the last occurrence wins.
    Raises WireError on a type mismatch, a non-integer for an int64, or a non-RFC 3339 time.
    """
    out: dict[str, Any] = {name: _ZERO.get(kind) for name, kind in fields.items()}
    if value is None:
        return out
    if not isinstance(value, _Object):
        raise WireError(
            f"json: cannot unmarshal {_json_kind(value)} into Go value of type {type_name}"
        )
    folded = {name.lower(): name for name in fields}
    for key, item in value.members:
        name = key if key in fields else folded.get(key.lower())
        if name is not None:
            out[name] = _field(fields[name], item, out[name], f"{type_name}.{name}")
    return out


def _field(kind: Kind, item: Any, current: Any, where: str) -> Any:
    if item is None:
        return None if kind == "messages" else current
    if kind == "string" and isinstance(item, str):
        return item
    if kind == "bool" and isinstance(item, bool):
        return item
    if kind == "int64" and type(item) is int and _INT64[0] <= item <= _INT64[1]:
        return item
    if kind == "time":
        if not isinstance(item, str):
            raise WireError("Time.UnmarshalJSON: input is not a JSON string")
        if not is_rfc3339(item):
            raise WireError(f'parsing time {go_quote(item)} as "2006-01-02T15:04:05Z07:00"')
        return item
    if kind == "messages" and isinstance(item, list):
        return [go_struct(m, AGENTAPI_MESSAGE, "agentapisdk.Message") for m in item]
    raise WireError(
        f"json: cannot unmarshal {_json_kind(item)} into Go struct field {where}"
        f" of type {_GO_TYPE[kind]}"
    )


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, _Number)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, _Object):
        return "object"
    return "array"


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:Z|[+-](\d{2}):(\d{2}))", re.ASCII
)


def is_rfc3339(text: str) -> bool:
    """Whether Go's time.Time.UnmarshalJSON (strict RFC 3339) accepts `text`.

    Upper-case `T` and `Z`, two-digit fields in range (a real calendar day), a fraction of any
    length (Go reads nine digits and ignores the rest), and `Z` or a `±hh:mm` offset.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    if not 1 <= month <= 12 or hour > 23 or minute > 59 or second > 59:
        return False
    days = (31, 29 if calendar.isleap(year) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    if not 1 <= day <= days[month - 1]:
        return False
    offset_hours, offset_minutes = match.group(7), match.group(8)
    return offset_hours is None or (int(offset_hours) <= 23 and int(offset_minutes) <= 59)


_UUID_36 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_HEX_32 = re.compile(r"[0-9a-f]{32}", re.I)


def parse_go_uuid(text: str) -> str | None:
    """The canonical form of `text` if Go's uuid.Parse accepts it (plain, braces, urn:uuid:,
    32 hex digits), else None."""
    body = text
    if len(text) == 45 and text[:9].lower() == "urn:uuid:":
        body = text[9:]
    elif len(text) == 38 and text[0] == "{" and text[-1] == "}":
        body = text[1:-1]
    elif _HEX_32.fullmatch(text):
        return str(uuid.UUID(hex=text))
    return str(uuid.UUID(body)) if _UUID_36.fullmatch(body) else None


def uuid_problem(text: str) -> str:
    if len(text) not in (32, 36, 38, 45):
        return f"invalid UUID length: {len(text)}"
    return "invalid UUID format"


def go_duration(seconds: float) -> str:
    """A duration as Go's time.Duration.String() prints whole seconds ("1m0s")."""
    if seconds != int(seconds):
        return f"{seconds:g}s"
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def decode_snapshot(body: bytes, limit: int = SNAPSHOT_BODY_LIMIT) -> list[dict[str, Any]] | None:
    """The messages of a snapshot upload read through `limit` bytes; None when missing or null.

    Like Go's json.Decoder behind http.MaxBytesReader: a value that ends within the limit is
    accepted whatever follows it; one that needs a byte past the limit fails with
    "http: request body too large". Raises WireError.
    """
    try:
        value = go_decode(body[:limit])
    except WireError:
        if len(body) > limit:
            raise WireError("http: request body too large") from None
        raise
    messages: list[dict[str, Any]] | None = go_struct(
        value, GET_MESSAGES_RESPONSE, "agentapisdk.GetMessagesResponse"
    )["messages"]
    return messages
