"""Bank green-credit queries: a bank asks about an enterprise that consented to it and gets an answer signed with
Ed25519 (the compliance status from the registry, the green-loan and carbon-reduction-tool evaluations of the
incentives engine), kept with a verification document; every query, answered or refused, is logged and
visible to the enterprise. Without an active consent the answer is the same 404 as for an unknown enterprise.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import business_date
from core.db import UnitOfWork
from core.errors import AppError, InvalidInput, NotFound
from core.events import emit
from core.identity import Identity, Role
from core.models import Organisation
from core.pdf import canonical_json, verification_code
from core.text import clean_text
from finance import schemas as s
from finance._common import LIST_LIMIT_MAX, READER, consent_active, engine_facts_problem, require
from finance.context import FinanceContext
from finance.models import FinanceConsent, FinanceDocument, FinanceGreenCreditQuery
from incentives import engine
from incentives.service import facts_problem
from registry.service import validate_uscc

ANSWER_SCHEMA = "greenrights.green-credit-answer/1"
GREEN_LOAN = "green_loan"
CARBON_TOOL = "carbon_reduction_tool"


async def _find_for_bank(ctx: FinanceContext, req: s.GreenCreditQuery) -> Any:
    if (req.enterprise_id is None) == (req.uscc is None):
        raise InvalidInput("enterprise_id", "Name the enterprise by enterprise_id or by uscc (one of them).")
    if req.enterprise_id is not None:
        try:
            return await ctx.registry.get_enterprise(READER, req.enterprise_id)
        except AppError as exc:
            if exc.problem.slug == "not-found":
                return None
            raise
    return await ctx.registry.enterprise_by_uscc(validate_uscc(req.uscc or ""))


async def _active_consent(
    ses: AsyncSession, enterprise_id: int, bank_org: int, today: dt.date
) -> FinanceConsent | None:
    consent = (
        await ses.execute(
            select(FinanceConsent).where(
                FinanceConsent.enterprise_id == enterprise_id,
                FinanceConsent.bank_organisation_id == bank_org,
                FinanceConsent.status == "active",
            )
        )
    ).scalar_one_or_none()
    return consent if consent is not None and consent_active(consent, today) else None


def _evaluate_for_bank(
    ctx: FinanceContext, programme: str, facts: dict[str, Any], on: dt.date
) -> tuple[Any, dict[str, Any]]:
    """(determination or None, section of the answer). Missing facts leave the programme unevaluated;
    malformed facts are the bank's error (422)."""
    described = engine.get_programme(programme)
    required = [str(f["name"]) for f in described["facts"] if f["required"]]  # type: ignore[index, union-attr]
    missing = [n for n in required if facts.get(n) is None]
    if missing:
        return None, {"evaluated": False, "reason": "missing facts", "missing_facts": missing}
    try:
        det = ctx.incentives.evaluate(programme, facts, on, known_on=on)
    except engine.FactsError as exc:
        raise engine_facts_problem(exc, "project_facts") from None
    except engine.NotInForce as exc:
        return None, {"evaluated": False, "reason": str(exc), "missing_facts": []}
    section: dict[str, Any] = {
        "evaluated": True,
        "programme": det.programme,
        "programme_name_zh": det.programme_name_zh,
        "rule_pack_version": det.rule_pack_version,
        "on": det.on.isoformat(),
        "eligible": bool(det.eligible),
        "failed_gates": list(det.failed_gates),
        "outputs": dict(det.outputs),
        "gates": [
            {
                "code": g.code,
                "label_zh": g.label_zh,
                "measured": g.measured,
                "comparator": g.comparator,
                "threshold": g.threshold,
                "unit": g.unit,
                "passed": g.passed,
                "citation": g.citation.to_dict(),
                "remedy_zh": g.remedy_zh,
            }
            for g in det.gates
        ],
        "determination_digest": det.digest(),
    }
    return det, section


async def query_green_credit(ctx: FinanceContext, who: Identity, req: s.GreenCreditQuery) -> s.GreenCreditAnswer:
    """A bank's signed green-credit answer about an enterprise that consented to this bank; otherwise the
    same 404 as for an unknown enterprise. The query is logged either way (visible to the enterprise)."""
    require(who, Role.BANK)
    now = ctx.clock.now()
    today = business_date(now)
    purpose = clean_text(req.purpose, "purpose", max_len=500)
    project_ref = clean_text(req.project_ref, "project_ref", max_len=100, required=False)
    facts = dict(req.project_facts or {})
    _check_bank_facts(facts)
    if "carbon_open_shortfall_t" in facts:
        raise InvalidInput(
            "project_facts.carbon_open_shortfall_t",
            "The compliance shortfall is taken from the registry; do not send it.",
        )
    not_found_field = "enterprise_id" if req.enterprise_id is not None else "uscc"
    ent = await _find_for_bank(ctx, req)
    if ent is None:
        raise NotFound("enterprise", field=not_found_field)

    async def log_refusal(uow: UnitOfWork) -> None:
        ses = uow.session
        bank = await ses.get(Organisation, who.organisation_id)
        ses.add(
            FinanceGreenCreditQuery(
                bank_organisation_id=who.organisation_id,
                bank_name=bank.name if bank else "",
                asked_by=who.principal_id,
                enterprise_id=ent.id,
                enterprise_organisation_id=ent.organisation_id,
                outcome="refused_no_consent",
                purpose=purpose,
                project_ref=project_ref,
                asked_at=now,
            )
        )
        uow.audit(
            who.actor,
            "green_credit.refused",
            "finance_green_credit_query",
            str(ent.id),
            {"bank_organisation_id": who.organisation_id},
        )
        emit(
            ses,
            "green_credit.query_made",
            {"query_id": None, "enterprise_id": ent.id, "bank_organisation_id": who.organisation_id,
             "outcome": "refused_no_consent"},
            to=(ent.organisation_id,),
            subject=f"enterprise:{ent.id}",
        )  # fmt: skip

    async def consented(uow: UnitOfWork) -> bool:
        return await _active_consent(uow.session, ent.id, who.organisation_id, today) is not None

    if not await ctx.db.read(consented):
        await ctx.db.run(log_refusal)
        raise NotFound("enterprise", field=not_found_field)

    status = await ctx.compliance.compliance_status(ent.id)
    facts_with_registry = {**facts, "carbon_open_shortfall_t": int(status.get("carbon_open_shortfall_t", 0))}
    loan_det, loan = _evaluate_for_bank(ctx, GREEN_LOAN, facts_with_registry, today)
    _, tool = _evaluate_for_bank(ctx, CARBON_TOOL, facts, today)
    if loan_det is not None:
        findings = dict(loan_det.findings)
        loan["catalogue_edition"] = findings.get("catalogue_edition", "")
        loan["catalogue_code"] = findings.get("catalogue_code", "")
        loan["catalogue_codes"] = {
            k[len("code[") : -1]: v for k, v in findings.items() if k.startswith("code[") and k.endswith("]")
        }
        loan["benchmark_status"] = findings.get("benchmark_status", "未提供能效数据")
        loan["co2_method"] = findings.get("co2_method", "")
        gate = next((g for g in loan_det.gates if g.code == "no_major_violation"), None)
        violations = {
            "checked": True,
            "passed": bool(gate.passed) if gate else True,
            "last_major_env_violation_on": facts.get("last_major_env_violation_on"),
            "lookback": gate.threshold if gate else None,
            "citation": gate.citation.to_dict() if gate else None,
            "source": "the bank's project facts (the registry keeps no record of environmental violations)",
        }
    else:
        violations = {"checked": False, "reason": "the green-loan facts were not all given"}
    compliance = {
        "open_shortfall": bool(status.get("open_shortfall", False)),
        "carbon_open_shortfall_t": int(status.get("carbon_open_shortfall_t", 0)),
        "owed": status.get("owed", []),
        "latest": status.get("latest", []),
        "not_reported": [x for x in status.get("latest", []) if x.get("status") == "C"],
    }

    async def answer_work(uow: UnitOfWork) -> s.GreenCreditAnswer | None:
        ses = uow.session
        consent = await _active_consent(ses, ent.id, who.organisation_id, today)
        if consent is None:
            return None  # revoked in between: refused below, as if never consented
        bank = await ses.get(Organisation, who.organisation_id)
        row = FinanceGreenCreditQuery(
            bank_organisation_id=who.organisation_id,
            bank_name=bank.name if bank else "",
            asked_by=who.principal_id,
            enterprise_id=ent.id,
            enterprise_organisation_id=ent.organisation_id,
            consent_id=consent.id,
            outcome="answered",
            purpose=purpose,
            project_ref=project_ref,
            asked_at=now,
        )
        ses.add(row)
        await ses.flush()
        answer: dict[str, Any] = {
            "schema": ANSWER_SCHEMA,
            "query_id": row.id,
            "answered_at": now.isoformat(),
            "as_of": today.isoformat(),
            "issued_by": "greenrights 江西省环境权益登记簿",
            "bank": {"organisation_id": who.organisation_id, "name": row.bank_name},
            "purpose": purpose,
            "consent": {
                "id": consent.id,
                "granted_at": consent.granted_at.isoformat(),
                "valid_until": consent.valid_until.isoformat() if consent.valid_until else None,
            },
            "enterprise": {
                "id": ent.id,
                "uscc": ent.uscc,
                "name": ent.name,
                "city": ent.city,
                "industry_code": ent.industry_code,
            },
            "project_ref": project_ref,
            "project_facts": facts,
            "compliance": compliance,
            "green_loan": loan,
            "violations_check": violations,
            "carbon_tool": tool,
        }
        body = canonical_json(answer)
        signature = {
            "algorithm": "Ed25519",
            "key_id": ctx.signer.key_id(),
            "value": ctx.signer.sign(body),
            "signed": "canonical JSON of `answer`: sorted keys, no whitespace, UTF-8",
        }
        row.answer = body.decode("utf-8")
        row.signature = signature["value"]
        row.key_id = signature["key_id"]
        principal = (loan.get("outputs") or {}).get("eligible_principal_fen") if loan.get("evaluated") else None
        record: dict[str, Any] = {
            "type": "green_credit_report",
            "document_no": f"GC{today.year}-{row.id:06d}",
            "issued_by": "greenrights 江西省环境权益登记簿",
            "query_id": row.id,
            "bank_name": row.bank_name,
            "enterprise_name": ent.name,
            "enterprise_uscc": ent.uscc,
            "answered_on": today.isoformat(),
            "amount_fen": principal if isinstance(principal, int) else None,
            "answer_sha256": hashlib.sha256(body).hexdigest(),
            "key_id": signature["key_id"],
        }
        ses.add(
            FinanceDocument(
                code=verification_code(record),
                kind="green_credit_report",
                document_no=str(record["document_no"]),
                query_id=row.id,
                record=canonical_json(record).decode("utf-8"),
                issued_at=now,
            )
        )
        await ses.flush()
        uow.audit(
            who.actor,
            "green_credit.answered",
            "finance_green_credit_query",
            str(row.id),
            {"enterprise_id": ent.id, "answer_sha256": record["answer_sha256"]},
        )
        emit(
            ses,
            "green_credit.query_made",
            {"query_id": row.id, "enterprise_id": ent.id, "bank_organisation_id": who.organisation_id,
             "outcome": "answered"},
            to=(ent.organisation_id,),
            subject=f"green_credit_query:{row.id}",
        )  # fmt: skip
        return s.GreenCreditAnswer(query_id=row.id or 0, answer=answer, signature=signature)

    out = await ctx.db.run(answer_work)
    if out is None:
        await ctx.db.run(log_refusal)
        raise NotFound("enterprise", field=not_found_field)
    return out


async def list_queries(ctx: FinanceContext, who: Identity, limit: int = 100) -> list[s.QueryLogOut]:
    async def work(uow: UnitOfWork) -> list[s.QueryLogOut]:
        q = select(FinanceGreenCreditQuery)
        if who.role == Role.EMITTER:
            q = q.where(FinanceGreenCreditQuery.enterprise_organisation_id == who.organisation_id)
        elif who.role == Role.BANK:
            # A bank sees only what it was answered: its refused attempts would tell it who exists.
            q = q.where(
                FinanceGreenCreditQuery.bank_organisation_id == who.organisation_id,
                FinanceGreenCreditQuery.outcome == "answered",
            )
        rows = (
            await uow.session.execute(
                q.order_by(FinanceGreenCreditQuery.id.desc()).limit(max(1, min(limit, LIST_LIMIT_MAX)))  # type: ignore[union-attr]
            )
        ).scalars()
        return [
            s.QueryLogOut(
                id=r.id or 0,
                bank_organisation_id=r.bank_organisation_id,
                bank_name=r.bank_name,
                enterprise_id=r.enterprise_id,
                outcome=r.outcome,
                purpose=r.purpose,
                project_ref=r.project_ref,
                asked_at=r.asked_at,
                has_report=r.answer is not None,
            )
            for r in rows
        ]

    return await ctx.db.read(work)


async def green_credit_report(ctx: FinanceContext, who: Identity, query_id: int) -> dict[str, Any]:
    """What the PDF report prints: the signed answer, its signature and verification code."""

    async def work(uow: UnitOfWork) -> dict[str, Any]:
        ses = uow.session
        row = await ses.get(FinanceGreenCreditQuery, query_id)
        visible = (
            row is not None
            and row.answer is not None
            and (
                who.role == Role.AUDITOR
                or (who.role == Role.BANK and row.bank_organisation_id == who.organisation_id)
                or (who.role == Role.EMITTER and row.enterprise_organisation_id == who.organisation_id)
            )
        )
        if row is None or not visible:
            raise NotFound("green-credit query")
        doc = (await ses.execute(select(FinanceDocument).where(FinanceDocument.query_id == row.id))).scalar_one()
        return {
            "answer": json.loads(row.answer or "{}"),
            "signature": {"algorithm": "Ed25519", "key_id": row.key_id or "", "value": row.signature or ""},
            "code": doc.code,
            "document_no": doc.document_no,
            "issued_at": doc.issued_at,
        }

    return await ctx.db.read(work)


def _check_bank_facts(facts: dict[str, Any]) -> None:
    """Only the green-loan and carbon-tool facts, each a JSON string, whole number, true/false or null: the
    answer is signed over canonical JSON, which has no single form for a float."""
    known: set[str] = set()
    for programme in (GREEN_LOAN, CARBON_TOOL):
        known |= {str(f["name"]) for f in engine.get_programme(programme)["facts"]}  # type: ignore[index, union-attr]
    problems = [(k, "is not a green-loan or carbon-tool fact") for k in sorted(facts) if k not in known]
    problems += [
        (k, "must be text, a whole number, true/false or null")
        for k, v in sorted(facts.items())
        if k in known and not (v is None or isinstance(v, (str, int, bool)))
    ]
    if problems:
        raise facts_problem(problems, prefix="project_facts.")
