"""agent.jsonline gives what `json` gives, whatever the value or the bytes (by property).

Equality is checked on what both produce: the text written, or the value read (compared
through `json.dumps` so that NaN, which `json` reads and is not equal to itself, compares).
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent import jsonline
from agent.models import AppState, ExitCode

TEXT = st.text(
    alphabet=st.one_of(
        st.characters(),  # any code point, lone surrogates included
        st.sampled_from(['"', "\\", "\n", "\t", "\x00", "\x1f", "\x7f", "é", "👍", "\U0010ffff"]),
    ),
    max_size=30,
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and the infinities included: `json` writes them too
    TEXT,
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(TEXT, inner, max_size=4),
    ),
    max_leaves=12,
)
# What the daemon answers and what a request holds: the shapes read without `json`.
PLAIN_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), TEXT)
FLAT = st.dictionaries(TEXT, PLAIN_SCALARS, max_size=6)


def same(read: object, expected: object) -> bool:
    return json.dumps(read) == json.dumps(expected)


@given(VALUES)
def test_dumps_writes_what_json_writes(value: object) -> None:
    assert jsonline.dumps(value) == json.dumps(value)


def test_dumps_leaves_other_values_to_json() -> None:
    assert jsonline.dumps({1: "x", None: [1.5]}) == json.dumps({1: "x", None: [1.5]})
    with pytest.raises(TypeError):
        jsonline.dumps({"x": object()})
    with pytest.raises(TypeError):
        jsonline.dumps({(1, 2): "x"})


def test_dumps_writes_enums_as_their_values() -> None:
    value = {"state": AppState.IDLE, "exit_code": ExitCode.REJECTED}
    assert jsonline.dumps(value) == json.dumps(value) == '{"state": "idle", "exit_code": 4}'


def agree(data: bytes) -> None:
    """jsonline.loads(data) reads what json.loads reads, or raises what it raises."""
    try:
        expected = json.loads(data)
    except (ValueError, RecursionError) as exc:
        with pytest.raises(type(exc)):
            jsonline.loads(data)
    else:
        assert same(jsonline.loads(data), expected)


@given(FLAT)
def test_loads_reads_a_flat_object_as_json_does(value: dict[str, object]) -> None:
    text = json.dumps(value)
    assert same(jsonline.loads(text.encode()), json.loads(text))
    # Raw UTF-8 (a lone surrogate written as such is no UTF-8: both refuse it) and other spacing.
    agree(json.dumps(value, ensure_ascii=False, indent=1).encode("utf-8", "surrogatepass"))


@given(VALUES)
def test_loads_reads_any_json_as_json_does(value: object) -> None:
    text = json.dumps(value)
    assert same(jsonline.loads(text.encode()), json.loads(text))


# Bytes that are nearly a flat object: where a hand-written reader would go wrong.
PIECES = st.sampled_from(
    ['{', '}', '"', '"a"', ":", ",", " ", "\t", "\n", "\x0b", "\x0c", "\x00", "\x7f", "\\",
     "\\u0041", "0", "01", "-", "-0", "1.5", "1e3", "2E-1", "true", "false", "null", "tru",
     "nulll", "NaN", "Infinity", "[", "]", "{}", "é", "\ufeff", "9" * 5000]
)  # fmt: skip
NEAR_JSON = st.lists(PIECES, max_size=14).map("".join)


@given(st.one_of(NEAR_JSON, st.text(max_size=20)))
def test_loads_agrees_with_json_on_any_text(text: str) -> None:
    agree(text.encode("utf-8", errors="surrogatepass"))


@pytest.mark.parametrize(
    "answer",
    [
        {"ok": True},
        {"ok": False, "error": "state: must be one of working, idle, complete, failed; got 'x'"},
        {"ok": True, "outcome": "uploaded", "exit_code": 0},
        {"ok": True, "outcome": "no_conversation", "exit_code": -3},
    ],
)
def test_the_daemons_answers_are_read_without_json(answer: dict[str, object]) -> None:
    # The point of the module: these never reach `json` (None would mean "left to json").
    for line in (json.dumps(answer), json.dumps(answer, separators=(",", ":"), indent=2)):
        assert jsonline._flat_object(line) == answer


@pytest.mark.parametrize(
    "line",
    [
        '{"error": "a \\"quoted\\" word"}',  # an escape
        '{"ratio": 1.5}',  # a float
        '{"nested": {"ok": true}}',
        '["ok"]',
        '{"ok": true} x',
    ],
)
def test_other_shapes_are_left_to_json(line: str) -> None:
    assert jsonline._flat_object(line) is None


def test_floats_as_json_writes_them() -> None:
    for value in (0.1, -0.0, 1e300, math.inf, -math.inf, math.nan, 12345.678):
        assert jsonline.dumps(value) == json.dumps(value)
