"""The register of documents the registry issues (account statements, compliance reports), for `/verify/{code}`.

A document's verification code hashes its record (`core.pdf.verification_code`); issuing one stores the record
with the facts a reader's verification page shows, before the PDF is rendered, so every code printed on a PDF is
on record. Issuing the same record again (the same statement downloaded twice at one moment) is the same document.
A later document of the same `kind` and `ref` (the same account, the same period) supersedes an earlier one:
the earlier one still verifies, and its page says that a newer one exists and which.

The finance bureau's letters keep their own table (`finance_document`, linked to claims and queries); the public
verification route looks in both.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.clock import SHANGHAI, require_aware
from core.ledger import insert_or_get
from core.models import DocumentSequence, IssuedDocument
from core.pdf import canonical_json, normalize_verification_code, verification_code, verification_code_matches


@dataclass(frozen=True)
class Verified:
    """A stored document that still hashes to its code, and the newer document of its kind and ref, if any."""

    document: IssuedDocument
    facts: dict[str, str]
    superseded_by: IssuedDocument | None

    @property
    def date(self) -> str:
        """When it was issued, in Shanghai time to the minute (two statements of one day differ)."""
        return self.document.issued_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


async def issue(
    session: AsyncSession,
    *,
    kind: str,
    ref: str,
    title: str,
    issued_by: str,
    record: Mapping[str, object],
    facts: Mapping[str, str],
    issued_at: dt.datetime,
    subject_name: str = "",
    subject_uscc: str = "",
) -> IssuedDocument:
    """Put the document on record (or find it, when this very record was issued before) and return it: its
    `code` is what the PDF prints."""
    require_aware(issued_at)
    code = verification_code(record)
    lookup = select(IssuedDocument).where(col(IssuedDocument.code) == code)
    prior = (await session.execute(lookup)).scalar_one_or_none()
    if prior is not None:
        return prior
    row = IssuedDocument(
        code=code,
        kind=kind,
        ref=ref,
        title=title,
        subject_name=subject_name[:200],
        subject_uscc=subject_uscc[:18],
        issued_by=issued_by[:200],
        facts=json.dumps(dict(facts), ensure_ascii=False),  # in the order the page shows them
        record=canonical_json(record).decode("utf-8"),
        issued_at=issued_at,
    )
    # Two readers downloading the same report at once: the second insert loses on the unique code and gets the
    # first one's row (a savepoint), never a 5xx.
    return await insert_or_get(session, row, lookup)


async def verify(session: AsyncSession, code: str) -> Verified | None:
    """The document whose code a reader typed, or None: no such code, or a stored record that no longer hashes to
    it (altered: never vouched for)."""
    normalised = normalize_verification_code(code[:64])
    if normalised is None:
        return None
    doc = (
        await session.execute(select(IssuedDocument).where(col(IssuedDocument.code) == normalised))
    ).scalar_one_or_none()
    if doc is None or not verification_code_matches(json.loads(doc.record), normalised):
        return None
    newer = (
        await session.execute(
            select(IssuedDocument)
            .where(
                col(IssuedDocument.kind) == doc.kind,
                col(IssuedDocument.ref) == doc.ref,
                col(IssuedDocument.id) > (doc.id or 0),
            )
            .order_by(col(IssuedDocument.id).desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    return Verified(doc, json.loads(doc.facts), newer)


async def next_number(session: AsyncSession, series: str, year: int) -> int:
    """The next number of `series` in `year`, from 1: one upsert that takes the series' row lock (concurrent
    callers queue on it, and each gets its own number; a rolled-back caller's number is given again)."""
    table: Any = DocumentSequence.__table__  # type: ignore[attr-defined]
    insert_ = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert_(table).values(series=series, year=year, last=1)
    stmt = stmt.on_conflict_do_update(index_elements=["series", "year"], set_={"last": table.c.last + 1})
    return int((await session.execute(stmt.returning(table.c.last))).scalar_one())
