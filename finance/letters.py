"""Decision documents and their public verification: the decision letter (决定书) or clawback decision issued with
each final decision on a claim, the latest letter of a claim (what its PDF prints), what a verification code
vouches for (decision letters and green-credit reports alike), and the public key that signs green-credit
answers.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import documents, figures
from core.clock import SHANGHAI, business_date
from core.db import UnitOfWork
from core.errors import NotFound
from core.identity import Identity
from core.pdf import canonical_json, normalize_verification_code, verification_code, verification_code_matches
from finance import schemas as s
from finance._claims import load_claim
from finance._common import claim_no, load_json, param
from finance.context import FinanceContext
from finance.domain import rules
from finance.models import FinanceClaim, FinanceDocument

ISSUER = "江西省财政厅"


async def file_number(ses: AsyncSession, today: dt.date) -> str:
    """The next 文号 of the bureau's letters this year (GB/T 9704-2012 7.2.4): the dated parameter
    `letter_number_prefix` (e.g. 赣财建), the year in 〔〕 and the letter's sequence in that year, taken from the
    `finance-letters` series (`core.documents.next_number`): 赣财建〔2026〕12号."""
    prefix = str(param("letter_number_prefix", today))
    return f"{prefix}〔{today.year}〕{await documents.next_number(ses, 'finance-letters', today.year)}号"


async def issue_decision(
    ses: AsyncSession, claim: FinanceClaim, kind: str, decision: str, now: dt.datetime
) -> FinanceDocument:
    today = business_date(now)
    count = (
        await ses.execute(select(func.count()).select_from(FinanceDocument).where(FinanceDocument.claim_id == claim.id))
    ).scalar_one()
    number = rules.document_no(kind, today.year, claim.id or 0, int(count) + 1)
    determination = load_json(claim.determination)
    amount = claim.clawed_back_fen if decision == "clawback" else (claim.amount_fen if decision == "approved" else 0)
    record: dict[str, Any] = {
        "type": kind,
        "document_no": number,
        "file_no": await file_number(ses, today),
        "issued_by": ISSUER,
        "claim_id": claim.id,
        "claim_no": claim_no(claim),
        "cycle": claim.cycle,
        "enterprise_name": claim.enterprise_name,
        "enterprise_uscc": claim.enterprise_uscc,
        "programme": claim.programme,
        "programme_name_zh": (determination or {}).get("programme_name_zh", claim.programme),
        "project_ref": claim.project_ref,
        "period": claim.period,
        "decision": decision,
        "amount_fen": amount,
        "claim_amount_fen": claim.amount_fen,
        "decided_on": today.isoformat(),
        "reason": claim.reason,
        "notice_first_day": claim.notice_first_day.isoformat() if claim.notice_first_day else None,
        "notice_last_day": claim.notice_last_day.isoformat() if claim.notice_last_day else None,
        "determination_digest": claim.determination_digest,
        "determination": determination,
    }
    doc = FinanceDocument(
        code=verification_code(record),
        kind=kind,
        document_no=number,
        claim_id=claim.id,
        record=canonical_json(record).decode("utf-8"),
        issued_at=now,
    )
    ses.add(doc)
    await ses.flush()
    return doc


async def decision_letter(
    ctx: FinanceContext, who: Identity, claim_id: int, document_no: str | None = None
) -> tuple[dict[str, Any], str, dt.datetime]:
    """A decision document of a claim: the latest, or the one numbered `document_no` (every version stays
    downloadable: the decision letter after a clawback decision superseded it); (record, verification code,
    issued at); 404 if there is none such."""

    async def work(uow: UnitOfWork) -> tuple[dict[str, Any], str, dt.datetime]:
        ses = uow.session
        await load_claim(ses, who, claim_id)
        q = select(FinanceDocument).where(FinanceDocument.claim_id == claim_id)
        if document_no is not None:
            q = q.where(FinanceDocument.document_no == document_no)
        doc = (
            await ses.execute(q.order_by(FinanceDocument.id.desc()).limit(1))  # type: ignore[union-attr]
        ).scalar_one_or_none()
        if doc is None:
            raise NotFound("decision letter", field="document_no" if document_no is not None else None)
        return json.loads(doc.record), doc.code, doc.issued_at

    return await ctx.db.read(work)


async def verify_document(ctx: FinanceContext, code: str) -> s.VerificationOut:
    """What the document with this verification code says; 404 for any code that matches no record."""
    normalised = normalize_verification_code(code[:64])
    if normalised is None:
        raise NotFound("document", field="code")

    async def work(uow: UnitOfWork) -> s.VerificationOut:
        ses = uow.session
        doc = (
            await ses.execute(select(FinanceDocument).where(FinanceDocument.code == normalised))
        ).scalar_one_or_none()
        if doc is None:
            return await _registry_document(ses, normalised)
        record = json.loads(doc.record)
        # A stored record that no longer hashes to its code was altered: never vouch for it.
        if not verification_code_matches(record, normalised):
            raise NotFound("document", field="code")
        details: dict[str, Any] = {}
        newer: FinanceDocument | None = None
        if doc.claim_id is not None:
            # A later letter on the same claim (a clawback decision after the decision letter) supersedes it.
            newer = (
                await ses.execute(
                    select(FinanceDocument)
                    .where(FinanceDocument.claim_id == doc.claim_id, FinanceDocument.id > (doc.id or 0))
                    .order_by(FinanceDocument.id.desc())  # type: ignore[union-attr]
                    .limit(1)
                )
            ).scalar_one_or_none()
            claim = await ses.get(FinanceClaim, doc.claim_id)
            details = {
                "claim_no": record.get("claim_no"),
                "programme": record.get("programme_name_zh"),
                "project_ref": record.get("project_ref"),
                "period": record.get("period"),
                "decision": record.get("decision"),
                "reason": record.get("reason"),
                "determination_digest": record.get("determination_digest"),
                "claim_state_now": claim.state if claim else None,
            }
            amount = record.get("amount_fen")
            title = {
                "decision_letter": "财政补贴资金审核决定书",
                "clawback_decision": "财政补贴资金追回决定书",
            }.get(doc.kind, "决定书")
            date = str(record.get("decided_on"))
        else:
            details = {
                "bank": record.get("bank_name"),
                "query_id": record.get("query_id"),
                "answer_sha256": record.get("answer_sha256"),
                "signature_key_id": record.get("key_id"),
            }
            amount = record.get("amount_fen")
            title = "绿色信贷查询报告"
            date = str(record.get("answered_on"))
        return s.VerificationOut(
            valid=True,
            verification_code=doc.code,
            type=doc.kind,
            title=title,
            document_no=doc.document_no,
            enterprise_name=str(record.get("enterprise_name", "")),
            enterprise_uscc=str(record.get("enterprise_uscc", "")),
            amount_fen=amount if isinstance(amount, int) else None,
            amount_yuan=figures.yuan_plain(amount) if isinstance(amount, int) else None,
            date=date,
            issued_by=str(record.get("issued_by", ISSUER)),
            details=details,
            superseded=newer is not None,
            superseded_by=newer.code if newer else None,
            superseded_by_document_no=newer.document_no if newer else None,
            superseded_on=newer.issued_at.astimezone(SHANGHAI).date().isoformat() if newer else None,
        )

    return await ctx.db.read(work)


async def _registry_document(ses: AsyncSession, code: str) -> s.VerificationOut:
    """A document the registry issued (an account statement, a compliance report; `core.documents`), or 404."""
    found = await documents.verify(ses, code)
    if found is None:
        raise NotFound("document", field="code")
    doc, newer = found.document, found.superseded_by
    return s.VerificationOut(
        valid=True,
        verification_code=doc.code,
        type=doc.kind,
        title=doc.title,
        document_no="",
        enterprise_name=doc.subject_name,
        enterprise_uscc=doc.subject_uscc,
        amount_fen=None,
        amount_yuan=None,
        date=found.date,
        issued_by=doc.issued_by,
        details={"facts": found.facts},
        superseded=newer is not None,
        superseded_by=newer.code if newer else None,
        superseded_on=newer.issued_at.astimezone(SHANGHAI).date().isoformat() if newer else None,
    )


def public_key(ctx: FinanceContext) -> s.PublicKeyOut:
    return s.PublicKeyOut(
        algorithm="Ed25519",
        key_id=ctx.signer.key_id(),
        public_key_pem=ctx.signer.public_pem(),
        public_key_base64=base64.b64encode(ctx.signer.public_raw()).decode("ascii"),
        signs="the canonical JSON of a green-credit answer: sorted keys, no whitespace, UTF-8 (not \\u escapes)",
    )
