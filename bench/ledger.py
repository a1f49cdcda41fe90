"""Ledger throughput: registry transfers per second through the service layer, against bare SQL on the same engine.

What a registry transfer costs is what every trade, surrender and disbursement costs, since they all post through
`core.ledger` inside one unit of work. This benchmark calls `RegistryService.create_transfer` (one unit = one
transaction, with its idempotency key lookup, account and instrument checks, conditional balance updates, serial
block move and audit append) for N transfers of 1 tCO2e between two holding accounts of one enterprise (trusted,
so each posts at once). The baseline is the least a durable transfer can cost on the same database and engine:
N transactions of one INSERT into a scratch table and one UPDATE of a balance row, committed one by one, with
the same pragmas (SQLite: WAL, `synchronous=FULL`, `BEGIN IMMEDIATE`). The two run interleaved in rounds, so
drifting machine load hits both alike. Calls are sequential: on SQLite writers queue for one lock anyway, so the
figure is the per-transfer cost.

Usage: `python bench/ledger.py [--transfers N] [--rounds R] [--pg-url URL] [--profile]`. PostgreSQL is measured
too when `--pg-url` or GREENRIGHTS_TEST_DATABASE_URL is given (rows are added to that database, nothing is
dropped but the benchmark's own scratch tables). The last line is
`ledger_transfers_per_s=<n> baseline_ratio=<service/baseline> statements_per_transfer=<n>` for SQLite (statements:
the SQL statements the service sends per transfer, counted on the engine, besides its one BEGIN and COMMIT);
PostgreSQL's figures come the line before.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import logging
import os
import pstats
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, event, insert, update

from core import ledger
from core.audit import make_flusher
from core.clock import SystemClock
from core.db import Database, UnitOfWork
from core.identity import Identity, Role, create_api_key, create_organisation
from registry import schemas as s
from registry.service import RegistryService
from server.migrate import upgrade

_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

# The baseline's tables: an append-only journal and one balance row, the least a durable transfer writes.
_scratch_md = MetaData()
_id_type = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements only INTEGER PRIMARY KEY.
SCRATCH = Table(
    "bench_scratch",
    _scratch_md,
    Column("id", _id_type, primary_key=True, autoincrement=True),
    Column("account_id", BigInteger, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("ref", String(100), nullable=False),
)
BALANCE = Table(
    "bench_balance",
    _scratch_md,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("balance", BigInteger, nullable=False),
)


def random_uscc() -> str:
    """A valid unified social credit code (GB 32100-2015 check character) that no earlier run used."""
    body = f"91360100{secrets.randbelow(10**9):09d}"
    total = sum(_ALPHABET.index(c) * w for c, w in zip(body, _WEIGHTS, strict=True))
    return body + _ALPHABET[(31 - total % 31) % 31]


@dataclass
class Setup:
    svc: RegistryService
    emitter: Identity
    source: int
    dest: int
    instrument_id: int


class StatementCounter:
    """Counts the SQL statements an engine sends while `counting` (SQLAlchemy's cursor event), not counting the
    transaction's own BEGIN and COMMIT, which every transfer and every baseline pair pays alike; commits apart."""

    def __init__(self, db: Database) -> None:
        self.count = 0
        self.commits = 0
        self.counting = False
        sync_engine = db.engine.sync_engine

        @event.listens_for(sync_engine, "before_cursor_execute")
        def _statement(_conn: object, _cursor: object, statement: str, *_: object) -> None:
            if self.counting and not statement.lstrip().upper().startswith("BEGIN"):
                self.count += 1

        @event.listens_for(sync_engine, "commit")
        def _commit(*_: object) -> None:
            if self.counting:
                self.commits += 1


@dataclass
class Result:
    backend: str
    transfers: int
    service_s: float
    baseline_s: float
    statements: int = 0

    @property
    def statements_per_transfer(self) -> float:
        return self.statements / self.transfers

    @property
    def service_per_s(self) -> float:
        return self.transfers / self.service_s

    @property
    def baseline_per_s(self) -> float:
        return self.transfers / self.baseline_s

    @property
    def ratio(self) -> float:
        return self.service_per_s / self.baseline_per_s


async def _principal(db: Database, org_id: int, role: Role) -> Identity:
    async def work(uow: UnitOfWork) -> Identity:
        p, _ = await create_api_key(
            uow.session, organisation_id=org_id, role=role, label="bench", now=SystemClock().now()
        )
        return Identity(principal_id=p.id or 0, organisation_id=org_id, role=role, label="bench")

    return await db.run(work)


async def prepare(db: Database, transfers: int) -> Setup:
    """Through the services: a regulator issues and allocates `transfers + 1` CEA to an enterprise's account."""
    clock = SystemClock()
    svc = RegistryService(db, clock)
    await svc.bootstrap()

    async def org(uow: UnitOfWork) -> int:
        return (
            await create_organisation(uow.session, "江西省生态环境厅（基准测试）", "regulator", clock.now())
        ).id or 0

    reg_org = await db.run(org)
    reg, reg2 = await _principal(db, reg_org, Role.REGULATOR), await _principal(db, reg_org, Role.REGULATOR)
    run = secrets.token_hex(4)
    await svc.open_account(reg, s.OpenAccount(type="allocation"))
    issued = await svc.issue_units(
        reg,
        s.IssueUnits(kind="cea", scheme="national", vintage=2025, quantity=str(transfers + 1)),
        f"bench:{run}:issue",
    )
    await svc.approve_transfer(reg2, issued.id, s.Decision(decision="approve"))
    ent = await svc.create_enterprise(
        reg,
        s.CreateEnterprise(
            uscc=random_uscc(), name="基准测试企业", city="南昌", industry_code="D4411", is_key_emitter=True
        ),
    )
    source = await svc.open_account(reg, s.OpenAccount(type="holding", enterprise_id=ent.id))
    dest = await svc.open_account(reg, s.OpenAccount(type="holding", enterprise_id=ent.id))
    await svc.allocate_units(
        reg,
        s.AllocateUnits(to_account_id=source.id, instrument_id=issued.instrument_id, quantity=str(transfers + 1)),
        f"bench:{run}:alloc",
    )
    emitter = await _principal(db, ent.organisation_id, Role.EMITTER)
    setup = Setup(svc, emitter, source.id, dest.id, issued.instrument_id)
    # One transfer outside the timing opens the destination's ledger account and warms statement caches.
    await transfer(setup, f"bench:{run}:warm")
    return setup


async def transfer(setup: Setup, key: str) -> None:
    out = await setup.svc.create_transfer(
        setup.emitter,
        s.MoveUnits(
            from_account_id=setup.source, to_account_id=setup.dest, instrument_id=setup.instrument_id, quantity="1"
        ),
        key,
    )
    if out.status != "completed":
        raise AssertionError(f"transfer {key} is {out.status}, not completed")


async def service_round(setup: Setup, run: str, start: int, count: int) -> float:
    t0 = time.perf_counter()
    for i in range(start, start + count):
        await transfer(setup, f"bench:{run}:{i}")
    return time.perf_counter() - t0


async def baseline_round(db: Database, start: int, count: int) -> float:
    t0 = time.perf_counter()
    for i in range(start, start + count):
        async with db.engine.begin() as conn:
            await conn.execute(insert(SCRATCH).values(account_id=1, amount=1, ref=f"bench:{i}"))
            await conn.execute(update(BALANCE).where(BALANCE.c.id == 1).values(balance=BALANCE.c.balance + 1))
    return time.perf_counter() - t0


async def measure(url: str, backend: str, transfers: int, rounds: int, profile: cProfile.Profile | None) -> Result:
    upgrade(url)
    db = Database(url)
    db.audit_flusher = make_flusher(SystemClock())
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda c: _scratch_md.drop_all(c, checkfirst=True))
            await conn.run_sync(_scratch_md.create_all)
            await conn.execute(insert(BALANCE).values(id=1, balance=0))
        setup = await prepare(db, transfers)
        counter = StatementCounter(db)
        run = secrets.token_hex(4)
        service_s = baseline_s = 0.0
        done = 0
        for r in range(rounds):
            count = transfers // rounds + (1 if r < transfers % rounds else 0)
            baseline_s += await baseline_round(db, done, count)
            if profile is not None:
                profile.enable()
            counter.counting = True
            service_s += await service_round(setup, run, done, count)
            counter.counting = False
            if profile is not None:
                profile.disable()
            done += count
        await verify(db, setup, transfers)
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda c: _scratch_md.drop_all(c, checkfirst=True))
        return Result(backend, transfers, service_s, baseline_s, counter.count)
    finally:
        await db.dispose()


async def verify(db: Database, setup: Setup, transfers: int) -> None:
    """A benchmark of wrong answers is worthless: every unit moved once, and the ledger's invariants hold."""
    holdings = await setup.svc.list_holdings(setup.emitter, setup.dest)
    moved = sum(h.balance_base for h in holdings if h.instrument.id == setup.instrument_id)
    if moved != transfers + 1:
        raise AssertionError(f"destination holds {moved}, expected {transfers + 1}")

    async def check(uow: UnitOfWork) -> list[str]:
        return await ledger.check_invariants(uow.session)

    problems = await db.read(check)
    if problems:
        raise AssertionError(f"ledger invariants broken: {problems[:5]}")


def report(result: Result) -> str:
    return (
        f"{result.backend}: service {result.service_per_s:.0f} transfers/s "
        f"({result.service_s / result.transfers * 1000:.2f} ms each), baseline {result.baseline_per_s:.0f} "
        f"INSERT+UPDATE transactions/s ({result.baseline_s / result.transfers * 1000:.2f} ms each), "
        f"ratio {result.ratio:.3f}, {result.statements_per_transfer:.1f} statements per transfer"
    )


async def main_async(args: argparse.Namespace) -> int:
    profile = cProfile.Profile() if args.profile else None
    with tempfile.TemporaryDirectory(prefix="greenrights-bench-") as tmp:
        sqlite = await measure(
            f"sqlite+aiosqlite:///{Path(tmp) / 'ledger.db'}", "sqlite", args.transfers, args.rounds, profile
        )
    print(report(sqlite), flush=True)
    if profile is not None:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(args.profile_lines)
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(args.profile_lines)
        print(out.getvalue(), flush=True)
    pg_url = args.pg_url or os.environ.get("GREENRIGHTS_TEST_DATABASE_URL")
    if pg_url:
        pg = await measure(pg_url, "postgres", args.transfers, args.rounds, None)
        print(report(pg), flush=True)
        print(
            f"postgres_ledger_transfers_per_s={pg.service_per_s:.0f} postgres_baseline_ratio={pg.ratio:.3f} "
            f"postgres_statements_per_transfer={pg.statements_per_transfer:.1f}",
            flush=True,
        )
    print(
        f"ledger_transfers_per_s={sqlite.service_per_s:.0f} baseline_ratio={sqlite.ratio:.3f} "
        f"statements_per_transfer={sqlite.statements_per_transfer:.1f}",
        flush=True,
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transfers", type=int, default=2000, help="transfers (and baseline pairs) per database")
    parser.add_argument("--rounds", type=int, default=5, help="alternations of baseline and service")
    parser.add_argument("--pg-url", default=None, help="also measure this PostgreSQL database")
    parser.add_argument("--profile", action="store_true", help="cProfile the SQLite service calls")
    parser.add_argument("--profile-lines", type=int, default=30)
    args = parser.parse_args()
    if args.transfers < 1 or args.rounds < 1:
        parser.error("--transfers and --rounds must be positive")
    args.rounds = min(args.rounds, args.transfers)
    logging.basicConfig(level=logging.WARNING)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
