"""The OpenAPI document teaches a client how to call each operation, checked by walking the served document
(/schema/openapi.json), so a new route or field is covered the day it is added:

- every request body has an example, and every example is valid: it validates against its own schema in the
  document (JSON Schema 2020-12, jsonschema-rs), decodes strictly into the Struct the handler takes, and a real
  app answers it, posted with a key of a role the route admits (on a fresh world, so most answer 404 for ids that
  do not exist there), with anything but 422 (NOT_SENT names the one example that is not sent, and why);
- every property of every request body schema (followed through `$ref`, nested objects, arrays and unions) has a
  `description`, and so has the top-level schema of every JSON answer;
- an operation declares the `Idempotency-Key` header exactly when the edge honours it. What "honours" means is
  found by asking the app, not by reading the route table: the request is sent without the header, and only an
  operation that honours the key answers 400 `idempotency-key-missing`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import msgspec
import pytest
from litestar.handlers import HTTPRouteHandler
from litestar.testing import TestClient

from core.identity import Role
from core.settings import Settings
from server.app import PUBLIC_PATHS, create_app
from tests.conftest import schema_database_url
from tests.test_authorization_matrix import _allowed, _routes

PUBLIC = [re.compile(p) for p in PUBLIC_PATHS]
HEADER = "Idempotency-Key"
# Examples not sent to the app (they are still validated and decoded): a webhook URL is resolved by DNS when the
# endpoint is registered, and tests send nothing off this machine.
NOT_SENT = {"createWebhookEndpoint"}


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    url = schema_database_url("sqlite", tmp_path_factory.mktemp("doc"))
    app = create_app(Settings(database_url=url, scheduler_embedded=False))
    with TestClient(app=app) as client:
        answer = client.get("/schema/openapi.json")
    assert answer.status_code == 200, answer.text
    doc: dict[str, Any] = answer.json()
    return doc


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and method != "parameters":
                found.append((path, method.upper(), op))
    return found


def _component(doc: dict[str, Any], schema: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    ref = schema.get("$ref")
    if ref is None:
        return schema, None
    name = ref.rsplit("/", 1)[-1]
    return doc["components"]["schemas"][name], name


def _json_bodies(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(operationId, media type object, schema) of every JSON request body."""
    bodies = []
    for _, _, op in _operations(doc):
        media = op.get("requestBody", {}).get("content", {}).get("application/json")
        if media is not None:
            bodies.append((op["operationId"], media, media.get("schema", {})))
    return bodies


def _examples(doc: dict[str, Any], media: dict[str, Any], schema: dict[str, Any]) -> list[Any]:
    """The examples a reader of the document is shown: on the media type, else on the body's schema."""
    if "example" in media:
        return [media["example"]]
    if media.get("examples"):
        return [e.get("value") for e in media["examples"].values()]
    component, _ = _component(doc, schema)
    return list(component.get("examples") or schema.get("examples") or [])


def _handlers(app: Any) -> dict[str, tuple[str, str, HTTPRouteHandler]]:
    """operationId → (path, method, handler) for every handler in the document."""
    found = {}
    for path, method, handler in _routes(app):
        if isinstance(handler.operation_id, str):
            found[handler.operation_id] = (path, method, handler)
    return found


# ----------------------------------------------------------------------------------------------- the walkers


def undescribed_properties(doc: dict[str, Any]) -> list[str]:
    """`operationId  Schema.path.to.property` for every request-body property without a description."""
    offenders: set[str] = set()

    def walk(op: str, where: str, schema: dict[str, Any], seen: frozenset[str]) -> None:
        schema, name = _component(doc, schema)
        if name is not None:
            if name in seen:
                return
            seen = seen | {name}
            where = name
        for key in ("oneOf", "anyOf", "allOf"):
            for sub in schema.get(key, []):
                walk(op, where, sub, seen)
        if isinstance(schema.get("items"), dict):
            walk(op, f"{where}[]", schema["items"], seen)
        if isinstance(schema.get("additionalProperties"), dict):
            walk(op, f"{where}{{}}", schema["additionalProperties"], seen)
        for prop, sub in schema.get("properties", {}).items():
            if not sub.get("description"):
                offenders.add(f"{op}  {where}.{prop}")
            walk(op, f"{where}.{prop}", sub, seen)

    for op, _, schema in _json_bodies(doc):
        walk(op, "body", schema, frozenset())
    return sorted(offenders)


def undescribed_answers(doc: dict[str, Any]) -> list[str]:
    """`operationId  status  Schema` for every JSON answer whose top-level schema (a component: a Struct; a handler
    that answers a plain dict has no schema of its own to describe) has no description."""
    offenders = set()
    for _, _, op in _operations(doc):
        for status, response in op.get("responses", {}).items():
            for media_type, media in (response.get("content") or {}).items():
                if not media_type.endswith("json") or "schema" not in media:
                    continue
                schema = media["schema"]
                if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
                    schema = schema["items"]
                component, name = _component(doc, schema)
                if name is not None and not component.get("description"):
                    offenders.add(f"{op['operationId']}  {status}  {name}")
    return sorted(offenders)


def declares_key(op: dict[str, Any]) -> bool:
    return any(p.get("in") == "header" and p.get("name") == HEADER for p in op.get("parameters", []))


# ----------------------------------------------------------------------------------------------- the tests


def test_every_request_body_has_an_example(document: dict[str, Any]) -> None:
    bodies = _json_bodies(document)
    assert len(bodies) > 40
    missing = sorted(op for op, media, schema in bodies if not _examples(document, media, schema))
    assert not missing, f"{len(missing)} request bodies without an example:\n" + "\n".join(missing)


def test_every_example_validates_against_its_own_schema(document: dict[str, Any]) -> None:
    invalid = []
    checked = 0
    for op, media, schema in _json_bodies(document):
        validator = jsonschema_rs.Draft202012Validator({**schema, "components": document["components"]})
        for example in _examples(document, media, schema):
            checked += 1
            errors = [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(example)]
            if errors:
                invalid.append(f"{op}: {'; '.join(errors)}")
    assert checked > 40
    assert not invalid, "\n".join(invalid)


def test_the_validator_refuses_what_the_schema_forbids(document: dict[str, Any]) -> None:
    """The check above can fail: a field the body forbids, or a string where an integer goes, is refused."""
    schema = {"$ref": "#/components/schemas/PlaceOrder", "components": document["components"]}
    validator = jsonschema_rs.Draft202012Validator(schema)
    assert not validator.is_valid({"instrument_id": "1", "account_id": 1, "side": "buy", "quantity": "1"})
    assert not validator.is_valid({"account_id": 1, "side": "sideways", "quantity": "1", "instrument_id": 1})


def test_every_request_body_property_has_a_description(document: dict[str, Any]) -> None:
    offenders = undescribed_properties(document)
    assert not offenders, f"{len(offenders)} request-body properties without a description:\n" + "\n".join(offenders)


def test_every_answer_schema_has_a_description(document: dict[str, Any]) -> None:
    offenders = undescribed_answers(document)
    assert not offenders, f"{len(offenders)} answers whose schema has no description:\n" + "\n".join(offenders)


def test_the_walkers_find_what_is_missing() -> None:
    """Each walker flags what it looks for, through a `$ref`, an array and a union."""
    doc: dict[str, Any] = {
        "paths": {
            "/x": {
                "post": {
                    "operationId": "x",
                    "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/A"}}}},
                    "responses": {
                        "200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/A"}}}}
                    },
                }
            }
        },
        "components": {
            "schemas": {
                "A": {
                    "type": "object",
                    "properties": {
                        "ok": {"type": "integer", "description": "fine"},
                        "rows": {"type": "array", "description": "fine", "items": {"$ref": "#/components/schemas/B"}},
                    },
                },
                "B": {"type": "object", "properties": {"n": {"oneOf": [{"type": "integer"}, {"type": "null"}]}}},
            }
        },
    }
    assert undescribed_properties(doc) == ["x  B.n"]
    assert undescribed_answers(doc) == ["x  200  A"]
    doc["components"]["schemas"]["A"]["description"] = "An A."
    assert undescribed_answers(doc) == []
    assert _examples(doc, doc["paths"]["/x"]["post"]["requestBody"]["content"]["application/json"], {}) == []


async def test_examples_are_answered_and_the_key_is_declared_where_honoured(env, document: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    """Each operation is sent once without an Idempotency-Key (with its body's example, if it takes a body) by a
    role it admits: it answers 400 `idempotency-key-missing` exactly when the document declares the header. Then
    each example is sent with a key, and decodes into the handler's body type: no answer is a 422."""
    handlers = _handlers(env.app)
    keys = {role: await env.key(role) for role in Role}
    bodies = {op: (media, schema) for op, media, schema in _json_bodies(document)}
    wrong_key_docs = []
    refused = []
    writes = 0
    for path, method, op in _operations(document):
        if method in ("GET", "HEAD", "OPTIONS"):
            assert not declares_key(op), f"{op['operationId']} is a read and declares {HEADER}"
            continue
        writes += 1
        op_id = op["operationId"]
        assert op_id in handlers, f"{op_id} has no route handler"
        route_path, _, handler = handlers[op_id]
        url = re.sub(r"\{[^}]+\}", "1", path)
        allowed = _allowed(handler)
        public = any(rx.search(route_path) for rx in PUBLIC)
        assert allowed is not None or public, op_id
        # The regulator where it may (it runs most schemes and issues most kinds), else the first role named.
        role = Role.REGULATOR if not allowed or Role.REGULATOR in allowed else sorted(allowed, key=lambda r: r.value)[0]
        auth = {} if public else {"Authorization": f"Bearer {keys[role]}"}
        examples: list[Any] = [None]
        if op_id in bodies:
            media, schema = bodies[op_id]
            examples = _examples(document, media, schema) or [None]
            body_type = handler.parsed_fn_signature.parameters["data"].annotation
            for example in examples:
                if example is not None:
                    msgspec.json.decode(json.dumps(example).encode(), type=body_type, strict=True)
        content = None if examples[0] is None else json.dumps(examples[0]).encode()
        headers = {**auth, **({"Content-Type": "application/json"} if content is not None else {})}
        answer = await env.client.request(method, url, content=content, headers=headers)
        honoured = answer.status_code == 400 and answer.json().get("type", "").endswith("/idempotency-key-missing")
        if honoured != declares_key(op):
            wrong_key_docs.append(f"{op_id}: honours the key: {honoured}, declares it: {declares_key(op)}")
        for example in examples:
            if example is None or op_id in NOT_SENT:
                continue
            answer = await env.client.request(method, url, json=example, headers=env.h(keys[role]) | auth)
            if answer.status_code == 422:
                refused.append(f"{op_id} as {role.value}: {answer.text}")
    assert writes > 50
    assert not wrong_key_docs, "\n".join(wrong_key_docs)
    assert not refused, "examples answered 422:\n" + "\n".join(refused)


def test_the_document_is_served_to_a_reader(tmp_path: Path) -> None:
    """A sanity line for the fixtures above: the header is declared on a known value-moving operation only."""
    url = schema_database_url("sqlite", tmp_path)
    app = create_app(Settings(database_url=url, scheduler_embedded=False))
    with TestClient(app=app) as client:
        doc = client.get("/schema/openapi.json").json()
    transfer = doc["paths"]["/api/v1/transfers"]["post"]
    token = doc["paths"]["/api/v1/auth/token"]["post"]
    assert declares_key(transfer) and not declares_key(token)
    param = next(p for p in transfer["parameters"] if p["name"] == HEADER)
    assert param["required"] is True and "Idempotent-Replayed" in param["description"]
    assert "409" in param["description"] and "Retry-After" in param["description"] and "422" in param["description"]
    assert "Idempotent-Replayed" in transfer["responses"]["201"]["headers"]
    assert "Retry-After" in transfer["responses"]["409"]["headers"]
