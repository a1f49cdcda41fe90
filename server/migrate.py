"""Run Alembic programmatically: `greenrights db upgrade` and the test fixtures use this."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, create_engine, text

from core.audit import APPEND_ONLY_POSTGRES, APPEND_ONLY_SQLITE
from core.db import sync_url

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    return cfg


def write_audit_head(conn: Connection) -> None:
    """The audit chain's head row, at the chain's start, unless it is there: it exists from the start, so appends
    only ever UPDATE it."""
    if conn.execute(text("SELECT count(*) FROM audit_head")).scalar_one() == 0:
        conn.execute(text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :h)"), {"h": "0" * 64})


def _finish(conn: Connection) -> None:
    """What a new schema holds besides its tables: the audit chain's head row and the audit tables' append-only
    triggers."""
    write_audit_head(conn)
    for statement in APPEND_ONLY_POSTGRES if conn.dialect.name == "postgresql" else APPEND_ONLY_SQLITE:
        conn.execute(text(statement))


def upgrade(url: str) -> None:
    if sync_url(url).startswith("sqlite:///"):
        path = Path(sync_url(url)[len("sqlite:///") :])
        path.parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), "head")
    engine = create_engine(sync_url(url))
    with engine.begin() as conn:
        _finish(conn)
    engine.dispose()


def create_schema(url: str) -> None:
    """Create every table straight from the models (tests): quicker than replaying migrations, and
    tests/test_migrations.py proves that the migrations build exactly this schema."""
    from sqlmodel import SQLModel

    import server.models  # noqa: F401

    if sync_url(url).startswith("sqlite:///"):
        Path(sync_url(url)[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(sync_url(url))
    SQLModel.metadata.create_all(engine)
    with engine.begin() as conn:
        _finish(conn)
    engine.dispose()


def schema_problem(url: str) -> str | None:
    """Why the database cannot be served, or None: no schema at all, or a schema behind (or ahead of) the code's
    newest migration. `greenrights serve` and `greenrights scheduler` refuse to start on it; /ready reports it."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    heads = set(ScriptDirectory.from_config(alembic_config(url)).get_heads())
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
    except Exception as exc:  # any failure to reach the database is the answer
        return f"the database cannot be reached ({type(exc).__name__}: {str(exc)[:200]})"
    finally:
        engine.dispose()
    if not current:
        return "the database has no greenrights schema: run `greenrights db upgrade` first"
    if current != heads:
        return (
            f"the database schema is at {', '.join(sorted(current))} but this version needs "
            f"{', '.join(sorted(heads))}: run `greenrights db upgrade`"
        )
    return None
