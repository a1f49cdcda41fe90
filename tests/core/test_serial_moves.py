"""`core.serials.move_all`, the market batches' serial moves at their end: replayed in memory over the accounts'
blocks and written as a difference, they must leave exactly the blocks that `move_serials`, one move at a time in
SQL, leaves (the same serial ranges per account), from fragmented holdings, with splits, merges, whole blocks
handed over and blocks coming back to an account that gave them."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from sqlalchemy import insert, select

from core import ledger, serials
from core.db import Database, UnitOfWork
from core.models import SerialBlock

ACCOUNTS = 5


async def _world(db: Database, seed: int) -> tuple[list[int], int, dict[int, int]]:
    """A serialised asset, five holding accounts, each with a few blocks of serials (gaps between them); the
    accounts, the asset and each account's units."""
    rng = random.Random(seed)

    async def work(uow: UnitOfWork) -> tuple[list[int], int, dict[int, int]]:
        asset = await ledger.ensure_asset(uow.session, f"S{seed}", scale=0, serialised=True)
        ids = []
        for i in range(ACCOUNTS):
            acc = await ledger.ensure_account(
                uow.session, asset_id=asset.id or 0, owner_kind="t", owner_id=i, role="holding"
            )
            ids.append(acc.id or 0)
        held = dict.fromkeys(ids, 0)
        at = 0
        rows = []
        for _ in range(4 * ACCOUNTS):
            at += rng.choice([0, 0, 1, 5])  # mostly touching blocks of different holders, some gaps
            n = rng.randint(1, 30)
            owner = rng.choice(ids)
            rows.append(
                {
                    "ledger_account_id": owner,
                    "asset_id": asset.id,
                    "serial_start": at,
                    "serial_end": at + n,
                    "quantity": n,
                }
            )
            held[owner] += n
            at += n
        await uow.session.execute(insert(SerialBlock), rows)
        return ids, asset.id or 0, held

    return await db.run(work)


def _moves(rng: random.Random, ids: list[int], asset_id: int, held: dict[int, int], count: int) -> list[serials.Move]:
    held = dict(held)
    out = []
    for _ in range(count):
        debit = rng.choice([i for i in ids if held[i] > 0])
        credit = rng.choice([i for i in ids if i != debit])
        amount = rng.choice([1, rng.randint(1, held[debit]), held[debit]])  # one serial, some, or everything
        held[debit] -= amount
        held[credit] += amount
        out.append(serials.Move(asset_id, debit, credit, amount, "holding"))
    return out


async def _after(db: Database, apply: Any) -> list[tuple[int, int, int]]:
    """The blocks (account, start, end) after `apply(session)`, in a transaction rolled back afterwards."""
    async with db.sessions() as ses:
        await ses.begin()
        await apply(ses)
        rows = (
            await ses.execute(
                select(SerialBlock.ledger_account_id, SerialBlock.serial_start, SerialBlock.serial_end).order_by(
                    SerialBlock.ledger_account_id, SerialBlock.serial_start
                )
            )
        ).all()
        await ses.rollback()
    return [tuple(r) for r in rows]


@pytest.mark.parametrize("seed", range(12))
async def test_moves_replayed_in_memory_leave_the_blocks_of_moves_made_one_by_one(
    migrated_db: Database, seed: int
) -> None:
    rng = random.Random(1000 + seed)
    ids, asset_id, held = await _world(migrated_db, seed)
    moves = _moves(rng, ids, asset_id, held, count=rng.choice([1, 5, 40]))

    async def one_by_one(ses: Any) -> None:
        for m in moves:
            await serials.move_serials(ses, m.asset_id, m.debit_id, m.credit_id, m.amount, serialised=True,
                                       debit_role=m.debit_role)  # fmt: skip

    async def in_memory(ses: Any) -> None:
        await serials.move_all(ses, moves)

    expected = await _after(migrated_db, one_by_one)
    assert await _after(migrated_db, in_memory) == expected
    # Every account's blocks still add up to its units, none overlap.
    totals = dict.fromkeys(ids, 0)
    for m in moves:
        totals[m.debit_id] -= m.amount
        totals[m.credit_id] += m.amount
    for account_id in ids:
        mine = [(s, e) for a, s, e in expected if a == account_id]
        assert sum(e - s for s, e in mine) == held[account_id] + totals[account_id]
    spans = sorted((s, e) for _, s, e in expected)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


async def test_past_the_bound_the_moves_go_one_by_one(migrated_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    ids, asset_id, held = await _world(migrated_db, 99)
    moves = _moves(random.Random(7), ids, asset_id, held, count=10)
    monkeypatch.setattr(serials, "MOVE_ALL_MAX_BLOCKS", 3)
    sent: list[int] = []
    real = serials.move_serials

    async def counting(*args: Any, **kwargs: Any) -> None:
        sent.append(1)
        await real(*args, **kwargs)

    monkeypatch.setattr(serials, "move_serials", counting)

    async def in_memory(ses: Any) -> None:
        await serials.move_all(ses, moves)

    await _after(migrated_db, in_memory)
    assert len(sent) == len(moves)
