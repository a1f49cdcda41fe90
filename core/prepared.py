"""Hot statements compiled once and run straight on the driver's cursor, inside the session's transaction.

A statement sent through `AsyncSession.execute` costs about 30 µs of SQLAlchemy's machinery (an execution context,
parameter construction, a result object, the asyncio adaptation) before the database sees it; `sqlite3` itself
runs a primary-key UPDATE in about 1 µs. The ledger's transfers and resolutions and the market's order path send
the same dozen statements over and over, so those are `Prepared`: built with SQLAlchemy Core as before, compiled
once per dialect (and, for an INSERT, per set of columns), and then only their parameters are bound, with the
type's own bind processors, and passed to the driver connection that the session's transaction already holds.

`many` of an INSERT on PostgreSQL sends the rows in a few multi-row statements (`_Rows`) rather than psycopg's
executemany, which sends and answers each row on its own.

What stays as it was: the SQL (the compiler's, not hand-written), the transaction and its savepoints (the
statements run on the session's connection, so a savepoint's rollback undoes them), errors (a driver error is
raised as SQLAlchemy's `DBAPIError` subclass, as `session.execute` would: `IntegrityError`, `OperationalError`,
with the SQLSTATE the retry policy reads), and the `before_cursor_execute` event (statement counters in the tests
and benchmarks see every statement). What is not supported, and refused when the statement is compiled: IN lists
expanded at execution (`in_([...])` of a bound list) and column defaults computed in Python.

The session factory does not autoflush (`core.db`), so a prepared statement, like `session.execute` there, does not
flush pending ORM objects first; the hot paths write with Core only. Beside it: `savepoint`, a savepoint set with
SQL rather than through the ORM, and `plain_row`, a table's columns as a plain dataclass for rows the hot path
builds.
"""

from __future__ import annotations

import re
import sqlite3
from collections import namedtuple
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, make_dataclass
from operator import itemgetter
from typing import Any

import psycopg
from sqlalchemy import Integer, bindparam, func, select
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Insert, sqltypes
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

_CONNECTION = "core.prepared.connection"
_SAVEPOINTS = "core.prepared.savepoints"


class SavepointFailed(Exception):
    """The transaction could not be rolled back to a savepoint: nothing of it can be trusted any more."""


@dataclass(frozen=True)
class _Compiled:
    sql: str
    # Positional paramstyles (SQLite's qmark): per placeholder, the parameter's name, or None with a constant.
    positional: tuple[tuple[str | None, Any, Callable[[Any], Any] | None], ...] | None
    # Named paramstyles (psycopg's pyformat): the parameters' names and processors, and the constants.
    named: tuple[tuple[str, Callable[[Any], Any] | None], ...]
    constants: dict[str, Any]
    row: Any  # a namedtuple class for the result's rows, or None when the statement returns none
    result_processors: tuple[Callable[[Any], Any] | None, ...] | None
    # The parameters as the driver takes them (`_binder`): a tuple in placeholder order, or a dict of every bind.
    bind: Callable[[Mapping[str, Any]], Any]
    # PostgreSQL's INSERT: the same statement for many rows at once (`many`), when its VALUES can be repeated.
    rows: _Rows | None = None


class _Rows:
    """An INSERT of one row rewritten for n rows: `INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4), ...` with the
    parameters in one flat list, the compiler's casts kept (`$1::INTEGER`) and a RETURNING clause dropped (`many`
    returns no rows). The placeholders are PostgreSQL's own and the statement goes through psycopg's raw cursor:
    its `%s` form is rewritten by psycopg in Python, and only statements under 4 kB keep their rewriting (measured
    for an INSERT of 192 ledger transfers: 25-37 ms through the `%s` form, 11-18 ms raw, about 9 ms of it the
    server's; executemany of the same rows 17-23 ms).

    On PostgreSQL psycopg's executemany sends the statement once per row, in a pipeline: each row bound, executed
    and answered on its own. One statement for the rows of a batch saves the per-row round of the protocol and
    most of the client's work; the server's work per row (its indexes and foreign keys) stays. `many` sends row
    counts that are powers of two (`_sizes`: 192 rows as 128 + 64), so a table has a dozen such statements at most
    and psycopg prepares the ones used often, as it does any statement: the server then plans each once (an
    unprepared INSERT of 192 ledger transfers spent 2.4 ms planning)."""

    __slots__ = ("_head", "_segments", "_sql", "_tail", "bind", "most", "width")

    def __init__(self, head: str, values: str, tail: str, bind: Callable[[Mapping[str, Any]], Any]):
        self._head, self._tail, self.bind = head, tail, bind
        self._segments = values.split("%s")  # the text around each placeholder of one row
        self.width = len(self._segments) - 1
        # Rows in one statement: the largest power of two within the parameter limit.
        self.most = 1 << max(0, (_MAX_PARAMETERS // max(self.width, 1)).bit_length() - 1)
        self._sql: dict[int, str] = {}

    def sql(self, n: int) -> str:
        found = self._sql.get(n)
        if found is None:
            segments, width, parts = self._segments, self.width, [self._head]
            for row in range(n):
                if row:
                    parts.append(", ")
                for j in range(width):
                    parts.append(f"{segments[j]}${row * width + j + 1}")
                parts.append(segments[width])
            parts.append(self._tail)
            found = self._sql[n] = "".join(parts)
        return found


def _sizes(n: int, most: int) -> list[int]:
    """`n` rows as statements of powers of two, `most` (itself one) as often as it fits, then the remainder's
    binary digits, largest first: 192 -> [128, 64], 100 -> [64, 32, 4]."""
    sizes = [most] * (n // most)
    rest = n % most
    while rest:
        top = 1 << (rest.bit_length() - 1)
        sizes.append(top)
        rest -= top
    return sizes


_MAX_PARAMETERS = 32767  # in one PostgreSQL statement (the protocol's limit is 65535)
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
_RETURNING = re.compile(r"\s+RETURNING\s[\w\s.,]*$")


class Prepared:
    """A Core statement to run often: `await prepared.execute(session, params)`, `await prepared.many(...)`."""

    __slots__ = ("_compiled", "statement")

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: dict[tuple[str, frozenset[str] | None], _Compiled] = {}

    def compiled(self, dialect: Dialect, params: Mapping[str, Any]) -> _Compiled:
        keys = frozenset(params) if isinstance(self.statement, Insert) else None
        found = self._compiled.get((dialect.name, keys))
        if found is None:
            found = self._compiled[(dialect.name, keys)] = _compile(self.statement, dialect, keys)
        return found

    async def execute(self, session: AsyncSession, params: Mapping[str, Any] | None = None) -> list[Any]:
        """Run the statement once with `params`; its rows (namedtuples), or [] when it returns none."""
        params = params or {}
        conn, driver = await _driver(session)
        c = self.compiled(conn.dialect, params)
        rows, _ = await _send(conn, driver, c.sql, c.bind(params))
        return _rows(c, rows)

    async def changed(self, session: AsyncSession, params: Mapping[str, Any] | None = None) -> int:
        """Run a statement that returns no rows (an UPDATE, a DELETE) once; how many rows it changed."""
        params = params or {}
        conn, driver = await _driver(session)
        c = self.compiled(conn.dialect, params)
        _, count = await _send(conn, driver, c.sql, c.bind(params))
        return count

    async def one(self, session: AsyncSession, params: Mapping[str, Any] | None = None) -> Any:
        rows = await self.execute(session, params)
        if len(rows) != 1:
            raise AssertionError(f"expected one row, got {len(rows)}: {self.statement}")
        return rows[0]

    async def scalar(self, session: AsyncSession, params: Mapping[str, Any] | None = None) -> Any:
        """The first column of the first row, or None when there is none."""
        rows = await self.execute(session, params)
        return rows[0][0] if rows else None

    async def many(self, session: AsyncSession, params: Sequence[Mapping[str, Any]]) -> int:
        """Run the statement once per parameter set (the driver's executemany); how many rows it changed in all."""
        if not params:
            return 0
        conn, driver = await _driver(session)
        c = self.compiled(conn.dialect, params[0])
        if c.rows is not None and len(params) > 1:
            return await _insert_rows(conn, driver, c.rows, params)
        bind = c.bind
        _, count = await _send(conn, driver, c.sql, [bind(p) for p in params], many=True)
        return count


async def _insert_rows(conn: Connection, driver: Any, rows: _Rows, params: Sequence[Mapping[str, Any]]) -> int:
    """`many` of a PostgreSQL INSERT: multi-row statements of the sizes `_sizes` gives, in order."""
    count, bind, start = 0, rows.bind, 0
    for size in _sizes(len(params), rows.most):
        flat = [value for p in params[start : start + size] for value in bind(p)]
        _, changed = await _send(conn, driver, rows.sql(size), flat, raw=True)
        count += changed
        start += size
    return count


async def _send(
    conn: Connection, driver: Any, sql: str, bound: Any, *, many: bool = False, raw: bool = False
) -> tuple[list[Any], int]:
    """Send one statement (or one executemany) to the driver: the rows it returned and the rows it changed.
    `raw` (PostgreSQL): `sql` has PostgreSQL's own placeholders ($1) and goes through psycopg's raw cursor."""
    _before(conn, sql, bound, many)
    if conn.dialect.name == "sqlite":
        try:
            cursor = sqlite3.Cursor(driver)
            if many:
                cursor.executemany(sql, bound)
                return [], cursor.rowcount
            cursor.execute(sql, bound)
            return (cursor.fetchall() if cursor.description else []), cursor.rowcount
        except sqlite3.Error as exc:
            raise _wrapped(conn, sql, bound, exc) from exc
    try:
        if raw:
            async with psycopg.AsyncRawCursor(driver) as raw_cursor:
                await raw_cursor.execute(sql, bound)
                return [], raw_cursor.rowcount
        async with driver.cursor() as cursor:
            if many:
                await cursor.executemany(sql, bound)
                return [], cursor.rowcount
            await cursor.execute(sql, bound)
            return (await cursor.fetchall() if cursor.description else []), cursor.rowcount
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _wrapped(conn, sql, bound, exc) from exc


_RESERVED = "core.prepared.reserved"
_HIGHEST_ID: dict[str, Prepared] = {}  # per table: its highest id (SQLite's `reserve_ids`)
_NEXT_IDS: dict[str, Prepared] = {}  # per table: `count` values of its id sequence (PostgreSQL's)


async def reserve_ids(session: AsyncSession, table: Any, count: int) -> list[int]:
    """`count` ids for new rows of `table` (an integer primary key `id`), taken ahead so that a row can be written
    once, whole, when everything it holds is known, and other rows can name it before.

    PostgreSQL: from the column's sequence (one statement; an id of a row never written is a gap, as with any
    rolled-back insert). SQLite: after the table's highest id, counted on in this transaction, which as SQLite's
    one writer is the only one adding rows until it commits (a row it adds without an id of its own takes the
    highest id plus one as well, so it must not add any between a reservation and the rows that use it)."""
    if count <= 0:
        return []
    if session.bind is not None and session.bind.dialect.name == "sqlite":
        reserved = session.sync_session.info.setdefault(_RESERVED, {})
        last = reserved.get(table.name)
        if last is None:
            highest = _HIGHEST_ID.get(table.name)
            if highest is None:
                highest = _HIGHEST_ID[table.name] = Prepared(select(func.coalesce(func.max(table.c.id), 0)))
            last = int(await highest.scalar(session))
        reserved[table.name] = last + count
        return list(range(last + 1, last + count + 1))
    taken = _NEXT_IDS.get(table.name)
    if taken is None:
        sequence = func.pg_get_serial_sequence(table.name, "id")
        taken = _NEXT_IDS[table.name] = Prepared(
            select(func.nextval(sequence)).select_from(func.generate_series(1, bindparam("count", type_=Integer)))
        )
    return [int(i) for (i,) in await taken.execute(session, {"count": count})]


class IdsAhead:
    """Ids for a unit of work's new rows of one table, taken ahead (`reserve_ids`) in blocks that start at `first`
    and double up to `most`. SQLite counts them in memory; PostgreSQL takes them from the table's sequence in one
    statement, and what the unit of work leaves unused is a gap in the ids, so the blocks start small."""

    __slots__ = ("_block", "_ids", "_most", "_table")

    def __init__(self, table: Any, first: int = 16, most: int = 256) -> None:
        self._table, self._block, self._most = table, first, most
        self._ids: list[int] = []  # the next last

    async def next(self, session: AsyncSession) -> int:
        if not self._ids:
            self._ids = (await reserve_ids(session, self._table, self._block))[::-1]
            self._block = min(2 * self._block, self._most)
        return self._ids.pop()


def plain_row(table: Any, name: str) -> type:
    """A slotted dataclass with a table's columns as fields (defaults: the columns' constant defaults, else None):
    what a hot path builds and reads instead of a mapped object, whose construction runs the ORM's and pydantic's
    machinery per attribute (an `Order` 50–54 µs, an `OrderRow` 0.5 µs, measured). It is never added to a session:
    the path writes it with prepared statements, and its attributes read like the model's."""
    fields = []
    for column in table.columns:
        default = column.default.arg if column.default is not None and column.default.is_scalar else None
        fields.append((column.key, Any, field(default=default)))
    return make_dataclass(name, fields, slots=True)


@asynccontextmanager
async def savepoint(session: AsyncSession) -> AsyncIterator[None]:
    """A savepoint set and released with SQL on the session's connection (measured on SQLite: 8–13 µs, against
    136–141 µs for the ORM's `begin_nested()` with its SAVEPOINT and RELEASE; a batch of order commands sets one per
    command). When the block raises, the transaction rolls back to the savepoint and the exception goes on.

    The ORM does not know of it, so: pending ORM changes are flushed before it is set (they belong to what came
    before), and when it rolls back every object is expunged from the session (an object the block flushed may
    describe a row that no longer is; detached objects keep the values they had, and the next read loads the
    rows afresh)."""
    sync = session.sync_session
    if sync.new or sync.dirty or sync.deleted:
        await session.flush()
    conn, driver = await _driver(session)
    n = sync.info[_SAVEPOINTS] = sync.info.get(_SAVEPOINTS, 0) + 1
    name = f"gr_savepoint_{n}"
    await _plain(conn, driver, f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        try:
            await _plain(conn, driver, f"ROLLBACK TO SAVEPOINT {name}")
            await _plain(conn, driver, f"RELEASE SAVEPOINT {name}")
        except DBAPIError as lost:
            raise SavepointFailed(f"rollback to {name} failed") from lost
        sync.expunge_all()
        raise
    await _plain(conn, driver, f"RELEASE SAVEPOINT {name}")


_WRITES = "core.prepared.writes"


def count_writes(conn: Connection, _cursor: Any, statement: str, *_: Any) -> None:
    """A `before_cursor_execute` listener (`core.db` installs it on every engine): counts, per connection, the
    statements that may change the database, which is every one but a SELECT (BEGIN and SAVEPOINT included: the
    count only has to grow whenever something might have been written)."""
    if statement.lstrip()[:6].upper() != "SELECT":
        info = conn.info
        info[_WRITES] = info.get(_WRITES, 0) + 1


async def writes(session: AsyncSession) -> int:
    """How many statements that may write the session's connection has sent (`count_writes`): a command that
    raised is undone in memory alone when this did not grow while it ran (`trading.books`)."""
    conn, _ = await _driver(session)
    found: int = conn.info.get(_WRITES, 0)
    return found


async def _plain(conn: Connection, driver: Any, sql: str) -> None:
    """One statement without parameters or rows."""
    await _send(conn, driver, sql, ())


async def plain(session: AsyncSession, sql: str) -> None:
    """Run one statement without parameters or rows (a PRAGMA) in the session's transaction, past the ORM."""
    conn, driver = await _driver(session)
    await _plain(conn, driver, sql)


def _compile(statement: ClauseElement, dialect: Dialect, keys: frozenset[str] | None) -> _Compiled:
    compiled = statement.compile(dialect=dialect, column_keys=None if keys is None else sorted(keys))
    assert isinstance(compiled, SQLCompiler)
    processors: dict[str, Any] = {
        name: _memoised(proc) if callable(proc) and _is_temporal(compiled.binds[name].type) else proc
        for name, proc in compiled._bind_processors.items()
    }

    def processed(name: str, value: Any) -> Any:
        proc = processors.get(name)
        return proc(value) if proc is not None and value is not None else value

    constants: dict[str, Any] = {}
    # Columns left out of an INSERT take their default, when it is a constant (SQLModel's field defaults are).
    for column in [*compiled.insert_prefetch, *compiled.update_prefetch]:
        default = column.default if column in compiled.insert_prefetch else column.onupdate
        if default is None or not default.is_scalar:
            raise NotImplementedError(f"prepared statements take no computed default; pass {column.key}")
        constants[column.key] = processed(column.key, default.arg)  # type: ignore[attr-defined]
    for name, bind in compiled.binds.items():
        if bind.expanding:
            raise NotImplementedError(f"prepared statements do not expand IN lists ({name})")
        if name not in constants and not bind.required and (keys is None or name not in keys):
            constants[name] = processed(name, bind.effective_value)
    positional = None
    if compiled.positiontup is not None:
        positional = _placeholders(compiled.positiontup, constants, processors)
    named = tuple((name, processors.get(name)) for name in compiled.binds if name not in constants)
    row: Any = None
    result_processors = None
    if compiled._result_columns:
        keys_out = [keyname for keyname, *_ in compiled._result_columns]
        row = _row_type(keys_out)
        procs = tuple(type_._cached_result_processor(dialect, None) for *_, type_ in compiled._result_columns)
        result_processors = procs if any(p is not None for p in procs) else None
    rows = None
    if isinstance(statement, Insert) and dialect.name == "postgresql":
        rows = _insert_rows_of(compiled.string, named, constants, processors)
    return _Compiled(
        compiled.string,
        positional,
        named,
        constants,
        row,
        result_processors,
        _binder(positional, named, constants),
        rows,
    )


def _insert_rows_of(
    sql: str,
    named: tuple[tuple[str, Callable[[Any], Any] | None], ...],
    constants: dict[str, Any],
    processors: dict[str, Any],
) -> _Rows | None:
    """The compiled one-row INSERT as a `_Rows`, or None when its VALUES tuple cannot simply be repeated (no
    VALUES, a quote or a literal percent sign in it, a parameter outside it)."""
    opening = sql.find(" VALUES (")
    if opening < 0 or "'" in sql or "%%" in sql:
        return None
    start = opening + len(" VALUES ")
    depth, end = 0, -1
    for i in range(start, len(sql)):
        depth += {"(": 1, ")": -1}.get(sql[i], 0)
        if depth == 0:
            end = i + 1
            break
    if end < 0:
        return None
    head, values, tail = sql[:start], sql[start:end], _RETURNING.sub("", sql[end:])
    # DO NOTHING only: a DO UPDATE meeting a row twice in one statement is an error its executemany does not raise.
    plain_tail = not tail or (tail.startswith(" ON CONFLICT") and tail.endswith(" DO NOTHING"))
    if "%" in head or "%" in tail or not plain_tail:
        return None
    order = _PLACEHOLDER.findall(values)
    if len(order) != values.count("%"):
        return None
    positional = _placeholders(order, constants, processors)
    return _Rows(head, _PLACEHOLDER.sub("%s", values), tail, _binder(positional, named, constants))


def _placeholders(
    names: Sequence[str], constants: dict[str, Any], processors: dict[str, Any]
) -> tuple[tuple[str | None, Any, Callable[[Any], Any] | None], ...]:
    """Per placeholder in order, what `_binder` binds: (None, the value) for a constant, else (the parameter's name,
    None, its processor)."""
    return tuple(
        (None, constants[name], None) if name in constants else (name, None, processors.get(name)) for name in names
    )


def _row_type(keys: list[str]) -> Any:
    """A namedtuple class for a statement's rows (made at run time, from the compiled result columns)."""
    return namedtuple("Row", keys, rename=True)


def _is_temporal(type_: Any) -> bool:
    affinity = type_._type_affinity
    return affinity is not None and issubclass(affinity, (sqltypes.DateTime, sqltypes.Date))


def _memoised(proc: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A date or datetime processor that remembers its last value and answer: a command binds its one `now` a
    dozen times over its statements, and formatting it (SQLite's text form, after the UTC type's own conversion)
    is the costliest step of binding. Dates and datetimes are immutable, so the same object gives the same answer."""
    last: list[tuple[Any, Any]] = [(_NOTHING, None)]

    def memo(value: Any) -> Any:
        seen, answer = last[0]  # one (value, answer) pair, replaced whole: safe to share between threads
        if value is seen:
            return answer
        answer = proc(value)
        last[0] = (value, answer)
        return answer

    return memo


_NOTHING = object()


def _binder(
    positional: tuple[tuple[str | None, Any, Callable[[Any], Any] | None], ...] | None,
    named: tuple[tuple[str, Callable[[Any], Any] | None], ...],
    constants: dict[str, Any],
) -> Callable[[Mapping[str, Any]], Any]:
    """The statement's parameter binding, built once: the values are picked with one `itemgetter` (constants
    merged in first, and they win, as they are not parameters), and only the few that have a processor (dates,
    datetimes, JSON) are converted, where they are not None."""
    if positional is not None:
        names = [name if name is not None else f"\0{i}" for i, (name, _, _) in enumerate(positional)]
        fixed = {f"\0{i}": constant for i, (name, constant, _) in enumerate(positional) if name is None}
        procs = tuple((i, proc) for i, (name, _, proc) in enumerate(positional) if name is not None and proc)
    else:
        names = [*(name for name, _ in named), *constants]  # the parameters first, so their index is their place
        fixed = dict(constants)
        procs = tuple((i, proc) for i, (_, proc) in enumerate(named) if proc is not None)
    if not names:
        return lambda _params: () if positional is not None else {}
    pick: Callable[[Mapping[str, Any]], Any]
    if len(names) == 1:
        only = names[0]
        pick = lambda params: (params[only],)  # noqa: E731 - itemgetter of one name answers the value, not a tuple
    else:
        pick = itemgetter(*names)
    if fixed:
        inner = pick
        pick = lambda params: inner({**params, **fixed})  # noqa: E731
    if procs:
        picked = pick

        def pick(params: Mapping[str, Any]) -> Any:
            values = list(picked(params))
            for i, proc in procs:
                value = values[i]
                if value is not None:
                    values[i] = proc(value)
            return values

    if positional is None:
        keys = tuple(names)
        named_pick = pick
        return lambda params: dict(zip(keys, named_pick(params), strict=True))
    return pick


def _rows(c: _Compiled, rows: Iterable[Any]) -> list[Any]:
    if c.row is None:
        return []
    make = c.row._make
    if c.result_processors is None:
        return [make(r) for r in rows]
    procs = c.result_processors
    return [make(v if p is None or v is None else p(v) for p, v in zip(procs, r, strict=True)) for r in rows]


async def _driver(session: AsyncSession) -> tuple[Connection, Any]:
    """The session's connection in its innermost transaction and its driver connection, remembered for that
    transaction's life.

    The innermost transaction, not the outermost: the ORM emits a `begin_nested()`'s SAVEPOINT only when the
    nested transaction first asks for its connection, so a savepoint whose statements were all prepared would
    otherwise never be set, and its rollback would undo nothing."""
    sync = session.sync_session
    transaction = sync.get_nested_transaction() or sync.get_transaction()
    cached = sync.info.get(_CONNECTION)
    if cached is not None and transaction is not None and cached[0] is transaction:
        return cached[1], cached[2]
    conn = (await session.connection()).sync_connection
    assert conn is not None
    driver = conn.connection.driver_connection
    sync.info[_CONNECTION] = (sync.get_nested_transaction() or sync.get_transaction(), conn, driver)
    return conn, driver


def _before(conn: Connection, sql: str, params: Any, many: bool) -> None:
    listeners = conn.dispatch.before_cursor_execute
    if listeners:
        listeners(conn, None, sql, params, None, many)


def _wrapped(conn: Connection, sql: str, params: Any, exc: Exception) -> Exception:
    """The driver's error as `session.execute` raises it (an `IntegrityError`, `OperationalError`... of SQLAlchemy's,
    with the driver's error as `.orig`, and `connection_invalidated` when the dialect sees a lost connection, which
    `core.db` answers with 503; the pool's pre-ping and the unit of work's failed rollback retire the connection)."""
    dialect = conn.dialect
    lost = bool(dialect.is_disconnect(exc, conn.connection.dbapi_connection, None))  # type: ignore[arg-type]
    return DBAPIError.instance(
        sql, params, exc, dialect.loaded_dbapi.Error, connection_invalidated=lost, dialect=dialect
    )
