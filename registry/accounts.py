"""Registry accounts: the operator's system accounts (created once, by `bootstrap`), opening a holding or an
authority's allocation account, reading one, and an account's trusted list (a trusted account receives transfers
without a second approval, once the working-day delay after it was added has passed).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from core.clock import business_date, shanghai_time
from core.db import UnitOfWork
from core.errors import AppError, Forbidden, InvalidInput, NotFound
from core.identity import AUTHORITY_ROLES, Identity, create_organisation
from core.models import Organisation
from core.text import clean_text
from core.workdays import add_working_days
from registry import schemas as s
from registry._common import account_out
from registry.context import RegistryContext
from registry.domain import checks
from registry.models import Enterprise, RegistryAccount, TrustedAccount
from registry.queries import own_account, visible_account

SYSTEM_ORG = "registry-operator"


async def bootstrap(ctx: RegistryContext) -> None:
    """Create the registry operator and its system accounts once (idempotent)."""

    async def work(uow: UnitOfWork) -> None:
        ses = uow.session
        org = (await ses.execute(select(Organisation).where(Organisation.kind == "system"))).scalar_one_or_none()
        if org is None:
            org = await create_organisation(ses, SYSTEM_ORG, "system", ctx.clock.now())
        have = set(
            (await ses.execute(select(RegistryAccount.type).where(RegistryAccount.organisation_id == org.id))).scalars()
        )
        for t in checks.SYSTEM_ACCOUNT_TYPES:
            if t not in have:
                ses.add(
                    RegistryAccount(organisation_id=org.id, type=t, status="open", label=t, created_at=ctx.clock.now())
                )
        await ses.flush()

    await ctx.db.run(work)


async def open_account(ctx: RegistryContext, who: Identity, req: s.OpenAccount) -> s.AccountOut:
    label = clean_text(req.label, "label", max_len=200, required=False)

    async def work(uow: UnitOfWork) -> s.AccountOut:
        ses = uow.session
        if req.type == checks.ALLOCATION:
            if who.role not in AUTHORITY_ROLES:
                raise Forbidden("Only an issuing authority opens an allocation account, for itself.")
            org_id = who.organisation_id
        else:
            if req.enterprise_id is None:
                raise InvalidInput("enterprise_id", "Name the enterprise that will hold the account.")
            ent = await ses.get(Enterprise, req.enterprise_id)
            if ent is None:
                raise NotFound("enterprise", field="enterprise_id")
            org_id = ent.organisation_id
        acc = RegistryAccount(
            organisation_id=org_id, type=req.type, status="open", label=label, created_at=ctx.clock.now()
        )
        ses.add(acc)
        await ses.flush()
        uow.audit(who.actor, "account.open", "account", str(acc.id), {"type": req.type, "organisation": org_id})
        return account_out(acc)

    return await ctx.db.run(work)


async def get_account(ctx: RegistryContext, who: Identity, account_id: int) -> s.AccountOut:
    async def work(uow: UnitOfWork) -> s.AccountOut:
        return account_out(await visible_account(uow.session, who, account_id))

    return await ctx.db.read(work)


async def add_trusted(ctx: RegistryContext, who: Identity, account_id: int, req: s.TrustAccount) -> dict[str, Any]:
    async def work(uow: UnitOfWork) -> dict[str, Any]:
        ses = uow.session
        acc = await own_account(ses, who, account_id, "account_id")
        other = await ses.get(RegistryAccount, req.trusted_account_id)
        if other is None or other.type not in checks.USER_ACCOUNT_TYPES:
            raise AppError("unknown-account", "No such account.", field="trusted_account_id")
        if other.id == acc.id:
            raise AppError("accounts-must-differ", "An account need not trust itself.", field="trusted_account_id")
        now = ctx.clock.now()
        delay = int(ctx.params.value("trusted_list_delay_working_days", business_date(now)))
        effective = shanghai_time(add_working_days(business_date(now), delay))
        exists = (
            await ses.execute(
                select(TrustedAccount).where(
                    TrustedAccount.account_id == acc.id, TrustedAccount.trusted_account_id == other.id
                )
            )
        ).scalar_one_or_none()
        if exists is None:
            exists = TrustedAccount(
                account_id=acc.id or 0,
                trusted_account_id=other.id or 0,
                effective_from=effective,
                added_by=who.principal_id,
            )
            ses.add(exists)
            await ses.flush()
            uow.audit(
                who.actor,
                "account.trust",
                "account",
                str(acc.id),
                {"trusted": other.id, "effective_from": effective.isoformat()},
            )
        return {"account_id": acc.id, "trusted_account_id": other.id, "effective_from": exists.effective_from}

    return await ctx.db.run(work)
