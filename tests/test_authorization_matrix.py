"""The authorisation matrix, generated from the application's routes × roles (reliability.md): every non-public
route has a role guard, and every role it does not name answers 403, so a new route is covered automatically."""

from __future__ import annotations

import re

from litestar.handlers import HTTPRouteHandler

from core.identity import Role
from server.app import PUBLIC_PATHS

PUBLIC = [re.compile(p) for p in PUBLIC_PATHS]


def _routes(app):  # type: ignore[no-untyped-def]
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if isinstance(handler, HTTPRouteHandler):
                for method in sorted(handler.http_methods):
                    if method in ("HEAD", "OPTIONS"):
                        continue
                    yield route.path, method, handler


def _allowed(handler: HTTPRouteHandler) -> frozenset[Role] | None:
    roles = None
    for layer in handler.ownership_layers:
        for guard in getattr(layer, "guards", None) or []:
            if hasattr(guard, "allowed_roles"):
                roles = guard.allowed_roles if roles is None else roles & guard.allowed_roles
    return roles


def test_every_private_route_names_its_roles(env) -> None:
    missing = [(p, m) for p, m, h in _routes(env.app)
               if not any(rx.search(p) for rx in PUBLIC) and _allowed(h) is None]
    assert missing == []


async def test_roles_not_named_by_a_route_get_403(env) -> None:
    keys = {role: await env.key(role) for role in Role}
    checked = 0
    for path, method, handler in _routes(env.app):
        if any(rx.search(path) for rx in PUBLIC):
            continue
        allowed = _allowed(handler)
        assert allowed is not None
        url = re.sub(r"\{[^}]+\}", "1", path)
        for role in Role:
            if role in allowed:
                continue
            headers = env.h(keys[role])
            r = await env.client.request(method, url, headers=headers, json={} if method != "GET" else None)
            assert r.status_code == 403, (method, path, role, r.status_code, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            checked += 1
    assert checked > 50


async def test_unauthenticated_calls_get_401_on_every_private_route(env) -> None:
    for path, method, _ in _routes(env.app):
        if any(rx.search(path) for rx in PUBLIC):
            continue
        url = re.sub(r"\{[^}]+\}", "1", path)
        r = await env.client.request(method, url, json={} if method != "GET" else None)
        assert r.status_code == 401, (method, path)
