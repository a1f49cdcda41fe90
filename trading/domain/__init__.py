"""The pure rules of trading: order book and matcher, checks, auctions, block trades and market data.

Standard library only, no I/O, no clock (every `now` is an argument), randomness only from a given seed.
Modules: `model` (codes, trades, results), `bands` (price bands, tick, lot, fees), `sessions` (trading
hours), `commands` (journalled commands), `book` (the order book and matcher), `journal` (replay),
`auction` (one-way and primary auctions), `block` (block trades), `marketdata` (bars, close, averages).
"""

from __future__ import annotations

from trading.domain.book import Book, BookConfig, BookSnapshot, Depth, LevelView, OrderView
from trading.domain.commands import Cancel, Command, Pick, Place, Reduce, command_from_dict
from trading.domain.journal import replay, replay_with_results
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

__all__ = [
    "Book",
    "BookConfig",
    "BookMode",
    "BookSnapshot",
    "Cancel",
    "CancelReason",
    "Code",
    "Command",
    "Depth",
    "LevelView",
    "MakerCancel",
    "OrderKind",
    "OrderView",
    "Pick",
    "Place",
    "Reduce",
    "Result",
    "SelfTradePrevention",
    "Side",
    "Status",
    "Trade",
    "command_from_dict",
    "replay",
    "replay_with_results",
]
