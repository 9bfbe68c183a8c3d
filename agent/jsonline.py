"""JSON for the hooks' fast path without importing `json`, which imports `re`.

Why a module of its own: `report` and `snapshot` handed to a running daemon must cost about
what starting Python costs (issue 14), and `import json` (`re`, its parser and compiler, then
`json.decoder`, `json.scanner` and `json.encoder`) cost a third of that start again. What the
path writes and reads is small and plain: a request of a few strings, the daemon's answer
(`{"ok": true}`, an error text, an outcome word and an exit code) and a log line of strings
and numbers. `dumps` writes such values and `loads` reads a flat object of them; both give
exactly what `json` gives (tests/test_jsonline.py compares them by property) and hand
anything else to `json` itself, imported then: another type, a nested answer, a string with
an escape, a number with a fraction. So nothing here can disagree with `json`; at worst it is
as slow as before.
"""

from __future__ import annotations

# What `json.dumps` writes for these characters; the other control characters become \\u00XX.
_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
# JSON's whitespace, the only characters allowed between tokens (not Python's wider notion).
_BLANKS = " \t\n\r"
_INFINITY = float("inf")


class _Unsupported(Exception):
    """A value this module leaves to `json`."""


def dumps(value: object) -> str:
    """`json.dumps(value)`, with `json` imported only for what this module does not write.

    Written here: str, int, float, bool, None, and lists, tuples and dicts with str keys of
    these. Raises what `json.dumps` raises (TypeError for a value JSON cannot hold).
    """
    try:
        return _encode(value)
    except _Unsupported:
        import json  # noqa: PLC0415 - off the hooks' fast path: a value it never writes

        return json.dumps(value)


def _encode(value: object) -> str:
    # The order of `json`'s encoder: str and bool before int (a bool is an int), and the
    # built-in formatting of int and float, which a subclass (IntEnum) cannot change.
    if isinstance(value, str):
        return _string(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        if value != value:  # noqa: PLR0124 - NaN is the one float not equal to itself
            return "NaN"
        if value in (_INFINITY, -_INFINITY):
            return "Infinity" if value > 0 else "-Infinity"
        return float.__repr__(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_encode(item) for item in value) + "]"
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise _Unsupported
        pairs = (f"{_string(key)}: {_encode(item)}" for key, item in value.items())
        return "{" + ", ".join(pairs) + "}"
    raise _Unsupported


def _string(text: str) -> str:
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    return '"' + "".join(_char(c) for c in text) + '"'


def _char(c: str) -> str:
    """One character as `json.dumps` writes it (ASCII only: ensure_ascii)."""
    if " " <= c <= "~" and c not in _SHORT_ESCAPES:
        return c
    escape = _SHORT_ESCAPES.get(c)
    if escape is not None:
        return escape
    code = ord(c)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # a UTF-16 surrogate pair, as JSON spells what lies past the BMP
    return f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}"


def loads(data: bytes) -> object:
    """`json.loads(data)`, with `json` imported only for what is not a flat object of plain values.

    Read here: an ASCII object whose values are strings without escapes, integers, true, false
    or null (every answer the daemon gives). Raises what `json.loads` raises (ValueError for
    what is not JSON, RecursionError for too deep a nesting).
    """
    if data.isascii():
        found = _flat_object(data.decode("ascii"))
        if found is not None:
            return found
    import json  # noqa: PLC0415 - off the hooks' fast path: anything else, valid or not

    return json.loads(data)


def _flat_object(text: str) -> dict[str, object] | None:
    """`text` as a flat JSON object of plain values; None when it is anything else."""
    at = _skip_blanks(text, 0)
    if not text.startswith("{", at):
        return None
    at = _skip_blanks(text, at + 1)
    found: dict[str, object] = {}
    if text.startswith("}", at):
        return found if _skip_blanks(text, at + 1) == len(text) else None
    while True:
        key, at = _plain_string(text, at)
        if key is None:
            return None
        at = _skip_blanks(text, at)
        if not text.startswith(":", at):
            return None
        value, at = _plain_value(text, _skip_blanks(text, at + 1))
        if at < 0:
            return None
        found[key] = value  # a repeated key: the last one wins, as in `json`
        at = _skip_blanks(text, at)
        if text.startswith(",", at):
            at = _skip_blanks(text, at + 1)
            continue
        if text.startswith("}", at) and _skip_blanks(text, at + 1) == len(text):
            return found
        return None


def _skip_blanks(text: str, at: int) -> int:
    while at < len(text) and text[at] in _BLANKS:
        at += 1
    return at


def _plain_string(text: str, at: int) -> tuple[str | None, int]:
    """A string without escapes or control characters at `at`, and where it ends."""
    if not text.startswith('"', at):
        return None, -1
    end = text.find('"', at + 1)
    if end < 0:
        return None, -1
    value = text[at + 1 : end]
    # isprintable: no control character (which JSON refuses raw) and no DEL (allowed, but
    # rare enough to leave to `json`).
    if "\\" in value or not value.isprintable():
        return None, -1
    return value, end + 1


_LITERALS = {"true": True, "false": False, "null": None}


def _plain_value(text: str, at: int) -> tuple[object, int]:
    """A plain string, integer, true, false or null at `at`, and where it ends (-1: none)."""
    if text.startswith('"', at):
        return _plain_string(text, at)
    for word, value in _LITERALS.items():
        if text.startswith(word, at):
            return value, at + len(word)
    end = at + 1 if text.startswith("-", at) else at
    while end < len(text) and "0" <= text[end] <= "9":
        end += 1
    digits = text[at:end].removeprefix("-")
    if not digits or (digits.startswith("0") and digits != "0"):
        return None, -1  # not a number, or a leading zero (which JSON refuses)
    if text.startswith((".", "e", "E"), end):
        return None, -1  # a fraction or an exponent: a float, left to `json`
    try:
        return int(text[at:end]), end
    except ValueError:
        return None, -1  # past Python's limit on digits: `json` says so
