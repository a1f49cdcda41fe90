"""The browser workbench's wiring: templates, static assets, security headers, HTML error pages, sign-in and the
role's home page. The pages themselves live in web/pages/, one module per area; each exports ROUTES."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from jinja2 import pass_context
from litestar import Request, Response, get, post
from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.datastructures import Cookie
from litestar.exceptions import HTTPException, TooManyRequestsException
from litestar.params import FromQuery, URLEncodedBody
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from core.clock import SHANGHAI
from core.db import UnitOfWork
from core.errors import AppError
from core.http import client_address, rate_limited
from core.identity import Identity, LoginResult, Role, SignInLimits, check_login, refuse_login
from web import auth
from web.apidocs import REDOC_CSP
from web.format import FILTERS
from web.i18n import catalogue, translate

log = logging.getLogger("greenrights.web")
HERE = Path(__file__).parent
STATIC = HERE / "static"

# Where each role lands after sign-in.
HOME: dict[Role, str] = {
    Role.FINANCE_REVIEWER: "/finance/claims",
    Role.FINANCE_APPROVER: "/finance/claims",
    Role.REGULATOR: "/compliance",
    Role.ENERGY_AUTHORITY: "/compliance",
    Role.GEC_ISSUER: "/compliance",
    Role.VERIFIER: "/compliance",
    Role.AUDITOR: "/enterprises",
    Role.EMITTER: "/enterprise",
    Role.BANK: "/bank",
    Role.MEMBER: "/market",
}

# Paths that are not pages: the API and the machine-facing endpoints keep their problem+json answers.
NOT_PAGES = ("/api/", "/schema", "/problems", "/verify", "/health", "/ready", "/metrics")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
REDOC_PAGE = "/schema/redoc"  # ReDoc's own policy (web/apidocs.py REDOC_CSP): run-time styles, still no inline script


def is_page(path: str) -> bool:
    return not path.startswith(NOT_PAGES)


def wants_html(request: Request[Any, Any, Any]) -> bool:
    """A browser asking for a page (Accept names text/html before any JSON), not a program."""
    accept = request.headers.get("accept", "")
    html, json_ = accept.find("text/html"), accept.find("json")
    return html >= 0 and (json_ < 0 or html < json_)


class SecurityHeaders:
    """Security headers on every answer; the Content-Security-Policy (no inline script, no framing) on pages and
    every HTML answer, Swagger UI's included. ReDoc (/schema/redoc) gets REDOC_CSP, which adds only run-time styles
    and a blob: worker (web/apidocs.py says why)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        page = is_page(scope["path"])
        csp = REDOC_CSP if scope["path"] == REDOC_PAGE else CSP

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                have = {k.lower(): v for k, v in headers}
                extra = list(SECURITY_HEADERS)
                # Every HTML answer (pages, the public verification page) gets the CSP and is never cached.
                if page or have.get(b"content-type", b"").startswith(b"text/html"):
                    extra.append((b"content-security-policy", csp.encode()))
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = [*headers, *(h for h in extra if h[0] not in have)]
            await send(message)

        await self.app(scope, receive, wrapped)


# ---------------------------------------------------------------- templates


@pass_context
def _t(ctx: Any, key: str, **values: object) -> str:
    return translate(key, lang_of(ctx["request"]), **values)


@pass_context
def _t_or(ctx: Any, key: str, fallback: str) -> str:
    """The text of `key`, or `fallback` when the catalogue has none (field names of open-ended records)."""
    texts = catalogue().get(key)
    return texts[lang_of(ctx["request"])] if texts else fallback


@pass_context
def _lang(ctx: Any) -> str:
    return lang_of(ctx["request"])


@pass_context
def _user(ctx: Any) -> Identity | None:
    user = ctx["request"].scope.get("user")
    return user if isinstance(user, Identity) else None


def _configure(engine: JinjaTemplateEngine) -> None:
    env = engine.engine
    env.filters.update(FILTERS)
    env.globals.update(t=_t, t_or=_t_or, lang=_lang, current_user=_user, HOME=HOME)
    env.trim_blocks = True
    env.lstrip_blocks = True


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(directory=HERE / "templates", engine=JinjaTemplateEngine, engine_callback=_configure)


def lang_of(request: Request[Any, Any, Any]) -> str:
    lang = request.scope.get("state", {}).get("lang", "zh")
    return lang if lang in ("zh", "en") else "zh"


def page(request: Request[Any, Any, Any], name: str, status_code: int = 200, **context: Any) -> Template:
    """Render a page template; every page gets `user` and `lang`."""
    return Template(template_name=name, context=context, status_code=status_code)


# ---------------------------------------------------------------- HTML error pages


def error_page(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """What a person sees when a page refuses: sign-in for nobody signed in, else the problem in words."""
    if isinstance(exc, auth.SignInRequired):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return Redirect(f"/login?next={quote(target)}", status_code=303)
    if isinstance(exc, TooManyRequestsException):
        exc = rate_limited(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, AppError):
        status, title, detail, field = exc.status, exc.problem.title, exc.detail, exc.field
        headers = dict(exc.headers)  # Retry-After of a 429
    elif isinstance(exc, HTTPException):
        status, title, detail, field = exc.status_code, "", exc.detail, None
        if status == 403:
            detail = translate("error.csrf", lang_of(request)) if "CSRF" in (exc.detail or "") else detail
    else:
        log.exception("unhandled error on page %s %s", request.method, request.url.path, exc_info=exc)
        status, title, detail, field = 500, "", translate("error.internal", lang_of(request)), None
    if request.headers.get("hx-request"):
        return Template(
            template_name="partials/error.html",
            context={"status": status, "title": title, "detail": detail, "field": field},
            status_code=status,
            headers={**headers, "HX-Retarget": "#flash", "HX-Reswap": "innerHTML"},
        )
    return Template(
        template_name="error.html",
        context={"status": status, "title": title, "detail": detail, "field": field},
        status_code=status,
        headers=headers or None,
    )


# ---------------------------------------------------------------- sign-in


def safe_next(target: str | None) -> str | None:
    """Only a local path: never send a person to another site after sign-in."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    return None if parts.scheme or parts.netloc else target


@get("/", include_in_schema=False)
async def home(request: Request[Any, Any, Any]) -> Response[Any]:
    user = request.scope.get("user")
    if isinstance(user, Identity):
        return Redirect(HOME.get(user.role, "/market"), status_code=303)
    return Redirect("/login", status_code=303)


@get("/login", include_in_schema=False)
async def login_form(request: Request[Any, Any, Any], next: FromQuery[str | None] = None) -> Template:
    return page(request, "login.html", next=safe_next(next) or "", error=None, username="")


@post("/login", include_in_schema=False, status_code=303)
async def login_submit(
    request: Request[Any, Any, Any],
    data: URLEncodedBody[dict[str, str]],
) -> Response[Any]:
    state = request.app.state
    username = (data.get("username") or "").strip()[:100]
    password = data.get("password") or ""
    now = state.clock.now()

    address = client_address(request)
    limits = SignInLimits.of(state.settings)

    async def work(uow: UnitOfWork) -> LoginResult:
        return await check_login(uow.session, username, password, now, address=address, limits=limits)

    try:
        principal = refuse_login(await state.db.run(work), now)
    except AppError as exc:
        key = "login.locked" if exc.problem.slug == "sign-in-locked" else "login.wrong"
        return page(
            request,
            "login.html",
            status_code=exc.status,
            next=safe_next(data.get("next")) or "",
            error=translate(key, lang_of(request)),
            username=username,
        )
    token = await auth.open_session(state.db, principal.id or 0, now)
    target = safe_next(data.get("next")) or HOME.get(Role(principal.role), "/market")
    settings = state.settings
    return Redirect(
        target,
        status_code=303,
        cookies=[
            Cookie(
                key=auth.COOKIE,
                value=token,
                path="/",
                httponly=True,
                samesite="lax",
                secure=settings.cookie_secure,
                max_age=settings.web_max_s,
            )
        ],
    )


@post("/logout", include_in_schema=False, status_code=303)
async def logout(request: Request[Any, Any, Any]) -> Response[Any]:
    token = request.scope.get("state", {}).get("session_token")
    user = request.scope.get("user")
    if token:
        await auth.close_session(request.app.state.db, token, user.actor if isinstance(user, Identity) else None)
    resp: Response[Any] = Redirect("/login", status_code=303)
    resp.delete_cookie(auth.COOKIE, path="/")
    return resp


def now_shanghai(request: Request[Any, Any, Any]) -> dt.datetime:
    return request.app.state.clock.now().astimezone(SHANGHAI)


STATIC_ROUTER = create_static_files_router(path="/static", directories=[STATIC], include_in_schema=False)
ROUTES: list[Any] = [home, login_form, login_submit, logout, STATIC_ROUTER]
