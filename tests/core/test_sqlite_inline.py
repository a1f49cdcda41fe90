"""SQLite runs inline (core/sqlite_inline.py): statements in the event loop's thread, no aiosqlite thread hop. What
could make that wrong is a wait that stops the loop, so: while another connection (another process, as far as
SQLite knows) holds the write lock, a writer's BEGIN IMMEDIATE waits in asyncio and the loop keeps serving; when
the lock is released the writer commits; when it is held past the busy timeout the writer answers 503 having
changed nothing. And COMMIT, the one statement that waits for the disk, runs off the loop's thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import event, func, select

from core.clock import SystemClock
from core.db import Database, UnitOfWork
from core.errors import ServiceUnavailable
from core.identity import create_organisation
from core.models import Organisation
from server.migrate import create_schema


@pytest.fixture
def path(tmp_path: Path) -> Path:
    create_schema(f"sqlite+aiosqlite:///{tmp_path / 'i.db'}")
    return tmp_path / "i.db"


async def _count(db: Database) -> int:
    async def count(uow: UnitOfWork) -> int:
        return int((await uow.session.execute(select(func.count()).select_from(Organisation))).scalar_one())

    return await db.read(count)


async def _add(uow: UnitOfWork, name: str) -> int:
    return (await create_organisation(uow.session, name, "test", SystemClock().now())).id or 0


async def _ticks_while(coro: object, interval: float = 0.005) -> tuple[object, int]:
    """Run `coro` beside a ticker; how many ticks the loop served meanwhile."""
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            await asyncio.sleep(interval)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        result = await coro  # type: ignore[misc]
    finally:
        done.set()
        await task
    return result, ticks


async def test_the_engine_runs_the_stdlib_driver_in_place(path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        assert db.engine.dialect.driver == "greenrights"
        threads: list[tuple[str, int]] = []

        @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
        def on_statement(*_: object) -> None:
            threads.append(("statement", threading.get_ident()))

        assert await db.run(_add, "inline") > 0
        assert threads and {t for _, t in threads} == {threading.get_ident()}
        assert await _count(db) == 1
    finally:
        await db.dispose()


async def test_a_writer_waits_for_another_process_lock_without_stopping_the_loop(path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{path}", busy_timeout_ms=5_000)
    assert await _count(db) == 0  # this process's first connection has switched the file to WAL
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # the other process's write transaction
        asyncio.get_running_loop().call_later(0.3, other.execute, "COMMIT")
        org_id, ticks = await _ticks_while(db.run(_add, "after the lock"))
        assert org_id > 0
        # About 0.3 s of waiting at 5 ms a tick: the loop went on (a blocked loop would have served none).
        assert ticks >= 10
        assert await _count(db) == 1
    finally:
        other.close()
        await db.dispose()


async def test_a_lock_held_past_the_busy_timeout_answers_503_and_changes_nothing(path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{path}", retries_max=0, busy_timeout_ms=200)
    assert await _count(db) == 0
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(ServiceUnavailable):
            await _ticks_while(db.run(_add, "never"))
        other.execute("ROLLBACK")
        assert await _count(db) == 0
    finally:
        other.close()
        await db.dispose()


async def test_commit_waits_for_the_disk_off_the_loop_thread(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = Database(f"sqlite+aiosqlite:///{path}")
    committed_on: list[int] = []
    real_to_thread = asyncio.to_thread

    async def to_thread(fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        def run():  # type: ignore[no-untyped-def]
            committed_on.append(threading.get_ident())
            return fn(*args, **kwargs)

        return await real_to_thread(run)

    monkeypatch.setattr(asyncio, "to_thread", to_thread)
    try:
        await db.run(_add, "durable")
        assert committed_on and threading.get_ident() not in committed_on
        # Committed for real: a separate connection sees the row.
        with sqlite3.connect(path) as fresh:
            assert fresh.execute("SELECT count(*) FROM organisation").fetchone()[0] == 1
    finally:
        await db.dispose()
