"""Trading agents for one simulated month (one trading day on the sandbox clock).

Simple on purpose, and deterministic given the seed: every emitter knows this year's emissions and the allocation it
will have in all, so its position is what it holds (plus the allocation still to come) less what it will owe. A
short emitter buys about 1/(months left) of its gap, a long one sells as much, at prices drawn around the previous
close; the market maker (a trading member's enterprise) quotes both sides, selling only what it bought before (T+1).

- The allowance market is listed agreement (挂牌协议): sellers post listings, buyers pick the cheapest within the
  best five levels, sellers also pick the market maker's buy listing.
- Energy-use rights and discharge permits are continuous: limit orders that cross, the market maker's quotes around
  the close.
- One block trade (大宗协议) in month 4 and one primary auction of the regulator in month 7.
"""

from __future__ import annotations

from typing import Any

from core import figures
from server.simulate.common import MONTHS, Enterprise, Run, scale_fen, yuan

ORDER_MAX = 99_999  # display units: larger volumes go by block trade or auction
CEA = "cea"
CONTINUOUS = ("energy_use", "discharge", "gec")
GEC_FROM_MONTH = 10


async def holding(run: Run, e: Enterprise, code: str) -> tuple[int, int]:
    """(balance, available) of instrument `code` in the enterprise's account, base units."""
    for h in await run.client(e).call("listHoldings", account_id=e.account_id):
        if h.instrument.code == code:
            return h.balance_base, h.available_base
    return 0, 0


async def funds_fen(run: Run, e: Enterprise) -> int:
    return int((await run.client(e).call("getFundAccount")).available_fen)


def need_of(run: Run, e: Enterprise, code: str, balance: int) -> int:
    """What the enterprise still lacks (> 0) or has to spare (< 0) of `code`, base units, at the year's end."""
    inst = run.instruments[code]
    if inst.kind == CEA:
        coming = 0 if e.allocation_posted else e.final_allocation_t - e.pre_allocation_t
        owed = e.verified_t if e.verified_t is not None else e.emissions_t  # the verified figure once there is one
        return owed - balance - coming
    return e.energy.get(code, 0) - balance


async def refresh_markets(run: Run) -> None:
    for m in await run.regulator.call("listMarkets"):
        run.markets[m.instrument_code] = m


def _quantity(run: Run, code: str, base: int) -> str:
    """Base units as the instrument's display text (e.g. 12345 kg → "12.345")."""
    return figures.quantity_plain(base, run.instruments[code].scale)


def _order(inst_id: int, account_id: int, side: str, quantity: str, **rest: Any) -> dict[str, Any]:
    return {"instrument_id": inst_id, "account_id": account_id, "side": side, "quantity": quantity, **rest}


def _price(m: Any, fen: int) -> str:
    """A price within today's band, on the tick (0.01 yuan = 1 fen)."""
    return yuan(max(m.band_lower_fen, min(m.band_upper_fen, fen)))


def _share(gap: int, month: int, unit: int) -> int:
    """This month's part of a gap of `gap` base units: the gap over the months left (all of it in the last two
    months), in whole display units; one order takes at most the order maximum."""
    left = max(1, MONTHS - month - 1)
    part = -(-gap // left)
    return -(-part // unit) * unit


async def listed_session(run: Run, month: int) -> None:
    """The allowance market's day: the market maker lists both sides, long emitters list, short ones pick."""
    code = next(c for c, i in run.instruments.items() if i.kind == CEA)
    m, inst_id, rng = run.markets[code], run.instruments[code].id, run.rng
    mm = run.market_maker
    if mm is not None:
        bal, avail = await holding(run, mm, code)
        if avail > 0:
            q = min(avail, 20_000)
            order = {
                "instrument_id": inst_id,
                "account_id": mm.account_id,
                "side": "sell",
                "quantity": str(q),
                "price": _price(m, scale_fen(m.prev_close_fen, 60)),
            }
            await run.attempt("mm-sell-listing", lambda: run.client(mm).call("placeOrder", order))
        room = (await funds_fen(run, mm)) // max(1, m.prev_close_fen) // 2
        if room > 0:
            q = min(room, 30_000)
            order = {
                "instrument_id": inst_id,
                "account_id": mm.account_id,
                "side": "buy",
                "quantity": str(q),
                "price": _price(m, scale_fen(m.prev_close_fen, -60)),
            }
            await run.attempt("mm-buy-listing", lambda: run.client(mm).call("placeOrder", order))
    agents = list(run.enterprises)
    rng.shuffle(agents)
    gaps: dict[str, int] = {}
    for e in agents:
        bal, avail = await holding(run, e, code)
        gaps[e.uscc] = need_of(run, e, code, bal)
        spare = -gaps[e.uscc]
        if spare <= 0:
            continue
        q = min(_share(spare, month, 1), avail, ORDER_MAX)
        if q <= 0:
            continue
        bps = rng.randint(-100, 200)
        order = _order(inst_id, e.account_id, "sell", str(q), price=_price(m, scale_fen(m.prev_close_fen, bps)))
        # Some sell to the market maker's buy listing instead (it takes at most what it listed).
        if rng.random() < 0.3 and mm is not None and await _pick(run, e, code, "buy", q):
            continue
        await run.attempt("sell-listing", lambda order=order, e=e: run.client(e).call("placeOrder", order))
        run.counts["listings"] += 1
    for e in agents:
        want = gaps[e.uscc]
        if want <= 0:
            continue
        await _pick(run, e, code, "sell", _share(want, month, 1))


async def _pick(run: Run, e: Enterprise, code: str, side: str, quantity: int) -> int:
    """Take listings of `side` (the other side's), best price first, up to `quantity`; what was taken."""
    inst_id = run.instruments[code].id
    book = await run.client(e).call("getOrderBook", instrument_id=inst_id)
    listings = sorted((x for x in book.listings if x.side == side), key=lambda x: (x.price_fen, x.id))
    if side == "buy":
        listings.reverse()
    money = await funds_fen(run, e) if side == "sell" else 0
    taken = 0
    for x in listings:
        if taken >= quantity:
            break
        q = min(quantity - taken, x.quantity_base)
        if side == "sell":
            q = min(q, money // max(1, x.price_fen))
            if q <= 0:
                break
        else:
            q = min(q, (await holding(run, e, code))[1])
            if q <= 0:
                break
        order = {
            "instrument_id": inst_id,
            "account_id": e.account_id,
            "side": "buy" if side == "sell" else "sell",
            "quantity": str(q),
            "listing_id": x.id,
        }
        done = await run.attempt("pick", lambda order=order: run.client(e).call("placeOrder", order))
        if done is not None:
            taken += q
            money -= q * x.price_fen
            run.counts["picks"] += 1
    return taken


async def continuous_sessions(run: Run, month: int) -> None:
    """The continuous markets' day, one market after the other. What each emitter holds and the money it has are read
    once for all of them (trades on one market change no holding of another; the money a buy order holds is
    taken off the figure read, what a sale brings in is left for the next day)."""
    codes = [c for c, i in run.instruments.items() if i.kind in CONTINUOUS and c in run.markets]
    if month < GEC_FROM_MONTH:  # certificates are bought in the last months, for the year's claim
        codes = [c for c in codes if run.instruments[c].kind != "gec"]
    holders = [e for e in [*run.enterprises, *run.farms] if any(c in e.energy for c in codes)]
    snap: dict[str, tuple[dict[str, tuple[int, int]], list[int]]] = {}
    for e in holders:
        held = {
            h.instrument.code: (h.balance_base, h.available_base)
            for h in await run.client(e).call("listHoldings", account_id=e.account_id)
        }
        snap[e.uscc] = (held, [await funds_fen(run, e)])
    for code in codes:
        await continuous_session(run, code, month, snap)


async def continuous_session(
    run: Run, code: str, month: int, snap: dict[str, tuple[dict[str, tuple[int, int]], list[int]]]
) -> None:
    """A continuous market's day: the market maker quotes, emitters send limit orders toward their need."""
    m, inst = run.markets[code], run.instruments[code]
    unit, rng, mm = 10**inst.scale, run.rng, run.market_maker
    holders = [e for e in [*run.enterprises, *run.farms] if code in e.energy]
    if not holders:
        return
    if mm is not None:
        if month > 1:
            bal, avail = await holding(run, mm, code)
            if avail >= unit:
                q = min(avail, 200 * unit) // unit * unit
                price = _price(m, scale_fen(m.prev_close_fen, 100))
                order = _order(inst.id, mm.account_id, "sell", _quantity(run, code, q), price=price)
                await run.attempt("mm-ask", lambda: run.client(mm).call("placeOrder", order))
        q = min(200 * unit, (await funds_fen(run, mm)) // 4 // max(1, m.prev_close_fen) * unit)
        if q >= unit:
            price = _price(m, scale_fen(m.prev_close_fen, -100))
            order = _order(inst.id, mm.account_id, "buy", _quantity(run, code, q), price=price)
            await run.attempt("mm-bid", lambda: run.client(mm).call("placeOrder", order))
    rng.shuffle(holders)
    for e in holders:
        held, money = snap[e.uscc]
        bal, avail = held.get(code, (0, 0))
        gap = need_of(run, e, code, bal)
        if gap == 0:
            continue
        q = min(_share(abs(gap), month, unit), ORDER_MAX * unit)
        side = "buy" if gap > 0 else "sell"
        if side == "sell":
            q = min(q, avail // unit * unit)
            bps = rng.randint(-100, 0)
        else:
            q = min(q, money[0] // max(1, scale_fen(m.prev_close_fen, 100)) * unit)
            bps = rng.randint(0, 100)
        if q < unit:
            continue
        price = _price(m, scale_fen(m.prev_close_fen, bps))
        order = _order(inst.id, e.account_id, side, _quantity(run, code, q), price=price)
        if await run.attempt("limit", lambda order=order, e=e: run.client(e).call("placeOrder", order)) is not None:
            run.counts["orders"] += 1
            if side == "buy":
                money[0] -= scale_fen(m.prev_close_fen, bps) * q // unit


async def block_trade(run: Run) -> None:
    """The year's block trade: the longest emitter sells 100,000 t to the shortest that can pay, at the close."""
    code = next(c for c, i in run.instruments.items() if i.kind == CEA)
    m, inst_id = run.markets[code], run.instruments[code].id
    block = int(m.block_quantity_min)
    gaps = []
    for e in run.enterprises:
        bal, avail = await holding(run, e, code)
        gaps.append((need_of(run, e, code, bal), avail, await funds_fen(run, e), e.uscc, e))
    sellers = sorted((g for g in gaps if g[1] >= block), key=lambda g: (g[0], g[3]))
    buyers = sorted((g for g in gaps if g[2] >= block * m.prev_close_fen), key=lambda g: (-g[0], g[3]))
    if not sellers or not buyers or sellers[0][4] is buyers[0][4]:
        run.notes.append("block trade: no pair of a seller with 100,000 t and a buyer with the money")
        return
    seller, buyer = sellers[0][4], buyers[0][4]
    body = {
        "instrument_id": inst_id,
        "account_id": seller.account_id,
        "side": "sell",
        "counterparty_organisation_id": buyer.organisation_id,
        "price": yuan(m.prev_close_fen),
        "quantity": str(block),
    }
    proposal = await run.client(seller).call("proposeBlockTrade", body)
    await run.client(buyer).call("acceptBlockTrade", {"account_id": buyer.account_id}, block_trade_id=proposal.id)
    run.counts["block_trades"] += 1


async def primary_auction(run: Run, volume: int) -> None:
    """The regulator auctions `volume` t from its allocation account; short emitters and the market maker bid
    sealed, each at its own price (distinct prices: the result does not hang on the seeded tie order)."""
    code = next(c for c, i in run.instruments.items() if i.kind == CEA)
    m, inst_id = run.markets[code], run.instruments[code].id
    reserve = scale_fen(m.prev_close_fen, -500)
    auction = await run.regulator.call(
        "createAuction",
        {
            "instrument_id": inst_id,
            "type": "primary",
            "volume": str(volume),
            "reserve_price": yuan(reserve),
            "pricing": "uniform",
            "bidder_cap_bps": 2500,
        },
    )
    cap = volume // 4
    bidders: list[tuple[Enterprise, int]] = []
    for e in run.enterprises:
        bal, _ = await holding(run, e, code)
        need = need_of(run, e, code, bal)
        if need > 0:
            bidders.append((e, min(need, cap)))
    if run.market_maker is not None:
        bidders.append((run.market_maker, cap))
    bidders.sort(key=lambda b: (-b[1], b[0].uscc))
    top = scale_fen(m.prev_close_fen, run.rng.randint(-100, 100))
    for n, (e, want) in enumerate(bidders[:40]):
        price = scale_fen(top, -10 * n)  # 0.1 % apart: a distinct price per bidder, all above the reserve
        q = min(want, (await funds_fen(run, e)) // max(1, price))
        if q <= 0 or price < reserve:
            continue
        bid = {"account_id": e.account_id, "price": yuan(price), "quantity": str(q)}
        if await run.attempt("bid", lambda bid=bid, e=e: run.client(e).call("submitBid", bid, auction_id=auction.id)):
            run.counts["bids"] += 1
    result = await run.attempt("clear-auction", lambda: run.regulator.call("clearAuction", auction_id=auction.id))
    status = getattr(result, "status", None) if result is not None else "refused"
    run.counts[f"auction:{status}"] += 1


async def close_day(run: Run, day: Any) -> None:
    """The day's close for every market (the scheduler's `market_close` does the same at 15:05; idempotent)."""
    await run.attempt("close", lambda: run.regulator.call("closeTradingDay", {"trade_date": day.isoformat()}))
