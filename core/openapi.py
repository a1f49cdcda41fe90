"""What the OpenAPI document says beyond what Litestar derives from the handlers' signatures.

- Every operation that honours an `Idempotency-Key` (a POST, PUT or PATCH under /api/ whose route has
  `opt=IDEMPOTENT`, the same test core/http.py's EdgeMiddleware makes) declares the header as a required
  parameter, says what a replay, a key in flight and a reused key answer, and documents the `Idempotent-Replayed`
  and `Retry-After` response headers. Operations that ignore the key do not mention it. `IdempotencyDocs` marks
  those operations as routes are registered, so the document cannot drift from what the edge does.
- Every msgspec Struct's docstring becomes its schema's `description`, and a request Struct's `EXAMPLE` (a
  ClassVar: a whole, valid body) its schema's `examples` (`StructDocs`). Field descriptions come from
  `msgspec.Meta(description=...)` on the fields (core.schema.about), which Litestar reads itself.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

# Litestar's own plugin for msgspec Structs, extended below (its module is private; the class is the one Litestar
# uses for every Struct, and a plugin passed to the app is asked first).
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.openapi.spec import OpenAPIHeader, OpenAPIResponse, OpenAPIType, Operation, Parameter, Schema
from litestar.plugins import ReceiveRoutePlugin

from core.http import IDEMPOTENCY_LEASE_S

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.routes import BaseRoute
    from litestar.typing import FieldDefinition

IDEMPOTENCY_KEY_MAX = 200
IDEMPOTENT_METHODS = frozenset({"POST", "PUT", "PATCH"})

IDEMPOTENCY_KEY_DESCRIPTION = (
    "A key you choose for this request (1 to 200 printable ASCII characters, e.g. a UUID), kept per credential. "
    "Send the same key again with the same body to retry safely: the first answer is replayed, with the header "
    "`Idempotent-Replayed: true`, and nothing happens twice. While the first request with the key is still in "
    "progress a retry answers 409 `idempotency-key-in-flight` with `Retry-After` (seconds); the same key with a "
    "different body (or on another route) answers 422 `idempotency-key-reused`; a missing or malformed key "
    "answers 400 `idempotency-key-missing`. A 5xx answer releases the key: nothing was changed, retry with it."
)

IDEMPOTENCY_KEY_PARAMETER = Parameter(
    name="Idempotency-Key",
    param_in="header",
    required=True,
    description=IDEMPOTENCY_KEY_DESCRIPTION,
    schema=Schema(
        type=OpenAPIType.STRING,
        min_length=1,
        max_length=IDEMPOTENCY_KEY_MAX,
        pattern=f"^[\\x20-\\x7E]{{1,{IDEMPOTENCY_KEY_MAX}}}$",
    ),
    example="8f14e45f-ceea-467f-a0e6-2c7a1b2d9e10",
)

REPLAYED_HEADER = OpenAPIHeader(
    description="`true` when this is the stored answer of an earlier request with the same Idempotency-Key.",
    schema=Schema(type=OpenAPIType.STRING, enum=["true"]),
)
RETRY_AFTER_HEADER = OpenAPIHeader(
    description="Seconds to wait before retrying with the same Idempotency-Key.",
    schema=Schema(type=OpenAPIType.INTEGER, minimum=1, maximum=IDEMPOTENCY_LEASE_S),
)


def honours_idempotency_key(opt: dict[str, Any] | None, methods: set[str] | frozenset[str], path: str) -> bool:
    """Whether the edge claims an Idempotency-Key for this route: a write under /api/ with `opt["idempotent"]`."""
    return bool((opt or {}).get("idempotent")) and bool(set(methods) & IDEMPOTENT_METHODS) and path.startswith("/api/")


@dataclass
class IdempotentOperation(Operation):
    """An operation that honours the Idempotency-Key: the header parameter, and the headers of its answers."""

    def __post_init__(self) -> None:
        params = list(self.parameters or [])
        if not any(isinstance(p, Parameter) and p.name == IDEMPOTENCY_KEY_PARAMETER.name for p in params):
            params.append(IDEMPOTENCY_KEY_PARAMETER)
        self.parameters = params
        for status, response in (self.responses or {}).items():
            if not isinstance(response, OpenAPIResponse):
                continue
            headers = dict(response.headers or {})
            if status.startswith("2"):
                headers.setdefault("Idempotent-Replayed", REPLAYED_HEADER)
            elif status == "409":
                headers.setdefault("Retry-After", RETRY_AFTER_HEADER)
            else:
                continue
            response.headers = headers


class IdempotencyDocs(ReceiveRoutePlugin):
    """Gives every route handler that honours the Idempotency-Key the `IdempotentOperation` class."""

    def receive_route(self, route: BaseRoute) -> None:
        for handler in getattr(route, "route_handlers", []):
            methods: set[str] = getattr(handler, "http_methods", set())
            if handler.operation_class is Operation and honours_idempotency_key(handler.opt, methods, route.path):
                handler.operation_class = IdempotentOperation


class StructDocs(StructSchemaPlugin):
    """Litestar's Struct schemas, with the Struct's docstring as `description` and its `EXAMPLE` as `examples`."""

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        struct = field_definition.type_
        doc = struct.__dict__.get("__doc__")
        if doc and not schema.description:
            schema.description = inspect.cleandoc(doc)
        example = struct.__dict__.get("EXAMPLE")
        if example is not None and not schema.examples:
            # The example as it goes on the wire (dates as ISO text), so a client can send it as it is.
            schema.examples = [msgspec.to_builtins(example)]
        return schema


def openapi_plugins() -> list[Any]:
    """The plugins create_app passes to Litestar for these documents."""
    return [IdempotencyDocs(), StructDocs()]
