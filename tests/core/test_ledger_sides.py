"""Both sides of a transfer change together or not at all (core/ledger.py): on SQLite one conditional UPDATE of the
two rows (`_BOTH_SIDES`), on PostgreSQL two ordered ones. When the debit side refuses (insufficient) or only the
credit side refuses (its balance would pass 64 bits), the refusal is the right problem and no balance moved, and
the unit of work may go on (a later transfer in it still posts). Holds posted and voided move each side once.
Each also with the balances kept in memory for the unit of work (`core.balances`, the market's batches): the same
refusals with the same figures, and the same balances once written."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError

from core import balances, ledger
from core.db import Database, UnitOfWork
from core.errors import AppError, Conflict
from core.models import LedgerAccount, LedgerTransfer
from core.prepared import savepoint
from core.quantity import INT64_MAX

NOW = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)


@pytest.fixture
def db(migrated_db: Database) -> Database:
    return migrated_db


@pytest.fixture(params=[False, True], ids=["rows", "in-memory"])
def deferred(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def _run(db: Database, deferred: bool, work):  # type: ignore[no-untyped-def]
    """`work` as one unit of work, its balances in memory (and written at its end) when `deferred`."""

    async def unit(uow: UnitOfWork):  # type: ignore[no-untyped-def]
        if deferred:
            assert await balances.defer(uow.session)
        result = await work(uow)
        await balances.flush(uow.session)
        return result

    return db.run(unit)


async def _accounts(uow: UnitOfWork) -> dict[str, int]:
    asset = await ledger.ensure_asset(uow.session, "T", scale=0, serialised=False)
    out = {}
    for name, role in (
        ("issuer", ledger.ROLE_ISSUANCE),
        ("issuer2", ledger.ROLE_ISSUANCE),
        ("a", "holding"),
        ("b", "holding"),
        ("big", "holding"),
    ):
        acc = await ledger.ensure_account(
            uow.session, asset_id=asset.id or 0, owner_kind="t", owner_id=len(out), role=role
        )
        out[name] = acc.id or 0
    out["asset"] = asset.id or 0
    return out


async def _move(
    uow: UnitOfWork, ids: dict[str, int], cid: str, src: str, dst: str, n: int, pending: bool = False
) -> int:
    result = await ledger.create_transfer(
        uow.session,
        client_id=cid,
        debit_account_id=ids[src],
        credit_account_id=ids[dst],
        asset_id=ids["asset"],
        amount=n,
        code="t",
        now=NOW,
        pending=pending,
    )
    return result.id


async def _balances(db: Database, ids: dict[str, int]) -> dict[str, tuple[int, int, int, int]]:
    async def read(uow: UnitOfWork) -> dict[str, tuple[int, int, int, int]]:
        rows = (await uow.session.execute(select(LedgerAccount))).scalars()
        by_id = {r.id: (r.debits_posted, r.debits_pending, r.credits_posted, r.credits_pending) for r in rows}
        return {name: by_id[i] for name, i in ids.items() if name != "asset"}

    return await db.read(read)


async def _invariants(db: Database) -> list[str]:
    async def check(uow: UnitOfWork) -> list[str]:
        return await ledger.check_invariants(uow.session)

    return await db.read(check)


async def test_a_refused_side_moves_neither_and_the_unit_of_work_goes_on(db: Database, deferred: bool) -> None:
    ids = await db.run(_accounts)

    async def fund(uow: UnitOfWork) -> None:
        await _move(uow, ids, "f1", "issuer", "a", 10)
        await _move(uow, ids, "f2", "issuer2", "big", INT64_MAX - 5)

    await db.run(fund)
    before = await _balances(db, ids)

    async def refused_then_one_that_passes(uow: UnitOfWork) -> list[str]:
        slugs = []
        for cid, dst, n in (("x1", "b", 11), ("x2", "big", 6)):  # debit refuses; then only the credit side refuses
            try:
                await _move(uow, ids, cid, "a", dst, n)
            except AppError as exc:
                slugs.append(exc.problem.slug)
        await _move(uow, ids, "x3", "a", "b", 4)
        return slugs

    assert await _run(db, deferred, refused_then_one_that_passes) == ["insufficient-available", "amount-overflow"]
    after = await _balances(db, ids)
    assert after["a"] == (before["a"][0] + 4, 0, 10, 0)
    assert after["b"] == (0, 0, 4, 0)
    assert after["big"] == before["big"]
    assert after["issuer"] == before["issuer"]


async def test_a_hold_moves_pending_then_posts_part_and_releases_the_rest(db: Database, deferred: bool) -> None:
    ids = await db.run(_accounts)

    async def work(uow: UnitOfWork) -> None:
        await _move(uow, ids, "f", "issuer", "a", 10)
        hold = await _move(uow, ids, "h", "a", "b", 7, pending=True)
        with pytest.raises(Conflict) as refused:  # 3 available, 7 held
            await _move(uow, ids, "y", "a", "b", 4)
        assert refused.value.extra == {"available": 3, "requested": 4}
        await ledger.resolve_pending(uow.session, client_id="h:r", pending_id=hold, now=NOW, post=True, amount=5)
        second = await _move(uow, ids, "h2", "a", "b", 5, pending=True)
        await ledger.resolve_pending(uow.session, client_id="h2:r", pending_id=second, now=NOW, post=False)

    await _run(db, deferred, work)
    after = await _balances(db, ids)
    assert after["a"] == (5, 0, 10, 0)
    assert after["b"] == (0, 0, 5, 0)
    assert await _invariants(db) == []


async def test_in_memory_balances_add_to_the_row_and_a_restored_mark_forgets_what_came_after(db: Database) -> None:
    """The write adds what changed (a statement of another path in the same transaction is not lost), and a
    command rolled back to its mark (a batch's savepoint) leaves no trace in the figures written."""
    ids = await db.run(_accounts)
    acc = LedgerAccount.__table__.c  # type: ignore[attr-defined]

    async def work(uow: UnitOfWork) -> None:
        assert await balances.defer(uow.session)
        held = balances.deferred(uow.session)
        assert held is not None
        await _move(uow, ids, "f", "issuer", "a", 10)
        mark = held.mark()
        with pytest.raises(RuntimeError):  # a batch's command: its savepoint rolls its rows back, `restore` its figures
            async with savepoint(uow.session):
                await _move(uow, ids, "g", "a", "b", 6)
                await _move(uow, ids, "g2", "issuer", "big", 1)  # an account first read after the mark
                assert held.available(ids["a"]) == 4
                raise RuntimeError("refused later")
        held.restore(mark)
        assert held.available(ids["a"]) == 10 and held.available(ids["big"]) is None
        # Another path moves a balance row in SQL meanwhile (it is not lost when the figures are written).
        await uow.session.execute(
            LedgerAccount.__table__.update()  # type: ignore[attr-defined]
            .where(acc.id == ids["b"])
            .values(credits_posted=acc.credits_posted + 2)
        )
        await _move(uow, ids, "h", "a", "b", 3)
        await balances.flush(uow.session)
        await balances.flush(uow.session)  # nothing more to write: written once

    await db.run(work)
    after = await _balances(db, ids)
    assert after["a"] == (3, 0, 10, 0)
    assert after["b"] == (0, 0, 5, 0)  # 3 moved here plus the 2 of the other statement
    assert after["big"] == (0, 0, 0, 0)

    # The other statement's 2 credits have no transfer behind them: those are the only findings.
    assert await _invariants(db) == [
        f"asset {ids['asset']}: debits 13/0 != credits 15/0",
        f"account {ids['b']}: balances [0, 5, 0, 0] != sum of transfers [0, 3, 0, 0]",
    ]


async def test_a_hold_made_in_the_unit_of_work_is_resolved_without_reading_it_and_only_once(db: Database) -> None:
    """With the balances in memory, a hold the unit of work created is resolved from what it remembered (no SELECT
    of the hold); a second resolution is refused from the rows it staged; a hold rolled back with its command is
    forgotten, and one made before the unit of work is read."""
    ids = await db.run(_accounts)
    reads: list[str] = []

    def on_statement(_conn, _cursor, statement: str, *_args) -> None:  # type: ignore[no-untyped-def]
        if statement.startswith("SELECT") and "FROM ledger_transfer" in statement:
            reads.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", on_statement)
    try:

        async def earlier(uow: UnitOfWork) -> int:
            await _move(uow, ids, "f", "issuer", "a", 10)
            # A resolution reads the asset's `serialised`, which the process then remembers (a committed read).
            first = await _move(uow, ids, "first", "a", "b", 1, pending=True)
            await ledger.resolve_pending(uow.session, client_id="first:r", pending_id=first, now=NOW, post=False)
            return await _move(uow, ids, "old", "a", "b", 1, pending=True)

        old_hold = await db.run(earlier)

        async def work(uow: UnitOfWork) -> list[str]:
            assert await balances.defer(uow.session)
            held = balances.deferred(uow.session)
            assert held is not None
            slugs = []
            hold = await _move(uow, ids, "h", "a", "b", 4, pending=True)
            reads.clear()
            await ledger.resolve_pending(uow.session, client_id="h:r", pending_id=hold, now=NOW, post=True, amount=3)
            assert reads == []  # remembered
            reads.clear()
            with pytest.raises(Conflict) as again:
                await ledger.resolve_pending(uow.session, client_id="h:r2", pending_id=hold, now=NOW, post=False)
            slugs.append(again.value.problem.slug)
            assert reads == []  # refused from what was staged: the row is not in the table yet
            mark = held.mark()
            with pytest.raises(RuntimeError):
                async with savepoint(uow.session):
                    gone = await _move(uow, ids, "g", "a", "b", 2, pending=True)
                    raise RuntimeError("refused later")
            held.restore(mark)
            assert gone not in held.holds
            reads.clear()
            await ledger.resolve_pending(uow.session, client_id="old:r", pending_id=old_hold, now=NOW, post=False)
            assert len(reads) == 1  # made before this unit of work: read
            await balances.flush(uow.session)
            return slugs

        assert await db.run(work) == ["pending-already-resolved"]
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", on_statement)
    after = await _balances(db, ids)
    assert after["a"] == (3, 0, 10, 0)
    assert after["b"] == (0, 0, 3, 0)

    assert await _invariants(db) == []


async def test_with_rows_staged_the_foreign_keys_are_still_checked_at_the_commit(db: Database) -> None:
    """Staged transfer rows are not in the table until the batch writes them, so on SQLite the unit of work checks its
    foreign keys at its commit (`PRAGMA defer_foreign_keys`; PostgreSQL checks them at once): a row naming a transfer
    that is never written still fails, and nothing of the unit of work stays."""
    ids = await db.run(_accounts)
    transfers = LedgerTransfer.__table__  # type: ignore[attr-defined]

    async def work(uow: UnitOfWork) -> None:
        assert await balances.defer(uow.session)
        await _move(uow, ids, "f", "issuer", "a", 10)
        # A resolution of a hold that does not exist, written past the ledger's checks.
        await uow.session.execute(
            transfers.insert().values(
                client_id="ghost:r", debit_account_id=ids["a"], credit_account_id=ids["b"], asset_id=ids["asset"],
                amount=0, code="t", kind="void_pending", resolves_id=10**9, created_at=NOW,
            )
        )  # fmt: skip
        await balances.flush(uow.session)

    with pytest.raises(IntegrityError):
        await db.run(work)
    assert (await _balances(db, ids))["a"] == (0, 0, 0, 0)


async def test_balances_in_memory_keep_their_rows_from_other_writers_until_the_commit(db: Database) -> None:
    """While a unit of work holds an account's figures in memory, another that would move the account waits for its
    commit (PostgreSQL: the rows were read FOR UPDATE; SQLite: one writer) and then sees what it wrote: a sale of 5
    of the 10 units, 8 of which the first holds, is refused instead of passing and breaking the first's flush."""
    ids = await db.run(_accounts)

    async def fund(uow: UnitOfWork) -> None:
        await _move(uow, ids, "f", "issuer", "a", 10)

    await db.run(fund)
    loaded, go = asyncio.Event(), asyncio.Event()

    async def batch(uow: UnitOfWork) -> None:
        assert await balances.defer(uow.session)
        await _move(uow, ids, "h", "a", "b", 8, pending=True)
        loaded.set()
        await asyncio.wait_for(go.wait(), 10)
        await balances.flush(uow.session)

    async def other(uow: UnitOfWork) -> int:
        return await _move(uow, ids, "o", "a", "b", 5)

    first = asyncio.create_task(db.run(batch))
    await asyncio.wait_for(loaded.wait(), 10)
    second = asyncio.create_task(db.run(other))
    await asyncio.sleep(0.5)
    assert not second.done()  # waiting for the first's rows
    go.set()
    await first
    with pytest.raises(Conflict) as refused:
        await second
    assert refused.value.problem.slug == "insufficient-available"
    assert (await _balances(db, ids))["a"] == (0, 8, 10, 0)
    assert await _invariants(db) == []
