"""Every input the API accepts is bounded, checked by walking the served OpenAPI document (/schema/openapi.json),
so a new route or field is covered the day it is added.

For every operation:

- an integer path or query parameter has both `minimum` and `maximum` (exclusive forms count);
- a string path or query parameter has `maxLength`, unless it is an `enum` or has `format` date or date-time
  (their shape bounds them);
- an array query parameter has `maxItems`, and its items are checked as above;
- in every request body schema (each content type; `$ref` followed into components, recursively, through
  nested objects, arrays, `oneOf`/`anyOf`/`allOf` and `additionalProperties`):
  - a string has `maxLength`, unless it is an `enum`/`const`, has `format` date, date-time or uuid, or a
    `pattern` anchored at both ends (`^...$`) whose repetitions are all bounded (no `*`, `+` or `{n,}`): those
    fix the length by their shape;
  - an integer has `minimum` and `maximum`;
  - an array has `maxItems`;
  - an object with `additionalProperties` (a free dict) has `maxProperties`.

A `format: binary` string (an uploaded file in a multipart body) is bounded by the edge's request size limit,
not by the schema, and is not an offender.

Offenders are printed as `operationId  location  field: what is missing`. There are none, and no list of
exceptions: a new unbounded input fails the test until it is bounded.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from litestar.testing import TestClient

from core.settings import Settings
from server.app import create_app
from tests.conftest import schema_database_url

# Bounds Litestar writes beside a `oneOf` (for `Id | None` it puts minimum/maximum on the union, not on its arm;
# for an optional list the schema of its items): in JSON Schema they apply to every arm of the matching type, so
# the arms inherit them.
BOUND_KEYS = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "maxLength",
    "maxItems",
    "maxProperties",
    "items",
)

EXEMPT_STRING_FORMATS = {"date", "date-time", "uuid", "binary"}
EXEMPT_PARAM_STRING_FORMATS = {"date", "date-time"}


def _bounded_pattern(pattern: str) -> bool:
    """An anchored pattern whose every repetition is bounded: it fixes a longest match by its shape."""
    if not (pattern.startswith("^") and pattern.endswith("$")):
        return False
    body = re.sub(r"\\.", "x", pattern)  # escaped characters are literals
    body = re.sub(r"\[[^\]]*\]", "x", body)  # classes are one character
    return not re.search(r"[*+]|\{\d+,\}", body)


class _Walker:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.components = doc.get("components", {}).get("schemas", {})
        self.offenders: list[str] = []

    @staticmethod
    def arms(schema: dict[str, Any], keys: tuple[str, ...]) -> list[tuple[int, dict[str, Any]]]:
        outer = {k: schema[k] for k in BOUND_KEYS if k in schema}
        found = []
        for key in keys:
            for i, sub in enumerate(schema.get(key, [])):
                found.append((i, {**sub, **outer} if "$ref" not in sub else sub))
        return found

    def resolve(self, schema: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        ref = schema.get("$ref")
        if ref is None:
            return schema, None
        name = ref.rsplit("/", 1)[-1]
        return self.components[name], name

    def body(self, op: str, where: str, schema: dict[str, Any], seen: frozenset[str] = frozenset()) -> None:
        schema, name = self.resolve(schema)
        if name is not None:
            if name in seen:
                return
            seen = seen | {name}
            where = f"{where}<{name}>"
        arms = self.arms(schema, ("oneOf", "anyOf", "allOf"))
        for i, sub in arms:
            self.body(op, where if len(arms) == 1 else f"{where}|{i}", sub, seen)
        kind = schema.get("type")
        kinds = set(kind) if isinstance(kind, list) else {kind} if kind else set()
        string = "string" in kinds and not self._string_exempt(schema, EXEMPT_STRING_FORMATS, patterns=True)
        if string and "maxLength" not in schema:
            self.offenders.append(f"{op}  body  {where}: string without maxLength")
        if "integer" in kinds:
            self._integer(op, "body", where, schema)
        if "array" in kinds:
            if "maxItems" not in schema:
                self.offenders.append(f"{op}  body  {where}: array without maxItems")
            items = schema.get("items")
            if isinstance(items, dict):
                self.body(op, f"{where}[]", items, seen)
        if "object" in kinds or "properties" in schema:
            for prop, sub in schema.get("properties", {}).items():
                self.body(op, f"{where}.{prop}", sub, seen)
            extra = schema.get("additionalProperties")
            if extra not in (None, False):
                if "maxProperties" not in schema:
                    self.offenders.append(f"{op}  body  {where}: free object without maxProperties")
                if isinstance(extra, dict):
                    self.body(op, f"{where}{{}}", extra, seen)

    def param(self, op: str, location: str, name: str, schema: dict[str, Any]) -> None:
        schema, _ = self.resolve(schema)
        for _, sub in self.arms(schema, ("oneOf", "anyOf")):
            self.param(op, location, name, sub)
        kind = schema.get("type")
        kinds = set(kind) if isinstance(kind, list) else {kind} if kind else set()
        if "integer" in kinds:
            self._integer(op, location, name, schema)
        string = "string" in kinds and not self._string_exempt(schema, EXEMPT_PARAM_STRING_FORMATS, patterns=False)
        if string and "maxLength" not in schema:
            self.offenders.append(f"{op}  {location}  {name}: string without maxLength")
        if "array" in kinds:
            if "maxItems" not in schema:
                self.offenders.append(f"{op}  {location}  {name}: array without maxItems")
            if isinstance(schema.get("items"), dict):
                self.param(op, location, f"{name}[]", schema["items"])

    def _integer(self, op: str, location: str, where: str, schema: dict[str, Any]) -> None:
        low = "minimum" in schema or "exclusiveMinimum" in schema
        high = "maximum" in schema or "exclusiveMaximum" in schema
        if not (low and high):
            missing = " and ".join(m for m, ok in (("minimum", low), ("maximum", high)) if not ok)
            self.offenders.append(f"{op}  {location}  {where}: integer without {missing}")

    @staticmethod
    def _string_exempt(schema: dict[str, Any], formats: set[str], *, patterns: bool) -> bool:
        if "enum" in schema or "const" in schema or schema.get("format") in formats:
            return True
        return patterns and isinstance(schema.get("pattern"), str) and _bounded_pattern(schema["pattern"])


def openapi_offenders(doc: dict[str, Any]) -> list[str]:
    walker = _Walker(doc)
    for path, item in doc["paths"].items():
        shared = item.get("parameters", [])
        for method, op in item.items():
            if not isinstance(op, dict) or method == "parameters":
                continue
            op_id = op.get("operationId", f"{method.upper()} {path}")
            for param in [*shared, *op.get("parameters", [])]:
                if param.get("in") in ("path", "query"):
                    walker.param(op_id, param["in"], param["name"], param.get("schema", {}))
            for content_type, media in op.get("requestBody", {}).get("content", {}).items():
                if "schema" in media:
                    walker.body(op_id, content_type, media["schema"])
    return sorted(set(walker.offenders))


def test_the_bounded_pattern_rule() -> None:
    assert _bounded_pattern(r"^[A-Z]{2}-\d{4}$")
    assert not _bounded_pattern(r"^[A-Z]+$")
    assert not _bounded_pattern(r"^a{2,}$")
    assert not _bounded_pattern(r"[A-Z]{2}")


def test_the_walker_finds_unbounded_inputs() -> None:
    """With no list of exceptions left, the walker itself is what can fail: it names each kind of offender."""
    row = {
        "type": "object",
        "properties": {
            "n": {"oneOf": [{"type": "integer"}, {"type": "null"}], "minimum": 0},
            "bounded": {"oneOf": [{"type": "integer"}, {"type": "null"}], "minimum": 0, "maximum": 9},
            "text": {"oneOf": [{"type": "string", "maxLength": 5}, {"type": "integer"}]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "extra": {"type": "object", "additionalProperties": True},
        },
    }
    doc = {
        "components": {"schemas": {"Row": row}},
        "paths": {"/x": {"post": {
            "operationId": "op",
            "parameters": [{"in": "query", "name": "q", "schema": {"type": "string"}}],
            "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Row"}}}},
        }}},
    }
    assert openapi_offenders(doc) == [
        "op  body  application/json<Row>.extra: free object without maxProperties",
        "op  body  application/json<Row>.n|0: integer without maximum",
        "op  body  application/json<Row>.tags: array without maxItems",
        "op  body  application/json<Row>.tags[]: string without maxLength",
        "op  body  application/json<Row>.text|1: integer without minimum and maximum",
        "op  query  q: string without maxLength",
    ]


def test_every_input_of_every_operation_is_bounded(tmp_path: Path) -> None:
    url = schema_database_url("sqlite", tmp_path)
    app = create_app(Settings(database_url=url, scheduler_embedded=False))
    with TestClient(app=app) as client:
        answer = client.get("/schema/openapi.json")
    assert answer.status_code == 200, answer.text
    offenders = openapi_offenders(answer.json())
    report = "\n".join(offenders)
    assert not offenders, f"{len(offenders)} unbounded inputs (operation, location, field):\n{report}"


def _served_document(tmp_path: Path) -> tuple[dict[str, Any], TestClient[Any]]:
    url = schema_database_url("sqlite", tmp_path)
    app = create_app(Settings(database_url=url, scheduler_embedded=False))
    client = TestClient(app=app)
    return client.get("/schema/openapi.json").json(), client


def test_every_operation_with_an_input_declares_its_422(tmp_path: Path) -> None:
    """A bounded input refused answers 422 (the fuzzer's undeclared-status finding on downloadComplianceReport,
    getProblemType and verifyDocument): every operation with a parameter or a body declares it, as problem+json."""
    doc, _ = _served_document(tmp_path)
    missing = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict) or not (op.get("parameters") or "requestBody" in op):
                continue
            answer = op.get("responses", {}).get("422")
            if answer is None or "application/problem+json" not in answer.get("content", {}):
                missing.append(op.get("operationId", f"{method.upper()} {path}"))
    assert missing == []


def test_an_overlong_public_path_text_is_a_422_naming_it(tmp_path: Path) -> None:
    _, client = _served_document(tmp_path)
    with client:
        for path, field in (("/problems/" + "x" * 65, "slug"), ("/verify/" + "x" * 1001, "code")):
            r = client.get(path)
            assert r.status_code == 422, (path, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["field"] == field
