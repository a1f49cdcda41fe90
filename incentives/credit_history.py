"""The equipment-credit carry-forward history of each enterprise (专用设备投资额抵免, 财税〔2008〕48号 第四条).

An equipment_credit determination states the enterprise's whole credit position for its tax year: the unused
credit it carries into the next year, by age (`carry_next_age{k}_fen`). Finance staff approve such a stored
determination as the year's position (`approveCreditPosition`; never the person who evaluated it). The next
year's evaluation of that enterprise then fills the brought-forward credits (`credit_carry_age{k}_fen`) itself
from the position of the tax year just before, so nobody types them again. The caller may still give other
figures, only with a reason (`override_reason`); the answer shows both and the stored evaluation keeps them.

Only the year immediately before counts: a position two or more years old says nothing about the credit used
in between, so it is not aged forward by guesswork; the caller's figures (or none) stand.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from core import figures
from core.db import UnitOfWork
from core.errors import AppError, Conflict, InvalidInput, NotFound
from core.identity import Identity, Role
from incentives import schemas as s
from incentives._common import READ_ANY
from incentives.context import IncentivesContext
from incentives.domain.programmes import equipment
from incentives.models import IncentiveCreditPosition, IncentiveDetermination

APPROVERS = frozenset({Role.FINANCE_REVIEWER, Role.FINANCE_APPROVER})
AGES = range(1, equipment.MAX_AGES + 1)
SOURCE = "incentives.credit_history"


def _carry(row: IncentiveCreditPosition) -> dict[int, int]:
    return {age: int(getattr(row, f"carry_age{age}_fen")) for age in AGES}


def position_out(row: IncentiveCreditPosition, superseded: bool = False) -> s.CreditPositionOut:
    assert row.id is not None
    carry = _carry(row)
    return s.CreditPositionOut(
        id=row.id, enterprise_id=row.enterprise_id, tax_year=row.tax_year, determination_id=row.determination_id,
        carry_forward=[s.CarryOut(age=age, fen=fen, yuan=figures.yuan_plain(fen)) for age, fen in carry.items()],
        carry_forward_total_fen=sum(carry.values()), note=row.note, approved_by=f"principal:{row.approved_by}",
        approved_role=row.approved_role, approved_at=row.approved_at, superseded=superseded)


async def approve_credit_position(ctx: IncentivesContext, who: Identity, determination_id: int,
                                  req: s.ApproveCreditPosition) -> s.CreditPositionOut:
    """Make a stored equipment_credit determination its enterprise's credit position for the tax year it was
    evaluated for; a later approval for the same enterprise-year supersedes this one."""
    if who.role not in APPROVERS:
        raise AppError("forbidden", "Only finance staff approve an enterprise's credit position.")

    async def work(uow: UnitOfWork) -> IncentiveCreditPosition:
        d = await uow.session.get(IncentiveDetermination, determination_id)
        if d is None:
            raise NotFound("determination")
        if d.programme != equipment.CODE:
            raise InvalidInput("determination_id", f"Determination {determination_id} is of {d.programme}; only "
                               f"an {equipment.CODE} determination holds a credit position.")
        if d.enterprise_id is None:
            raise InvalidInput("determination_id", "The determination was made without an enterprise_id, so it "
                               "belongs to no enterprise's credit history.")
        if d.created_by == who.principal_id:
            raise AppError("four-eyes-required", "You made this determination; another person approves it.")
        taken = (await uow.session.execute(select(IncentiveCreditPosition.id).where(
            IncentiveCreditPosition.determination_id == determination_id))).first()  # type: ignore[arg-type]
        if taken is not None:
            raise Conflict("duplicate", f"Determination {determination_id} is already an approved credit position.")
        outputs: dict[str, Any] = json.loads(d.outputs_json)
        row = IncentiveCreditPosition(
            enterprise_id=d.enterprise_id, enterprise_organisation_id=d.enterprise_organisation_id,
            tax_year=d.evaluated_on.year, determination_id=determination_id, note=req.note,
            approved_by=who.principal_id, approved_role=who.role.value, approved_at=ctx.clock.now(),
            **{f"carry_age{age}_fen": int(outputs[f"carry_next_age{age}_fen"]) for age in AGES},
        )
        uow.session.add(row)
        await uow.session.flush()
        assert row.id is not None
        uow.audit(who.actor, "incentives.approve_credit_position", "incentives_credit_position", str(row.id), {
            "enterprise_id": row.enterprise_id, "tax_year": row.tax_year, "determination_id": determination_id,
            "carry_forward_fen": _carry(row), "note": req.note,
        })
        return row

    return position_out(await ctx.db.run(work))


async def list_credit_positions(ctx: IncentivesContext, who: Identity, enterprise_id: int) -> list[s.CreditPositionOut]:
    """Every approved position of one enterprise, newest tax year first; `superseded` marks the older approvals
    of a year. An emitter sees its own enterprise only (another's answers 404)."""
    if who.role not in READ_ANY and who.role != Role.EMITTER:
        raise AppError("forbidden", "Your role may not read credit positions.")
    await ctx.registry.get_enterprise(who, enterprise_id)  # scopes: 404 for an enterprise not visible

    async def work(uow: UnitOfWork) -> list[IncentiveCreditPosition]:
        q = (select(IncentiveCreditPosition).where(IncentiveCreditPosition.enterprise_id == enterprise_id)  # type: ignore[arg-type]
             .order_by(IncentiveCreditPosition.tax_year.desc(), IncentiveCreditPosition.id.desc()))  # type: ignore[attr-defined,union-attr]
        return list((await uow.session.execute(q)).scalars())

    rows = await ctx.db.read(work)
    seen: set[int] = set()
    out = []
    for row in rows:
        out.append(position_out(row, superseded=row.tax_year in seen))
        seen.add(row.tax_year)
    return out


async def position_before(ctx: IncentivesContext, enterprise_id: int, tax_year: int) -> IncentiveCreditPosition | None:
    """The approved position of the tax year before `tax_year` (the newest approval of that year), or None."""

    async def work(uow: UnitOfWork) -> IncentiveCreditPosition | None:
        q = (select(IncentiveCreditPosition)
             .where(IncentiveCreditPosition.enterprise_id == enterprise_id,  # type: ignore[arg-type]
                    IncentiveCreditPosition.tax_year == tax_year - 1)  # type: ignore[arg-type]
             .order_by(IncentiveCreditPosition.id.desc()).limit(1))  # type: ignore[union-attr]
        return (await uow.session.execute(q)).scalar_one_or_none()

    return await ctx.db.read(work)


def fill_carry_forward(position: IncentiveCreditPosition, facts: dict[str, object],
                       override_reason: str) -> list[s.RegistryFact]:
    """Put the approved brought-forward credits into `facts` (in place), unless the caller gave other figures
    with a reason; figures that differ without a reason are refused (422 naming the fact)."""
    carry = _carry(position)
    differing = [(f"credit_carry_age{age}_fen", fen) for age, fen in carry.items()
                 if facts.get(f"credit_carry_age{age}_fen") is not None
                 and facts[f"credit_carry_age{age}_fen"] != fen]
    reason = override_reason.strip()
    if differing and not reason:
        name, fen = differing[0]
        raise AppError(
            "invalid-input",
            f"{name} differs from the approved credit position of {position.tax_year} ({figures.yuan(fen)} yuan, "
            f"determination {position.determination_id}); leave it out to use the approved figure, or give "
            "override_reason to use yours.",
            field=f"facts.{name}",
            extra={"problems": [{"field": f"facts.{n}", "message": f"differs from the approved {figures.yuan(v)} yuan"}
                                for n, v in differing]},
        )
    out: list[s.RegistryFact] = []
    for age, fen in carry.items():
        name = f"credit_carry_age{age}_fen"
        caller = facts.get(name)
        if not differing:
            facts[name] = fen
        out.append(s.RegistryFact(
            fact=name, value=fen, source=f"{SOURCE}:{position.tax_year}#{position.determination_id}",
            caller_value=caller if caller is not None and caller != fen else None,
            override_reason=reason if differing else None))
    return out


def carry_given(facts: Mapping[str, object]) -> bool:
    return any(facts.get(f"credit_carry_age{age}_fen") is not None for age in AGES)
