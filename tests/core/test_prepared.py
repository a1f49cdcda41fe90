"""Prepared statements (core/prepared.py) behave as `session.execute` would: inside the session's transaction and
its savepoints, with SQLAlchemy's errors, the types' conversions, constant column defaults, and every statement
seen by `before_cursor_execute`. On SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import bindparam, event, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError

from core import prepared
from core.db import PG_PREPARED_MAX, Database, UnitOfWork
from core.models import LedgerAsset, LedgerTransfer
from core.prepared import Prepared, reserve_ids

NOW = dt.datetime(2026, 3, 2, 2, 0, 0, 123456, tzinfo=dt.UTC)
_ASSET = LedgerAsset.__table__  # type: ignore[attr-defined]
_INSERT_ASSET = Prepared(insert(_ASSET).returning(_ASSET.c.id, _ASSET.c.serialised))
_BUMP = Prepared(
    update(_ASSET).where(_ASSET.c.code == bindparam("code")).values(next_serial=_ASSET.c.next_serial + bindparam("n"))
)
_BY_CODE = Prepared(select(_ASSET.c.code, _ASSET.c.next_serial).where(_ASSET.c.code == bindparam("code")))


@pytest.fixture
def db(migrated_db: Database) -> Database:
    return migrated_db


async def _serial(db: Database, code: str) -> int | None:
    async def read(uow: UnitOfWork) -> int | None:
        rows = await _BY_CODE.execute(uow.session, {"code": code})
        return rows[0].next_serial if rows else None

    return await db.read(read)


async def test_rows_defaults_and_rowcount(db: Database) -> None:
    async def work(uow: UnitOfWork) -> tuple[Any, int, int, Any]:
        # `scale`, `serialised` and `next_serial` left out: their column defaults (0, False, 0) are bound.
        row = await _INSERT_ASSET.one(uow.session, {"code": "A"})
        bumped = await _BUMP.changed(uow.session, {"code": "A", "n": 7})
        missed = await _BUMP.changed(uow.session, {"code": "nobody", "n": 7})
        return row, bumped, missed, await _BY_CODE.one(uow.session, {"code": "A"})

    row, bumped, missed, found = await db.run(work)
    assert row.id > 0 and row.serialised is False  # a Boolean read back as bool, not SQLite's 0
    assert (bumped, missed) == (1, 0)
    assert (found.code, found.next_serial) == ("A", 7)
    assert await _serial(db, "A") == 7


async def test_a_savepoint_rollback_undoes_prepared_writes(db: Database) -> None:
    """The ORM sets a savepoint only when the nested transaction first asks for its connection: a nested block
    whose statements are all prepared must still be rolled back to its own savepoint."""

    async def work(uow: UnitOfWork) -> None:
        ses = uow.session
        await _INSERT_ASSET.execute(ses, {"code": "B"})
        with pytest.raises(RuntimeError):
            async with ses.begin_nested():
                await _BUMP.changed(ses, {"code": "B", "n": 5})
                raise RuntimeError("refused")
        async with ses.begin_nested():
            await _BUMP.changed(ses, {"code": "B", "n": 2})

    await db.run(work)
    assert await _serial(db, "B") == 2


async def test_errors_are_sqlalchemy_errors_and_roll_back(db: Database) -> None:
    async def work(uow: UnitOfWork) -> None:
        await _INSERT_ASSET.execute(uow.session, {"code": "C"})
        await _BUMP.changed(uow.session, {"code": "C", "n": 1})
        await _INSERT_ASSET.execute(uow.session, {"code": "C"})  # the code is unique

    with pytest.raises(IntegrityError):
        await db.run(work)
    assert await _serial(db, "C") is None


async def test_datetimes_round_trip_and_every_statement_is_seen(db: Database) -> None:
    seen: list[tuple[str, bool]] = []

    def on_statement(_conn: object, _cursor: object, sql: str, _params: object, _ctx: object, many: bool) -> None:
        seen.append((sql.split(maxsplit=1)[0], many))

    event.listen(db.engine.sync_engine, "before_cursor_execute", on_statement)
    transfers = LedgerTransfer.__table__  # type: ignore[attr-defined]

    async def work(uow: UnitOfWork) -> None:
        await _INSERT_ASSET.execute(uow.session, {"code": "D"})
        await _BUMP.many(uow.session, [{"code": "D", "n": 1}, {"code": "D", "n": 2}])

    try:
        await db.run(work)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", on_statement)
    assert [s for s in seen if s[0] in ("INSERT", "UPDATE")] == [("INSERT", False), ("UPDATE", True)]
    assert await _serial(db, "D") == 3
    # A DateTime column written through a prepared statement reads back, through the ORM, as the same instant.
    when = Prepared(select(transfers.c.created_at).where(transfers.c.client_id == bindparam("cid")))

    async def transfer(uow: UnitOfWork) -> tuple[dt.datetime, dt.datetime]:
        from core import ledger

        asset = await ledger.ensure_asset(uow.session, "E", scale=0, serialised=False)
        a = await ledger.ensure_account(
            uow.session, asset_id=asset.id or 0, owner_kind="t", owner_id=1, role=ledger.ROLE_ISSUANCE
        )
        b = await ledger.ensure_account(uow.session, asset_id=asset.id or 0, owner_kind="t", owner_id=2, role="h")
        await ledger.create_transfer(
            uow.session,
            client_id="t1",
            debit_account_id=a.id or 0,
            credit_account_id=b.id or 0,
            asset_id=asset.id or 0,
            amount=5,
            code="test",
            now=NOW,
        )
        orm = (await uow.session.execute(select(LedgerTransfer).where(LedgerTransfer.client_id == "t1"))).scalar_one()
        return orm.created_at, await when.scalar(uow.session, {"cid": "t1"})

    orm_at, prepared_at = await db.run(transfer)
    assert orm_at.replace(tzinfo=dt.UTC) == NOW
    assert prepared_at.replace(tzinfo=dt.UTC) == NOW


@pytest.mark.parametrize("how", ["terminated by the server", "closed under the session"])
async def test_a_lost_connection_is_reported_as_one(db: Database, how: str) -> None:
    """A statement on a connection that is gone raises a `DBAPIError` that `core.db` takes for a lost connection
    (503, nothing committed), as `session.execute` would: the server's termination carries SQLSTATE 57P01, a closed
    socket none, so the prepared path must say `connection_invalidated` itself."""
    if db.sqlite:
        pytest.skip("SQLite has no server connection to lose")
    from core.db import is_connection_loss

    caught: list[BaseException] = []

    async def work(uow: UnitOfWork) -> None:
        await _INSERT_ASSET.execute(uow.session, {"code": "F"})
        if how == "terminated by the server":
            pid = await Prepared(select(func.pg_backend_pid())).scalar(uow.session)
            async with db.engine.connect() as other:
                await other.execute(select(func.pg_terminate_backend(pid)))
        else:
            driver = (await uow.session.connection()).sync_connection.connection.driver_connection  # type: ignore[union-attr]
            driver.pgconn.finish()
        try:
            await _BUMP.changed(uow.session, {"code": "F", "n": 1})
        except DBAPIError as exc:
            caught.append(exc)
            raise

    with pytest.raises(Exception):  # noqa: B017 - what reaches the caller is core.db's answer; the raw error is below
        await db.run(work)
    assert caught and is_connection_loss(caught[0])
    assert await _serial(db, "F") is None


async def test_ids_taken_ahead_never_overlap_and_rows_take_them(db: Database) -> None:
    """`reserve_ids`: two reservations in one transaction are disjoint, a row written with a reserved id keeps it,
    an id left unused is a gap, and the next transaction reserves after everything written."""

    async def work(uow: UnitOfWork) -> tuple[list[int], list[int]]:
        first = await reserve_ids(uow.session, _ASSET, 3)
        second = await reserve_ids(uow.session, _ASSET, 2)
        for n, asset_id in enumerate([*first[:2], second[1]]):
            await _INSERT_ASSET.execute(uow.session, {"id": asset_id, "code": f"R{n}"})
        return first, second

    first, second = await db.run(work)
    assert len(set(first + second)) == 5 and first == sorted(first) and second == sorted(second)
    assert await reserve_ids_in(db, 0) == []

    async def codes(uow: UnitOfWork) -> dict[int, str]:
        rows = await uow.session.execute(select(_ASSET.c.id, _ASSET.c.code).where(_ASSET.c.code.like("R%")))
        return {row[0]: row[1] for row in rows}

    assert await db.read(codes) == {first[0]: "R0", first[1]: "R1", second[1]: "R2"}
    later = await reserve_ids_in(db, 2)
    assert min(later) > second[1]


async def reserve_ids_in(db: Database, count: int) -> list[int]:
    async def work(uow: UnitOfWork) -> list[int]:
        return await reserve_ids(uow.session, _ASSET, count)

    return await db.run(work)


async def test_many_inserts_go_in_chunks_of_the_parameter_limit(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """`many` of an INSERT: on PostgreSQL the rows go in multi-row statements (`_Rows`) of powers of two, the
    largest within the parameter limit; on SQLite one executemany. Either way every row is written with its values
    and the columns' constant defaults, the count is the rows written, a conflict skipped by ON CONFLICT DO NOTHING
    is not counted, and a unique violation raises and leaves nothing."""
    monkeypatch.setattr(prepared, "_MAX_PARAMETERS", 8)  # the asset's 4 columns: two rows a statement
    statement = Prepared(insert(_ASSET))
    skipping = Prepared(pg_insert(_ASSET).on_conflict_do_nothing(index_elements=["code"]))
    if db.engine.dialect.name == "sqlite":
        skipping = Prepared(sqlite_insert(_ASSET).on_conflict_do_nothing(index_elements=["code"]))
    seen: list[tuple[str, bool]] = []

    def on_statement(_conn: object, _cursor: object, sql: str, _params: object, _ctx: object, many: bool) -> None:
        if sql.startswith("INSERT"):
            seen.append((sql, many))

    event.listen(db.engine.sync_engine, "before_cursor_execute", on_statement)
    rows = [{"code": f"M{n}", "scale": n % 4, "next_serial": 10 * n} for n in range(5)]

    async def work(uow: UnitOfWork) -> tuple[int, int]:
        written = await statement.many(uow.session, rows)
        again = await skipping.many(uow.session, [{"code": "M1", "scale": 3}, {"code": "M9", "scale": 1}])
        return written, again

    try:
        assert await db.run(work) == (5, 1)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", on_statement)
    if db.engine.dialect.name == "postgresql":
        # 5 rows in statements of 2, 2 and 1; then the 2 rows of the skipping insert in one.
        assert [sql.count("), (") + 1 for sql, _ in seen] == [2, 2, 1, 2]
        assert all(not many and "RETURNING" not in sql for sql, many in seen)
    else:
        assert [many for _, many in seen] == [True, True]

    async def assets(uow: UnitOfWork) -> list[tuple[Any, ...]]:
        found = await uow.session.execute(
            select(_ASSET.c.code, _ASSET.c.scale, _ASSET.c.serialised, _ASSET.c.next_serial)
            .where(_ASSET.c.code.like("M%"))
            .order_by(_ASSET.c.code)
        )
        return [tuple(r) for r in found]

    expected = [(f"M{n}", n % 4, False, 10 * n) for n in range(5)] + [("M9", 1, False, 0)]
    assert await db.read(assets) == expected

    async def duplicate(uow: UnitOfWork) -> None:
        await statement.many(uow.session, [{"code": "N1"}, {"code": "N2"}, {"code": "M3"}])

    with pytest.raises(IntegrityError):
        await db.run(duplicate)
    assert await db.read(assets) == expected
    assert await _serial(db, "N1") is None


@pytest.mark.parametrize(
    ("n", "most", "sizes"),
    [
        (0, 4, []),
        (1, 8, [1]),
        (5, 2, [2, 2, 1]),
        (100, 64, [64, 32, 4]),
        (192, 2048, [128, 64]),
        (4096, 2048, [2048] * 2),
    ],
)
def test_rows_go_in_statements_of_powers_of_two(n: int, most: int, sizes: list[int]) -> None:
    """A table's multi-row INSERTs come in a dozen sizes at most, so psycopg can prepare the ones used often."""
    assert prepared._sizes(n, most) == sizes


async def test_postgresql_connections_keep_room_for_prepared_statements(db: Database) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("psycopg's cache of prepared statements")

    async def work(uow: UnitOfWork) -> int:
        conn = await uow.session.connection()
        driver = conn.sync_connection.connection.driver_connection  # type: ignore[union-attr]
        return int(driver.prepared_max)

    assert await db.read(work) == PG_PREPARED_MAX > 100
