"""The application role (`greenrights db grant ROLE`, server/app_role.py): on a fresh PostgreSQL database migrated by
a non-superuser owner, a role granted by the command runs the app's real write paths (a transfer, the audit linker)
while the database refuses it every way of rewriting the log: UPDATE of an entry's content, DELETE, TRUNCATE, DROP
TRIGGER, ALTER TABLE. Re-running the grant is exact; serve and the scheduler warn at startup on an owner's or a
superuser's connection and not on the role's. PostgreSQL only (the superuser test URL creates and drops the
database and both roles); SQLite is refused with what protects it instead."""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import DBAPIError

from core.audit import link_and_verify, make_flusher
from core.clock import FixedClock
from core.db import Database, UnitOfWork, sync_url
from core.settings import Settings
from server.app import create_app
from server.app_role import APPEND_ONLY, SQLITE_REFUSAL, GrantRefused, grant, warn_if_privileged
from server.migrate import upgrade
from tests.conftest import START, Env
from tests.helpers import allocate, holding, world

REPO = Path(__file__).resolve().parents[2]
SUPER_URL = os.environ.get("GREENRIGHTS_TEST_DATABASE_URL")
INSUFFICIENT_PRIVILEGE = "42501"


@dataclass(frozen=True)
class Installation:
    database: str
    owner: str
    role: str
    owner_url: str
    role_url: str


def _url(username: str, password: str, database: str) -> str:
    assert SUPER_URL
    u = make_url(SUPER_URL).set(username=username, password=password, database=database)
    return u.render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def inst() -> Iterator[Installation]:
    """A fresh database owned by a fresh non-superuser owner who migrates it, and a fresh login role granted by
    `grant`; all three dropped afterwards."""
    if not SUPER_URL:
        pytest.skip("GREENRIGHTS_TEST_DATABASE_URL not set")
    tag = uuid.uuid4().hex[:10]
    database, owner, role = f"greenrights_approle_{tag}", f"gr_owner_{tag}", f"gr_app_{tag}"
    owner_pw, role_pw = secrets.token_hex(16), secrets.token_hex(16)
    su = create_engine(sync_url(SUPER_URL), isolation_level="AUTOCOMMIT")
    with su.connect() as conn:
        conn.execute(text(f"CREATE ROLE {owner} LOGIN PASSWORD '{owner_pw}'"))
        conn.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD '{role_pw}'"))
        conn.execute(text(f"CREATE DATABASE {database} OWNER {owner}"))
    try:
        found = Installation(database, owner, role, _url(owner, owner_pw, database), _url(role, role_pw, database))
        upgrade(found.owner_url)
        grant(found.owner_url, role)
        yield found
    finally:
        with su.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
            conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
            conn.execute(text(f"DROP ROLE IF EXISTS {owner}"))
        su.dispose()


def privileges(url: str, role: str) -> dict[str, list[str]]:
    """Every privilege `role` holds itself in the database: per table, per column and per sequence."""
    engine = create_engine(sync_url(url))
    out: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for kind, sql in (
            ("table", "SELECT table_name, privilege_type FROM information_schema.role_table_grants "
                      "WHERE grantee = :r"),
            ("column", "SELECT table_name || '.' || column_name, privilege_type "
                       "FROM information_schema.column_privileges WHERE grantee = :r"),
            ("sequence", "SELECT c.relname, p.privilege_type FROM pg_class c, aclexplode(c.relacl) p "
                         "WHERE c.relkind = 'S' AND p.grantee = (SELECT oid FROM pg_roles WHERE rolname = :r)"),
        ):  # fmt: skip
            for name, priv in conn.execute(text(sql), {"r": role}):
                out.setdefault(f"{kind} {name}", []).append(priv)
    engine.dispose()
    return {k: sorted(v) for k, v in out.items()}


def _count(url: str, sql: str) -> int:
    engine = create_engine(sync_url(url))
    with engine.connect() as conn:
        n = int(conn.execute(text(sql)).scalar_one())
    engine.dispose()
    return n


def refused(url: str, statement: str) -> DBAPIError:
    """Run `statement` in its own transaction; return the database's error (failing the test if it succeeds)."""
    engine = create_engine(sync_url(url))
    try:
        with engine.begin() as conn:
            conn.execute(text(statement))
    except DBAPIError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError(f"the database accepted: {statement}")


def sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


async def _audited_write(url: str) -> None:
    """A real unit of work as `url`'s user: an organisation created with its audit entry, then linked."""
    from core.identity import create_organisation

    db = Database(url)
    db.audit_flusher = make_flusher(FixedClock(START))

    async def work(uow: UnitOfWork) -> None:
        org = await create_organisation(uow.session, "角色测试机构", "regulator", START)
        uow.audit("test", "organisation.create", "organisation", str(org.id), {"name": org.name})

    try:
        await db.run(work)
        ok, count, message = await link_and_verify(db)
        assert ok and count >= 1, message
    finally:
        await db.dispose()


async def test_the_app_runs_its_write_paths_as_the_role_postgres(inst: Installation) -> None:
    clock = FixedClock(START)
    app = create_app(Settings(database_url=inst.role_url, scheduler_embedded=False, api_rate_limit_per_minute=0), clock)
    await app.state.registry.bootstrap()
    client = AsyncTestClient(app=app)
    await client.__aenter__()
    env = Env(url=inst.role_url, client=client, db=app.state.db, clock=clock, app=app)
    try:
        w = await world(env, n_enterprises=2, issue=1000)
        a, b = w.enterprises
        await allocate(env, w, a["account_id"], 300)
        r = await env.post(
            "/api/v1/transfers",
            a["key"],
            {"from_account_id": a["account_id"], "to_account_id": b["account_id"], "instrument_id": w.instrument_id,
             "quantity": "120"},
        )  # fmt: skip
        assert r.status_code == 201, r.text
        r = await env.post(f"/api/v1/transactions/{r.json()['id']}/approval", a["key2"], {"decision": "approve"})
        assert r.status_code == 200, r.text
        clock.advance(dt.timedelta(hours=26))
        assert await app.state.registry.execute_due_transfers() == 1
        hb = await holding(env, b["key"], b["account_id"], w.instrument_id)
        assert hb is not None and hb["balance"] == "120"
        # The linker, as the role: fills the chain fields of every entry those requests appended, moves the head.
        ok, count, message = await link_and_verify(env.db)
        assert ok and count >= 5, message
    finally:
        await client.__aexit__(None, None, None)
        await env.db.dispose()
    engine = create_engine(sync_url(inst.role_url))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_entry WHERE seq IS NULL")).scalar_one() == 0
        assert conn.execute(text("SELECT seq FROM audit_head")).scalar_one() == count
        assert conn.execute(text("SELECT count(*) FROM ledger_transfer")).scalar_one() >= 3
    engine.dispose()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_entry SET data = '{}' WHERE id = (SELECT min(id) FROM audit_entry)",
        "UPDATE audit_entry SET actor = 'someone else'",
        "DELETE FROM audit_entry WHERE id = (SELECT max(id) FROM audit_entry)",
        "DELETE FROM audit_head",
        "TRUNCATE audit_entry",
        "TRUNCATE audit_head",
        "DROP TRIGGER audit_entry_append_only ON audit_entry",
        "ALTER TABLE audit_entry DISABLE TRIGGER audit_entry_append_only",
        "ALTER TABLE audit_entry ADD COLUMN note text",
        "DROP TABLE audit_entry",
        "CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RETURN NEW; END $$",
        "DELETE FROM ledger_transfer",
        "UPDATE ledger_transfer SET amount = 0",
        "UPDATE outbox_event SET body = '{}'",
        "DELETE FROM trading_trade",
        "UPDATE alembic_version SET version_num = '0001'",
        "CREATE TABLE audit_shadow (id int)",
        "SELECT setval(pg_get_serial_sequence('audit_entry', 'id'), 1)",
    ],
)
async def test_the_role_cannot_rewrite_the_log_postgres(inst: Installation, statement: str) -> None:
    await _audited_write(inst.role_url)
    exc = refused(inst.role_url, statement)
    assert sqlstate(exc) == INSUFFICIENT_PRIVILEGE, exc
    assert "permission denied" in str(exc.orig) or "must be owner" in str(exc.orig), exc


@pytest.mark.parametrize(
    "statement",
    [
        # The grants allow the linker's columns; the triggers of migration 0006 refuse all but their one filling.
        "UPDATE audit_entry SET hash = repeat('0', 64) WHERE seq = 1",
        "UPDATE audit_entry SET seq = NULL WHERE seq = 1",
        "UPDATE audit_head SET seq = 0, hash = repeat('0', 64)",
    ],
)
async def test_what_the_grant_allows_the_triggers_still_refuse_postgres(inst: Installation, statement: str) -> None:
    await _audited_write(inst.role_url)
    exc = refused(inst.role_url, statement)
    assert "audit rows are append-only" in str(exc.orig), exc


def test_the_owner_still_holds_the_rights_the_role_lacks_postgres(inst: Installation) -> None:
    """The refusals above come from the grants, not from the table: the owner may TRUNCATE (inside a transaction
    rolled back here)."""
    engine = create_engine(sync_url(inst.owner_url))
    with engine.connect() as conn:
        conn.execute(text("TRUNCATE ledger_transfer CASCADE"))
        conn.rollback()
    engine.dispose()


def test_grant_is_exact_and_idempotent_through_the_cli_postgres(inst: Installation) -> None:
    before = privileges(inst.owner_url, inst.role)
    assert before["table audit_entry"] == ["INSERT", "SELECT"]
    assert before["table audit_head"] == ["SELECT"]
    assert before["table alembic_version"] == ["SELECT"]
    assert before["column audit_entry.hash"] == ["INSERT", "SELECT", "UPDATE"]
    assert before["column audit_entry.data"] == ["INSERT", "SELECT"]
    assert before["column audit_head.seq"] == ["SELECT", "UPDATE"]
    assert before["table registry_account"] == ["DELETE", "INSERT", "SELECT", "UPDATE"]
    sequences = {k: v for k, v in before.items() if k.startswith("sequence ")}
    assert len(sequences) == _count(inst.owner_url, "SELECT count(*) FROM pg_class WHERE relkind = 'S'") > 10
    assert set(map(tuple, sequences.values())) == {("SELECT", "USAGE")}
    for table in APPEND_ONLY:
        assert not {"DELETE", "TRUNCATE", "TRIGGER", "REFERENCES", "UPDATE"} & set(before[f"table {table}"]), table
    # Stray rights (given by hand, or by an older grant) are taken away by the next run.
    engine = create_engine(sync_url(inst.owner_url))
    with engine.begin() as conn:
        conn.execute(text(f"GRANT DELETE, TRUNCATE, TRIGGER ON audit_entry, ledger_transfer TO {inst.role}"))
        conn.execute(text(f"GRANT UPDATE (data) ON audit_entry TO {inst.role}"))
        seq = conn.execute(text("SELECT pg_get_serial_sequence('audit_entry', 'id')")).scalar_one()
        conn.execute(text(f"GRANT UPDATE ON SEQUENCE {seq} TO {inst.role}"))
    engine.dispose()
    assert privileges(inst.owner_url, inst.role) != before
    cli_env = {**os.environ, "GREENRIGHTS_DATABASE_URL": inst.owner_url}
    for _ in range(2):
        run = subprocess.run([sys.executable, "-m", "server.cli", "db", "grant", inst.role], cwd=REPO, env=cli_env,
                             capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert "no DELETE, TRUNCATE, TRIGGER or REFERENCES" in run.stdout
        assert privileges(inst.owner_url, inst.role) == before


def test_grant_refuses_a_superuser_an_owner_and_an_unknown_role_postgres(inst: Installation) -> None:
    assert SUPER_URL
    superuser = make_url(SUPER_URL).username
    with pytest.raises(GrantRefused, match="superuser"):
        grant(inst.owner_url, str(superuser))
    with pytest.raises(GrantRefused, match="owns"):
        grant(_url(str(superuser), str(make_url(SUPER_URL).password), inst.database), inst.owner)
    with pytest.raises(GrantRefused, match="no role"):
        grant(inst.owner_url, "gr_nobody_" + uuid.uuid4().hex[:8])


def test_grant_on_sqlite_is_refused_with_what_protects_it(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'g.db'}"
    with pytest.raises(GrantRefused) as caught:
        grant(url, "greenrights_app")
    assert str(caught.value) == SQLITE_REFUSAL
    assert "no roles" in SQLITE_REFUSAL and "checkpoints" in SQLITE_REFUSAL and "triggers" in SQLITE_REFUSAL
    run = subprocess.run([sys.executable, "-m", "server.cli", "db", "grant", "greenrights_app"], cwd=REPO,
                         env={**os.environ, "GREENRIGHTS_DATABASE_URL": url}, capture_output=True, text=True,
                         timeout=60, check=False)  # fmt: skip
    assert run.returncode == 1 and "SQLite has no roles" in run.stderr


def test_the_warning_names_the_owner_and_the_superuser_not_the_role_postgres(
    inst: Installation, caplog: pytest.LogCaptureFixture
) -> None:
    assert SUPER_URL
    log = logging.getLogger("greenrights.startup")
    with caplog.at_level(logging.WARNING, logger="greenrights.startup"):
        owner = warn_if_privileged(inst.owner_url, log, "serve")
        superuser = warn_if_privileged(SUPER_URL, log, "serve")
        role = warn_if_privileged(inst.role_url, log, "serve")
    assert owner and f"connected as {inst.owner}, the owner of the audit table" in owner
    assert superuser and "a superuser" in superuser
    assert role is None
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [owner, superuser]
    assert "greenrights db grant" in owner and "docs/operations.md" in owner


START_TIMEOUT_S = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _startup_lines(command: list[str], url: str, ready: str) -> list[str]:
    """Start `greenrights COMMAND` on `url`, read its output up to the line containing `ready`, then stop it."""
    env = {**os.environ, "GREENRIGHTS_DATABASE_URL": url, "GREENRIGHTS_SCHEDULER_EMBEDDED": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", *command], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    lines: list[str] = []
    # A watchdog: a process that never prints `ready` fails the test instead of hanging it.
    watchdog = threading.Timer(START_TIMEOUT_S, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if ready in line:
                return lines
        raise AssertionError(f"{command} ended (or timed out) before {ready!r}: {''.join(lines)}")
    finally:
        watchdog.cancel()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    ("command", "ready"),
    [(["serve", "--host", "127.0.0.1", "--port", "PORT"], "Application startup complete"),
     (["scheduler"], " running\n")],
)  # fmt: skip
def test_serve_and_scheduler_warn_at_startup_for_the_owner_only_postgres(
    inst: Installation, command: list[str], ready: str
) -> None:
    command = [str(_free_port()) if c == "PORT" else c for c in command]
    owner: Any = "".join(_startup_lines(command, inst.owner_url, ready))
    assert "WARNING" in owner.upper() and "greenrights db grant" in owner and f"connected as {inst.owner}" in owner
    role = "".join(_startup_lines(command, inst.role_url, ready))
    assert "greenrights db grant" not in role and "connected as" not in role, role
