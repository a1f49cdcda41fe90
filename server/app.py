"""Build the application: database, clock, services, middleware, routes and OpenAPI."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from typing import Annotated, Any, ClassVar

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.config.csrf import CSRFConfig
from litestar.config.response_cache import ResponseCacheConfig
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.params import JSONBody
from litestar.plugins.prometheus import PrometheusController

from core.audit import checkpoints_for, make_flusher
from core.clock import SHANGHAI, Clock, SandboxClock
from core.db import Database, UnitOfWork
from core.errors import CATALOGUE, AppError
from core.http import (
    EXCEPTION_HANDLERS,
    BearerAuth,
    EdgeMiddleware,
    client_address,
    problem_responses,
    rate_limit_config,
)
from core.identity import CredentialCache, LoginResult, SignInLimits, check_login, dummy_hash, issue_jwt, refuse_login
from core.observability import RequestId, configure_logging, prometheus_config
from core.openapi import openapi_plugins
from core.replica import ReadReplica, ReadRouting
from core.runtime import tune_gc
from core.sandbox import clock_for, watch
from core.schema import CodePath, Name, Note, about
from core.secrets import jwt_secrets
from core.settings import Settings, get_settings
from finance.api import CONTROLLERS as FINANCE_CONTROLLERS
from incentives.api import CONTROLLERS as INCENTIVES_CONTROLLERS
from incentives.publications import start_published_parameters
from registry.api import CONTROLLERS as REGISTRY_CONTROLLERS
from registry.compliance.api import CONTROLLERS as COMPLIANCE_CONTROLLERS
from scheduler.api import CONTROLLERS as SCHEDULER_CONTROLLERS
from scheduler.runner import Scheduler
from server.access import CONTROLLERS as ACCESS_CONTROLLERS
from server.events import CONTROLLERS as EVENT_CONTROLLERS
from server.migrate import schema_problem
from server.sandbox import CONTROLLERS as SANDBOX_CONTROLLERS
from server.services import build_services
from server.yearreport.web import ROUTES as REPORT_ROUTES
from trading.api import CONTROLLERS as TRADING_CONTROLLERS
from web.apidocs import render_plugins
from web.app import ROUTES as WEB_ROUTES
from web.app import SecurityHeaders, error_page, is_page, template_config, wants_html
from web.auth import SessionAuth, SignInRequired
from web.pages import ROUTES as PAGE_ROUTES

API_VERSION = "0.1.0"
# Bearer credentials are for the API; everything outside /api/ is public or a page behind the browser session.
PUBLIC_PATHS = ["^/$", "^/(?!api/)[A-Za-z]", "^/api/v1/auth/token"]
CSRF_EXEMPT = ["^/api/", "^/verify", "^/problems", "^/health", "^/ready", "^/schema", "^/metrics"]


class MetricsController(PrometheusController):
    """Prometheus metrics (`/metrics`): requests by operation and status, latencies, ledger transfers, trades, job
    runs and idempotent replays. Serve it to the monitoring network only (docs/operations.md)."""

    path = "/metrics"
    include_in_schema = False


class TokenRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A staff user's sign-in for a bearer token."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"username": "reviewer1", "password": "correct horse battery staple"}

    username: Annotated[Name, about("The staff user's name.")]
    password: Annotated[
        Note, about("The user's password (bounded like any text: an unbounded one would only make the hasher work).")
    ]


class TokenOut(msgspec.Struct):
    """A bearer token for the staff user, valid for `expires_in` seconds."""

    access_token: str
    token_type: str
    expires_in: int


def clock_facts(clock: Clock) -> dict[str, Any]:
    """`sandbox: true` and the simulated now on a sandbox database, so nobody takes its time for real time."""
    if not isinstance(clock, SandboxClock):
        return {"sandbox": False}
    now = clock.now()
    return {
        "sandbox": True,
        "now": now.isoformat(),
        "now_shanghai": now.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S"),
        "offset_seconds": int(clock.offset.total_seconds()),
    }


@get("/health", operation_id="health", tags=["ops"], include_in_schema=True, cache=False)
async def health(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return {"status": "ok", **clock_facts(request.app.state.clock)}


@get(
    "/ready",
    operation_id="ready",
    tags=["ops"],
    cache=False,
    responses={503: ResponseSpec(data_container=dict[str, Any], description="Not ready; each failed check says why")},
)
async def ready(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """Ready to serve: the database answers, its schema is at this version's head migration, and (when embedded)
    the scheduler runs. 503 with the failing check otherwise, so a load balancer keeps traffic away."""
    state = request.app.state
    checks: dict[str, str] = {}

    async def ping(uow: UnitOfWork) -> None:
        await uow.session.connection()

    try:
        await state.db.read(ping)
        checks["database"] = "ok"
    except Exception as exc:  # reported, not raised
        checks["database"] = f"unreachable: {type(exc).__name__}"
    problem = await asyncio.to_thread(schema_problem, state.settings.database_url)
    checks["migrations"] = problem or "ok"
    sched = state.scheduler
    if state.embed_scheduler:
        running = sched.aps is not None and sched.aps.running
        checks["scheduler"] = "ok" if running else "not running"
    else:
        checks["scheduler"] = "external (greenrights scheduler)"
    good = all(v == "ok" or v.startswith("external") for v in checks.values())
    body: dict[str, Any] = {"status": "ready" if good else "not ready", "checks": checks, **clock_facts(state.clock)}
    if state.db.replica is not None:
        body["read_replica"] = state.db.replica.describe()  # informative: reads fall back to the primary
    return Response(body, status_code=200 if good else 503)


@get("/problems/{slug:str}", operation_id="getProblemType", tags=["ops"], responses=problem_responses(404, 422))
async def problem_type(slug: CodePath) -> dict[str, Any]:
    p = CATALOGUE.get(slug)
    if p is None:
        raise AppError("not-found", "No such problem type.")
    return {"type": f"/problems/{p.slug}", "title": p.title, "status": p.status, "code": p.code}


@post(
    "/api/v1/auth/token",
    operation_id="createToken",
    tags=["auth"],
    status_code=200,
    responses=problem_responses(400, 401, 422, 429),
)
async def create_token(request: Request[Any, Any, Any], data: JSONBody[TokenRequest]) -> TokenOut:
    state = request.app.state
    settings: Settings = state.settings

    now = state.clock.now()
    address = client_address(request)

    async def work(uow: UnitOfWork) -> LoginResult:
        return await check_login(
            uow.session, data.username, data.password, now, address=address, limits=SignInLimits.of(settings)
        )

    p = refuse_login(await state.db.run(work), now)  # the failure count commits before the refusal
    token = issue_jwt(p, state.jwt_secrets[0], now, settings.jwt_ttl_s)
    return TokenOut(access_token=token, token_type="Bearer", expires_in=settings.jwt_ttl_s)  # noqa: S106


def exception_handlers() -> dict[Any, Any]:
    """The API's problem+json handlers, except on pages, where a person gets the same refusal as a page."""

    def for_pages(api_handler: Any) -> Any:
        def handle(request: Request[Any, Any, Any], exc: Exception) -> Any:
            path = request.url.path
            html = is_page(path) or (path.startswith("/verify/") and wants_html(request))
            return error_page(request, exc) if html else api_handler(request, exc)

        return handle

    handlers: dict[Any, Any] = {k: for_pages(v) for k, v in EXCEPTION_HANDLERS.items()}
    handlers[SignInRequired] = error_page
    return handlers


def derive_secret(secret: str, purpose: str) -> str:
    """A key for one purpose derived from the installation's secret (HMAC-SHA256): the CSRF key is not the JWT key."""
    return hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).hexdigest()


def create_app(
    settings: Settings | None = None, clock: Clock | None = None, *, embed_scheduler: bool | None = None
) -> Litestar:
    settings = settings or get_settings()
    secrets = jwt_secrets(settings)  # refuses a guessable secret before anything is served
    # A sandbox database (core/sandbox.py) runs on its simulated clock; any other on system time.
    clock = clock or clock_for(settings.database_url)
    db = Database(
        settings.database_url, retries_max=settings.db_retries_max, busy_timeout_ms=settings.sqlite_busy_timeout_ms
    )
    db.audit_flusher = make_flusher(clock)
    if settings.read_database_url:
        if db.sqlite:
            raise ValueError("GREENRIGHTS_READ_DATABASE_URL needs a PostgreSQL primary (a streaming replica of it)")
        db.replica = ReadReplica(
            settings.read_database_url,
            max_lag_s=settings.read_max_lag_s,
            read_your_writes_s=settings.read_your_writes_s,
            check_interval_s=settings.replica_check_interval_s,
        )
    services = build_services(db, clock, settings)
    services["audit_checkpoints"] = checkpoints_for(settings)
    services["settings"] = settings
    # API-key principals are remembered for a short TTL (core/identity.py says what that means for revocation).
    credentials = CredentialCache(settings.api_key_cache_ttl_s)
    state = State({"settings": settings, "jwt_secrets": secrets, "credentials": credentials, **services})
    embed = settings.scheduler_embedded if embed_scheduler is None else embed_scheduler
    scheduler = Scheduler(services)
    state["scheduler"] = scheduler
    state["embed_scheduler"] = embed

    def get_db() -> Database:
        return db

    background: list[asyncio.Task[None]] = []

    async def on_startup(app: Litestar) -> None:
        dummy_hash()  # once per process, before the first sign-in (which must not take longer than the others)
        if isinstance(clock, SandboxClock):  # the offset was read at create_app; follow later moves
            background.append(asyncio.create_task(watch(db, clock)))
        await start_published_parameters(services["incentives"].ctx)
        if embed:
            await scheduler.start()

    async def on_shutdown(app: Litestar) -> None:
        for task in background:
            task.cancel()
        scheduler.shutdown()
        await db.dispose()

    metrics = prometheus_config()
    middleware: list[Any] = [
        RequestId,
        metrics.middleware,
        SecurityHeaders,
        DefineMiddleware(SessionAuth, db_getter=get_db, settings_getter=lambda: settings, clock_getter=lambda: clock),
        DefineMiddleware(
            BearerAuth,
            db_getter=get_db,
            secret_getter=lambda: secrets,
            credential_cache=credentials,
            clock_getter=lambda: clock,
            exclude=PUBLIC_PATHS,
        ),
    ]
    if db.replica is not None:
        # After authentication: it reads the request's principal (core/replica.py).
        middleware.append(ReadRouting)
    # Per-principal rate limit (core/http.py): after authentication, so it counts the principal that authenticated,
    # and before the body is read or an Idempotency-Key claimed, so a refused request costs nothing more.
    rate_limit = rate_limit_config(settings.api_rate_limit_per_minute)
    if rate_limit is not None:
        middleware.append(rate_limit.middleware)
    middleware.append(
        DefineMiddleware(EdgeMiddleware, db_getter=get_db, settings_getter=lambda: settings, clock_getter=lambda: clock)
    )
    return Litestar(
        route_handlers=[
            health,
            ready,
            problem_type,
            create_token,
            *REGISTRY_CONTROLLERS,
            *COMPLIANCE_CONTROLLERS,
            *TRADING_CONTROLLERS,
            *INCENTIVES_CONTROLLERS,
            *FINANCE_CONTROLLERS,
            *SCHEDULER_CONTROLLERS,
            *ACCESS_CONTROLLERS,
            *EVENT_CONTROLLERS,
            *SANDBOX_CONTROLLERS,
            MetricsController,
            *WEB_ROUTES,
            *PAGE_ROUTES,
            *REPORT_ROUTES,
        ],
        state=state,
        middleware=middleware,
        plugins=openapi_plugins(),  # Idempotency-Key, Struct descriptions and examples (core/openapi.py)
        exception_handlers=exception_handlers(),  # type: ignore[arg-type]
        template_config=template_config(),
        csrf_config=CSRFConfig(
            secret=derive_secret(secrets[0], "csrf"),
            cookie_name="gr_csrf",
            cookie_secure=settings.cookie_secure,
            cookie_httponly=True,
            cookie_samesite="strict",
            exclude=CSRF_EXEMPT,
        ),
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        request_max_body_size=settings.max_body_bytes,
        response_cache_config=ResponseCacheConfig(),
        openapi_config=OpenAPIConfig(
            title="greenrights API",
            version=API_VERSION,
            path="/schema",
            description="Registry, market and incentive engine for environmental rights (Jiangxi).",
            render_plugins=render_plugins(),  # Swagger UI and ReDoc from /static (web/apidocs.py)
        ),
        debug=False,
        # Logging is configured once by core.observability (structlog for the app, uvicorn and APScheduler);
        # Litestar's own default config would put back its handlers and format.
        logging_config=None,
    )


def create_served_app() -> Litestar:
    """The factory `greenrights serve` gives uvicorn: each worker process configures its logging, then builds its
    own app, engine and pool; then what the app holds is frozen out of the garbage collector's passes
    (`core.runtime.tune_gc`)."""
    configure_logging(get_settings().log_json)
    app = create_app()
    tune_gc()
    return app
