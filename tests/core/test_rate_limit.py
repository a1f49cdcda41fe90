"""Rate limits per API key (Litestar's rate-limit middleware, keyed on the authenticated principal): the (limit+1)th
request of one key in a minute answers 429 `rate-limited` as problem+json with Retry-After, while another key is
still served; probes and static files are never limited; a forged key is refused 401 before it is counted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from core.clock import FixedClock
from core.identity import Role
from core.settings import Settings
from server.app import create_app
from tests.conftest import START, Env, fresh_database_url, schema_database_url

LIMIT = 3


@pytest.fixture
async def limited(tmp_path: Path) -> AsyncIterator[Env]:
    url = schema_database_url("sqlite", tmp_path)
    clock = FixedClock(START)
    app = create_app(Settings(database_url=url, scheduler_embedded=False, api_rate_limit_per_minute=LIMIT), clock)
    client: AsyncTestClient[Any] = AsyncTestClient(app=app)
    await client.__aenter__()
    try:
        yield Env(url=url, client=client, db=app.state.db, clock=clock, app=app)
    finally:
        await client.__aexit__(None, None, None)
        await app.state.db.dispose()


async def test_one_key_over_its_limit_gets_429_while_another_key_is_served(limited: Env) -> None:
    one = await limited.key(Role.EMITTER)
    other = await limited.key(Role.EMITTER)
    for _ in range(LIMIT):
        r = await limited.get("/api/v1/api-keys", one)
        assert r.status_code == 200
        assert r.headers["ratelimit-limit"] == str(LIMIT)
    r = await limited.get("/api/v1/api-keys", one)
    assert r.status_code == 429
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["type"] == "/problems/rate-limited" and body["status"] == 429 and body["code"] == "2006"
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert r.headers["ratelimit-remaining"] == "0"
    # The limit is per principal across routes: another route with the same key is refused too.
    assert (await limited.post(f"/api/v1/api-keys/{one.split('_')[1]}/revocation", one, None)).status_code == 429
    assert (await limited.get("/api/v1/api-keys", other)).status_code == 200


async def test_probes_and_static_files_are_not_limited(limited: Env) -> None:
    for _ in range(LIMIT + 2):
        assert (await limited.client.get("/health")).status_code == 200
        assert (await limited.client.get("/static/apidocs.js")).status_code == 200


async def test_a_forged_key_is_refused_before_it_spends_the_real_keys_allowance(limited: Env) -> None:
    key = await limited.key(Role.AUDITOR)
    forged = f"gr_{key.split('_')[1]}_not-the-secret"
    for _ in range(LIMIT + 2):
        assert (await limited.get("/api/v1/api-keys", forged)).status_code == 401
    assert (await limited.get("/api/v1/api-keys", key)).status_code == 200


async def test_unauthenticated_requests_count_per_client_address(limited: Env) -> None:
    for _ in range(LIMIT):
        assert (await limited.client.get("/problems/not-found")).status_code == 200
    r = await limited.client.get("/problems/not-found")
    assert r.status_code == 429 and r.json()["type"] == "/problems/rate-limited" and r.headers["retry-after"]


async def test_a_page_over_the_limit_is_a_page_with_retry_after(limited: Env) -> None:
    for _ in range(LIMIT):
        await limited.client.get("/login")
    r = await limited.client.get("/login")
    assert r.status_code == 429 and "text/html" in r.headers["content-type"] and r.headers["retry-after"]


def test_zero_turns_the_limiter_off(tmp_path: Path) -> None:
    url = fresh_database_url("sqlite", tmp_path)
    app = create_app(Settings(database_url=url, scheduler_embedded=False, api_rate_limit_per_minute=0))
    on = create_app(Settings(database_url=url, scheduler_embedded=False))
    names = [getattr(m, "middleware", m) for m in app.middleware]
    names_on = [getattr(m, "middleware", m) for m in on.middleware]
    assert len(names_on) == len(names) + 1
