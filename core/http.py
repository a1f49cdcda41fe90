"""The HTTP edge shared by every context: authentication, role guards, strict JSON bodies, Idempotency-Key
handling and RFC 9457 problem responses.

Order of work for a request: authenticate the bearer token (401), check the body's size, type and form (413,
415, 400: malformed JSON, duplicate keys, NaN, nesting too deep), then for value-moving POSTs claim the
Idempotency-Key (400 missing, 409 in flight, 422 reused with another body, or replay the stored answer), then
the route's guard (403), then the handler. A 5xx answer releases the key: a 5xx never changes state.

What a write request costs the database: the key's record is looked up with one statement (outside a
transaction on PostgreSQL). A key seen before is answered from that row (replay, 422, 409) without running the
handler. A new key is claimed inside the service's own transaction: the claim (`_Claim`) rides in the first
writing unit of work the request's task runs (`core.db.riding`), as its first statement, so the claim and the
effect commit together or not at all, and a concurrent request with the same key waits on the unique index and
then answers 409 in flight, as before. A refusal (4xx) from that unit of work rolls the claim back with the rest.
The stored answer is one more statement after the handler and before the client gets the answer (so a retry
always finds it): an UPDATE of the claimed row, or, when no writing unit of work committed (a refusal, or a
handler that writes nothing), the INSERT of a finished row; if another request with the key inserted its row
meanwhile, this one changed nothing and its client gets 409 in flight. So a transfer writes in two transactions
(the service with its claim, then the answer, batched with concurrent answers) where it used four transactions,
three of them writing (authentication, claim, service, answer). The answer is not in the service's transaction
because it exists only once the handler has returned; a crash between the two leaves the key in flight until its
lease ends, and the retry then runs the handler again, which finds its first effect by the request key.

API keys: a key's principal comes from `CredentialCache` for a short TTL after a database lookup (see
core/identity.py for what that means for revocation); a key's expiry is checked against the server's clock on
every request, cached or not.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    TooManyRequestsException,
    ValidationException,
)
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.types import ASGIApp, HTTPRequestEvent, Message, Receive, ReceiveMessage, Scope, Send
from sqlalchemy import Row, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.body_checks import NUL_DETAIL, check_json, nul_in_request
from core.clock import Clock, SystemClock
from core.db import Database, UnitOfWork, riding
from core.errors import AppError
from core.identity import (
    CredentialCache,
    Identity,
    Role,
    api_key_digest,
    authenticate_api_key,
    authenticate_jwt,
    refuse_expired,
)
from core.models import IdempotencyRecord
from core.observability import IDEMPOTENT_REPLAYS

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
    status: int, slug: str, detail: str, field: str | None = None, *, retry_after: int | None = None
) -> tuple[int, bytes, None, int | None]:
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


def rate_limited(exc: TooManyRequestsException) -> AppError:
    """The rate limiter's refusal as this API's problem, with `Retry-After` (the seconds until the window resets, from
    the limiter's `RateLimit-Reset`) beside the `RateLimit-*` headers it sent."""
    headers = dict(exc.headers or {})
    try:
        wait = max(1, int(headers.get("RateLimit-Reset", "1")))
    except ValueError:
        wait = 1
    headers["Retry-After"] = str(wait)
    return AppError("rate-limited", f"Too many requests: try again in {wait} seconds.", headers=headers)


def handle_too_many(request: Request[Any, Any, Any], exc: TooManyRequestsException) -> Response[Any]:
    return problem_response(rate_limited(exc), request.url.path)


def handle_internal(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(AppError("internal-error", "Internal error; nothing was changed."), request.url.path)


EXCEPTION_HANDLERS: dict[type[Exception] | int, Callable[..., Response[Any]]] = {
    AppError: handle_app_error,
    ValidationException: handle_validation,
    TooManyRequestsException: handle_too_many,
    HTTPException: handle_http,
    Exception: handle_internal,
}


# ---------------------------------------------------------------- authentication and guards


class BearerAuth(AbstractAuthenticationMiddleware):
    def __init__(
        self,
        app: ASGIApp,
        db_getter: Callable[[], Database],
        secret_getter: Callable[[], Sequence[str]],
        credential_cache: CredentialCache | None = None,
        clock_getter: Callable[[], Clock] = SystemClock,
        **kw: Any,
    ):
        super().__init__(app, **kw)
        self.db_getter = db_getter
        self.secret_getter = secret_getter
        self.clock_getter = clock_getter  # the server's clock: an API key's expiry is checked against it
        # One cache per app, shared by every route's middleware instance (built by create_app).
        self.credential_cache = credential_cache

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthorizedException("Send `Authorization: Bearer <API key or token>`.")
        token = token.strip()
        db = self.db_getter()
        cache = self.credential_cache
        digest = api_key_digest(token) if token.startswith("gr_") and cache is not None else None
        ident = cache.get(digest) if cache is not None and digest is not None else None
        now = self.clock_getter().now()
        if ident is not None:
            if ident.expires_at is not None and ident.expires_at <= now:
                if cache is not None:
                    cache.forget_principal(ident.principal_id)
                refuse_expired(ident, now)
            return AuthenticationResult(user=ident, auth=token)

        async def _lookup(uow: UnitOfWork) -> Identity | None:
            if token.startswith("gr_"):
                return await authenticate_api_key(uow.session, token, now)
            return await authenticate_jwt(uow.session, token, self.secret_getter())

        ident = await db.read(_lookup)
        if ident is not None and cache is not None and digest is not None:
            cache.put(digest, ident)
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


# ---------------------------------------------------------------- client address and rate limits


def client_address(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The client's address as the ASGI server put it in the scope. Nothing here reads X-Forwarded-For (anyone can
    send it); behind a proxy, let the server rewrite the scope from the proxy's headers (uvicorn `--proxy-headers
    --forwarded-allow-ips=<the proxy's address>`, docs/operations.md). "unknown" when the server gave none."""
    client = connection.client
    return (client.host if client is not None and client.host else "unknown")[:64]


def rate_limit_identity(request: Request[Any, Any, Any]) -> str:
    """Whose requests one limit counts: the authenticated principal (an API key, a staff token, a browser session:
    the authentication middleware has run, so a forged or unknown key never reaches here, and nobody can spend
    another key's allowance by sending its prefix), else the client address."""
    user = request.scope.get("user")
    if isinstance(user, Identity):
        return user.actor
    return f"address:{client_address(request)}"


# Never limited: probes, metrics and static files.
RATE_LIMIT_EXEMPT = ["^/health$", "^/ready$", "^/metrics", "^/static/"]


def rate_limit_config(per_minute: int) -> RateLimitConfig | None:
    """Litestar's rate-limit middleware, `per_minute` requests per principal (None: 0 turns it off). Its counters live
    in the app's `rate_limit` store, memory of this process: N server processes allow N times the limit."""
    if per_minute <= 0:
        return None
    return RateLimitConfig(
        rate_limit=("minute", per_minute), identifier_for_request=rate_limit_identity, exclude=RATE_LIMIT_EXEMPT
    )


# ---------------------------------------------------------------- strict JSON bodies


class EdgeMiddleware:
    """Null bytes anywhere in a request; size, media type and JSON form of request bodies, then Idempotency-Key
    handling for value-moving routes."""

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
        if scope["type"] == ScopeType.HTTP:
            field = nul_in_request(scope)
            if field is not None:
                await _send_raw(send, *_raw_problem(422, "invalid-input", NUL_DETAIL, field))
                return
        if (
            scope["type"] == ScopeType.HTTP
            and scope["method"] in ("POST", "PUT", "PATCH")
            and not scope["path"].startswith("/api/")
        ):
            # Pages (web/) post forms under CSRF protection; the app's body limit still holds for them.
            await self._page_form(scope, receive, send)
            return
        if scope["type"] != ScopeType.HTTP or scope["method"] not in ("POST", "PUT", "PATCH"):
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
        read = await _read_body(receive, send, limit)
        if read is None:
            return
        body = read
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
                field = nul_in_request({}, body, ctype)
                if field is not None:
                    await _send_raw(send, *_raw_problem(422, "invalid-input", NUL_DETAIL, field))
                    return
                strict = strict_body_problem(body, _body_type(handler))
                if strict is not None:
                    await _send_raw(send, *strict)
                    return
            elif not (opt.get("accepts_files") and ctype in ("multipart/form-data", "text/csv")):
                await _send_raw(send, *_raw_problem(415, "unsupported-media-type", "Send application/json."))
                return

        replay_receive = _replaying(body, receive)
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
        scope.setdefault("state", {})["idempotency_key"] = f"{ident.principal_id}:{key}"
        # No look-up first: the claim's INSERT, the first statement of the request's first writing unit of work,
        # finds a key that exists (one read and one transaction less per request). Only then is the key's row
        # read: a replay, a refusal, or the take-over of a first attempt that died, which runs the handler again.
        claim = _Claim(db, ident.principal_id, key, request_hash, now)
        held = await self._run_claimed(scope, body, receive, claim, key)
        if claim.state == "lost":
            seen = await _lookup_key(db, ident.principal_id, key)
            if seen is None:
                # The other request's row went again (it failed with a 5xx): the key is free on the next try.
                await _send_raw(send, *_IN_FLIGHT, retry_after=1)
                return
            outcome = await _seen_before(db, seen, request_hash, now)
            if isinstance(outcome, tuple):
                await _send_raw(send, *outcome[:3], retry_after=outcome[3] if len(outcome) > 3 else None)
                return
            claim = _Claim(db, ident.principal_id, key, request_hash, now)
            claim.taken_over(outcome)
            # Taken over, the claim is `committed` from the start: it never boards, so it cannot be lost.
            held = await self._run_claimed(scope, body, receive, claim, key)
        for message in held:
            await send(message)

    async def _run_claimed(self, scope: Scope, body: bytes, receive: Receive, claim: _Claim, key: str) -> list[Message]:
        """Run the handler with `claim` riding its first writing unit of work, store the answer (or release the
        key after a 5xx), and return the answer's messages, held back until it is stored, so that a client that
        has it and retries gets the replay (never 409 in flight for a request that has finished). When the claim
        finds the key taken (`lost`), the handler's answer is void: it changed nothing."""
        captured: dict[str, Any] = {"status": 500, "body": [], "ctype": "application/json"}
        held: list[Message] = []

        async def capture_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                for k, v in message.get("headers", []):
                    if k.decode("latin-1").lower() == "content-type":
                        captured["ctype"] = v.decode("latin-1")
            elif message["type"] == "http.response.body":
                captured["body"].append(message.get("body", b""))
            held.append(message)

        try:
            async with riding(claim):
                await self.app(scope, _replaying(body, receive), capture_send)
        finally:
            claim.closed = True
            try:
                await _finish(claim.db, claim, captured)
            except Exception:
                # The effect (if any) committed with the claim; a retry after the lease takes it over and the
                # service answers from its request key. The client still gets the answer it is owed.
                log.exception("could not store the answer for Idempotency-Key %r", key)
        return held

    async def _page_form(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A page's form post: refused with 422 when a field holds U+0000, else passed on unchanged."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive, send, int(self.settings_getter().max_body_bytes))
        if body is None:
            return
        field = nul_in_request({}, body, ctype)
        if field is not None:
            await _send_raw(send, *_raw_problem(422, "invalid-input", NUL_DETAIL, field))
            return
        await self.app(scope, _replaying(body, receive), send)


async def _read_body(receive: Receive, send: Send, limit: int) -> bytes | None:
    """The whole request body, or None when the client left or the body is over `limit` (then 413 is sent)."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return None
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > limit:
            await _send_raw(send, *_raw_problem(413, "body-too-large", f"Send at most {limit} bytes."))
            return None
        chunks.append(chunk)
        more = bool(msg.get("more_body", False))
    return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the body already read, then the connection's own messages."""
    sent = False

    async def replay_receive() -> ReceiveMessage:
        nonlocal sent
        if not sent:
            sent = True
            return HTTPRequestEvent(type="http.request", body=body, more_body=False)
        return await receive()

    return replay_receive


_IN_FLIGHT_DETAIL = "Retry shortly."
_IN_FLIGHT = (*_raw_problem(409, "idempotency-key-in-flight", _IN_FLIGHT_DETAIL, "Idempotency-Key"), None)


# Built once: the claim is the first statement of every write request's transaction (and the key's first row
# with its answer, when the request wrote nothing).
_CLAIM_INSERT = insert(IdempotencyRecord.__table__).returning(IdempotencyRecord.__table__.c.id)


class _Claim:
    """One request's hold on its Idempotency-Key: a `core.db.Rider` that inserts the key's in-flight row as the
    first statement of the first writing unit of work the request's own task runs.

    States: `pending` (not in the database yet), `committed` (its row exists: `record_id`), `lost` (the key has a
    row already, an earlier request's or one that inserted it first; every later writing unit of work of this
    request refuses, so it has no effect, and the key's row decides the answer: a replay, a refusal, or a
    take-over)."""

    def __init__(self, db: Database, principal_id: int, key: str, request_hash: str, now: dt.datetime) -> None:
        self.db = db
        self.task = asyncio.current_task()
        self.state = "pending"
        self.record_id: int | None = None
        self.closed = False
        self._boarded_id: int | None = None
        self.values: dict[str, Any] = {
            "principal_id": principal_id,
            "key": key,
            "request_hash": request_hash,
            "state": "in_flight",
            "created_at": now,
            "lease_until": now + dt.timedelta(seconds=IDEMPOTENCY_LEASE_S),
        }

    def taken_over(self, record_id: int) -> None:
        """The key's row exists already and this request took its expired lease over."""
        self.state = "committed"
        self.record_id = record_id

    def wants(self, db: Database) -> bool:
        return (
            db is self.db
            and not self.closed
            and self.state in ("pending", "lost")
            and asyncio.current_task() is self.task
        )

    async def board(self, session: AsyncSession) -> None:
        if self.state == "lost":
            raise AppError("idempotency-key-in-flight", _IN_FLIGHT_DETAIL, field="Idempotency-Key")
        try:
            result = await session.execute(_CLAIM_INSERT, self.values)
        except IntegrityError:
            # The key has a row: an earlier request's, or one inserted first by a request with the same key (on
            # PostgreSQL committed while this one waited on the unique index).
            self.state = "lost"
            raise AppError("idempotency-key-in-flight", _IN_FLIGHT_DETAIL, field="Idempotency-Key") from None
        self._boarded_id = int(result.scalar_one())

    def committed(self) -> None:
        self.state = "committed"
        self.record_id = self._boarded_id


_SEEN_COLUMNS = (
    IdempotencyRecord.id,
    IdempotencyRecord.request_hash,
    IdempotencyRecord.state,
    IdempotencyRecord.response_status,
    IdempotencyRecord.response_body,
    IdempotencyRecord.response_type,
    IdempotencyRecord.lease_until,
)


async def _lookup_key(db: Database, principal_id: int, key: str) -> Row[Any] | None:
    rows = await db.execute_once(
        select(*_SEEN_COLUMNS).where(IdempotencyRecord.principal_id == principal_id, IdempotencyRecord.key == key),
        readonly=True,
    )
    return rows[0] if rows else None


async def _seen_before(db: Database, rec: Row[Any], request_hash: str, now: dt.datetime) -> int | tuple[Any, ...]:
    """The answer for a key that has a row already: a replay or a refusal, or the row's id when this request
    takes over the lease of a first attempt that died without an answer."""
    if rec.request_hash != request_hash:
        return _refusal(
            422,
            "idempotency-key-reused",
            "This Idempotency-Key was used with another request; use a new key.",
            "Idempotency-Key",
        )
    if rec.state == "done":
        IDEMPOTENT_REPLAYS.inc()
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

    # The first attempt died without an answer; its effects (if any) are keyed by the same request key, so
    # running again is safe. Take the lease over conditionally.
    async def take_over(uow: UnitOfWork) -> bool:
        taken = await uow.session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.id == rec.id, IdempotencyRecord.lease_until == rec.lease_until)
            .values(lease_until=now + dt.timedelta(seconds=IDEMPOTENCY_LEASE_S))
        )
        return bool(taken.rowcount == 1)

    if not await db.run(take_over):
        return _refusal(409, "idempotency-key-in-flight", _IN_FLIGHT_DETAIL, "Idempotency-Key", retry_after=1)
    return int(rec.id)


async def _finish(db: Database, claim: _Claim, captured: dict[str, Any]) -> None:
    """Store the answer for the key (batched with concurrent ones, `_AnswerWriter`), or release the key after a
    5xx: one statement."""
    status = int(captured["status"])
    if claim.state == "lost":
        return  # the key belongs to another request; this one changed nothing
    if status >= 500:
        if claim.record_id is not None:
            await db.execute_once(delete(IdempotencyRecord).where(IdempotencyRecord.id == claim.record_id))
        return
    answer = {
        "state": "done",
        "response_status": status,
        "response_body": b"".join(captured["body"]).decode("utf-8", "replace"),
        "response_type": captured["ctype"],
    }
    if claim.record_id is not None:
        await _answers_for(db).store({"b_record_id": claim.record_id, **{f"b_{k}": v for k, v in answer.items()}})
        return
    # No writing unit of work took the claim (the handler refused before writing, or wrote nothing): the answer
    # is the key's first row.
    try:
        await db.execute_once(_CLAIM_INSERT, {**claim.values, **answer})
    except IntegrityError:
        # The key has a row (an earlier request's, or one that claimed it meanwhile); this one changed nothing,
        # and that row decides its answer.
        claim.state = "lost"


_RECORDS = IdempotencyRecord.__table__
# Core, not ORM, so that a batch runs as one executemany; bind names differ from the columns they set.
_STORE_ANSWER = (
    update(_RECORDS)
    .where(_RECORDS.c.id == bindparam("b_record_id"))
    .values(
        state=bindparam("b_state"),
        response_status=bindparam("b_response_status"),
        response_body=bindparam("b_response_body"),
        response_type=bindparam("b_response_type"),
    )
)


class _AnswerWriter:
    """Group commit of stored answers: the answers of requests that finish while one batch is being written go
    together into the next one, in one transaction (on SQLite one turn of the write queue and one fsync instead of
    one per request). The first request to arrive leads a batch; when it is written, a waiting request's batch
    follows. Each request still waits for its own answer to be stored before its client gets it."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.waiting: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self.busy = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def store(self, answer: dict[str, Any]) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append((answer, done))
        if not self.busy:
            self.busy = True
            await self._write_batch()
        await done

    async def _write_batch(self) -> None:
        batch, self.waiting = self.waiting, []
        try:
            if len(batch) == 1 and not self.db.sqlite:
                await self.db.execute_once(_STORE_ANSWER, batch[0][0])
            else:

                async def write(uow: UnitOfWork) -> None:
                    await uow.session.execute(_STORE_ANSWER, [a for a, _ in batch])

                await self.db.run(write)
        except BaseException as exc:
            # Also on cancellation of the leading request: the others of the batch must not wait for ever.
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc if isinstance(exc, Exception) else RuntimeError("answer batch cancelled"))
            if not isinstance(exc, Exception):
                raise
        else:
            for _, done in batch:
                if not done.done():
                    done.set_result(None)
        finally:
            if self.waiting:
                # Those who arrived meanwhile go next, without holding up the request that led this batch.
                task = asyncio.get_running_loop().create_task(self._write_batch())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                self.busy = False


# One answer writer per database and event loop (a test drives one database from two loops).
_writers: weakref.WeakKeyDictionary[Database, weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _AnswerWriter]] = (
    weakref.WeakKeyDictionary()
)


def _answers_for(db: Database) -> _AnswerWriter:
    per_loop = _writers.get(db)
    if per_loop is None:
        per_loop = _writers[db] = weakref.WeakKeyDictionary()
    loop = asyncio.get_running_loop()
    writer = per_loop.get(loop)
    if writer is None:
        writer = per_loop[loop] = _AnswerWriter(db)
    return writer


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
