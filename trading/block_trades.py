"""Block trades (大宗协议): a member proposes a trade of at least 100,000 display units within the wider block band
to a named counterparty, and its side is held at once; the counterparty accepts (its side is held and the trade
settles delivery versus payment in the same unit of work) or declines, or the proposer withdraws. Proposals left
open expire at the daily close. Block trades never set the close.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import figures
from core.clock import business_date
from core.db import UnitOfWork
from core.errors import AppError, Conflict, NotFound
from core.identity import Identity
from core.models import Organisation
from core.quantity import parse_money_fen, parse_quantity
from registry.models import Instrument, RegistryAccount
from trading import clearing
from trading import schemas as s
from trading._common import kind_scale, qty
from trading.context import TradingContext
from trading.domain import block
from trading.domain.block import BlockRules
from trading.domain.block import BlockTrade as BlockTerms
from trading.domain.marketdata import Venue
from trading.domain.model import Side
from trading.domain.money import buy_hold_fen, fee_fen, notional_fen
from trading.domain.sessions import BLOCK_SESSIONS
from trading.markets import market_info
from trading.models import BlockTrade, Market, Trade
from trading.settlement import check_sellable, deliver, hold, trading_account, units_ledger

BLOCK_PROBLEMS: dict[str, tuple[str, int | None]] = {
    "same-member": ("accounts-must-differ", None),
    "invalid-quantity": ("quantity-invalid", None),
    "below-block-minimum": ("below-block-minimum", None),
    "off-lot": ("off-lot", None),
    "invalid-price": ("invalid-price", None),
    "off-tick": ("off-tick", None),
    "outside-band": ("outside-band", None),
    "market-closed": ("market-closed", None),
    "invalid-time": ("invalid-input", None),
    "not-a-party": ("not-found", None),
    "already-confirmed": ("invalid-state", None),
}


def block_rules(market: Market) -> BlockRules:
    return BlockRules(
        quantity_min=market.block_quantity_min,
        scale=kind_scale(market.kind),
        band_bps=market.block_band_bps,
        tick_fen=market.tick_fen,
        lot_quantity=market.lot_quantity,
        sessions=BLOCK_SESSIONS,
    )


def raise_block(violations: Sequence[Any]) -> None:
    if violations:
        v = violations[0]
        slug = BLOCK_PROBLEMS.get(v.code, ("invalid-input", None))[0]
        field_name = {"price_fen": "price", "seller": "counterparty_organisation_id", "now": None}.get(v.field, v.field)
        if slug == "not-found":
            raise NotFound("block trade")
        raise AppError(
            slug,
            v.message,
            field=field_name,
            extra={"errors": [{"code": x.code, "detail": x.message} for x in violations]}
            if len(violations) > 1
            else None,
        )


async def propose_block_trade(
    ctx: TradingContext, who: Identity, req: s.ProposeBlockTrade, request_key: str | None
) -> s.BlockTradeOut:
    info = await market_info(ctx, req.instrument_id)
    price_fen = parse_money_fen(req.price, field="price")
    quantity = parse_quantity(req.quantity, scale=info.scale)
    side = Side(req.side)
    now = ctx.clock.now()
    day = business_date(now)

    async def work(uow: UnitOfWork) -> s.BlockTradeOut:
        ses = uow.session
        if request_key is not None:
            prior = (
                await ses.execute(select(BlockTrade).where(BlockTrade.request_key == request_key))
            ).scalar_one_or_none()
            if prior is not None:
                return block_out(prior, info.kind)
        market = await ses.get(Market, info.market_id)
        assert market is not None
        other = await ses.get(Organisation, req.counterparty_organisation_id)
        if other is None or other.kind == "system":
            raise AppError("not-found", "No such counterparty organisation.", field="counterparty_organisation_id")
        me, them = str(who.organisation_id), str(other.id)
        buyer, seller = (me, them) if side is Side.BUY else (them, me)
        outcome = block.propose_block_trade(
            BlockTerms(0, buyer, seller, price_fen, quantity),
            me,
            prev_close_fen=market.prev_close_fen,
            now=now,
            rules=block_rules(market),
            is_working_day=ctx.is_working_day,
        )
        raise_block(outcome.violations)
        inst = await ctx.registry._instrument(ses, info.instrument_id)
        acc = await trading_account(ctx, ses, who, req.account_id, inst, buying=side is Side.BUY, now=now)
        bt = BlockTrade(
            market_id=info.market_id,
            instrument_id=info.instrument_id,
            buyer_organisation_id=int(buyer),
            seller_organisation_id=int(seller),
            buyer_account_id=acc.id if side is Side.BUY else None,
            seller_account_id=acc.id if side is Side.SELL else None,
            proposer_organisation_id=who.organisation_id,
            price_fen=price_fen,
            quantity=quantity,
            status="proposed",
            proposed_by=who.principal_id,
            request_key=request_key,
            trade_date=day,
            created_at=now,
        )
        ses.add(bt)
        await ses.flush()
        await block_hold(ctx, ses, bt, market, inst, acc, side, now, count=1)
        uow.audit(
            who.actor,
            "block.propose",
            "block_trade",
            str(bt.id),
            {"instrument": inst.code, "side": side.value, "price_fen": price_fen, "quantity": quantity},
        )
        return block_out(bt, info.kind)

    return await ctx.db.run(work)


async def block_hold(
    ctx: TradingContext,
    ses: AsyncSession,
    bt: BlockTrade,
    market: Market,
    inst: Instrument,
    acc: RegistryAccount,
    side: Side,
    now: dt.datetime,
    *,
    count: int,
) -> int:
    """Hold one side of a block trade; returns the hold id (the proposer's is also kept on the row)."""
    ids = await ctx.accounts.ids_for(ses, inst.asset_id)
    if side is Side.SELL:
        la = await units_ledger(ctx, ses, acc, inst)
        await check_sellable(ses, la, acc, inst, bt.quantity, business_date(now))
        amount, source, clr, asset, funds = (
            bt.quantity,
            la,
            ids.units_clearing_id,
            ids.units_asset_id,
            False,
        )
    else:
        fund = await ctx.accounts.fund(ses, acc.organisation_id)
        amount = buy_hold_fen(bt.price_fen, bt.quantity, kind_scale(market.kind), market.taker_fee_bps)
        source, clr, asset, funds = fund, ids.cny_clearing_id, ids.cny_asset_id, True
    hold_id = await hold(
        ses,
        prefix=f"blk:{bt.id}",
        count=count,
        from_account_id=source,
        clearing_id=clr,
        asset_id=asset,
        amount=amount,
        now=now,
        ref=f"block:{bt.id}",
        funds=funds,
    )
    if count == 1:
        bt.hold_transfer_id = hold_id
        bt.held_amount = amount
    return hold_id


async def accept_block_trade(
    ctx: TradingContext, who: Identity, block_id: int, req: s.AcceptBlockTrade
) -> s.BlockTradeOut:
    now = ctx.clock.now()

    async def work(uow: UnitOfWork) -> s.BlockTradeOut:
        ses = uow.session
        bt = await visible_block(ses, who, block_id)
        market = await ses.get(Market, bt.market_id)
        assert market is not None
        if bt.status == "settled" and bt.decided_by is not None:
            return block_out(bt, market.kind)
        if bt.status != "proposed":
            raise Conflict("invalid-state", f"Block trade {bt.id} is {bt.status}.")
        terms = BlockTerms(
            bt.id or 0,
            str(bt.buyer_organisation_id),
            str(bt.seller_organisation_id),
            bt.price_fen,
            bt.quantity,
            buyer_confirmed=bt.proposer_organisation_id == bt.buyer_organisation_id,
            seller_confirmed=bt.proposer_organisation_id == bt.seller_organisation_id,
        )
        outcome = block.confirm_block_trade(
            terms,
            str(who.organisation_id),
            prev_close_fen=market.prev_close_fen,
            now=now,
            rules=block_rules(market),
            is_working_day=ctx.is_working_day,
        )
        raise_block(outcome.violations)
        inst = await ctx.registry._instrument(ses, bt.instrument_id)
        side = Side.BUY if who.organisation_id == bt.buyer_organisation_id else Side.SELL
        acc = await trading_account(ctx, ses, who, req.account_id, inst, buying=side is Side.BUY, now=now)
        if side is Side.BUY:
            bt.buyer_account_id = acc.id
        else:
            bt.seller_account_id = acc.id
        accept_hold = await block_hold(ctx, ses, bt, market, inst, acc, side, now, count=2)
        ids = await ctx.accounts.ids_for(ses, inst.asset_id)
        notional = notional_fen(bt.price_fen, bt.quantity, kind_scale(market.kind))
        fee = fee_fen(notional, market.taker_fee_bps)
        trade = Trade(
            market_id=bt.market_id,
            instrument_id=bt.instrument_id,
            venue=Venue.BLOCK.value,
            trade_date=business_date(now),
            price_fen=bt.price_fen,
            quantity=bt.quantity,
            notional_fen=notional,
            buyer_organisation_id=bt.buyer_organisation_id,
            seller_organisation_id=bt.seller_organisation_id,
            buyer_account_id=bt.buyer_account_id or 0,
            seller_account_id=bt.seller_account_id or 0,
            buyer_fee_fen=fee,
            seller_fee_fen=fee,
            block_trade_id=bt.id,
            at=now,
        )
        ses.add(trade)
        await ses.flush()
        proposer_sells = bt.proposer_organisation_id == bt.seller_organisation_id
        holds = {
            "proposer": (bt.hold_transfer_id or 0, bt.quantity if proposer_sells else notional + fee, 1),
            "acceptor": (accept_hold, notional + fee if proposer_sells else bt.quantity, 2),
        }
        for hold_id, amount, n in holds.values():
            await clearing.collect(
                ses, hold_id=hold_id, amount=amount, client_id=f"blk:{bt.id}:h{n}:r", now=now, code="trade"
            )
        await deliver(ctx, ses, ids, inst, trade, now)
        bt.status = "settled"
        bt.trade_id = trade.id
        bt.decided_by = who.principal_id
        bt.decided_at = now
        bt.hold_transfer_id = None
        bt.held_amount = 0
        uow.audit(who.actor, "block.accept", "block_trade", str(bt.id), {"trade": trade.id})
        return block_out(bt, market.kind)

    return await ctx.db.run(work)


async def cancel_block_trade(ctx: TradingContext, who: Identity, block_id: int) -> s.BlockTradeOut:
    """Withdraw (proposer) or decline (counterparty) a proposal; the proposer's hold is released."""
    now = ctx.clock.now()

    async def work(uow: UnitOfWork) -> s.BlockTradeOut:
        ses = uow.session
        bt = await visible_block(ses, who, block_id)
        market = await ses.get(Market, bt.market_id)
        assert market is not None
        if bt.status == "cancelled":
            return block_out(bt, market.kind)
        if bt.status != "proposed":
            raise Conflict("invalid-state", f"Block trade {bt.id} is {bt.status}.")
        await release_block(ses, bt, now, "cancelled")
        bt.decided_by = who.principal_id
        uow.audit(who.actor, "block.cancel", "block_trade", str(bt.id), {})
        return block_out(bt, market.kind)

    return await ctx.db.run(work)


async def release_block(ses: AsyncSession, bt: BlockTrade, now: dt.datetime, status: str) -> None:
    if bt.hold_transfer_id is not None:
        await clearing.collect(
            ses, hold_id=bt.hold_transfer_id, amount=0, client_id=f"blk:{bt.id}:h1:r", now=now, code="trade-release"
        )
    bt.hold_transfer_id = None
    bt.held_amount = 0
    bt.status = status
    bt.decided_at = now


async def visible_block(ses: AsyncSession, who: Identity, block_id: int) -> BlockTrade:
    bt = (
        await ses.execute(select(BlockTrade).where(BlockTrade.id == block_id).execution_options(populate_existing=True))
    ).scalar_one_or_none()
    if bt is None or not (
        who.reads_all() or who.organisation_id in (bt.buyer_organisation_id, bt.seller_organisation_id)
    ):
        raise NotFound("block trade", field="block_trade_id")
    return bt


async def get_block_trade(ctx: TradingContext, who: Identity, block_id: int) -> s.BlockTradeOut:
    async def work(uow: UnitOfWork) -> s.BlockTradeOut:
        bt = await visible_block(uow.session, who, block_id)
        market = await uow.session.get(Market, bt.market_id)
        assert market is not None
        return block_out(bt, market.kind)

    return await ctx.db.read(work)


def block_out(bt: BlockTrade, kind: str) -> s.BlockTradeOut:
    return s.BlockTradeOut(
        id=bt.id or 0,
        instrument_id=bt.instrument_id,
        buyer_organisation_id=bt.buyer_organisation_id,
        seller_organisation_id=bt.seller_organisation_id,
        proposer_organisation_id=bt.proposer_organisation_id,
        price=figures.yuan_plain(bt.price_fen),
        price_fen=bt.price_fen,
        quantity=qty(bt.quantity, kind),
        quantity_base=bt.quantity,
        status=bt.status,
        trade_id=bt.trade_id,
        trade_date=bt.trade_date,
        created_at=bt.created_at,
        decided_at=bt.decided_at,
    )
