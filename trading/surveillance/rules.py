"""Market surveillance rules: pure functions over one instrument's trading day (trades, orders, holdings), each
returning alerts with their evidence. No I/O and standard library only, so every rule is tested on golden synthetic
days (tests/trading/test_surveillance.py) and the same rule runs in the nightly job.

Patterns (after the exchanges' and ESMA's abuse typologies):
- wash trade: both sides of a trade under one organisation, or under organisations declared related;
- layering / spoofing: an organisation places several orders on one side near the touch and cancels them unfilled
  within seconds, while it trades on the other side in the same window;
- marking the close: an organisation's trades in the last minutes before the close move the day's VWAP (which is
  the close, trading/close.py) by more than a threshold;
- concentration: one organisation holds more than a share of the instrument's units in circulation;
- price against the band: trades at or beyond a share of the day's price band (the band itself is enforced by the
  matcher; this flags the day for review).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from core.figures import percent, quantity, yuan

HIGH, MEDIUM, LOW = "high", "medium", "low"


@dataclass(frozen=True)
class Thresholds:
    """The rules' limits. Shipped values are the defaults of trading/surveillance/thresholds.yaml."""

    spoof_min_orders: int = 3  # cancelled-unfilled orders on one side within the window
    spoof_window_s: int = 300
    spoof_max_life_s: int = 60  # an order cancelled within this many seconds of placement
    spoof_near_touch_bps: int = 100  # placed within 1 % of the last trade price
    close_window_min: int = 10  # minutes before the session's end
    close_move_bps: int = 200  # late trades that move the VWAP by 2 % or more
    concentration_bps: int = 3000  # 30 % of the units in circulation
    band_use_bps: int = 9000  # trades at 90 % or more of the band's width from the previous close


@dataclass(frozen=True)
class TradeEv:
    id: int
    at: dt.datetime
    price_fen: int
    quantity: int
    notional_fen: int
    buyer_org: int
    seller_org: int
    buy_order_id: int | None = None
    sell_order_id: int | None = None


@dataclass(frozen=True)
class OrderEv:
    id: int
    org: int
    side: str  # "buy" | "sell"
    price_fen: int | None
    quantity: int
    filled: int
    cancelled: int
    placed_at: dt.datetime
    ended_at: dt.datetime  # when it was cancelled (or last changed)
    status: str


@dataclass(frozen=True)
class Alert:
    pattern: str
    severity: str
    organisation_id: int | None
    detail: str
    trade_ids: tuple[int, ...] = ()
    order_ids: tuple[int, ...] = ()
    figures: dict[str, int | str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """What makes an alert the same alert when the job runs again (so a rerun adds nothing)."""
        return f"{self.pattern}:{self.organisation_id}:{','.join(map(str, self.trade_ids or self.order_ids))}"


def wash_trades(trades: Iterable[TradeEv], related: Mapping[int, frozenset[int]] | None = None) -> list[Alert]:
    """Trades whose buyer and seller are one organisation or related organisations, one alert per group."""
    related = related or {}
    by_org: dict[int, list[TradeEv]] = defaultdict(list)
    for t in trades:
        if t.buyer_org == t.seller_org or t.seller_org in related.get(t.buyer_org, frozenset()):
            by_org[min(t.buyer_org, t.seller_org)].append(t)
    out = []
    for org, ts in sorted(by_org.items()):
        qty = sum(t.quantity for t in ts)
        same = all(t.buyer_org == t.seller_org for t in ts)
        out.append(
            Alert(
                "wash_trade",
                HIGH,
                org,
                f"{len(ts)} trade(s), {quantity(qty)} base units, between "
                + ("accounts of one organisation" if same else "related organisations"),
                trade_ids=tuple(t.id for t in ts),
                figures={"trades": len(ts), "quantity": qty},
            )
        )
    return out


def layering(orders: Iterable[OrderEv], trades: Iterable[TradeEv], th: Thresholds) -> list[Alert]:
    """Orders placed near the touch and cancelled unfilled within `spoof_max_life_s`, at least `spoof_min_orders`
    on one side within `spoof_window_s`, while the same organisation traded on the other side in that window."""
    trades = sorted(trades, key=lambda t: t.at)
    flashes: dict[tuple[int, str], list[OrderEv]] = defaultdict(list)
    for o in sorted(orders, key=lambda o: o.placed_at):
        if o.filled or o.cancelled != o.quantity or o.price_fen is None:
            continue
        if (o.ended_at - o.placed_at).total_seconds() > th.spoof_max_life_s:
            continue
        last = _last_price_before(trades, o.placed_at)
        if last is None or abs(o.price_fen - last) * 10_000 > th.spoof_near_touch_bps * last:
            continue
        flashes[(o.org, o.side)].append(o)
    out = []
    for (org, side), flashed in sorted(flashes.items()):
        window = dt.timedelta(seconds=th.spoof_window_s)
        best: list[OrderEv] = []
        for i, first in enumerate(flashed):
            group = [o for o in flashed[i:] if o.placed_at - first.placed_at <= window]
            if len(group) > len(best):
                best = group
        if len(best) < th.spoof_min_orders:
            continue
        start, end = best[0].placed_at, best[-1].ended_at + window
        other = [
            t
            for t in trades
            if start <= t.at <= end and (t.seller_org == org if side == "buy" else t.buyer_org == org)
        ]
        if not other:
            continue
        out.append(
            Alert(
                "layering",
                HIGH if len(best) >= 2 * th.spoof_min_orders else MEDIUM,
                org,
                f"{len(best)} {side} orders near the touch cancelled unfilled within {th.spoof_max_life_s} s, while "
                f"the same organisation {'sold' if side == 'buy' else 'bought'} "
                f"{quantity(sum(t.quantity for t in other))} "
                "base units",
                trade_ids=tuple(t.id for t in other),
                order_ids=tuple(o.id for o in best),
                figures={"orders": len(best), "opposite_quantity": sum(t.quantity for t in other)},
            )
        )
    return out


def _last_price_before(trades: list[TradeEv], at: dt.datetime) -> int | None:
    last = None
    for t in trades:
        if t.at > at:
            break
        last = t.price_fen
    return last


def _vwap(trades: Iterable[TradeEv]) -> int | None:
    ts = list(trades)
    qty = sum(t.quantity for t in ts)
    if not qty:
        return None
    return sum(t.price_fen * t.quantity for t in ts) // qty


def marking_the_close(trades: Iterable[TradeEv], session_end: dt.datetime, th: Thresholds) -> list[Alert]:
    """An organisation whose trades in the last `close_window_min` minutes move the day's VWAP (the close) by at
    least `close_move_bps` compared with the day without them."""
    trades = list(trades)
    day_vwap = _vwap(trades)
    if day_vwap is None:
        return []
    late_from = session_end - dt.timedelta(minutes=th.close_window_min)
    late = [t for t in trades if late_from <= t.at <= session_end]
    out = []
    for org in sorted({t.buyer_org for t in late} | {t.seller_org for t in late}):
        theirs = [t for t in late if org in (t.buyer_org, t.seller_org)]
        without = _vwap(t for t in trades if t not in theirs)
        if without is None or without == 0:
            continue
        move_bps = abs(day_vwap - without) * 10_000 // without
        if move_bps >= th.close_move_bps:
            out.append(
                Alert(
                    "marking_the_close",
                    HIGH if move_bps >= 2 * th.close_move_bps else MEDIUM,
                    org,
                    f"trades in the last {th.close_window_min} minutes moved the close from "
                    f"{yuan(without, unit=True)} to {yuan(day_vwap, unit=True)} ({percent(move_bps)})",
                    trade_ids=tuple(t.id for t in theirs),
                    figures={"close_fen": day_vwap, "close_without_fen": without, "move_bps": move_bps},
                )
            )
    return out


def concentration(holdings: Mapping[int, int], th: Thresholds) -> list[Alert]:
    """Organisations holding more than `concentration_bps` of the units in circulation (`holdings`: org -> units)."""
    total = sum(v for v in holdings.values() if v > 0)
    if total <= 0:
        return []
    out = []
    for org, units in sorted(holdings.items()):
        share_bps = units * 10_000 // total
        if share_bps > th.concentration_bps:
            out.append(
                Alert(
                    "concentration",
                    HIGH if share_bps >= 5000 else MEDIUM,
                    org,
                    f"holds {quantity(units)} of {quantity(total)} base units in circulation "
                    f"({percent(share_bps)})",
                    figures={"units": units, "circulating": total, "share_bps": share_bps},
                )
            )
    return out


def against_the_band(trades: Iterable[TradeEv], prev_close_fen: int, band_bps: int, th: Thresholds) -> list[Alert]:
    """Trades priced at `band_use_bps` of the band's width or more from the previous close: one alert for the day
    (no single organisation: the price path is what is reviewed)."""
    width = prev_close_fen * band_bps // 10_000
    if width <= 0:
        return []
    edge = [t for t in trades if abs(t.price_fen - prev_close_fen) * 10_000 >= th.band_use_bps * width]
    if not edge:
        return []
    worst = max(edge, key=lambda t: abs(t.price_fen - prev_close_fen))
    return [
        Alert(
            "price_against_band",
            LOW,
            None,
            f"{len(edge)} trade(s) at {percent(th.band_use_bps)} or more of the ±{percent(band_bps)} band "
            f"around {yuan(prev_close_fen, unit=True)} (furthest {yuan(worst.price_fen, unit=True)})",
            trade_ids=tuple(t.id for t in edge),
            figures={"prev_close_fen": prev_close_fen, "band_bps": band_bps, "furthest_fen": worst.price_fen},
        )
    ]
