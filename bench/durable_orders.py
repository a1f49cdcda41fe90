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

On SQLite the run also measures its own storage floor, in the same process right after (`BareReplay`): the rows
the concurrent run wrote, copied out and written again with plain `sqlite3` into a copy of the database as it was
before the run, in as many transactions as the run committed, each with the same PRAGMAs and fsync. Printed as
`bare_orders_per_s` and `vs_bare` (the run's rate over the floor's): unlike the rate, the ratio carries from a
fast phase of a shared machine to a slow one.

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
    bare_per_s: float | None = None  # SQLite: the run's rows written again with plain sqlite3 (`BareReplay`)

    @property
    def vs_bare(self) -> float:
        """The concurrent rate over the storage floor's (SQLite); 0 without a floor."""
        return self.concurrent_per_s / self.bare_per_s if self.bare_per_s else 0.0

    def line(self, suffix: str = "") -> str:
        bare = ""
        if self.bare_per_s is not None:
            bare = f"bare_orders_per_s{suffix}={self.bare_per_s:.0f} vs_bare{suffix}={self.vs_bare:.3f} "
        return (
            f"durable_orders_per_s{suffix}={self.concurrent_per_s:.0f} "
            f"{bare}"
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
    """The storage floor of a run on SQLite: what the run wrote, written again with nothing but `sqlite3`.

    `before(url)` copies the database (SQLite's online backup) and notes each table's highest rowid; after the run,
    `replay(commits)` reads the rows the run added and the rows it changed, and writes them into the copy in
    `commits` transactions, with the application's PRAGMAs (WAL, `synchronous=FULL`, foreign keys on):
    - each table's new rows split evenly over the transactions in id order, one executemany per table and
      transaction, parents before children; a row goes no earlier than a new row it refers to (a trade's orders);
    - every changed row updated once per transaction, to its final values (a batch updates the balances it moved).
    Deleted rows (a few serial blocks) are not replayed, nor the updates of rows added during the run: a floor,
    not a copy of the work."""

    def __init__(self, source: str, copy: str, highest: dict[str, int]) -> None:
        self.source, self.copy, self.highest = source, copy, highest

    @classmethod
    def before(cls, url: str) -> BareReplay | None:
        if not url.startswith("sqlite"):
            return None
        source = url.split("///", 1)[1]
        copy = f"{source}.bare"
        with _plain(source) as src, _plain(copy) as dst:
            src.backup(dst)
            highest = {t: src.execute(_Statements(src, t).highest).fetchone()[0] for t in _tables(src)}
        return cls(source, copy, highest)

    def replay(self, commits: int) -> float:
        """Seconds to write the run's rows again, in `commits` transactions."""
        inserts: list[tuple[str, list[list[tuple[Any, ...]]]]] = []  # per table: its rows per transaction
        updates: list[tuple[str, list[tuple[Any, ...]]]] = []
        chunk_of: dict[tuple[str, int], int] = {}  # (table, rowid) of a new row: its transaction
        with _plain(self.source) as src, _plain(self.copy) as old:
            for table in _parents_first(src, list(self.highest)):
                top, sql = self.highest[table], _Statements(src, table)
                added = src.execute(sql.added, (top,)).fetchall()
                chunks: list[list[tuple[Any, ...]]] = [[] for _ in range(commits)]
                for i, (rowid, *values) in enumerate(added):
                    k = max([i * commits // len(added)] + [chunk_of.get((t, values[c]), 0) for t, c in sql.refs])
                    chunk_of[(table, rowid)] = k
                    chunks[k].append(tuple(values))
                if added:
                    inserts.append((sql.insert, chunks))
                was = {r[0]: r[1:] for r in old.execute(sql.kept, (top,))}
                changed = [(*r[1:], r[0]) for r in src.execute(sql.kept, (top,)) if was.get(r[0]) != r[1:]]
                if changed:
                    updates.append((sql.update, changed))
        with _plain(self.copy) as dst:
            started = time.perf_counter()
            for k in range(commits):
                dst.execute("BEGIN IMMEDIATE")
                for sql_insert, per_commit in inserts:
                    dst.executemany(sql_insert, per_commit[k])
                for sql_update, rows in updates:
                    dst.executemany(sql_update, rows)
                dst.execute("COMMIT")
            return time.perf_counter() - started


@contextlib.contextmanager
def _plain(path: str) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection with the application's PRAGMAs (`core.db`), in autocommit (the replay begins and
    commits itself)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=FULL")
        yield conn
    finally:
        conn.close()


class _Statements:
    """The replay's statements for one table, every column named (the names are the database's own catalogue's),
    and its references: per foreign key, the parent table and the index of the referring column. A changed row is
    compared and updated on its columns other than its primary key."""

    def __init__(self, conn: sqlite3.Connection, table: str) -> None:
        info = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
        columns, key = [r[1] for r in info], [r[1] for r in info if r[5]]
        names = ", ".join(f'"{c}"' for c in columns)
        # The key is not set again: a changed parent key makes SQLite look for the rows that refer to it.
        sets = ", ".join(f'"{c}" = ?' for c in columns if c not in key)
        self.refs = [(fk[2], columns.index(fk[3])) for fk in conn.execute(f'PRAGMA foreign_key_list("{table}")')]
        self.highest = f'SELECT coalesce(max(rowid), 0) FROM "{table}"'  # noqa: S608
        self.added = f'SELECT rowid, {names} FROM "{table}" WHERE rowid > ? ORDER BY rowid'  # noqa: S608
        kept = ", ".join(f'"{c}"' for c in columns if c not in key)
        self.kept = f'SELECT rowid, {kept} FROM "{table}" WHERE rowid <= ? ORDER BY rowid'  # noqa: S608
        self.insert = f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" * len(columns))})'  # noqa: S608
        self.update = f'UPDATE "{table}" SET {sets} WHERE rowid = ?'  # noqa: S608


def _parents_first(conn: sqlite3.Connection, tables: list[str]) -> list[str]:
    """The tables ordered so that a table comes after those its foreign keys refer to (a reference to itself aside)."""
    parents = {t: {fk[2] for fk in conn.execute(f'PRAGMA foreign_key_list("{t}")')} - {t} for t in tables}
    return list(graphlib.TopologicalSorter(parents).static_order())


def _tables(conn: sqlite3.Connection) -> list[str]:
    query = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
    return [name for (name,) in conn.execute(query)]


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
        floor = BareReplay.before(url)
        counter.reset()
        started, cpu_started = time.perf_counter(), time.process_time()
        await asyncio.wait_for(asyncio.gather(*(placer(p) for p in range(placers))), timeout_s)
        concurrent = concurrent_orders / (time.perf_counter() - started)
        cpu_us = (time.process_time() - cpu_started) / concurrent_orders * 1e6
        statements, commits = counter.statements, max(counter.commits, 1)
        bare_per_s = None if floor is None else concurrent_orders / floor.replay(commits)

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
