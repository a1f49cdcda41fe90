"""Trading jobs: the daily market close.

`market_close` fires at 15:05 Asia/Shanghai, after the last trading window, keyed by the business date: it
expires the day's open orders and block proposals (releasing their holds), sets each market's close (VWAP of the
day's listed and continuous trades, else the previous close) and with it the next day's price band. The claim on
(`market_close`, date) and the per-market idempotence of the close make a double fire or a restart harmless.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from scheduler.jobs import JobDef, Services
from trading.surveillance.service import scan_day


async def _market_close(services: Services, key: str) -> dict[str, Any]:
    day = dt.date.fromisoformat(key)
    result = await services["trading"].close_trading_day(day)
    return {
        "trade_date": key,
        "markets": [
            {"instrument_id": m.instrument_id, "close_fen": m.close_fen, "expired_orders": m.expired_orders}
            for m in result.markets
        ],
    }


async def _surveillance(services: Services, key: str) -> dict[str, Any]:
    out = await scan_day(services["trading"].ctx, dt.date.fromisoformat(key))
    return {"trade_date": key, "found": out.found, "stored": out.stored}


JOBS: list[JobDef] = [
    JobDef(
        "market_close",
        "daily",
        "Close the trading day: expire open orders, set the close (VWAP) and the next day's band.",
        _market_close,
        at_hour=15,
        at_minute=5,
    ),
    JobDef(
        "surveillance",
        "daily",
        "Scan the day's trades, orders and holdings for wash trades, layering, marking the close, concentration and "
        "prices against the band; store each alert once.",
        _surveillance,
        at_hour=15,
        at_minute=30,
    ),
]
