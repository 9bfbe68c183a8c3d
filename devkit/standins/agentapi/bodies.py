"""Request bodies as AgentAPI (huma) reads them: POST /message's JSON and POST /upload's form.

Each function returns the decoded value or the exact error answer huma gives: 413 for a message
body of 1 MiB or more, 400 for an empty body or malformed JSON, 415 for a non-JSON content type,
422 for a schema violation, and Go's multipart error texts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from email import policy
from email.message import Message as MimeHeaders
from email.parser import BytesHeaderParser
from email.utils import collapse_rfc2231_value

from standins.agentapi.wire import JSONObject, problem
from standins.http import Request, Response

# 1 MiB: huma's default request body limit; a body this long or longer is a 413.
MESSAGE_BODY_LIMIT = 1 << 20


def _is_json(content_type: str) -> bool:
    """huma's content-type lookup: the part after `+`, before `;`; none means JSON."""
    start = content_type.find("+") + 1
    end = content_type.find(";")
    kind = content_type[start : end if end >= 0 else len(content_type)]
    return kind in ("", "application/json", "json")


def _reject_constant(name: str) -> object:
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")


def decode_message_body(request: Request, host: str) -> tuple[str, str] | Response:
    """The `content` and `type` of a POST /message body, or the error huma answers."""
    body = request.body
    if len(body) >= MESSAGE_BODY_LIMIT:
        return problem(host, 413, f"request body is too large limit={MESSAGE_BODY_LIMIT} bytes")
    if not body:
        return problem(host, 400, "request body is required")
    text = body.decode("utf-8", errors="replace")
    content_type = request.headers.get("content-type", "")
    if not _is_json(content_type):
        error: JSONObject = {
            "location": "body",
            "message": f"unknown content type: {content_type}",
            "value": text,
        }
        return problem(host, 415, "validation failed", [error])
    try:
        parsed: object = json.loads(body, parse_constant=_reject_constant)
    except ValueError as exc:
        error = {"location": "body", "message": str(exc), "value": text}
        return problem(host, 400, "validation failed", [error])
    errors = _check_message_body(parsed)
    if errors:
        return problem(host, 422, "validation failed", errors)
    assert isinstance(parsed, dict)  # noqa: S101 - _check_message_body checked it
    content, kind = parsed["content"], parsed["type"]
    return str(content), str(kind)


def _check_message_body(parsed: object) -> list[JSONObject]:
    """huma's schema validation of MessageRequestBody, with its messages."""
    if not isinstance(parsed, dict):
        return [{"location": "body", "message": "expected object", "value": parsed}]
    errors: list[JSONObject] = []
    for key in ("content", "type"):
        if key not in parsed:
            message = f"expected required property {key} to be present"
            errors.append({"location": "body", "message": message, "value": parsed})
    for key, value in parsed.items():
        if key not in ("$schema", "content", "type"):
            message = "unexpected property"
            errors.append({"location": f"body.{key}", "message": message, "value": parsed})
        elif not isinstance(value, str):
            errors.append({"location": f"body.{key}", "message": "expected string", "value": value})
        elif key == "type" and value not in ("user", "raw"):
            message = 'expected value to be one of "user, raw"'
            errors.append({"location": "body.type", "message": message, "value": value})
    return errors


@dataclass(frozen=True)
class Part:
    """One part of a multipart/form-data body."""

    name: str | None
    filename: str | None
    data: bytes


def _param(headers: MimeHeaders, name: str) -> str | None:
    value = headers.get_param(name, header="content-disposition")
    if value is None:
        return None
    return collapse_rfc2231_value(value)


def parse_multipart(content_type: str, body: bytes) -> list[Part] | str:
    """The parts of a multipart/form-data body, or Go's error text when it cannot be read."""
    header = MimeHeaders()
    header["content-type"] = content_type
    if not content_type or header.get_content_type() != "multipart/form-data":
        return "request Content-Type isn't multipart/form-data"
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        return "no multipart boundary param in Content-Type"
    delimiter = b"--" + boundary.encode()
    start = body.find(delimiter)
    if start < 0:
        return "multipart: NextPart: EOF"
    position = start + len(delimiter)
    parts: list[Part] = []
    while not body.startswith(b"--", position):
        line_end = body.find(b"\n", position)
        if line_end < 0:
            return "multipart: NextPart: EOF"
        position = line_end + 1
        end = body.find(b"\r\n" + delimiter, position)
        if end < 0:
            return "multipart: NextPart: EOF"
        chunk = body[position:end]
        head_end = chunk.find(b"\r\n\r\n")
        if head_end < 0:
            return "multipart: NextPart: malformed MIME header"
        headers = BytesHeaderParser(policy=policy.compat32).parsebytes(chunk[: head_end + 4])
        parts.append(
            Part(_param(headers, "name"), _param(headers, "filename"), chunk[head_end + 4 :])
        )
        position = end + 2 + len(delimiter)
    return parts
