"""The surveillance scan and the regulator's alert queue.

`scan_day` reads one trading day of every market (its books' trades and orders, and who holds the units at the end
of it), runs the rules of rules.py and stores each alert once (`dedupe_key`): the nightly job fired twice, or a
regulator's re-run, adds nothing. The regulator lists alerts and moves each to investigating, dismissed or confirmed
with a note; every change is audited.
"""

from __future__ import annotations

import datetime as dt
import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, ClassVar

import msgspec
import yaml
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import SHANGHAI
from core.db import UnitOfWork
from core.errors import AppError, InvalidInput, NotFound
from core.identity import Identity
from core.models import LedgerAccount
from core.schema import Code, Note, about
from registry.domain import checks
from registry.models import Instrument, RegistryAccount
from registry.service import OWNER
from trading.context import TradingContext
from trading.domain.sessions import LISTED_SESSIONS
from trading.models import BookDay, Market, Order, Trade
from trading.surveillance import rules
from trading.surveillance.models import SurveillanceAlert

STATUSES = ("open", "investigating", "dismissed", "confirmed")
THRESHOLDS = Path(__file__).with_name("thresholds.yaml")


@lru_cache(maxsize=1)
def thresholds() -> rules.Thresholds:
    values = yaml.safe_load(THRESHOLDS.read_text(encoding="utf-8")) or {}
    return rules.Thresholds(**{k: int(v) for k, v in values.items()})


class AlertOut(msgspec.Struct, kw_only=True):
    """A surveillance alert with its evidence (trade and order ids, the figures the rule measured) and status."""

    id: int
    instrument_id: int
    trade_date: dt.date
    pattern: str
    severity: str
    organisation_id: int | None
    detail: str
    trade_ids: list[int]
    order_ids: list[int]
    figures: dict[str, Any]
    status: str
    note: str
    created_at: dt.datetime
    updated_at: dt.datetime | None


class ResolveAlert(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The regulator's handling of an alert."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"status": "investigating", "note": "调取两账户开户资料核查关联关系"}

    status: Annotated[Code, about("investigating, dismissed or confirmed.")]
    note: Annotated[Note, about("What was found or done; required to dismiss or confirm.")]


class ScanOut(msgspec.Struct, kw_only=True):
    """A scan of one trading day: markets scanned, alerts found and newly stored."""

    trade_date: dt.date
    markets: int
    found: int
    stored: int


def alert_out(a: SurveillanceAlert) -> AlertOut:
    ev = json.loads(a.evidence)
    return AlertOut(
        id=a.id or 0,
        instrument_id=a.instrument_id,
        trade_date=a.trade_date,
        pattern=a.pattern,
        severity=a.severity,
        organisation_id=a.organisation_id,
        detail=a.detail,
        trade_ids=ev.get("trade_ids", []),
        order_ids=ev.get("order_ids", []),
        figures=ev.get("figures", {}),
        status=a.status,
        note=a.note,
        created_at=a.created_at,
        updated_at=a.updated_at,
    )


async def _day_inputs(
    ses: AsyncSession, market: Market, day: dt.date
) -> tuple[list[rules.TradeEv], list[rules.OrderEv], BookDay | None]:
    trades = [
        rules.TradeEv(
            id=t.id or 0,
            at=t.at,
            price_fen=t.price_fen,
            quantity=t.quantity,
            notional_fen=t.notional_fen,
            buyer_org=t.buyer_organisation_id,
            seller_org=t.seller_organisation_id,
            buy_order_id=t.buy_order_id,
            sell_order_id=t.sell_order_id,
        )
        for t in (
            await ses.execute(
                select(Trade)
                .where(Trade.instrument_id == market.instrument_id, Trade.trade_date == day)
                .order_by(Trade.at, Trade.id)
            )
        ).scalars()
    ]
    orders = [
        rules.OrderEv(
            id=o.id or 0,
            org=o.organisation_id,
            side=o.side,
            price_fen=o.price_fen,
            quantity=o.quantity,
            filled=o.filled_quantity,
            cancelled=o.cancelled_quantity,
            placed_at=o.created_at,
            ended_at=o.updated_at,
            status=o.status,
        )
        for o in (
            await ses.execute(
                select(Order).where(Order.instrument_id == market.instrument_id, Order.trade_date == day)
            )
        ).scalars()
    ]
    book = (
        await ses.execute(select(BookDay).where(BookDay.market_id == market.id, BookDay.trade_date == day).limit(1))
    ).scalar_one_or_none()
    return trades, orders, book


async def _holdings_by_org(ses: AsyncSession, instrument_id: int) -> dict[int, int]:
    inst = await ses.get(Instrument, instrument_id)
    if inst is None:
        return {}
    rows = await ses.execute(
        select(RegistryAccount.organisation_id, func.sum(LedgerAccount.credits_posted - LedgerAccount.debits_posted))
        .join(RegistryAccount, RegistryAccount.id == LedgerAccount.owner_id)
        .where(
            LedgerAccount.owner_kind == OWNER,
            LedgerAccount.asset_id == inst.asset_id,
            RegistryAccount.type.in_(checks.USER_ACCOUNT_TYPES),  # type: ignore[attr-defined]
            RegistryAccount.type != checks.ALLOCATION,
        )
        .group_by(RegistryAccount.organisation_id)
    )
    return {int(org): int(units or 0) for org, units in rows}


def find(
    trades: list[rules.TradeEv],
    orders: list[rules.OrderEv],
    holdings: dict[int, int],
    day: dt.date,
    prev_close_fen: int,
    band_bps: int,
    th: rules.Thresholds,
) -> list[rules.Alert]:
    """Every rule over one market's day."""
    end = LISTED_SESSIONS.windows[-1].end
    session_end = dt.datetime.combine(day, end, tzinfo=SHANGHAI)
    return [
        *rules.wash_trades(trades),
        *rules.layering(orders, trades, th),
        *rules.marking_the_close(trades, session_end, th),
        *rules.concentration(holdings, th),
        *rules.against_the_band(trades, prev_close_fen, band_bps, th),
    ]


async def scan_day(ctx: TradingContext, day: dt.date) -> ScanOut:
    """Scan every market's `day` and store the alerts found (each once)."""
    now = ctx.clock.now()
    th = thresholds()

    async def work(uow: UnitOfWork) -> ScanOut:
        ses = uow.session
        markets = list((await ses.execute(select(Market).order_by(Market.id))).scalars())
        found = stored = 0
        for m in markets:
            trades, orders, book = await _day_inputs(ses, m, day)
            if not trades and not orders:
                continue
            holdings = await _holdings_by_org(ses, m.instrument_id)
            prev_close = book.prev_close_fen if book is not None else m.prev_close_fen
            band = book.band_bps if book is not None else m.band_bps
            for a in find(trades, orders, holdings, day, prev_close, band, th):
                found += 1
                key = f"{m.instrument_id}:{day.isoformat()}:{a.key}"[:300]
                exists = (
                    await ses.execute(select(SurveillanceAlert.id).where(SurveillanceAlert.dedupe_key == key))
                ).first()
                if exists is not None:
                    continue
                evidence = {"trade_ids": list(a.trade_ids), "order_ids": list(a.order_ids), "figures": a.figures}
                await ses.execute(
                    insert(SurveillanceAlert).values(
                        instrument_id=m.instrument_id,
                        trade_date=day,
                        pattern=a.pattern,
                        severity=a.severity,
                        organisation_id=a.organisation_id,
                        detail=a.detail[:500],
                        evidence=json.dumps(evidence, separators=(",", ":")),
                        status="open",
                        note="",
                        dedupe_key=key,
                        created_at=now,
                    )
                )
                stored += 1
        if stored:
            uow.audit("system:surveillance", "surveillance.scan", "trade_date", day.isoformat(), {"stored": stored})
        return ScanOut(trade_date=day, markets=len(markets), found=found, stored=stored)

    return await ctx.db.run(work)


async def list_alerts(
    ctx: TradingContext, who: Identity, *, status: str | None, pattern: str | None, limit: int, before_id: int | None
) -> list[AlertOut]:
    if status is not None and status not in STATUSES:
        raise InvalidInput("status", f"Use one of {', '.join(STATUSES)}.")

    async def work(uow: UnitOfWork) -> list[AlertOut]:
        q = select(SurveillanceAlert)
        if status is not None:
            q = q.where(SurveillanceAlert.status == status)
        if pattern is not None:
            q = q.where(SurveillanceAlert.pattern == pattern)
        if before_id is not None:
            q = q.where(SurveillanceAlert.id < before_id)
        rows = await uow.session.execute(q.order_by(SurveillanceAlert.id.desc()).limit(limit))  # type: ignore[union-attr]
        return [alert_out(a) for a in rows.scalars()]

    return await ctx.db.read(work)


async def resolve_alert(ctx: TradingContext, who: Identity, alert_id: int, req: ResolveAlert) -> AlertOut:
    if req.status not in ("investigating", "dismissed", "confirmed"):
        raise InvalidInput("status", "Move an alert to investigating, dismissed or confirmed.")
    note = req.note.strip()
    if req.status in ("dismissed", "confirmed") and not note:
        raise InvalidInput("note", "Say why the alert is dismissed or confirmed.")
    if len(note) > 1000:
        raise InvalidInput("note", "Keep the note under 1,000 characters.")
    now = ctx.clock.now()

    async def work(uow: UnitOfWork) -> AlertOut:
        a = await uow.session.get(SurveillanceAlert, alert_id)
        if a is None:
            raise NotFound("surveillance alert", field="alert_id")
        if a.status in ("dismissed", "confirmed"):
            if a.status == req.status and a.note == note:
                return alert_out(a)
            raise AppError("invalid-state", f"Alert {alert_id} is already {a.status}.")
        a.status, a.note, a.updated_by, a.updated_at = req.status, note, who.principal_id, now
        uow.session.add(a)
        uow.audit(who.actor, "surveillance.resolve", "alert", str(alert_id), {"status": req.status})
        return alert_out(a)

    return await ctx.db.run(work)
