"""The public market page: every instrument's market, and for one the daily bars as a candlestick chart with volume,
the day's trades and the best five levels of the book. No sign-in needed."""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar import Request, get
from litestar.params import FromQuery
from litestar.response import Template

from core.clock import SHANGHAI
from trading import market_data, markets, queries
from trading.context import TradingContext
from web.app import lang_of, page
from web.i18n import translate

BAR_VENUES = ("continuous", "listed")


def ctx(request: Request[Any, Any, Any]) -> TradingContext:
    return request.app.state.trading.ctx  # type: ignore[no-any-return]


@get("/market", include_in_schema=False)
async def market_page(request: Request[Any, Any, Any], instrument: FromQuery[int | None] = None) -> Template:
    c = ctx(request)
    all_markets = await markets.list_markets(c)
    chosen = next((m for m in all_markets if m.instrument_id == instrument), all_markets[0] if all_markets else None)
    chart = book = trades = None
    if chosen is not None:
        today = request.app.state.clock.now().astimezone(SHANGHAI).date()
        days = await market_data.get_daily_bars(
            c, chosen.instrument_id, date_from=today - dt.timedelta(days=120), date_to=today
        )
        bars = []
        for d in days:
            bar = next((b for b in d.bars if b.venue in BAR_VENUES), None)
            if bar is not None:
                bars.append({"day": d.trade_date.isoformat(), "open": bar.open, "high": bar.high, "low": bar.low,
                             "close": bar.last, "volume": bar.volume})  # fmt: skip
        lang = lang_of(request)
        chart = {
            "type": "candlestick",
            "bars": bars,
            "priceTitle": translate("market.price_axis", lang, unit=chosen.display_unit),
            "volumeTitle": translate("market.volume_axis", lang, unit=chosen.display_unit),
        }
        book = await market_data.get_order_book(c, chosen.instrument_id)
        trades = (await queries.list_trades(c, chosen.instrument_id, trade_date=today, venue=None, limit=50,
                                            before_id=None)).items  # fmt: skip
    return page(request, "market/index.html", markets=all_markets, market=chosen, chart=chart, book=book, trades=trades)


ROUTES: list[Any] = [market_page]
