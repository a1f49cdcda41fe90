"""The unit-of-work retry policy (core/db.py, tenacity): a transient conflict (SQLite's "database is locked",
PostgreSQL's 40001/40P01) reruns the whole unit of work up to `retries_max` more times, logging one line per retry,
then answers 503 with Retry-After; anything else is raised at once, untried again."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from core.db import Database, UnitOfWork
from core.errors import ServiceUnavailable


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _locked() -> OperationalError:
    return OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked"))


@pytest.fixture
async def db(tmp_path: Path) -> Any:
    d = Database(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}", retries_max=3)
    yield d
    await d.dispose()


async def test_a_transient_conflict_is_retried_and_each_retry_is_logged(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0

    async def flaky(uow: UnitOfWork) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise _locked()
        if calls == 2:
            raise DBAPIError("UPDATE", {}, _PgError("40001"))
        return "done"

    with caplog.at_level(logging.INFO, logger="greenrights.db"):
        assert await db.run(flaky) == "done"
    assert calls == 3
    lines = [r.getMessage() for r in caplog.records if r.name == "greenrights.db"]
    assert len(lines) == 2
    assert "database is locked" in lines[0] and "retry 1" in lines[0]
    assert "SQLSTATE 40001" in lines[1] and "retry 2" in lines[1]


async def test_retries_run_out_after_retries_max_and_answer_503(db: Database) -> None:
    calls = 0

    async def always(uow: UnitOfWork) -> None:
        nonlocal calls
        calls += 1
        raise DBAPIError("UPDATE", {}, _PgError("40P01"))

    with pytest.raises(ServiceUnavailable) as raised:
        await db.run(always)
    assert calls == 4  # the first try and three retries
    assert raised.value.headers == {"Retry-After": "1"}
    assert isinstance(raised.value.__cause__, DBAPIError)


async def test_no_retries_when_retries_max_is_zero(tmp_path: Path) -> None:
    d = Database(f"sqlite+aiosqlite:///{tmp_path / 'z.db'}", retries_max=0)
    calls = 0

    async def always(uow: UnitOfWork) -> None:
        nonlocal calls
        calls += 1
        raise _locked()

    try:
        with pytest.raises(ServiceUnavailable):
            await d.run(always)
    finally:
        await d.dispose()
    assert calls == 1


async def test_other_errors_are_raised_at_once(db: Database) -> None:
    calls = 0

    async def refused(uow: UnitOfWork) -> None:
        nonlocal calls
        calls += 1
        raise IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed"))

    with pytest.raises(IntegrityError):
        await db.run(refused)
    assert calls == 1

    async def wrong(uow: UnitOfWork) -> None:
        nonlocal calls
        calls += 1
        raise ValueError("not the database's fault")

    with pytest.raises(ValueError):
        await db.run(wrong)
    assert calls == 2
