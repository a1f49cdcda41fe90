"""Holds and delivery versus payment, inside the unit of work of an order, block trade, auction or bid.

Before anything is held, the caller's own registry account must be fit to deliver (sell) or receive (buy) the
units, and a sale may not go short or sell units bought today (T+1). A hold is a pending ledger transfer into
clearing: units for a sell, yuan for a buy (remaining × unit cost, with the fee, `trading.domain.money`). When a
command trades, each side's hold is posted for what the trade needs and what stays open is held again
(`collect_and_rehold`); clearing then pays out units, yuan and fees as one linked delivery (`deliver`). A hold is
resolved exactly once: a cancelled or expired remainder is voided (`release`), and the ledger refuses a second
resolution.

The order path is the market's hot path, so it reads nothing it already knows: the ledger accounts of a transfer
are passed to the ledger as stand-ins (`_ref`: an account's id, asset and role never change) instead of being read
back, trades are inserted with one Core `INSERT ... RETURNING`, and the availability and T+1 figures of a sale come
from one statement.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import balances, figures, jsontext, ledger
from core.cache import CommittedCache
from core.clock import business_date
from core.errors import AppError, Conflict
from core.events import emit
from core.identity import Identity
from core.models import LedgerAccount, LedgerTransfer
from core.observability import TRADES, count_on_commit
from core.prepared import Prepared
from core.quantity import INT64_MAX
from registry.domain import checks
from registry.domain.instruments import KIND_RULES, Kind
from registry.models import Instrument, RegistryAccount
from registry.queries import own_account_row
from trading import clearing, staging
from trading._common import VENUE_OF_MODE, qty, qty_text, raise_failures
from trading.context import TradingContext
from trading.domain.model import Result, Side, Status
from trading.domain.money import buy_hold_fen
from trading.models import BookDay, Order, OrderRow, Trade, TradeRow

# A batch's registry accounts: by (organisation, role, account id) as read, and by that plus (buying, instrument, day)
# once they passed the checks for it.
AccountCache = dict[tuple[Any, ...], RegistryAccount]


async def trading_account(
    ctx: TradingContext,
    ses: AsyncSession,
    who: Identity,
    account_id: int,
    inst: Instrument,
    *,
    buying: bool,
    now: dt.datetime,
    cache: AccountCache | None = None,
    day: dt.date | None = None,
) -> RegistryAccount:
    """The caller's own registry account, fit to deliver (sell) or receive (buy) these units.

    `cache` (a batch of order commands shares one) keeps the rows already read in this unit of work: no command
    changes a registry account, so a second order on the same account in the same transaction reads nothing, and
    one for the same side, instrument and day checks nothing again. `day`: `now`'s business date, when the caller
    has it already."""
    key = (who.organisation_id, who.role.value, account_id)
    if day is None:
        day = business_date(now)
    checked = (*key, buying, inst.id, day)
    acc = None if cache is None else cache.get(checked)
    if acc is not None:
        return acc
    acc = None if cache is None else cache.get(key)
    if acc is None:
        acc = await own_account_row(ses, who, account_id, "account_id")
        if cache is not None:
            cache[key] = acc
    facts = checks.AccountFacts(id=acc.id or 0, type=acc.type, status=acc.status)
    failures = checks.check_status(facts, "account_id", acquiring=buying)
    kind = Kind(inst.kind)
    if buying and acc.type in checks.MAY_HOLD and kind not in checks.MAY_HOLD[acc.type]:
        failures.append(("account-may-not-hold", "account_id", f"A {acc.type} account may not hold {kind.value}."))
    if not inst.tradable:
        failures.append(("not-tradable", "instrument_id", "These units may only be claimed, not traded."))
    failures += checks.check_not_expired(inst.valid_until, day)
    raise_failures(failures)
    if cache is not None:
        cache[checked] = acc
    return acc


async def units_ledger(ctx: TradingContext, ses: AsyncSession, acc: RegistryAccount, inst: Instrument) -> int:
    return await ctx.accounts.units(ses, asset_id=inst.asset_id, registry_account_id=acc.id or 0, role=acc.type)


# A registry account's type is fixed when it is opened: settlement, which knows other parties' accounts by id only,
# reads it once per process (`core.cache`), not once per trade.
ACCOUNT_TYPES: CommittedCache[int, str] = CommittedCache("trading.account_types")


async def account_type(ses: AsyncSession, account_id: int) -> str:
    found = ACCOUNT_TYPES.get(ses, account_id)
    if found is None:
        acc = await ses.get(RegistryAccount, account_id)
        assert acc is not None
        found = acc.type
        ACCOUNT_TYPES.remember(ses, account_id, found)
    return found


async def units_ledger_of(ctx: TradingContext, ses: AsyncSession, account_id: int, inst: Instrument) -> tuple[int, str]:
    """The ledger account (id, role) of a registry account's units of this instrument, known by the account's id."""
    role = await account_type(ses, account_id)
    return await ctx.accounts.units(ses, asset_id=inst.asset_id, registry_account_id=account_id, role=role), role


_ACC = LedgerAccount.__table__.c  # type: ignore[attr-defined]
_TRADE = Trade.__table__  # type: ignore[attr-defined]
# A sale's two figures in one statement: the account's available balance and what it bought today (T+1).
_SELLABLE = Prepared(
    select(
        _ACC.credits_posted - _ACC.debits_posted - _ACC.debits_pending,
        select(func.coalesce(func.sum(_TRADE.c.quantity), 0))
        .where(
            _TRADE.c.buyer_account_id == bindparam("registry_account_id"),
            _TRADE.c.instrument_id == bindparam("instrument_id"),
            _TRADE.c.trade_date == bindparam("day"),
        )
        .scalar_subquery(),
    ).where(_ACC.id == bindparam("ledger_account_id"))
)
_INSERT_TRADE = Prepared(insert(_TRADE).returning(_TRADE.c.id))


async def check_sellable(
    ses: AsyncSession, la: int, acc: RegistryAccount, inst: Instrument, quantity: int, day: dt.date
) -> None:
    """No short selling, and T+1: units bought today are not available for sale until the next trading day."""
    staged = staging.rows(ses)
    key = (la, acc.id or 0, inst.id or 0, day)
    # A batch reads the two figures once per account: it writes nothing before its end (`trading.staging`), so
    # they stay what the table holds, and what its own commands changed is added below.
    found = None if staged is None else staged.sellable.get(key)
    if found is None:
        found = await _SELLABLE.one(
            ses, {"ledger_account_id": la, "registry_account_id": acc.id, "instrument_id": inst.id, "day": day}
        )
        if staged is not None:
            staged.sellable[key] = found
    available, bought = found
    held = balances.deferred(ses)
    mirrored = None if held is None else held.available(la)
    if mirrored is not None:  # this unit of work's balances are in memory (`core.balances`), ahead of the row
        available = mirrored
    bought_today = int(bought)
    if staged is not None:  # and what the batch bought, not written yet
        bought_today += staged.bought(acc.id or 0, inst.id or 0, day)
    sellable = max(available - bought_today, 0)
    if quantity <= sellable:
        return
    if quantity <= available:
        raise Conflict(
            "t-plus-one",
            f"{qty_text(sellable, inst.kind)} units are sellable today; "
            f"{qty_text(min(bought_today, available), inst.kind)} bought today are sellable next trading day.",
            field="quantity",
            extra={"sellable": qty(sellable, inst.kind)},
        )
    raise Conflict(
        "insufficient-available",
        f"Only {qty_text(available, inst.kind)} units are available; {qty_text(quantity, inst.kind)} were asked for.",
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
    holder_role: str | None = None,
) -> int:
    """Hold `amount` of the holder's available balance in clearing (a pending transfer); the hold's id.

    With `holder_role` (the holder's ledger role, known to the caller) the ledger reads neither account
    (`clearing.hold`)."""
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
        holder_role=holder_role,
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
    *,
    taker_account: RegistryAccount | None = None,
    taker_holder: tuple[int, str] | None = None,
) -> list[Trade]:
    """Settle one accepted command's outcome: trades DVP, holds posted, re-held or released.

    The makers' rows are read (once) and written back in one UPDATE; the taker's fields are set on `taker`
    and its caller writes them (`trading.orders`). `taker_account` is the taker's registry account and
    `taker_holder` the ledger account (id, role) its hold is drawn from, when the caller knows them."""
    taker.filled_quantity = result.filled_quantity
    taker.cancelled_quantity = result.cancelled_quantity
    taker.status = result.status.value
    taker.cancel_reason = None if result.cancel_reason is None else result.cancel_reason.value
    taker.updated_at = now
    trades = result.trades
    taker_sells = taker.side == Side.SELL.value
    # The makers' rows, read as plain rows (no mapped objects): their changes are written below in one UPDATE
    # (`update_orders`). A batch with its balances in memory writes its orders and trades at its end: a maker it
    # placed or changed is found among them.
    staged = staging.rows(ses)
    makers: dict[int, Any] = {}
    for maker_id in dict.fromkeys([t.maker_order_id for t in trades] + [mc.order_id for mc in result.maker_cancels]):
        found = None if staged is None else staged.order(maker_id)
        if found is None:
            found = await staging.order_row(ses, maker_id)
        assert found is not None, f"maker order {maker_id} is not in the table"
        makers[maker_id] = OrderRow(**found)
    # A sale that made one trade: its units' serials go straight on to the one buyer (as a maker's sale's do below),
    # not into clearing and out again.
    taker_serials_to = None
    if trades:
        units = sum(t.quantity for t in trades)
        funds = sum(t.notional_fen + t.taker_fee_fen for t in trades)
        holder = taker_holder or await holder_account(ctx, ses, taker, inst)
        if taker_sells and len(trades) == 1:
            taker_serials_to, _ = await units_ledger_of(ctx, ses, makers[trades[0].maker_order_id].account_id, inst)
        await collect_and_rehold(
            ses,
            ids,
            taker,
            units if taker_sells else funds,
            result.resting_quantity,
            row.scale,
            now,
            holder,
            serials_to=taker_serials_to,
        )
    elif result.status is not Status.RESTING:
        await release(ses, taker, now)
    venue = VENUE_OF_MODE[row.mode]
    out: list[Trade] = []
    for t in trades:
        maker = makers[t.maker_order_id]
        buy, sell = (maker, taker) if taker_sells else (taker, maker)
        values: dict[str, Any] = {
            "market_id": row.market_id,
            "instrument_id": inst.id or 0,
            "venue": venue,
            "trade_date": row.trade_date,
            "book_id": row.id,
            "book_seq": t.seq,
            "price_fen": t.price_fen,
            "quantity": t.quantity,
            "notional_fen": t.notional_fen,
            "buyer_organisation_id": buy.organisation_id,
            "seller_organisation_id": sell.organisation_id,
            "buyer_account_id": buy.account_id,
            "seller_account_id": sell.account_id,
            "buy_order_id": buy.id,
            "sell_order_id": sell.id,
            "taker_side": t.taker_side.value,
            "buyer_fee_fen": t.maker_fee_fen if taker_sells else t.taker_fee_fen,
            "seller_fee_fen": t.taker_fee_fen if taker_sells else t.maker_fee_fen,
            "block_trade_id": None,
            "auction_id": None,
            "at": t.at,
        }
        trade_id = await (_INSERT_TRADE.scalar(ses, values) if staged is None else staged.trade(ses, values))
        trade = TradeRow(id=trade_id, **values)
        out.append(trade)
        maker_filled = maker.filled_quantity + t.quantity
        maker_remaining = maker.quantity - maker_filled - maker.cancelled_quantity
        contribution = t.quantity if not taker_sells else t.notional_fen + t.maker_fee_fen
        holder = await holder_account(ctx, ses, maker, inst)
        # A maker's sale: its units' serials go straight on to the buyer (clearing pays them out below, so
        # moving them into clearing and out again would only cost statements; `ledger.resolve_pending`).
        serials_to = None
        if not taker_sells:
            if taker_account is not None:
                serials_to = await units_ledger(ctx, ses, taker_account, inst)
            else:
                serials_to, _ = await units_ledger_of(ctx, ses, taker.account_id, inst)
        await collect_and_rehold(
            ses, ids, maker, contribution, maker_remaining, row.scale, now, holder, serials_to=serials_to
        )
        # Changed after the ledger's calls (which flush the session), so that the maker's row is written once.
        maker.filled_quantity = maker_filled
        maker.updated_at = now
        if maker_remaining == 0:
            maker.status = Status.FILLED.value
        await deliver(
            ctx,
            ses,
            ids,
            inst,
            trade,
            now,
            buyer_account=taker_account if not taker_sells else None,
            serials_delivered=serials_to is not None or taker_serials_to is not None,
        )
    for mc in result.maker_cancels:
        maker = makers[mc.order_id]
        maker.cancelled_quantity += mc.quantity
        maker.status = Status.CANCELLED.value
        maker.cancel_reason = "self-trade"
        maker.updated_at = now
        await release(ses, maker, now)
    if makers:
        await update_orders(ses, list(makers.values()))
    return out


async def update_orders(ses: AsyncSession, orders: list[Order]) -> None:
    """Write what a command changed on these orders' rows: one UPDATE (one parameter set per order); in a batch
    that stages its rows, keep them there as they now stand (`trading.staging`: written after the transfers their
    holds name)."""
    staged = staging.rows(ses)
    rows = [staging.order_values(o) for o in orders]
    if staged is None:
        await staging.update_orders(ses, rows)
        return
    for values in rows:
        staged.put_order(values)


async def holder_account(ctx: TradingContext, ses: AsyncSession, order: Order, inst: Instrument) -> tuple[int, str]:
    """The ledger account (id, role) an order's holds are drawn from: its organisation's fund account for a buy,
    its registry account's units for a sale (the account it was placed from, so it exists)."""
    if order.side == Side.BUY.value:
        return await ctx.accounts.fund(ses, order.organisation_id), clearing.FUND
    return await units_ledger_of(ctx, ses, order.account_id, inst)


async def collect_and_rehold(
    ses: AsyncSession,
    ids: clearing.Ids,
    order: Order,
    amount: int,
    remaining: int,
    scale: int,
    now: dt.datetime,
    holder: tuple[int, str] | None = None,
    *,
    serials_to: int | None = None,
) -> None:
    """Post `amount` of the order's hold into clearing; hold what its remaining quantity needs again (from
    `holder`, the ledger account the hold was drawn from, when known). `serials_to`: see `clearing.collect`."""
    assert order.hold_transfer_id is not None
    oid = order.id or 0
    hold_id = order.hold_transfer_id
    await clearing.collect(
        ses,
        hold_id=hold_id,
        amount=amount,
        client_id=f"ord:{oid}:h{order.hold_count}:r",
        now=now,
        code="trade",
        serials_to=serials_to,
    )
    order.hold_transfer_id = None
    order.held_amount = 0
    if remaining <= 0:
        return
    if holder is None:
        prior = await ses.get(LedgerTransfer, hold_id)
        assert prior is not None
        from_id, role = prior.debit_account_id, None
    else:
        from_id, role = holder
    sells = order.side == Side.SELL.value
    held = remaining if sells else buy_hold_fen(order.hold_price_fen or 0, remaining, scale, order.hold_fee_bps)
    order.hold_count += 1
    order.held_amount = held
    order.hold_transfer_id = await hold(
        ses,
        prefix=f"ord:{oid}",
        count=order.hold_count,
        from_account_id=from_id,
        clearing_id=ids.units_clearing_id if sells else ids.cny_clearing_id,
        asset_id=ids.units_asset_id if sells else ids.cny_asset_id,
        amount=held,
        now=now,
        ref=f"order:{oid}",
        funds=not sells,
        holder_role=role,
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
    ctx: TradingContext,
    ses: AsyncSession,
    ids: clearing.Ids,
    inst: Instrument,
    trade: Trade,
    now: dt.datetime,
    *,
    buyer_account: RegistryAccount | None = None,
    serials_delivered: bool = False,
) -> None:
    """Pay the trade out of clearing (`clearing.deliver`'s transfers, with the accounts handed to the ledger): units
    to the buyer, the price less the seller's fee to the seller, both fees to the fee account.
    `serials_delivered`: the seller's collection already moved the units' serials to the buyer."""
    if buyer_account is not None:
        assert buyer_account.id == trade.buyer_account_id
        buyer_units, buyer_role = await units_ledger(ctx, ses, buyer_account, inst), buyer_account.type
    else:
        buyer_units, buyer_role = await units_ledger_of(ctx, ses, trade.buyer_account_id, inst)
    seller_fund = await ctx.accounts.fund(ses, trade.seller_organisation_id)
    trade_id = trade.id or 0
    ref = f"trade:{trade_id}"
    payouts = (
        (f"trd:{trade_id}:units", ids.units_clearing_id, buyer_units, buyer_role, ids.units_asset_id,
         trade.quantity, "trade", not serials_delivered),
        (f"trd:{trade_id}:funds", ids.cny_clearing_id, seller_fund, clearing.FUND, ids.cny_asset_id,
         trade.notional_fen - trade.seller_fee_fen, "trade", False),
        (f"trd:{trade_id}:fee", ids.cny_clearing_id, ids.fee_account_id, clearing.FEE, ids.cny_asset_id,
         trade.buyer_fee_fen + trade.seller_fee_fen, "fee", False),
    )  # fmt: skip
    taker_is_buyer = trade.taker_side != Side.SELL.value  # a block trade or an auction has no taker: the buyer
    registry_tx = {
        "code": "trade",
        "status": "completed",
        "instrument_id": trade.instrument_id,
        "from_account_id": trade.seller_account_id,
        "to_account_id": trade.buyer_account_id,
        "quantity": trade.quantity,
        "initiated_by": 0,  # the market matched it; the orders carry who placed them
        "initiator_organisation_id": (trade.buyer_organisation_id if taker_is_buyer else trade.seller_organisation_id),
        "request_key": f"trade:{trade_id}",
        "details": jsontext.dumps({"trade_id": trade_id, "venue": trade.venue, "price_fen": trade.price_fen}),
        "created_at": now,
        "completed_at": now,
    }
    staged = staging.rows(ses)
    if staged is None:
        await staging.INSERT_REGISTRY_TX.execute(ses, registry_tx)
    else:
        staged.registry_txs.append(registry_tx)
    count_on_commit(ses, TRADES, venue=trade.venue)
    emit(
        ses,
        "trade.executed",
        {
            "trade_id": trade_id,
            "instrument_code": inst.code,
            "quantity": figures.quantity_plain(trade.quantity, KIND_RULES[Kind(inst.kind)].scale),
            "price_fen": trade.price_fen,
            "amount_fen": trade.notional_fen,
            "buyer_organisation_id": trade.buyer_organisation_id,
            "seller_organisation_id": trade.seller_organisation_id,
            "venue": trade.venue,
        },
        to=(trade.buyer_organisation_id, trade.seller_organisation_id),
        subject=f"trade:{trade_id}",
    )
    for client_id, from_id, to_id, to_role, asset_id, amount, code, serialised in payouts:
        if amount <= 0:
            continue
        await ledger.create_transfer(
            ses,
            client_id=client_id,
            debit_account_id=from_id,
            credit_account_id=to_id,
            asset_id=asset_id,
            amount=amount,
            code=code,
            now=now,
            ref=ref,
            accounts=(
                ledger.AccountRef(from_id, asset_id, clearing.CLEARING),
                ledger.AccountRef(to_id, asset_id, to_role),
            ),
            serialised=serialised,
            fresh_client_id=True,
        )
