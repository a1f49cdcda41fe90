"""What the year's report states, read from the database in one read-only unit of work.

The year Y of a report covers:
- the market: every trade whose Asia/Shanghai trade date lies in calendar year Y, per market (instrument);
- compliance: the compliance periods of year Y of every scheme, with their stored settlement results (a period
  not yet settled is listed with its state and obligation count, and has no results);
- fines: the settled fines of those periods and the payable notices finance issued for them;
- subsidies and budgets: the programme budgets of fiscal year Y and the claims paid out of them;
- the ten largest holders per instrument kind: posted balances of enterprises' holding and trading accounts when
  the report is written (authorities' allocation and system accounts are not holders).

A year run on a sandbox's clock (`greenrights simulate`) lays its period on the sandbox's days, which are not in
calendar year Y: the caller then passes a `Coverage` naming the trade dates and the fiscal year that year used, and
the page and the PDF say so.

Amounts stay integers of their base units here (fen, tCO2e, kgce, kg, MWh); the writers format them.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Database, UnitOfWork
from core.models import LedgerAccount, LedgerAsset, Organisation
from finance.budgets import budget_figures
from finance.domain.rules import BudgetFigures
from finance.models import FinanceBudget, FinanceClaim, FinancePenalty
from registry.compliance.models import CompliancePeriod, ComplianceScheme, Obligation, SettlementResultRow
from registry.compliance.results import domain_result
from registry.domain.checks import HOLDING, TRADING
from registry.domain.industries import industry_label
from registry.domain.instruments import KIND_RULES, Kind
from registry.domain.settlement import SettlementResult, totals_by
from registry.models import Enterprise, Instrument, RegistryAccount
from registry.service import OWNER
from trading.domain.marketdata import TradePrint, Venue, daily_summary, volume_weighted_price_fen
from trading.models import BookDay, Market, Trade

HOLDERS_PER_KIND = 10
# The unit class an obligation of each scheme kind is counted in (its scale and display unit).
OBLIGATION_UNIT: dict[str, Kind] = {
    "carbon": Kind.CEA,
    "energy": Kind.ENERGY_USE,
    "discharge": Kind.DISCHARGE,
    "green_power": Kind.GEC,
}
DISBURSED_STATES = ("disbursed", "clawed_back")
_REGISTRY_OWNER = OWNER  # the ledger owner kind of registry accounts


@dataclass(frozen=True)
class MarketInfo:
    market_id: int
    instrument_id: int
    code: str
    kind: str
    scale: int
    unit: str
    label_zh: str


@dataclass(frozen=True)
class TradeRow:
    trade_id: int
    trade_date: dt.date
    at: dt.datetime
    market: MarketInfo
    venue: str
    price_fen: int
    quantity: int
    notional_fen: int


@dataclass(frozen=True)
class DayRow:
    """One market's trading day: the official close (the stored close of a closed book, else the VWAP of the
    day's on-book trades, else the previous close) and the volume-weighted price of all its trades."""

    trade_date: dt.date
    market: MarketInfo
    open_fen: int
    high_fen: int
    low_fen: int
    close_fen: int
    vwap_fen: int
    volume: int
    block_volume: int
    turnover_fen: int
    trade_count: int


@dataclass(frozen=True)
class PeriodInfo:
    period_id: int
    code: str
    scheme_code: str
    scheme_name: str
    kind: str
    status: str
    obligations: int
    settled: int
    reference_price_fen: int | None
    multiplier_k: int | None


@dataclass(frozen=True)
class ComplianceRow:
    """The settled outcome of one obligation (one per enterprise and pollutant)."""

    period_code: str
    scheme_code: str
    kind: str
    pollutant: str
    uscc: str
    name: str
    city: str
    industry: str
    obligation: int | None
    surrendered: int
    shortfall: int
    fine_fen: int
    status: str
    timeliness: str
    report_late: bool
    scale: int
    unit: str
    result: SettlementResult  # the same row as the registry's domain reads it (for `totals_by`)

    @property
    def late(self) -> bool:
        return self.timeliness == "late" or self.report_late


@dataclass
class GroupRow:
    """Totals of one scheme's results for one city or industry."""

    scheme_code: str
    kind: str
    pollutant: str
    key: str
    scale: int
    unit: str
    enterprises: int = 0
    compliant: int = 0
    shortfall_count: int = 0
    not_reported: int = 0
    on_time: int = 0
    late: int = 0
    obligation: int = 0
    surrendered: int = 0
    shortfall: int = 0
    fine_fen: int = 0


@dataclass(frozen=True)
class FineRow:
    period_code: str
    uscc: str
    name: str
    city: str
    shortfall: int
    scale: int
    unit: str
    fine_fen: int
    formula: str
    notice_no: str
    notice_status: str
    paid_fen: int


@dataclass
class SubsidyRow:
    programme: str
    city: str
    claims: int = 0
    disbursed_fen: int = 0
    clawed_back_fen: int = 0

    @property
    def net_fen(self) -> int:
        return self.disbursed_fen - self.clawed_back_fen


@dataclass(frozen=True, slots=True)
class BudgetRow(BudgetFigures):
    """A programme's budget figures (finance's own, `finance.budgets.budget_figures`) with its name."""

    programme: str
    name: str


@dataclass(frozen=True)
class HolderRow:
    kind: str
    rank: int
    name: str
    uscc: str
    balance: int
    scale: int
    unit: str


@dataclass(frozen=True)
class Coverage:
    """The trade dates (inclusive, Asia/Shanghai) and the budgets' fiscal year a report of a year reads; the
    compliance periods are always those of the report's year."""

    trades_from: dt.date
    trades_to: dt.date
    fiscal_year: int
    simulated: bool = False

    @classmethod
    def calendar(cls, year: int) -> Coverage:
        return cls(dt.date(year, 1, 1), dt.date(year, 12, 31), year)


@dataclass
class YearData:
    year: int
    generated_at: dt.datetime
    coverage: Coverage = field(default_factory=lambda: Coverage.calendar(2000))
    markets: list[MarketInfo] = field(default_factory=list)
    trades: list[TradeRow] = field(default_factory=list)
    days: list[DayRow] = field(default_factory=list)
    periods: list[PeriodInfo] = field(default_factory=list)
    compliance: list[ComplianceRow] = field(default_factory=list)
    by_city: list[GroupRow] = field(default_factory=list)
    by_industry: list[GroupRow] = field(default_factory=list)
    fines: list[FineRow] = field(default_factory=list)
    subsidies: list[SubsidyRow] = field(default_factory=list)
    budgets: list[BudgetRow] = field(default_factory=list)
    holders: list[HolderRow] = field(default_factory=list)

    def subsidies_by(self, dimension: str) -> list[SubsidyRow]:
        """The subsidy rows summed by `programme` or by `city`."""
        out: dict[str, SubsidyRow] = {}
        for r in self.subsidies:
            key = r.programme if dimension == "programme" else r.city
            g = out.setdefault(key, SubsidyRow(r.programme if dimension == "programme" else "", key))
            g.claims += r.claims
            g.disbursed_fen += r.disbursed_fen
            g.clawed_back_fen += r.clawed_back_fen
        return [out[k] for k in sorted(out)]


def coverage_lines(data: YearData) -> dict[str, str]:
    """What a report of a simulated year read besides its periods, as the page says it too (html.py and pdf.py)."""
    c = data.coverage
    if not c.simulated:
        return {}
    return {
        "交易日期": f"{c.trades_from.isoformat()} 至 {c.trades_to.isoformat()}（沙箱模拟时钟上的 {data.year} 年度）",
        "预算年度": f"{c.fiscal_year}（模拟所用财政预算）",
    }


async def load_year(db: Database, year: int, generated_at: dt.datetime, coverage: Coverage | None = None) -> YearData:
    """Everything the report of `year` states, read in one read-only transaction (one consistent snapshot)."""
    cover = coverage or Coverage.calendar(year)

    async def work(uow: UnitOfWork) -> YearData:
        ses = uow.session
        data = YearData(year=year, generated_at=generated_at, coverage=cover)
        data.markets = await _markets(ses)
        data.trades = await _trades(ses, data.markets, cover)
        data.days = await _days(ses, data.markets, data.trades, cover)
        data.periods = await _periods(ses, year)
        data.compliance = await _compliance(ses, year)
        data.by_city = _groups(data.compliance, "city")
        data.by_industry = _groups(data.compliance, "industry")
        data.fines = await _fines(ses, year)
        data.subsidies = await _subsidies(ses, cover.fiscal_year)
        data.budgets = await _budgets(ses, cover.fiscal_year)
        data.holders = await _holders(ses)
        return data

    return await db.read(work)


async def _markets(ses: AsyncSession) -> list[MarketInfo]:
    rows = await ses.execute(
        select(Market.id, Instrument.id, Instrument.code, Market.kind, LedgerAsset.scale)
        .join(Instrument, Instrument.id == Market.instrument_id)
        .join(LedgerAsset, LedgerAsset.id == Instrument.asset_id)
        .order_by(Market.id)  # type: ignore[arg-type]
    )
    out = []
    for market_id, instrument_id, code, kind, scale in rows:
        rule = KIND_RULES[Kind(kind)]
        out.append(MarketInfo(market_id, instrument_id, code, kind, int(scale), rule.display_unit, rule.label_zh))
    return out


async def _trades(ses: AsyncSession, markets: list[MarketInfo], cover: Coverage) -> list[TradeRow]:
    by_id = {m.market_id: m for m in markets}
    first, last = cover.trades_from, cover.trades_to
    rows = (
        await ses.execute(
            select(Trade)
            .where(Trade.trade_date >= first, Trade.trade_date <= last)
            .order_by(Trade.market_id, Trade.trade_date, Trade.id)  # type: ignore[arg-type]
        )
    ).scalars()
    return [
        TradeRow(t.id or 0, t.trade_date, t.at, by_id[t.market_id], t.venue, t.price_fen, t.quantity, t.notional_fen)
        for t in rows
    ]


async def _days(ses: AsyncSession, markets: list[MarketInfo], trades: list[TradeRow], cover: Coverage) -> list[DayRow]:
    first, last = cover.trades_from, cover.trades_to
    books: dict[tuple[int, dt.date], BookDay] = {
        (b.market_id, b.trade_date): b
        for b in (
            await ses.execute(select(BookDay).where(BookDay.trade_date >= first, BookDay.trade_date <= last))
        ).scalars()
    }
    prints: dict[tuple[int, dt.date], list[TradePrint]] = defaultdict(list)
    for t in trades:
        prints[(t.market.market_id, t.trade_date)].append(
            TradePrint(Venue(t.venue), t.trade_date, t.price_fen, t.quantity, t.notional_fen)
        )
    out: list[DayRow] = []
    for m in markets:
        market = await ses.get(Market, m.market_id)
        assert market is not None
        before = (
            await ses.execute(
                select(BookDay.close_fen)
                .where(BookDay.market_id == m.market_id, BookDay.trade_date < first, BookDay.status == "closed")
                .order_by(BookDay.trade_date.desc())  # type: ignore[attr-defined]
                .limit(1)
            )
        ).scalar_one_or_none()
        running = before if before is not None else market.prev_close_fen
        for day in sorted(d for (mid, d) in prints if mid == m.market_id):
            day_prints = prints[(m.market_id, day)]
            book = books.get((m.market_id, day))
            prev = book.prev_close_fen if book is not None else running
            summary = daily_summary(day_prints, day, prev, market.tick_fen)
            closed = book is not None and book.status == "closed" and book.close_fen is not None
            close = book.close_fen if closed and book is not None and book.close_fen is not None else summary.close_fen
            running = close
            vwap = volume_weighted_price_fen(day_prints)
            assert vwap is not None
            prices = [p.price_fen for p in day_prints]
            out.append(
                DayRow(
                    trade_date=day,
                    market=m,
                    open_fen=prices[0],
                    high_fen=max(prices),
                    low_fen=min(prices),
                    close_fen=close,
                    vwap_fen=vwap,
                    volume=sum(p.quantity for p in day_prints),
                    block_volume=sum(p.quantity for p in day_prints if p.venue is Venue.BLOCK),
                    turnover_fen=sum(p.notional_fen for p in day_prints),
                    trade_count=len(day_prints),
                )
            )
    return out


async def _periods(ses: AsyncSession, year: int) -> list[PeriodInfo]:
    rows = (
        await ses.execute(
            select(CompliancePeriod, ComplianceScheme)
            .join(ComplianceScheme, ComplianceScheme.id == CompliancePeriod.scheme_id)
            .where(CompliancePeriod.year == year)
            .order_by(ComplianceScheme.code, CompliancePeriod.id)  # type: ignore[arg-type]
        )
    ).all()
    out = []
    for p, sc in rows:
        obligations = (
            await ses.execute(select(func.count()).select_from(Obligation).where(Obligation.period_id == p.id))
        ).scalar_one()
        settled = (
            await ses.execute(
                select(func.count()).select_from(SettlementResultRow).where(SettlementResultRow.period_id == p.id)
            )
        ).scalar_one()
        out.append(
            PeriodInfo(
                p.id or 0,
                p.code,
                sc.code,
                sc.name,
                sc.kind,
                p.status,
                int(obligations),
                int(settled),
                p.reference_price_fen,
                p.multiplier_k,
            )
        )
    return out


async def _compliance(ses: AsyncSession, year: int) -> list[ComplianceRow]:
    rows = (
        await ses.execute(
            select(SettlementResultRow, Enterprise, CompliancePeriod, ComplianceScheme)
            .join(Enterprise, Enterprise.id == SettlementResultRow.enterprise_id)
            .join(CompliancePeriod, CompliancePeriod.id == SettlementResultRow.period_id)
            .join(ComplianceScheme, ComplianceScheme.id == CompliancePeriod.scheme_id)
            .where(CompliancePeriod.year == year)
            .order_by(ComplianceScheme.code, Enterprise.uscc, SettlementResultRow.pollutant)  # type: ignore[arg-type]
        )
    ).all()
    out = []
    for r, e, p, sc in rows:
        rule = KIND_RULES[OBLIGATION_UNIT[r.kind]]
        out.append(
            ComplianceRow(
                period_code=p.code,
                scheme_code=sc.code,
                kind=r.kind,
                pollutant=r.pollutant,
                uscc=e.uscc,
                name=e.name,
                city=r.city,
                industry=r.industry,
                obligation=r.obligation,
                surrendered=r.surrendered,
                shortfall=r.shortfall,
                fine_fen=r.fine_fen,
                status=r.status,
                timeliness=r.timeliness,
                report_late=r.report_late,
                scale=rule.scale,
                unit=rule.display_unit,
                result=domain_result(r),
            )
        )
    return out


def _groups(rows: list[ComplianceRow], dimension: Literal["city", "industry"]) -> list[GroupRow]:
    """Totals per scheme (and pollutant) and city or industry, as the registry's compliance report counts them
    (`registry.domain.settlement.totals_by`: late is a late surrender); quantities add up only within one scheme."""
    by_scheme: dict[str, list[ComplianceRow]] = defaultdict(list)
    for r in rows:
        by_scheme[r.scheme_code].append(r)
    out: list[GroupRow] = []
    for scheme_code, scheme_rows in sorted(by_scheme.items()):
        first = scheme_rows[0]
        for g in totals_by([r.result for r in scheme_rows], dimension):
            out.append(
                GroupRow(
                    scheme_code=scheme_code,
                    kind=first.kind,
                    pollutant=g.pollutant or "",
                    key=g.key if dimension == "city" else industry_label(g.key),  # "C3011 水泥制造"
                    scale=first.scale,
                    unit=first.unit,
                    enterprises=g.enterprises,
                    compliant=g.compliant,
                    shortfall_count=g.shortfall_count,
                    not_reported=g.not_reported,
                    on_time=g.enterprises - g.late,
                    late=g.late,
                    obligation=g.obligation,
                    surrendered=g.surrendered,
                    shortfall=g.shortfall,
                    fine_fen=g.fine_fen,
                )
            )
    return out


async def _fines(ses: AsyncSession, year: int) -> list[FineRow]:
    rows = (
        await ses.execute(
            select(SettlementResultRow, Enterprise, CompliancePeriod)
            .join(Enterprise, Enterprise.id == SettlementResultRow.enterprise_id)
            .join(CompliancePeriod, CompliancePeriod.id == SettlementResultRow.period_id)
            .where(CompliancePeriod.year == year, SettlementResultRow.fine_fen > 0)
            .order_by(SettlementResultRow.fine_fen.desc(), Enterprise.uscc)  # type: ignore[attr-defined]
        )
    ).all()
    notices = {
        n.obligation_id: n
        for n in (
            await ses.execute(
                select(FinancePenalty).where(
                    FinancePenalty.period_id.in_({p.id for _, _, p in rows})  # type: ignore[attr-defined]
                )
            )
        ).scalars()
    }
    out = []
    for r, e, p in rows:
        rule = KIND_RULES[OBLIGATION_UNIT[r.kind]]
        n = notices.get(r.obligation_id)
        out.append(
            FineRow(
                period_code=p.code,
                uscc=e.uscc,
                name=e.name,
                city=r.city,
                shortfall=r.shortfall,
                scale=rule.scale,
                unit=rule.display_unit,
                fine_fen=r.fine_fen,
                formula=r.fine_formula,
                notice_no=n.notice_no if n is not None else "",
                notice_status=n.status if n is not None else "none",
                paid_fen=n.paid_fen if n is not None else 0,
            )
        )
    return out


async def _subsidies(ses: AsyncSession, year: int) -> list[SubsidyRow]:
    rows = (
        await ses.execute(
            select(FinanceClaim, Enterprise.city)
            .join(FinanceBudget, FinanceBudget.id == FinanceClaim.budget_id)
            .join(Enterprise, Enterprise.id == FinanceClaim.enterprise_id)
            .where(
                FinanceBudget.fiscal_year == year,
                FinanceClaim.state.in_(DISBURSED_STATES),  # type: ignore[attr-defined]
            )
        )
    ).all()
    groups: dict[tuple[str, str], SubsidyRow] = {}
    for c, city in rows:
        g = groups.setdefault((c.programme, city), SubsidyRow(c.programme, city))
        g.claims += 1
        g.disbursed_fen += c.amount_fen
        g.clawed_back_fen += c.clawed_back_fen
    return [groups[k] for k in sorted(groups)]


async def _budgets(ses: AsyncSession, year: int) -> list[BudgetRow]:
    budgets = (
        await ses.execute(
            select(FinanceBudget).where(FinanceBudget.fiscal_year == year).order_by(FinanceBudget.programme)
        )
    ).scalars()
    out = []
    for b in budgets:
        f = await budget_figures(ses, b)
        out.append(
            BudgetRow(
                programme=b.programme,
                name=b.name,
                appropriated_fen=f.appropriated_fen,
                committed_fen=f.committed_fen,
                disbursed_fen=f.disbursed_fen,
                clawed_back_fen=f.clawed_back_fen,
            )
        )
    return out


async def _holders(ses: AsyncSession) -> list[HolderRow]:
    balance = LedgerAccount.credits_posted - LedgerAccount.debits_posted
    rows = (
        await ses.execute(
            select(Instrument.kind, RegistryAccount.organisation_id, func.sum(balance))
            .join(LedgerAsset, LedgerAsset.id == LedgerAccount.asset_id)
            .join(Instrument, Instrument.asset_id == LedgerAsset.id)
            .join(RegistryAccount, RegistryAccount.id == LedgerAccount.owner_id)
            .where(
                LedgerAccount.owner_kind == _REGISTRY_OWNER,
                RegistryAccount.type.in_((HOLDING, TRADING)),  # type: ignore[attr-defined]
            )
            .group_by(Instrument.kind, RegistryAccount.organisation_id)
        )
    ).all()
    names = dict((await ses.execute(select(Organisation.id, Organisation.name))).all())
    usccs = dict((await ses.execute(select(Enterprise.organisation_id, Enterprise.uscc))).all())
    per_kind: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for kind, org_id, total in rows:
        if int(total or 0) > 0:
            per_kind[kind].append((int(total), org_id))
    out = []
    for kind in (k.value for k in Kind):
        rule = KIND_RULES[Kind(kind)]
        # Largest first; equal balances in organisation order, so the same database gives the same list.
        ranked = sorted(per_kind.get(kind, []), key=lambda t: (-t[0], t[1]))[:HOLDERS_PER_KIND]
        for rank, (total, org_id) in enumerate(ranked, 1):
            out.append(
                HolderRow(
                    kind, rank, names.get(org_id, ""), usccs.get(org_id, ""), total, rule.scale, rule.display_unit
                )
            )
    return out
