"""The append-only, hash-chained audit log, written without a global hot row.

A unit of work appends its entries with one INSERT (no chain fields), so concurrent writers never wait for each
other on the audit log. The linker (`link_pending`, run every second by the scheduler and by `greenrights audit
verify`) takes the committed entries not yet linked, in id order, and gives each its place: `seq` (unique,
gapless), `prev_hash` and `hash = sha256(canonical row || prev_hash)`, and moves the `audit_head` row to the last
one. Entries that commit late (a lower id seen after higher ones) are linked when they are seen: the chain's order
is the linking order. `verify_chain` recomputes every hash from the start and checks the head.

The trade-off (docs/scaling.md): an entry is tamper-evident from the moment it is linked, about a second after its
commit, not from the commit itself; until then only its unit of work's own effects (the ledger rows, which
`greenrights audit reconcile` checks independently) vouch for it. In exchange the audit log costs a writer one
statement and no lock that other writers wait for, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import Clock
from core.db import Database, UnitOfWork
from core.models import AuditEntry, AuditHead


def canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def entry_hash(
    seq: int, at: dt.datetime, actor: str, action: str, entity: str, entity_id: str, data: str, prev: str
) -> str:
    row = canonical(
        {
            "seq": seq,
            "at": at.isoformat(),
            "actor": actor,
            "action": action,
            "entity": entity,
            "entity_id": entity_id,
            "data": data,
        }
    )
    return hashlib.sha256((row + prev).encode()).hexdigest()


def make_flusher(clock: Clock):  # type: ignore[no-untyped-def]
    async def flush(uow: UnitOfWork) -> None:
        await append(uow.session, uow.audit_events, clock.now())
        uow.audit_events.clear()

    return flush


async def append(session: AsyncSession, events: list[dict[str, Any]], at: dt.datetime) -> None:
    """The unit of work's entries, in one INSERT; the linker chains them after they commit."""
    if not events:
        return
    rows = [
        {
            "at": at,
            "actor": ev["actor"],
            "action": ev["action"],
            "entity": ev["entity"],
            "entity_id": ev["entity_id"],
            "data": canonical(ev["data"]),
        }
        for ev in events
    ]
    await session.execute(insert(AuditEntry.__table__).values(rows))


LINK_BATCH_MAX = 5_000


async def link_pending(session: AsyncSession, batch_max: int = LINK_BATCH_MAX) -> int:
    """Chain the committed entries not linked yet (up to `batch_max`, oldest id first); returns how many.

    Two linkers at once cannot fork the chain: `seq` is unique and the head moves only from the value this linker
    read (`... WHERE seq = :read`); the loser's unit of work raises and changes nothing."""
    head = (await session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1))).one_or_none()
    if head is None:
        return 0
    seq, prev = head
    pending = (
        (
            await session.execute(
                select(AuditEntry).where(AuditEntry.seq.is_(None)).order_by(AuditEntry.id).limit(batch_max)
            )
        )
        .scalars()
        .all()
    )
    if not pending:
        return 0
    start = seq
    links: list[dict[str, Any]] = []
    for e in pending:
        seq += 1
        h = entry_hash(seq, e.at, e.actor, e.action, e.entity, e.entity_id, e.data, prev)
        links.append({"entry_id": e.id, "new_seq": seq, "new_prev": prev, "new_hash": h})
        prev = h
    entries = AuditEntry.__table__  # Core executemany: one statement, many parameter sets
    await session.execute(
        update(entries)
        .where(entries.c.id == bindparam("entry_id"), entries.c.seq.is_(None))
        .values(seq=bindparam("new_seq"), prev_hash=bindparam("new_prev"), hash=bindparam("new_hash")),
        links,
    )
    moved = await session.execute(
        update(AuditHead).where(AuditHead.id == 1, AuditHead.seq == start).values(seq=seq, hash=prev)
    )
    if moved.rowcount != 1:
        raise RuntimeError("another linker moved the audit head; this batch is rolled back and retried later")
    return len(links)


async def verify_chain(session: AsyncSession) -> tuple[bool, int, str]:
    """(ok, linked entries checked, message). Walks the linked chain in order; entries not linked yet (at most a
    second or so of them) are counted in the message."""
    prev = "0" * 64
    count = 0
    expected_seq = 1
    result = await session.stream_scalars(
        select(AuditEntry).where(AuditEntry.seq.is_not(None)).order_by(AuditEntry.seq)
    )
    async for e in result:
        if e.seq != expected_seq:
            return False, count, f"gap in the chain before entry {e.seq}"
        if e.prev_hash != prev:
            return False, count, f"entry {e.seq} does not link to its predecessor"
        if entry_hash(e.seq, e.at, e.actor, e.action, e.entity, e.entity_id, e.data, prev) != e.hash:
            return False, count, f"entry {e.seq} was altered"
        prev = e.hash
        count += 1
        expected_seq += 1
    head = (await session.execute(select(AuditHead).where(AuditHead.id == 1))).scalar_one_or_none()
    if head is not None and (head.seq != count or head.hash != prev):
        return False, count, "the chain's head does not match its last entry (entries removed?)"
    unlinked = (
        await session.execute(select(func.count()).select_from(AuditEntry).where(AuditEntry.seq.is_(None)))
    ).scalar_one()
    return True, count, "audit chain intact" + (f" ({unlinked} newer entries not linked yet)" if unlinked else "")


async def link_and_verify(db: Database) -> tuple[bool, int, str]:
    """Link every committed entry, then verify the whole chain: what `greenrights audit verify` and tests run."""

    async def link(uow: UnitOfWork) -> int:
        return await link_pending(uow.session, batch_max=10**9)

    async def verify(uow: UnitOfWork) -> tuple[bool, int, str]:
        return await verify_chain(uow.session)

    await db.run(link)
    return await db.read(verify)
