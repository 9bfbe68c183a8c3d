"""The one `/messages` rule (`agent.conversation`), held to the pydantic models that state it too.

Both HTTP paths read `/messages` through `agent.conversation`; events and state files go through
`agent.agentapi.Message`'s validators. A property holds the two to the same verdict on every
message, good or bad, so a message means the same wherever it comes from.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agent.agentapi import Message, parse_messages
from agent.conversation import check_message, read_history
from agent.errors import BadResponse
from tests.fakes import TIME

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=8),
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
IDS = st.one_of(st.integers(min_value=-(2**70), max_value=2**70), JSON)
ROLES = st.one_of(
    st.sampled_from(["user", "agent", "input", "output", " Human ", "ASSISTANT", "robot", ""]),
    JSON,
)
TIMES = st.one_of(
    st.sampled_from(
        [
            TIME,
            "2025-06-01T10:00:00Z",
            "2025-06-01t10:00:00+02:00",
            "2025-06-01T10:00:00Z\n",  # `$` matches before a final newline, in both
            "2025-06-01 10:00:00Z",
            "yesterday",
            "",
        ]
    ),
    JSON,
)
KEYS = st.sampled_from(["id", "role", "type", "content", "time", "$schema", "extra"])


@st.composite
def items(draw: st.DrawFn) -> object:
    """A `messages` entry as json.loads hands it over: often well-formed, often not."""
    if draw(st.integers(0, 9)) == 0:
        return draw(JSON)
    item: dict[str, Any] = {}
    values = {"id": IDS, "role": ROLES, "type": ROLES, "content": JSON, "time": TIMES}
    for key in draw(st.lists(KEYS, unique=True, min_size=2, max_size=7)):
        if key in values:
            item[key] = draw(values[key])
        else:
            item[key] = draw(JSON)
    if draw(st.booleans()):  # mostly the right types, so that acceptance is exercised too
        item.setdefault("id", draw(st.integers(0, 10**6)))
        item["content"] = draw(st.text(max_size=8))
        item.setdefault("time", TIME)
    return item


@given(items())
@example({"id": 1, "role": "user", "content": "x", "time": TIME})
@example({"id": True, "role": "user", "content": "x", "time": TIME})
@example({"id": 1.0, "role": "user", "content": "x", "time": TIME})
@example({"id": 2**64, "role": "user", "content": "x", "time": TIME})
@example({"id": 1, "role": None, "type": "input", "content": "x", "time": TIME})
@example({"id": 1, "type": "output", "content": "x", "time": TIME})
@example({"id": 1, "role": "user", "content": 7, "time": TIME})
@example({"id": 1, "role": "user", "content": "x", "time": "2025-06-01T10:00:00Z\n"})
@settings(max_examples=400, deadline=None)
def test_the_shared_rule_and_the_model_agree_on_every_message(item: object) -> None:
    agree(item)


# The long run, in `make slow` (CI runs both): drawing these nested values is most of the cost
# (about 5 ms an example under coverage), so `make test` keeps a shorter run beside the pinned
# examples above.
@pytest.mark.slow
@given(items())
@settings(max_examples=5000, deadline=None)
def test_the_shared_rule_and_the_model_agree_on_every_message_long_run(item: object) -> None:
    agree(item)


def agree(item: object) -> None:
    """The model and the shared rule give `item` the same verdict and the same fields."""
    try:
        model: Message | None = Message.model_validate(item)
    except ValidationError:
        model = None
    try:
        checked = check_message(item)
    except ValueError:
        assert model is None, f"the model accepts what the rule refuses: {item!r}"
        return
    assert model is not None, f"the rule accepts what the model refuses: {item!r}"
    assert (checked.id, checked.role, checked.content, checked.time) == (
        model.id,
        model.role,
        model.content,
        model.time,
    )


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"messages": 5}',
        b'{"messages": null}',
        b"{}",
        b'{"items": []}',
        b"\xff\xfe{}",
        json.dumps({"messages": []}).encode("utf-16"),
        b"[" * 100_000,
    ],
)
def test_an_answer_that_is_not_a_history_is_refused_by_both(body: bytes) -> None:
    with pytest.raises(BadResponse):
        read_history(body)
    with pytest.raises(BadResponse):
        parse_messages(body)


def test_both_paths_keep_the_same_messages() -> None:
    body = json.dumps(
        {
            "$schema": "x",
            "messages": [
                {"id": 0, "role": "agent", "content": "welcome", "time": TIME},
                {"id": "1", "role": "user", "content": "bad id", "time": TIME},
                {"id": 2, "type": "input", "content": "old name", "time": TIME},
                {"id": 3, "role": "robot", "content": "kept, never uploaded", "time": TIME},
                {"id": 4, "role": "user", "content": "\ud800 lone surrogate", "time": TIME},
            ],
        }
    ).encode()
    history = read_history(body)
    typed = parse_messages(body)
    assert [(m.id, m.role, m.content, m.time) for m in history.messages] == [
        (m.id, m.role, m.content, m.time) for m in typed
    ]
    assert [m.id for m in typed] == [0, 2, 3, 4]
    assert history.dropped == ["messages.1: id: not an integer"]
    assert history.dropped_fields() == {
        "dropped": 2,
        "malformed": 1,
        "other_roles": 1,
        "kept": 3,
        "first": "messages.1: id: not an integer",
    }
