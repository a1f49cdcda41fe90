"""API keys may expire: a key works until its `expires_at` on the server's clock and from then on answers 401
`unauthenticated` saying it expired, whether its principal is in the process's credential cache or read afresh;
listings show the expiry; `greenrights apikey create --expires-on DATE` makes one that works through that Shanghai
day."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from core.clock import end_of_business_day
from core.db import Database, UnitOfWork
from core.errors import AppError
from core.identity import Role, create_api_key, create_organisation
from core.models import Principal
from server.migrate import upgrade
from tests.conftest import Env

REPO = Path(__file__).resolve().parents[2]
PATH = "/api/v1/api-keys"


async def expiring_key(env: Env, role: Role, expires_at: dt.datetime | None) -> str:
    async def work(uow: UnitOfWork) -> str:
        name = f"{role.value}-{uuid.uuid4().hex[:6]}"
        org = await create_organisation(uow.session, name, role.value, env.clock.now())
        assert org.id is not None
        _, key = await create_api_key(
            uow.session, organisation_id=org.id, role=role, label="t", now=env.clock.now(), expires_at=expires_at
        )
        return key

    return await env.db.run(work)


async def test_a_key_works_until_its_expiry_then_answers_401_cached_or_not(env: Env) -> None:
    until = env.clock.now() + dt.timedelta(days=2)
    cached = await expiring_key(env, Role.AUDITOR, until)
    fresh = await expiring_key(env, Role.AUDITOR, until)
    forever = await expiring_key(env, Role.AUDITOR, None)
    r = await env.get(PATH, cached)  # now in the process's credential cache
    assert r.status_code == 200, r.text
    assert [k["expires_at"] for k in r.json()] == [until.isoformat().replace("+00:00", "Z")]
    assert (await env.get(PATH, forever)).json()[0]["expires_at"] is None

    env.clock.advance(dt.timedelta(days=2) - dt.timedelta(seconds=1))
    assert (await env.get(PATH, cached)).status_code == 200  # one second left
    env.clock.advance(dt.timedelta(seconds=1))  # the expiry instant itself: no longer works
    for key in (cached, fresh):
        r = await env.get(PATH, key)
        assert r.status_code == 401, r.text
        assert r.json()["type"] == "/problems/unauthenticated" and "This API key expired" in r.json()["detail"]
    assert (await env.get(PATH, forever)).status_code == 200
    # A forged key with an expired key's prefix gets the answer of any bad credential, not the expiry.
    bogus = f"gr_{cached.split('_')[1]}_{'x' * 43}"
    r = await env.get(PATH, bogus)
    assert r.status_code == 401 and "This API key" not in r.json()["detail"]
    assert (await env.get(PATH, cached)).status_code == 401  # and stays refused


async def test_a_key_cannot_be_made_already_expired_or_with_a_naive_expiry(env: Env) -> None:
    for bad in (env.clock.now(), env.clock.now() - dt.timedelta(days=1), dt.datetime(2030, 1, 1)):
        with pytest.raises(AppError) as err:
            await expiring_key(env, Role.AUDITOR, bad)
        assert err.value.field == "expires_at"


def test_create_at_the_command_line_with_an_expiry(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'k.db'}"
    upgrade(url)
    env = {**os.environ, "GREENRIGHTS_DATABASE_URL": url}
    cli = [sys.executable, "-m", "server.cli", "apikey", "create", "--role", "auditor"]
    day = dt.date.today() + dt.timedelta(days=30)
    made = subprocess.run([*cli, "--expires-on", day.isoformat()], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "works until" in made.stdout
    key = made.stdout.strip().splitlines()[-1]

    async def stored() -> dt.datetime | None:
        db = Database(url)

        async def work(uow: UnitOfWork) -> dt.datetime | None:
            q = select(Principal.expires_at).where(Principal.key_prefix == key.split("_")[1])
            return (await uow.session.execute(q)).scalar_one()

        try:
            return await db.read(work)
        finally:
            await db.dispose()

    # Through the whole Shanghai day: it stops at 00:00 Shanghai the next day (16:00 UTC on the day).
    assert asyncio.run(stored()) == end_of_business_day(day)
    past = subprocess.run([*cli, "--expires-on", "2020-01-01"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert past.returncode == 2 and "future" in past.stderr
    garbled = subprocess.run([*cli, "--expires-on", "31/12/2030"], cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=60, check=False)  # fmt: skip
    assert garbled.returncode == 2 and "YYYY-MM-DD" in garbled.stderr
