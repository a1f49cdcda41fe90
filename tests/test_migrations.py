"""The Alembic history builds exactly the schema the models declare (tests build it from the models)."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine
from sqlmodel import SQLModel

import server.models  # noqa: F401
from core.db import sync_url
from server.migrate import upgrade
from tests.conftest import BACKENDS, fresh_database_url


@pytest.mark.parametrize("backend", BACKENDS)
def test_migrations_match_the_models(backend: str, tmp_path: Path) -> None:
    url = fresh_database_url(backend, tmp_path)
    upgrade(url)
    engine = create_engine(sync_url(url))
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)
    engine.dispose()
    assert diff == []
