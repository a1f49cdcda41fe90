"""Compliance settlement cost per obligation, and proof that it grows linearly.

What the last line measures: the REAL bulk settlement job, `ComplianceService.settle_period`, on SQLite
(WAL, `synchronous=FULL`), for 1,000, 10,000 and 100,000 synthetic obligations, each size in its own fresh
database. Per obligation the job reads its facts (enterprise, surrenders, report), runs the pure `settle()`,
stores a result row under its unique key, appends an audit entry, records the deduction owed, and posts the
forced surrenders from the provincial reserve through the ledger; one transaction per batch of 500
(`settlement_batch_size`). `compliance_us_per_obligation_10k` is the job's wall time at 10,000 divided by
10,000; `growth_10k_to_100k = t(100k) / t(10k)` is about 10 for a linear job and 13+ for n log n. Only the
settlement is timed: building the database is not.

The synthetic period (generated from a seed before any timing) mixes compliant, short, late, forced and
unreported enterprises over Jiangxi's 11 cities, as the pure baseline does. To build 100,000 enterprises in
seconds, the set-up writes enterprises, accounts, obligations and surrender transactions with bulk SQL rather
than through the API; their surrenders therefore exist as registry transactions (what the job reads) without
ledger balances behind them. The provincial reserve, which the job does move, is funded through the services.

For reference the pure rules alone (`registry.domain.settlement.settle` over the same mix, best of
`--repeat`) are printed first; they are not part of the last line.

The 1,000 and 10,000 runs are repeated (`--db-repeat`, default 3, each on a fresh database) and the best kept;
the 100,000 run is done once (about a minute on a 2-core machine). On a shared machine, load from other
processes only adds time, so the ratio errs on the side of looking less linear than the job is.

Usage: `python bench/compliance.py [--seed S] [--repeat R] [--db-repeat R] [--sizes 1000,10000,100000]
[--keep DIR]`.
The last line is `compliance_us_per_obligation_10k=<n> growth_10k_to_100k=<t100k/t10k>`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import logging
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, insert, select, text

from core.audit import make_flusher
from core.clock import FixedClock
from core.db import Database, sync_url
from core.identity import Identity, Role, create_organisation
from core.models import Organisation
from registry import schemas as rs
from registry.compliance import schemas as cs
from registry.compliance.models import Obligation
from registry.domain.calendar import deadline_instant
from registry.domain.settlement import CarbonPenalty, ObligationFacts, SettlementParams, SurrenderFact, settle
from registry.domain.surrender import ObligationKind
from registry.models import Enterprise, RegistryAccount, RegistryTransaction
from server.migrate import create_schema
from server.services import build_services

CITIES = ("南昌", "九江", "景德镇", "萍乡", "新余", "鹰潭", "赣州", "吉安", "宜春", "抚州", "上饶")
INDUSTRIES = ("D4411", "C3011", "C3110", "C3120", "C3216", "C2211", "C2614")
DEADLINE_DAY = date(2025, 12, 31)
DEADLINE = deadline_instant(DEADLINE_DAY)
PARAMS = SettlementParams(carbon=CarbonPenalty(reference_price_fen=9_800, multiplier_k=5), reserve_available=10**9)
SIZES = (1_000, 10_000, 100_000)


def synthetic(n: int, seed: int) -> list[ObligationFacts]:
    rng = random.Random(seed)
    out: list[ObligationFacts] = []
    for i in range(n):
        roll = rng.random()
        verified = None if roll < 0.03 else rng.randint(26_000, 5_000_000)
        surrenders: list[SurrenderFact] = []
        if verified is not None:
            covered = verified if roll < 0.80 else rng.randint(0, verified)
            parts = rng.randint(1, 3)
            for p in range(parts):
                quantity = covered // parts + (covered % parts if p == 0 else 0)
                if quantity <= 0:
                    continue
                late = roll > 0.95 and p == parts - 1
                at = DEADLINE + timedelta(days=5) if late else DEADLINE - timedelta(days=rng.randint(1, 300))
                surrenders.append(SurrenderFact(quantity, at, offset=p == 1))
        out.append(
            ObligationFacts(
                obligation_id=f"OB-{i:07d}",
                enterprise_id=f"E-{i:07d}",
                city=CITIES[i % len(CITIES)],
                industry=INDUSTRIES[i % len(INDUSTRIES)],
                kind=ObligationKind.CARBON,
                verified_quantity=verified,
                surrenders=tuple(surrenders),
                forced_surrender_ordered=rng.randint(0, 10_000) if 0.90 < roll < 0.93 else 0,
            )
        )
    return out


def timed_once(fn: Callable[[Sequence[ObligationFacts]], object], facts: Sequence[ObligationFacts]) -> float:
    """One run with the cyclic garbage collector paused, as `timeit` does (a full collection over 100,000
    live objects would otherwise land on whichever run triggers it)."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        result = fn(facts)
        elapsed = time.perf_counter() - start
    finally:
        gc.enable()
    del result
    return elapsed


# ---------------------------------------------------------------------------------------------- the real job


async def build_period(url: str, facts: Sequence[ObligationFacts]) -> tuple[Any, int]:
    """A fresh database holding one settled-ready carbon period with one obligation per fact."""
    create_schema(url)
    clock = FixedClock(dt.datetime(2025, 3, 1, 2, tzinfo=dt.UTC))
    db = Database(url)
    db.audit_flusher = make_flusher(clock)
    services = build_services(db, clock)
    registry, comp = services["registry"], services["compliance"]
    await registry.bootstrap()

    async def org(uow: Any) -> int:
        return (await create_organisation(uow.session, "江西省生态环境厅", "regulator", clock.now())).id or 0

    org_id = await db.run(org)
    reg, reg2 = Identity(1, org_id, Role.REGULATOR, "r1"), Identity(2, org_id, Role.REGULATOR, "r2")
    await registry.open_account(reg, rs.OpenAccount(type="allocation"))
    reserve_units = sum(f.forced_surrender_ordered for f in facts) // 2 + 1  # the reserve runs dry half way
    tx = await registry.issue_units(
        reg, rs.IssueUnits(kind="cea", scheme="national", vintage=2024, quantity=str(reserve_units)), None
    )
    await registry.approve_transfer(reg2, tx.id, rs.Decision(decision="approve"))
    cea = tx.instrument_id
    await comp.fund_reserve(reg, cs.FundReserve(instrument_id=cea, quantity=str(reserve_units)), None)
    scheme = await comp.create_scheme(
        reg, cs.CreateScheme(code="CN-CEA", name="全国碳市场", kind="carbon", cea_scheme="national")
    )
    period = await comp.create_period(
        reg,
        cs.CreatePeriod(scheme_id=scheme.id, year=2024, overrides={"surrender_deadline": DEADLINE_DAY}),
    )
    await comp.set_reference_price(reg, period.id, cs.SetReferencePrice(price_yuan="98.00"))

    engine = create_engine(sync_url(url))
    now = clock.now()
    with engine.begin() as conn:
        base_org = conn.execute(select(text("coalesce(max(id), 0)")).select_from(Organisation)).scalar_one() + 1
        base_ent = conn.execute(select(text("coalesce(max(id), 0)")).select_from(Enterprise)).scalar_one() + 1
        base_acc = conn.execute(select(text("coalesce(max(id), 0)")).select_from(RegistryAccount)).scalar_one() + 1
        surrender_acc = conn.execute(
            text("SELECT a.id FROM registry_account a JOIN organisation o ON o.id = a.organisation_id "
                 "WHERE o.kind = 'system' AND a.type = 'surrender'")
        ).scalar_one()
        n = len(facts)
        conn.execute(insert(Organisation), [
            {"id": base_org + i, "name": f"企业{i:07d}", "kind": "enterprise", "created_at": now} for i in range(n)])
        conn.execute(insert(Enterprise), [
            {"id": base_ent + i, "organisation_id": base_org + i, "uscc": f"B{i:017d}", "name": f"企业{i:07d}",
             "city": f.city, "industry_code": f.industry, "is_key_emitter": True, "is_sme": False,
             "is_high_tech": False, "created_at": now} for i, f in enumerate(facts)])
        conn.execute(insert(RegistryAccount), [
            {"id": base_acc + i, "organisation_id": base_org + i, "type": "holding", "status": "open", "label": "",
             "created_at": now} for i in range(n)])
        conn.execute(insert(Obligation), [
            {"period_id": period.id, "enterprise_id": base_ent + i, "pollutant": "",
             "verified_quantity": f.verified_quantity, "forced_surrender_ordered": f.forced_surrender_ordered,
             "created_at": now, "updated_at": now} for i, f in enumerate(facts)])
        conn.execute(insert(RegistryTransaction), [
            {"code": "surrender", "status": "completed", "instrument_id": cea, "from_account_id": base_acc + i,
             "to_account_id": surrender_acc, "quantity": s.quantity, "initiated_by": 0,
             "initiator_organisation_id": base_org + i, "period": period.code, "details": "{}",
             "created_at": s.at, "completed_at": s.at}
            for i, f in enumerate(facts) for s in f.surrenders])
    engine.dispose()
    clock.set(DEADLINE + timedelta(hours=1))
    return services, period.id


async def settle_in_database(n: int, seed: int, folder: Path, run: int = 0) -> tuple[float, Any]:
    facts = synthetic(n, seed)
    url = f"sqlite+aiosqlite:///{folder / f'settle-{n}-{run}.db'}"
    services, period_id = await build_period(url, facts)
    comp = services["compliance"]
    gc.collect()
    start = time.perf_counter()
    out = await comp.settle_period(period_id)
    elapsed = time.perf_counter() - start
    assert out.settled_now == n, (out.settled_now, n)
    await services["db"].dispose()
    return elapsed, out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seed", type=int, default=20251231)
    parser.add_argument("--repeat", type=int, default=3, help="runs of the pure baseline (best kept)")
    parser.add_argument("--db-repeat", type=int, default=3, help="database runs for 1k and 10k (best kept)")
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--keep", default=None, help="folder for the SQLite files (default: a temporary one)")
    args = parser.parse_args(argv)
    sizes = tuple(int(x) for x in args.sizes.split(","))
    logging.disable(logging.INFO)

    datasets = {n: synthetic(n, args.seed + n) for n in sizes}
    pure = dict.fromkeys(sizes, float("inf"))
    for _ in range(args.repeat):
        for n in sizes:
            pure[n] = min(pure[n], timed_once(lambda f: settle(f, PARAMS, DEADLINE), datasets[n]))
    for n in sizes:
        print(f"pure settle(): n={n} seconds={pure[n]:.4f} us_per_obligation={pure[n] / n * 1e6:.2f}")
    del datasets

    seconds: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-compliance-") as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for n in sizes:
            # Each run needs a fresh database (a settled period settles nothing again), so the large size runs
            # once and the small ones `--db-repeat` times, best kept: load from other processes only adds time.
            runs = args.db_repeat if n <= 10_000 else 1
            elapsed, out = min(
                (asyncio.run(settle_in_database(n, args.seed + n, folder, r)) for r in range(runs)),
                key=lambda x: x[0],
            )
            seconds[n] = elapsed
            print(
                f"settlement job (SQLite): n={n} seconds={elapsed:.3f} us_per_obligation={elapsed / n * 1e6:.1f} "
                f"batches={out.batches} A={out.compliant} B={out.shortfall_count} C={out.not_reported} "
                f"forced={out.total_forced}"
            )
    us_10k = seconds[10_000] / 10_000 * 1e6 if 10_000 in seconds else float("nan")
    growth = seconds[100_000] / seconds[10_000] if {10_000, 100_000} <= set(seconds) else float("nan")
    print(f"compliance_us_per_obligation_10k={us_10k:.2f} growth_10k_to_100k={growth:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
