"""`greenrights simulate`: the driver of one simulated province-year and its final state digest.

After the scenario is loaded, everything goes through the public HTTP API with the SDK (`greenrights.client`), and
time passes on the sandbox clock only (`advanceSandboxClock`). The year is laid on working days of the published
calendar after the simulated now: months 1-12 are twelve trading days, the compliance calendar's dates fall on them
(reports due in month 3, verification in month 6, the allocation table in month 7, the surrender deadline in month
12), the settlement runs in the night after the deadline, and penalty notices and bank queries follow on the next
working day.

The same seed gives the same digest: all randomness is `random.Random(seed)`, the driver makes its calls one at a
time, and the digest is a SHA-256 over a canonical dump of the final holdings, fund balances, trades, compliance
results, fines, claims and disbursements, without ids, dates or times (which depend on the day the run starts).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core import figures
from core.clock import SHANGHAI
from server.simulate import agents, compliance, energy, incentives
from server.simulate.common import MONTHS, Enterprise, Run, working_days_after
from server.simulate.world import World, attach, prepare_database, start_embedded

DAYS_NEEDED = MONTHS + 1
STEPS = MONTHS + 6  # the progress bar's steps: `year` reports 17 of them, the final state one
AUCTION_T = 100_000


def _quiet_logs() -> None:
    """The embedded server's request and job logs would drown the progress bar: warnings only."""
    logging.getLogger().setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "greenrights"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.ERROR)


async def _enterprises(run: Run) -> None:
    """Who is who, from the API (ids, organisations, accounts) and the files (sector, emissions); this year's
    emissions, final allocation and needs drawn from the seed."""
    w, rng = run.world, run.rng
    listed: dict[str, Any] = {}
    async for ent in w.authority("regulator").pages("listEnterprises", query={"limit": 200}):
        listed[ent.uscc] = ent
    for inst in await run.regulator.call("listInstruments"):
        run.instruments[inst.code] = inst
    await agents.refresh_markets(run)
    for row in w.sc.emitters:
        ent, key = listed[row.uscc], w.keys.enterprises[row.uscc]
        emissions = row.emissions_t * rng.randint(980, 1020) // 1000
        final = row.emissions_t * rng.randint(970, 1060) // 1000  # the province allocates a little long
        run.enterprises.append(
            Enterprise(
                row.uscc,
                row.name,
                row.city,
                row.sector,
                ent.id,
                ent.organisation_id,
                key.ref,
                row.cea_pre_allocation_t,
                emissions,
                max(final, row.cea_pre_allocation_t),
            )
        )
    for e in run.enterprises:
        for h in await run.client(e).call("listHoldings", account_id=e.account_id):
            if h.instrument.kind in ("energy_use", "discharge") and h.instrument.code in run.markets:
                unit = 10**h.instrument.scale
                e.energy[h.instrument.code] = h.balance_base * rng.randint(930, 1050) // 1000 // unit * unit
    n = max(1, len(run.enterprises) // 12)
    for e in rng.sample(run.enterprises, n):
        e.laggard = True
    mm = w.sc.market_maker
    if mm is not None and mm.uscc in listed:
        ent = listed[mm.uscc]
        key = w.keys.enterprises[mm.uscc]
        run.market_maker = Enterprise(
            mm.uscc,
            mm.name,
            mm.city,
            "market_maker",
            ent.id,
            ent.organisation_id,
            key.ref,
            0,
            0,
            0,
            allocation_posted=True,
        )


async def _trading_day(run: Run, month: int, *, block: bool = False) -> None:
    """One month's trading day: the morning session on every market, a block trade in the afternoon if `block`,
    the close."""
    day = run.days[month - 1]
    await run.clock_to(day, 9, 35)
    await agents.refresh_markets(run)
    await agents.listed_session(run, month)
    await agents.continuous_sessions(run, month)
    if block:
        await run.clock_to(day, 13, 30)
        await agents.block_trade(run)
    await run.clock_to(day, 15, 10)
    await agents.close_day(run, day)


async def year(run: Run, step: Callable[[str], None]) -> None:
    """The simulated year, phase by phase; `step` reports progress."""
    d = run.days
    await _enterprises(run)
    await energy.farms(run)
    await energy.open_markets(run)
    step("the finance bureau's budgets, claims and tax reliefs")
    await incentives.budgets_for_now(run)
    await incentives.submit_claims(run)
    await incentives.tax_reliefs(run)
    step("the compliance period and its obligations")
    await compliance.open_period(run)
    await energy.open_period(run)
    for month in range(1, MONTHS + 1):
        step(f"month {month}: trading")
        day = d[month - 1]
        if month == 5:
            await run.clock_to(day, 9, 0)
            await incentives.finalise_and_disburse(run)
        if month == 7:
            await run.clock_to(day, 9, 0)
            await compliance.issue_for_allocation(run, AUCTION_T)
            await compliance.allocation_table(run)
            await run.clock_to(day, 9, 20)
            await agents.primary_auction(run, AUCTION_T)
        await _trading_day(run, month, block=month == 4)
        if month == 3:
            await run.clock_to(day, 16, 0)
            await compliance.submit_reports(run)
            await energy.submit_reports(run)
        if month == 5:
            await run.clock_to(day, 16, 0)
            await compliance.verify_reports(run)
            await energy.verify_reports(run)
        if month == 8:
            await run.clock_to(day, 16, 0)
            await incentives.finalise_and_disburse(run)
    step("reference price and surrender at the deadline")
    await run.clock_to(d[MONTHS - 1], 16, 0)
    await compliance.reference_price(run, await _vwap(run))
    await compliance.surrender(run)
    await energy.retire_certificates(run)
    await energy.surrender(run)
    step("the settlement after the deadline")
    after = d[MONTHS - 1] + dt.timedelta(days=1)
    await run.clock_to(after, 0, 10)
    await compliance.await_settlement(run, run.period, run.regulator)
    if run.energy_period is not None:
        await compliance.await_settlement(run, run.energy_period, run.world.authority("energy_authority"))
    step("penalty notices, green-credit queries")
    await run.clock_to(d[MONTHS], 9, 0)
    await incentives.penalties(run)
    await incentives.green_credit(run)


async def _trades(run: Run) -> list[Any]:
    out = []
    for code, m in sorted(run.markets.items()):
        async for t in run.regulator.pages("listTrades", query={"limit": 500}, instrument_id=m.instrument_id):
            out.append((code, t))
    return out


async def _vwap(run: Run) -> int:
    code = next(c for c, i in run.instruments.items() if i.kind == "cea")
    trades = [t for c, t in await _trades(run) if c == code and t.venue == "listed"]
    qty = sum(t.quantity_base for t in trades)
    if not qty:
        return int(run.markets[code].prev_close_fen)
    return (sum(t.price_fen * t.quantity_base for t in trades) * 2 + qty) // (2 * qty)


async def state(run: Run) -> dict[str, Any]:
    """The final state, canonical: no ids, no dates or times (trades name their simulated month)."""
    holdings, funds = [], []
    for e in run.everyone():
        for h in await run.client(e).call("listHoldings", account_id=e.account_id):
            if h.balance_base:
                holdings.append([e.uscc, h.instrument.code, h.balance_base])
        funds.append([e.uscc, (await run.client(e).call("getFundAccount")).balance_fen])
    trades = sorted(
        [code, run.month_of(t.trade_date), t.venue, t.price_fen, t.quantity_base, t.taker_side or ""]
        for code, t in await _trades(run)
    )
    results = sorted(
        [
            r.uscc,
            r.kind,
            r.pollutant or "",
            r.status,
            r.timeliness,
            r.obligation,
            r.surrendered,
            r.shortfall,
            r.fine_fen,
            r.next_allocation_deduction,
        ]
        for r in await compliance.results(run)
    )
    fines = sorted(
        [f.uscc, f.kind, f.shortfall_at_deadline, f.fine_fen] for f in await run.regulator.call("listComplianceFines")
    )
    approver = run.world.authority("finance_approver")
    claims = sorted(
        [c.enterprise_uscc, c.programme, c.project_ref, c.state, c.amount_fen]
        for c in [await approver.call("getClaim", claim_id=cid) for cid in run.claims]
    )
    disbursed = sum(b.total_fen for b in await approver.call("listDisbursements"))
    penalties = sorted(
        [p.enterprise_uscc, p.status, int(p.amount_due_fen)] for p in await approver.call("listPenalties")
    )
    return {
        "holdings": sorted(holdings),
        "funds": sorted(funds),
        "trades": trades,
        "results": results,
        "fines": fines,
        "claims": claims,
        "disbursed_fen": disbursed,
        "penalties": penalties,
    }


def canonical(final: dict[str, Any]) -> str:
    return json.dumps(final, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(final: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(final).encode("utf-8")).hexdigest()


class _Progress:
    """A rich progress bar on a terminal (stderr), nothing otherwise."""

    def __init__(self, total: int) -> None:
        self.bar: Any = None
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(
                TextColumn("{task.description:<48}"),
                BarColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task("loading the scenario", total=total)

    def __call__(self, what: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=1, description=what)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


async def _drive(world: World, seed: int, year_: int, progress: _Progress) -> tuple[Run, dict[str, Any]]:
    try:
        clock = await world.authority("regulator").call("getSandboxClock")
        today = clock.now.astimezone(SHANGHAI).date()
        days = working_days_after(today, DAYS_NEEDED)
        run = Run(world, random.Random(seed), year_, days, today)
        await year(run, progress)
        progress("the final state")
        return run, await state(run)
    finally:
        await world.close()


def _audit_lines() -> tuple[bool, list[str]]:
    """`greenrights audit verify` and `greenrights audit reconcile`, on the database this process points at."""
    from server.cli import _audit_reconcile, _audit_verify

    ok, count, message = asyncio.run(_audit_verify())
    lines = [f"audit verify: {message}: {count} entries checked"]
    report = asyncio.run(_audit_reconcile())
    problems = report.ledger_differences
    lines += [f"DIFFERENCE {p}" for p in problems]
    verdict = "ledger reconciled" if not problems else f"ledger NOT reconciled: {len(problems)} differences"
    lines.append(f"audit reconcile: {verdict}: {report.accounts} accounts, {report.transfers} transfers checked")
    lines += [f"  {line}" for line in report.lines()]
    mismatched = report.mismatched
    lines.append(
        f"audit reconcile: circulation reconciled: {len(report.units)} instruments and CNY"
        if not mismatched
        else f"audit reconcile: circulation NOT reconciled: MISMATCH in {', '.join(mismatched)}"
    )
    return ok and report.ok, [*lines, f"transfers={report.transfers}"]


def simulate(scenario: str, year_: int, seed: int, url: str | None, enterprises: int | None) -> int:
    """The command; returns the exit status (1 when the audit chain or the reconciliation fails)."""
    started = time.monotonic()
    progress = _Progress(total=STEPS)

    async def go() -> tuple[Run, dict[str, Any], list[str]]:
        if url is None:
            world = await start_embedded(scenario, folder, db_url, enterprises, load_lines)
            _quiet_logs()
        else:
            world = await attach(scenario, url, enterprises)
            _quiet_logs()
        run, final = await _drive(world, seed, year_, progress)
        return run, final, world.load_lines

    try:
        if url is None:
            folder, db_url, load_lines = prepare_database(scenario, year_, seed, enterprises)
        run, final, lines = asyncio.run(go())
    finally:
        progress.stop()
    for line in lines:
        print(line)
    print(_summary(run, final))
    for note in run.notes:
        print(f"note: {note}")
    ok, audit = _audit_lines()
    transfers = audit.pop()
    for line in audit:
        print(line)
    report = _write_report(run)
    print(f"year report: {report[0].parent}/ ({len(report)} files: index.html, report.pdf, open data; served at "
          f"/reports/{run.year}/)")  # fmt: skip
    trades = len(final["trades"])
    claims = len(final["claims"])
    seconds = round(time.monotonic() - started)
    hexd = digest(final)
    out = Path("var") / f"simulate-{year_}-{seed}" / "final-state.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(canonical(final), encoding="utf-8")
    print(f"final state: {out} (its SHA-256 is the digest)")
    print(
        f"simulate_seconds={seconds} enterprises={len(run.enterprises)} trades={trades} "
        f"{transfers} claims={claims} state_digest={hexd}"
    )
    print(f"digest={hexd}")
    return 0 if ok else 1


def _write_report(run: Run) -> list[Path]:
    """The year's report (server/yearreport) into var/reports/<year>/, from the database this process points at:
    the period's compliance, the trades of the sandbox days the year ran on and the fiscal year its budgets are of,
    dated by the sandbox's clock."""
    from core.db import Database
    from core.sandbox import clock_for
    from core.settings import get_settings
    from server.yearreport import write_year_report
    from server.yearreport.queries import Coverage

    url = get_settings().database_url
    coverage = Coverage(run.days[0], run.days[-1], run.days[0].year, simulated=True)

    async def write() -> list[Path]:
        db = Database(url)
        try:
            return await write_year_report(db, run.year, clock=clock_for(url), coverage=coverage)
        finally:
            await db.dispose()

    return asyncio.run(write())


def _summary(run: Run, final: dict[str, Any]) -> str:
    c = run.counts
    by_market: dict[str, int] = {}
    for t in final["trades"]:
        by_market[f"{t[0]} {t[2]}"] = by_market.get(f"{t[0]} {t[2]}", 0) + 1
    status: dict[str, int] = {}
    for r in final["results"]:
        status[r[3]] = status.get(r[3], 0) + 1
    fines = sum(f[3] for f in final["fines"])
    refused = {k.removeprefix("refused:"): v for k, v in sorted(c.items()) if k.startswith("refused:")}
    return "\n".join(
        [
            f"simulated {run.year} on the sandbox clock, {run.days[0]} to {run.days[-1]} "
            f"({len(run.enterprises)} emitters, seed-drawn emissions and allocation)",
            "  trades: " + ", ".join(f"{k} {v}" for k, v in sorted(by_market.items())),
            f"  reports: {c['reports_json']} JSON, {c['reports_excel']} Excel "
            f"({sum(v for k, v in c.items() if k.startswith('reports_refused'))} refused files corrected), "
            f"{c['reports_verified']} verified ({c['reports_corrected']} corrected by the verifier)",
            f"  allocation table: {c['allocation_lines']} lines approved by the second regulator; auction "
            + ", ".join(f"{k.split(':')[1]} {v}" for k, v in c.items() if k.startswith("auction:"))
            + f" ({c['bids']} bids); block trades {c['block_trades']}",
            f"  surrenders: {c['surrender_full']} in full, {c['surrender_short']} short, {c['surrender_none']} none; "
            "results "
            + ", ".join(f"{k} {v}" for k, v in sorted(status.items()))
            + f"; fines {len(final['fines'])} ({figures.yuan(fines, unit=True)})",
            f"  claims: {len(final['claims'])} ({', '.join(sorted({x[3] for x in final['claims']}))}), disbursed "
            f"{figures.yuan(final['disbursed_fen'], unit=True)}; tax-relief evaluations {c['evaluations']}, "
            f"credit positions {c['credit_positions']}",
            f"  energy use: {c['energy_obligations']} obligations, {c['energy_reports']} reports, "
            f"{c['energy_reports_verified']} verified; {c['gec_retirements']} green-certificate retirements "
            f"({figures.quantity(c['gec_retired_mwh'])} MWh); {c['energy_surrenders']} surrenders",
            f"  settlement: by the scheduler {c['settled_by_scheduler']}; penalty notices {c['penalty_notices']} "
            f"({c['penalties_paid']} paid); consents {c['consents']}, green-credit queries {c['green_credit_queries']}",
            "  refused on purpose or by the market: " + (", ".join(f"{k} {v}" for k, v in refused.items()) or "none"),
        ]
    )
