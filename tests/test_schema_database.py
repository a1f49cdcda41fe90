"""The tests' own databases (`tests.conftest.schema_database_url`): a database a test has written to is handed to the
next one exactly as `server.migrate.create_schema` leaves a new one, and a schema a test changed is built again."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from core.db import UnitOfWork, sync_url
from core.identity import Role
from tests.conftest import BACKENDS, PG_URL, make_env, schema_database_url


def _state(url: str) -> dict[str, object]:
    """What a test could see of a database it starts on: every table's row count, the audit head, and (PostgreSQL)
    every sequence's next value."""
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            tables = sorted(inspect(conn).get_table_names())
            state: dict[str, object] = {
                name: conn.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one() for name in tables
            }
            state["audit_head"] = conn.execute(text("SELECT id, seq, hash FROM audit_head")).all()
            if conn.dialect.name == "postgresql":
                for (name,) in conn.execute(
                    text("SELECT relname FROM pg_class WHERE relkind = 'S' AND relnamespace = 'public'::regnamespace")
                ):
                    state[f"sequence {name}"] = conn.execute(text(f'SELECT last_value, is_called FROM "{name}"')).one()
            return state
    finally:
        engine.dispose()


async def _write_something(url: str) -> None:
    """Rows in several tables, the audit chain among them, and sequences moved on, through the real app."""
    env, client = await make_env(url, build=False)
    try:
        await env.key(Role.REGULATOR)
        await env.key(Role.EMITTER, name="企业")

        async def audited(uow: UnitOfWork) -> None:
            uow.audit("test", "test.write", "thing", "1", {"n": 1})

        await env.db.run(audited)
    finally:
        await client.__aexit__(None, None, None)
        await env.db.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_database_written_to_is_handed_to_the_next_test_as_a_new_one(backend: str, tmp_path: Path) -> None:
    url = schema_database_url(backend, tmp_path)
    new = _state(url)
    assert new["audit_head"] == [(1, 0, "0" * 64)]
    assert {v for k, v in new.items() if k != "audit_head" and not k.startswith("sequence ")} == {0}
    await _write_something(url)
    written = _state(url)
    assert written != new
    assert written["audit_entry"] == 1 and written["organisation"] == 3  # the registry's own (bootstrap) and two

    again = schema_database_url(backend, tmp_path)
    assert _state(again) == new


@pytest.mark.skipif(not PG_URL, reason="GREENRIGHTS_TEST_DATABASE_URL not set")
def test_a_schema_a_test_changed_is_built_again_postgres(tmp_path: Path) -> None:
    url = schema_database_url("postgres", tmp_path)
    engine = create_engine(sync_url(url))
    try:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE organisation ADD COLUMN note text"))
            conn.execute(text("ALTER TABLE audit_entry DISABLE TRIGGER audit_entry_append_only"))
        schema_database_url("postgres", tmp_path)
        with engine.connect() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("organisation")}
            enabled = conn.execute(
                text("SELECT tgenabled FROM pg_trigger WHERE tgname = 'audit_entry_append_only'")
            ).scalar_one()
        assert "note" not in columns
        assert enabled == "O"
    finally:
        engine.dispose()
