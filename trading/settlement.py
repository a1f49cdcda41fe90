"""Holds and delivery versus payment, inside the unit of work of an order, block trade, auction or bid.

Before anything is held, the caller's own registry account must be fit to deliver (sell) or receive (buy) the
units, and a sale may not go short or sell units bought today (T+1). A hold is a pending ledger transfer into
clearing: units for a sell, yuan for a buy (remaining × unit cost, with the fee, `trading.domain.money`). When a
command trades, each side's hold is posted for what the trade needs and what stays open is held again
(`collect_and_rehold`); clearing then pays out units, yuan and fees as one linked delivery (`deliver`). A hold is
resolved exactly once: a cancelled or expired remainder is voided (`release`), and the ledger refuses a second
resolution.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import ledger
from core.clock import business_date
from core.errors import AppError, Conflict
from core.identity import Identity
from core.models import LedgerAccount, LedgerTransfer
from core.quantity import INT64_MAX
from registry.domain import checks
from registry.domain.instruments import Kind
from registry.models import Instrument, RegistryAccount
from trading import clearing
from trading._common import VENUE_OF_MODE, qty, raise_failures
from trading.context import TradingContext
from trading.domain.model import Result, Side, Status
from trading.domain.money import buy_hold_fen
from trading.models import BookDay, Order, Trade


async def trading_account(
    ctx: TradingContext,
    ses: AsyncSession,
    who: Identity,
    account_id: int,
    inst: Instrument,
    *,
    buying: bool,
    now: dt.datetime,
) -> RegistryAccount:
    """The caller's own registry account, fit to deliver (sell) or receive (buy) these units."""
    acc = await ctx.registry._own_account(ses, who, account_id, "account_id")
    facts = checks.AccountFacts(id=acc.id or 0, type=acc.type, status=acc.status)
    failures = checks.check_status(facts, "account_id", acquiring=buying)
    kind = Kind(inst.kind)
    if buying and acc.type in checks.MAY_HOLD and kind not in checks.MAY_HOLD[acc.type]:
        failures.append(("account-may-not-hold", "account_id", f"A {acc.type} account may not hold {kind.value}."))
    if not inst.tradable:
        failures.append(("not-tradable", "instrument_id", "These units may only be claimed, not traded."))
    failures += checks.check_not_expired(inst.valid_until, business_date(now))
    raise_failures(failures)
    return acc


async def units_ledger(ctx: TradingContext, ses: AsyncSession, acc: RegistryAccount, inst: Instrument) -> int:
    return await ctx.accounts.units(ses, asset_id=inst.asset_id, registry_account_id=acc.id or 0, role=acc.type)


async def check_sellable(
    ses: AsyncSession, la: int, acc: RegistryAccount, inst: Instrument, quantity: int, day: dt.date
) -> None:
    """No short selling, and T+1: units bought today are not available for sale until the next trading day."""
    fresh = (
        await ses.execute(select(LedgerAccount).where(LedgerAccount.id == la).execution_options(populate_existing=True))
    ).scalar_one()
    available = ledger.available(fresh)
    bought_today = int(
        (
            await ses.execute(
                select(func.coalesce(func.sum(Trade.quantity), 0)).where(
                    Trade.buyer_account_id == acc.id,
                    Trade.instrument_id == inst.id,
                    Trade.trade_date == day,
                )
            )
        ).scalar_one()
    )
    sellable = max(available - bought_today, 0)
    if quantity <= sellable:
        return
    if quantity <= available:
        raise Conflict(
            "t-plus-one",
            f"{qty(sellable, inst.kind)} units are sellable today; "
            f"{qty(min(bought_today, available), inst.kind)} bought today are sellable next trading day.",
            field="quantity",
            extra={"sellable": qty(sellable, inst.kind)},
        )
    raise Conflict(
        "insufficient-available",
        f"Only {qty(available, inst.kind)} units are available; {qty(quantity, inst.kind)} were asked for.",
        field="quantity",
        extra={"available": qty(available, inst.kind), "requested": qty(quantity, inst.kind)},
    )


async def hold(
    ses: AsyncSession,
    *,
    prefix: str,
    count: int,
    from_account_id: int,
    clearing_id: int,
    asset_id: int,
    amount: int,
    now: dt.datetime,
    ref: str,
    funds: bool,
    field_name: str = "quantity",
) -> int:
    if amount > INT64_MAX:
        raise AppError("amount-overflow", "The amount would overflow a 64-bit balance.", field=field_name)
    return await clearing.hold(
        ses,
        client_id=f"{prefix}:h{count}",
        from_account_id=from_account_id,
        clearing_id=clearing_id,
        asset_id=asset_id,
        amount=amount,
        code="trade-hold",
        now=now,
        ref=ref,
        field=field_name,
        what="funds" if funds else "units",
    )


async def settle(
    ctx: TradingContext,
    ses: AsyncSession,
    row: BookDay,
    inst: Instrument,
    ids: clearing.Ids,
    taker: Order,
    result: Result,
    now: dt.datetime,
) -> list[Trade]:
    """Settle one accepted command's outcome: trades DVP, holds posted, re-held or released."""
    taker.filled_quantity = result.filled_quantity
    taker.cancelled_quantity = result.cancelled_quantity
    taker.status = result.status.value
    taker.cancel_reason = None if result.cancel_reason is None else result.cancel_reason.value
    taker.updated_at = now
    trades = result.trades
    taker_sells = taker.side == Side.SELL.value
    if trades:
        units = sum(t.quantity for t in trades)
        funds = sum(t.notional_fen + t.taker_fee_fen for t in trades)
        await collect_and_rehold(
            ses, ids, taker, units if taker_sells else funds, result.resting_quantity, row.scale, now
        )
    elif result.status is not Status.RESTING:
        await release(ses, taker, now)

    makers: dict[int, Order] = {}
    touched = [t.maker_order_id for t in trades] + [mc.order_id for mc in result.maker_cancels]
    if touched:
        rows = await ses.execute(select(Order).where(Order.id.in_(touched)))  # type: ignore[union-attr]
        makers = {o.id or 0: o for o in rows.scalars()}
    venue = VENUE_OF_MODE[row.mode]
    out: list[Trade] = []
    for t in trades:
        maker = makers[t.maker_order_id]
        buy, sell = (maker, taker) if taker_sells else (taker, maker)
        trade = Trade(
            market_id=row.market_id,
            instrument_id=inst.id or 0,
            venue=venue,
            trade_date=row.trade_date,
            book_id=row.id,
            book_seq=t.seq,
            price_fen=t.price_fen,
            quantity=t.quantity,
            notional_fen=t.notional_fen,
            buyer_organisation_id=buy.organisation_id,
            seller_organisation_id=sell.organisation_id,
            buyer_account_id=buy.account_id,
            seller_account_id=sell.account_id,
            buy_order_id=buy.id,
            sell_order_id=sell.id,
            taker_side=t.taker_side.value,
            buyer_fee_fen=t.maker_fee_fen if taker_sells else t.taker_fee_fen,
            seller_fee_fen=t.taker_fee_fen if taker_sells else t.maker_fee_fen,
            at=t.at,
        )
        ses.add(trade)
        await ses.flush()
        out.append(trade)
        maker.filled_quantity += t.quantity
        maker.updated_at = now
        maker_remaining = maker.quantity - maker.filled_quantity - maker.cancelled_quantity
        if maker_remaining == 0:
            maker.status = Status.FILLED.value
        contribution = t.quantity if not taker_sells else t.notional_fen + t.maker_fee_fen
        await collect_and_rehold(ses, ids, maker, contribution, maker_remaining, row.scale, now)
        await deliver(ctx, ses, ids, inst, trade, now)
    for mc in result.maker_cancels:
        maker = makers[mc.order_id]
        maker.cancelled_quantity += mc.quantity
        maker.status = Status.CANCELLED.value
        maker.cancel_reason = "self-trade"
        maker.updated_at = now
        await release(ses, maker, now)
    await ses.flush()
    return out


async def collect_and_rehold(
    ses: AsyncSession,
    ids: clearing.Ids,
    order: Order,
    amount: int,
    remaining: int,
    scale: int,
    now: dt.datetime,
) -> None:
    """Post `amount` of the order's hold into clearing; hold what its remaining quantity needs again."""
    assert order.hold_transfer_id is not None
    oid = order.id or 0
    prior = await ses.get(LedgerTransfer, order.hold_transfer_id)
    assert prior is not None
    await clearing.collect(
        ses,
        hold_id=order.hold_transfer_id,
        amount=amount,
        client_id=f"ord:{oid}:h{order.hold_count}:r",
        now=now,
        code="trade",
    )
    order.hold_transfer_id = None
    order.held_amount = 0
    if remaining <= 0:
        return
    sells = order.side == Side.SELL.value
    held = remaining if sells else buy_hold_fen(order.hold_price_fen or 0, remaining, scale, order.hold_fee_bps)
    order.hold_count += 1
    order.held_amount = held
    order.hold_transfer_id = await hold(
        ses,
        prefix=f"ord:{oid}",
        count=order.hold_count,
        from_account_id=prior.debit_account_id,
        clearing_id=ids.units_clearing_id if sells else ids.cny_clearing_id,
        asset_id=ids.units_asset_id if sells else ids.cny_asset_id,
        amount=held,
        now=now,
        ref=f"order:{oid}",
        funds=not sells,
    )


async def release(ses: AsyncSession, order: Order, now: dt.datetime) -> None:
    """Void the order's hold (cancel, expiry, unfilled remainder). The ledger refuses a second resolution."""
    if order.hold_transfer_id is None:
        return
    await clearing.collect(
        ses,
        hold_id=order.hold_transfer_id,
        amount=0,
        client_id=f"ord:{order.id}:h{order.hold_count}:r",
        now=now,
        code="trade-release",
    )
    order.hold_transfer_id = None
    order.held_amount = 0


async def deliver(
    ctx: TradingContext, ses: AsyncSession, ids: clearing.Ids, inst: Instrument, trade: Trade, now: dt.datetime
) -> None:
    buyer_acc = await ses.get(RegistryAccount, trade.buyer_account_id)
    assert buyer_acc is not None
    buyer_units = await units_ledger(ctx, ses, buyer_acc, inst)
    seller_fund = await ctx.accounts.fund(ses, trade.seller_organisation_id)
    await clearing.deliver(
        ses,
        ids,
        clearing.Delivery(
            trade_id=trade.id or 0,
            quantity=trade.quantity,
            notional_fen=trade.notional_fen,
            buyer_fee_fen=trade.buyer_fee_fen,
            seller_fee_fen=trade.seller_fee_fen,
            buyer_units_account_id=buyer_units,
            seller_fund_account_id=seller_fund,
        ),
        now,
    )
