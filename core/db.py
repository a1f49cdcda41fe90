"""The database: one async engine per process, and units of work that commit once or not at all.

SQLite is the embedded default: WAL, foreign keys on, a busy timeout, `synchronous=FULL` (the ledger must not
lose an acknowledged transfer), and write transactions that begin with `BEGIN IMMEDIATE` so that two writers
queue for the lock instead of failing half way. PostgreSQL is production: balance rows are changed with
conditional updates in sorted key order, and a whole unit of work is retried on serialization failures and
deadlocks (SQLSTATE 40001 / 40P01) with bounded jittered backoff; when retries run out the caller gets 503 with
Retry-After. A lost connection also answers 503: the transaction never committed, so nothing changed. The retry
policy is tenacity's (`_retrying`): at most `retries_max` retries, full jitter in a window of 0.01 * 2**n s before
the n-th retry, and one log line (logger `greenrights.db`) per retry.

On SQLite the writers of one process also queue in the process: a write unit of work holds an asyncio lock (one
per event loop) for the whole transaction, so sixteen concurrent writers wait their turn in FIFO order instead of
polling SQLite's busy handler (whose sleeps grow to 100 ms and made p99 latency seconds). BEGIN IMMEDIATE and the
busy timeout still order writers of other processes (the CLI, a separate scheduler). Readers take no lock.

A request may hand the first writing unit of work of its task a `Rider` (through `riding`): work that must commit
with it, run first in its transaction. The HTTP edge uses it to claim the Idempotency-Key in the same transaction
as the service's effect (core/http.py). The rider shares the unit of work's fate: when the unit of work fails (a
4xx refusal included) nothing of either commits, and the rider rides again in the next writing unit of work.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import CursorResult, Engine, Result, Row
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.sql import Executable
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from core import prepared, sqlite_inline
from core.errors import ServiceUnavailable
from core.events import pending as outbox_pending

if TYPE_CHECKING:
    from core.replica import ReadReplica

T = TypeVar("T")

log = logging.getLogger("greenrights.db")

# Read-only units of work on SQLite begin with a deferred BEGIN so that readers do not queue behind writers.
_sqlite_begin: contextvars.ContextVar[str] = contextvars.ContextVar("_sqlite_begin", default="BEGIN IMMEDIATE")

RETRYABLE_SQLSTATES = {"40001", "40P01"}

# The longest a SQLite writer waits for its turn in the process's write queue before answering 503.
WRITE_WAIT_S_MAX = 30.0


def async_url(url: str) -> str:
    """Normalise a database URL to the async driver we ship (aiosqlite or psycopg 3)."""
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def sync_url(url: str) -> str:
    """The same database for synchronous tools (Alembic): psycopg 3 serves both; SQLite uses the stdlib."""
    url = async_url(url)
    if url.startswith("sqlite+aiosqlite:///"):
        return "sqlite:///" + url[len("sqlite+aiosqlite:///") :]
    return url


def engine_url(url: str) -> str:
    """The URL the async engine is built on: SQLite runs inline (`core.sqlite_inline`), not through aiosqlite."""
    if url.startswith("sqlite+aiosqlite:"):
        return f"sqlite+{sqlite_inline.DRIVER}:" + url[len("sqlite+aiosqlite:") :]
    return url


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _install_sqlite_pragmas(engine: Engine, busy_timeout_ms: int) -> None:
    inline = engine.dialect.driver == sqlite_inline.DRIVER

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself, so that we choose IMMEDIATE for writers.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # The full busy timeout while the connection is set up (switching a file to WAL needs its lock; a new
        # pooled connection is rare, so a wait here is too).
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
        if inline:
            # Then a short one: a long wait in SQLite's busy handler would stop the event loop; BEGIN waits for
            # another process's lock in asyncio instead (`sqlite_inline.begin`).
            cursor.execute(f"PRAGMA busy_timeout={min(sqlite_inline.INLINE_BUSY_MS, int(busy_timeout_ms))}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if inline:
            sqlite_inline.begin(conn, _sqlite_begin.get(), busy_timeout_ms)
        else:
            conn.exec_driver_sql(_sqlite_begin.get())


# psycopg prepares a statement on the server once it has run it five times, and keeps the `prepared_max` most
# recently used (100 by default; the oldest is deallocated). The application runs some dozens of statements often
# (its prepared ones and the ORM's), and a batch's multi-row INSERTs add up to a dozen sizes a table
# (`core.prepared._Rows`): room for all of them.
PG_PREPARED_MAX = 512


def _install_postgres_settings(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.driver_connection.prepared_max = PG_PREPARED_MAX


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


def is_retryable(exc: BaseException) -> bool:
    if not isinstance(exc, DBAPIError):
        return False
    if _sqlstate(exc) in RETRYABLE_SQLSTATES:
        return True
    # SQLite reports lock contention that outlived busy_timeout this way.
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    state_code = _sqlstate(exc) if exc is not None else None
    log.info(
        "database conflict (%s); unit of work retry %d in %.3f s",
        f"SQLSTATE {state_code}" if state_code else "database is locked",
        state.attempt_number,
        state.next_action.sleep if state.next_action is not None else 0.0,
    )


def _retrying(retries_max: int) -> AsyncRetrying:
    """The retry policy of a unit of work: what `is_retryable` accepts, at most `retries_max` times, with full
    jitter (before the n-th retry a uniform wait in [0, 0.01 * 2**n] s, so colliding writers do not collide again
    in step); the last error is raised as it came, for `_unavailable` to answer."""
    return AsyncRetrying(
        stop=stop_after_attempt(retries_max + 1),
        wait=wait_random_exponential(multiplier=0.02),
        retry=retry_if_exception(is_retryable),
        before_sleep=_log_retry,
        reraise=True,
    )


def _unavailable(exc: DBAPIError) -> Exception:
    """The answer to a database error the retries did not overcome: 503 for contention and lost connections (the
    transaction never committed), the error itself otherwise."""
    if is_retryable(exc):
        return ServiceUnavailable("The database is busy; retry shortly.", retry_after_s=1)
    if is_connection_loss(exc):
        return ServiceUnavailable("The database connection was lost; nothing was changed.")
    return exc


def is_connection_loss(exc: BaseException) -> bool:
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    state = _sqlstate(exc) or ""
    return state.startswith("08") or state in {"57P01", "57P02", "57P03"}


@dataclass
class UnitOfWork:
    """One transaction. Services write through `session`; audit events are appended last, just before commit,
    so that the audit chain's head row is the last lock a transaction takes (no lock-order deadlocks)."""

    session: AsyncSession
    audit_events: list[dict[str, Any]] = field(default_factory=list)

    def audit(self, actor: str, action: str, entity: str, entity_id: str, data: dict[str, Any]) -> None:
        self.audit_events.append(
            {"actor": actor, "action": action, "entity": entity, "entity_id": entity_id, "data": data}
        )


AuditFlusher = Callable[[UnitOfWork], Awaitable[None]]


class Rider(Protocol):
    """Work that commits with the first writing unit of work of one request (see the module docstring)."""

    def wants(self, db: Database) -> bool:
        """True while this rider still needs a ride in a unit of work of `db` run by the current task."""
        ...

    async def board(self, session: AsyncSession) -> None:
        """Its statements, first in the transaction; raises (an AppError) to refuse the unit of work."""
        ...

    def committed(self) -> None:
        """The transaction it rode in has committed."""
        ...


_rider: contextvars.ContextVar[Rider | None] = contextvars.ContextVar("_rider", default=None)


@asynccontextmanager
async def riding(rider: Rider) -> AsyncIterator[None]:
    """Offer `rider` to the writing units of work run inside this block (by this task; the rider decides)."""
    token = _rider.set(rider)
    try:
        yield
    finally:
        _rider.reset(token)


def _rows(result: Result[Any]) -> list[Row[Any]]:
    if isinstance(result, CursorResult) and not result.returns_rows:
        return []
    return list(result.all())


@dataclass
class _WriteQueue:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    holder: asyncio.Task[Any] | None = None


class Database:
    def __init__(self, url: str, *, retries_max: int = 5, busy_timeout_ms: int = 10_000, echo: bool = False) -> None:
        self.url = async_url(url)
        self.sqlite = is_sqlite(self.url)
        self.retries_max = retries_max
        kwargs: dict[str, Any] = {"echo": echo}
        if not self.sqlite:
            kwargs.update(pool_size=20, max_overflow=20, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(engine_url(self.url), **kwargs)
        if self.sqlite:
            _install_sqlite_pragmas(self.engine.sync_engine, busy_timeout_ms)
        else:
            _install_postgres_settings(self.engine.sync_engine)
        event.listen(self.engine.sync_engine, "before_cursor_execute", prepared.count_writes)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        self.audit_flusher: AuditFlusher | None = None
        # A streaming replica for the reads of GET requests (core/replica.py); None: every read on this engine.
        self.replica: ReadReplica | None = None
        # SQLite: the in-process write queue, one per event loop (a lock cannot be shared across loops, and tests
        # drive one database from two).
        self._write_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _WriteQueue] = (
            weakref.WeakKeyDictionary()
        )

    @asynccontextmanager
    async def _write_turn(self, readonly: bool) -> AsyncIterator[None]:
        """On SQLite, wait for this process's turn to write (FIFO); reads, other databases and a nested write in
        the task that holds the turn go at once."""
        task = asyncio.current_task()
        if readonly or not self.sqlite or task is None:
            yield
            return
        loop = asyncio.get_running_loop()
        queue = self._write_queues.get(loop)
        if queue is None:
            queue = self._write_queues[loop] = _WriteQueue()
        if queue.holder is task:
            yield
            return
        try:
            async with asyncio.timeout(WRITE_WAIT_S_MAX):
                await queue.lock.acquire()
        except TimeoutError:
            # A limit on the wait (a writer that waits on a task of its own would otherwise wait for ever); nothing
            # has been done yet, so the client may retry.
            raise ServiceUnavailable("The database is busy; retry shortly.", retry_after_s=1) from None
        queue.holder = task
        try:
            yield
        finally:
            queue.holder = None
            queue.lock.release()

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any, readonly: bool = False, **kwargs: Any) -> T:
        """Run `fn(uow, *args, **kwargs)` as one transaction, retrying the whole of it on transient conflicts."""
        try:
            return await _retrying(self.retries_max)(self._once, fn, args, kwargs, readonly)
        except DBAPIError as exc:
            answer = _unavailable(exc)
            if answer is exc:
                raise
            raise answer from exc

    async def _once(self, fn: Callable[..., Awaitable[T]], args: Any, kwargs: Any, readonly: bool) -> T:
        """One try of a unit of work: its rider (if it still wants one), its turn to write, its transaction."""
        rider = None if readonly else _rider.get()
        if rider is not None and not rider.wants(self):
            rider = None
        token = _sqlite_begin.set("BEGIN" if readonly else "BEGIN IMMEDIATE")
        try:
            async with self._write_turn(readonly):
                result = await self._attempt(fn, args, kwargs, readonly=readonly, rider=rider)
        finally:
            _sqlite_begin.reset(token)
        if rider is not None:
            rider.committed()
        if not readonly and self.replica is not None:
            self.replica.wrote()
        return result

    async def attempt(
        self, sessions: async_sessionmaker[AsyncSession], fn: Callable[..., Awaitable[T]], args: Any, kwargs: Any
    ) -> T:
        """One read-only try of `fn` in a session of `sessions` (another engine: the read replica), no retries."""
        return await self._attempt(fn, args, kwargs, readonly=True, rider=None, sessions=sessions)

    async def _attempt(
        self,
        fn: Callable[..., Awaitable[T]],
        args: Any,
        kwargs: Any,
        *,
        readonly: bool,
        rider: Rider | None,
        sessions: async_sessionmaker[AsyncSession] | None = None,
    ) -> T:
        async with (sessions or self.sessions)() as session, session.begin():
            if readonly and not self.sqlite:
                # A read sees one snapshot (a balance and its serial blocks agree); SQLite's read
                # transaction already is one.
                await session.connection(
                    execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
                )
            uow = UnitOfWork(session)
            if rider is not None:
                await rider.board(session)
            # A unit of work nested in this one (same task) does not take the rider a second time.
            token = _rider.set(None)
            try:
                result = await fn(uow, *args, **kwargs)
            finally:
                _rider.reset(token)
            if (uow.audit_events or outbox_pending(session)) and self.audit_flusher is not None:
                await self.audit_flusher(uow)
        return result

    async def read(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """A read-only unit of work; a GET request's may be served by the read replica (core/replica.py)."""
        if self.replica is not None:
            return await self.replica.read(self, fn, args, kwargs)
        return await self.run(fn, *args, readonly=True, **kwargs)

    async def execute_once(
        self, statement: Executable, params: dict[str, Any] | None = None, *, readonly: bool = False
    ) -> list[Row[Any]]:
        """One statement as a transaction of its own; its rows (none for a write without RETURNING).

        On PostgreSQL it runs on an autocommit connection: one round trip, no BEGIN/COMMIT (nor the snapshot
        settings of `read`, which one statement does not need). On SQLite it is a unit of work like any other
        (a deferred read, or a write in the process's write queue)."""
        if self.sqlite:

            async def one(uow: UnitOfWork) -> list[Row[Any]]:
                return _rows(await uow.session.execute(statement, params))

            return await self.run(one, readonly=readonly)

        async def autocommit() -> list[Row[Any]]:
            async with self.engine.connect() as conn:
                auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
                return _rows(await auto.execute(statement, params))

        try:
            return await _retrying(self.retries_max)(autocommit)
        except DBAPIError as exc:
            answer = _unavailable(exc)
            if answer is exc:
                raise
            raise answer from exc

    async def dispose(self) -> None:
        if self.replica is not None:
            await self.replica.dispose()
        await self.engine.dispose()
