"""HTTP controllers of the trading context: thin, guarded, each route with its operation id, tags and problems.

Every POST that moves value (orders, cancels, block trades, auctions, bids, fund movements, the daily close)
needs an `Idempotency-Key`; so does `createMarket`, so that a retried creation never makes a second market.
Prices are decimal strings in yuan, quantities decimal strings in the instrument's display unit.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from litestar import Controller, Request, get, post
from litestar.params import FromQuery, JSONBody, QueryParameter

from core.http import IDEMPOTENT, READ_PROBLEMS, WRITE_PROBLEMS, allow, request_key
from core.identity import Identity, Role
from core.schema import MAX_ID, IdPath
from trading import auctions, block_trades, close, funds, market_data, markets, orders, queries
from trading import schemas as s
from trading.context import TradingContext
from trading.surveillance.api import CONTROLLERS as SURVEILLANCE_CONTROLLERS

R = Role
AUTHORITIES = (R.REGULATOR, R.ENERGY_AUTHORITY, R.GEC_ISSUER)
TRADERS = (R.EMITTER, R.MEMBER)
MARKET_READERS = (*AUTHORITIES, R.AUDITOR, *TRADERS, R.BANK)
ORDER_READERS = (*AUTHORITIES, R.AUDITOR, *TRADERS)
FUND_HOLDERS = (*TRADERS, *AUTHORITIES)
TAGS = ["trading"]

Limit = Annotated[int, QueryParameter(ge=1, le=500)]
BeforeId = Annotated[int | None, QueryParameter(ge=1, le=MAX_ID)]


def ctx(request: Request[Any, Any, Any]) -> TradingContext:
    """The trading context of the process (held by the `TradingService` the composition root built)."""
    return request.app.state.trading.ctx  # type: ignore[no-any-return]


class MarketController(Controller):
    path = "/api/v1/markets"
    tags = TAGS

    @get(
        "/",
        operation_id="listMarkets",
        guards=[allow(*MARKET_READERS)],
        responses=READ_PROBLEMS,
        summary="Instruments on the market with their mode, previous close and today's price band",
    )
    async def list_markets(self, request: Request[Identity, Any, Any]) -> list[s.MarketOut]:
        return await markets.list_markets(ctx(request))

    @post(
        "/",
        operation_id="createMarket",
        guards=[allow(*AUTHORITIES)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        summary="Open trading in an instrument: listed agreement (挂牌协议) or continuous mode",
    )
    async def create_market(self, request: Request[Identity, Any, Any], data: JSONBody[s.CreateMarket]) -> s.MarketOut:
        return await markets.create_market(ctx(request), request.user, data, request_key(request))

    @get(
        "/{instrument_id:int}/book",
        operation_id="getOrderBook",
        guards=[allow(*MARKET_READERS)],
        responses=READ_PROBLEMS,
        summary="Today's order book: best five price levels per side, and the listings a taker may pick",
    )
    async def order_book(self, request: Request[Identity, Any, Any], instrument_id: IdPath) -> s.BookOut:
        return await market_data.get_order_book(ctx(request), instrument_id)

    @get(
        "/{instrument_id:int}/trades",
        operation_id="listTrades",
        guards=[allow(*MARKET_READERS)],
        responses=READ_PROBLEMS,
        summary="The trades feed of an instrument, newest first",
    )
    async def trades(
        self,
        request: Request[Identity, Any, Any],
        instrument_id: IdPath,
        trade_date: FromQuery[dt.date | None] = None,
        venue: FromQuery[Literal["listed", "continuous", "block", "one-way-auction", "primary-auction"] | None] = None,
        limit: Limit = 100,
        before_id: BeforeId = None,
    ) -> s.TradePage:
        return await queries.list_trades(
            ctx(request), instrument_id, trade_date=trade_date, venue=venue, limit=limit, before_id=before_id
        )

    @get(
        "/{instrument_id:int}/bars",
        operation_id="getDailyBars",
        guards=[allow(*MARKET_READERS)],
        responses=READ_PROBLEMS,
        summary="Daily bars per venue with the previous close and the close (VWAP of listed trades)",
    )
    async def bars(
        self,
        request: Request[Identity, Any, Any],
        instrument_id: IdPath,
        date_from: FromQuery[dt.date],
        date_to: FromQuery[dt.date],
    ) -> list[s.DayOut]:
        return await market_data.get_daily_bars(ctx(request), instrument_id, date_from=date_from, date_to=date_to)


class TradingDayController(Controller):
    path = "/api/v1/trading-days"
    tags = TAGS

    @post(
        "/close",
        operation_id="closeTradingDay",
        guards=[allow(R.REGULATOR)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        status_code=200,
        summary="Close a trading day now (the scheduler's market_close job does this at 15:05)",
    )
    async def close(self, request: Request[Identity, Any, Any], data: JSONBody[s.CloseDay]) -> s.CloseOut:
        return await close.close_trading_day(
            ctx(request), data.trade_date, request.user, early_close=data.early_close, reason=data.reason
        )


class OrderController(Controller):
    path = "/api/v1/orders"
    tags = TAGS

    @post(
        "/",
        operation_id="placeOrder",
        guards=[allow(*TRADERS)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        summary="Place an order, or pick (摘牌) a listing with `listing_id`; units or funds are held at once",
    )
    async def place(self, request: Request[Identity, Any, Any], data: JSONBody[s.PlaceOrder]) -> s.OrderOut:
        return await orders.place_order(ctx(request), request.user, data, request_key(request))

    @get("/", operation_id="listOrders", guards=[allow(*ORDER_READERS)], responses=READ_PROBLEMS)
    async def list_orders(
        self,
        request: Request[Identity, Any, Any],
        instrument_id: Annotated[int | None, QueryParameter(ge=1, le=MAX_ID)] = None,
        status: FromQuery[Literal["resting", "filled", "cancelled"] | None] = None,
        limit: Limit = 50,
        before_id: BeforeId = None,
    ) -> s.OrderPage:
        return await queries.list_orders(
            ctx(request), request.user, instrument_id=instrument_id, status=status, limit=limit, before_id=before_id
        )

    @get("/{order_id:int}", operation_id="getOrder", guards=[allow(*ORDER_READERS)], responses=READ_PROBLEMS)
    async def get_one(self, request: Request[Identity, Any, Any], order_id: IdPath) -> s.OrderOut:
        return await queries.get_order(ctx(request), request.user, order_id)

    @post(
        "/{order_id:int}/cancel",
        operation_id="cancelOrder",
        guards=[allow(*TRADERS)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        status_code=200,
        summary="Cancel what is left of an order; its hold is released (a filled order answers 409)",
    )
    async def cancel(self, request: Request[Identity, Any, Any], order_id: IdPath) -> s.OrderOut:
        return await orders.cancel_order(ctx(request), request.user, order_id)


class BlockTradeController(Controller):
    path = "/api/v1/block-trades"
    tags = TAGS

    @post(
        "/",
        operation_id="proposeBlockTrade",
        guards=[allow(*TRADERS)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        summary="Propose a block trade (大宗协议, ≥ 100,000 units, ±30%) to a counterparty; your side is held",
    )
    async def propose(
        self, request: Request[Identity, Any, Any], data: JSONBody[s.ProposeBlockTrade]
    ) -> s.BlockTradeOut:
        return await block_trades.propose_block_trade(ctx(request), request.user, data, request_key(request))

    @get(
        "/{block_trade_id:int}",
        operation_id="getBlockTrade",
        guards=[allow(*ORDER_READERS)],
        responses=READ_PROBLEMS,
    )
    async def get_one(self, request: Request[Identity, Any, Any], block_trade_id: IdPath) -> s.BlockTradeOut:
        return await block_trades.get_block_trade(ctx(request), request.user, block_trade_id)

    @post(
        "/{block_trade_id:int}/accept",
        operation_id="acceptBlockTrade",
        guards=[allow(*TRADERS)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        status_code=200,
        summary="Accept a block trade proposed to you; it settles delivery versus payment at once",
    )
    async def accept(
        self, request: Request[Identity, Any, Any], block_trade_id: IdPath, data: JSONBody[s.AcceptBlockTrade]
    ) -> s.BlockTradeOut:
        return await block_trades.accept_block_trade(ctx(request), request.user, block_trade_id, data)

    @post(
        "/{block_trade_id:int}/cancel",
        operation_id="cancelBlockTrade",
        guards=[allow(*TRADERS)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        status_code=200,
        summary="Withdraw or decline a block trade proposal; the proposer's hold is released",
    )
    async def cancel(self, request: Request[Identity, Any, Any], block_trade_id: IdPath) -> s.BlockTradeOut:
        return await block_trades.cancel_block_trade(ctx(request), request.user, block_trade_id)


class AuctionController(Controller):
    path = "/api/v1/auctions"
    tags = TAGS

    @post(
        "/",
        operation_id="createAuction",
        guards=[allow(*AUTHORITIES, *TRADERS)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        summary="Offer units by auction: the regulator's primary auction or a holder's one-way auction (单向竞价)",
    )
    async def create(self, request: Request[Identity, Any, Any], data: JSONBody[s.CreateAuction]) -> s.AuctionOut:
        return await auctions.create_auction(ctx(request), request.user, data, request_key(request))

    @get(
        "/{auction_id:int}",
        operation_id="getAuctionResult",
        guards=[allow(*MARKET_READERS)],
        responses=READ_PROBLEMS,
        summary="An auction's terms, status and result (sealed bids: a bidder sees its own)",
    )
    async def get_one(self, request: Request[Identity, Any, Any], auction_id: IdPath) -> s.AuctionOut:
        return await auctions.get_auction(ctx(request), request.user, auction_id)

    @post(
        "/{auction_id:int}/bids",
        operation_id="submitBid",
        guards=[allow(*TRADERS)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        summary="Submit a sealed bid; price × quantity is held in your fund account",
    )
    async def bid(
        self, request: Request[Identity, Any, Any], auction_id: IdPath, data: JSONBody[s.SubmitBid]
    ) -> s.BidOut:
        return await auctions.submit_bid(ctx(request), request.user, auction_id, data, request_key(request))

    @post(
        "/{auction_id:int}/clear",
        operation_id="clearAuction",
        guards=[allow(*AUTHORITIES, *TRADERS)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        status_code=200,
        summary="Clear the auction with the seed fixed at its creation and settle every allocation",
    )
    async def clear(self, request: Request[Identity, Any, Any], auction_id: IdPath) -> s.AuctionOut:
        return await auctions.clear_auction(ctx(request), request.user, auction_id)

    @post(
        "/{auction_id:int}/cancel",
        operation_id="cancelAuction",
        guards=[allow(*AUTHORITIES, *TRADERS)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        status_code=200,
        summary="The seller withdraws an open auction; the units and every bid's funds are released",
    )
    async def cancel(self, request: Request[Identity, Any, Any], auction_id: IdPath) -> s.AuctionOut:
        return await auctions.cancel_auction(ctx(request), request.user, auction_id)


class FundController(Controller):
    path = "/api/v1/funds"
    tags = TAGS

    @get(
        "/",
        operation_id="getFundAccount",
        guards=[allow(*FUND_HOLDERS)],
        responses=READ_PROBLEMS,
        summary="Your fund account in yuan: balance, available and held for open orders and bids",
    )
    async def account(self, request: Request[Identity, Any, Any]) -> s.FundAccountOut:
        return await funds.get_fund_account(ctx(request), request.user)

    @post(
        "/deposits",
        operation_id="depositFunds",
        guards=[allow(*FUND_HOLDERS)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        summary="Announce a deposit; it is credited when the settlement bank confirms it",
    )
    async def deposit(self, request: Request[Identity, Any, Any], data: JSONBody[s.FundRequest]) -> s.FundMovementOut:
        return await funds.request_fund_movement(ctx(request), request.user, "deposit", data, request_key(request))

    @post(
        "/withdrawals",
        operation_id="withdrawFunds",
        guards=[allow(*FUND_HOLDERS)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        summary="Request a withdrawal; the amount is held now and paid out when the settlement bank confirms",
    )
    async def withdraw(self, request: Request[Identity, Any, Any], data: JSONBody[s.FundRequest]) -> s.FundMovementOut:
        return await funds.request_fund_movement(ctx(request), request.user, "withdrawal", data, request_key(request))

    @get(
        "/transactions",
        operation_id="listFundTransactions",
        guards=[allow(*FUND_HOLDERS)],
        responses=READ_PROBLEMS,
        summary="Your fund account statement: every posted movement, signed, newest first; they add up to the balance",
    )
    async def transactions(
        self, request: Request[Identity, Any, Any], limit: Limit = 100, before_id: BeforeId = None
    ) -> s.FundTransactionPage:
        return await funds.list_fund_transactions(ctx(request), request.user, limit=limit, before_id=before_id)

    @get(
        "/movements",
        operation_id="listFundMovements",
        guards=[allow(*FUND_HOLDERS, R.BANK, R.AUDITOR)],
        responses=READ_PROBLEMS,
        summary="Deposits and withdrawals: your own, or all of them for the settlement bank",
    )
    async def movements(
        self,
        request: Request[Identity, Any, Any],
        status: FromQuery[Literal["requested", "confirmed", "rejected"] | None] = None,
        limit: Limit = 100,
        before_id: BeforeId = None,
    ) -> list[s.FundMovementOut]:
        return await funds.list_fund_movements(
            ctx(request), request.user, status=status, limit=limit, before_id=before_id
        )

    @post(
        "/movements/{movement_id:int}/decision",
        operation_id="confirmFundMovement",
        guards=[allow(R.BANK)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        status_code=200,
        summary="The settlement bank confirms or rejects a requested deposit or withdrawal",
    )
    async def decide(
        self, request: Request[Identity, Any, Any], movement_id: IdPath, data: JSONBody[s.FundDecision]
    ) -> s.FundMovementOut:
        return await funds.decide_fund_movement(ctx(request), request.user, movement_id, data)


CONTROLLERS: list[Any] = [
    *SURVEILLANCE_CONTROLLERS,
    MarketController,
    TradingDayController,
    OrderController,
    BlockTradeController,
    AuctionController,
    FundController,
]
