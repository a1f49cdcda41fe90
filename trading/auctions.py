"""Auctions: the issuing authority's primary auction (reserve price, per-bidder cap) and a holder's one-way auction
(单向竞价, a floor and a ceiling within the band around the previous close). The offered units are held when the
auction is created; each sealed bid holds price × quantity in the bidder's fund account. Clearing is the pure
`trading.domain.auction.clear_auction` with the seed drawn at creation, and every allocation settles delivery
versus payment; the losing bids and any unsold units are released. The seller may withdraw an open auction.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import figures
from core.clock import business_date
from core.db import UnitOfWork
from core.errors import AppError, Conflict, Forbidden, InvalidInput, NotFound
from core.events import emit
from core.identity import Identity, Role
from core.quantity import parse_money_fen, parse_quantity
from registry.domain.instruments import KIND_RULES, Kind
from registry.models import Instrument
from trading import clearing
from trading import schemas as s
from trading._common import TRADER_ROLES, kind_scale, maybe_yuan, qty
from trading.context import TradingContext
from trading.domain import auction as auction_rules
from trading.domain.auction import AuctionStatus, OneWayAuctionSpec, Pricing, PrimaryAuctionSpec
from trading.domain.auction import Bid as AuctionBid
from trading.domain.marketdata import Venue
from trading.domain.model import MESSAGES, Code
from trading.domain.money import buy_hold_fen
from trading.markets import market_info
from trading.models import Auction, Bid, Market, Trade
from trading.settlement import check_sellable, deliver, hold, trading_account, units_ledger


def auction_spec(a: Auction, market: Market) -> OneWayAuctionSpec | PrimaryAuctionSpec:
    if a.type == "primary":
        return PrimaryAuctionSpec(
            volume=a.volume,
            reserve_price_fen=a.reserve_price_fen,
            bidder_cap_bps=a.bidder_cap_bps,
            tick_fen=market.tick_fen,
            lot_quantity=market.lot_quantity,
        )
    return OneWayAuctionSpec(
        volume=a.volume,
        prev_close_fen=a.prev_close_fen,
        floor_fen=a.floor_fen or 0,
        ceiling_fen=a.ceiling_fen or 0,
        pricing=Pricing(a.pricing),
        tick_fen=market.tick_fen,
        lot_quantity=market.lot_quantity,
        volume_min=market.block_quantity_min,
        band_bps=market.band_bps,
    )


async def create_auction(
    ctx: TradingContext, who: Identity, req: s.CreateAuction, request_key: str | None
) -> s.AuctionOut:
    info = await market_info(ctx, req.instrument_id)
    volume = parse_quantity(req.volume, scale=info.scale, field="volume")
    floor_fen = None if req.floor_price is None else parse_money_fen(req.floor_price, field="floor_price")
    ceiling_fen = None if req.ceiling_price is None else parse_money_fen(req.ceiling_price, field="ceiling_price")
    reserve_fen = None if req.reserve_price is None else parse_money_fen(req.reserve_price, field="reserve_price")
    rule = KIND_RULES[Kind(info.kind)]
    if req.type == "primary":
        if who.role.value != rule.issuer_role:
            raise Forbidden(f"Only the {rule.issuer_role} holds primary auctions of {info.kind}.")
    else:
        if who.role not in TRADER_ROLES:
            raise Forbidden("A one-way auction is offered by a participant that holds the units.")
        if req.account_id is None:
            raise InvalidInput("account_id", "Name the account that delivers the units.")
        if floor_fen is None or ceiling_fen is None:
            raise InvalidInput(
                "floor_price" if floor_fen is None else "ceiling_price",
                "A one-way auction needs a floor and a ceiling price within ±10% of the previous close.",
            )
    now = ctx.clock.now()

    async def work(uow: UnitOfWork) -> s.AuctionOut:
        ses = uow.session
        if request_key is not None:
            prior = (await ses.execute(select(Auction).where(Auction.request_key == request_key))).scalar_one_or_none()
            if prior is not None:
                return await auction_out(ses, who, prior, info.kind)
        market = await ses.get(Market, info.market_id)
        assert market is not None
        inst = await ctx.registry._instrument(ses, info.instrument_id)
        if req.type == "primary" and req.account_id is None:
            acc = await ctx.registry._allocation_account(ses, who)
        else:
            acc = await trading_account(ctx, ses, who, req.account_id or 0, inst, buying=False, now=now)
        auction = Auction(
            market_id=info.market_id,
            instrument_id=info.instrument_id,
            type=req.type,
            seller_organisation_id=who.organisation_id,
            seller_account_id=acc.id or 0,
            volume=volume,
            prev_close_fen=market.prev_close_fen,
            floor_fen=floor_fen,
            ceiling_fen=ceiling_fen,
            reserve_price_fen=reserve_fen,
            bidder_cap_bps=req.bidder_cap_bps if req.type == "primary" else None,
            pricing=req.pricing if req.type == "one-way" else Pricing.UNIFORM.value,
            # Drawn now, before any bid, and kept sealed until the result: it fixes the tie order.
            seed=secrets.randbelow(2**62),
            created_by=who.principal_id,
            request_key=request_key,
            created_at=now,
        )
        check = auction_rules.clear_auction(auction_spec(auction, market), [], auction.seed)
        if check.status is AuctionStatus.INVALID_SPEC:
            raise AppError("auction-spec-invalid", f"The auction's terms are invalid: {check.reason}.", field="volume")
        ses.add(auction)
        await ses.flush()
        ids = await ctx.accounts.ids_for(ses, inst.asset_id)
        la = await units_ledger(ctx, ses, acc, inst)
        await check_sellable(ses, la, acc, inst, volume, business_date(now))
        auction.hold_transfer_id = await hold(
            ses,
            prefix=f"auc:{auction.id}",
            count=1,
            from_account_id=la,
            clearing_id=ids.units_clearing_id,
            asset_id=ids.units_asset_id,
            amount=volume,
            now=now,
            ref=f"auction:{auction.id}",
            funds=False,
            field_name="volume",
        )
        auction.held_amount = volume
        uow.audit(
            who.actor,
            "auction.create",
            "auction",
            str(auction.id),
            {"instrument": inst.code, "type": req.type, "volume": volume},
        )
        return await auction_out(ses, who, auction, info.kind)

    return await ctx.db.run(work)


async def submit_bid(
    ctx: TradingContext, who: Identity, auction_id: int, req: s.SubmitBid, request_key: str | None
) -> s.BidOut:
    price_fen = parse_money_fen(req.price, field="price")
    now = ctx.clock.now()

    async def work(uow: UnitOfWork) -> s.BidOut:
        ses = uow.session
        auction = await find_auction(ctx, ses, auction_id, lock=True)
        market = await ses.get(Market, auction.market_id)
        assert market is not None
        if request_key is not None:
            prior = (await ses.execute(select(Bid).where(Bid.request_key == request_key))).scalar_one_or_none()
            if prior is not None:
                return bid_out(prior, market.kind)
        quantity = parse_quantity(req.quantity, scale=kind_scale(market.kind))
        if auction.status != "open":
            raise Conflict("invalid-state", f"Auction {auction.id} is {auction.status}; bids are closed.")
        if auction.seller_organisation_id == who.organisation_id:
            raise AppError("self-trade", "The seller may not bid in its own auction.", field="auction_id")
        if price_fen % market.tick_fen:
            raise AppError("off-tick", MESSAGES[Code.OFF_TICK], field="price")
        if quantity % market.lot_quantity:
            raise AppError("off-lot", MESSAGES[Code.OFF_LOT], field="quantity")
        if auction.floor_fen is not None and price_fen < auction.floor_fen:
            raise AppError(
                "below-floor", f"Bid at least the floor, {figures.yuan(auction.floor_fen)} yuan.", field="price"
            )
        if auction.ceiling_fen is not None and price_fen > auction.ceiling_fen:
            raise AppError(
                "above-ceiling",
                f"Bid at most the ceiling, {figures.yuan(auction.ceiling_fen)} yuan.",
                field="price",
            )
        inst = await ctx.registry._instrument(ses, auction.instrument_id)
        acc = await trading_account(ctx, ses, who, req.account_id, inst, buying=True, now=now)
        bid = Bid(
            auction_id=auction.id or 0,
            organisation_id=who.organisation_id,
            account_id=acc.id or 0,
            principal_id=who.principal_id,
            price_fen=price_fen,
            quantity=quantity,
            request_key=request_key,
            created_at=now,
        )
        ses.add(bid)
        await ses.flush()
        ids = await ctx.accounts.ids_for(ses, inst.asset_id)
        fund = await ctx.accounts.fund(ses, who.organisation_id)
        bid.held_amount = buy_hold_fen(price_fen, quantity, kind_scale(market.kind), 0)
        bid.hold_transfer_id = await hold(
            ses,
            prefix=f"bid:{bid.id}",
            count=1,
            from_account_id=fund,
            clearing_id=ids.cny_clearing_id,
            asset_id=ids.cny_asset_id,
            amount=bid.held_amount,
            now=now,
            ref=f"bid:{bid.id}",
            funds=True,
        )
        uow.audit(who.actor, "auction.bid", "bid", str(bid.id), {"auction": auction.id, "quantity": quantity})
        return bid_out(bid, market.kind)

    return await ctx.db.run(work)


async def clear_auction(ctx: TradingContext, who: Identity, auction_id: int) -> s.AuctionOut:
    """Clear a sealed auction with the seed fixed at its creation; settle every allocation DVP."""
    now = ctx.clock.now()

    async def work(uow: UnitOfWork) -> s.AuctionOut:
        ses = uow.session
        auction = await find_auction(ctx, ses, auction_id, lock=True)
        market = await ses.get(Market, auction.market_id)
        assert market is not None
        if auction.type == "primary":
            allowed = who.organisation_id == auction.seller_organisation_id
        else:
            allowed = who.organisation_id == auction.seller_organisation_id or who.role is Role.REGULATOR
        if not allowed:
            raise NotFound("auction", field="auction_id")
        if auction.status != "open":
            return await auction_out(ses, who, auction, market.kind)
        bids = (
            (
                await ses.execute(select(Bid).where(Bid.auction_id == auction.id).order_by(Bid.id))  # type: ignore[arg-type]
            )
            .scalars()
            .all()
        )
        by_id = {b.id or 0: b for b in bids}
        result = auction_rules.clear_auction(
            auction_spec(auction, market),
            [AuctionBid(b.id or 0, str(b.organisation_id), b.price_fen, b.quantity, b.id or 0) for b in bids],
            auction.seed,
        )
        inst = await ctx.registry._instrument(ses, auction.instrument_id)
        ids = await ctx.accounts.ids_for(ses, inst.asset_id)
        auction.tie_order = json.dumps(list(result.tie_order))
        venue = Venue.PRIMARY_AUCTION if auction.type == "primary" else Venue.ONE_WAY_AUCTION
        cleared = result.status is AuctionStatus.CLEARED
        await clearing.collect(
            ses,
            hold_id=auction.hold_transfer_id or 0,
            amount=result.sold_quantity if cleared else 0,
            client_id=f"auc:{auction.id}:h1:r",
            now=now,
            code="trade" if cleared and result.sold_quantity else "trade-release",
        )
        allocated = {a.bid_id: a for a in result.allocations} if cleared else {}
        for bid in bids:
            alloc = allocated.get(bid.id or 0)
            amount = alloc.amount_fen(kind_scale(market.kind)) if alloc is not None else 0
            await clearing.collect(
                ses,
                hold_id=bid.hold_transfer_id or 0,
                amount=amount,
                client_id=f"bid:{bid.id}:h1:r",
                now=now,
                code="trade" if amount else "trade-release",
            )
            bid.hold_transfer_id = None
            bid.held_amount = 0
            if alloc is None or alloc.quantity == 0:
                bid.status = "lost" if cleared else "cancelled"
                continue
            bid.status = "won"
            bid.allocated_quantity = alloc.quantity
            bid.paid_price_fen = alloc.price_fen
            trade = Trade(
                market_id=auction.market_id,
                instrument_id=auction.instrument_id,
                venue=venue.value,
                trade_date=business_date(now),
                price_fen=alloc.price_fen,
                quantity=alloc.quantity,
                notional_fen=amount,
                buyer_organisation_id=bid.organisation_id,
                seller_organisation_id=auction.seller_organisation_id,
                buyer_account_id=bid.account_id,
                seller_account_id=auction.seller_account_id,
                auction_id=auction.id,
                at=now,
            )
            ses.add(trade)
            await ses.flush()
            await deliver(ctx, ses, ids, inst, trade, now)
        for rejected in result.rejected:
            if rejected.bid_id in by_id:
                by_id[rejected.bid_id].status = "rejected"
        auction.status = "cleared" if cleared else "cancelled"
        auction.clearing_price_fen = result.clearing_price_fen
        auction.sold_quantity = result.sold_quantity if cleared else 0
        auction.reason = result.reason
        auction.hold_transfer_id = None
        auction.held_amount = 0
        auction.cleared_at = now
        await ses.flush()
        if cleared:
            _cleared_events(ses, auction, inst, bids, allocated, kind_scale(market.kind))
        uow.audit(
            who.actor,
            "auction.clear",
            "auction",
            str(auction.id),
            {
                "status": auction.status,
                "clearing_price_fen": auction.clearing_price_fen,
                "sold": auction.sold_quantity,
                "seed": auction.seed,
            },
        )
        return await auction_out(ses, who, auction, market.kind)

    return await ctx.db.run(work)


def _cleared_events(
    ses: AsyncSession, auction: Auction, inst: Instrument, bids: Sequence[Bid], allocated: dict[int, Any], scale: int
) -> None:
    """One `auction.cleared` event per bidding organisation (its winnings summed over its bids) and one for the
    seller (core/events.py)."""
    won: dict[int, list[int]] = {}
    for bid in bids:
        alloc = allocated.get(bid.id or 0)
        mine = won.setdefault(bid.organisation_id, [0, 0])
        if alloc is not None:
            mine[0] += alloc.quantity
            mine[1] += alloc.amount_fen(scale)
    parties = [(org, "bidder", q, a) for org, (q, a) in won.items()]
    parties.append((auction.seller_organisation_id, "seller", sum(q for q, _ in won.values()),
                    sum(a for _, a in won.values())))  # fmt: skip
    for org, role, quantity, amount in parties:
        emit(
            ses,
            "auction.cleared",
            {
                "auction_id": auction.id,
                "instrument_code": inst.code,
                "role": role,
                "clearing_price_fen": auction.clearing_price_fen,
                "quantity": figures.quantity_plain(quantity, scale),
                "amount_fen": amount,
            },
            to=(org,),
            subject=f"auction:{auction.id}",
        )


async def cancel_auction(ctx: TradingContext, who: Identity, auction_id: int) -> s.AuctionOut:
    """The seller withdraws an open auction: its units and every bidder's funds are released."""
    now = ctx.clock.now()

    async def work(uow: UnitOfWork) -> s.AuctionOut:
        ses = uow.session
        auction = await find_auction(ctx, ses, auction_id, lock=True)
        market = await ses.get(Market, auction.market_id)
        assert market is not None
        if who.organisation_id != auction.seller_organisation_id:
            raise NotFound("auction", field="auction_id")
        if auction.status == "cancelled" and auction.cleared_at is not None:
            return await auction_out(ses, who, auction, market.kind)
        if auction.status != "open":
            raise Conflict("invalid-state", f"Auction {auction.id} is {auction.status}.")
        await clearing.collect(
            ses,
            hold_id=auction.hold_transfer_id or 0,
            amount=0,
            client_id=f"auc:{auction.id}:h1:r",
            now=now,
            code="trade-release",
        )
        bids = (await ses.execute(select(Bid).where(Bid.auction_id == auction.id))).scalars().all()
        for bid in bids:
            await clearing.collect(
                ses,
                hold_id=bid.hold_transfer_id or 0,
                amount=0,
                client_id=f"bid:{bid.id}:h1:r",
                now=now,
                code="trade-release",
            )
            bid.hold_transfer_id = None
            bid.held_amount = 0
            bid.status = "cancelled"
        auction.status = "cancelled"
        auction.reason = "withdrawn by the seller"
        auction.hold_transfer_id = None
        auction.held_amount = 0
        auction.cleared_at = now
        uow.audit(who.actor, "auction.cancel", "auction", str(auction.id), {"bids": len(bids)})
        return await auction_out(ses, who, auction, market.kind)

    return await ctx.db.run(work)


async def find_auction(ctx: TradingContext, ses: AsyncSession, auction_id: int, *, lock: bool = False) -> Auction:
    q = select(Auction).where(Auction.id == auction_id).execution_options(populate_existing=True)
    if lock and not ctx.db.sqlite:
        # Bids and the clearing of one auction queue on its row, so no bid slips in after the clearing.
        q = q.with_for_update()
    auction = (await ses.execute(q)).scalar_one_or_none()
    if auction is None:
        raise NotFound("auction", field="auction_id")
    return auction


async def get_auction(ctx: TradingContext, who: Identity, auction_id: int) -> s.AuctionOut:
    async def work(uow: UnitOfWork) -> s.AuctionOut:
        auction = await find_auction(ctx, uow.session, auction_id)
        market = await uow.session.get(Market, auction.market_id)
        assert market is not None
        return await auction_out(uow.session, who, auction, market.kind)

    return await ctx.db.read(work)


async def auction_out(ses: AsyncSession, who: Identity, a: Auction, kind: str) -> s.AuctionOut:
    q = select(Bid).where(Bid.auction_id == a.id)
    # Bids are sealed: a bidder sees its own; the seller and the oversight roles see all once it is decided.
    sees_all = who.reads_all() or (a.status != "open" and who.organisation_id == a.seller_organisation_id)
    if not sees_all:
        q = q.where(Bid.organisation_id == who.organisation_id)
    bids = (await ses.execute(q.order_by(Bid.id))).scalars().all()  # type: ignore[arg-type]
    decided = a.status != "open"
    return s.AuctionOut(
        id=a.id or 0,
        instrument_id=a.instrument_id,
        type=a.type,
        status=a.status,
        seller_organisation_id=a.seller_organisation_id,
        volume=qty(a.volume, kind),
        volume_base=a.volume,
        prev_close=figures.yuan_plain(a.prev_close_fen),
        floor_price=maybe_yuan(a.floor_fen),
        ceiling_price=maybe_yuan(a.ceiling_fen),
        reserve_price=maybe_yuan(a.reserve_price_fen)
        if decided or who.organisation_id == a.seller_organisation_id
        else None,
        bidder_cap_bps=a.bidder_cap_bps,
        pricing=a.pricing,
        clearing_price=maybe_yuan(a.clearing_price_fen),
        clearing_price_fen=a.clearing_price_fen,
        sold=qty(a.sold_quantity, kind),
        sold_base=a.sold_quantity,
        reason=a.reason,
        seed=a.seed if decided else None,
        tie_order=json.loads(a.tie_order) if decided and a.tie_order else None,
        bids=[bid_out(b, kind) for b in bids],
        created_at=a.created_at,
        cleared_at=a.cleared_at,
    )


def bid_out(b: Bid, kind: str) -> s.BidOut:
    return s.BidOut(
        id=b.id or 0,
        auction_id=b.auction_id,
        organisation_id=b.organisation_id,
        account_id=b.account_id,
        price=figures.yuan_plain(b.price_fen),
        price_fen=b.price_fen,
        quantity=qty(b.quantity, kind),
        quantity_base=b.quantity,
        status=b.status,
        allocated=qty(b.allocated_quantity, kind),
        allocated_base=b.allocated_quantity,
        paid_price=maybe_yuan(b.paid_price_fen),
        created_at=b.created_at,
    )
