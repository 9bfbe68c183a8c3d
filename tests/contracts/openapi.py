"""AgentAPI's OpenAPI document, vendored beside this file, as validators.

`agentapi-openapi.json` is coder/agentapi v0.12.1's own document (OpenAPI 3.0.3), copied into the
repository so that the contract tests run on a fresh clone and never skip. Refresh it by copying a
newer release's document over it; the tests then say what changed for the stand-in and the client.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from openapi_schema_validator import OAS30ReadValidator, oas30_format_checker
from referencing import Registry, Resource

SPEC_PATH = Path(__file__).with_name("agentapi-openapi.json")
SPEC_URI = "urn:agentapi-openapi"
EVENTS_SCHEMA = "/paths/~1events/get/responses/200/content/text~1event-stream/schema/items"


def load_spec() -> dict[str, Any]:
    """The document, parsed."""
    spec: dict[str, Any] = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    return spec


class Contract:
    """The document as validators of answers, events and component schemas.

    `answers` and `event_names` record what was checked, so a test can assert that every route
    and event kind was covered.
    """

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self._registry: Registry[Any] = Registry().with_resource(SPEC_URI, Resource.opaque(spec))
        stream = spec["paths"]["/events"]["get"]["responses"]["200"]["content"]
        alternatives = stream["text/event-stream"]["schema"]["items"]["oneOf"]
        self.events = {alt["properties"]["event"]["const"]: i for i, alt in enumerate(alternatives)}
        self._validators: dict[str, OAS30ReadValidator] = {}
        self.answers: set[tuple[str, str, int]] = set()
        self.event_names: set[str] = set()

    def validator(self, pointer: str) -> OAS30ReadValidator:
        """A validator for the schema at this JSON pointer into the document."""
        if pointer not in self._validators:
            self._validators[pointer] = OAS30ReadValidator(
                {"$ref": f"{SPEC_URI}#{pointer}"},
                registry=self._registry,
                format_checker=oas30_format_checker,
            )
        return self._validators[pointer]

    def component(self, name: str) -> OAS30ReadValidator:
        """A validator for `#/components/schemas/NAME`."""
        return self.validator(f"/components/schemas/{name}")

    def check_answer(self, method: str, path: str, status: int, media: str, body: object) -> None:
        """A JSON answer must be what the document says this route answers with this status."""
        operation = self.spec["paths"][path][method.lower()]
        key = str(status) if str(status) in operation["responses"] else "default"
        content = operation["responses"][key]["content"]
        assert media in content, f"{method} {path} {status}: the document has no {media} answer"
        escaped_path = path.replace("/", "~1")
        pointer = f"/paths/{escaped_path}/{method.lower()}/responses/{key}/content/"
        self.validator(pointer + media.replace("/", "~1") + "/schema").validate(body)
        self.answers.add((method, path, status))

    def check_event(self, name: str, data: object) -> None:
        """An event must be one the document lists, its data valid for that event."""
        assert name in self.events, f"event {name!r} is not in the document"
        frame = {"event": name, "data": data}
        # OpenAPI 3.0 has no `const`, so the `oneOf` cannot tell events apart by name: every
        # event is held to its own alternative (the whole `oneOf` once per name: it is slower).
        self.validator(f"{EVENTS_SCHEMA}/oneOf/{self.events[name]}").validate(frame)
        if name not in self.event_names:
            self.validator(EVENTS_SCHEMA).validate(frame)
        self.event_names.add(name)
