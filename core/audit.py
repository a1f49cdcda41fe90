"""The append-only, hash-chained audit log, written without a global hot row.

A unit of work appends its entries with one INSERT (no chain fields), so concurrent writers never wait for each
other on the audit log. The linker (`link_pending`, run every second by the scheduler and by `greenrights audit
verify`) takes the committed entries not yet linked, in id order, and gives each its place: `seq` (unique,
gapless), `prev_hash` and `hash = sha256(canonical row || prev_hash)`, and moves the `audit_head` row to the last
one. Entries that commit late (a lower id seen after higher ones) are linked when they are seen: the chain's order
is the linking order. `verify_chain` recomputes every hash from the start and checks the head.

Rewriting needs more than write access to the database: the rows are append-only there (triggers refuse DELETE,
and UPDATE of anything but the linker filling an entry's chain fields once; migration 0006), and the linker
writes a **checkpoint** (the head's seq and hash, signed with the installation's Ed25519 key from `core.signing`,
which is not in the database) to a file the operator keeps elsewhere, at least every `CHECKPOINT_EVERY` entries
and every `CHECKPOINT_INTERVAL_S`. `verify_chain` checks the chain against the latest checkpoint: a chain that
ends before it was truncated, one whose hash at its seq differs was rewritten (docs/audit.md: the threat model).

The trade-off (docs/scaling.md): an entry is tamper-evident from the moment it is linked, about a second after its
commit, not from the commit itself; until then only its unit of work's own effects (the ledger rows, which
`greenrights audit reconcile` checks independently) vouch for it. In exchange the audit log costs a writer one
statement and no lock that other writers wait for, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import events, jsontext
from core.clock import Clock
from core.db import Database, UnitOfWork
from core.models import AuditEntry, AuditHead
from core.prepared import Prepared
from core.secrets import sqlite_file
from core.settings import Settings
from core.signing import Signer


def canonical(data: Any) -> str:
    return jsontext.dumps(data, sort_keys=True)


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
    """What a unit of work writes last, just before commit: its audit entries and its outbox events
    (core/events.py), one INSERT each, stamped with the same time."""

    async def flush(uow: UnitOfWork) -> None:
        now = clock.now()
        await append(uow.session, uow.audit_events, now)
        uow.audit_events.clear()
        await events.flush(uow.session, now)

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
    # Parameter sets, not a multi-VALUES statement: that one is compiled anew for every call (it has no cache key).
    await _INSERT_ENTRY.many(session, rows)


_INSERT_ENTRY = Prepared(insert(AuditEntry.__table__))


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


CHECKPOINT_EVERY = 1_000
CHECKPOINT_INTERVAL_S = 3_600
CHECKPOINT_SCHEMA = "greenrights.audit-checkpoint/1"


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    at: str
    key_id: str
    signature: str

    def message(self) -> bytes:
        return canonical({"schema": CHECKPOINT_SCHEMA, "seq": self.seq, "hash": self.hash, "at": self.at}).encode()


class Checkpoints:
    """Signed checkpoints of the chain's head, one JSON line each, appended to a file outside the database."""

    def __init__(self, path: Path, signer: Signer | None = None) -> None:
        self.path = path
        self.signer = signer or Signer()
        self._last_written: tuple[int, float] | None = None

    def latest(self) -> Checkpoint | None:
        if not self.path.exists():
            return None
        last = None
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    last = line
        if last is None:
            return None
        raw = json.loads(last)
        return Checkpoint(raw["seq"], raw["hash"], raw["at"], raw["key_id"], raw["signature"])

    def valid(self, cp: Checkpoint) -> bool:
        """The signature is the installation key's over the checkpoint's fields."""
        try:
            self.signer.public_key().verify(base64.b64decode(cp.signature), cp.message())
        except (InvalidSignature, ValueError):
            return False
        return cp.key_id == self.signer.key_id()

    def write(self, seq: int, head_hash: str, now: dt.datetime) -> Checkpoint:
        unsigned = Checkpoint(seq, head_hash, now.isoformat(), self.signer.key_id(), "")
        cp = Checkpoint(seq, head_hash, unsigned.at, unsigned.key_id, self.signer.sign(unsigned.message()))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = canonical({"schema": CHECKPOINT_SCHEMA, **cp.__dict__}) + "\n"
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self._last_written = (seq, time.monotonic())
        return cp

    async def maybe_write(self, session: AsyncSession, now: dt.datetime, *, force: bool = False) -> Checkpoint | None:
        """Checkpoint the linked head when `CHECKPOINT_EVERY` entries or `CHECKPOINT_INTERVAL_S` have passed."""
        head = (await session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1))).one_or_none()
        if head is None or head[0] == 0:
            return None
        if self._last_written is None:
            latest = self.latest()
            self._last_written = (latest.seq, time.monotonic()) if latest is not None else (0, 0.0)
        last_seq, last_at = self._last_written
        if head[0] <= last_seq:
            return None
        due = head[0] - last_seq >= CHECKPOINT_EVERY or time.monotonic() - last_at >= CHECKPOINT_INTERVAL_S
        return self.write(head[0], head[1], now) if (due or force) else None


async def verify_chain(session: AsyncSession, checkpoints: Checkpoints | None = None) -> tuple[bool, int, str]:
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
    if checkpoints is not None:
        cp = checkpoints.latest()
        if cp is not None:
            if not checkpoints.valid(cp):
                return False, count, f"the checkpoint at entry {cp.seq} is not signed by this installation's key"
            if count < cp.seq:
                return False, count, f"truncated: the chain ends at entry {count}, a signed checkpoint saw {cp.seq}"
            at_seq = (await session.execute(select(AuditEntry.hash).where(AuditEntry.seq == cp.seq))).scalar_one()
            if at_seq != cp.hash:
                return False, count, f"rewritten: entry {cp.seq} differs from the signed checkpoint of {cp.at}"
    unlinked = (
        await session.execute(select(func.count()).select_from(AuditEntry).where(AuditEntry.seq.is_(None)))
    ).scalar_one()
    return True, count, "audit chain intact" + (f" ({unlinked} newer entries not linked yet)" if unlinked else "")


async def link_and_verify(db: Database, checkpoints: Checkpoints | None = None) -> tuple[bool, int, str]:
    """Link every committed entry, then verify the whole chain (against the latest signed checkpoint when
    `checkpoints` is given): what `greenrights audit verify` and tests run."""

    async def link(uow: UnitOfWork) -> int:
        return await link_pending(uow.session, batch_max=10**9)

    async def verify(uow: UnitOfWork) -> tuple[bool, int, str]:
        return await verify_chain(uow.session, checkpoints)

    await db.run(link)
    return await db.read(verify)


def checkpoints_for(settings: Settings) -> Checkpoints | None:
    """The installation's checkpoint file: the configured one, else beside the embedded SQLite database."""
    if settings.audit_checkpoint_path:
        return Checkpoints(Path(settings.audit_checkpoint_path))
    db_file = sqlite_file(settings.database_url)
    return None if db_file is None else Checkpoints(db_file.parent / "audit-checkpoints.jsonl")


# The database's own refusal to change the log (migration 0006 and `server.migrate.create_schema` install it):
# entries and the head are never deleted, an entry changes once (the linker filling its chain fields, its content
# untouched) and the head only moves forward.
_CONTENT = ("id", "at", "actor", "action", "entity", "entity_id", "data")
_CHANGED = " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in _CONTENT)
_CHANGED_SQLITE = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in _CONTENT)
_MESSAGE = "audit rows are append-only"

APPEND_ONLY_SQLITE = [
    "CREATE TRIGGER IF NOT EXISTS audit_entry_no_delete BEFORE DELETE ON audit_entry "
    f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_entry_link_only BEFORE UPDATE ON audit_entry "
    f"WHEN OLD.seq IS NOT NULL OR NEW.seq IS NULL OR {_CHANGED_SQLITE} "
    f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_head_no_delete BEFORE DELETE ON audit_head "
    f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_head_forward_only BEFORE UPDATE ON audit_head WHEN NEW.seq < OLD.seq "
    f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END",
]

APPEND_ONLY_POSTGRES = [
    # One function per table: PL/pgSQL plans a whole condition, so it may not name a column the other table lacks.
    f"""CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' OR OLD.seq IS NOT NULL OR NEW.seq IS NULL OR {_CHANGED} THEN
    RAISE EXCEPTION '{_MESSAGE}';
  END IF;
  RETURN NEW;
END $$""",
    f"""CREATE OR REPLACE FUNCTION audit_head_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' OR NEW.seq < OLD.seq THEN
    RAISE EXCEPTION '{_MESSAGE}';
  END IF;
  RETURN NEW;
END $$""",
    "CREATE OR REPLACE TRIGGER audit_entry_append_only BEFORE UPDATE OR DELETE ON audit_entry "
    "FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only()",
    "CREATE OR REPLACE TRIGGER audit_head_append_only BEFORE UPDATE OR DELETE ON audit_head "
    "FOR EACH ROW EXECUTE FUNCTION audit_head_append_only()",
]
