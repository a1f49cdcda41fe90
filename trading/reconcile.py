"""Reconciliation of the trading context: every hold on the ledger against the order, bid, auction, block
proposal or withdrawal it belongs to, and every open book in memory against its journal's replay and the resting
orders in the database. The tests assert it after every step, and the durable-orders benchmark after its run.
"""

from __future__ import annotations

from sqlalchemy import and_, or_, select

from core import ledger
from core.db import UnitOfWork
from core.models import LedgerTransfer
from trading._common import kind_scale
from trading.context import TradingContext
from trading.domain.journal import replay
from trading.domain.model import Side, Status
from trading.domain.money import buy_hold_fen
from trading.models import Auction, Bid, BlockTrade, BookDay, FundMovement, Market, Order
from trading.sequencer import book_config, read_journal


async def reconcile(ctx: TradingContext) -> list[str]:
    """Every broken promise of the trading context, as messages (empty when all hold).

    - every open order, bid, auction, block proposal and withdrawal has exactly one unresolved hold, of the
      amount its remaining quantity needs (sell: remaining units; buy: remaining × unit cost);
    - no unresolved trading hold belongs to anything closed;
    - each open book equals its journal's replay, is sound (`check_invariants`), and its live orders are
      exactly the resting orders in the database with the same remaining quantities.
    """
    problems: list[str] = []

    async def holds(uow: UnitOfWork) -> list[str]:
        ses = uow.session
        out: list[str] = []
        resolved = select(LedgerTransfer.resolves_id).where(LedgerTransfer.resolves_id.is_not(None))  # type: ignore[union-attr]
        open_holds = {
            t.id: t
            for t in (
                await ses.execute(
                    select(LedgerTransfer).where(
                        LedgerTransfer.kind == ledger.PENDING,
                        LedgerTransfer.id.not_in(resolved),  # type: ignore[union-attr]
                        or_(
                            *(
                                LedgerTransfer.ref.like(f"{p}:%")  # type: ignore[union-attr]
                                for p in ("order", "bid", "auction", "block", "fund")
                            )
                        ),
                    )
                )
            ).scalars()
        }
        expected: dict[int, tuple[str, int]] = {}

        def want(label: str, hold_id: int | None, amount: int) -> None:
            if hold_id is None:
                if amount:
                    out.append(f"{label}: needs a hold of {amount} but has none")
                return
            expected[hold_id] = (label, amount)

        scale_of = {m.id: kind_scale(m.kind) for m in (await ses.execute(select(Market))).scalars()}
        for o in (await ses.execute(select(Order).where(Order.status == Status.RESTING.value))).scalars():
            remaining = o.quantity - o.filled_quantity - o.cancelled_quantity
            need = (
                remaining
                if o.side == Side.SELL.value
                else buy_hold_fen(o.hold_price_fen or 0, remaining, scale_of[o.market_id], o.hold_fee_bps)
            )
            if o.held_amount != need:
                out.append(f"order {o.id}: held_amount {o.held_amount} != {need} for {remaining} remaining")
            want(f"order {o.id}", o.hold_transfer_id, need)
        auction_scale = {a.id: scale_of[a.market_id] for a in (await ses.execute(select(Auction))).scalars()}
        for b in (await ses.execute(select(Bid).where(Bid.status == "open"))).scalars():
            need = buy_hold_fen(b.price_fen, b.quantity, auction_scale[b.auction_id], 0)
            want(f"bid {b.id}", b.hold_transfer_id, need)
        for a in (await ses.execute(select(Auction).where(Auction.status == "open"))).scalars():
            want(f"auction {a.id}", a.hold_transfer_id, a.volume)
        for bt in (await ses.execute(select(BlockTrade).where(BlockTrade.status == "proposed"))).scalars():
            want(f"block trade {bt.id}", bt.hold_transfer_id, bt.held_amount)
        for mv in (
            await ses.execute(
                select(FundMovement).where(and_(FundMovement.kind == "withdrawal", FundMovement.status == "requested"))
            )
        ).scalars():
            want(f"withdrawal {mv.id}", mv.hold_transfer_id, mv.amount_fen)
        for hold_id, (label, amount) in expected.items():
            t = open_holds.get(hold_id)
            if t is None:
                out.append(f"{label}: hold {hold_id} is not an open trading hold")
            elif t.amount != amount:
                out.append(f"{label}: hold {hold_id} is {t.amount}, expected {amount}")
        for hold_id in sorted(set(open_holds) - set(expected)):
            out.append(f"hold {hold_id} ({open_holds[hold_id].ref}) belongs to nothing open")
        return out

    problems += await ctx.db.read(holds)

    async def open_books(uow: UnitOfWork) -> list[BookDay]:
        return list((await uow.session.execute(select(BookDay).where(BookDay.status == "open"))).scalars())

    for row in await ctx.db.read(open_books):

        async def check(uow: UnitOfWork, row: BookDay = row) -> list[str]:
            ses = uow.session
            out: list[str] = []
            state = await ctx.sequencer.load(ses, row)
            fresh = replay(await read_journal(ses, row.id or 0), book_config(row))
            if fresh.snapshot() != state.book.snapshot():
                out.append(f"book {row.id}: memory differs from the journal's replay")
            out += [f"book {row.id}: {p}" for p in state.book.check_invariants()]
            live = {o.order_id: o.quantity for o in state.book.open_orders()}
            resting = {
                o.id: o.quantity - o.filled_quantity - o.cancelled_quantity
                for o in (
                    await ses.execute(
                        select(Order).where(Order.book_id == row.id, Order.status == Status.RESTING.value)
                    )
                ).scalars()
            }
            if live != resting:
                out.append(f"book {row.id}: live orders {live} != resting orders in the database {resting}")
            return out

        async with ctx.sequencer.lock(row.id or 0):
            problems += await ctx.db.read(check)
    return problems
