"""What every trading use case is given: the database (each public use-case function is one unit of work on it),
the clock, the registry service (instruments and the caller's accounts), the sequencer that holds the order books
in memory and journals their commands, the trading calendar, the ledger accounts of clearing, two caches of this
process (what never changes about a market, and the id of each market's book of a day), and the bounds of the
group commit of each book's commands.

One context is built per process, by `trading.service.TradingService`; the controllers and the facade pass it to
the use-case functions as their first argument.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from core.clock import Clock
from core.db import Database
from core.workdays import is_working_day as calendar_working_day
from registry.service import RegistryService
from trading import clearing
from trading.sequencer import GROUP_COMMIT_LINGER_S, GROUP_COMMIT_MAX_COMMANDS, Sequencer


@dataclass(frozen=True)
class MarketInfo:
    """What never changes about a market: cached per process after the first read."""

    market_id: int
    instrument_id: int
    asset_id: int
    kind: str
    scale: int


@dataclass
class TradingContext:
    db: Database
    clock: Clock
    registry: RegistryService
    sequencer: Sequencer = field(default_factory=Sequencer)
    is_working_day: Callable[[dt.date], bool] = calendar_working_day
    accounts: clearing.Accounts = field(default_factory=clearing.Accounts)
    # Per-process caches: instrument id -> its market; (market id, trade date) -> that day's book id.
    markets: dict[int, MarketInfo] = field(default_factory=dict)
    book_ids: dict[tuple[int, dt.date], int] = field(default_factory=dict)
    # Group commit per book (`trading.books.submit`): at most this many commands per batch, collected for at most
    # this long while they keep arriving.
    group_commit_max: int = GROUP_COMMIT_MAX_COMMANDS
    group_commit_linger_s: float = GROUP_COMMIT_LINGER_S
