"""What a holder and the authorities read: an account's holdings (balance, available, held and serial ranges per
instrument), its transaction history newest first, one transaction, everything an account statement prints, and
the instruments the registry knows.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from sqlalchemy import String, bindparam, cast, func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from core import documents, figures, ledger
from core.db import UnitOfWork
from core.identity import Identity
from core.models import LedgerAccount, Organisation, SerialBlock
from registry import schemas as s
from registry._common import OWNER, instrument_out, tx_out
from registry.context import RegistryContext
from registry.domain.instruments import KIND_RULES, Kind, unit_identifier
from registry.models import Enterprise, Instrument, RegistryTransaction
from registry.queries import INSTRUMENTS, reader_organisation, visible_account, visible_account_exists, visible_tx

# The serial ranges a holding lists (the first ones by serial number).
BLOCKS_SHOWN_MAX = 100


async def list_holdings(ctx: RegistryContext, who: Identity, account_id: int) -> list[s.HoldingOut]:
    return await ctx.db.read(lambda uow: _holdings(uow.session, who, account_id))


async def _holdings(ses: AsyncSession, who: Identity, account_id: int) -> list[s.HoldingOut]:
    """One statement: the account's ledger accounts with their instruments and the first serial ranges of each,
    the visibility test riding in it; only an empty answer asks whether the account is invisible (404) or holds
    nothing yet ([])."""
    organisation_id = reader_organisation(who)
    query = _holdings_query(ses.sync_session.get_bind().dialect.name, organisation_id is None)
    rows = (await ses.execute(query, {"account_id": account_id, "organisation_id": organisation_id})).all()
    if not rows:
        await visible_account(ses, who, account_id)
        return []
    out = []
    for la, inst, blocks in rows:
        scale = KIND_RULES[Kind(inst.kind)].scale
        balance = la.credits_posted - la.debits_posted
        out.append(
            s.HoldingOut(
                instrument=instrument_out(inst),
                balance=figures.quantity_plain(balance, scale),
                available=figures.quantity_plain(ledger.available(la), scale),
                held=figures.quantity_plain(la.debits_pending, scale),
                balance_base=balance,
                available_base=ledger.available(la),
                serial_blocks=[
                    s.SerialRange(
                        first=unit_identifier(inst.code, start),
                        last=unit_identifier(inst.code, end - 1),
                        quantity=end - start,
                    )
                    for start, end in _ranges(blocks)
                ],
            )
        )
    return out


_BLK = SerialBlock.__table__.c


@functools.cache
def _holdings_query(dialect: str, reads_all: bool) -> Any:
    """The holdings' statement, built once per dialect and kind of reader (building it per request cost more than
    running it); bound parameters `account_id` and `organisation_id`."""
    account_id = bindparam("account_id")
    return (
        select(LedgerAccount, Instrument, _first_blocks(dialect))
        .join(Instrument, Instrument.asset_id == LedgerAccount.asset_id)
        .where(
            LedgerAccount.owner_kind == OWNER,
            LedgerAccount.owner_id == account_id,
            visible_account_exists(account_id, None if reads_all else bindparam("organisation_id")),
        )
        .order_by(Instrument.code)
    )


def _first_blocks(dialect: str) -> Any:
    """A column of the holdings' query: the first `BLOCKS_SHOWN_MAX` serial blocks of the row's ledger account as
    "start:end,start:end,..." (an index range scan with its own LIMIT per ledger account, correlated, so one
    statement whatever the number of holdings and however fragmented an account is)."""
    first = (
        select(_BLK.serial_start, _BLK.serial_end)
        .where(_BLK.ledger_account_id == LedgerAccount.id)
        .order_by(_BLK.serial_start)
        .limit(BLOCKS_SHOWN_MAX)
        .correlate(LedgerAccount)
        .subquery()
    )
    pair = cast(first.c.serial_start, String) + literal(":") + cast(first.c.serial_end, String)
    aggregate = func.group_concat if dialect == "sqlite" else func.string_agg
    return select(aggregate(pair, literal(","))).scalar_subquery()


def _ranges(blocks: str | None) -> list[tuple[int, int]]:
    """The "start:end,..." of `_first_blocks` as ranges in serial order (the aggregate does not promise its order)."""
    if not blocks:
        return []
    return sorted((int(a), int(b)) for a, _, b in (pair.partition(":") for pair in blocks.split(",")))


async def list_account_transactions(
    ctx: RegistryContext, who: Identity, account_id: int, *, limit: int, before_id: int | None
) -> s.Page:
    return await ctx.db.read(lambda uow: _transactions(uow.session, who, account_id, limit=limit, before_id=before_id))


async def _transactions(
    ses: AsyncSession, who: Identity, account_id: int, *, limit: int, before_id: int | None
) -> s.Page:
    visible = visible_account_exists(account_id, reader_organisation(who))
    query = _history(account_id, limit=limit + 1, before_id=before_id).where(visible)
    rows = (await ses.execute(query)).scalars().all()
    if not rows:
        await visible_account(ses, who, account_id)  # invisible (404), or nothing (yet) in this page
    # The page's instruments in one read (not one per row) when the process cache does not hold them yet; kept
    # referenced here, so that `tx_out` finds each in the session without a statement.
    missing = {t.instrument_id for t in rows[:limit] if INSTRUMENTS.get(ses, t.instrument_id) is None}
    loaded = (
        (await ses.execute(select(Instrument).where(Instrument.id.in_(missing)))).scalars().all()  # type: ignore[union-attr]
        if missing
        else []
    )
    items = [await tx_out(ses, t) for t in rows[:limit]]
    del loaded
    return s.Page(items=items, next_before_id=items[-1].id if len(rows) > limit else None)


def _history(account_id: int, *, limit: int, before_id: int | None) -> Any:
    """The newest `limit` transactions from or to the account (below `before_id`): the newest `limit` of each side,
    each an index range scan backwards on (from_account_id, id) or (to_account_id, id), joined with UNION ALL and
    cut to `limit` again. One query with OR on the two columns reads and sorts every row of the account instead
    (110 ms for a 100k-row account on SQLite, against under 1 ms). A transaction never has one account on both
    sides (`accounts-must-differ`), so no row comes twice."""
    tx_id = RegistryTransaction.id

    def side(column: Any) -> Any:
        q = select(tx_id).where(column == account_id)
        if before_id is not None:
            q = q.where(tx_id < before_id)  # type: ignore[operator]
        return select(q.order_by(tx_id.desc()).limit(limit).subquery().c.id)  # type: ignore[union-attr]

    newest = union_all(side(RegistryTransaction.from_account_id), side(RegistryTransaction.to_account_id))
    return (
        select(RegistryTransaction)
        .where(tx_id.in_(newest))  # type: ignore[union-attr]
        .order_by(tx_id.desc())  # type: ignore[union-attr]
        .limit(limit)
    )


async def get_transaction(ctx: RegistryContext, who: Identity, tx_id: int) -> s.TransactionOut:
    async def work(uow: UnitOfWork) -> s.TransactionOut:
        return await tx_out(uow.session, await visible_tx(uow.session, who, tx_id))

    return await ctx.db.read(work)


STATEMENT_ISSUER = "江西省环境权益登记簿"


async def statement_data(
    ctx: RegistryContext, who: Identity, account_id: int, *, issued_at: dt.datetime
) -> dict[str, Any]:
    """Everything an account statement prints, read in one snapshot, and the statement put on record
    (`core.documents`) in the same transaction: `code` is the verification code the PDF prints, which
    `/verify/{code}` answers for."""

    async def work(uow: UnitOfWork) -> dict[str, Any]:
        ses = uow.session
        acc = await visible_account(ses, who, account_id)
        org = await ses.get(Organisation, acc.organisation_id)
        ent = (
            await ses.execute(select(Enterprise).where(Enterprise.organisation_id == acc.organisation_id))
        ).scalar_one_or_none()
        holdings = await _holdings(ses, who, account_id)
        page = await _transactions(ses, who, account_id, limit=200, before_id=None)
        data: dict[str, Any] = {
            "account": acc,
            "organisation": org,
            "enterprise": ent,
            "holdings": holdings,
            "transactions": page.items,
        }
        doc = await documents.issue(
            ses,
            kind="account_statement",
            ref=f"account:{acc.id}",
            title="账户对账单",
            issued_by=STATEMENT_ISSUER,
            record=statement_record(data, issued_at),
            facts=_statement_facts(data),
            issued_at=issued_at,
            subject_name=org.name if org else "",
            subject_uscc=ent.uscc if ent else "",
        )
        data["code"] = doc.code
        return data

    return await ctx.db.run(work)


def statement_record(data: dict[str, Any], generated_at: dt.datetime) -> dict[str, object]:
    """What the statement's verification code hashes: the account, the moment, each holding's balance and
    available base units, and the newest transaction listed."""
    txs = data["transactions"]
    return {
        "account": data["account"].id,
        "generated_at": generated_at.isoformat(),
        "holdings": [[h.instrument.code, h.balance_base, h.available_base] for h in data["holdings"]],
        "last_transaction": txs[0].id if txs else None,
    }


def _statement_facts(data: dict[str, Any]) -> dict[str, str]:
    """The statement's key facts, as the public verification page shows them (in Chinese)."""
    acc = data["account"]
    facts = {"账户编号": str(acc.id)}
    for h in data["holdings"]:
        rule = KIND_RULES[Kind(h.instrument.kind)]
        facts[f"{rule.label_zh} {h.instrument.code} 余额"] = (
            f"{figures.quantity(h.balance_base, rule.scale)} {rule.display_unit}"
        )
    txs = data["transactions"]
    facts["所列最近一笔交易编号"] = str(txs[0].id) if txs else "无"
    return facts


async def list_instruments(ctx: RegistryContext) -> list[s.InstrumentOut]:
    async def work(uow: UnitOfWork) -> list[s.InstrumentOut]:
        rows = (await uow.session.execute(select(Instrument).order_by(Instrument.id))).scalars().all()
        return [instrument_out(i) for i in rows]

    return await ctx.db.read(work)


async def awaiting_approval(ctx: RegistryContext, who: Identity, limit: int = 100) -> list[s.TransactionOut]:
    """Transactions waiting for a second person (issuances, allocations, transfers), oldest first: the authorities'
    approvals inbox. Others see only those of their own organisation."""

    async def work(uow: UnitOfWork) -> list[s.TransactionOut]:
        q = select(RegistryTransaction).where(RegistryTransaction.status == "awaiting_approval")
        if not who.reads_all():
            q = q.where(RegistryTransaction.initiator_organisation_id == who.organisation_id)
        rows = (await uow.session.execute(q.order_by(RegistryTransaction.id).limit(limit))).scalars().all()
        return [await tx_out(uow.session, t) for t in rows]

    return await ctx.db.read(work)
