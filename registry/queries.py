"""The look-ups and guards the registry's use cases (and, through the facade, the other contexts) share, inside the
caller's unit of work: a transaction by its request key, an account the caller may see, owns or may name as the
other side, a transaction the caller may see, an instrument, the operator's system accounts and an authority's
allocation account. Each raises the problem the user sees when the thing is missing or not theirs.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import and_, bindparam, exists, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached

from core.cache import CommittedCache
from core.errors import AppError, NotFound
from core.identity import Identity
from core.models import Organisation
from core.prepared import Prepared, plain_row
from registry.domain import checks
from registry.models import Instrument, RegistryAccount, RegistryTransaction


async def by_request_key(ses: AsyncSession, key: str | None) -> RegistryTransaction | None:
    if key is None:
        return None
    return (
        await ses.execute(select(RegistryTransaction).where(RegistryTransaction.request_key == key))
    ).scalar_one_or_none()


async def insert_keyed(
    ses: AsyncSession, tx: RegistryTransaction, *, accounts_as_seen: tuple[RegistryAccount, ...] = ()
) -> bool:
    """INSERT the new transaction unless its request key exists (one statement: INSERT ... ON CONFLICT DO NOTHING
    RETURNING, on SQLite and PostgreSQL alike); True when it was inserted, and `tx` is then in the session.

    With `accounts_as_seen` the row goes in only while each of those accounts still has the status the checks saw
    (an INSERT ... SELECT ... WHERE EXISTS, the same statement): the checks may then have used a remembered copy
    of the accounts (`transfer_accounts(remembered=True)`), and False also means one of them has changed since;
    the caller looks the key up and, finding none, checks again on fresh rows."""
    table = RegistryTransaction.__table__
    params = {f"v_{c.key}": getattr(tx, c.key) for c in table.columns if c.key != "id"}
    seen = list({a.id: a for a in accounts_as_seen}.values())
    for i, acc in enumerate(seen):
        params[f"seen{i}_id"], params[f"seen{i}_status"] = acc.id, acc.status
    stmt = _keyed_insert(ses.get_bind().dialect.name, len(seen), tx.request_key is not None)
    new_id = (await ses.execute(stmt, params)).scalar_one_or_none()
    if new_id is None:
        return False
    tx.id = new_id
    make_transient_to_detached(tx)
    ses.add(tx)  # persistent from here: later changes (the hold's id) are flushed as an UPDATE
    return True


@functools.cache
def _keyed_insert(dialect: str, accounts_seen: int, keyed: bool) -> Any:
    """`insert_keyed`'s statement, built once per dialect and shape (building it per transfer cost more than
    running it): the row's values are the bound parameters `v_<column>`, each account's status as seen
    `seen<i>_id` and `seen<i>_status`."""
    table = RegistryTransaction.__table__
    columns = [c for c in table.columns if c.key != "id"]
    insert_ = pg_insert if dialect == "postgresql" else sqlite_insert
    if accounts_seen:
        still = and_(
            *(
                exists().where(
                    RegistryAccount.id == bindparam(f"seen{i}_id"),
                    RegistryAccount.status == bindparam(f"seen{i}_status"),
                )
                for i in range(accounts_seen)
            )
        )
        row = select(*(bindparam(f"v_{c.key}", type_=c.type).label(c.key) for c in columns))
        stmt = insert_(table).from_select([c.key for c in columns], row.where(still))
    else:
        stmt = insert_(table).values({c.key: bindparam(f"v_{c.key}", type_=c.type) for c in columns})
    if keyed:
        stmt = stmt.on_conflict_do_nothing(index_elements=["request_key"])
    return stmt.returning(table.c.id)


async def visible_account(ses: AsyncSession, who: Identity, account_id: int) -> RegistryAccount:
    acc = await ses.get(RegistryAccount, account_id)
    if (
        acc is None
        or acc.type not in checks.USER_ACCOUNT_TYPES
        or not (who.reads_all() or acc.organisation_id == who.organisation_id)
    ):
        raise AppError("unknown-account", "No account with this id is visible to you.", field="account_id")
    return acc


def visible_account_exists(account_id: Any, organisation_id: Any | None) -> Any:
    """`visible_account`'s test as an SQL condition, for a read that filters on it in its own statement (a
    listing of the account's rows) instead of reading the account first; when that read finds nothing,
    `visible_account` tells an invisible account from an empty one. `organisation_id` is the caller's (None for
    a caller who reads all); either argument may be a bound parameter of a statement built once."""
    q = select(RegistryAccount.id).where(
        RegistryAccount.id == account_id,
        RegistryAccount.type.in_(checks.USER_ACCOUNT_TYPES),  # type: ignore[attr-defined]
    )
    if organisation_id is not None:
        q = q.where(RegistryAccount.organisation_id == organisation_id)
    return exists(q)


def reader_organisation(who: Identity) -> int | None:
    """The organisation whose accounts `who` may read, None for a caller who reads all (`visible_account_exists`)."""
    return None if who.reads_all() else who.organisation_id


async def own_account(ses: AsyncSession, who: Identity, account_id: int, field: str) -> RegistryAccount:
    return _mine(await ses.get(RegistryAccount, account_id), who, field)


def _mine(acc: Any, who: Identity, field: str) -> Any:
    if acc is None or acc.type not in checks.USER_ACCOUNT_TYPES or acc.organisation_id != who.organisation_id:
        raise AppError("unknown-account", "No account with this id is yours.", field=field)
    return acc


_ACCOUNT_TABLE = RegistryAccount.__table__  # type: ignore[attr-defined]
AccountRow = plain_row(_ACCOUNT_TABLE, "AccountRow")
_ACCOUNT_BY_ID = Prepared(select(*_ACCOUNT_TABLE.c).where(_ACCOUNT_TABLE.c.id == bindparam("account_id")))


async def own_account_row(ses: AsyncSession, who: Identity, account_id: int, field: str) -> RegistryAccount:
    """`own_account` for a path that only reads it (the market's order path): the row as a plain object
    (`core.prepared.plain_row`), read with one prepared statement instead of the ORM's identity-map load."""
    rows = await _ACCOUNT_BY_ID.execute(ses, {"account_id": account_id})
    return _mine(AccountRow(**rows[0]._asdict()) if rows else None, who, field)


async def any_user_account(ses: AsyncSession, account_id: int, field: str) -> RegistryAccount:
    acc = await ses.get(RegistryAccount, account_id)
    if acc is None or acc.type not in checks.USER_ACCOUNT_TYPES:
        raise AppError("unknown-account", "No such account.", field=field)
    return acc


async def visible_tx(ses: AsyncSession, who: Identity, tx_id: int) -> RegistryTransaction:
    tx = await ses.get(RegistryTransaction, tx_id)
    if tx is None:
        raise NotFound("transaction")
    if who.reads_all() or tx.initiator_organisation_id == who.organisation_id:
        return tx
    orgs = set()
    for acc_id in (tx.from_account_id, tx.to_account_id):
        if acc_id is not None and (acc := await ses.get(RegistryAccount, acc_id)) is not None:
            orgs.add(acc.organisation_id)
    if who.organisation_id not in orgs:
        raise NotFound("transaction")
    return tx


# Instruments never change once issued (a unit class is its attributes): read once per process.
INSTRUMENTS: CommittedCache[int, Instrument] = CommittedCache("registry.instruments")
# An account as this process last read it: a guess at its status that the write relying on it re-checks.
ACCOUNTS: CommittedCache[int, RegistryAccount] = CommittedCache("registry.accounts")


async def instrument(ses: AsyncSession, instrument_id: int) -> Instrument:
    """The instrument (a detached, read-only copy from the process cache after its first committed read)."""
    cached = INSTRUMENTS.get(ses, instrument_id)
    if cached is not None:
        return cached
    inst = await ses.get(Instrument, instrument_id)
    if inst is None:
        raise NotFound("instrument", field="instrument_id")
    INSTRUMENTS.remember(ses, instrument_id, inst)
    return inst


async def transfer_accounts(
    ses: AsyncSession, who: Identity, from_id: int, to_id: int, *, remembered: bool = False
) -> tuple[RegistryAccount, RegistryAccount]:
    """The caller's own source account and any user account as the destination, read in one statement; each
    missing or foreign one answers as `own_account` and `any_user_account` do.

    With `remembered`, the copies this process read last (ACCOUNTS) stand in for the read when both are there:
    owner and type never change, but the status can, so a caller that takes them must make its write conditional
    on the status it saw (`insert_keyed(accounts_as_seen=...)`) and check again on fresh rows when that fails."""
    rows: dict[int, RegistryAccount] = {}
    if remembered:
        for account_id in (from_id, to_id):
            if (acc := ACCOUNTS.get(ses, account_id)) is not None:
                rows[account_id] = acc
    if len(rows) < len({from_id, to_id}):
        rows = {
            a.id: a
            for a in (
                await ses.execute(select(RegistryAccount).where(RegistryAccount.id.in_([from_id, to_id])))  # type: ignore[union-attr]
            ).scalars()
        }
        for account_id, acc in rows.items():
            ACCOUNTS.remember(ses, account_id, _copy(acc))
    source = rows.get(from_id)
    if source is None or source.type not in checks.USER_ACCOUNT_TYPES or source.organisation_id != who.organisation_id:
        raise AppError("unknown-account", "No account with this id is yours.", field="from_account_id")
    dest = rows.get(to_id)
    if dest is None or dest.type not in checks.USER_ACCOUNT_TYPES:
        raise AppError("unknown-account", "No such account.", field="to_account_id")
    return source, dest


def forget_accounts(ses: AsyncSession, *account_ids: int) -> None:
    """Drop the remembered copies of these accounts (their status moved under a write that relied on them)."""
    ACCOUNTS.forget(ses, *account_ids)


def _copy(acc: RegistryAccount) -> RegistryAccount:
    """A detached copy, so the remembered account is never the row of a live session."""
    return RegistryAccount(**{c.key: getattr(acc, c.key) for c in RegistryAccount.__table__.columns})


async def system_account(ses: AsyncSession, type_: str) -> RegistryAccount:
    acc = (
        await ses.execute(
            select(RegistryAccount)
            .join(Organisation, Organisation.id == RegistryAccount.organisation_id)
            .where(Organisation.kind == "system", RegistryAccount.type == type_)
        )
    ).scalar_one_or_none()
    if acc is None:
        raise AssertionError("registry not bootstrapped: run `greenrights db upgrade`")
    return acc


async def allocation_account(ses: AsyncSession, who: Identity) -> RegistryAccount:
    acc = (
        (
            await ses.execute(
                select(RegistryAccount)
                .where(
                    RegistryAccount.organisation_id == who.organisation_id,
                    RegistryAccount.type == checks.ALLOCATION,
                )
                .order_by(RegistryAccount.id)
            )
        )
        .scalars()
        .first()
    )
    if acc is None:
        raise AppError(
            "unknown-account",
            "Open an allocation account first (openAccount with type 'allocation').",
            field="from_account_id",
        )
    return acc
