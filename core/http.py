"""The HTTP edge shared by every context: authentication, role guards, strict JSON bodies, Idempotency-Key
handling and RFC 9457 problem responses.

Order of work for a request: authenticate the bearer token (401), check the body's size, type and form (413,
415, 400: malformed JSON, duplicate keys, NaN, nesting too deep), then for value-moving POSTs claim the
Idempotency-Key (400 missing, 409 in flight, 422 reused with another body, or replay the stored answer), then
the route's guard (403), then the handler. A 5xx answer releases the key: a 5xx never changes state.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    ValidationException,
)
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.openapi.datastructures import ResponseSpec
from litestar.types import ASGIApp, HTTPRequestEvent, Message, Receive, ReceiveMessage, Scope, Send
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from core.db import Database, UnitOfWork
from core.errors import AppError
from core.identity import Identity, Role, authenticate_api_key, authenticate_jwt
from core.models import IdempotencyRecord

log = logging.getLogger("greenrights.http")
PROBLEM_JSON = "application/problem+json"
# Route options and documented problems shared by every context's controllers.
IDEMPOTENT: dict[str, Any] = {"idempotent": True}


class Problem(msgspec.Struct, kw_only=True):
    """RFC 9457 problem details as this API sends them."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    field: str | None = None
    instance: str | None = None


def request_key(request: Request[Any, Any, Any]) -> str | None:
    """The caller's Idempotency-Key scoped to the principal ("principal:key"), set by EdgeMiddleware on
    value-moving routes; services store it as a unique request key so that a retry finds its first effect."""
    state = request.scope.get("state", {})
    key = state.get("idempotency_key")
    return key if isinstance(key, str) else None


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the problems a route can answer with."""
    return {
        st: ResponseSpec(
            data_container=Problem, media_type=PROBLEM_JSON, description=f"Problem ({st})", generate_examples=False
        )
        for st in statuses
    }


IDEMPOTENCY_LEASE_S = 60


def problem_response(err: AppError, instance: str | None = None) -> Response[Any]:
    return Response(
        content=err.to_problem(instance),
        status_code=err.status,
        media_type=PROBLEM_JSON,
        headers=err.headers,
    )


def _raw_problem(status: int, slug: str, detail: str, field: str | None = None) -> tuple[int, bytes]:
    err = AppError(slug, detail, field=field, status=status)
    return status, json.dumps(err.to_problem(), ensure_ascii=False).encode()


def _refusal(
    status: int, slug: str, detail: str, field: str | None = None, *, retry_after: int = 1
) -> tuple[int, bytes, None, int]:
    """A problem answer from the idempotency claim (no stored content type: not a replay), and when to retry."""
    code, body = _raw_problem(status, slug, detail, field)
    return code, body, None, retry_after


# ---------------------------------------------------------------- exception handlers


def field_from_msgspec(message: str) -> str | None:
    """The offending field of a msgspec validation message: "... - at `$.quantity`", "unknown field `status`"."""
    if "`$." in message:
        return message.split("`$.", 1)[1].split("`", 1)[0]
    for marker in ("unknown field `", "required field `"):
        if marker in message:
            return message.split(marker, 1)[1].split("`", 1)[0]
    return None


def _validation_field(exc: ValidationException) -> str | None:
    extra = exc.extra
    if isinstance(extra, list) and extra and isinstance(extra[0], dict):
        key = extra[0].get("key")
        message = str(extra[0].get("message", ""))
        return field_from_msgspec(message) or (str(key) if key else None)
    return None


def _body_type(handler: Any) -> Any:
    """The declared type of a route's JSON body (`data`), or None."""
    sig = getattr(handler, "parsed_fn_signature", None)
    param = sig.parameters.get("data") if sig is not None else None
    return None if param is None else param.annotation


def strict_body_problem(body: bytes, body_type: Any) -> tuple[int, bytes] | None:
    """Decode the body strictly against its declared type: a JSON float is not an int, "12" is not 12."""
    if body_type is None or not (isinstance(body_type, type) and issubclass(body_type, msgspec.Struct)):
        return None
    if not body:
        return _raw_problem(422, "invalid-input", "Send a JSON object body.", "body")
    try:
        msgspec.json.decode(body, type=body_type, strict=True)
    except msgspec.ValidationError as exc:
        return _raw_problem(422, "invalid-input", str(exc), field_from_msgspec(str(exc)) or "body")
    except msgspec.DecodeError:
        return None  # malformed JSON was answered with 400 before this point
    return None


def handle_app_error(request: Request[Any, Any, Any], exc: AppError) -> Response[Any]:
    return problem_response(exc, request.url.path)


def handle_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    field = _validation_field(exc)
    messages = [str(e.get("message")) for e in exc.extra] if isinstance(exc.extra, list) else []
    detail = "; ".join(m for m in messages if m) or exc.detail
    return problem_response(AppError("invalid-input", detail, field=field or "body"), request.url.path)


def handle_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    slug = {
        401: "unauthenticated",
        403: "forbidden",
        404: "not-found",
        413: "body-too-large",
        415: "unsupported-media-type",
    }.get(status, "invalid-input" if status < 500 else "internal-error")
    if status == 400:
        slug = "malformed-body"
    detail = exc.detail if status < 500 else "Internal error."
    return problem_response(AppError(slug, detail, status=status), request.url.path)


def handle_internal(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(AppError("internal-error", "Internal error; nothing was changed."), request.url.path)


EXCEPTION_HANDLERS: dict[type[Exception] | int, Callable[..., Response[Any]]] = {
    AppError: handle_app_error,
    ValidationException: handle_validation,
    HTTPException: handle_http,
    Exception: handle_internal,
}


# ---------------------------------------------------------------- authentication and guards


class BearerAuth(AbstractAuthenticationMiddleware):
    def __init__(
        self, app: ASGIApp, db_getter: Callable[[], Database], secret_getter: Callable[[], Sequence[str]], **kw: Any
    ):
        super().__init__(app, **kw)
        self.db_getter = db_getter
        self.secret_getter = secret_getter

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthorizedException("Send `Authorization: Bearer <API key or token>`.")
        token = token.strip()
        db = self.db_getter()

        async def _lookup(uow: UnitOfWork) -> Identity | None:
            if token.startswith("gr_"):
                return await authenticate_api_key(uow.session, token)
            return await authenticate_jwt(uow.session, token, self.secret_getter())

        ident = await db.read(_lookup)
        if ident is None:
            raise NotAuthorizedException("The credential is unknown, expired, forged or revoked.")
        return AuthenticationResult(user=ident, auth=token)


def allow(*roles: Role) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]:
    """A guard admitting only `roles`. The roles are kept on the guard so the authorisation matrix can read them."""
    allowed = frozenset(roles)

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        ident = connection.user
        if not isinstance(ident, Identity) or ident.role not in allowed:
            raise AppError("forbidden", "Your role may not do this.")

    guard.allowed_roles = allowed
    return guard


# ---------------------------------------------------------------- strict JSON bodies


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _depth(text: bytes, limit: int) -> bool:
    """True when brackets nest deeper than `limit` (checked before parsing, so a 10k-deep body costs nothing)."""
    depth = 0
    in_str = False
    escape = False
    for ch in text:
        if in_str:
            if escape:
                escape = False
            elif ch == 0x5C:
                escape = True
            elif ch == 0x22:
                in_str = False
        elif ch == 0x22:
            in_str = True
        elif ch in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return True
        elif ch in (0x5D, 0x7D):
            depth -= 1
    return False


def check_json(body: bytes, max_depth: int) -> tuple[str, str] | None:
    """None when `body` is strict JSON; else (slug, detail)."""
    if _depth(body, max_depth):
        return "malformed-body", f"The JSON nests deeper than {max_depth} levels."
    try:
        json.loads(body, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except _DuplicateKey as exc:
        return "malformed-body", f"The JSON object has the key {exc.args[0]!r} twice."
    except (ValueError, UnicodeDecodeError) as exc:
        return "malformed-body", f"The body is not well-formed JSON: {exc}."
    return None


class EdgeMiddleware:
    """Size, media type and JSON form of request bodies, then Idempotency-Key handling for value-moving routes."""

    def __init__(
        self,
        app: ASGIApp,
        db_getter: Callable[[], Database],
        settings_getter: Callable[[], Any],
        clock_getter: Callable[[], Any],
    ) -> None:
        self.app = app
        self.db_getter = db_getter
        self.settings_getter = settings_getter
        self.clock_getter = clock_getter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != ScopeType.HTTP
            or scope["method"] not in ("POST", "PUT", "PATCH")
            or not scope["path"].startswith("/api/")
        ):
            # Pages (web/) post forms under CSRF protection; the app's body limit still holds for them.
            await self.app(scope, receive, send)
            return
        settings = self.settings_getter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        # A route that takes bulk input (a batch of enterprises) may raise its own limit through `opt`.
        route_opt = getattr(scope.get("route_handler"), "opt", {}) or {}
        limit = int(route_opt.get("max_body_bytes") or settings.max_body_bytes)
        declared = headers.get("content-length") or "0"
        if not declared.isdigit() or int(declared) > limit:
            await _send_raw(send, *_raw_problem(413, "body-too-large", f"Send at most {limit} bytes."))
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _send_raw(send, *_raw_problem(413, "body-too-large", f"Send at most {limit} bytes."))
                return
            chunks.append(chunk)
            more = bool(msg.get("more_body", False))
        body = b"".join(chunks)
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        handler = scope.get("route_handler")
        opt = getattr(handler, "opt", {}) or {}
        # The role guard answers before anything looks at the body: a caller who may not use the route learns
        # nothing about what the body should be (403 before 415/400/422), and claims no Idempotency-Key.
        if handler is not None and isinstance(scope.get("user"), Identity):
            try:
                await handler.authorize_connection(ASGIConnection(scope))
            except AppError as exc:
                await _send_raw(send, exc.status, json.dumps(exc.to_problem(), ensure_ascii=False).encode())
                return
        if body:
            if ctype == "application/json" or ctype.endswith("+json"):
                bad = check_json(body, settings.max_json_depth)
                if bad is not None:
                    await _send_raw(send, *_raw_problem(400, bad[0], bad[1]))
                    return
                strict = strict_body_problem(body, _body_type(handler))
                if strict is not None:
                    await _send_raw(send, *strict)
                    return
            elif not (opt.get("accepts_files") and ctype in ("multipart/form-data", "text/csv")):
                await _send_raw(send, *_raw_problem(415, "unsupported-media-type", "Send application/json."))
                return

        sent = False

        async def replay_receive() -> ReceiveMessage:
            nonlocal sent
            if not sent:
                sent = True
                return HTTPRequestEvent(type="http.request", body=body, more_body=False)
            return await receive()

        ident = scope.get("user")
        if not opt.get("idempotent") or not isinstance(ident, Identity):
            await self.app(scope, replay_receive, send)
            return
        key = headers.get("idempotency-key", "").strip()
        if not key or len(key) > 200 or not key.isascii() or not key.isprintable():
            await _send_raw(
                send,
                *_raw_problem(
                    400,
                    "idempotency-key-missing",
                    "Send an Idempotency-Key header of 1 to 200 printable ASCII characters.",
                    "Idempotency-Key",
                ),
            )
            return
        request_hash = hashlib.sha256(
            scope["method"].encode() + b" " + scope["path"].encode() + b"\n" + body
        ).hexdigest()
        db = self.db_getter()
        now = self.clock_getter().now()
        outcome = await _claim(db, ident.principal_id, key, request_hash, now)
        if isinstance(outcome, tuple):
            retry = outcome[3] if len(outcome) > 3 and outcome[0] == 409 else None
            await _send_raw(send, outcome[0], outcome[1], outcome[2], retry_after=retry)
            return
        record_id = outcome
        scope.setdefault("state", {})["idempotency_key"] = f"{ident.principal_id}:{key}"
        captured: dict[str, Any] = {"status": 500, "body": [], "ctype": "application/json"}
        held: list[Message] = []

        async def capture_send(message: Message) -> None:
            # The answer is held back until it is stored: a client that received it will always find it again
            # under its key, even if this process dies right after sending.
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                for k, v in message.get("headers", []):
                    if k.decode("latin-1").lower() == "content-type":
                        captured["ctype"] = v.decode("latin-1")
            elif message["type"] == "http.response.body":
                captured["body"].append(message.get("body", b""))
            held.append(message)

        try:
            await self.app(scope, replay_receive, capture_send)
        finally:
            await _finish(db, record_id, captured)
        for message in held:
            await send(message)


async def _claim(
    db: Database, principal_id: int, key: str, request_hash: str, now: dt.datetime
) -> int | tuple[Any, ...]:
    async def claim(uow: UnitOfWork) -> int | tuple[Any, ...]:
        s = uow.session
        rec = (
            await s.execute(
                select(IdempotencyRecord).where(
                    IdempotencyRecord.principal_id == principal_id, IdempotencyRecord.key == key
                )
            )
        ).scalar_one_or_none()
        lease = now + dt.timedelta(seconds=IDEMPOTENCY_LEASE_S)
        if rec is None:
            rec = IdempotencyRecord(
                principal_id=principal_id,
                key=key,
                request_hash=request_hash,
                state="in_flight",
                created_at=now,
                lease_until=lease,
            )
            s.add(rec)
            await s.flush()
            assert rec.id is not None
            return rec.id
        if rec.request_hash != request_hash:
            return _refusal(
                422,
                "idempotency-key-reused",
                "This Idempotency-Key was used with another request; use a new key.",
                "Idempotency-Key",
            )
        if rec.state == "done":
            return (rec.response_status or 200, (rec.response_body or "").encode(), rec.response_type)
        if rec.lease_until > now:
            wait = max(1, int((rec.lease_until - now).total_seconds()))
            return _refusal(
                409,
                "idempotency-key-in-flight",
                f"A request with this key is still in progress; retry in {wait} s at the latest.",
                "Idempotency-Key",
                retry_after=wait,
            )
        # The first attempt died without an answer; its effects (if any) are keyed by the same request key,
        # so running again is safe. Take the lease over conditionally.
        taken = await s.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.id == rec.id, IdempotencyRecord.lease_until == rec.lease_until)
            .values(lease_until=lease)
        )
        if taken.rowcount != 1:
            return _refusal(409, "idempotency-key-in-flight", "Retry shortly.", "Idempotency-Key")
        assert rec.id is not None
        return rec.id

    try:
        return await db.run(claim)
    except IntegrityError:
        # Another request with the same key inserted first.
        return _refusal(409, "idempotency-key-in-flight", "Retry shortly.", "Idempotency-Key")


async def _finish(db: Database, record_id: int, captured: dict[str, Any]) -> None:
    status = int(captured["status"])

    async def finish(uow: UnitOfWork) -> None:
        if status >= 500:
            await uow.session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == record_id))
            return
        await uow.session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.id == record_id)
            .values(
                state="done",
                response_status=status,
                response_body=b"".join(captured["body"]).decode("utf-8", "replace"),
                response_type=captured["ctype"],
            )
        )

    await db.run(finish)


async def _send_raw(
    send: Send,
    status: int,
    body: bytes,
    ctype: str | None = None,
    *,
    replayed: bool = False,
    retry_after: int | None = None,
) -> None:
    is_replay = ctype is not None
    headers = [(b"content-type", (ctype or PROBLEM_JSON).encode()), (b"content-length", str(len(body)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    if is_replay or replayed:
        headers.append((b"idempotent-replayed", b"true"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


READ_PROBLEMS = problem_responses(401, 403, 404, 422)
WRITE_PROBLEMS = problem_responses(400, 401, 403, 404, 409, 413, 415, 422, 503)
