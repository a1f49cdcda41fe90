"""Market surveillance: each pattern raises its alert on a golden synthetic day, a normal day raises none, and the
scan through the API stores alerts once, which the regulator resolves with a note."""

from __future__ import annotations

import datetime as dt

from core.clock import SHANGHAI
from trading.surveillance import rules
from trading.surveillance.service import find

DAY = dt.date(2026, 3, 2)
TH = rules.Thresholds()


def at(hh: int, mm: int, ss: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, 2, hh, 0, tzinfo=SHANGHAI) + dt.timedelta(minutes=mm, seconds=ss)


def trade(i: int, when: dt.datetime, price: int, qty: int, buyer: int, seller: int) -> rules.TradeEv:
    return rules.TradeEv(i, when, price, qty, price * qty, buyer, seller)


def order(i: int, org: int, side: str, price: int, qty: int, placed: dt.datetime, life_s: int,
          filled: int = 0) -> rules.OrderEv:  # fmt: skip
    cancelled = qty - filled
    return rules.OrderEv(i, org, side, price, qty, filled, cancelled, placed, placed + dt.timedelta(seconds=life_s),
                         "cancelled" if cancelled else "filled")  # fmt: skip


def normal_day() -> tuple[list[rules.TradeEv], list[rules.OrderEv], dict[int, int]]:
    """Four organisations trade around 50.00 all day; one cancels two orders far from the touch after minutes."""
    trades = [trade(i, at(9, 30 + i * 5), 5000 + (i % 3) * 5, 100, 1 + i % 2, 3 + i % 2) for i in range(1, 12)]
    trades += [trade(20, at(14, 55), 5005, 100, 2, 3)]
    orders = [order(100, 1, "buy", 4800, 500, at(10, 0), 600), order(101, 1, "buy", 4810, 500, at(10, 5), 900)]
    holdings = {1: 2500, 2: 2500, 3: 2500, 4: 2500}
    return trades, orders, holdings


def test_a_normal_day_raises_nothing() -> None:
    trades, orders, holdings = normal_day()
    assert find(trades, orders, holdings, DAY, 5000, 1000, TH) == []


def test_wash_trade_between_one_organisations_accounts_and_between_related_ones() -> None:
    trades, _, _ = normal_day()
    wash = [*trades, trade(30, at(11, 0), 5000, 700, 7, 7)]
    [alert] = rules.wash_trades(wash)
    assert (alert.pattern, alert.organisation_id, alert.trade_ids, alert.severity) == ("wash_trade", 7, (30,), "high")
    related = [*trades, trade(31, at(11, 1), 5000, 300, 8, 9)]
    assert rules.wash_trades(related) == []
    [rel] = rules.wash_trades(related, {8: frozenset({9}), 9: frozenset({8})})
    assert rel.trade_ids == (31,) and "related" in rel.detail


def test_layering_orders_flashed_near_the_touch_while_selling() -> None:
    trades, orders, holdings = normal_day()
    # Org 5 flashes four buys at 50.00-50.05 (the last trade is 50.05), each cancelled unfilled after 5-20 s,
    # and sells 400 into the lifted bids in the same minutes.
    spoof = [order(200 + k, 5, "buy", 5000 + k, 300, at(11, 0, 10 * k), 5 + 5 * k) for k in range(4)]
    sells = [trade(40, at(11, 1), 5005, 400, 2, 5)]
    alerts = find([*trades, *sells], [*orders, *spoof], holdings, DAY, 5000, 1000, TH)
    [alert] = [a for a in alerts if a.pattern == "layering"]
    assert alert.organisation_id == 5 and alert.order_ids == (200, 201, 202, 203) and alert.trade_ids == (40,)
    assert alert.figures == {"orders": 4, "opposite_quantity": 400}
    # The same orders without the opposite trade are just cancellations: no alert.
    assert [a for a in find(trades, [*orders, *spoof], holdings, DAY, 5000, 1000, TH) if a.pattern == "layering"] == []


def test_marking_the_close_late_trades_that_move_the_vwap() -> None:
    trades, orders, holdings = normal_day()
    late = [trade(50, at(14, 58), 5400, 600, 6, 3), trade(51, at(14, 59), 5450, 600, 6, 4)]
    alerts = [
        a for a in find([*trades, *late], orders, holdings, DAY, 5000, 1000, TH) if a.pattern == "marking_the_close"
    ]
    assert [a.organisation_id for a in alerts] == [6]
    assert alerts[0].trade_ids == (50, 51) and alerts[0].figures["move_bps"] >= TH.close_move_bps
    # The same trades at 10:00 are not at the close.
    early = [trade(50, at(10, 0), 5400, 600, 6, 3), trade(51, at(10, 1), 5450, 600, 6, 4)]
    assert [a for a in find([*trades, *early], orders, holdings, DAY, 5000, 1000, TH)
            if a.pattern == "marking_the_close"] == []  # fmt: skip


def test_concentration_above_the_share() -> None:
    [alert] = rules.concentration({1: 6_000, 2: 2_000, 3: 2_000}, TH)
    assert (alert.organisation_id, alert.figures["share_bps"], alert.severity) == (1, 6000, "high")
    assert rules.concentration({1: 3_000, 2: 2_500, 3: 2_500, 4: 2_000}, TH) == []  # 30 % is not above 30 %
    assert rules.concentration({1: 3_000, 2: 3_000, 3: 4_000}, rules.Thresholds(concentration_bps=4000)) == []


def test_prices_at_the_edge_of_the_band() -> None:
    trades, orders, holdings = normal_day()
    edge = [trade(60, at(13, 30), 5460, 100, 1, 3)]  # +9.2 % with a ±10 % band: 92 % of its width
    [alert] = [
        a for a in find([*trades, *edge], orders, holdings, DAY, 5000, 1000, TH) if a.pattern == "price_against_band"
    ]
    assert alert.trade_ids == (60,) and alert.organisation_id is None and alert.severity == "low"


async def test_the_scan_stores_alerts_once_and_the_regulator_resolves_them(env) -> None:
    from core.identity import Role
    from tests.trading.conftest import trading_world

    tw = await trading_world(env, mode="continuous", units=1_000, issue=10_000, funds="100000.00")
    r = await tw.order(0, {"side": "sell", "price": "50.00", "quantity": "100"})
    assert r.status_code == 201, r.text
    r = await tw.order(1, {"side": "buy", "price": "50.00", "quantity": "100"})
    assert r.status_code == 201 and r.json()["fills"], r.text
    day = env.clock.now().astimezone(SHANGHAI).date().isoformat()
    r = await env.post("/api/v1/surveillance/scans", tw.regulator, {"trade_date": day})
    assert r.status_code == 200, r.text
    first = r.json()
    # Two traders hold all the units in circulation: each is above 30 %.
    assert first["stored"] == first["found"] >= 2
    again = await env.post("/api/v1/surveillance/scans", tw.regulator, {"trade_date": day})
    assert again.json()["stored"] == 0  # fired twice, stored once
    alerts = (await env.get("/api/v1/surveillance/alerts?pattern=concentration", tw.regulator)).json()
    assert {a["organisation_id"] for a in alerts} == {t.organisation_id for t in tw.traders}
    # After the trade: 1,100 and 900 of the 2,000 units in circulation (the allocation account's are not).
    assert sorted(a["figures"]["share_bps"] for a in alerts) == [4500, 5500]
    assert all(a["status"] == "open" for a in alerts)
    auditor = await env.key(Role.AUDITOR)
    assert (await env.get("/api/v1/surveillance/alerts", auditor)).status_code == 200
    assert (await env.get("/api/v1/surveillance/alerts", tw.traders[0].key)).status_code == 403
    url = f"/api/v1/surveillance/alerts/{alerts[0]['id']}/resolution"
    r = await env.post(url, tw.regulator, {"status": "dismissed", "note": ""})
    assert r.status_code == 422 and r.json()["field"] == "note"
    r = await env.post(url, tw.regulator, {"status": "dismissed", "note": "试点初期只有两家会员，持有比例属正常"})
    assert r.status_code == 200 and r.json()["status"] == "dismissed"
    r = await env.post(url, tw.regulator, {"status": "confirmed", "note": "改判"})
    assert r.status_code == 409
    open_left = (await env.get("/api/v1/surveillance/alerts?status=open", tw.regulator)).json()
    assert alerts[0]["id"] not in [a["id"] for a in open_left]
