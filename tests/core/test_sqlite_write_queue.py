"""On SQLite the writers of one process queue in the process (core/db.py): sixteen concurrent write units of work
all commit, one at a time, in arrival order, without ever meeting SQLite's lock (proved with a busy timeout of 0
and no retries, where a second writer at the file would fail at once). Readers do not queue behind them, and a
writer that waits past the limit answers 503 having changed nothing.
And `greenrights serve --workers N` refuses more than one process on SQLite, saying why."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core import db as db_module
from core.clock import SystemClock
from core.db import Database, UnitOfWork
from core.errors import ServiceUnavailable
from core.identity import create_organisation
from core.models import Organisation
from server.migrate import create_schema

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def strict_db(tmp_path: Path) -> Database:
    url = f"sqlite+aiosqlite:///{tmp_path / 'q.db'}"
    create_schema(url)
    # No busy waiting and no retries: a writer that met another's lock would fail with 503 at once.
    db = Database(url, retries_max=0, busy_timeout_ms=0)
    yield db  # type: ignore[misc]
    await db.dispose()


async def test_sixteen_concurrent_writers_queue_in_arrival_order_and_all_commit(strict_db: Database) -> None:
    inside = 0
    most_inside = 0
    order: list[int] = []

    async def work(uow: UnitOfWork, i: int) -> int:
        nonlocal inside, most_inside
        inside += 1
        most_inside = max(most_inside, inside)
        order.append(i)
        org = await create_organisation(uow.session, f"q-{i}", "test", SystemClock().now())
        await asyncio.sleep(0.005)  # hold the transaction open across an await, as a real service does
        inside -= 1
        return org.id or 0

    ids = await asyncio.gather(*(strict_db.run(work, i) for i in range(16)))
    assert len(set(ids)) == 16
    assert most_inside == 1
    assert order == list(range(16))

    async def count(uow: UnitOfWork) -> int:
        return int((await uow.session.execute(select(func.count()).select_from(Organisation))).scalar_one())

    assert await strict_db.read(count) == 16


async def test_a_reader_does_not_wait_for_the_write_queue(strict_db: Database) -> None:
    release = asyncio.Event()
    holding = asyncio.Event()

    async def writer(uow: UnitOfWork) -> None:
        await create_organisation(uow.session, "held", "test", SystemClock().now())
        holding.set()
        await release.wait()

    async def reader(uow: UnitOfWork) -> int:
        return int((await uow.session.execute(select(func.count()).select_from(Organisation))).scalar_one())

    task = asyncio.create_task(strict_db.run(writer))
    await asyncio.wait_for(holding.wait(), 5)
    assert await asyncio.wait_for(strict_db.read(reader), 5) == 0  # WAL: the last committed state, at once
    release.set()
    await task
    assert await strict_db.read(reader) == 1


async def test_a_writer_that_waits_past_the_limit_gets_503_and_changes_nothing(
    strict_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "WRITE_WAIT_S_MAX", 0.05)
    release = asyncio.Event()
    holding = asyncio.Event()

    async def writer(uow: UnitOfWork, name: str) -> None:
        await create_organisation(uow.session, name, "test", SystemClock().now())
        holding.set()
        await release.wait()

    first = asyncio.create_task(strict_db.run(writer, "first"))
    await asyncio.wait_for(holding.wait(), 5)
    with pytest.raises(ServiceUnavailable):
        await strict_db.run(writer, "second")
    release.set()
    await first

    async def names(uow: UnitOfWork) -> list[str]:
        return list((await uow.session.execute(select(Organisation.name))).scalars().all())

    assert await strict_db.read(names) == ["first"]


def test_serve_refuses_several_workers_on_sqlite(tmp_path: Path) -> None:
    env = {**os.environ, "GREENRIGHTS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'g.db'}"}
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--workers", "2", "--port", "1"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--workers 2 refused: SQLite serves from one process" in done.stderr
