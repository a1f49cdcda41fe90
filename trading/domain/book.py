"""The order book and matcher of one instrument: pure, deterministic, integer, and fast.

One `Book` serves both trading modes of the national carbon market rule pack:

- CONTINUOUS: price-time priority matching of LIMIT, MARKET, IOC and FOK orders, with cancel and reduce
  (a reduction keeps the order's place in its queue).
- LISTED (挂牌协议): LIMIT orders rest as listings and never match by themselves; a taker picks (摘牌) one
  listing on the opposite side, which must lie within that side's best `pick_levels_max` (5) price levels,
  and trades at the listing's price, for all or part of it. A listing that would cross the opposite side is
  refused (`would-cross`) so that the book is never crossed: the participant should pick instead.

Both modes share the same checks, each switchable for differential testing: price band around the previous
close (edges rounded inward), tick, lot step, maximum quantity, trading sessions (with an injected
working-day test) and self-trade prevention. A trade's amount and fees are whole fen (see `money`).

Determinism: prices are integer fen, quantities integer base units, order ids and `now` come from the
caller, trades are numbered by the book, and nothing iterates an unordered collection. The same commands
in the same order give the same results and the same `snapshot()`, which is what journal replay relies on.
A book lives for one trading day (orders are day orders); the next day opens a new book with the new close.

Structure (chosen for speed, see bench/matching.py): each side keeps a dict from a price key to a level and
a sorted list of keys whose LAST element is the best price (bids keyed by price, asks by minus the price,
so that both sides cross with the same comparison `best_key >= limit_key` and pop their best level in O(1)).
A level is a doubly linked FIFO of orders, so cancel and reduce by id are O(1) after a dict lookup.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator
from datetime import datetime

from trading.domain.commands import Cancel, Command, Place, Reduce
from trading.domain.config import BookConfig
from trading.domain.model import (
    BookMode,
    CancelReason,
    Code,
    MakerCancel,
    OrderKind,
    Result,
    SelfTradePrevention,
    Side,
    Status,
    Trade,
)
from trading.domain.money import fee_fen, notional_fen
from trading.domain.sessions import is_aware
from trading.domain.views import BookSnapshot, Depth, LevelView, OrderView

# The book, and the configuration and views it is used with (defined beside it, imported from here too).
__all__ = ["Book", "BookConfig", "BookSnapshot", "Depth", "LevelView", "OrderView"]

# Module-level aliases: enum member lookups through the class are slow on the hot path.
_BUY = Side.BUY
_SELL = Side.SELL
_LIMIT = OrderKind.LIMIT
_MARKET = OrderKind.MARKET
_FOK = OrderKind.FOK
_OK = Code.OK
_RESTING = Status.RESTING
_FILLED = Status.FILLED
_CANCELLED = Status.CANCELLED
_REJECTED = Status.REJECTED
_REASON_FOK_UNFILLABLE = CancelReason.FOK_UNFILLABLE
_REASON_REDUCED_TO_ZERO = CancelReason.REDUCED_TO_ZERO
_REASON_USER = CancelReason.USER
_REASON_SELF_TRADE = CancelReason.SELF_TRADE
_REASON_UNFILLED_RESIDUAL = CancelReason.UNFILLED_RESIDUAL
_DUPLICATE_ORDER_ID = Code.DUPLICATE_ORDER_ID
_INVALID_PRICE = Code.INVALID_PRICE
_INVALID_QUANTITY = Code.INVALID_QUANTITY
_INVALID_TIME = Code.INVALID_TIME
_MARKET_CLOSED = Code.MARKET_CLOSED
_NOT_OWNER = Code.NOT_OWNER
_OFF_LOT = Code.OFF_LOT
_OFF_TICK = Code.OFF_TICK
_ORDER_CANCELLED = Code.ORDER_CANCELLED
_ORDER_FILLED = Code.ORDER_FILLED
_OUTSIDE_BAND = Code.OUTSIDE_BAND
_PICK_OUTSIDE_BEST_LEVELS = Code.PICK_OUTSIDE_BEST_LEVELS
_PICK_QUANTITY_ABOVE_LISTING = Code.PICK_QUANTITY_ABOVE_LISTING
_PICK_WRONG_SIDE = Code.PICK_WRONG_SIDE
_QUANTITY_ABOVE_MAX = Code.QUANTITY_ABOVE_MAX
_SELF_TRADE = Code.SELF_TRADE
_UNKNOWN_ORDER = Code.UNKNOWN_ORDER
_WOULD_CROSS = Code.WOULD_CROSS
_WRONG_MODE = Code.WRONG_MODE

# A key threshold below every real key: a market order without a band crosses every level.
_NO_LIMIT = -(1 << 62)

# Building named tuples through tuple.__new__ skips the generated Python-level __new__; same objects.
_new_tuple = tuple.__new__


class _Level:
    """All live orders at one price of one side, oldest first, with their running totals."""

    __slots__ = ("count", "head", "key", "price_fen", "side", "tail", "total")

    def __init__(self, key: int, price_fen: int, side: Side) -> None:
        self.key = key
        self.price_fen = price_fen
        self.side = side
        self.total = 0
        self.count = 0
        self.head: _Order | None = None
        self.tail: _Order | None = None


class _Order:
    """A live resting order: a node of its level's linked list (its side and price are the level's)."""

    __slots__ = ("level", "next", "order_id", "owner", "prev", "quantity")

    def __init__(self, order_id: int, quantity: int, owner: str, level: _Level) -> None:
        self.order_id = order_id
        self.quantity = quantity
        self.owner = owner
        self.level = level
        self.prev: _Order | None = None
        self.next: _Order | None = None


def _reject(code: Code, order_id: int) -> Result:
    return _new_tuple(Result, (code, order_id, _REJECTED, 0, 0, 0, (), None, ()))


class Book:
    """One instrument's order book. Every public command returns a `Result`; none raises on bad input."""

    __slots__ = (
        "_ask_keys",
        "_ask_levels",
        "_band",
        "_bid_keys",
        "_bid_levels",
        "_checked",
        "_done",
        "_fees",
        "_listed",
        "_lot",
        "_orders",
        "_per",
        "_qmax",
        "_sessions",
        "_stp",
        "_stp_cancel_maker",
        "_stp_cancel_taker",
        "_tick",
        "_trade_seq",
        "config",
    )

    def __init__(self, config: BookConfig | None = None) -> None:
        cfg = BookConfig() if config is None else config
        self.config = cfg
        self._orders: dict[int, _Order] = {}
        # Terminal states of every order id the book accepted: tells a stale cancel from an unknown id,
        # and refuses a reused id.
        self._done: dict[int, Status] = {}
        self._bid_levels: dict[int, _Level] = {}
        self._ask_levels: dict[int, _Level] = {}
        self._bid_keys: list[int] = []
        self._ask_keys: list[int] = []
        self._trade_seq = 0
        self._band = cfg.band
        # A tick or lot of 1 can never be violated by an integer, so it costs nothing on the hot path.
        self._tick = cfg.tick_fen if cfg.check_tick and cfg.tick_fen != 1 else 0
        self._lot = cfg.lot_quantity if cfg.check_lot and cfg.lot_quantity != 1 else 0
        self._qmax = cfg.quantity_max
        self._sessions = cfg.sessions if cfg.check_session else None
        self._stp = cfg.stp is not SelfTradePrevention.OFF
        stp = SelfTradePrevention
        self._stp_cancel_taker = cfg.stp in (stp.CANCEL_TAKER, stp.CANCEL_BOTH)
        self._stp_cancel_maker = cfg.stp in (stp.CANCEL_MAKER, stp.CANCEL_BOTH)
        self._fees = cfg.taker_fee_bps != 0 or cfg.maker_fee_bps != 0
        self._per = 10**cfg.scale
        self._listed = cfg.mode is BookMode.LISTED
        # With every entry check off (the differential configuration) the hot path skips them in one test.
        self._checked = bool(
            self._listed or self._tick or self._lot or self._band or self._qmax is not None or self._sessions
        )

    # ------------------------------------------------------------------ commands

    def apply(self, command: Command) -> Result:
        """Run one journalled command."""
        if isinstance(command, Place):
            return self.place(
                command.order_id,
                command.side,
                command.kind,
                command.price_fen,
                command.quantity,
                owner=command.owner,
                now=command.at,
            )
        if isinstance(command, Cancel):
            return self.cancel(command.order_id, command.owner)
        if isinstance(command, Reduce):
            return self.reduce(command.order_id, command.quantity, command.owner)
        return self.pick(
            command.order_id,
            command.side,
            command.listing_id,
            command.quantity,
            owner=command.owner,
            now=command.at,
        )

    def _check_session(self, now: datetime) -> Code | None:
        sessions = self._sessions
        if sessions is None:
            return None
        if not is_aware(now):
            return _INVALID_TIME
        if not sessions.is_open(now, self.config.is_working_day):
            return _MARKET_CLOSED
        return None

    def _check_place(self, kind: OrderKind, price_fen: int | None, quantity: int, now: datetime) -> Code | None:
        """The configurable entry checks, in a fixed order; None when the order passes them all."""
        if price_fen is not None:
            if self._listed and kind is not _LIMIT:
                return _WRONG_MODE
            if self._tick and price_fen % self._tick:
                return _OFF_TICK
            band = self._band
            if band is not None and not band[0] <= price_fen <= band[1]:
                return _OUTSIDE_BAND
        elif self._listed:
            return _WRONG_MODE
        if self._lot and quantity % self._lot:
            return _OFF_LOT
        if self._qmax is not None and quantity > self._qmax:
            return _QUANTITY_ABOVE_MAX
        return self._check_session(now)

    def place(
        self,
        order_id: int,
        side: Side,
        kind: OrderKind,
        price_fen: int | None,
        quantity: int,
        *,
        owner: str,
        now: datetime,
    ) -> Result:
        """Enter an order: match what crosses (CONTINUOUS), then rest, cancel or kill the remainder."""
        orders = self._orders
        done = self._done
        if order_id in orders or order_id in done:
            return _reject(_DUPLICATE_ORDER_ID, order_id)
        if quantity <= 0:
            return _reject(_INVALID_QUANTITY, order_id)
        if kind is _MARKET:
            if price_fen is not None:
                return _reject(_INVALID_PRICE, order_id)
        elif price_fen is None or price_fen <= 0:
            return _reject(_INVALID_PRICE, order_id)
        if self._checked:
            code = self._check_place(kind, price_fen, quantity, now)
            if code is not None:
                return _reject(code, order_id)

        # The limit key: the opposite side's keys that are >= it cross this order. A market order is
        # bounded by the band edge when there is a band, and crosses everything otherwise.
        band = self._band
        if side is _BUY:
            okeys = self._ask_keys
            olevels = self._ask_levels
            if price_fen is not None:
                limit_key = -price_fen
            elif band is not None:
                limit_key = -band[1]
            else:
                limit_key = _NO_LIMIT
        else:
            okeys = self._bid_keys
            olevels = self._bid_levels
            if price_fen is not None:
                limit_key = price_fen
            elif band is not None:
                limit_key = band[0]
            else:
                limit_key = _NO_LIMIT

        if self._listed:
            if okeys and okeys[-1] >= limit_key:
                return _reject(_WOULD_CROSS, order_id)
            assert price_fen is not None
            self._rest(order_id, side, price_fen, quantity, owner)
            return _new_tuple(Result, (_OK, order_id, _RESTING, 0, quantity, 0, (), None, ()))

        if kind is _FOK and not self._fillable(okeys, olevels, limit_key, quantity, owner):
            done[order_id] = _CANCELLED
            return _new_tuple(
                Result,
                (_OK, order_id, _CANCELLED, 0, 0, quantity, (), _REASON_FOK_UNFILLABLE, ()),
            )

        remaining = quantity
        trades_out: tuple[Trade, ...] = ()
        cancels_out: tuple[MakerCancel, ...] = ()
        self_trade = False
        if okeys and okeys[-1] >= limit_key:
            trades: list[Trade] = []
            append = trades.append
            maker_cancels: list[MakerCancel] = []
            seq = self._trade_seq
            stp = self._stp
            fees = self._fees
            per = self._per
            taker_fee = 0
            maker_fee = 0
            while True:
                key = okeys[-1]
                level = olevels[key]
                price = level.price_fen
                maker = level.head
                while maker is not None:
                    if stp and maker.owner == owner:
                        if self._stp_cancel_maker:
                            maker_cancels.append(
                                _new_tuple(MakerCancel, (maker.order_id, level.side, maker.owner, maker.quantity))
                            )
                            self._unlink(maker)
                            done[maker.order_id] = _CANCELLED
                            if not self._stp_cancel_taker:
                                maker = level.head
                                continue
                        self_trade = True
                        break
                    maker_quantity = maker.quantity
                    if maker_quantity <= remaining:
                        fill = maker_quantity
                        following = maker.next
                        level.head = following
                        if following is None:
                            level.tail = None
                        else:
                            following.prev = None
                        level.count -= 1
                        maker_id = maker.order_id
                        del orders[maker_id]
                        done[maker_id] = _FILLED
                    else:
                        fill = remaining
                        maker.quantity = maker_quantity - fill
                        following = None
                    level.total -= fill
                    remaining -= fill
                    seq += 1
                    # `money.notional_fen`, inlined on the hot path: the exact value rounded down to the fen.
                    notional = price * fill // per
                    if fees:
                        taker_fee = fee_fen(notional, self.config.taker_fee_bps)
                        maker_fee = fee_fen(notional, self.config.maker_fee_bps)
                    append(
                        _new_tuple(
                            Trade,
                            (
                                order_id,
                                maker.order_id,
                                price,
                                fill,
                                side,
                                owner,
                                maker.owner,
                                seq,
                                now,
                                notional,
                                taker_fee,
                                maker_fee,
                            ),
                        )
                    )
                    if not remaining:
                        break
                    maker = following
                # A level emptied by fills must leave the index at once; one emptied by a cancel-maker
                # unlink has already left it.
                if level.head is None and olevels.get(key) is level:
                    okeys.pop()
                    del olevels[key]
                if not remaining or self_trade or not okeys or okeys[-1] < limit_key:
                    break
            self._trade_seq = seq
            trades_out = tuple(trades)
            if maker_cancels:
                cancels_out = tuple(maker_cancels)

        if not remaining:
            done[order_id] = _FILLED
            return _new_tuple(Result, (_OK, order_id, _FILLED, quantity, 0, 0, trades_out, None, cancels_out))
        if kind is _LIMIT and not self_trade:
            assert price_fen is not None
            # The body of `_rest`, inlined: resting is the most frequent outcome of a placement.
            # For a limit order the own-side key is minus the limit key (bids by price, asks by -price).
            own_key = -limit_key
            if side is _BUY:
                own_levels = self._bid_levels
                own_keys = self._bid_keys
            else:
                own_levels = self._ask_levels
                own_keys = self._ask_keys
            own_level = own_levels.get(own_key)
            if own_level is None:
                own_level = _Level(own_key, price_fen, side)
                own_levels[own_key] = own_level
                if not own_keys or own_key > own_keys[-1]:
                    own_keys.append(own_key)
                else:
                    insort(own_keys, own_key)
                order = _Order(order_id, remaining, owner, own_level)
                own_level.head = order
            else:
                order = _Order(order_id, remaining, owner, own_level)
                tail = own_level.tail
                assert tail is not None
                tail.next = order
                order.prev = tail
            own_level.tail = order
            own_level.total += remaining
            own_level.count += 1
            orders[order_id] = order
            return _new_tuple(
                Result,
                (_OK, order_id, _RESTING, quantity - remaining, remaining, 0, trades_out, None, cancels_out),
            )
        done[order_id] = _CANCELLED
        reason = _REASON_SELF_TRADE if self_trade else _REASON_UNFILLED_RESIDUAL
        return _new_tuple(
            Result,
            (_OK, order_id, _CANCELLED, quantity - remaining, 0, remaining, trades_out, reason, cancels_out),
        )

    def cancel(self, order_id: int, owner: str | None = None) -> Result:
        """Cancel a resting order's remainder. `owner=None` skips the ownership check (system cancel)."""
        order = self._orders.get(order_id)
        if order is None:
            return _reject(self._not_live_code(order_id), order_id)
        if owner is not None and order.owner != owner:
            return _reject(_NOT_OWNER, order_id)
        quantity = order.quantity
        # The body of `_unlink`, inlined: cancels are the second most frequent command.
        level = order.level
        before = order.prev
        after = order.next
        if before is None:
            level.head = after
        else:
            before.next = after
        if after is None:
            level.tail = before
        else:
            after.prev = before
        level.total -= quantity
        level.count -= 1
        del self._orders[order_id]
        if level.head is None:
            self._drop_level(level)
        self._done[order_id] = _CANCELLED
        return _new_tuple(Result, (_OK, order_id, _CANCELLED, 0, 0, quantity, (), _REASON_USER, ()))

    def reduce(self, order_id: int, quantity: int, owner: str | None = None) -> Result:
        """Reduce a resting order by `quantity`; it keeps its time priority. Reducing by all cancels it."""
        order = self._orders.get(order_id)
        if order is None:
            return _reject(self._not_live_code(order_id), order_id)
        if quantity <= 0:
            return _reject(_INVALID_QUANTITY, order_id)
        if self._lot and quantity % self._lot:
            return _reject(_OFF_LOT, order_id)
        if owner is not None and order.owner != owner:
            return _reject(_NOT_OWNER, order_id)
        if quantity >= order.quantity:
            released = order.quantity
            self._unlink(order)
            self._done[order_id] = _CANCELLED
            return _new_tuple(Result, (_OK, order_id, _CANCELLED, 0, 0, released, (), _REASON_REDUCED_TO_ZERO, ()))
        order.quantity -= quantity
        order.level.total -= quantity
        return _new_tuple(Result, (_OK, order_id, _RESTING, 0, order.quantity, quantity, (), None, ()))

    def pick(self, order_id: int, side: Side, listing_id: int, quantity: int, *, owner: str, now: datetime) -> Result:
        """Take `quantity` of listing `listing_id` (摘牌) at its price. LISTED mode only.

        The listing must be on the other side and within that side's best `pick_levels_max` price levels.
        A pick trades at once or is rejected; it never rests.
        """
        if not self._listed:
            return _reject(_WRONG_MODE, order_id)
        if order_id in self._orders or order_id in self._done:
            return _reject(_DUPLICATE_ORDER_ID, order_id)
        if quantity <= 0:
            return _reject(_INVALID_QUANTITY, order_id)
        if self._lot and quantity % self._lot:
            return _reject(_OFF_LOT, order_id)
        if self._qmax is not None and quantity > self._qmax:
            return _reject(_QUANTITY_ABOVE_MAX, order_id)
        session_code = self._check_session(now)
        if session_code is not None:
            return _reject(session_code, order_id)
        listing = self._orders.get(listing_id)
        if listing is None:
            return _reject(self._not_live_code(listing_id), order_id)
        if listing.level.side is side:
            return _reject(_PICK_WRONG_SIDE, order_id)
        keys = self._bid_keys if listing.level.side is _BUY else self._ask_keys
        # Rank 1 is the best level: keys are ascending with the best last.
        rank = len(keys) - bisect_left(keys, listing.level.key)
        if rank > self.config.pick_levels_max:
            return _reject(_PICK_OUTSIDE_BEST_LEVELS, order_id)
        if quantity > listing.quantity:
            return _reject(_PICK_QUANTITY_ABOVE_LISTING, order_id)
        if self._stp and listing.owner == owner:
            return _reject(_SELF_TRADE, order_id)

        price = listing.level.price_fen
        self._trade_seq += 1
        taker_fee = maker_fee = 0
        notional = notional_fen(price, quantity, self.config.scale)
        if self._fees:
            taker_fee = fee_fen(notional, self.config.taker_fee_bps)
            maker_fee = fee_fen(notional, self.config.maker_fee_bps)
        trade = Trade(
            order_id,
            listing_id,
            price,
            quantity,
            side,
            owner,
            listing.owner,
            self._trade_seq,
            now,
            notional,
            taker_fee,
            maker_fee,
        )
        if quantity == listing.quantity:
            self._unlink(listing)
            self._done[listing_id] = _FILLED
        else:
            listing.quantity -= quantity
            listing.level.total -= quantity
        self._done[order_id] = _FILLED
        return Result(_OK, order_id, _FILLED, quantity, 0, 0, (trade,))

    # ------------------------------------------------------------------ internals

    def _not_live_code(self, order_id: int) -> Code:
        state = self._done.get(order_id)
        if state is _FILLED:
            return _ORDER_FILLED
        if state is _CANCELLED:
            return _ORDER_CANCELLED
        return _UNKNOWN_ORDER

    def _rest(self, order_id: int, side: Side, price_fen: int, quantity: int, owner: str) -> None:
        if side is _BUY:
            key = price_fen
            levels = self._bid_levels
            keys = self._bid_keys
        else:
            key = -price_fen
            levels = self._ask_levels
            keys = self._ask_keys
        level = levels.get(key)
        if level is None:
            level = _Level(key, price_fen, side)
            levels[key] = level
            # A new best level is the common case and needs no search.
            if not keys or key > keys[-1]:
                keys.append(key)
            else:
                insort(keys, key)
            order = _Order(order_id, quantity, owner, level)
            level.head = order
        else:
            order = _Order(order_id, quantity, owner, level)
            tail = level.tail
            assert tail is not None
            tail.next = order
            order.prev = tail
        level.tail = order
        level.total += quantity
        level.count += 1
        self._orders[order_id] = order

    def _unlink(self, order: _Order) -> None:
        """Remove a live order from its level (and the level from the index when it empties)."""
        level = order.level
        before = order.prev
        after = order.next
        if before is None:
            level.head = after
        else:
            before.next = after
        if after is None:
            level.tail = before
        else:
            after.prev = before
        level.total -= order.quantity
        level.count -= 1
        del self._orders[order.order_id]
        if level.head is None:
            self._drop_level(level)

    def _drop_level(self, level: _Level) -> None:
        """Remove an emptied level from its side's index."""
        if level.side is _BUY:
            keys = self._bid_keys
            levels = self._bid_levels
        else:
            keys = self._ask_keys
            levels = self._ask_levels
        key = level.key
        if keys[-1] == key:
            keys.pop()
        else:
            del keys[bisect_left(keys, key)]
        del levels[key]

    def _fillable(
        self, okeys: list[int], olevels: dict[int, _Level], limit_key: int, quantity: int, owner: str
    ) -> bool:
        """Whether a FOK order could fill completely, computed before any effect.

        With self-trade prevention the walk follows what matching would do: a cancel-taker policy stops
        at the first own order; cancel-maker skips own orders (they would be cancelled on the way).
        """
        needed = quantity
        check_owner = self._stp
        stops_at_own = self._stp_cancel_taker
        for index in range(len(okeys) - 1, -1, -1):
            key = okeys[index]
            if key < limit_key:
                return False
            level = olevels[key]
            if not check_owner:
                needed -= level.total
                if needed <= 0:
                    return True
                continue
            order = level.head
            while order is not None:
                if order.owner == owner:
                    if stops_at_own:
                        return False
                else:
                    needed -= order.quantity
                    if needed <= 0:
                        return True
                order = order.next
        return False

    # ------------------------------------------------------------------ views

    def best_bid(self) -> int | None:
        return self._bid_keys[-1] if self._bid_keys else None

    def best_ask(self) -> int | None:
        return -self._ask_keys[-1] if self._ask_keys else None

    def depth(self, levels: int = 5) -> Depth:
        """The best `levels` price levels of each side, best first."""
        return Depth(
            tuple(
                LevelView(lvl.price_fen, lvl.total, lvl.count)
                for lvl in (self._bid_levels[k] for k in reversed(self._bid_keys[-levels:]))
            ),
            tuple(
                LevelView(lvl.price_fen, lvl.total, lvl.count)
                for lvl in (self._ask_levels[k] for k in reversed(self._ask_keys[-levels:]))
            ),
        )

    def status(self, order_id: int) -> Status | None:
        """RESTING for a live order, its terminal state otherwise, None for an id never accepted."""
        if order_id in self._orders:
            return _RESTING
        return self._done.get(order_id)

    def order(self, order_id: int) -> OrderView | None:
        order = self._orders.get(order_id)
        if order is None:
            return None
        level = order.level
        return OrderView(order.order_id, level.side, level.price_fen, order.quantity, order.owner)

    def _side_views(self, keys: list[int], levels: dict[int, _Level]) -> Iterator[tuple[int, tuple[OrderView, ...]]]:
        for key in reversed(keys):
            level = levels[key]
            views: list[OrderView] = []
            order = level.head
            while order is not None:
                views.append(OrderView(order.order_id, level.side, level.price_fen, order.quantity, order.owner))
                order = order.next
            yield level.price_fen, tuple(views)

    def open_orders(self) -> Iterator[OrderView]:
        """Every live order: bids best first, then asks best first, each level in time priority."""
        for _, views in self._side_views(self._bid_keys, self._bid_levels):
            yield from views
        for _, views in self._side_views(self._ask_keys, self._ask_levels):
            yield from views

    @property
    def order_count(self) -> int:
        return len(self._orders)

    @property
    def trade_seq(self) -> int:
        return self._trade_seq

    def snapshot(self) -> BookSnapshot:
        return BookSnapshot(
            bids=tuple(self._side_views(self._bid_keys, self._bid_levels)),
            asks=tuple(self._side_views(self._ask_keys, self._ask_levels)),
            done=tuple(sorted(self._done.items())),
            trade_seq=self._trade_seq,
        )

    def check_invariants(self) -> list[str]:
        """Every broken structural rule, as messages; an empty list means the book is sound.

        Checks: the book is never crossed; keys are strictly sorted and index exactly the level dicts;
        every level is non-empty and holds only live orders of its side and price, linked both ways;
        level totals and counts equal the sums of their orders; the id map holds exactly the linked
        orders, none of them also terminal; resting prices and quantities obey tick, lot and band.
        """
        problems: list[str] = []
        linked = 0
        band = self._band
        for side, keys, levels, sign in (
            (_BUY, self._bid_keys, self._bid_levels, 1),
            (_SELL, self._ask_keys, self._ask_levels, -1),
        ):
            if any(keys[i] >= keys[i + 1] for i in range(len(keys) - 1)):
                problems.append(f"{side}: keys not strictly ascending")
            if len(keys) != len(levels) or any(key not in levels for key in keys):
                problems.append(f"{side}: keys and level map disagree")
            for key in keys:
                level = levels.get(key)
                if level is None:
                    continue
                where = f"{side} level {sign * key}"
                if level.key != key or level.price_fen != sign * key or level.side is not side:
                    problems.append(f"{where}: level key, price or side wrong")
                if level.head is None:
                    problems.append(f"{where}: empty level left in the book")
                total = 0
                count = 0
                previous: _Order | None = None
                order = level.head
                while order is not None:
                    if count > len(self._orders):
                        problems.append(f"{where}: linked list loops")
                        break
                    oid = order.order_id
                    if order.prev is not previous:
                        problems.append(f"{where}: order {oid} back link broken")
                    if order.level is not level:
                        problems.append(f"{where}: order {oid} belongs elsewhere")
                    if order.quantity <= 0:
                        problems.append(f"{where}: order {oid} has no quantity left")
                    if self._orders.get(oid) is not order:
                        problems.append(f"{where}: order {oid} missing from the id map")
                    if oid in self._done:
                        problems.append(f"{where}: order {oid} is live and terminal at once")
                    if self._tick and level.price_fen % self._tick:
                        problems.append(f"{where}: order {oid} off tick")
                    if self._lot and order.quantity % self._lot:
                        problems.append(f"{where}: order {oid} off lot")
                    if band is not None and not band.contains(level.price_fen):
                        problems.append(f"{where}: order {oid} outside the band")
                    total += order.quantity
                    count += 1
                    previous = order
                    order = order.next
                if level.tail is not previous:
                    problems.append(f"{where}: tail is not the last order")
                if level.total != total or level.count != count:
                    problems.append(f"{where}: totals {level.total}/{level.count} but orders sum {total}/{count}")
                linked += count
        if linked != len(self._orders):
            problems.append(f"id map holds {len(self._orders)} orders but levels link {linked}")
        best_bid, best_ask = self.best_bid(), self.best_ask()
        if best_bid is not None and best_ask is not None and best_bid >= best_ask:
            problems.append(f"book crossed: bid {best_bid} >= ask {best_ask}")
        return problems
