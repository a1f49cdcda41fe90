"""Group commit of a book's commands (`trading.books.submit`): commands that arrive together run as one batch in one
transaction and are answered after the one commit; a command that fails is undone alone (in memory, or when it had
written to the database, by running the batch again with a savepoint per command).

- Concurrent placements give exactly what a sequential run of the same journal order gives: the trades, every
  order's outcome and every balance (against a second, sequential world, and against the journal's replay).
- A refused command inside a batch (insufficient funds, off the band, off the tick; or a failure after the book
  had changed) rolls back alone; the others commit, the journal stays gapless and the book equals its replay.
- A batch whose commit fails changes nothing: every caller gets 503, and the book is rebuilt from the journal.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest
from sqlalchemy import event, insert, select

from core.audit import make_flusher
from core.db import Database, UnitOfWork
from core.errors import AppError, ServiceUnavailable
from core.events import OutboxEvent
from core.identity import Identity
from core.models import LedgerAccount, Organisation
from registry import schemas as rs
from registry.models import Instrument
from registry.service import OWNER
from server.migrate import create_schema
from tests.trading.conftest import MONDAY_10, ServiceWorld, invariants, service_world
from trading import books as books_module
from trading import orders as orders_module
from trading import schemas as ts
from trading import settlement
from trading.domain.commands import Place
from trading.domain.journal import decode, replay, replay_with_results
from trading.models import BookDay, JournalEntry, Market, Order, Trade
from trading.sequencer import book_config

DAY = MONDAY_10.date()


def _order(sw: ServiceWorld, trader: int, side: str, quantity: int, price: str | None, kind: str = "limit") -> Any:
    return ts.PlaceOrder(
        instrument_id=sw.instrument_id,
        account_id=sw.accounts[trader],
        side=side,  # type: ignore[arg-type]
        kind=kind,  # type: ignore[arg-type]
        price=price,
        quantity=str(quantity),
    )


def _stream(sw: ServiceWorld, n: int, seed: int) -> list[tuple[int, Any]]:
    """Mixed placements by three traders around 50.00: limits that rest or cross, some IOC, FOK and market orders,
    and crossings of a trader's own orders (self-trade prevention)."""
    rng = random.Random(seed)
    out: list[tuple[int, Any]] = []
    for _ in range(n):
        trader = rng.randrange(3)
        side = rng.choice(["buy", "sell"])
        roll = rng.random()
        kind = "limit" if roll < 0.75 else "ioc" if roll < 0.85 else "fok" if roll < 0.93 else "market"
        price = None if kind == "market" else f"{49 + rng.randint(0, 200) / 100:.2f}"
        out.append((trader, _order(sw, trader, side, rng.randint(1, 40), price, kind)))
    return out


class BatchSizes:
    """Records the size of every batch the books run."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[int] = []
        real = books_module._run_batch

        async def recording(ctx: Any, batches: dict[int, list[Any]]) -> None:
            self.sizes.append(sum(len(batch) for batch in batches.values()))
            await real(ctx, batches)

        monkeypatch.setattr(books_module, "_run_batch", recording)


async def _warm(sw: ServiceWorld) -> None:
    """Open the day's book (and fill the process's caches) with an order far from the action, then cancel it."""
    o = await sw.trading.place_order(sw.traders[0], _order(sw, 0, "sell", 1, "54.00"), None)
    await sw.trading.cancel_order(sw.traders[0], o.id)


async def _rows(db: Database, model: Any, order_by: Any) -> list[Any]:
    async def work(uow: UnitOfWork) -> list[Any]:
        return list((await uow.session.execute(select(model).order_by(order_by))).scalars())

    return await db.read(work)


async def _journal(db: Database) -> list[tuple[int, Any]]:
    rows = await _rows(db, JournalEntry, JournalEntry.seq)
    return [(r.seq, decode(json.loads(r.command))) for r in rows]


async def _balances(sw: ServiceWorld) -> list[tuple[int, int, int, int]]:
    """Per trader: (fund posted balance, fund held, units posted balance, units held)."""

    async def work(uow: UnitOfWork) -> list[tuple[int, int, int, int]]:
        ses = uow.session
        inst = await ses.get(Instrument, sw.instrument_id)
        assert inst is not None
        out = []
        for who, account_id in zip(sw.traders, sw.accounts, strict=True):
            fund = (
                await ses.execute(
                    select(LedgerAccount).where(
                        LedgerAccount.owner_kind == "fund", LedgerAccount.owner_id == who.organisation_id
                    )
                )
            ).scalar_one()
            units = (
                await ses.execute(
                    select(LedgerAccount).where(
                        LedgerAccount.owner_kind == OWNER,
                        LedgerAccount.owner_id == account_id,
                        LedgerAccount.asset_id == inst.asset_id,
                    )
                )
            ).scalar_one()
            out.append(
                (
                    fund.credits_posted - fund.debits_posted,
                    fund.debits_pending,
                    units.credits_posted - units.debits_posted,
                    units.debits_pending,
                )
            )
        return out

    return await sw.db.read(work)


async def _outcome(sw: ServiceWorld, request_of: dict[int, int]) -> dict[str, Any]:
    """Everything a run settled, keyed by request index and trader index (ids differ between worlds)."""
    trader_of = {who.organisation_id: i for i, who in enumerate(sw.traders)}
    orders = {
        request_of[o.id]: (o.status, o.filled_quantity, o.cancelled_quantity, o.held_amount, o.cancel_reason)
        for o in await _rows(sw.db, Order, Order.id)
        if o.id in request_of
    }
    trades = [
        (
            request_of[t.buy_order_id],
            request_of[t.sell_order_id],
            trader_of[t.buyer_organisation_id],
            trader_of[t.seller_organisation_id],
            t.price_fen,
            t.quantity,
            t.taker_side,
        )
        for t in await _rows(sw.db, Trade, Trade.book_seq)
        if t.buy_order_id in request_of and t.sell_order_id in request_of
    ]
    return {"orders": orders, "trades": trades, "balances": await _balances(sw)}


async def _sound(sw: ServiceWorld) -> None:
    assert await invariants(sw.db) == []
    assert await sw.trading.reconcile() == []
    seqs = [seq for seq, _ in await _journal(sw.db)]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_concurrent_placements_settle_exactly_as_a_sequential_run_of_the_journal_order(
    service_db: tuple[Database, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, clock = service_db
    sw = await service_world(db, clock, mode="continuous", traders=3)
    await _warm(sw)
    journal_before = len(await _journal(db))
    sizes = BatchSizes(monkeypatch)
    requests = _stream(sw, 60, seed=7)
    results = await asyncio.gather(
        *(sw.trading.place_order(sw.traders[i], req, None) for i, req in requests), return_exceptions=True
    )
    assert max(sizes.sizes) > 1, sizes.sizes  # the placements really shared transactions
    request_of = {r.id: k for k, r in enumerate(results) if not isinstance(r, BaseException)}
    refused = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(r, AppError) for r in refused), refused
    await _sound(sw)

    # The journal's order of the placements, and the book and trades its replay gives.
    journal = (await _journal(db))[journal_before:]
    placed = [c for _, c in journal]
    assert all(isinstance(c, Place) for c in placed)
    assert sorted(request_of) == sorted(c.order_id for c in placed)
    row = (await _rows(db, BookDay, BookDay.id))[0]
    everything = [c for _, c in await _journal(db)]
    _, replayed = replay_with_results(everything, book_config(row))
    replayed_trades = [
        (t.seq, t.price_fen, t.quantity, t.buyer_order_id, t.seller_order_id) for r in replayed for t in r.trades
    ]
    settled = [
        (t.book_seq, t.price_fen, t.quantity, t.buy_order_id, t.sell_order_id)
        for t in await _rows(db, Trade, Trade.book_seq)
    ]
    assert settled == replayed_trades
    assert await sw.trading.book_snapshot(sw.instrument_id, DAY) == replay(everything, book_config(row)).snapshot()

    # A second world places the same requests one at a time, in the journal's order: it must settle the same.
    ref_db = Database(f"sqlite+aiosqlite:///{tmp_path / 'sequential.db'}")
    create_schema(ref_db.url)
    try:
        ref = await service_world(ref_db, clock, mode="continuous", traders=3)
        await _warm(ref)
        ref_request_of: dict[int, int] = {}
        for command in placed:
            k = request_of[command.order_id]
            trader, req = requests[k]
            ref_req = msgspec.structs.replace(req, instrument_id=ref.instrument_id, account_id=ref.accounts[trader])
            out = await ref.trading.place_order(ref.traders[trader], ref_req, None)
            ref_request_of[out.id] = k
        assert await _outcome(ref, ref_request_of) == await _outcome(sw, request_of)
        await _sound(ref)
    finally:
        await ref_db.dispose()


async def test_a_refused_command_inside_a_batch_rolls_back_alone(
    service_db: tuple[Database, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, clock = service_db
    sw = await service_world(db, clock, mode="continuous", traders=3, funds_yuan="1000.00")
    t = sw.trading
    await _warm(sw)
    before = len(await _journal(db))
    sizes = BatchSizes(monkeypatch)
    requests = [
        (0, _order(sw, 0, "sell", 10, "50.00")),  # rests
        (1, _order(sw, 1, "buy", 100, "50.00")),  # needs 5,000 yuan of 1,000: insufficient-available
        (1, _order(sw, 1, "buy", 4, "50.00")),  # crosses the sell
        (2, _order(sw, 2, "buy", 5, "80.00")),  # outside the band
        (2, _order(sw, 2, "sell", 3000, "50.00")),  # holds 2,000 units: insufficient-available
        (2, _order(sw, 2, "buy", 6, "50.00")),  # crosses the rest of the sell
    ]
    results = await asyncio.gather(
        *(t.place_order(sw.traders[i], r, None) for i, r in requests), return_exceptions=True
    )
    assert sizes.sizes == [len(requests)]
    problems = [r.problem.slug if isinstance(r, AppError) else None for r in results]
    assert problems == [None, "insufficient-available", None, "outside-band", "insufficient-available", None]
    sell, _, buy1, _, _, buy2 = results
    assert isinstance(sell, ts.OrderOut) and isinstance(buy1, ts.OrderOut) and isinstance(buy2, ts.OrderOut)
    assert (sell.journal_seq, buy1.journal_seq, buy2.journal_seq) == (before + 1, before + 2, before + 3)
    assert (await t.get_order(sw.traders[0], sell.id)).status == "filled"
    assert buy1.status == buy2.status == "filled"
    # The refused orders left no row, no hold and no journal entry.
    assert len([o for o in await _rows(db, Order, Order.id) if o.status != "cancelled"]) == 3
    assert [seq for seq, _ in await _journal(db)][before:] == [before + 1, before + 2, before + 3]
    await _sound(sw)


async def test_a_failure_after_the_book_changed_inside_a_batch_rolls_back_that_command_and_rebuilds_the_book(
    service_db: tuple[Database, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, clock = service_db
    db.audit_flusher = make_flusher(clock)  # as the app does: the outbox's events are written at each commit
    sw = await service_world(db, clock, mode="continuous", traders=3)
    t = sw.trading
    await _warm(sw)
    await t.place_order(sw.traders[0], _order(sw, 0, "sell", 10, "50.00"), None)
    before = len(await _journal(db))
    real = settlement.deliver
    calls = 0

    async def second_delivery_fails(*args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        await real(*args, **kwargs)  # the trade's payouts are written and its event told, then it fails
        if calls == 2:
            raise RuntimeError("settlement failed half way")

    monkeypatch.setattr(settlement, "deliver", second_delivery_fails)
    sizes = BatchSizes(monkeypatch)
    requests = [
        (1, _order(sw, 1, "buy", 3, "50.00")),  # fills 3
        (2, _order(sw, 2, "buy", 4, "50.00")),  # the book fills it, then its settlement fails: rolled back alone
        (1, _order(sw, 1, "buy", 5, "50.00")),  # fills 5 of what is left (7), in the rebuilt book
        (2, _order(sw, 2, "sell", 2, "51.00")),  # rests
    ]
    results = await asyncio.gather(
        *(t.place_order(sw.traders[i], r, None) for i, r in requests), return_exceptions=True
    )
    assert sizes.sizes == [len(requests)]
    assert isinstance(results[1], RuntimeError)
    done = [r for r in results if isinstance(r, ts.OrderOut)]
    assert [r.filled_base for r in done] == [3, 5, 0], results
    assert [r.journal_seq for r in done] == [before + 1, before + 2, before + 3]
    snapshot = await t.book_snapshot(sw.instrument_id, DAY)
    row = (await _rows(db, BookDay, BookDay.id))[0]
    assert snapshot == replay([c for _, c in await _journal(db)], book_config(row)).snapshot()
    assert snapshot is not None and snapshot.trade_seq == 2  # the failed command's trade was never made
    # Nor was it told: one trade.executed event per trade that committed.
    trades = {t.id for t in await _rows(db, Trade, Trade.id)}
    told = [json.loads(e.body)["trade_id"] for e in await _rows(db, OutboxEvent, OutboxEvent.id)
            if e.type == "trade.executed"]  # fmt: skip
    assert sorted(told) == sorted(trades) and len(trades) >= 2
    await _sound(sw)


async def test_a_batch_whose_commit_fails_changes_nothing_and_the_book_is_rebuilt(
    service_db: tuple[Database, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, clock = service_db
    sw = await service_world(db, clock, mode="continuous", traders=3)
    t = sw.trading
    await _warm(sw)
    await t.place_order(sw.traders[0], _order(sw, 0, "sell", 10, "50.00"), None)
    journal = await _journal(db)
    orders, trades, balances = await _rows(db, Order, Order.id), await _rows(db, Trade, Trade.id), await _balances(sw)
    book = await t.book_snapshot(sw.instrument_id, DAY)

    failing = True

    def commit_fails(conn: Any) -> None:
        if failing:
            raise RuntimeError("the disk is full")

    sizes = BatchSizes(monkeypatch)
    event.listen(db.engine.sync_engine, "commit", commit_fails)
    requests = [
        (1, _order(sw, 1, "buy", 4, "50.00")),
        (2, _order(sw, 2, "buy", 6, "50.00")),
        (2, _order(sw, 2, "sell", 5, "52.00")),
        (1, _order(sw, 1, "buy", 500_000, "50.00")),  # refused in the batch; told the batch failed too
    ]
    try:
        results = await asyncio.gather(
            *(t.place_order(sw.traders[i], r, None) for i, r in requests), return_exceptions=True
        )
    finally:
        failing = False
        event.remove(db.engine.sync_engine, "commit", commit_fails)
    assert sizes.sizes == [len(requests)]
    assert all(isinstance(r, ServiceUnavailable) and r.status == 503 for r in results), results
    # Nothing changed: journal, orders, trades, balances; memory is the journal's book again.
    assert await _journal(db) == journal
    assert _order_rows(await _rows(db, Order, Order.id)) == _order_rows(orders)
    assert len(await _rows(db, Trade, Trade.id)) == len(trades)
    assert await _balances(sw) == balances
    book_id = (await _rows(db, BookDay, BookDay.id))[0].id
    assert t.ctx.sequencer.cached(book_id) is None  # dropped: the next use replays the journal
    assert await t.book_snapshot(sw.instrument_id, DAY) == book
    await _sound(sw)
    # The same commands go through once the database commits again.
    retried = await asyncio.gather(*(t.place_order(sw.traders[i], r, None) for i, r in requests[:3]))
    assert [r.filled_base for r in retried] == [4, 6, 0]
    await _sound(sw)


async def test_batches_are_bounded_and_answer_in_journal_order(
    service_db: tuple[Database, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, clock = service_db
    sw = await service_world(db, clock, mode="continuous", traders=3)
    sw.trading.ctx.group_commit_max = 4
    await _warm(sw)
    before = len(await _journal(db))
    sizes = BatchSizes(monkeypatch)
    results = await asyncio.gather(
        *(sw.trading.place_order(sw.traders[k % 3], _order(sw, k % 3, "sell", 1, "52.00"), None) for k in range(10))
    )
    assert sizes.sizes == [4, 4, 2]
    # Commands are journalled in the order they were submitted.
    assert [r.journal_seq for r in results] == list(range(before + 1, before + 11))
    await _sound(sw)


def _order_rows(rows: Sequence[Any]) -> list[tuple[Any, ...]]:
    return [(o.id, o.status, o.filled_quantity, o.cancelled_quantity, o.hold_transfer_id, o.held_amount) for o in rows]


async def test_units_bought_earlier_in_the_same_batch_are_not_sellable_today(
    service_db: tuple[Database, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """T+1 inside a batch: the trade a command made earlier in the batch is not written yet (a batch writes its
    trades at its end, `trading.staging`), and a later command selling those units is still refused."""
    db, clock = service_db
    sw = await service_world(db, clock, mode="continuous", traders=2)
    t = sw.trading
    await _warm(sw)
    sizes = BatchSizes(monkeypatch)
    requests = [
        (0, _order(sw, 0, "sell", 10, "50.00")),  # rests
        (1, _order(sw, 1, "buy", 10, "50.00")),  # trader 1 buys 10 today
        (1, _order(sw, 1, "sell", 2_005, "51.00")),  # 2,010 held, 2,000 sellable today
        (1, _order(sw, 1, "sell", 2_000, "51.00")),  # what is sellable: rests
    ]
    results = await asyncio.gather(
        *(t.place_order(sw.traders[i], r, None) for i, r in requests), return_exceptions=True
    )
    assert sizes.sizes == [len(requests)]
    problems = [r.problem.slug if isinstance(r, AppError) else None for r in results]
    assert problems == [None, None, "t-plus-one", None]
    refused = results[2]
    assert isinstance(refused, AppError) and refused.extra == {"sellable": "2000"}
    await _sound(sw)


async def test_a_request_repeated_in_the_same_batch_is_answered_with_the_same_fills(
    service_db: tuple[Database, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second placement with a request key answers with the first's order and its fills, though the batch
    writes its trades only at its end (`trading.staging`)."""
    db, clock = service_db
    sw = await service_world(db, clock, mode="continuous", traders=2)
    t = sw.trading
    await _warm(sw)
    sizes = BatchSizes(monkeypatch)
    sell = _order(sw, 0, "sell", 10, "50.00")
    buy = _order(sw, 1, "buy", 4, "50.00")
    results = await asyncio.gather(
        t.place_order(sw.traders[0], sell, None),
        t.place_order(sw.traders[1], buy, "key-1"),
        t.place_order(sw.traders[1], buy, "key-1"),
    )
    assert sizes.sizes == [3]
    first, again = results[1], results[2]
    assert again.id == first.id and first.filled_base == 4
    assert [f.trade_id for f in again.fills] == [f.trade_id for f in first.fills] and len(first.fills) == 1
    assert len([o for o in await _rows(db, Order, Order.id) if o.side == "buy"]) == 1
    await _sound(sw)


async def test_a_command_rolled_back_undoes_its_changes_to_an_order_placed_earlier_in_the_batch(
    service_db: tuple[Database, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A maker placed in the same batch is not written yet (`trading.staging` keeps its row to the commit): the
    command that traded with it and then failed leaves its row as it was, and the next command fills it."""
    db, clock = service_db
    sw = await service_world(db, clock, mode="continuous", traders=3)
    t = sw.trading
    await _warm(sw)
    real = orders_module.insert_order
    calls = 0

    async def second_order_fails(*args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        await real(*args, **kwargs)  # the maker's changes and the order's own row are staged, then it fails
        if calls == 2:
            raise RuntimeError("the order failed after it settled")

    monkeypatch.setattr(orders_module, "insert_order", second_order_fails)
    sizes = BatchSizes(monkeypatch)
    requests = [
        (0, _order(sw, 0, "sell", 10, "50.00")),  # rests, staged
        (2, _order(sw, 2, "buy", 4, "50.00")),  # fills 4 of the staged sell, then fails: rolled back alone
        (1, _order(sw, 1, "buy", 5, "50.00")),  # fills 5 of the sell's 10
    ]
    results = await asyncio.gather(
        *(t.place_order(sw.traders[i], r, None) for i, r in requests), return_exceptions=True
    )
    assert sizes.sizes == [len(requests)]
    assert isinstance(results[1], RuntimeError)
    sell, buy = results[0], results[2]
    assert isinstance(sell, ts.OrderOut) and isinstance(buy, ts.OrderOut) and buy.filled_base == 5
    row = next(o for o in await _rows(db, Order, Order.id) if o.id == sell.id)
    assert (row.filled_quantity, row.held_amount, row.hold_count, row.status) == (5, 5, 2, "resting")
    assert [(tr.sell_order_id, tr.quantity) for tr in await _rows(db, Trade, Trade.id)] == [(sell.id, 5)]
    await _sound(sw)


def _book(order: ts.PlaceOrder, instrument_id: int) -> ts.PlaceOrder:
    return msgspec.structs.replace(order, instrument_id=instrument_id)


async def _second_book(sw: ServiceWorld) -> int:
    """A second instrument (CEA of vintage 2024) with its own continuous market; every trader holds 2,000 units."""
    reg2 = Identity(sw.regulator.principal_id + 1, sw.regulator.organisation_id, sw.regulator.role, "test")
    tx = await sw.registry.issue_units(
        sw.regulator, rs.IssueUnits(kind="cea", scheme="national", vintage=2024, quantity="20000"), None
    )
    await sw.registry.approve_transfer(reg2, tx.id, rs.Decision(decision="approve"))
    await sw.trading.create_market(
        sw.regulator, ts.CreateMarket(instrument_id=tx.instrument_id, mode="continuous", reference_price="50.00"), None
    )
    for account_id in sw.accounts:
        await sw.registry.allocate_units(
            sw.regulator, rs.AllocateUnits(to_account_id=account_id, instrument_id=tx.instrument_id, quantity="2000"),
            None,
        )  # fmt: skip
    return tx.instrument_id


async def test_commands_of_two_books_that_arrive_together_commit_together(
    service_db: tuple[Database, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The books share one drainer (every trade moves the same clearing accounts, whose balances a batch holds to
    its commit): what arrives together for two books is one unit of work (one commit), each book journalled on its
    own, a refusal in one rolling back alone."""
    db, clock = service_db
    sw = await service_world(db, clock, mode="continuous", traders=3, funds_yuan="1000.00")
    t = sw.trading
    other = await _second_book(sw)
    await _warm(sw)
    await t.cancel_order(
        sw.traders[0], (await t.place_order(sw.traders[0], _book(_order(sw, 0, "sell", 1, "54.00"), other), None)).id
    )
    sizes = BatchSizes(monkeypatch)
    requests = [
        (0, _order(sw, 0, "sell", 10, "50.00")),  # rests in the first book
        (0, _book(_order(sw, 0, "sell", 6, "50.00"), other)),  # rests in the second
        (1, _order(sw, 1, "buy", 4, "50.00")),  # crosses the first book's sell
        (1, _book(_order(sw, 1, "buy", 100, "50.00"), other)),  # 5,000 yuan of 1,000: insufficient-available
        (2, _book(_order(sw, 2, "buy", 6, "50.00"), other)),  # crosses the second book's sell
    ]
    results = await asyncio.gather(
        *(t.place_order(sw.traders[i], r, None) for i, r in requests), return_exceptions=True
    )
    assert sizes.sizes == [5]
    problems = [r.problem.slug if isinstance(r, AppError) else None for r in results]
    assert problems == [None, None, None, "insufficient-available", None]
    filled = [r.filled_base for r in results if isinstance(r, ts.OrderOut)]
    assert filled == [0, 0, 4, 6]  # the sells as they rested, the buys as they crossed them
    assert [(tr.instrument_id, tr.quantity) for tr in await _rows(db, Trade, Trade.id)] == [
        (sw.instrument_id, 4),
        (other, 6),
    ]
    # Each book's journal runs 1, 2, ... on its own, and replays to the book in memory.
    entries = await _rows(db, JournalEntry, JournalEntry.id)
    instrument_of = {m.id: m.instrument_id for m in await _rows(db, Market, Market.id)}
    book_rows = await _rows(db, BookDay, BookDay.id)
    assert sorted(instrument_of[row.market_id] for row in book_rows) == sorted([sw.instrument_id, other])
    for row in book_rows:
        seqs = [e.seq for e in entries if e.book_id == row.id]
        assert seqs == list(range(1, len(seqs) + 1))
        commands = [decode(json.loads(e.command)) for e in entries if e.book_id == row.id]
        snapshot = await t.book_snapshot(instrument_of[row.market_id], DAY)
        assert snapshot == replay(commands, book_config(row)).snapshot()
    assert await invariants(db) == []
    assert await t.reconcile() == []


async def test_a_request_repeated_after_its_order_traded_in_the_batch_is_answered_as_the_order_stands(
    service_db: tuple[Database, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An order from an earlier batch that a command of this batch filled is changed in the batch's staged rows (its
    UPDATE is written at the end): a retry of its placement in the same batch is answered with the fill."""
    db, clock = service_db
    sw = await service_world(db, clock, mode="continuous", traders=2)
    t = sw.trading
    await _warm(sw)
    sell = _order(sw, 0, "sell", 10, "50.00")
    placed = await t.place_order(sw.traders[0], sell, "sell-1")
    sizes = BatchSizes(monkeypatch)
    buy, again = await asyncio.gather(
        t.place_order(sw.traders[1], _order(sw, 1, "buy", 4, "50.00"), None),
        t.place_order(sw.traders[0], sell, "sell-1"),
    )
    assert sizes.sizes == [2]
    assert buy.filled_base == 4
    assert again.id == placed.id and again.filled_base == 4 and [f.quantity_base for f in again.fills] == [4]
    await _sound(sw)


class BatchRuns:
    """Records, per unit of work a batch ran in, whether its commands had savepoints."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.savepoints: list[bool] = []
        real = books_module._batch_work

        async def recording(uow: UnitOfWork, ctx: Any, batches: Any, savepoints: bool) -> Any:
            self.savepoints.append(savepoints)
            return await real(uow, ctx, batches, savepoints)

        monkeypatch.setattr(books_module, "_batch_work", recording)


async def test_refusals_in_a_batch_are_undone_in_memory_without_savepoints(
    service_db: tuple[Database, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch's commands write nothing to the database before its end (rows, balances and serial moves are kept in
    memory): refusals among them, before or after the book changed, are undone in memory, in one run of the batch,
    and the statements of the batch set no savepoint."""
    db, clock = service_db
    sw = await service_world(db, clock, mode="continuous", traders=3, funds_yuan="1000.00")
    t = sw.trading
    await _warm(sw)
    await t.place_order(sw.traders[0], _order(sw, 0, "sell", 10, "50.00"), None)
    runs, sizes = BatchRuns(monkeypatch), BatchSizes(monkeypatch)
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    requests = [
        (1, _order(sw, 1, "buy", 4, "50.00")),  # crosses: serials move at the batch's end
        (1, _order(sw, 1, "buy", 100, "50.00")),  # insufficient-available
        (2, _order(sw, 2, "buy", 5, "80.00")),  # outside the band
        (2, _order(sw, 2, "buy", 6, "50.00")),  # crosses the rest of the sell
    ]
    results = await asyncio.gather(
        *(t.place_order(sw.traders[i], r, None) for i, r in requests), return_exceptions=True
    )
    event.remove(db.engine.sync_engine, "before_cursor_execute", record)
    assert sizes.sizes == [4] and runs.savepoints == [False]
    problems = [r.problem.slug if isinstance(r, AppError) else None for r in results]
    assert problems == [None, "insufficient-available", "outside-band", None]
    assert not [s for s in sent if "SAVEPOINT" in s.upper()]
    assert [tr.quantity for tr in await _rows(db, Trade, Trade.id)] == [4, 6]
    await _sound(sw)  # the serial blocks cover every balance (`check_invariants`)


async def test_a_command_that_wrote_to_the_database_and_failed_reruns_the_batch_with_savepoints(
    service_db: tuple[Database, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command that did send a write and then failed cannot be undone in memory: the batch rolls back whole and
    runs again with a savepoint per command; the failed command's write is gone, the others commit once."""
    db, clock = service_db
    sw = await service_world(db, clock, mode="continuous", traders=3)
    t = sw.trading
    await _warm(sw)
    before = len(await _journal(db))
    real = orders_module.insert_order
    calls = 0

    async def second_order_writes_then_fails(ses: Any, order: Any) -> None:
        nonlocal calls
        await real(ses, order)
        if order.quantity == 4:  # the second request's order, in both runs of the batch
            calls += 1
            await ses.execute(insert(Organisation).values(name="写入后失败", kind="enterprise", created_at=MONDAY_10))
            raise RuntimeError("the order failed after a write")

    monkeypatch.setattr(orders_module, "insert_order", second_order_writes_then_fails)
    runs, sizes = BatchRuns(monkeypatch), BatchSizes(monkeypatch)
    requests = [
        (0, _order(sw, 0, "sell", 10, "50.00")),  # rests
        (2, _order(sw, 2, "buy", 4, "50.00")),  # fills 4, writes, fails: rolled back alone
        (1, _order(sw, 1, "buy", 5, "50.00")),  # fills 5 of the sell's 10
    ]
    results = await asyncio.gather(
        *(t.place_order(sw.traders[i], r, None) for i, r in requests), return_exceptions=True
    )
    assert sizes.sizes == [3] and runs.savepoints == [False, True] and calls == 2
    assert isinstance(results[1], RuntimeError)
    sell, buy = results[0], results[2]
    assert isinstance(sell, ts.OrderOut) and isinstance(buy, ts.OrderOut) and buy.filled_base == 5
    assert (sell.journal_seq, buy.journal_seq) == (before + 1, before + 2)
    names = [o.name for o in await _rows(db, Organisation, Organisation.id)]
    assert "写入后失败" not in names
    assert [(tr.sell_order_id, tr.quantity) for tr in await _rows(db, Trade, Trade.id)] == [(sell.id, 5)]
    await _sound(sw)
