"""The trading context's published interface: `TradingService`, the facade that the composition root builds once
per process and that the scheduler's jobs, the compliance context (the monthly average price, duck-typed) and the
tests call. It holds the context (`trading.context.TradingContext`) and delegates each method to its use case;
the controllers in `trading.api` call the use-case modules directly:

    markets.py       opening a market in an instrument, listing markets, the per-process market cache
    books.py         a market's book of a day (its frozen row), the group commit of its commands, and the
                     exclusive unit of work under its lock
    orders.py        placing (or picking) and cancelling orders through the sequenced book
    settlement.py    account checks, T+1, holds, and delivery versus payment of every trade through clearing
    queries.py       reading orders (with their fills) and the trades feed
    market_data.py   depth and listings, a day's book snapshot, daily bars, the monthly average price
    close.py         opening a day's book after closing stale days, and the daily close
    block_trades.py  block trade proposals, acceptance (settled DVP), withdrawal and expiry
    auctions.py      primary and one-way auctions, sealed bids, seeded clearing and withdrawal
    funds.py         fund accounts, deposits and withdrawals, and the settlement bank's decisions
    reconcile.py     every hold against what it belongs to, every book against its journal
    _common.py       limits, the problems of the matcher's codes, entry checks and formatting they share

Guarantees:
- One public use-case function is one transaction (through `Database.run`), except that placements and cancels
  of one book that arrive together share one (group commit, `books.submit`: each in its own savepoint, answered
  after the one commit); commands on a book run under the book's lock, are journalled under its next sequence
  numbers in the same transaction, and a failure after the book changed rebuilds the in-memory book from the
  journal.
- Every movement of units or yuan is a ledger transfer between clearing's accounts (`trading.clearing`; the
  order path hands `core.ledger` both accounts, `trading.settlement`); each hold is posted or voided
  exactly once (its client id is unique), and every amount is computed by `trading.domain.money` at the
  instrument's scale.
- `reconcile()` is empty when every hold matches what it belongs to and every open book equals its journal.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from core.clock import Clock
from core.db import Database
from core.identity import Identity
from core.workdays import is_working_day as calendar_working_day
from registry.service import RegistryService
from trading import block_trades, clearing, close, funds, market_data, markets, orders, queries, reconcile
from trading import schemas as s
from trading.context import MarketInfo, TradingContext
from trading.domain.book import BookSnapshot
from trading.sequencer import GROUP_COMMIT_LINGER_S, GROUP_COMMIT_MAX_COMMANDS, Sequencer

__all__ = ["MarketInfo", "TradingContext", "TradingService"]


class TradingService:
    """What the composition root builds, the scheduler's jobs and the compliance context call, and the tests drive
    without HTTP. `ctx` is what the use cases take."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        registry: RegistryService,
        *,
        sequencer: Sequencer | None = None,
        is_working_day: Callable[[dt.date], bool] = calendar_working_day,
        accounts: clearing.Accounts | None = None,
        group_commit_max: int = GROUP_COMMIT_MAX_COMMANDS,
        group_commit_linger_s: float = GROUP_COMMIT_LINGER_S,
    ) -> None:
        self.ctx = TradingContext(
            db,
            clock,
            registry,
            sequencer=Sequencer() if sequencer is None else sequencer,
            is_working_day=is_working_day,
            accounts=clearing.Accounts() if accounts is None else accounts,
            group_commit_max=group_commit_max,
            group_commit_linger_s=group_commit_linger_s,
        )

    # ------------------------------------------------------------------ markets
    async def create_market(self, who: Identity, req: s.CreateMarket, request_key: str | None) -> s.MarketOut:
        return await markets.create_market(self.ctx, who, req, request_key)

    async def list_markets(self) -> list[s.MarketOut]:
        return await markets.list_markets(self.ctx)

    # ------------------------------------------------------------------ orders
    async def place_order(self, who: Identity, req: s.PlaceOrder, request_key: str | None) -> s.OrderOut:
        return await orders.place_order(self.ctx, who, req, request_key)

    async def cancel_order(self, who: Identity, order_id: int) -> s.OrderOut:
        return await orders.cancel_order(self.ctx, who, order_id)

    async def get_order(self, who: Identity, order_id: int) -> s.OrderOut:
        return await queries.get_order(self.ctx, who, order_id)

    async def list_orders(
        self,
        who: Identity,
        *,
        instrument_id: int | None,
        status: str | None,
        limit: int,
        before_id: int | None,
    ) -> s.OrderPage:
        return await queries.list_orders(
            self.ctx, who, instrument_id=instrument_id, status=status, limit=limit, before_id=before_id
        )

    # ------------------------------------------------------------------ market data
    async def get_order_book(self, instrument_id: int) -> s.BookOut:
        return await market_data.get_order_book(self.ctx, instrument_id)

    async def book_snapshot(self, instrument_id: int, day: dt.date) -> BookSnapshot | None:
        return await market_data.book_snapshot(self.ctx, instrument_id, day)

    async def get_daily_bars(self, instrument_id: int, *, date_from: dt.date, date_to: dt.date) -> list[s.DayOut]:
        return await market_data.get_daily_bars(self.ctx, instrument_id, date_from=date_from, date_to=date_to)

    async def monthly_average_price_fen(self, *, kind: str, year: int, month: int) -> int | None:
        return await market_data.monthly_average_price_fen(self.ctx, kind=kind, year=year, month=month)

    # ------------------------------------------------------------------ the daily close
    async def close_trading_day(self, day: dt.date | None = None, who: Identity | None = None) -> s.CloseOut:
        return await close.close_trading_day(self.ctx, day, who)

    # ------------------------------------------------------------------ block trades
    async def propose_block_trade(
        self, who: Identity, req: s.ProposeBlockTrade, request_key: str | None
    ) -> s.BlockTradeOut:
        return await block_trades.propose_block_trade(self.ctx, who, req, request_key)

    async def accept_block_trade(self, who: Identity, block_id: int, req: s.AcceptBlockTrade) -> s.BlockTradeOut:
        return await block_trades.accept_block_trade(self.ctx, who, block_id, req)

    # ------------------------------------------------------------------ fund accounts
    async def request_fund_movement(
        self, who: Identity, kind: str, req: s.FundRequest, request_key: str | None
    ) -> s.FundMovementOut:
        return await funds.request_fund_movement(self.ctx, who, kind, req, request_key)

    async def decide_fund_movement(self, who: Identity, movement_id: int, req: s.FundDecision) -> s.FundMovementOut:
        return await funds.decide_fund_movement(self.ctx, who, movement_id, req)

    # ------------------------------------------------------------------ reconciliation
    async def reconcile(self) -> list[str]:
        return await reconcile.reconcile(self.ctx)
