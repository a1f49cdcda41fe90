"""What the outside sees of an order book: resting orders, price levels, depth, and a comparable snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from trading.domain.model import Side, Status


class OrderView(NamedTuple):
    """A resting order as seen from outside: `quantity` is what is left."""

    order_id: int
    side: Side
    price_fen: int
    quantity: int
    owner: str


class LevelView(NamedTuple):
    price_fen: int
    quantity: int
    order_count: int


class Depth(NamedTuple):
    """The best levels of each side, best first."""

    bids: tuple[LevelView, ...]
    asks: tuple[LevelView, ...]


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """Everything that determines the book's future behaviour, as comparable values.

    Levels are listed best first with their orders in time priority; `done` lists every order id that
    reached a terminal state, sorted by id.
    """

    bids: tuple[tuple[int, tuple[OrderView, ...]], ...]
    asks: tuple[tuple[int, tuple[OrderView, ...]], ...]
    done: tuple[tuple[int, Status], ...]
    trade_seq: int
