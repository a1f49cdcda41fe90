"""A server never signs staff tokens with a guessable secret: the published default and short secrets refuse to
start, PostgreSQL without GREENRIGHTS_JWT_SECRET refuses to start, the embedded SQLite default generates its own
random secret (kept beside the database, mode 0600), and a rotated-out secret stays accepted while configured."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest

from core.secrets import SECRET_FILE, InsecureSecret, jwt_secrets
from core.settings import Settings
from server.app import create_app

PG = "postgresql+psycopg://nobody:nothing@127.0.0.1:1/none"
GOOD = "a-random-enough-secret-" + "x" * 16


def test_the_published_default_and_short_secrets_are_refused(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'g.db'}"
    with pytest.raises(InsecureSecret, match="published default"):
        jwt_secrets(Settings(database_url=url, jwt_secret="dev-only-change-me-dev-only-change-me"))
    with pytest.raises(InsecureSecret, match="shorter than 32 bytes"):
        jwt_secrets(Settings(database_url=url, jwt_secret="short"))
    with pytest.raises(InsecureSecret, match="PREVIOUS"):
        jwt_secrets(Settings(database_url=url, jwt_secret=GOOD, jwt_previous_secret="short"))


def test_postgresql_without_a_secret_refuses_to_start() -> None:
    with pytest.raises(InsecureSecret, match="GREENRIGHTS_JWT_SECRET is not set") as refused:
        create_app(Settings(database_url=PG, jwt_secret=None, scheduler_embedded=False))
    assert GOOD not in str(refused.value)


def test_greenrights_serve_exits_non_zero_and_says_why() -> None:
    env = {k: v for k, v in os.environ.items() if k != "GREENRIGHTS_JWT_SECRET"}
    env["GREENRIGHTS_DATABASE_URL"] = PG
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "refusing to start: GREENRIGHTS_JWT_SECRET is not set" in done.stderr


def test_the_embedded_sqlite_default_generates_and_keeps_a_random_secret(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'var' / 'g.db'}", jwt_secret=None)
    first = jwt_secrets(settings)
    path = tmp_path / "var" / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first[0]) >= 32 and first == jwt_secrets(settings)
    other = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'other' / 'g.db'}", jwt_secret=None)
    assert jwt_secrets(other)[0] != first[0]


async def test_a_token_signed_with_the_old_default_is_refused_and_a_rotated_secret_still_works(env) -> None:
    from core.db import UnitOfWork
    from core.identity import Role, create_organisation, create_user

    async def approver(uow: UnitOfWork) -> int:
        org = await create_organisation(uow.session, "江西省财政厅", "finance", env.clock.now())
        p = await create_user(
            uow.session, organisation_id=org.id or 0, role=Role.FINANCE_APPROVER, username="approver-1",
            password="a-long-enough-password", now=env.clock.now(),
        )  # fmt: skip
        return p.id or 0

    staff = await env.db.run(approver)
    now = int(time.time())  # PyJWT checks `exp` against the wall clock
    claims = {"sub": str(staff), "iat": now, "exp": now + 600}
    forged = jwt.encode(claims, "dev-only-change-me-dev-only-change-me", algorithm="HS256")
    r = await env.client.get("/api/v1/finance/budgets", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401, r.text
    signed = jwt.encode(claims, env.app.state.jwt_secrets[0], algorithm="HS256")
    r = await env.client.get("/api/v1/finance/budgets", headers={"Authorization": f"Bearer {signed}"})
    assert r.status_code == 200, r.text
    rotated = create_app(
        Settings(database_url=env.url, jwt_secret=GOOD, jwt_previous_secret=env.app.state.jwt_secrets[0]),
        embed_scheduler=False,
    )
    assert rotated.state.jwt_secrets == (GOOD, env.app.state.jwt_secrets[0])
