"""Markets: the issuing authority opens trading in an instrument (listed agreement or continuous mode) with its
reference price, tick, lot, maximum order size, price bands and fees; what never changes about a market is cached
per process (`market_info`), and every use case finds a market by its instrument.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import figures
from core.db import UnitOfWork
from core.errors import AppError, Conflict, Forbidden, InvalidInput
from core.identity import Identity
from core.quantity import parse_money_fen, parse_quantity
from registry.domain.instruments import KIND_RULES, Kind
from registry.models import Instrument
from trading import schemas as s
from trading._common import BLOCK_QUANTITY_MIN_DISPLAY, DEFAULT_QUANTITY_MAX_DISPLAY, kind_scale, qty
from trading.context import MarketInfo, TradingContext
from trading.domain.bands import price_band
from trading.domain.money import base_per_display
from trading.models import Market


async def market_info(ctx: TradingContext, instrument_id: int) -> MarketInfo:
    info = ctx.markets.get(instrument_id)
    if info is not None:
        return info

    async def work(uow: UnitOfWork) -> MarketInfo:
        market = await find_market(uow.session, instrument_id)
        inst = await ctx.registry._instrument(uow.session, instrument_id)
        return MarketInfo(market.id or 0, instrument_id, inst.asset_id, market.kind, kind_scale(market.kind))

    info = await ctx.db.read(work)
    ctx.markets[instrument_id] = info
    return info


async def find_market(ses: AsyncSession, instrument_id: int) -> Market:
    market = (await ses.execute(select(Market).where(Market.instrument_id == instrument_id))).scalar_one_or_none()
    if market is None:
        raise AppError("not-found", "No market trades this instrument.", field="instrument_id")
    return market


async def create_market(
    ctx: TradingContext, who: Identity, req: s.CreateMarket, request_key: str | None
) -> s.MarketOut:
    reference_fen = parse_money_fen(req.reference_price, field="reference_price")

    async def work(uow: UnitOfWork) -> s.MarketOut:
        ses = uow.session
        inst = await ctx.registry._instrument(ses, req.instrument_id)
        kind = Kind(inst.kind)
        if KIND_RULES[kind].issuer_role != who.role.value:
            raise Forbidden(f"Only the {KIND_RULES[kind].issuer_role} opens markets for {kind.value}.")
        if not inst.tradable:
            raise AppError("not-tradable", "These units may only be claimed, not traded.", field="instrument_id")
        if (await ses.execute(select(Market.id).where(Market.instrument_id == inst.id))).first():
            raise Conflict("duplicate", "A market for this instrument exists.", field="instrument_id")
        scale = kind_scale(inst.kind)
        tick_fen = parse_money_fen(req.tick, field="tick")
        lot_quantity = 1 if req.lot is None else parse_quantity(req.lot, scale=scale, field="lot")
        if tick_fen > reference_fen:
            raise InvalidInput("tick", "The tick must not exceed the reference price.")
        per = base_per_display(scale)
        quantity_max = (
            DEFAULT_QUANTITY_MAX_DISPLAY * per
            if req.quantity_max is None
            else parse_quantity(req.quantity_max, scale=scale, field="quantity_max")
        )
        market = Market(
            instrument_id=inst.id or 0,
            kind=inst.kind,
            mode=req.mode,
            prev_close_fen=reference_fen,
            band_bps=req.band_bps,
            block_band_bps=req.block_band_bps,
            tick_fen=tick_fen,
            lot_quantity=lot_quantity,
            quantity_max=quantity_max,
            block_quantity_min=BLOCK_QUANTITY_MIN_DISPLAY * per,
            taker_fee_bps=req.taker_fee_bps,
            maker_fee_bps=req.maker_fee_bps,
            stp=req.stp,
            created_by=who.principal_id,
            created_at=ctx.clock.now(),
        )
        ses.add(market)
        await ses.flush()
        uow.audit(
            who.actor,
            "market.create",
            "market",
            str(market.id),
            {"instrument": inst.code, "mode": req.mode, "reference_price_fen": reference_fen},
        )
        return market_out(market, inst)

    return await ctx.db.run(work)


async def list_markets(ctx: TradingContext) -> list[s.MarketOut]:
    async def work(uow: UnitOfWork) -> list[s.MarketOut]:
        ses = uow.session
        markets = (await ses.execute(select(Market).order_by(Market.id))).scalars().all()  # type: ignore[arg-type]
        return [market_out(m, await ctx.registry._instrument(ses, m.instrument_id)) for m in markets]

    return await ctx.db.read(work)


def market_out(m: Market, inst: Instrument) -> s.MarketOut:
    band = price_band(m.prev_close_fen, m.band_bps, m.tick_fen)
    block = price_band(m.prev_close_fen, m.block_band_bps, m.tick_fen)
    rule = KIND_RULES[Kind(m.kind)]
    return s.MarketOut(
        id=m.id or 0,
        instrument_id=m.instrument_id,
        instrument_code=inst.code,
        kind=m.kind,
        mode=m.mode,
        status=m.status,
        display_unit=rule.display_unit,
        prev_close=figures.yuan_plain(m.prev_close_fen),
        prev_close_fen=m.prev_close_fen,
        last_close_date=m.last_close_date,
        band_lower=figures.yuan_plain(band.lower_fen),
        band_upper=figures.yuan_plain(band.upper_fen),
        band_lower_fen=band.lower_fen,
        band_upper_fen=band.upper_fen,
        block_band_lower=figures.yuan_plain(block.lower_fen),
        block_band_upper=figures.yuan_plain(block.upper_fen),
        band_bps=m.band_bps,
        block_band_bps=m.block_band_bps,
        tick=figures.yuan_plain(m.tick_fen),
        lot=qty(m.lot_quantity, m.kind),
        quantity_max=None if m.quantity_max is None else qty(m.quantity_max, m.kind),
        block_quantity_min=qty(m.block_quantity_min, m.kind),
        taker_fee_bps=m.taker_fee_bps,
        maker_fee_bps=m.maker_fee_bps,
        stp=m.stp,
    )
