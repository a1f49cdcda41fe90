"""An administrator (the regulator) lifts a user's sign-in lock over the API (`unlockUser`) or an operator at the
command line (`greenrights user unlock USERNAME`); both clear the failure count and are audited; anyone else is
refused 403."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from core.db import UnitOfWork
from core.identity import LOCK_AFTER, Role, create_organisation, create_user
from core.models import AuditEntry
from server.migrate import upgrade
from tests.conftest import Env

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct-horse-battery-9"


async def _user(env: Env, username: str) -> None:
    async def work(uow: UnitOfWork) -> None:
        org = await create_organisation(uow.session, "bank org", "bank", env.clock.now())
        await create_user(uow.session, organisation_id=org.id or 0, role=Role.BANK, username=username,
                          password=PASSWORD, now=env.clock.now())  # fmt: skip

    await env.db.run(work)


async def _token(env: Env, username: str, password: str) -> int:
    r = await env.client.post("/api/v1/auth/token", json={"username": username, "password": password})
    return r.status_code


async def test_a_regulator_unlocks_a_locked_user_and_it_is_audited(env: Env) -> None:
    await _user(env, "dora")
    for _ in range(LOCK_AFTER):
        await _token(env, "dora", "wrong-password-123")
    assert await _token(env, "dora", PASSWORD) == 429
    regulator = await env.key(Role.REGULATOR)
    r = await env.post("/api/v1/users/dora/unlock", regulator, None)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["username"] == "dora" and body["role"] == "bank" and body["was_locked_until"]
    assert await _token(env, "dora", PASSWORD) == 200

    async def entries(uow: UnitOfWork) -> list[AuditEntry]:
        return list((await uow.session.execute(select(AuditEntry).where(AuditEntry.action == "user.unlock"))).scalars())

    found = await env.db.read(entries)
    assert len(found) == 1 and found[0].actor.startswith("principal:")
    assert json.loads(found[0].data)["username"] == "dora"
    again = await env.post("/api/v1/users/dora/unlock", regulator, None)  # not locked: nothing to lift
    assert again.status_code == 200 and again.json()["was_locked_until"] is None


async def test_unlock_clears_the_count_of_wrong_passwords(env: Env) -> None:
    await _user(env, "erin")
    for _ in range(LOCK_AFTER - 1):
        await _token(env, "erin", "wrong-password-123")
    r = await env.post("/api/v1/users/erin/unlock", await env.key(Role.REGULATOR), None)
    assert r.status_code == 200 and r.json()["failed_logins_cleared"] == LOCK_AFTER - 1
    await _token(env, "erin", "wrong-password-123")
    assert await _token(env, "erin", PASSWORD) == 200  # one wrong password since, not five


async def test_others_are_refused_and_an_unknown_user_is_404(env: Env) -> None:
    await _user(env, "finn")
    for _ in range(LOCK_AFTER):
        await _token(env, "finn", "wrong-password-123")
    for role in (Role.BANK, Role.AUDITOR, Role.ENERGY_AUTHORITY):
        r = await env.post("/api/v1/users/finn/unlock", await env.key(role), None)
        assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")
    assert await _token(env, "finn", PASSWORD) == 429  # still locked
    r = await env.post("/api/v1/users/nobody-here/unlock", await env.key(Role.REGULATOR), None)
    assert r.status_code == 404 and r.json()["field"] == "username"
    assert (await env.client.post("/api/v1/users/finn/unlock")).status_code == 401


def test_unlock_at_the_command_line(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'u.db'}"
    upgrade(url)
    env = {**os.environ, "GREENRIGHTS_DATABASE_URL": url, "GREENRIGHTS_NEW_PASSWORD": PASSWORD}
    cli = [sys.executable, "-m", "server.cli", "user"]
    subprocess.run([*cli, "create", "--username", "gail", "--role", "auditor"], cwd=REPO, env=env,
                   capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'u.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE principal SET failed_logins = 0, locked_until = '2099-01-01 00:00:00.000000' "
                             "WHERE username = 'gail'"))  # fmt: skip
    done = subprocess.run([*cli, "unlock", "gail"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
                          check=False)  # fmt: skip
    assert done.returncode == 0 and "gail unlocked" in done.stdout, done.stderr
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT failed_logins, locked_until FROM principal WHERE username = 'gail'")).one()
        audit = conn.execute(sa.text("SELECT actor FROM audit_entry WHERE action = 'user.unlock'")).all()
    engine.dispose()
    assert tuple(row) == (0, None) and [a[0] for a in audit] == ["operator:cli"]
    missing = subprocess.run([*cli, "unlock", "nobody-here"], cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=60, check=False)  # fmt: skip
    assert missing.returncode == 1 and "No user" in missing.stderr


