"""Sign-in throttling per client address (password spraying): many failed sign-ins from one address, whatever the
usernames, lock that address for a while, counted in the database; other addresses and the per-user lock are
unaffected."""

from __future__ import annotations

import asyncio
import datetime as dt

from core.db import UnitOfWork
from core.identity import LoginResult, Role, SignInLimits, check_login, create_organisation, create_user
from core.models import SignInAddress
from tests.conftest import Env

PASSWORD = "correct-horse-battery-9"


async def _user(env: Env, username: str) -> None:
    async def work(uow: UnitOfWork) -> None:
        org = await create_organisation(uow.session, "org", "regulator", env.clock.now())
        await create_user(
            uow.session, organisation_id=org.id or 0, role=Role.REGULATOR, username=username, password=PASSWORD,
            now=env.clock.now(),
        )  # fmt: skip

    await env.db.run(work)


async def _try(env: Env, username: str, password: str, address: str, limits: SignInLimits) -> LoginResult:
    now = env.clock.now()

    async def work(uow: UnitOfWork) -> LoginResult:
        return await check_login(uow.session, username, password, now, address=address, limits=limits)

    return await env.db.run(work)


async def test_spraying_many_usernames_from_one_address_locks_the_address(env: Env) -> None:
    await _user(env, "alice")
    limits = SignInLimits(address_failures_max=4, address_window_s=900, address_lock_s=600)
    for i in range(3):
        r = await _try(env, f"nobody-{i}", "guess-guess-guess", "203.0.113.7", limits)
        assert r.principal is None and r.locked_until is None
    r = await _try(env, "alice", "wrong-password-123", "203.0.113.7", limits)  # the 4th failure locks the address
    assert r.by_address and r.locked_until == env.clock.now() + dt.timedelta(seconds=600)
    # While locked, even the right password is not checked; alice herself is not locked (one wrong password).
    r = await _try(env, "alice", PASSWORD, "203.0.113.7", limits)
    assert r.principal is None and r.by_address
    assert (await _try(env, "alice", PASSWORD, "198.51.100.1", limits)).principal is not None
    env.clock.advance(dt.timedelta(seconds=601))
    assert (await _try(env, "alice", PASSWORD, "203.0.113.7", limits)).principal is not None


async def test_failures_spread_wider_than_the_window_do_not_add_up(env: Env) -> None:
    limits = SignInLimits(address_failures_max=3, address_window_s=60, address_lock_s=600)
    for _ in range(4):
        r = await _try(env, "nobody", "guess-guess-guess", "203.0.113.8", limits)
        assert r.locked_until is None
        env.clock.advance(dt.timedelta(seconds=31))  # two failures per window at most


async def test_a_success_does_not_reset_the_address_count(env: Env) -> None:
    await _user(env, "bob")
    limits = SignInLimits(address_failures_max=3)
    await _try(env, "x1", "guess-guess-guess", "203.0.113.9", limits)
    await _try(env, "x2", "guess-guess-guess", "203.0.113.9", limits)
    assert (await _try(env, "bob", PASSWORD, "203.0.113.9", limits)).principal is not None
    assert (await _try(env, "x3", "guess-guess-guess", "203.0.113.9", limits)).by_address


async def test_concurrent_failures_from_one_address_are_all_counted(env: Env) -> None:
    """A burst must not all read the count before any was recorded (the row is locked per attempt)."""
    limits = SignInLimits(address_failures_max=5)
    results = await asyncio.gather(
        *(_try(env, f"burst-{i}", "guess-guess-guess", "203.0.113.10", limits) for i in range(12))
    )
    checked = [r for r in results if r.locked_until is None]
    assert len(checked) == 4  # the 5th locks; the rest meet the lock

    async def count(uow: UnitOfWork) -> int:
        row = await uow.session.get(SignInAddress, "203.0.113.10")
        assert row is not None and row.locked_until is not None
        return row.failures

    assert await env.db.read(count) == 0


async def test_stale_rows_of_other_addresses_are_tidied_away(env: Env) -> None:
    limits = SignInLimits(address_failures_max=20, address_window_s=60, address_lock_s=60)
    await _try(env, "nobody", "guess-guess-guess", "203.0.113.11", limits)
    env.clock.advance(dt.timedelta(seconds=61))
    await _try(env, "nobody", "guess-guess-guess", "203.0.113.12", limits)

    async def rows(uow: UnitOfWork) -> list[str]:
        return [a for a in (await uow.session.execute(SignInAddress.__table__.select())).scalars()]

    assert await env.db.read(rows) == ["203.0.113.12"]


async def test_the_token_route_throttles_by_the_scopes_client_address(env: Env) -> None:
    """Twenty failures from the test client's address (the ASGI scope's client), any usernames: 429 with
    Retry-After; an X-Forwarded-For header does not change the address."""
    await _user(env, "carol")
    for i in range(19):
        r = await env.client.post("/api/v1/auth/token", json={"username": f"u{i}", "password": "guess-guess-guess"},
                                  headers={"X-Forwarded-For": f"192.0.2.{i}"})  # fmt: skip
        assert r.status_code == 401
    r = await env.client.post("/api/v1/auth/token", json={"username": "u19", "password": "guess-guess-guess"})
    assert r.status_code == 429 and r.json()["type"] == "/problems/sign-in-locked"
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "network address" in r.json()["detail"] and int(r.headers["retry-after"]) == 900
    ok = await env.client.post("/api/v1/auth/token", json={"username": "carol", "password": PASSWORD})
    assert ok.status_code == 429
    env.clock.advance(dt.timedelta(minutes=16))
    ok = await env.client.post("/api/v1/auth/token", json={"username": "carol", "password": PASSWORD})
    assert ok.status_code == 200
