"""Differential test of the continuous matcher against the peer engine pyorderbook 0.4.9.

Both books receive the same random stream (limit, market, IOC, FOK, cancel, reduce) with bands, ticks,
lots, sessions, fees and self-trade prevention switched off; after every event the trades (taker, maker,
quantity, price) and the best bid and offer must be identical, and every cancel must be accepted exactly
when the peer still holds the order. pyorderbook has only limit orders and cancel, so the adapter
emulates the rest: MARKET is a limit at an extreme price followed by a cancel of the residual, IOC is a
limit followed by a cancel, FOK is submitted only when the peer's crossing levels hold enough quantity,
and a reduction lowers the peer order's quantity in place (its queue position is untouched, which is the
behaviour under test) or cancels it when reduced by all of it.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from pyorderbook import Book as PeerBook
from pyorderbook import Order as PeerOrder
from pyorderbook import Side as PeerSide

from trading.domain.book import Book, BookConfig
from trading.domain.model import Code, OrderKind, Side

SEEDS = 30
EVENTS_PER_SEED = 20_000
SYMBOL = "CEA"
NOW = datetime(2025, 3, 3, 2, 0, tzinfo=UTC)
MID_FEN = 1_000
SPREAD_TICKS = 20
MARKET_BUY_FEN = 10**9
MARKET_SELL_FEN = 1


class PeerAdapter:
    """pyorderbook driven by our ids, with the order kinds it lacks emulated."""

    def __init__(self) -> None:
        self.book = PeerBook()
        self.our_id: dict[object, int] = {}
        self.orders: dict[int, PeerOrder] = {}

    def _submit(self, order_id: int, side: Side, price_fen: int, quantity: int) -> tuple[PeerOrder, list]:
        peer_side = PeerSide.BID if side is Side.BUY else PeerSide.ASK
        order = PeerOrder(peer_side, SYMBOL, price_fen, quantity)
        self.our_id[order.id] = order_id
        self.orders[order_id] = order
        blotter = self.book.match(order)
        trades = [
            (
                self.our_id[t.incoming_order_id],
                self.our_id[t.standing_order_id],
                t.fill_quantity,
                int(t.fill_price),
            )
            for t in blotter.trades
        ]
        return order, trades

    def _cancel_residual(self, order: PeerOrder) -> None:
        if order.id in self.book.order_map:
            self.book.cancel(order)

    def _crossing_quantity(self, side: Side, price_fen: int) -> int:
        if side is Side.BUY:
            levels = self.book.level_map[SYMBOL][PeerSide.ASK]
            crossing = [lvl for price, lvl in levels.items() if price <= price_fen]
        else:
            levels = self.book.level_map[SYMBOL][PeerSide.BID]
            crossing = [lvl for price, lvl in levels.items() if price >= price_fen]
        return sum(o.quantity for lvl in crossing for o in lvl.orders.values())

    def place(self, order_id: int, side: Side, kind: OrderKind, price_fen: int | None, quantity: int) -> list:
        if kind is OrderKind.MARKET:
            extreme = MARKET_BUY_FEN if side is Side.BUY else MARKET_SELL_FEN
            order, trades = self._submit(order_id, side, extreme, quantity)
            self._cancel_residual(order)
            return trades
        assert price_fen is not None
        if kind is OrderKind.FOK and self._crossing_quantity(side, price_fen) < quantity:
            # Killed: remember it as an order that never traded and is not live.
            self.orders[order_id] = PeerOrder(PeerSide.BID, SYMBOL, price_fen, quantity)
            return []
        order, trades = self._submit(order_id, side, price_fen, quantity)
        if kind is not OrderKind.LIMIT:
            self._cancel_residual(order)
        return trades

    def state(self, order_id: int) -> Code:
        """What a cancel of this id should answer, judged from the peer's own records."""
        order = self.orders.get(order_id)
        if order is None:
            return Code.UNKNOWN_ORDER
        if order.id in self.book.order_map:
            return Code.OK
        return Code.ORDER_FILLED if order.quantity == 0 else Code.ORDER_CANCELLED

    def cancel(self, order_id: int) -> None:
        self.book.cancel(self.orders[order_id])

    def reduce(self, order_id: int, quantity: int) -> None:
        order = self.orders[order_id]
        if quantity >= order.quantity:
            self.book.cancel(order)
        else:
            order.quantity -= quantity

    def best(self) -> tuple[int | None, int | None]:
        levels = self.book.level_map[SYMBOL]
        # Cancels leave empty levels behind in pyorderbook until a match flushes them; skip those.
        bids = [price for price, lvl in levels[PeerSide.BID].items() if lvl.orders]
        asks = [price for price, lvl in levels[PeerSide.ASK].items() if lvl.orders]
        return (int(max(bids)) if bids else None, int(min(asks)) if asks else None)


def run_differential(seed: int, events: int) -> int:
    """Drive both books through one random stream; returns the number of trades compared."""
    rng = random.Random(seed)
    ours = Book(BookConfig.unchecked())
    peer = PeerAdapter()
    placed: list[int] = []
    next_id = 1
    compared = 0
    for step in range(events):
        roll = rng.random()
        if roll < 0.72:
            order_id = next_id
            next_id += 1
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            kind_roll = rng.random()
            if kind_roll < 0.76:
                kind = OrderKind.LIMIT
            elif kind_roll < 0.84:
                kind = OrderKind.IOC
            elif kind_roll < 0.92:
                kind = OrderKind.FOK
            else:
                kind = OrderKind.MARKET
            price = None if kind is OrderKind.MARKET else MID_FEN + rng.randint(-SPREAD_TICKS, SPREAD_TICKS)
            quantity = rng.randint(1, 60)
            owner = f"E{rng.randint(1, 8)}"
            result = ours.place(order_id, side, kind, price, quantity, owner=owner, now=NOW)
            assert result.ok, (seed, step, result)
            expected = peer.place(order_id, side, kind, price, quantity)
            got = [(t.taker_order_id, t.maker_order_id, t.quantity, t.price_fen) for t in result.trades]
            assert got == expected, (seed, step, kind, got, expected)
            compared += len(got)
            placed.append(order_id)
        elif placed:
            # Mostly recent orders (likely live), sometimes old ones (likely stale), sometimes unknown ids.
            target = placed[-rng.randint(1, min(len(placed), 40))] if rng.random() < 0.85 else rng.choice(placed)
            if rng.random() < 0.03:
                target = next_id + 1_000_000
            expected_code = peer.state(target)
            if roll < 0.92:
                result = ours.cancel(target)
                assert result.code is expected_code, (seed, step, target, result, expected_code)
                if expected_code is Code.OK:
                    peer.cancel(target)
            else:
                by = rng.randint(1, 30)
                result = ours.reduce(target, by)
                assert result.code is expected_code, (seed, step, target, result, expected_code)
                if expected_code is Code.OK:
                    peer.reduce(target, by)
        assert (ours.best_bid(), ours.best_ask()) == peer.best(), (seed, step)
        if step % 2_000 == 0:
            assert ours.check_invariants() == [], (seed, step)
    assert ours.check_invariants() == []
    return compared


@pytest.mark.parametrize("seed", range(SEEDS))
def test_matches_pyorderbook_trade_for_trade_and_quote_for_quote(seed: int) -> None:
    compared = run_differential(seed, EVENTS_PER_SEED)
    # The stream must actually exercise matching, or identical output would prove nothing.
    assert compared > EVENTS_PER_SEED // 4
