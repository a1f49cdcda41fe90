"""Shared fixtures: a migrated database per test module on SQLite (and PostgreSQL when
GREENRIGHTS_TEST_DATABASE_URL is set), an app with a fixed clock, and helpers to make principals."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import Connection, create_engine, make_url, text
from sqlmodel import SQLModel

from core.clock import FixedClock
from core.db import Database, UnitOfWork, sync_url
from core.identity import Role, create_api_key, create_organisation
from core.settings import Settings
from server.app import create_app
from server.migrate import create_schema, write_audit_head

# Staff tokens are signed with this test secret (a server refuses to start without one on PostgreSQL; see
# core/secrets.py). Subprocesses (live-server tests) inherit it.
os.environ.setdefault("GREENRIGHTS_JWT_SECRET", "test-only-secret-" + "0123456789abcdef" * 2)
# Scenarios run deadlines into 2027-2028, whose holiday notices the repository does not ship: publish test ones
# (tests/data/), as an operator would publish the real ones. Set before any settings are read; subprocesses inherit it.
os.environ.setdefault(
    "GREENRIGHTS_HOLIDAYS_PATH", str(Path(__file__).with_name("data") / "holidays-test-2027-2028.yaml")
)

_BASE_PG_URL = os.environ.get("GREENRIGHTS_TEST_DATABASE_URL")


def _worker_pg_url() -> str | None:
    """Under pytest-xdist each worker gets its own PostgreSQL database (created on first use), so workers never
    drop each other's schema; without xdist the configured database is used as it is."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not _BASE_PG_URL or not worker:
        return _BASE_PG_URL
    base = make_url(sync_url(_BASE_PG_URL))
    name = f"{base.database}_{worker}"
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first() is None:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(_BASE_PG_URL).set(database=name).render_as_string(hide_password=False)


PG_URL = _worker_pg_url()
BACKENDS = ["sqlite"] + (["postgres"] if PG_URL else [])
START = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)  # Monday 10:00 Shanghai


def fresh_database_url(backend: str, tmp: Path) -> str:
    """An empty database: no tables at all (for tests of migrations, of the schema check, of what an empty database
    may be marked). Most tests want `schema_database_url`."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp / ('t-' + uuid.uuid4().hex[:8] + '.db')}"
    assert PG_URL
    # One schema-less database per call would be slow; instead drop and recreate the public schema.
    engine = create_engine(sync_url(PG_URL))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    _TEMPLATES.postgres = None
    return PG_URL


@dataclass
class _Templates:
    # SQLite: the schema is built once per process into this file, and each test gets a copy of it.
    sqlite: Path | None = None
    # PostgreSQL: the fingerprint of the worker's database's schema right after `create_schema` built it (None after
    # `fresh_database_url`, which hands out an empty schema for a test to build on).
    postgres: str | None = None


_TEMPLATES = _Templates()

# Everything about the public schema a test could have changed: its tables, indexes and sequences with their columns
# and privileges, and its triggers with their state (a test that adds a column, a grant or disables a trigger makes
# the next test build the schema again rather than empty it).
_PG_FINGERPRINT = """
SELECT md5(coalesce(string_agg(item, ';' ORDER BY item), '')) FROM (
  SELECT c.relname || ':' || c.relkind::text || ':' || coalesce(c.relacl::text, '') || ':' || c.relowner::text || ':' ||
         coalesce((SELECT string_agg(a.attname || ' ' || a.atttypid::text || ' ' || a.attnotnull::text, ','
                                     ORDER BY a.attnum)
                   FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
  FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace
  UNION ALL
  SELECT 'trigger ' || t.tgname || ':' || t.tgenabled::text || ':' || t.tgrelid::regclass::text
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
  WHERE NOT t.tgisinternal AND c.relnamespace = 'public'::regnamespace
  UNION ALL
  SELECT 'function ' || p.proname || ':' || md5(p.prosrc) FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
) AS schema_items (item)
"""


def schema_database_url(backend: str, tmp: Path) -> str:
    """A database holding the schema exactly as `server.migrate.create_schema` leaves it, and nothing else: what
    most tests start from. Quicker than building it each time (0.25-0.35 s on SQLite, 0.9-1.4 s on PostgreSQL): on
    SQLite a copy of a file built once per process; on PostgreSQL the worker's database emptied (rows deleted,
    sequences restarted, the audit chain's head written again) when its schema is still the one built."""
    if backend == "sqlite":
        if _TEMPLATES.sqlite is None:
            template = Path(tempfile.mkdtemp(prefix="greenrights-schema-")) / "schema.db"
            create_schema(f"sqlite+aiosqlite:///{template}")
            _TEMPLATES.sqlite = template
        target = tmp / ("t-" + uuid.uuid4().hex[:8] + ".db")
        shutil.copyfile(_TEMPLATES.sqlite, target)
        return f"sqlite+aiosqlite:///{target}"
    assert PG_URL
    engine = create_engine(sync_url(PG_URL))
    try:
        with engine.begin() as conn:
            built = _TEMPLATES.postgres
            if built is not None and conn.execute(text(_PG_FINGERPRINT)).scalar_one() == built:
                _empty_postgres(conn)
                return PG_URL
        fresh_database_url(backend, tmp)
        create_schema(PG_URL)
        with engine.begin() as conn:
            _TEMPLATES.postgres = conn.execute(text(_PG_FINGERPRINT)).scalar_one()
        return PG_URL
    finally:
        engine.dispose()


def _empty_postgres(conn: Connection) -> None:
    """Back to what `create_schema` leaves: every row deleted (children first; the audit tables, whose rows may not
    be deleted one by one, truncated), every sequence restarted, the audit chain's head row written again."""
    audit = {"audit_entry", "audit_head"}
    names = [t.name for t in reversed(SQLModel.metadata.sorted_tables) if t.name not in audit]
    sequences = conn.execute(
        text("SELECT relname FROM pg_class WHERE relkind = 'S' AND relnamespace = 'public'::regnamespace")
    ).scalars()
    conn.exec_driver_sql(
        "; ".join(
            [f'DELETE FROM "{name}"' for name in names]
            + ["TRUNCATE audit_entry, audit_head"]
            + [f'ALTER SEQUENCE "{name}" RESTART' for name in sequences]
        )
    )
    write_audit_head(conn)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "postgres" in item.name and not PG_URL:
            item.add_marker(pytest.mark.skip(reason="GREENRIGHTS_TEST_DATABASE_URL not set"))


@dataclass
class Env:
    """A running app (in-process ASGI client) on its own database, with a clock the test moves."""

    url: str
    client: AsyncTestClient[Any]
    db: Database
    clock: FixedClock
    app: Any
    keys: dict[str, str] = field(default_factory=dict)
    counter: int = 0

    def h(self, key: str, idem: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {key}"}
        self.counter += 1
        headers["Idempotency-Key"] = idem or f"k-{self.counter}-{uuid.uuid4().hex[:8]}"
        return headers

    async def key(self, role: Role, organisation_id: int | None = None, name: str | None = None) -> str:
        async def work(uow: UnitOfWork) -> str:
            org_id = organisation_id
            if org_id is None:
                org = await create_organisation(uow.session, name or role.value, role.value, self.clock.now())
                org_id = org.id
            _, k = await create_api_key(
                uow.session, organisation_id=org_id or 0, role=role, label="test", now=self.clock.now()
            )
            return k

        return await self.db.run(work)

    async def post(self, path: str, key: str, body: Any, idem: str | None = None) -> Any:
        return await self.client.post(path, json=body, headers=self.h(key, idem))

    async def get(self, path: str, key: str) -> Any:
        return await self.client.get(path, headers={"Authorization": f"Bearer {key}"})


async def make_env(url: str, *, build: bool = True) -> tuple[Env, Any]:
    """An app on `url`; `build`: create the schema first (not needed on a `schema_database_url`)."""
    if build:
        create_schema(url)
    clock = FixedClock(START)
    # The per-key rate limit counts on the wall clock, and one test module sends thousands of requests a minute
    # with one key: it is off here and tested on its own (tests/core/test_rate_limit.py).
    app = create_app(Settings(database_url=url, scheduler_embedded=False, api_rate_limit_per_minute=0), clock)
    db: Database = app.state.db
    await app.state.registry.bootstrap()
    client = AsyncTestClient(app=app)
    await client.__aenter__()
    return Env(url=url, client=client, db=db, clock=clock, app=app), client


@pytest.fixture(params=BACKENDS)
async def migrated_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A fresh database with the schema and nothing else, on each backend, for tests of the kernel itself."""
    database = Database(schema_database_url(request.param, tmp_path))
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture(params=BACKENDS)
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    e, client = await make_env(schema_database_url(request.param, tmp_path), build=False)
    try:
        yield e
    finally:
        await client.__aexit__(None, None, None)
        await e.db.dispose()
