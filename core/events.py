"""The transactional outbox: events the outside world can act on, written in the transaction of the change itself.

A use case calls `emit(session, type, body, to=(org, org), subject=...)` inside its unit of work; the events wait in
the session and are written by the unit of work's flusher with one INSERT just before commit (with the audit
entries, `core.audit.make_flusher`). So an event exists if and only if its change committed: no event for a change
that rolled back, no change without its event.

An event has a stable id (`evt_` + 32 hex digits), a type and version from `EVENT_TYPES`, the time it occurred, a
subject (`transaction:12`) and a JSON body whose fields are the type's documented fields (docs/events.md; a test
holds the two together). It is addressed to at most two organisations (`recipient_a`, `recipient_b`: both sides of
a transfer or trade, the enterprise and its bank for a consent); they see it in their inbox (`listEvents`) and their
webhook endpoints receive it (core/webhooks.py). Regulators and auditors read every event.

`dedupe_key`, when given, makes an emission happen once however often the code runs (the daily "deadline near"
reminders): the INSERT skips a row whose key exists.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import uuid
from dataclasses import dataclass
from typing import Any

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, Index, Integer, Text, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col

from core import jsontext
from core.prepared import Prepared

_ID = BigInteger().with_variant(Integer(), "sqlite")


@dataclass(frozen=True)
class EventType:
    name: str
    version: int
    summary: str
    fields: tuple[str, ...]


def _t(name: str, summary: str, *fields: str, version: int = 1) -> EventType:
    return EventType(name, version, summary, fields)


# Every type, its version and its body fields. Changing a body's fields means a new version (docs/events.md).
EVENT_TYPES: dict[str, EventType] = {
    t.name: t
    for t in (
        _t("transfer.completed", "Units moved from one holding account to another (at once, or when an approved "
           "transfer to an untrusted account executed).", "transaction_id", "instrument_code", "quantity",
           "from_account_id", "to_account_id", "completed_at"),
        _t("allocation.posted", "Free allowances (or other rights) of an allocation table were posted to an "
           "enterprise's account.", "transaction_id", "period_id", "enterprise_id", "instrument_code", "quantity",
           "to_account_id", "stage"),
        _t("surrender.recorded", "Units were surrendered against a compliance obligation (or retired).",
           "transaction_id", "account_id", "instrument_code", "quantity", "period", "purpose"),
        _t("compliance.deadline_near", "A compliance deadline of the enterprise is this many days away or fewer.",
           "period_id", "enterprise_id", "deadline", "days_left", "what"),
        _t("compliance.calendar_changed", "The authority changed a compliance period's calendar (a new or corrected "
           "notice): the events whose dates moved, under which notice and why.", "period_id", "period_code",
           "enterprise_id", "changes", "legal_basis", "note"),
        _t("settlement.result", "The compliance settlement decided the enterprise's result for a period.",
           "period_id", "enterprise_id", "grade", "shortfall_base", "fine_fen", "fine_due_on",
           "deduction_next_period_base"),
        _t("claim.submitted", "A subsidy or incentive claim was submitted to the finance bureau.",
           "claim_id", "programme", "enterprise_id", "amount_fen", "submitted_at"),
        _t("claim.decided", "The finance bureau decided a claim (approved with an amount, or rejected with "
           "a reason).", "claim_id", "programme", "enterprise_id", "decision", "amount_fen", "reason"),
        _t("claim.disbursed", "A claim's approved amount was paid out of its budget.",
           "claim_id", "programme", "enterprise_id", "amount_fen", "batch_id"),
        _t("consent.granted", "An enterprise let a bank query its green-credit eligibility.",
           "consent_id", "enterprise_id", "bank_organisation_id", "purpose", "valid_until"),
        _t("consent.revoked", "An enterprise withdrew a bank's consent.",
           "consent_id", "enterprise_id", "bank_organisation_id", "revoked_at"),
        _t("green_credit.query_made", "A bank queried the enterprise's green-credit eligibility: answered under "
           "its consent, or refused for want of one.", "query_id", "enterprise_id", "bank_organisation_id",
           "outcome"),
        _t("penalty.issued", "A penalty notice (fine) was issued to an enterprise.",
           "notice_id", "notice_no", "enterprise_id", "period_code", "fine_fen", "due_on"),
        _t("trade.executed", "A trade between two members was executed and settled delivery-versus-payment.",
           "trade_id", "instrument_code", "quantity", "price_fen", "amount_fen", "buyer_organisation_id",
           "seller_organisation_id", "venue"),
        _t("auction.cleared", "An auction the organisation sold in or bid in was cleared; its own result (for a "
           "bidder what it won and pays, for the seller what it sold and receives before fees).",
           "auction_id", "instrument_code", "role", "clearing_price_fen", "quantity", "amount_fen"),
    )
}


class OutboxEvent(SQLModel, table=True):
    __tablename__ = "outbox_event"
    __table_args__ = (
        Index("ix_outbox_event_recipient_a", "recipient_a", "id"),
        Index("ix_outbox_event_recipient_b", "recipient_b", "id"),
    )
    id: int | None = Field(default=None, primary_key=True, sa_type=_ID)
    event_id: str = Field(max_length=40, unique=True)
    type: str = Field(max_length=60, index=True)
    version: int = Field(default=1)
    occurred_at: dt.datetime = Field(sa_type=DateTimeUTC(timezone=True))
    subject: str = Field(max_length=120)
    recipient_a: int | None = Field(default=None, sa_type=BigInteger)
    recipient_b: int | None = Field(default=None, sa_type=BigInteger)
    body: str = Field(sa_type=Text)
    dedupe_key: str | None = Field(default=None, max_length=200, unique=True)


_PENDING = "greenrights.outbox"


def new_event_id() -> str:
    return "evt_" + uuid.uuid4().hex


def emit(
    session: AsyncSession,
    type_: str,
    body: dict[str, Any],
    *,
    to: tuple[int | None, ...],
    subject: str,
    dedupe_key: str | None = None,
) -> None:
    """Add an event to the unit of work running on `session`; written just before it commits."""
    spec = EVENT_TYPES[type_]  # an unknown type is a programming error
    if tuple(body) != spec.fields:
        raise ValueError(f"event {type_}: body fields {tuple(body)} are not {spec.fields}")
    recipients = [o for o in dict.fromkeys(to) if o is not None]
    if len(recipients) > 2:
        raise ValueError(f"event {type_}: at most two recipients, got {recipients}")
    session.info.setdefault(_PENDING, []).append(
        {
            "event_id": new_event_id(),
            "type": type_,
            "version": spec.version,
            "subject": subject,
            "recipient_a": recipients[0] if recipients else None,
            "recipient_b": recipients[1] if len(recipients) > 1 else None,
            "body": jsontext.dumps(body),
            "dedupe_key": dedupe_key,
        }
    )


def pending(session: AsyncSession) -> bool:
    return bool(session.info.get(_PENDING))


def pending_mark(session: AsyncSession) -> int:
    """How many events wait for the session's commit: a mark for `forget_since` when a savepoint rolls back."""
    return len(session.info.get(_PENDING, ()))


def forget_since(session: AsyncSession, mark: int) -> None:
    """Drop the events added after `mark` (a rolled-back savepoint's): what they tell never happened."""
    rows = session.info.get(_PENDING)
    if rows is not None:
        del rows[mark:]


async def flush(session: AsyncSession, at: dt.datetime) -> None:
    """Write the session's pending events (one INSERT; rows whose dedupe key exists are skipped)."""
    rows = session.info.pop(_PENDING, None)
    if not rows:
        return
    values = [{**r, "occurred_at": at} for r in rows]
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    # Parameter sets on a statement built once (a multi-VALUES statement has no cache key: compiled every call).
    await _insert(dialect, any(r["dedupe_key"] for r in rows)).many(session, values)


@functools.cache
def _insert(dialect: str, deduplicated: bool) -> Prepared:
    table = OutboxEvent.__table__  # type: ignore[attr-defined]
    if not deduplicated:
        return Prepared(insert(table))
    return Prepared(
        (pg_insert if dialect == "postgresql" else sqlite_insert)(table).on_conflict_do_nothing(
            index_elements=["dedupe_key"]
        )
    )


async def inbox(
    session: AsyncSession, organisation_id: int | None, *, after: int = 0, type_: str | None = None,
    limit: int = 100, newest_first: bool = False,
) -> list[OutboxEvent]:
    """The events addressed to an organisation (every event for None) after `after`, oldest first (or the newest
    `limit`, newest first): two index range reads, one per recipient column, instead of an OR over the table."""
    base = select(OutboxEvent).where(col(OutboxEvent.id) > after)
    if type_ is not None:
        base = base.where(col(OutboxEvent.type) == type_)
    order = col(OutboxEvent.id).desc() if newest_first else col(OutboxEvent.id)
    if organisation_id is None:
        return list((await session.execute(base.order_by(order).limit(limit))).scalars())
    found: dict[int, OutboxEvent] = {}
    for column in (col(OutboxEvent.recipient_a), col(OutboxEvent.recipient_b)):
        q = base.where(column == organisation_id).order_by(order).limit(limit)
        found.update((r.id or 0, r) for r in (await session.execute(q)).scalars())
    return [found[k] for k in sorted(found, reverse=newest_first)[:limit]]


def event_out(row: Any) -> dict[str, Any]:
    """The public form of an event: what the inbox lists and what a webhook delivers."""
    return {
        "id": row.event_id,
        "type": row.type,
        "version": row.version,
        "occurred_at": row.occurred_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "subject": row.subject,
        "data": json.loads(row.body),
    }
