"""Enterprises: registering one by its unified social credit code (GB 32100-2015) in a Jiangxi city with its
GB/T 4754-2017 industry, and reading one (its own organisation, the authorities and the finance desk see it).
"""

from __future__ import annotations

import re

from sqlalchemy import select
from stdnum.cn import uscc as uscc_std
from stdnum.exceptions import ValidationError as StdnumError

from core.db import UnitOfWork
from core.errors import Conflict, InvalidInput, NotFound
from core.identity import Identity, Role, create_organisation
from core.text import clean_text
from registry import schemas as s
from registry._common import account_out, enterprise_out
from registry.context import RegistryContext
from registry.models import Enterprise, RegistryAccount

JIANGXI_CITIES = ("南昌", "九江", "景德镇", "萍乡", "新余", "鹰潭", "赣州", "吉安", "宜春", "抚州", "上饶")


def validate_uscc(value: str) -> str:
    # stdnum would tidy up spaces, dashes and full-width digits; a registry takes the code exactly as printed.
    if not re.fullmatch(r"[0-9A-HJ-NPQRTUWXY]{18}", value, re.ASCII):
        raise InvalidInput(
            "uscc", "Give the 18-character code in upper case ASCII without spaces (letters I, O, S, V, Z never occur)."
        )
    try:
        return str(uscc_std.validate(value))
    except StdnumError as exc:
        raise InvalidInput("uscc", f"Not a valid unified social credit code (GB 32100-2015): {exc}.") from exc


async def create_enterprise(ctx: RegistryContext, who: Identity, req: s.CreateEnterprise) -> s.EnterpriseOut:
    code = validate_uscc(req.uscc)
    name = clean_text(req.name, "name", max_len=200)
    if req.city not in JIANGXI_CITIES:
        raise InvalidInput("city", f"Give one of Jiangxi's cities: {' '.join(JIANGXI_CITIES)}.")
    if not re.fullmatch(r"[A-T](?:[0-9]{2,4})?", req.industry_code, re.ASCII):
        raise InvalidInput(
            "industry_code", "Give a GB/T 4754-2017 code: a section letter and 2 to 4 digits, e.g. C3011."
        )

    async def work(uow: UnitOfWork) -> s.EnterpriseOut:
        ses = uow.session
        if (await ses.execute(select(Enterprise.id).where(Enterprise.uscc == code))).first():
            raise Conflict("duplicate", f"An enterprise with code {code} exists.", field="uscc")
        now = ctx.clock.now()
        org = await create_organisation(ses, name, "enterprise", now)
        ent = Enterprise(
            organisation_id=org.id,
            uscc=code,
            name=name,
            city=req.city,
            industry_code=req.industry_code,
            is_key_emitter=req.is_key_emitter,
            is_sme=req.is_sme,
            is_high_tech=req.is_high_tech,
            created_at=now,
        )
        ses.add(ent)
        await ses.flush()
        uow.audit(who.actor, "enterprise.create", "enterprise", str(ent.id), {"uscc": code, "name": name})
        return enterprise_out(ent)

    return await ctx.db.run(work)


async def get_enterprise(ctx: RegistryContext, who: Identity, enterprise_id: int) -> s.EnterpriseOut:
    async def work(uow: UnitOfWork) -> s.EnterpriseOut:
        ent = await uow.session.get(Enterprise, enterprise_id)
        if ent is None or not (
            who.reads_all()
            or who.role in (Role.FINANCE_REVIEWER, Role.FINANCE_APPROVER)
            or ent.organisation_id == who.organisation_id
        ):
            raise NotFound("enterprise")
        return enterprise_out(ent)

    return await ctx.db.read(work)


async def enterprise_by_uscc(ctx: RegistryContext, code: str) -> Enterprise | None:
    async def work(uow: UnitOfWork) -> Enterprise | None:
        return (await uow.session.execute(select(Enterprise).where(Enterprise.uscc == code))).scalar_one_or_none()

    return await ctx.db.read(work)


async def own_enterprise(ctx: RegistryContext, who: Identity) -> tuple[s.EnterpriseOut | None, list[s.AccountOut]]:
    """The caller's own enterprise (the one its organisation is) and that organisation's accounts, oldest first."""

    async def work(uow: UnitOfWork) -> tuple[s.EnterpriseOut | None, list[s.AccountOut]]:
        ses = uow.session
        ent = (
            await ses.execute(select(Enterprise).where(Enterprise.organisation_id == who.organisation_id))
        ).scalar_one_or_none()
        rows = await ses.execute(
            select(RegistryAccount)
            .where(RegistryAccount.organisation_id == who.organisation_id)
            .order_by(RegistryAccount.id)
        )
        return (enterprise_out(ent) if ent else None), [account_out(a) for a in rows.scalars()]

    return await ctx.db.read(work)


ENTERPRISE_SORTS = ("name", "-name", "id", "-id", "city")


async def list_enterprises(
    ctx: RegistryContext,
    who: Identity,
    *,
    name: str | None = None,
    uscc: str | None = None,
    city: str | None = None,
    industry: str | None = None,
    sort: str = "id",
    limit: int = 50,
    offset: int = 0,
) -> s.EnterprisePage:
    """Enterprises matching every filter given (`name` is a substring; `industry` a code prefix), in `sort` order
    (ENTERPRISE_SORTS; `-` descending), paged by `offset`. An emitter sees only its own enterprise."""
    if sort not in ENTERPRISE_SORTS:
        raise InvalidInput("sort", f"Sort by one of {', '.join(ENTERPRISE_SORTS)}.")

    async def work(uow: UnitOfWork) -> s.EnterprisePage:
        q = select(Enterprise)
        if not (who.reads_all() or who.role in (Role.FINANCE_REVIEWER, Role.FINANCE_APPROVER)):
            q = q.where(Enterprise.organisation_id == who.organisation_id)
        if name:
            escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            q = q.where(Enterprise.name.like(f"%{escaped}%", escape="\\"))  # type: ignore[attr-defined]
        if uscc:
            q = q.where(Enterprise.uscc == uscc.strip().upper())
        if city:
            q = q.where(Enterprise.city == city)
        if industry:
            escaped = industry.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            q = q.where(Enterprise.industry_code.like(f"{escaped}%", escape="\\"))  # type: ignore[attr-defined]
        column = {"name": Enterprise.name, "id": Enterprise.id, "city": Enterprise.city}[sort.lstrip("-")]
        order = column.desc() if sort.startswith("-") else column.asc()  # type: ignore[union-attr]
        rows = list(
            (await uow.session.execute(q.order_by(order, Enterprise.id).offset(offset).limit(limit + 1))).scalars()  # type: ignore[arg-type]
        )
        more = len(rows) > limit
        return s.EnterprisePage(
            items=[enterprise_out(e) for e in rows[:limit]], next_offset=offset + limit if more else None
        )

    return await ctx.db.read(work)


async def enterprise_accounts(ctx: RegistryContext, who: Identity, enterprise_id: int) -> list[s.AccountOut]:
    """The accounts of an enterprise the caller may see (404 otherwise, as `getEnterprise`)."""
    ent = await get_enterprise(ctx, who, enterprise_id)

    async def work(uow: UnitOfWork) -> list[s.AccountOut]:
        rows = await uow.session.execute(
            select(RegistryAccount)
            .where(RegistryAccount.organisation_id == ent.organisation_id)
            .order_by(RegistryAccount.id)
        )
        return [account_out(a) for a in rows.scalars()]

    return await ctx.db.read(work)
