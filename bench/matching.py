"""Matching throughput: the pure matcher against a minimal baseline and the peer engine pyorderbook.

One deterministic stream of mixed events (limit, market, IOC, FOK, cancel, reduce; generated from a seed,
before any timing) runs through, in this process:
1. `trading.domain.book.Book` with every check off (the configuration of the differential test);
2. a minimal dict-and-deque price-time book written below, the baseline: the least a Python matcher can
   do (no result values, no terminal-state map, lazy cancels);
3. pyorderbook 0.4.9, with market and IOC emulated as limit-then-cancel and FOK as a depth check first.
Then `bench/durable_orders.py`'s `durable_run(url)` measures orders journalled and settled per second through the
service, on SQLite (or the `--durable-url` database): concurrent callers sharing group commits, and one caller alone.

Usage: `python bench/matching.py [--events N] [--seed S] [--durable-url URL]`. The last line is
`matcher_events_per_s=<n> vs_minimal_baseline=<x> vs_pyorderbook=<y> durable_orders_per_s_sqlite=<n>
durable_orders_sequential_per_s_sqlite=<n> durable_vs_bare_sqlite=<x>` (`_postgresql` for a PostgreSQL
`--durable-url`; `durable_vs_bare` is the durable rate over its storage floor, the same rows written again with the
bare driver, `bench/durable_orders.py`), followed by the durable run's statement counts on the line before.
Goals: at least 0.5× the baseline and 4× pyorderbook.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import random
import sys
import tempfile
import time
from bisect import insort
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.durable_orders import DurableRun, backend_suffix, durable_run
from trading.domain.book import Book, BookConfig
from trading.domain.model import OrderKind, Side

NOW = datetime(2025, 3, 3, 2, 0, tzinfo=UTC)
MID_FEN = 10_000
SPREAD_TICKS = 50

# Event tuples: (op, order_id, is_buy, kind, price_fen, quantity, owner); op 0 = place, 1 = cancel, 2 = reduce.
PLACE, CANCEL, REDUCE = 0, 1, 2
Event = tuple[int, int, bool, OrderKind, int | None, int, str]


def generate(events: int, seed: int) -> list[Event]:
    rng = random.Random(seed)
    stream: list[Event] = []
    placed: list[int] = []
    next_id = 1
    owners = [f"E{i}" for i in range(16)]
    for _ in range(events):
        roll = rng.random()
        if roll < 0.70 or not placed:
            kind_roll = rng.random()
            if kind_roll < 0.79:
                kind = OrderKind.LIMIT
            elif kind_roll < 0.86:
                kind = OrderKind.IOC
            elif kind_roll < 0.93:
                kind = OrderKind.FOK
            else:
                kind = OrderKind.MARKET
            price = None if kind is OrderKind.MARKET else MID_FEN + rng.randint(-SPREAD_TICKS, SPREAD_TICKS)
            stream.append((PLACE, next_id, rng.random() < 0.5, kind, price, rng.randint(1, 100), rng.choice(owners)))
            placed.append(next_id)
            next_id += 1
        else:
            # Mostly recent orders, which are likely still live; the rest are stale cancels.
            target = placed[-rng.randint(1, min(len(placed), 60))]
            op = CANCEL if roll < 0.94 else REDUCE
            stream.append((op, target, False, OrderKind.LIMIT, None, rng.randint(1, 20), ""))
    return stream


def run_matcher(stream: list[Event]) -> tuple[float, int]:
    book = Book(BookConfig.unchecked())
    place, cancel, reduce = book.place, book.cancel, book.reduce
    buy, sell = Side.BUY, Side.SELL
    trades = 0
    started = time.perf_counter()
    for op, order_id, is_buy, kind, price, quantity, owner in stream:
        if op == PLACE:
            trades += len(place(order_id, buy if is_buy else sell, kind, price, quantity, owner=owner, now=NOW).trades)
        elif op == CANCEL:
            cancel(order_id)
        else:
            reduce(order_id, quantity)
    elapsed = time.perf_counter() - started
    assert book.check_invariants() == []
    return elapsed, trades


class MinimalBook:
    """The baseline: per side a dict price -> [total, deque of [id, quantity, owner]] and a sorted key list.

    Cancels are lazy (the entry's quantity drops to 0 and matching skips it), which is the cheapest
    correct cancel a deque allows. It returns plain tuples and keeps no history.
    """

    def __init__(self) -> None:
        self.levels: tuple[dict[int, list], dict[int, list]] = ({}, {})  # 0 = bids, 1 = asks
        self.keys: tuple[list[int], list[int]] = ([], [])  # best key last; asks keyed by -price
        self.live: dict[int, list] = {}

    def place(self, order_id: int, is_buy: bool, kind: OrderKind, price: int | None, quantity: int) -> list:
        own, other = (0, 1) if is_buy else (1, 0)
        limit_key = -(1 << 62) if price is None else -price if is_buy else price
        okeys, olevels = self.keys[other], self.levels[other]
        if kind is OrderKind.FOK:
            available = 0
            for key in reversed(okeys):
                if key < limit_key:
                    break
                available += olevels[key][0]
                if available >= quantity:
                    break
            if available < quantity:
                return []
        trades = []
        live = self.live
        while quantity and okeys and okeys[-1] >= limit_key:
            key = okeys[-1]
            level = olevels[key]
            queue = level[1]
            level_price = key if is_buy is False else -key
            while quantity and queue:
                entry = queue[0]
                if not entry[1]:
                    queue.popleft()
                    continue
                fill = entry[1] if entry[1] <= quantity else quantity
                entry[1] -= fill
                level[0] -= fill
                quantity -= fill
                trades.append((order_id, entry[0], level_price, fill))
                if not entry[1]:
                    queue.popleft()
                    del live[entry[0]]
            if not level[0]:
                okeys.pop()
                del olevels[key]
        if quantity and kind is OrderKind.LIMIT:
            assert price is not None
            key = price if is_buy else -price
            levels = self.levels[own]
            level = levels.get(key)
            if level is None:
                level = levels[key] = [0, deque()]
                insort(self.keys[own], key)
            entry = [order_id, quantity, key, own]
            level[1].append(entry)
            level[0] += quantity
            live[order_id] = entry
        return trades

    def cancel(self, order_id: int) -> bool:
        entry = self.live.pop(order_id, None)
        if entry is None:
            return False
        levels, keys = self.levels[entry[3]], self.keys[entry[3]]
        level = levels[entry[2]]
        level[0] -= entry[1]
        entry[1] = 0
        if not level[0]:
            del levels[entry[2]]
            keys.remove(entry[2])
        return True

    def reduce(self, order_id: int, quantity: int) -> bool:
        entry = self.live.get(order_id)
        if entry is None:
            return False
        if quantity >= entry[1]:
            return self.cancel(order_id)
        entry[1] -= quantity
        self.levels[entry[3]][entry[2]][0] -= quantity
        return True


def run_baseline(stream: list[Event]) -> tuple[float, int]:
    book = MinimalBook()
    place, cancel, reduce = book.place, book.cancel, book.reduce
    trades = 0
    started = time.perf_counter()
    for op, order_id, is_buy, kind, price, quantity, _owner in stream:
        if op == PLACE:
            trades += len(place(order_id, is_buy, kind, price, quantity))
        elif op == CANCEL:
            cancel(order_id)
        else:
            reduce(order_id, quantity)
    return time.perf_counter() - started, trades


def run_pyorderbook(stream: list[Event]) -> tuple[float, int]:
    from pyorderbook import Book as PeerBook
    from pyorderbook import Order as PeerOrder
    from pyorderbook import Side as PeerSide

    # pyorderbook configures INFO logging on import; its debug calls must stay cheap and silent.
    logging.getLogger("pyorderbook").setLevel(logging.WARNING)
    book = PeerBook()
    orders: dict[int, PeerOrder] = {}
    order_map = book.order_map
    level_map = book.level_map["CEA"]
    bid, ask = PeerSide.BID, PeerSide.ASK
    trades = 0
    started = time.perf_counter()
    for op, order_id, is_buy, kind, limit_price, quantity, _owner in stream:
        if op == PLACE:
            price = limit_price if limit_price is not None else 10**9 if is_buy else 1
            if kind is OrderKind.FOK:
                if is_buy:
                    crossing = [lvl for p, lvl in level_map[ask].items() if p <= price]
                else:
                    crossing = [lvl for p, lvl in level_map[bid].items() if p >= price]
                if sum(o.quantity for lvl in crossing for o in lvl.orders.values()) < quantity:
                    continue
            order = PeerOrder(bid if is_buy else ask, "CEA", price, quantity)
            orders[order_id] = order
            trades += len(book.match(order).trades)
            if kind is not OrderKind.LIMIT and order.id in order_map:
                book.cancel(order)
        else:
            peer_order = orders.get(order_id)
            if peer_order is None or peer_order.id not in order_map:
                continue
            if op == CANCEL or quantity >= peer_order.quantity:
                book.cancel(peer_order)
            else:
                peer_order.quantity -= quantity
    return time.perf_counter() - started, trades


def durable_rates(url: str, orders: int, concurrent_orders: int) -> DurableRun:
    return asyncio.run(durable_run(url, orders=orders, concurrent_orders=concurrent_orders))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20_250_303)
    parser.add_argument("--repeat", type=int, default=5, help="runs of matcher and baseline; the best counts")
    parser.add_argument("--durable-url", default=None, help="database URL for the durable run (fresh, empty)")
    parser.add_argument("--durable-orders", type=int, default=600, help="sequential orders of the durable run")
    parser.add_argument("--durable-concurrent-orders", type=int, default=4096, help="its concurrent orders")
    args = parser.parse_args()

    stream = generate(args.events, args.seed)
    # The stream is input, not work: move it out of the collector's reach so that full collections,
    # triggered more often by an engine that allocates more, do not traverse a million event tuples.
    gc.collect()
    gc.freeze()
    # Matcher and baseline alternate and the best run of each counts, so that a noisy neighbour on a
    # shared machine distorts the ratio as little as possible. pyorderbook is slow enough to run once.
    matcher_runs: list[tuple[float, int]] = []
    baseline_runs: list[tuple[float, int]] = []
    for _ in range(max(args.repeat, 1)):
        matcher_runs.append(run_matcher(stream))
        baseline_runs.append(run_baseline(stream))
    matcher_s, matcher_trades = min(matcher_runs)
    baseline_s, baseline_trades = min(baseline_runs)
    peer_s, peer_trades = run_pyorderbook(stream)
    # The three engines must have done the same work, or the ratios would compare different things.
    if not matcher_trades == baseline_trades == peer_trades:
        raise SystemExit(f"engines disagree: trades {matcher_trades} / {baseline_trades} / {peer_trades}")
    print(f"events={args.events} trades={matcher_trades}")
    print(f"matcher {matcher_s:.2f}s  baseline {baseline_s:.2f}s  pyorderbook {peer_s:.2f}s")

    with tempfile.TemporaryDirectory() as tmp:
        url = args.durable_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench_durable.db'}"
        durable = durable_rates(url, args.durable_orders, args.durable_concurrent_orders)
    suffix = backend_suffix(args.durable_url)
    print(durable.line(suffix))

    events = args.events
    print(
        f"matcher_events_per_s={events / matcher_s:.0f} "
        f"vs_minimal_baseline={baseline_s / matcher_s:.2f} "
        f"vs_pyorderbook={peer_s / matcher_s:.2f} "
        f"durable_orders_per_s{suffix}={durable.concurrent_per_s:.0f} "
        f"durable_orders_sequential_per_s{suffix}={durable.sequential_per_s:.0f}"
        + f" durable_vs_bare{suffix}={durable.vs_bare:.3f}"
    )


if __name__ == "__main__":
    main()
