"""The one double-entry ledger, with TigerBeetle's semantics on SQL.

A transfer moves `amount` base units of one asset from a debit account to a credit account. Holder accounts
carry "debits must not exceed credits", so their available balance (credits posted − debits posted − debits
pending) never goes below zero; issuance accounts carry no flag and are the only sources. Balances change by
conditional UPDATEs (`... WHERE debits_posted + debits_pending <= credits_posted - :amount`), never by
read-modify-write in Python. On PostgreSQL the two rows of a transfer are touched in ascending id order so that
crossed transfers queue instead of deadlocking; SQLite, one writer at a time, changes both in one statement. A
database CHECK repeats the balance rule as a last line.

On SQLite a batch of order commands may keep the balances it moves in memory and write them once before its commit
(`core/balances.py`): the same checks and refusals, one UPDATE per account; the holds it makes are remembered, so
that resolving one of them in the same batch reads nothing.

Pending transfers are holds (frozen units, open orders, transfers awaiting approval). A hold is posted (in full
or in part, the remainder released) or voided by a second transfer whose `resolves_id` is unique: exactly once.

Serialised assets (registry units) also move serial blocks (`core/serials.py`): issuance creates a block from the
asset's serial counter; any other posting moves whole blocks oldest first and splits at most one, the sender keeping
the low part.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, TypeVar

from sqlalchemy import Select, and_, bindparam, case, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from core import balances, figures, serials
from core.cache import CommittedCache
from core.errors import AppError, Conflict, InvalidInput, ServiceUnavailable
from core.models import LedgerAccount, LedgerAsset, LedgerTransfer, SerialBlock
from core.observability import LEDGER_TRANSFERS, count_on_commit
from core.prepared import Prepared
from core.quantity import INT64_MAX

T = TypeVar("T")

POSTED = "posted"
PENDING = "pending"
POST_PENDING = "post_pending"
VOID_PENDING = "void_pending"

ROLE_ISSUANCE = serials.ROLE_ISSUANCE
BALANCE_UPDATE_TRIES = 3


@dataclass(frozen=True)
class TransferResult:
    """The transfer's id, and whether this call created it (False: an earlier call with the same client id did).
    (Not the row as a mapped object: building one per transfer cost more than the transfer's INSERT.)"""

    id: int
    created: bool


@dataclass(frozen=True)
class AccountRef:
    """What never changes about a ledger account: enough to address a transfer to it without reading the row."""

    id: int
    asset_id: int
    role: str


AccountKey = tuple[str, int, int]  # (owner_kind, owner_id, asset_id)
ACCOUNT_REFS: CommittedCache[AccountKey, AccountRef] = CommittedCache("ledger.account_refs")


async def account_ref(session: AsyncSession, *, asset_id: int, owner_kind: str, owner_id: int, role: str) -> AccountRef:
    """`ensure_account`'s account as an `AccountRef`, from the process cache when a committed unit of work saw it."""
    key = (owner_kind, owner_id, asset_id)
    found = ACCOUNT_REFS.get(session, key)
    if found is None:
        account = await ensure_account(session, asset_id=asset_id, owner_kind=owner_kind, owner_id=owner_id, role=role)
        found = AccountRef(account.id or 0, account.asset_id, account.role)
        ACCOUNT_REFS.remember(session, key, found)
    return found


async def ensure_asset(session: AsyncSession, code: str, *, scale: int, serialised: bool) -> LedgerAsset:
    stmt = select(LedgerAsset).where(LedgerAsset.code == code)
    asset = (await session.execute(stmt)).scalar_one_or_none()
    if asset is None:
        asset = await insert_or_get(session, LedgerAsset(code=code, scale=scale, serialised=serialised), stmt)
        serials.ASSET_SERIALISED.created(session, asset.id or 0)  # not remembered by the unit of work that made it
    return asset


async def ensure_account(
    session: AsyncSession, *, asset_id: int, owner_kind: str, owner_id: int, role: str
) -> LedgerAccount:
    """The ledger account of `owner` for `asset`, created on first use. Only issuance accounts may go negative."""
    stmt = select(LedgerAccount).where(
        LedgerAccount.owner_kind == owner_kind,
        LedgerAccount.owner_id == owner_id,
        LedgerAccount.asset_id == asset_id,
    )
    account = (await session.execute(stmt)).scalar_one_or_none()
    if account is None:
        # Created here (or by a concurrent first use): this unit of work does not cache its id (core/cache.py).
        ACCOUNT_REFS.created(session, (owner_kind, owner_id, asset_id))
        account = await insert_or_get(
            session,
            LedgerAccount(
                asset_id=asset_id,
                owner_kind=owner_kind,
                owner_id=owner_id,
                role=role,
                debits_must_not_exceed_credits=role != ROLE_ISSUANCE,
            ),
            stmt,
        )
    return account


async def insert_or_get(session: AsyncSession, row: T, lookup: Select[Any]) -> T:
    """Insert `row`, or return the one a concurrent transaction inserted first under the same unique key.

    The insert runs in a savepoint, so losing the race rolls back only the insert, not the unit of work
    (portable: SQLite, PostgreSQL and the distributed engines all have savepoints)."""
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
        return row
    except IntegrityError:
        found: T = (await session.execute(lookup.execution_options(populate_existing=True))).scalar_one()
        return found


def available(account: LedgerAccount) -> int:
    return account.credits_posted - account.debits_posted - account.debits_pending


# The hot path's statements are built once, on the tables (Core, not ORM DML), with bound parameters, and run as
# prepared statements (`core.prepared`): building and coercing an expression per call, or SQLAlchemy's execution
# machinery per statement, cost more than running it.
_ACC = LedgerAccount.__table__.c
_AMOUNT: Any = bindparam("amount")


def _debit_condition(amount: Any) -> Any:
    return and_(
        or_(
            _ACC.debits_must_not_exceed_credits == False,  # noqa: E712
            _ACC.debits_posted + _ACC.debits_pending <= _ACC.credits_posted - amount,
        ),
        # posted + pending stays within 64 bits, so posting a hold later can never overflow either.
        INT64_MAX - amount >= _ACC.debits_posted + _ACC.debits_pending,
    )


def _credit_condition(amount: Any) -> Any:
    return and_(
        or_(
            _ACC.credits_must_not_exceed_debits == False,  # noqa: E712
            _ACC.credits_posted + _ACC.credits_pending <= _ACC.debits_posted - amount,
        ),
        INT64_MAX - amount >= _ACC.credits_posted + _ACC.credits_pending,
    )


def _one_side(side: str, pending: bool) -> Any:
    col = getattr(_ACC, f"{side}s_{'pending' if pending else 'posted'}")
    condition = _debit_condition(_AMOUNT) if side == "debit" else _credit_condition(_AMOUNT)
    return Prepared(
        update(LedgerAccount.__table__)
        .where(_ACC.id == bindparam("account_id"), condition)
        .values({col.key: col + _AMOUNT})
    )


_ONE_SIDE = {(side, pending): _one_side(side, pending) for side in ("debit", "credit") for pending in (False, True)}
_UNDO = {
    (side, pending): Prepared(
        update(LedgerAccount.__table__).where(_ACC.id == bindparam("account_id")).values({col.key: col - _AMOUNT})
    )
    for side, pending, col in (
        ("debit", False, _ACC.debits_posted),
        ("debit", True, _ACC.debits_pending),
        ("credit", False, _ACC.credits_posted),
        ("credit", True, _ACC.credits_pending),
    )
}
_INSERT_TRANSFER = Prepared(insert(LedgerTransfer.__table__).returning(LedgerTransfer.__table__.c.id))


def _both_sides(pending: bool) -> Any:
    """SQLite: both sides of a transfer in one conditional UPDATE of the two rows (each row its own condition),
    returning the ids it changed. SQLite has one writer at a time, so the statement sees no concurrent change."""
    kind = "pending" if pending else "posted"
    debit_col, credit_col = getattr(_ACC, f"debits_{kind}"), getattr(_ACC, f"credits_{kind}")
    is_debit = _ACC.id == bindparam("debit_id")
    return Prepared(
        update(LedgerAccount.__table__)
        .where(
            _ACC.id.in_([bindparam("debit_id"), bindparam("credit_id")]),
            case((is_debit, _debit_condition(_AMOUNT)), else_=_credit_condition(_AMOUNT)),
        )
        .values(
            {
                debit_col.key: debit_col + case((is_debit, _AMOUNT), else_=0),
                credit_col.key: credit_col + case((is_debit, 0), else_=_AMOUNT),
            }
        )
        .returning(_ACC.id)
    )


_BOTH_SIDES = {pending: _both_sides(pending) for pending in (False, True)}


def _one_writer(session: AsyncSession) -> bool:
    bind = session.bind
    return bind is not None and bind.dialect.name == "sqlite"


async def _debit_and_credit(
    session: AsyncSession, debit_id: int, credit_id: int, amount: int, *, pending: bool
) -> bool:
    """Both sides of a transfer, each a conditional UPDATE (the debit side may not go below zero, neither side past
    64 bits), in ascending id order, so that two crossed transfers lock the same rows in the same order and queue
    instead of deadlocking. It changes both or neither: when the second side refuses, the first is changed back
    at once (a caller may go on in the same transaction, e.g. after a savepoint).

    (One UPDATE of both rows saved a statement but misbehaved under concurrency on PostgreSQL: its re-check of a
    row another transaction had just changed refused transfers both sides could take, and crossed transfers
    stalled under load. Two ordered statements are the proven path there; SQLite, one writer at a time, changes
    both rows in one statement, `_BOTH_SIDES`.)"""
    if _one_writer(session):
        params = {"debit_id": debit_id, "credit_id": credit_id, "amount": amount}
        changed = await _BOTH_SIDES[pending].execute(session, params)
        if len(changed) == 2:
            return True
        for (account_id,) in changed:  # one side passed and the other refused: change the one back
            side = "debit" if account_id == debit_id else "credit"
            await _UNDO[(side, pending)].changed(session, {"account_id": account_id, "amount": amount})
        return False
    done: list[tuple[str, int]] = []
    for account_id, side in sorted([(debit_id, "debit"), (credit_id, "credit")]):
        if await _ONE_SIDE[(side, pending)].changed(session, {"account_id": account_id, "amount": amount}) != 1:
            for undo_side, undo_id in done:
                await _UNDO[(undo_side, pending)].changed(session, {"account_id": undo_id, "amount": amount})
            return False
        done.append((side, account_id))
    return True


async def _debit_would_pass(session: AsyncSession, account_id: int, amount: int) -> bool:
    stmt = select(_ACC.id).where(_ACC.id == account_id, _debit_condition(amount))
    return (await session.execute(stmt)).first() is not None


async def _credit_would_pass(session: AsyncSession, account_id: int, amount: int) -> bool:
    stmt = select(_ACC.id).where(_ACC.id == account_id, _credit_condition(amount))
    return (await session.execute(stmt)).first() is not None


async def _refuse(session: AsyncSession, account_id: int, amount: int, field: str) -> AppError:
    row = (
        await session.execute(
            select(LedgerAccount).where(LedgerAccount.id == account_id).execution_options(populate_existing=True)
        )
    ).scalar_one()
    return balances.refusal([getattr(row, name) for name in balances.COLUMNS], amount, field)


async def _move_balances(
    session: AsyncSession, debit_id: int, credit_id: int, amount: int, *, pending: bool, field: str
) -> None:
    """A transfer's two balance rows, by conditional UPDATEs; a refusal raises, naming the side that refused."""
    for attempt in range(BALANCE_UPDATE_TRIES):
        if await _debit_and_credit(session, debit_id, credit_id, amount, pending=pending):
            return
        # A side refused; say which. Under concurrency (PostgreSQL re-checks a row another transaction just
        # changed) the balance may have moved again since: if both sides accept now, try the update again.
        for account_id, ok in (
            (debit_id, await _debit_would_pass(session, debit_id, amount)),
            (credit_id, await _credit_would_pass(session, credit_id, amount)),
        ):
            if not ok:
                raise await _refuse(session, account_id, amount, field)
        if attempt == BALANCE_UPDATE_TRIES - 1:
            raise ServiceUnavailable("The balances are changing quickly; retry shortly.")


async def _existing(session: AsyncSession, client_id: str) -> LedgerTransfer | None:
    stmt = select(LedgerTransfer).where(LedgerTransfer.client_id == client_id)
    return (await session.execute(stmt)).scalar_one_or_none()


def _same(t: LedgerTransfer, **fields: Any) -> bool:
    return all(getattr(t, k) == v for k, v in fields.items())


async def create_transfer(
    session: AsyncSession,
    *,
    client_id: str,
    debit_account_id: int,
    credit_account_id: int,
    asset_id: int,
    amount: int,
    code: str,
    now: dt.datetime,
    pending: bool = False,
    ref: str | None = None,
    field: str = "quantity",
    accounts: tuple[LedgerAccount | AccountRef, LedgerAccount | AccountRef] | None = None,
    serialised: bool | None = None,
    fresh_client_id: bool = False,
) -> TransferResult:
    """Post (or hold, when `pending`) one transfer. Several calls in one unit of work are linked: a refusal
    raises, and the unit of work rolls all of them back together.

    Callers that already hold the two ledger accounts (`accounts`, debit then credit) and know whether the asset
    is serialised save the look-ups; `fresh_client_id` says the id was derived from a row this unit of work just
    inserted, so it cannot exist yet (the unique constraint still guards it)."""
    if amount <= 0 or amount > INT64_MAX:
        raise InvalidInput(field, "The amount must be a positive whole number of base units.")
    if debit_account_id == credit_account_id:
        raise AppError("accounts-must-differ", "The debit and credit accounts must differ.", field="to_account_id")
    kind = PENDING if pending else POSTED
    fields = dict(
        debit_account_id=debit_account_id,
        credit_account_id=credit_account_id,
        asset_id=asset_id,
        amount=amount,
        code=code,
        kind=kind,
    )
    deferred = balances.deferred(session)
    if not fresh_client_id:
        staged = None if deferred is None else deferred.staged.get(client_id)
        prior = SimpleNamespace(**staged) if staged is not None else await _existing(session, client_id)
        if prior is not None:
            if _same(prior, **fields):
                return TransferResult(prior.id or 0, created=False)
            raise Conflict("transfer-exists-different", f"Transfer {client_id} exists with other fields.")
    if accounts is None:
        rows = (
            await session.execute(
                select(LedgerAccount).where(LedgerAccount.id.in_([debit_account_id, credit_account_id]))
            )
        ).scalars()
        by_id = {a.id: a for a in rows}
        if len(by_id) != 2:
            raise AppError("assets-must-match", "Both accounts must hold the transfer's asset.", field="instrument_id")
        accounts = (by_id[debit_account_id], by_id[credit_account_id])
    debit, credit = accounts
    if (debit.id, credit.id) != (debit_account_id, credit_account_id) or any(a.asset_id != asset_id for a in accounts):
        raise AppError("assets-must-match", "Both accounts must hold the transfer's asset.", field="instrument_id")
    # `resolves_id` named, though None: the same columns as a resolution's INSERT, so one compiled statement serves.
    row = {"client_id": client_id, "created_at": now, "ref": ref, "resolves_id": None, **fields}
    if deferred is not None:  # this unit of work keeps its balances and rows in memory (`core.balances`)
        await deferred.move(session, debit_account_id, credit_account_id, amount, pending=pending, field=field)
        transfer_id = await deferred.stage(session, row)
        if pending:  # a hold staged here is resolved from what is remembered of it (it is not in the table yet)
            if serialised is None:
                serialised = await serials.is_serialised(session, asset_id)
            deferred.holds[transfer_id] = balances.Hold(
                transfer_id, amount, debit_account_id, credit_account_id, asset_id, code, ref, serialised, debit.role
            )
    else:
        await _move_balances(session, debit_account_id, credit_account_id, amount, pending=pending, field=field)
        transfer_id = int(await _INSERT_TRANSFER.scalar(session, row))
    if not pending:
        await _move_serials(
            session, deferred, asset_id, debit_account_id, credit_account_id, amount, serialised, debit.role
        )
    count_on_commit(session, LEDGER_TRANSFERS, code=code)
    return TransferResult(transfer_id, created=True)


# What resolving a hold must know, in one statement (three unique-index look-ups joined by OR): a transfer that
# already has the resolution's client id, the hold itself with its asset's `serialised` and its debit account's
# role, and a transfer that already resolves the hold.
# Core columns, not the entity: a mapped object per row cost more than the statement.
_TRANSFER = LedgerTransfer.__table__.c
_RESOLUTION_FACTS = Prepared(
    select(
        *(
            getattr(_TRANSFER, name)
            for name in (
                "id",
                "client_id",
                "kind",
                "resolves_id",
                "amount",
                "debit_account_id",
                "credit_account_id",
                "asset_id",
                "code",
                "ref",
            )
        ),
        LedgerAsset.serialised,
        LedgerAccount.role.label("debit_role"),
    )
    .join(LedgerAsset, LedgerAsset.id == LedgerTransfer.asset_id)
    .join(LedgerAccount, LedgerAccount.id == LedgerTransfer.debit_account_id)
    .where(
        or_(
            LedgerTransfer.client_id == bindparam("client_id"),
            LedgerTransfer.id == bindparam("pending_id"),
            LedgerTransfer.resolves_id == bindparam("pending_id"),
        )
    )
)
# One side of a resolution: the hold leaves the side's pending column and, when posted, `b_posted` of it enters
# its posted column.
_RESOLVE_SIDE = {
    (side, posting): Prepared(
        update(LedgerAccount.__table__)
        .where(_ACC.id == bindparam("account_id"))
        .values(
            {
                f"{side}s_pending": getattr(_ACC, f"{side}s_pending") - bindparam("b_held"),
                **({f"{side}s_posted": getattr(_ACC, f"{side}s_posted") + bindparam("b_posted")} if posting else {}),
            }
        )
    )
    for side in ("debit", "credit")
    for posting in (False, True)
}


def _resolve_both(posting: bool) -> Any:
    """SQLite: both sides of a resolution in one UPDATE of the two rows (see `_both_sides`)."""
    is_debit = _ACC.id == bindparam("debit_id")
    values = {
        "debits_pending": _ACC.debits_pending - case((is_debit, bindparam("b_held")), else_=0),
        "credits_pending": _ACC.credits_pending - case((is_debit, 0), else_=bindparam("b_held")),
    }
    if posting:
        values["debits_posted"] = _ACC.debits_posted + case((is_debit, bindparam("b_posted")), else_=0)
        values["credits_posted"] = _ACC.credits_posted + case((is_debit, 0), else_=bindparam("b_posted"))
    return Prepared(
        update(LedgerAccount.__table__)
        .where(_ACC.id.in_([bindparam("debit_id"), bindparam("credit_id")]))
        .values(values)
    )


_RESOLVE_BOTH = {posting: _resolve_both(posting) for posting in (False, True)}


async def resolve_pending(
    session: AsyncSession,
    *,
    client_id: str,
    pending_id: int,
    now: dt.datetime,
    post: bool,
    amount: int | None = None,
    code: str | None = None,
    serials_to: int | None = None,
) -> TransferResult:
    """Post (all or `amount` of it, the rest released) or void a hold. A second resolution is refused.

    `serials_to` (serialised assets): the posted serials go on to this account instead of the hold's credit
    account, which must pay the same amount of the asset to it later in the same unit of work (clearing, whose
    payout then moves no serials: `create_transfer(serialised=False)`). Clearing holds no serials between two
    units of work, so the serials that arrive are the ones the two moves would have carried."""
    deferred = balances.deferred(session)
    hold: Any = None
    if deferred is not None:  # the rows this unit of work staged come first (`core.balances`)
        staged = deferred.staged.get(client_id)
        if staged is not None:
            return _prior_resolution(SimpleNamespace(**staged), pending_id, post)
        if pending_id in deferred.resolved:
            raise Conflict("pending-already-resolved", "This hold was already posted or voided.")
        hold = deferred.holds.pop(pending_id, None)
    if hold is None:
        rows = await _RESOLUTION_FACTS.execute(session, {"client_id": client_id, "pending_id": pending_id})
        prior = next((t for t in rows if t.client_id == client_id), None)
        if prior is not None:
            return _prior_resolution(prior, pending_id, post)
        hold = next((t for t in rows if t.id == pending_id), None)
        if hold is None or hold.kind != PENDING:
            raise Conflict("invalid-state", "There is no hold with this id.")
        if any(t.resolves_id == pending_id for t in rows):
            raise Conflict("pending-already-resolved", "This hold was already posted or voided.")
        serials.ASSET_SERIALISED.remember(session, hold.asset_id, bool(hold.serialised))
    # else: this unit of work created the hold and has not resolved it (`core.balances`); the unique client id and
    # `resolves_id` still guard the row.
    serialised, debit_role = hold.serialised, hold.debit_role
    posted_amount = (hold.amount if amount is None else amount) if post else 0
    if post and not 0 < posted_amount <= hold.amount:
        raise InvalidInput("quantity", f"Post between 1 and {figures.quantity(hold.amount)} base units of this hold.")
    if deferred is not None:
        await deferred.resolve(session, hold.debit_account_id, hold.credit_account_id, hold.amount, posted_amount)
    elif _one_writer(session):
        await _RESOLVE_BOTH[bool(posted_amount)].changed(
            session,
            {
                "debit_id": hold.debit_account_id,
                "credit_id": hold.credit_account_id,
                "b_held": hold.amount,
                "b_posted": posted_amount,
            },
        )
    else:
        for account_id, side in sorted([(hold.debit_account_id, "debit"), (hold.credit_account_id, "credit")]):
            await _RESOLVE_SIDE[(side, bool(posted_amount))].changed(
                session,
                {"account_id": account_id, "b_held": hold.amount, "b_posted": posted_amount},
            )
    fields = dict(
        client_id=client_id,
        debit_account_id=hold.debit_account_id,
        credit_account_id=hold.credit_account_id,
        asset_id=hold.asset_id,
        amount=posted_amount,
        code=code or hold.code,
        kind=POST_PENDING if post else VOID_PENDING,
        resolves_id=hold.id,
        ref=hold.ref,
        created_at=now,
    )
    transfer_id = (
        await deferred.stage(session, fields)
        if deferred is not None
        else await _INSERT_TRANSFER.scalar(session, fields)
    )
    if posted_amount:
        to = hold.credit_account_id if serials_to is None else serials_to
        await _move_serials(
            session, deferred, hold.asset_id, hold.debit_account_id, to, posted_amount, serialised, debit_role
        )
    count_on_commit(session, LEDGER_TRANSFERS, code=fields["code"])
    return TransferResult(int(transfer_id), created=True)


async def _move_serials(
    session: AsyncSession,
    deferred: balances.Balances | None,
    asset_id: int,
    debit_id: int,
    credit_id: int,
    amount: int,
    serialised: bool | None,
    debit_role: str | None,
) -> None:
    """A posted transfer's serials: moved now, or queued for the flush of a unit of work whose balances are in
    memory (`core.balances`)."""
    if deferred is None:
        await serials.move_serials(
            session, asset_id, debit_id, credit_id, amount, serialised=serialised, debit_role=debit_role
        )
        return
    if serialised is None:
        serialised = await serials.is_serialised(session, asset_id)
    if serialised:
        deferred.serial_moves.append(serials.Move(asset_id, debit_id, credit_id, amount, debit_role))


def _prior_resolution(prior: Any, pending_id: int, post: bool) -> TransferResult:
    """A transfer that already has the resolution's client id: the same resolution (idempotent), or a conflict."""
    if prior.resolves_id == pending_id and prior.kind == (POST_PENDING if post else VOID_PENDING):
        return TransferResult(prior.id, created=False)
    raise Conflict("transfer-exists-different", f"Transfer {prior.client_id} exists with other fields.")


async def check_invariants(session: AsyncSession) -> list[str]:
    """Every promise of the ledger, recomputed from the immutable records alone; an empty list means all hold.

    - per asset, debits equal credits, posted and pending;
    - no holder account's available balance below zero;
    - every account's four balances equal the sums of its transfers (posted: posted transfers and the posted
      part of resolved holds; pending: holds not resolved yet), so an edited balance row is found;
    - for serialised assets, the serial blocks of one asset never overlap and each holder's blocks sum to its
      posted balance, so an edited, added or removed block is found.
    All sums are computed by the database (GROUP BY), so the check reads a few rows per account, not every
    transfer into memory. `greenrights audit reconcile` runs it; tests assert it after every step.
    """
    problems: list[str] = []
    sums = await session.execute(
        select(
            LedgerAccount.asset_id,
            func.sum(LedgerAccount.debits_posted),
            func.sum(LedgerAccount.credits_posted),
            func.sum(LedgerAccount.debits_pending),
            func.sum(LedgerAccount.credits_pending),
        )
        .group_by(LedgerAccount.asset_id)
        .order_by(LedgerAccount.asset_id)
    )
    for asset_id, dp, cp, dpe, cpe in sums:
        if dp != cp or dpe != cpe:
            problems.append(f"asset {asset_id}: debits {dp}/{dpe} != credits {cp}/{cpe}")
    negative = await session.execute(
        select(LedgerAccount.id)
        .where(
            LedgerAccount.debits_must_not_exceed_credits == True,  # noqa: E712
            LedgerAccount.debits_posted + LedgerAccount.debits_pending > LedgerAccount.credits_posted,
        )
        .order_by(LedgerAccount.id)
    )
    problems += [f"account {row[0]}: available below zero" for row in negative]
    # Balances equal the sum of their transfers: [debits posted, credits posted, debits pending, credits pending].
    flows: dict[int, list[int]] = {}
    posted = LedgerTransfer.kind.in_([POSTED, POST_PENDING])
    resolver = aliased(LedgerTransfer)
    open_hold = and_(
        LedgerTransfer.kind == PENDING,
        ~select(resolver.id).where(resolver.resolves_id == LedgerTransfer.id).exists(),
    )
    for where, column, slot in (
        (posted, LedgerTransfer.debit_account_id, 0),
        (posted, LedgerTransfer.credit_account_id, 1),
        (open_hold, LedgerTransfer.debit_account_id, 2),
        (open_hold, LedgerTransfer.credit_account_id, 3),
    ):
        rows = await session.execute(select(column, func.sum(LedgerTransfer.amount)).where(where).group_by(column))
        for account_id, total in rows:
            flows.setdefault(account_id, [0, 0, 0, 0])[slot] = int(total)
    balances = await session.execute(
        select(
            LedgerAccount.id,
            LedgerAccount.asset_id,
            LedgerAccount.role,
            LedgerAccount.debits_posted,
            LedgerAccount.credits_posted,
            LedgerAccount.debits_pending,
            LedgerAccount.credits_pending,
        ).order_by(LedgerAccount.id)
    )
    accounts = [(acc_id, asset_id, role, [dp, cp, dpe, cpe]) for acc_id, asset_id, role, dp, cp, dpe, cpe in balances]
    for acc_id, _, _, have in accounts:
        want = flows.get(acc_id, [0, 0, 0, 0])
        if want != have:
            problems.append(f"account {acc_id}: balances {have} != sum of transfers {want}")
    # Serial blocks: disjoint per asset (each block starts at or after the previous one's end) ...
    previous_end = (
        func.lag(SerialBlock.serial_end)
        .over(partition_by=SerialBlock.asset_id, order_by=SerialBlock.serial_start)
        .label("previous_end")
    )
    ordered = select(SerialBlock.asset_id, SerialBlock.serial_start, previous_end).subquery()
    overlaps = await session.execute(
        select(ordered.c.asset_id, ordered.c.serial_start)
        .where(ordered.c.previous_end > ordered.c.serial_start)
        .order_by(ordered.c.asset_id, ordered.c.serial_start)
    )
    problems += [f"asset {asset_id}: serial blocks overlap at {start}" for asset_id, start in overlaps]
    # ... and summing to each holder's posted balance.
    serialised = set((await session.execute(select(LedgerAsset.id).where(LedgerAsset.serialised == True))).scalars())  # noqa: E712
    per_account: dict[int, int] = {
        account_id: int(total)
        for account_id, total in await session.execute(
            select(SerialBlock.ledger_account_id, func.sum(SerialBlock.serial_end - SerialBlock.serial_start)).group_by(
                SerialBlock.ledger_account_id
            )
        )
    }
    for acc_id, asset_id, role, (dp, cp, _, _) in accounts:
        if role != ROLE_ISSUANCE and asset_id in serialised and per_account.get(acc_id, 0) != cp - dp:
            problems.append(f"account {acc_id}: serial blocks {per_account.get(acc_id, 0)} != balance {cp - dp}")
    return problems
