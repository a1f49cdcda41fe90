"""The append-only, hash-chained audit log.

Each entry's hash is sha256 over its canonical JSON (sorted keys, no whitespace) followed by the previous hash.
Appends go through the single `audit_head` row, updated first in the append, so two transactions can never
both extend the same head: the chain never forks. `verify_chain` recomputes every hash from the start.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import Clock
from core.db import UnitOfWork
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
    if not events:
        return
    # Taking the head row's lock first (UPDATE ... RETURNING) serialises appenders on PostgreSQL.
    seq, prev = (
        await session.execute(
            update(AuditHead)
            .where(AuditHead.id == 1)
            .values(seq=AuditHead.seq + len(events))
            .returning(AuditHead.seq, AuditHead.hash)
        )
    ).one()
    seq -= len(events)
    at = at.replace(microsecond=at.microsecond)
    for ev in events:
        seq += 1
        data = canonical(ev["data"])
        h = entry_hash(seq, at, ev["actor"], ev["action"], ev["entity"], ev["entity_id"], data, prev)
        session.add(
            AuditEntry(
                seq=seq,
                at=at,
                actor=ev["actor"],
                action=ev["action"],
                entity=ev["entity"],
                entity_id=ev["entity_id"],
                data=data,
                prev_hash=prev,
                hash=h,
            )
        )
        prev = h
    await session.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=prev))
    await session.flush()


async def verify_chain(session: AsyncSession) -> tuple[bool, int, str]:
    """(ok, entries checked, message). Walks the whole chain in order."""
    prev = "0" * 64
    count = 0
    expected_seq = 1
    result = await session.stream_scalars(select(AuditEntry).order_by(AuditEntry.seq))
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
    return True, count, "audit chain intact"
