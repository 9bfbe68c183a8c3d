"""The product's AgentAPI models (agent/agentapi.py) held to AgentAPI's OpenAPI document.

The stand-in's answers are checked against the same document in devkit/tests; here the other
side: every payload the document allows parses into the client's models with its values intact,
the models know every field the document requires and demand none it leaves optional, their
enums are the document's, and a value of the wrong type is refused by both.
"""

from __future__ import annotations

import itertools
import json
from typing import Any, Literal, get_args, get_origin

import anyio
import httpx
import pytest
from pydantic import BaseModel, ValidationError

from agent.agentapi import (
    AgentAPIClient,
    AgentErrorEvent,
    Message,
    MessageUpdate,
    StatusChange,
    StatusResponse,
    parse_event,
)
from tests.contracts.openapi import Contract, load_spec

CONTRACT = Contract(load_spec())
SCHEMAS: dict[str, Any] = CONTRACT.spec["components"]["schemas"]

# model -> the component schema of the payload it parses
MODELS: dict[type[BaseModel], str] = {
    StatusResponse: "StatusResponseBody",
    Message: "Message",
    MessageUpdate: "MessageUpdateBody",
    StatusChange: "StatusChangeBody",
    AgentErrorEvent: "ErrorBody",
}
EVENTS: dict[str, type[BaseModel]] = {
    "message_update": MessageUpdate,
    "status_change": StatusChange,
    "agent_error": AgentErrorEvent,
}

# Sample values per schema type: the edges a real server produces (Go's nanosecond times, an
# offset, ids past 32 bits, terminal text with HTML-escaped characters and box drawing).
SAMPLES: dict[str, tuple[object, ...]] = {
    "date-time": ("2025-06-01T10:00:00.123456789Z", "2025-06-01T12:00:00+02:00"),
    "integer": (0, 2**40),
    "string": ("", "╭─ <build> & \u2028 ─╮\n│ ok │"),
    "boolean": (True, False),
}
WRONG_TYPE: dict[str, object] = {"string": 7, "integer": "7", "boolean": "yes"}


def resolved(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema behind a local `$ref`, else the schema itself."""
    ref = schema.get("$ref")
    if ref is None:
        return schema
    return dict(SCHEMAS[ref.rsplit("/", 1)[1]])


def values(schema: dict[str, Any]) -> tuple[object, ...]:
    """Every enum value, or the samples of the type (by format first)."""
    target = resolved(schema)
    if "enum" in target:
        return tuple(target["enum"])
    return SAMPLES.get(target.get("format", ""), SAMPLES[target["type"]])


def examples(name: str) -> list[dict[str, object]]:
    """Payloads for a component schema: every combination of its enums' values, the samples of
    the other properties taking turns (so each sample appears, without the full product)."""
    properties = {
        key: values(prop) for key, prop in SCHEMAS[name]["properties"].items() if key != "$schema"
    }
    enums = [key for key, prop in SCHEMAS[name]["properties"].items() if "enum" in resolved(prop)]
    combinations = list(itertools.product(*(properties[key] for key in enums)))
    count = max(len(combinations), *(len(v) for v in properties.values()))
    return [
        {
            **{key: options[i % len(options)] for key, options in properties.items()},
            **dict(zip(enums, combinations[i % len(combinations)], strict=True)),
        }
        for i in range(count)
    ]


def wire_name(model: type[BaseModel], field: str) -> str:
    return model.model_fields[field].alias or field


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_examples_valid_under_the_document_parse_with_their_values(
    model: type[BaseModel],
) -> None:
    validator = CONTRACT.component(MODELS[model])
    payloads = examples(MODELS[model])
    for payload in payloads:
        validator.validate(payload)  # the example itself is what the document allows
        parsed = model.model_validate_json(json.dumps(payload))
        for field in model.model_fields:
            assert getattr(parsed, field) == payload[wire_name(model, field)], field


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_models_know_every_required_field_and_require_no_optional_one(
    model: type[BaseModel],
) -> None:
    schema = SCHEMAS[MODELS[model]]
    required = set(schema.get("required", ())) - {"$schema"}
    known = {wire_name(model, f) for f in model.model_fields}
    assert required <= known, "a field every answer carries is not read"
    demanded = {wire_name(model, f) for f, info in model.model_fields.items() if info.is_required()}
    assert demanded <= required, "the model refuses answers the document allows"
    assert known <= set(schema["properties"]), "the model reads a field the document lacks"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_enum_fields_are_the_documents_enums(model: type[BaseModel]) -> None:
    properties = SCHEMAS[MODELS[model]]["properties"]
    for field, info in model.model_fields.items():
        target = resolved(properties[wire_name(model, field)])
        if get_origin(info.annotation) is Literal:
            assert set(get_args(info.annotation)) == set(target.get("enum", ())), field
        elif "enum" in target:
            assert info.annotation is str, f"{field}: a str accepts every enum value"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_a_value_of_the_wrong_type_is_refused_by_both(model: type[BaseModel]) -> None:
    name = MODELS[model]
    validator = CONTRACT.component(name)
    good = examples(name)[0]
    for field in model.model_fields:
        key = wire_name(model, field)
        kind = resolved(SCHEMAS[name]["properties"][key])["type"]
        bad = {**good, key: WRONG_TYPE[kind]}
        assert not validator.is_valid(bad)
        with pytest.raises(ValidationError):
            model.model_validate_json(json.dumps(bad))


def test_times_the_document_refuses_are_refused() -> None:
    validator = CONTRACT.component("Message")
    good = examples("Message")[0]
    for time in ("yesterday", "2025-06-01 10:00:00Z", "2025-06-01T10:00:00"):
        bad = {**good, "time": time}
        assert not validator.is_valid(bad), time
        with pytest.raises(ValidationError):
            Message.model_validate_json(json.dumps(bad))


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_every_event_the_document_lists_parses_into_its_model(name: str) -> None:
    assert set(CONTRACT.events) == set(EVENTS)
    for payload in examples(MODELS[EVENTS[name]]):
        CONTRACT.check_event(name, payload)
        assert isinstance(parse_event(name, json.dumps(payload)), EVENTS[name])


@pytest.mark.anyio
async def test_the_client_reads_whole_answers_the_document_allows() -> None:
    host = "http://localhost:3284"
    status = {
        "$schema": f"{host}/schemas/StatusResponseBody.json",
        **examples("StatusResponseBody")[1],
    }
    history = [{**m, "id": i} for i, m in enumerate(examples("Message") * 2)]
    messages = {"$schema": f"{host}/schemas/MessagesResponseBody.json", "messages": history}
    CONTRACT.check_answer("GET", "/status", 200, "application/json", status)
    CONTRACT.check_answer("GET", "/messages", 200, "application/json", messages)

    def answer(request: httpx.Request) -> httpx.Response:
        body = status if request.url.path == "/status" else messages
        return httpx.Response(200, json=body)

    transport = httpx.MockTransport(answer)
    async with httpx.AsyncClient(base_url=host, transport=transport, timeout=5.0) as http:
        client = AgentAPIClient(http)
        with anyio.fail_after(5):
            got_status = await client.status()
            got_messages = await client.messages()
    assert (got_status.status, got_status.agent_type, got_status.transport) == (
        status["status"],
        status["agent_type"],
        status["transport"],
    )
    assert [m.model_dump() for m in got_messages] == [
        {k: m[k] for k in ("id", "role", "content", "time")} for m in history
    ]


def test_examples_hold_every_combination_of_enum_values() -> None:
    pairs = {(p["status"], p["transport"]) for p in examples("StatusResponseBody")}
    assert pairs == {("running", "acp"), ("running", "pty"), ("stable", "acp"), ("stable", "pty")}
