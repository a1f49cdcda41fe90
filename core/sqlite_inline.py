"""SQLite for the async engine without a thread hop per statement: the stdlib `sqlite3` driver called in place.

SQLite is a library in the process, not a server: a primary-key read costs about 4 µs in `sqlite3` itself. Through
aiosqlite each statement is handed to the connection's thread and its answer back to the event loop, and those two
hand-offs cost 150-300 µs, most of it waiting for the other thread to be scheduled; a transfer of eight statements
spent more time passing them between threads than running them. So the async engine on SQLite runs the stdlib
driver directly, in the greenlet that SQLAlchemy's asyncio layer already runs every statement in, and keeps off
the event loop only what can take long:

- COMMIT, which fsyncs the WAL (`synchronous=FULL`), runs in a worker thread (`asyncio.to_thread`; `sqlite3`
  releases the GIL while it waits for the disk), so other requests go on meanwhile;
- BEGIN IMMEDIATE never sleeps in SQLite's busy handler (that would stop the loop): the connection's busy timeout
  is short, and while another process holds the write lock the begin is retried after `asyncio.sleep`s until the
  database's busy timeout has passed (this process's own writers already queue in `core.db`'s write queue).

A statement itself runs on the loop; long analytical reads (a province-year report) stop other requests for their
duration, which a SQLite deployment accepts (docs/scaling.md: PostgreSQL is the production database).

The dialect is registered as `sqlite+greenrights`; `core.db` builds SQLite engines on it (`sqlite+aiosqlite`
URLs keep working everywhere else: Alembic, tools and users' settings name the database, not the driver).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

from sqlalchemy import pool
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.util import await_

DRIVER = "greenrights"
# How long one BEGIN IMMEDIATE may wait in SQLite's busy handler, blocking the loop: a lock held by another
# process is waited for with asyncio sleeps instead (`begin`).
INLINE_BUSY_MS = 20


async def _ready() -> None:
    return None


class _Cursor(sqlite3.Cursor):
    # SQLAlchemy's `AsyncConnection.execute` checks that the driver awaited something (a sync driver by mistake
    # would block the loop); this driver runs in place by design, so each statement passes through one await that
    # is ready at once (a greenlet switch, about a microsecond).
    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        await_(_ready())
        return super().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> Any:
        await_(_ready())
        return super().executemany(sql, seq_of_parameters)

    async def _async_soft_close(self) -> None:
        """What SQLAlchemy's asyncio layer calls before a result leaves the greenlet (an adapted driver's cursor
        fetches its rows there); this cursor is read in place, before or after, so there is nothing to do."""


class _Connection(sqlite3.Connection):
    def cursor(self, factory: Any = _Cursor) -> Any:
        return super().cursor(factory)


class SQLiteDialect_inline(SQLiteDialect_pysqlite):
    driver = DRIVER
    is_async = True
    supports_statement_cache = True
    has_terminate = False

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        return pool.AsyncAdaptedQueuePool if cls._is_url_file_db(url) else pool.StaticPool

    def create_connect_args(self, url: URL) -> Any:
        args, kwargs = super().create_connect_args(url)
        # The connection is used by one task at a time, and its COMMIT runs on a worker thread.
        kwargs["check_same_thread"] = False
        kwargs["factory"] = _Connection
        return args, kwargs

    def do_commit(self, dbapi_connection: Any) -> None:
        if dbapi_connection.in_transaction:
            await_(asyncio.to_thread(dbapi_connection.commit))


def begin(conn: Connection, statement: str, busy_timeout_ms: int) -> None:
    """Run `statement` (BEGIN or BEGIN IMMEDIATE) on `conn`; while another process holds the write lock, retry
    after short asyncio sleeps (the loop goes on) until `busy_timeout_ms` has passed."""
    deadline = time.monotonic() + busy_timeout_ms / 1000
    delay = 0.001
    while True:
        try:
            conn.exec_driver_sql(statement)
            return
        except OperationalError as exc:
            if "locked" not in str(exc.orig) or time.monotonic() >= deadline:
                raise
        await_(asyncio.sleep(delay))
        delay = min(delay * 2, 0.05)


registry.register(f"sqlite.{DRIVER}", __name__, "SQLiteDialect_inline")
