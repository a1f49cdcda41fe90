"""The sequencer: one journalled history per book. A failure after the book changed never leaves memory ahead of
the database (the book is rebuilt from the journal), a second process writing the same book cannot interleave
(the journal's (book, seq) is unique; the stale writer replays and retries), and concurrent commands on one book
are serialised with gap-free sequence numbers."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from core.db import UnitOfWork
from tests.trading.conftest import MONDAY_10, ServiceWorld, invariants, service_world
from trading import schemas as ts
from trading import sequencer as sequencer_module
from trading import settlement
from trading.models import JournalEntry
from trading.service import TradingService


def _order(instrument_id: int, account_id: int, side: str, price: str, quantity: int) -> ts.PlaceOrder:
    return ts.PlaceOrder(
        instrument_id=instrument_id,
        account_id=account_id,
        side=side,
        price=price,
        quantity=str(quantity),  # type: ignore[arg-type]
    )


async def _journal_seqs(sw: ServiceWorld) -> list[int]:
    async def work(uow: UnitOfWork) -> list[int]:
        return list((await uow.session.execute(select(JournalEntry.seq).order_by(JournalEntry.id))).scalars())

    return await sw.db.read(work)


async def test_a_failure_after_the_book_changed_rebuilds_the_book_from_the_journal(service_db, monkeypatch) -> None:
    db, clock = service_db
    sw = await service_world(db, clock, mode="continuous", traders=2)
    t = sw.trading
    maker = await t.place_order(sw.traders[0], _order(sw.instrument_id, sw.accounts[0], "sell", "50.00", 10), None)
    before = await t.book_snapshot(sw.instrument_id, MONDAY_10.date())

    real = settlement.deliver

    async def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("settlement failed half way")

    monkeypatch.setattr(settlement, "deliver", broken)
    crossing = _order(sw.instrument_id, sw.accounts[1], "buy", "50.00", 4)
    with pytest.raises(RuntimeError):
        await t.place_order(sw.traders[1], crossing, None)
    # The matcher had filled 4 in memory; the unit of work rolled back, so the book is the journal's again.
    assert await t.book_snapshot(sw.instrument_id, MONDAY_10.date()) == before
    assert await _journal_seqs(sw) == [1]
    monkeypatch.setattr(settlement, "deliver", real)
    filled = await t.place_order(sw.traders[1], crossing, None)
    assert filled.status == "filled"
    assert (await t.get_order(sw.traders[0], maker.id)).remaining_base == 6
    assert await _journal_seqs(sw) == [1, 2]
    assert await invariants(db) == [] and await t.reconcile() == []


async def test_a_second_process_on_the_same_book_catches_up_from_the_journal(service_db) -> None:
    db, clock = service_db
    sw = await service_world(db, clock, mode="continuous", traders=2)
    first = sw.trading
    second = TradingService(db, clock, sw.registry)  # another process: its own books in memory
    await first.place_order(sw.traders[0], _order(sw.instrument_id, sw.accounts[0], "sell", "51.00", 10), None)
    await second.place_order(sw.traders[1], _order(sw.instrument_id, sw.accounts[1], "buy", "49.00", 10), None)
    # `first` holds the book without the second process's bid; it reads the journal's tail before matching, so
    # its order crosses the bid it did not place, under the next sequence number.
    sold = await first.place_order(sw.traders[0], _order(sw.instrument_id, sw.accounts[0], "sell", "49.00", 4), None)
    assert sold.status == "filled" and sold.journal_seq == 3
    assert await _journal_seqs(sw) == [1, 2, 3]
    day = MONDAY_10.date()
    assert await first.book_snapshot(sw.instrument_id, day) == await second.book_snapshot(sw.instrument_id, day)
    assert await invariants(db) == [] and await first.reconcile() == [] and await second.reconcile() == []


async def test_a_stale_writer_loses_on_the_journals_unique_key_and_retries_on_the_replayed_book(service_db) -> None:
    db, clock = service_db
    sw = await service_world(db, clock, mode="continuous", traders=2)
    first = sw.trading
    second = TradingService(db, clock, sw.registry)
    await first.place_order(sw.traders[0], _order(sw.instrument_id, sw.accounts[0], "sell", "51.00", 10), None)
    # Make `first` blind to the journal's tail, as if the second process appended between its read and its write.
    real_read = sequencer_module.read_journal

    async def blind(ses, book_id, *, after=0):  # type: ignore[no-untyped-def]
        return [] if after else await real_read(ses, book_id)

    await second.place_order(sw.traders[1], _order(sw.instrument_id, sw.accounts[1], "buy", "49.00", 10), None)
    sequencer_module.read_journal = blind  # type: ignore[assignment]
    try:
        sold = await first.place_order(
            sw.traders[0], _order(sw.instrument_id, sw.accounts[0], "sell", "49.00", 4), None
        )
    finally:
        sequencer_module.read_journal = real_read
    # Its append of seq 2 hit the unique key; it replayed the whole journal and matched against the real book.
    assert sold.status == "filled" and sold.journal_seq == 3
    assert await _journal_seqs(sw) == [1, 2, 3]
    assert await invariants(db) == [] and await first.reconcile() == []


async def test_concurrent_commands_on_one_book_are_serialised_with_gap_free_sequence_numbers(service_db) -> None:
    db, clock = service_db
    sw = await service_world(db, clock, mode="continuous", traders=2)
    t = sw.trading
    orders = [
        _order(sw.instrument_id, sw.accounts[i % 2], "sell" if i % 2 == 0 else "buy", f"{49 + i % 3}.00", 5 + i)
        for i in range(16)
    ]
    results = await asyncio.gather(*(t.place_order(sw.traders[i % 2], o, None) for i, o in enumerate(orders)))
    assert sorted(r.journal_seq or 0 for r in results) == list(range(1, 17))
    assert await _journal_seqs(sw) == sorted(await _journal_seqs(sw)) == list(range(1, 17))
    assert await invariants(db) == [] and await t.reconcile() == []
