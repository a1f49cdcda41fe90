"""Sign-in for people: a server-side session per browser, looked up on every page request.

The cookie `gr_session` carries 256 random bits; the database keeps only their SHA-256 (`web_session`), so signing
out deletes the row and a copied table signs nobody in. A session ends after `web_idle_s` without a request or
`web_max_s` after sign-in, and at once when the principal is revoked. Wrong passwords are throttled by
`core.identity.check_login`, shared with the API's token route. CSRF is Litestar's double-submit check
(server/app.py), required on every form of these pages.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.handlers.base import BaseRouteHandler
from litestar.types import ASGIApp, Receive, Scope, Send
from sqlalchemy import delete, select, update

from core.db import Database, UnitOfWork
from core.errors import Forbidden
from core.identity import Identity, Role
from core.models import Principal, WebSession

COOKIE = "gr_session"
# A session's last_seen_at is written at most this often (not on every page view).
TOUCH_EVERY_S = 60


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def open_session(db: Database, principal_id: int, now: dt.datetime) -> str:
    """A new session for a principal who just signed in; returns the cookie's token (shown to nobody else)."""
    token = secrets.token_urlsafe(32)

    async def work(uow: UnitOfWork) -> None:
        uow.session.add(WebSession(id=token_digest(token), principal_id=principal_id, created_at=now, last_seen_at=now))
        uow.audit(f"principal:{principal_id}", "web.sign_in", "principal", str(principal_id), {})

    await db.run(work)
    return token


async def close_session(db: Database, token: str, actor: str | None) -> None:
    async def work(uow: UnitOfWork) -> None:
        await uow.session.execute(delete(WebSession).where(WebSession.id == token_digest(token)))
        if actor:
            uow.audit(actor, "web.sign_out", "principal", actor.split(":", 1)[-1], {})

    await db.run(work)


async def session_identity(db: Database, token: str, now: dt.datetime, idle_s: int, max_s: int) -> Identity | None:
    """The person a session token signs in, or None when it is unknown, idle too long, too old or revoked."""
    digest = token_digest(token)

    async def look(uow: UnitOfWork) -> tuple[Identity | None, bool]:
        row = (
            await uow.session.execute(
                select(WebSession.created_at, WebSession.last_seen_at, Principal)
                .join(Principal, Principal.id == WebSession.principal_id)
                .where(WebSession.id == digest)
            )
        ).first()
        if row is None:
            return None, False
        created, seen, p = row
        expired = (now - seen).total_seconds() > idle_s or (now - created).total_seconds() > max_s
        if expired or p.revoked_at is not None or p.kind != "user":
            return None, True
        ident = Identity(principal_id=p.id or 0, organisation_id=p.organisation_id, role=Role(p.role), label=p.label)
        return ident, (now - seen).total_seconds() > TOUCH_EVERY_S

    ident, write = await db.read(look)
    if write:

        async def touch(uow: UnitOfWork) -> None:
            if ident is None:
                await uow.session.execute(delete(WebSession).where(WebSession.id == digest))
            else:
                await uow.session.execute(update(WebSession).where(WebSession.id == digest).values(last_seen_at=now))

        await db.run(touch)
    return ident


class SessionAuth:
    """On every path outside /api/: the signed-in person (or nobody) as `scope["user"]`, the page language as
    `scope["state"]["lang"]`. It never refuses: the pages' guards decide (web.guards)."""

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
        if scope["type"] != "http" or scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        token = None
        lang_cookie = None
        for name, value in scope["headers"]:
            if name == b"cookie":
                for part in value.decode("latin-1").split(";"):
                    k, _, v = part.strip().partition("=")
                    if k == COOKIE:
                        token = v
                    elif k == "gr_lang":
                        lang_cookie = v
        state = scope.setdefault("state", {})
        query = scope.get("query_string", b"").decode("latin-1")
        asked = next((p[5:] for p in query.split("&") if p.startswith("lang=")), None)
        lang = asked if asked in ("zh", "en") else (lang_cookie if lang_cookie in ("zh", "en") else "zh")
        state["lang"] = lang
        if token and len(token) < 100:
            settings = self.settings_getter()
            scope["user"] = await session_identity(
                self.db_getter(), token, self.clock_getter().now(), settings.web_idle_s, settings.web_max_s
            )
            state["session_token"] = token
        else:
            scope["user"] = None
        if asked is None or asked == lang_cookie:
            await self.app(scope, receive, send)
            return
        cookie = Cookie(key="gr_lang", value=lang, path="/", samesite="lax", max_age=365 * 86400)

        async def send_with_lang(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"set-cookie", cookie.to_header(header="").encode())]
            await send(message)

        await self.app(scope, receive, send_with_lang)


class SignInRequired(Exception):
    """Raised by a page guard when nobody is signed in: the page answers with a redirect to /login."""


def page_for(*roles: Role) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]:
    """A page guard: the signed-in person's role must be one of `roles` (403 page otherwise); nobody signed in is
    sent to /login. The roles are kept on the guard so tests can list who may open each page."""
    allowed = frozenset(roles)

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        ident = connection.scope.get("user")
        if not isinstance(ident, Identity):
            raise SignInRequired
        if ident.role not in allowed:
            raise Forbidden("This page is for another role.")

    guard.roles = allowed  # type: ignore[attr-defined]
    return guard


def identity(connection: ASGIConnection[Any, Any, Any, Any]) -> Identity:
    ident = connection.scope.get("user")
    if not isinstance(ident, Identity):
        raise SignInRequired
    return ident
