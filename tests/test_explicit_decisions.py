"""A decision is never assumed: no request body in the OpenAPI document gives a decision field a default, so a
client that leaves it out gets a 422 naming it rather than a confirmation, approval or verification it never
made. Swept from the document itself, so a new decision field is covered the day it is added."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.settings import Settings
from server.app import create_app
from tests.conftest import fresh_database_url

# A property is a decision by its name, or by the values it admits (a choice of verdicts, whatever it is called).
DECISION_NAMES = re.compile(r"^(decision|action|approve|approved|verdict|outcome)$|_decision$")
VERDICTS = re.compile(r"\b(approve|reject|confirm|verify|accept|refuse|deny)\b")


def _document(tmp_path: Path) -> dict[str, Any]:
    app = create_app(Settings(database_url=fresh_database_url("sqlite", tmp_path), scheduler_embedded=False))
    return app.openapi_schema.to_schema()


def _properties(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(operationId, dotted property path, property schema) for every property of every request body."""
    components = doc.get("components", {}).get("schemas", {})

    def walk(schema: dict[str, Any], where: str, seen: frozenset[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            if name in seen:
                return
            seen, schema = seen | {name}, components[name]
        for key in ("oneOf", "anyOf", "allOf"):
            for option in schema.get(key, []):
                yield from walk(option, where, seen)
        if "items" in schema:
            yield from walk(schema["items"], f"{where}[]", seen)
        for prop, sub in schema.get("properties", {}).items():
            yield f"{where}.{prop}".lstrip("."), sub
            yield from walk(sub, f"{where}.{prop}", seen)

    for path, item in doc["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict) or "requestBody" not in op:
                continue
            for content in op["requestBody"]["content"].values():
                for where, sub in walk(content["schema"], "", frozenset()):
                    yield op.get("operationId", f"{method.upper()} {path}"), where, sub


def _admits_verdicts(schema: dict[str, Any]) -> bool:
    words = " ".join([schema.get("pattern", ""), *(str(v) for v in schema.get("enum", []))])
    return bool(VERDICTS.search(words)) or any(_admits_verdicts(o) for o in schema.get("oneOf", []))


def test_no_decision_field_in_any_request_body_has_a_default(tmp_path: Path) -> None:
    doc = _document(tmp_path)
    decisions = [
        (op, where, sub)
        for op, where, sub in _properties(doc)
        if DECISION_NAMES.search(where.rsplit(".", 1)[-1]) or _admits_verdicts(sub)
    ]
    found = {op for op, _, _ in decisions}
    # The sweep sees the decisions that exist today (else it would pass by finding nothing).
    assert {"confirmParameter", "approveTransfer", "verifyReport", "approveAllocationTable"} <= found, found
    defaulted = [(op, where, sub["default"]) for op, where, sub in decisions if "default" in sub]
    assert defaulted == [], f"a decision with a default: {defaulted}"
    # ... and each one is required where it stands: leaving it out is a 422 naming it.
    components = doc["components"]["schemas"]
    for op, where, _ in decisions:
        if "." in where or "[]" in where:
            continue  # nested: required-ness is its parent object's, checked by the same rule there
        body = next(
            o["requestBody"]["content"]
            for item in doc["paths"].values()
            for o in item.values()
            if isinstance(o, dict) and o.get("operationId") == op
        )
        schema = next(iter(body.values()))["schema"]
        schema = components[schema["$ref"].rsplit("/", 1)[-1]] if "$ref" in schema else schema
        assert where in schema.get("required", []), f"{op}: {where} is not required"
