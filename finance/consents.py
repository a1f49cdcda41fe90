"""An enterprise's consent to a named bank's green-credit queries: the banks it can name, granting (or renewing)
a consent, revoking it, and the list of consents (an enterprise sees its own, a bank the ones naming it).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import ledger
from core.clock import business_date
from core.db import UnitOfWork
from core.errors import Conflict, InvalidInput, NotFound
from core.events import emit
from core.identity import Identity, Role
from core.models import Organisation, Principal
from core.text import clean_text
from finance import schemas as s
from finance._common import consent_active, enterprise, require
from finance.context import FinanceContext
from finance.models import FinanceConsent


async def _bank(ses: AsyncSession, organisation_id: int) -> Organisation | None:
    org = await ses.get(Organisation, organisation_id)
    if org is None:
        return None
    if org.kind == Role.BANK.value:
        return org
    has_bank = (
        await ses.execute(
            select(Principal.id)
            .where(Principal.organisation_id == organisation_id, Principal.role == Role.BANK.value)
            .limit(1)
        )
    ).first()
    return org if has_bank else None


async def list_banks(ctx: FinanceContext, who: Identity) -> list[s.BankOut]:
    """The banks an enterprise can name in a consent (organisations of kind bank, or with a bank principal)."""

    async def work(uow: UnitOfWork) -> list[s.BankOut]:
        with_principal = select(Principal.organisation_id).where(Principal.role == Role.BANK.value)
        rows = (
            await uow.session.execute(
                select(Organisation)
                .where(or_(Organisation.kind == Role.BANK.value, Organisation.id.in_(with_principal)))  # type: ignore[union-attr]
                .order_by(Organisation.id)
            )
        ).scalars()
        return [s.BankOut(organisation_id=o.id or 0, name=o.name) for o in rows]

    return await ctx.db.read(work)


def _consent_out(c: FinanceConsent, today: dt.date) -> s.ConsentOut:
    return s.ConsentOut(
        id=c.id or 0,
        enterprise_id=c.enterprise_id,
        enterprise_name=c.enterprise_name,
        bank_organisation_id=c.bank_organisation_id,
        bank_name=c.bank_name,
        purpose=c.purpose,
        status=c.status,
        active=consent_active(c, today),
        valid_until=c.valid_until,
        granted_at=c.granted_at,
        revoked_at=c.revoked_at,
    )


async def grant_consent(ctx: FinanceContext, who: Identity, req: s.GrantConsent) -> s.ConsentOut:
    require(who, Role.EMITTER)
    now = ctx.clock.now()
    today = business_date(now)
    purpose = clean_text(req.purpose, "purpose", max_len=500)
    if req.valid_until is not None and req.valid_until < today:
        raise InvalidInput("valid_until", "A consent cannot end before today.")
    ent = await enterprise(ctx, who, req.enterprise_id)

    async def work(uow: UnitOfWork) -> s.ConsentOut:
        ses = uow.session
        bank = await _bank(ses, req.bank_organisation_id)
        if bank is None:
            raise NotFound("bank", field="bank_organisation_id")
        lookup = select(FinanceConsent).where(
            FinanceConsent.enterprise_id == ent.id, FinanceConsent.bank_organisation_id == bank.id
        )
        consent = (await ses.execute(lookup)).scalar_one_or_none()
        if consent is None:
            consent = await ledger.insert_or_get(
                ses,
                FinanceConsent(
                    enterprise_id=ent.id,
                    enterprise_organisation_id=ent.organisation_id,
                    enterprise_name=ent.name,
                    bank_organisation_id=bank.id or 0,
                    bank_name=bank.name,
                    purpose=purpose,
                    status="active",
                    valid_until=req.valid_until,
                    granted_by=who.principal_id,
                    granted_at=now,
                ),
                lookup,
            )
        consent.status = "active"
        consent.purpose = purpose
        consent.valid_until = req.valid_until
        consent.granted_by = who.principal_id
        consent.granted_at = now
        consent.revoked_by = None
        consent.revoked_at = None
        await ses.flush()
        uow.audit(
            who.actor,
            "consent.grant",
            "finance_consent",
            str(consent.id),
            {
                "enterprise_id": ent.id,
                "bank_organisation_id": bank.id,
                "purpose": purpose,
                "valid_until": req.valid_until.isoformat() if req.valid_until else None,
            },
        )
        emit(
            ses,
            "consent.granted",
            {
                "consent_id": consent.id,
                "enterprise_id": ent.id,
                "bank_organisation_id": bank.id,
                "purpose": purpose,
                "valid_until": req.valid_until.isoformat() if req.valid_until else None,
            },
            to=(ent.organisation_id, bank.id),
            subject=f"consent:{consent.id}",
        )
        return _consent_out(consent, today)

    return await ctx.db.run(work)


async def revoke_consent(ctx: FinanceContext, who: Identity, consent_id: int) -> s.ConsentOut:
    require(who, Role.EMITTER)
    now = ctx.clock.now()
    today = business_date(now)

    async def work(uow: UnitOfWork) -> s.ConsentOut:
        ses = uow.session
        consent = await ses.get(FinanceConsent, consent_id)
        if consent is None or consent.enterprise_organisation_id != who.organisation_id:
            raise NotFound("consent")
        result = await ses.execute(
            update(FinanceConsent)
            .where(FinanceConsent.id == consent_id, FinanceConsent.status == "active")
            .values(status="revoked", revoked_by=who.principal_id, revoked_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            raise Conflict(
                "invalid-state",
                "This consent is already revoked; grant it again to restore it.",
                extra={"current_state": "revoked"},
            )
        await ses.refresh(consent)
        uow.audit(
            who.actor,
            "consent.revoke",
            "finance_consent",
            str(consent.id),
            {"enterprise_id": consent.enterprise_id, "bank_organisation_id": consent.bank_organisation_id},
        )
        emit(
            ses,
            "consent.revoked",
            {
                "consent_id": consent.id,
                "enterprise_id": consent.enterprise_id,
                "bank_organisation_id": consent.bank_organisation_id,
                "revoked_at": now.isoformat(),
            },
            to=(consent.enterprise_organisation_id, consent.bank_organisation_id),
            subject=f"consent:{consent.id}",
        )
        return _consent_out(consent, today)

    return await ctx.db.run(work)


async def list_consents(ctx: FinanceContext, who: Identity) -> list[s.ConsentOut]:
    today = ctx.today()

    async def work(uow: UnitOfWork) -> list[s.ConsentOut]:
        q = select(FinanceConsent)
        if who.role == Role.EMITTER:
            q = q.where(FinanceConsent.enterprise_organisation_id == who.organisation_id)
        elif who.role == Role.BANK:
            q = q.where(FinanceConsent.bank_organisation_id == who.organisation_id)
        rows = (await uow.session.execute(q.order_by(FinanceConsent.id))).scalars()
        return [_consent_out(c, today) for c in rows]

    return await ctx.db.read(work)
