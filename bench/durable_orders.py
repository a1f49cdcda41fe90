"""Durable order throughput: orders per second through `TradingService.place_order`, end to end.

Every order goes the whole way: the hold on units or funds, the matcher, the journal row under the book's next
sequence number, DVP settlement of any trade through clearing (ledger transfers, serial blocks), the order and
trade rows, the audit entry, and the commit (SQLite: WAL, `synchronous=FULL`) before the caller is answered.
Two figures on one fresh database:

- **sequential**: one caller, one order at a time, on one book; the stream alternates a resting sell and a buy
  that crosses it, so every second order trades. Each order is its own batch, its own commit.
- **concurrent**: `--placers` callers at once (default 64) over `--books` books (default 2), a fixed number of
  orders in all (`--concurrent-orders`), bounded by `--timeout` seconds. Per book half the callers sell and half
  buy, all at one price, so about every second order trades. Commands of a book that arrive together share one
  transaction (group commit, `trading.books.submit`).

Then the run must have left everything sound: `core.ledger.check_invariants` and `TradingService.reconcile()`
are empty. Also printed: the SQL statements of one resting sell and of one crossing buy (each alone in its
transaction, BEGIN included, COMMIT not), and for the concurrent run the statements per order, the orders per
commit and the process's CPU time per order (all its threads: on a shared VM a steadier figure than the rate).

The run also measures its own storage floor, in the same process right after (`BareReplay`): the rows the
concurrent run wrote, copied out and written again with the bare driver (`sqlite3`, psycopg) into a copy of the
database as it was before the run, in as many transactions as the run committed. Printed as `bare_orders_per_s`
and `vs_bare` (the run's rate over the floor's): unlike the rate, the ratio carries from a fast phase of a shared
machine to a slow one.

The garbage collector is tuned as in `greenrights serve` (`core.runtime.tune_gc`); `GREENRIGHTS_GC_DEFAULT=1` runs
the bench with the interpreter's defaults.

Usage: `python bench/durable_orders.py [URL] [--orders N] [--concurrent-orders N] [--placers P] [--books B]`
(default: a temporary SQLite file). A PostgreSQL URL must name a fresh, empty database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import graphlib
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
import psycopg.conninfo
from sqlalchemy import create_engine, event, text
from sqlmodel import SQLModel

import core.models  # noqa: F401 - the tables must be known to SQLModel.metadata
import registry.models  # noqa: F401
import trading.models  # noqa: F401
from core import ledger
from core.audit import make_flusher
from core.clock import FixedClock
from core.db import Database, UnitOfWork, sync_url
from core.identity import Identity, Role, create_organisation
from core.runtime import tune_gc
from registry import schemas as rs
from registry.service import RegistryService
from trading import schemas as ts
from trading.service import TradingService

# Monday 2 March 2026, 10:00 Asia/Shanghai: a working day, inside the morning session.
SESSION = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)
LOT = 10
VINTAGES = (2025, 2026, 2024, 2023, 2022, 2021)


def _uscc(n: int) -> str:
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    weights = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
    body = f"91360100{n:09d}"[:17]
    total = sum(alphabet.index(c) * w for c, w in zip(body, weights, strict=True))
    return body + alphabet[(31 - total % 31) % 31]


def _create_tables(url: str) -> None:
    """Every table imported so far (the kernel's, the registry's, the trading context's) and the audit chain's
    head row. The run needs no other context, so it does without the server's `create_schema` (which imports
    every context; this module was written inside `trading/`, where the layers forbid that import)."""
    engine = create_engine(sync_url(url))
    SQLModel.metadata.create_all(engine)
    with engine.begin() as conn:
        if conn.execute(text("SELECT count(*) FROM audit_head")).scalar_one() == 0:
            conn.execute(text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :h)"), {"h": "0" * 64})
    engine.dispose()


@dataclass
class World:
    trading: TradingService
    traders: list[Identity]  # traders[0] sells, traders[1] buys
    accounts: list[int]
    instruments: list[int]  # instruments[0]: the sequential book; the rest: the concurrent books


async def _setup(db: Database, clock: FixedClock, *, books: int, orders: int) -> World:
    """A regulator, a market per instrument (1 + `books` of them), and two traders with units of each instrument
    and funds for `orders` buys."""
    if books + 1 > len(VINTAGES):
        raise SystemExit(f"at most {len(VINTAGES) - 1} concurrent books")
    registry = RegistryService(db, clock)
    await registry.bootstrap()
    trading = TradingService(db, clock, registry)

    async def orgs(uow: UnitOfWork) -> tuple[int, int]:
        reg = await create_organisation(uow.session, "江西省生态环境厅", "regulator", clock.now())
        bank = await create_organisation(uow.session, "结算银行", "bank", clock.now())
        return reg.id or 0, bank.id or 0

    reg_org, bank_org = await db.run(orgs)
    reg = Identity(1, reg_org, Role.REGULATOR, "bench")
    reg2 = Identity(2, reg_org, Role.REGULATOR, "bench")
    bank = Identity(3, bank_org, Role.BANK, "bench")
    units = orders * LOT
    await registry.open_account(reg, rs.OpenAccount(type="allocation"))
    instruments: list[int] = []
    for vintage in VINTAGES[: books + 1]:
        tx = await registry.issue_units(
            reg, rs.IssueUnits(kind="cea", scheme="national", vintage=vintage, quantity=str(2 * units)), None
        )
        await registry.approve_transfer(reg2, tx.id, rs.Decision(decision="approve"))
        await trading.create_market(
            reg, ts.CreateMarket(instrument_id=tx.instrument_id, mode="continuous", reference_price="50.00"), None
        )
        instruments.append(tx.instrument_id)
    traders: list[Identity] = []
    accounts: list[int] = []
    for i in range(2):
        ent = await registry.create_enterprise(
            reg, rs.CreateEnterprise(uscc=_uscc(900_000 + i), name=f"基准企业{i}", city="南昌", industry_code="D4411")
        )
        acc = await registry.open_account(reg, rs.OpenAccount(type="holding", enterprise_id=ent.id))
        for instrument_id in instruments:
            await registry.allocate_units(
                reg, rs.AllocateUnits(to_account_id=acc.id, instrument_id=instrument_id, quantity=str(units)), None
            )
        who = Identity(10 + i, ent.organisation_id, Role.EMITTER, "bench")
        movement = await trading.request_fund_movement(
            who, "deposit", ts.FundRequest(amount=str(orders * LOT * 60)), None
        )
        await trading.decide_fund_movement(bank, movement.id, ts.FundDecision(decision="confirm"))
        traders.append(who)
        accounts.append(acc.id)
    return World(trading, traders, accounts, instruments)


def _order(w: World, instrument_id: int, selling: bool) -> tuple[Identity, ts.PlaceOrder]:
    k = 0 if selling else 1
    return w.traders[k], ts.PlaceOrder(
        instrument_id=instrument_id,
        account_id=w.accounts[k],
        side="sell" if selling else "buy",
        price="50.00",
        quantity=str(LOT),
    )


class Counter:
    """SQL statements sent (executemany counts once, BEGIN counts, COMMIT does not) and commits."""

    def __init__(self, db: Database) -> None:
        self.statements = 0
        self.commits = 0
        engine = db.engine.sync_engine

        def on_statement(*_: Any) -> None:
            self.statements += 1

        def on_commit(*_: Any) -> None:
            self.commits += 1

        event.listen(engine, "before_cursor_execute", on_statement)
        event.listen(engine, "commit", on_commit)

    def reset(self) -> None:
        self.statements = self.commits = 0


@dataclass
class DurableRun:
    sequential_per_s: float
    concurrent_per_s: float
    statements_resting_sell: int
    statements_crossing_buy: int
    statements_per_order_concurrent: float
    orders_per_commit: float
    # The process's CPU time (every thread) per order in the concurrent run: steadier than the rate on a shared VM.
    cpu_us_per_order_concurrent: float
    orders: int
    concurrent_orders: int
    placers: int
    books: int
    bare_per_s: float  # the run's rows written again with the bare driver (`BareReplay`)

    @property
    def vs_bare(self) -> float:
        """The concurrent rate over the storage floor's."""
        return self.concurrent_per_s / self.bare_per_s

    def line(self, suffix: str = "") -> str:
        return (
            f"durable_orders_per_s{suffix}={self.concurrent_per_s:.0f} "
            f"bare_orders_per_s{suffix}={self.bare_per_s:.0f} vs_bare{suffix}={self.vs_bare:.3f} "
            f"durable_orders_sequential_per_s{suffix}={self.sequential_per_s:.0f} "
            f"statements_per_resting_sell={self.statements_resting_sell} "
            f"statements_per_crossing_buy={self.statements_crossing_buy} "
            f"statements_per_order_concurrent={self.statements_per_order_concurrent:.1f} "
            f"orders_per_commit={self.orders_per_commit:.1f} "
            f"cpu_us_per_order_concurrent={self.cpu_us_per_order_concurrent:.0f} "
            f"(sequential {self.orders} orders; concurrent {self.concurrent_orders} orders, "
            f"{self.placers} placers over {self.books} books)"
        )


class BareReplay:
    """The storage floor of a run: what the run wrote, written again with nothing but the driver.

    `before(url)` copies the database (SQLite: its online backup; PostgreSQL: `CREATE DATABASE ... TEMPLATE`, with
    the run's connections closed first) and notes each table's highest key; after the run, `replay(commits)` reads
    the rows the run added and the rows it changed, and writes them into the copy in `commits` transactions:
    - each table's new rows split evenly over the transactions in key order, one statement per table and
      transaction (SQLite: an executemany; PostgreSQL: one multi-row INSERT, prepared by psycopg once it has
      run five times, as the application's are),
      parents before children; a row goes no earlier than a new row it refers to (a trade's orders);
    - every changed row updated once per transaction, to its final values (a batch updates the balances it moved).
    The copy has the application's settings (SQLite: WAL, `synchronous=FULL`, foreign keys on; PostgreSQL: the
    server's). Deleted rows (a few serial blocks) are not replayed, nor the updates of rows added during the run:
    a floor, not a copy of the work. The copy is removed afterwards."""

    def __init__(self, side: _SqliteSide | _PostgresSide) -> None:
        self.side = side
        with side.connect(side.source) as src:
            self.tables = {t: side.table(src, t) for t in side.tables(src)}
            self.highest = {t: side.highest(src, table) for t, table in self.tables.items()}

    @classmethod
    def before(cls, url: str) -> BareReplay:
        side = _SqliteSide(url) if url.startswith("sqlite") else _PostgresSide(url)
        side.copy_database()
        return cls(side)

    def replay(self, commits: int) -> float:
        """Seconds to write the run's rows again, in `commits` transactions; the copy is removed after."""
        try:
            inserts, updates = self._read(commits)
            with self.side.connect(self.side.copy) as dst:
                started = time.perf_counter()
                for k in range(commits):
                    self.side.begin(dst)
                    for table, per_commit in inserts:
                        self.side.insert(dst, table, per_commit[k])
                    for table, rows in updates:
                        self.side.update(dst, table, rows)
                    self.side.commit(dst)
                return time.perf_counter() - started
        finally:
            self.side.drop_copy()

    def _read(
        self, commits: int
    ) -> tuple[list[tuple[_Table, list[list[tuple[Any, ...]]]]], list[tuple[_Table, list[tuple[Any, ...]]]]]:
        """Per table, its new rows per transaction, and its changed rows."""
        side = self.side
        inserts: list[tuple[_Table, list[list[tuple[Any, ...]]]]] = []
        updates: list[tuple[_Table, list[tuple[Any, ...]]]] = []
        chunk_of: dict[tuple[str, Any], int] = {}  # (table, key) of a new row: its transaction
        with side.connect(side.source) as src, side.connect(side.copy) as old:
            parents = {t: {p for p, _ in table.refs} - {t} for t, table in self.tables.items()}
            for name in graphlib.TopologicalSorter(parents).static_order():
                table, top = self.tables[name], self.highest[name]
                if top is None:
                    continue  # no single integer key to tell new rows by
                added = side.rows(src, table.added, top)
                chunks: list[list[tuple[Any, ...]]] = [[] for _ in range(commits)]
                for i, (key, *values) in enumerate(added):
                    k = max([i * commits // len(added)] + [chunk_of.get((p, values[c]), 0) for p, c in table.refs])
                    chunk_of[(name, key)] = k
                    chunks[k].append(tuple(values))
                if added:
                    inserts.append((table, chunks))
                was = {r[0]: r[1:] for r in side.rows(old, table.kept, top)}
                changed = [(*r[1:], r[0]) for r in side.rows(src, table.kept, top) if was.get(r[0]) != r[1:]]
                if changed:
                    updates.append((table, changed))
        return inserts, updates


@dataclass
class _Table:
    """One table's replay statements (the names are the database's own catalogue's): `added` reads its rows past a
    key (the key first), `kept` those up to it (the key first, then the columns other than the key), `update`
    writes a kept row, `insert` new ones (SQLite: the statement of one row, for an executemany; PostgreSQL: one
    row's VALUES with a slot per placeholder number, repeated per row); `refs`: per foreign key, the parent table
    and the index of the referring column."""

    name: str
    columns: list[str]
    key: str | None
    refs: list[tuple[str, int]]
    added: str
    kept: str
    insert: str
    update: str


class _SqliteSide:
    def __init__(self, url: str) -> None:
        self.source = url.split("///", 1)[1]
        self.copy = f"{self.source}.bare"

    def copy_database(self) -> None:
        with self.connect(self.source) as src, self.connect(self.copy) as dst:
            src.backup(dst)

    def drop_copy(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(self.copy + suffix).unlink(missing_ok=True)

    @contextlib.contextmanager
    def connect(self, path: str) -> Iterator[sqlite3.Connection]:
        """A plain connection with the application's PRAGMAs (`core.db`), in autocommit (the replay begins and
        commits itself)."""
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=FULL")
            yield conn
        finally:
            conn.close()

    def tables(self, conn: sqlite3.Connection) -> list[str]:
        query = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        return [name for (name,) in conn.execute(query)]

    def table(self, conn: sqlite3.Connection, name: str) -> _Table:
        info = conn.execute(f'PRAGMA table_info("{name}")').fetchall()
        columns, keys = [r[1] for r in info], [r[1] for r in info if r[5]]
        names = ", ".join(f'"{c}"' for c in columns)
        # The key is not set again: a changed parent key makes SQLite look for the rows that refer to it.
        rest = [c for c in columns if c not in keys]
        kept = ", ".join(f'"{c}"' for c in rest)
        sets = ", ".join(f'"{c}" = ?' for c in rest)
        refs = [(fk[2], columns.index(fk[3])) for fk in conn.execute(f'PRAGMA foreign_key_list("{name}")')]
        return _Table(
            name,
            columns,
            "rowid",
            refs,
            added=f'SELECT rowid, {names} FROM "{name}" WHERE rowid > ? ORDER BY rowid',  # noqa: S608
            kept=f'SELECT rowid, {kept} FROM "{name}" WHERE rowid <= ? ORDER BY rowid',  # noqa: S608
            insert=f'INSERT INTO "{name}" ({names}) VALUES ({", ".join("?" * len(columns))})',  # noqa: S608
            update=f'UPDATE "{name}" SET {sets} WHERE rowid = ?',  # noqa: S608
        )

    def highest(self, conn: sqlite3.Connection, table: _Table) -> int | None:
        found: int = conn.execute(f'SELECT coalesce(max(rowid), 0) FROM "{table.name}"').fetchone()[0]  # noqa: S608
        return found

    def rows(self, conn: sqlite3.Connection, query: str, top: int) -> list[tuple[Any, ...]]:
        return conn.execute(query, (top,)).fetchall()

    def begin(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")

    def commit(self, conn: sqlite3.Connection) -> None:
        conn.execute("COMMIT")

    def insert(self, conn: sqlite3.Connection, table: _Table, rows: list[tuple[Any, ...]]) -> None:
        conn.executemany(table.insert, rows)

    def update(self, conn: sqlite3.Connection, table: _Table, rows: list[tuple[Any, ...]]) -> None:
        conn.executemany(table.update, rows)


class _PostgresSide:
    """The PostgreSQL floor: the rows read as text and written with casts to their columns' types, through psycopg's
    raw cursor (PostgreSQL's own placeholders), a table's rows of a transaction in one multi-row INSERT."""

    def __init__(self, url: str) -> None:
        self.conninfo = url.replace("postgresql+psycopg://", "postgresql://", 1)
        self.source = str(psycopg.conninfo.conninfo_to_dict(self.conninfo)["dbname"])
        self.copy = f"{self.source}_bare"

    def _server(self) -> psycopg.Connection[Any]:
        return psycopg.connect(psycopg.conninfo.make_conninfo(self.conninfo, dbname="postgres"), autocommit=True)

    def copy_database(self) -> None:
        with self._server() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.copy}"')
            conn.execute(f'CREATE DATABASE "{self.copy}" TEMPLATE "{self.source}"')

    def drop_copy(self) -> None:
        with self._server() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.copy}"')

    @contextlib.contextmanager
    def connect(self, dbname: str) -> Iterator[psycopg.Connection[Any]]:
        conn = psycopg.connect(psycopg.conninfo.make_conninfo(self.conninfo, dbname=dbname), autocommit=True)
        try:
            yield conn
        finally:
            conn.close()

    def tables(self, conn: psycopg.Connection[Any]) -> list[str]:
        query = (
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind = 'r' ORDER BY 1"
        )
        return [name for (name,) in conn.execute(query)]

    def table(self, conn: psycopg.Connection[Any], name: str) -> _Table:
        info = conn.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), "
            "coalesce((SELECT true FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary "
            "AND i.indkey[0] = a.attnum AND i.indnatts = 1), false) "
            "FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY a.attnum",
            (name,),
        ).fetchall()
        columns = [c for c, _, _ in info]
        types = {c: t for c, t, _ in info}
        keys = [c for c, t, primary in info if primary and t in ("integer", "bigint")]
        key = keys[0] if keys else None
        refs = [
            (parent, columns.index(column))
            for parent, column in conn.execute(
                "SELECT confrelid::regclass::text, (SELECT attname FROM pg_attribute "
                "WHERE attrelid = conrelid AND attnum = conkey[1]) "
                "FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
                (name,),
            )
        ]
        rest = [c for c in columns if c != key]
        as_text = ", ".join(f'"{c}"::text' for c in columns)
        rest_as_text = ", ".join(f'"{c}"::text' for c in rest)
        sets = ", ".join(f'"{c}" = ${i}::{types[c]}' for i, c in enumerate(rest, start=1))
        where_key = f'"{key}" = ${len(rest) + 1}::{types.get(key or "", "integer")}'
        by_key = f'"{name}"."{key}"'
        return _Table(
            name,
            columns,
            key,
            refs,
            # Ordered by the table's column: the bare name would be the output column, the key as text.
            added=f'SELECT "{key}"::text, {as_text} FROM "{name}" WHERE "{key}" > %s ORDER BY {by_key}',  # noqa: S608
            kept=f'SELECT "{key}"::text, {rest_as_text} FROM "{name}" WHERE "{key}" <= %s ORDER BY {by_key}',  # noqa: S608
            # One row's values with a slot for each placeholder's number (`insert` numbers them per statement).
            insert=", ".join(f"${{}}::{types[c]}" for c in columns),
            update=f'UPDATE "{name}" SET {sets} WHERE {where_key}',  # noqa: S608
        )

    def highest(self, conn: psycopg.Connection[Any], table: _Table) -> int | None:
        if table.key is None:
            return None
        row = conn.execute(f'SELECT coalesce(max("{table.key}"), 0) FROM "{table.name}"').fetchone()  # noqa: S608
        return int(row[0]) if row else 0

    def rows(self, conn: psycopg.Connection[Any], query: str, top: int) -> list[tuple[Any, ...]]:
        return conn.execute(query, (top,)).fetchall()

    def begin(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("BEGIN")

    def commit(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("COMMIT")

    def insert(self, conn: psycopg.Connection[Any], table: _Table, rows: list[tuple[Any, ...]]) -> None:
        width = len(table.columns)
        most = max(1, 32767 // width)
        names = ", ".join(f'"{c}"' for c in table.columns)
        with psycopg.RawCursor(conn) as cursor:
            for start in range(0, len(rows), most):
                chunk = rows[start : start + most]
                values = ", ".join(
                    f"({table.insert.format(*range(r * width + 1, (r + 1) * width + 1))})" for r in range(len(chunk))
                )
                cursor.execute(
                    f'INSERT INTO "{table.name}" ({names}) VALUES {values}',  # noqa: S608
                    [v for row in chunk for v in row],
                )

    def update(self, conn: psycopg.Connection[Any], table: _Table, rows: list[tuple[Any, ...]]) -> None:
        with psycopg.RawCursor(conn) as cursor:
            cursor.executemany(table.update, rows)


async def durable_run(
    url: str,
    *,
    orders: int = 600,
    concurrent_orders: int = 4096,
    placers: int = 64,
    books: int = 2,
    timeout_s: float = 600.0,
) -> DurableRun:
    """Both figures on `url` (a fresh database); raises if the run left the ledger or the books unsound."""
    if placers % (2 * books) or concurrent_orders % placers:
        raise SystemExit("--placers must be a multiple of 2 × books, --concurrent-orders a multiple of placers")
    _create_tables(url)
    clock = FixedClock(SESSION)
    db = Database(url)
    db.audit_flusher = make_flusher(clock)
    # The process as `greenrights serve` runs it: once built, what it holds is frozen out of the collector's passes
    # and the young generation collected less often (`core.runtime`; GREENRIGHTS_GC_DEFAULT=1 leaves them alone).
    tune_gc()
    try:
        w = await _setup(db, clock, books=books, orders=orders + concurrent_orders + 2)
        t = w.trading
        counter = Counter(db)

        # Sequential: one caller on the first book, a resting sell then a buy that crosses it.
        stream = [_order(w, w.instruments[0], k % 2 == 0) for k in range(orders)]
        started = time.perf_counter()
        for who, order in stream:
            await t.place_order(who, order, None)
        sequential = orders / (time.perf_counter() - started)

        # The statements of one resting sell and one crossing buy (the book is empty after an even stream).
        counts: list[int] = []
        for selling in (True, False):
            counter.reset()
            await t.place_order(*_order(w, w.instruments[0], selling), None)
            counts.append(counter.statements)

        # Concurrent: per book, half the placers sell and half buy, all at once.
        per_placer = concurrent_orders // placers

        async def placer(p: int) -> None:
            instrument_id = w.instruments[1 + p % books]
            who, order = _order(w, instrument_id, (p // books) % 2 == 0)
            for _ in range(per_placer):
                await t.place_order(who, order, None)

        # Warm-up, untimed: the first order of a day opens its book (and fills the process's caches of markets and
        # books); a crossing pair per book leaves it empty again.
        for instrument_id in w.instruments[1:]:
            for selling in (True, False):
                await t.place_order(*_order(w, instrument_id, selling), None)
        if not url.startswith("sqlite"):
            await db.engine.dispose()  # the copy is made from the database as a template: no one may be connected
        floor = BareReplay.before(url)
        counter.reset()
        started, cpu_started = time.perf_counter(), time.process_time()
        await asyncio.wait_for(asyncio.gather(*(placer(p) for p in range(placers))), timeout_s)
        concurrent = concurrent_orders / (time.perf_counter() - started)
        cpu_us = (time.process_time() - cpu_started) / concurrent_orders * 1e6
        statements, commits = counter.statements, max(counter.commits, 1)
        bare_per_s = concurrent_orders / floor.replay(commits)

        async def invariants(uow: UnitOfWork) -> list[str]:
            return await ledger.check_invariants(uow.session)

        problems = await db.read(invariants) + await t.reconcile()
        if problems:
            raise AssertionError(f"the durable run left inconsistencies: {problems[:3]}")
        return DurableRun(
            sequential_per_s=sequential,
            concurrent_per_s=concurrent,
            statements_resting_sell=counts[0],
            statements_crossing_buy=counts[1],
            statements_per_order_concurrent=statements / concurrent_orders,
            orders_per_commit=concurrent_orders / commits,
            cpu_us_per_order_concurrent=cpu_us,
            orders=orders,
            concurrent_orders=concurrent_orders,
            placers=placers,
            books=books,
            bare_per_s=bare_per_s,
        )
    finally:
        await db.dispose()


async def durable_orders_per_s(url: str, orders: int = 600) -> float:
    """The concurrent figure of `durable_run` (kept for callers of the single number)."""
    return (await durable_run(url, orders=orders)).concurrent_per_s


def backend_suffix(url: str | None) -> str:
    return "_postgresql" if url and url.startswith("postgres") else "_sqlite"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default=None)
    parser.add_argument("--orders", type=int, default=600, help="sequential orders")
    parser.add_argument("--concurrent-orders", type=int, default=4096)
    parser.add_argument("--placers", type=int, default=64)
    parser.add_argument("--books", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=600.0, help="bound on the concurrent run, seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite+aiosqlite:///{Path(tmp) / 'durable.db'}"
        run = asyncio.run(
            durable_run(
                url,
                orders=args.orders,
                concurrent_orders=args.concurrent_orders,
                placers=args.placers,
                books=args.books,
                timeout_s=args.timeout,
            )
        )
    print(run.line(backend_suffix(args.url)))


if __name__ == "__main__":
    main()
