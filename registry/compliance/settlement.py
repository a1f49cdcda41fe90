"""Settlement at the deadline: every obligation of a period gets its status (A compliant, B shortfall, C not
reported), shortfall, fine, deduction from the next allocation and forced surrender from the reserve, one batch
per transaction with each result under its unique key, so a second, concurrent or resumed run settles none twice;
a dry run computes the same results without writing anything.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import Any

from sqlalchemy import exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from core import figures
from core.clock import business_date
from core.db import UnitOfWork
from core.errors import Conflict
from core.events import emit
from core.identity import Identity
from registry.compliance import schemas as s
from registry.compliance._common import SYSTEM_ACTOR, dump_json, param
from registry.compliance.context import ComplianceContext
from registry.compliance.models import (
    AllocationDeduction,
    CompliancePeriod,
    Obligation,
    SettlementResultRow,
    SettlementRun,
)
from registry.compliance.queries import load_period_by_code
from registry.compliance.settlement_inputs import (
    SettleContext,
    load_facts,
    params_to_json,
    reserve_holdings,
    settle_context,
)
from registry.domain.settlement import SettlementParams, SettlementResult, Status, settle
from registry.models import Enterprise, RegistryTransaction

RESULTS_IN_ANSWER_MAX = 1000
FAULT_ENV = "GREENRIGHTS_FAULT"


def fault_point(name: str) -> None:
    """A named crash point for the crash tests (reliability.md, "Crash"): `GREENRIGHTS_FAULT=<name>` makes the
    process stop here (`<name>` blocks so a test can kill it; `exit:<name>` exits at once without cleanup)."""
    fault = os.environ.get(FAULT_ENV, "")
    if fault == name:
        # Blocking on purpose: the whole process must stand still, committed work behind it, until killed.
        time.sleep(float(os.environ.get("GREENRIGHTS_FAULT_SLEEP_S", "3600")))
    elif fault == f"exit:{name}":
        os._exit(70)


async def settle_period_by_code(ctx: ComplianceContext, code: str, **kw: Any) -> s.SettlementOut:
    async def find(uow: UnitOfWork) -> int:
        period, _ = await load_period_by_code(uow.session, code)
        return period.id or 0

    return await settle_period(ctx, await ctx.db.read(find), **kw)


async def settle_period(
    ctx: ComplianceContext,
    period_id: int,
    *,
    dry_run: bool = False,
    who: Identity | None = None,
    market_price_fen: int | None = None,
    market_price_source: str = "",
) -> s.SettlementOut:
    """Settle every obligation of a period: one batch per transaction, each result stored under its unique
    key, so a second run, a concurrent run or a resumed run never settles one twice. `dry_run` computes and
    reports the same results without writing anything. `who` is the authority calling through the API;
    None is the scheduler."""
    actor = who.actor if who is not None else SYSTEM_ACTOR
    sctx, run = await ctx.db.read(settle_context, ctx, period_id, market_price_fen, market_price_source, who)
    if sctx.period.status == "settled":
        return await _summary(ctx, sctx, run, dry_run=dry_run, status="already_settled", settled_now=0, batches=0)
    if dry_run:
        return await _dry_run(ctx, sctx)
    if ctx.clock.now() < sctx.close:
        # Surrenders are still accepted (server clock); settling now would miss them.
        raise Conflict(
            "invalid-state",
            f"Period {sctx.period.code} accepts surrenders until {sctx.close.isoformat()}; settle after that "
            "(a dry run is possible at any time).",
            field="period_id",
        )
    if run is None:
        run = await _start_run(ctx, sctx, actor)
    batch = ctx.batch_size or int(param(ctx, "settlement_batch_size"))
    settled_now = batches = conflicts = 0
    # A keyset cursor over obligation ids keeps every batch's query the same size, so the job stays linear
    # in the number of obligations; a resumed run starts from 0 and skips the settled ones once.
    after_id = 0
    while True:
        try:
            n, after_id = await ctx.db.run(_settle_batch, ctx, sctx, run.id or 0, batch, actor, after_id)
        except IntegrityError:
            # Another settler stored some of these results first; take the batch again without them.
            conflicts += 1
            if conflicts > 20:
                raise
            continue
        if n == 0:
            break
        settled_now += n
        batches += 1
        fault_point("settlement-after-batch")
    await ctx.db.run(_finish_run, ctx, sctx, run.id or 0, actor)
    sctx.period.status = "settled"
    return await _summary(ctx, sctx, run, dry_run=False, status="settled", settled_now=settled_now, batches=batches)


async def _start_run(ctx: ComplianceContext, sctx: SettleContext, actor: str) -> SettlementRun:
    async def work(uow: UnitOfWork) -> SettlementRun:
        ses = uow.session
        existing = (
            await ses.execute(select(SettlementRun).where(SettlementRun.period_id == sctx.period.id))
        ).scalar_one_or_none()
        if existing is not None:
            return existing
        run = SettlementRun(
            period_id=sctx.period.id or 0,
            status="running",
            params=dump_json(params_to_json(sctx.params, sctx.k)),
            reference_price_fen=sctx.price_fen,
            price_source=sctx.price_source[:200],
            actor=actor[:64],
            started_at=ctx.clock.now(),
        )
        ses.add(run)
        await ses.execute(
            update(CompliancePeriod)
            .where(CompliancePeriod.id == sctx.period.id, CompliancePeriod.status == "open")
            .values(status="settling")
        )
        await ses.flush()
        uow.audit(
            actor,
            "compliance.settlement.start",
            "compliance_period",
            str(sctx.period.id),
            {"period": sctx.period.code, "price_fen": sctx.price_fen, "price_source": sctx.price_source, "k": sctx.k},
        )
        return run

    try:
        return await ctx.db.run(work)
    except IntegrityError:

        async def again(uow: UnitOfWork) -> SettlementRun:
            return (
                await uow.session.execute(select(SettlementRun).where(SettlementRun.period_id == sctx.period.id))
            ).scalar_one()

        return await ctx.db.read(again)


async def _finish_run(uow: UnitOfWork, ctx: ComplianceContext, sctx: SettleContext, run_id: int, actor: str) -> None:
    ses = uow.session
    now = ctx.clock.now()
    done = await ses.execute(
        update(SettlementRun)
        .where(SettlementRun.id == run_id, SettlementRun.status == "running")
        .values(status="done", finished_at=now)
    )
    await ses.execute(
        update(CompliancePeriod)
        .where(CompliancePeriod.id == sctx.period.id, CompliancePeriod.status != "settled")
        .values(status="settled", settled_at=now)
    )
    if done.rowcount == 1:
        count = (
            await ses.execute(
                select(func.count())
                .select_from(SettlementResultRow)
                .where(SettlementResultRow.period_id == sctx.period.id)
            )
        ).scalar_one()
        uow.audit(
            actor,
            "compliance.period.settled",
            "compliance_period",
            str(sctx.period.id),
            {"period": sctx.period.code, "results": count},
        )


async def _settle_batch(
    uow: UnitOfWork, ctx: ComplianceContext, sctx: SettleContext, run_id: int, limit: int, actor: str, after_id: int
) -> tuple[int, int]:
    """Settle up to `limit` unsettled obligations with ids above `after_id`; (how many, the last id)."""
    ses = uow.session
    obs = (
        (
            await ses.execute(
                select(Obligation)
                .where(
                    Obligation.period_id == sctx.period.id,
                    Obligation.id > after_id,  # type: ignore[operator]
                    # By obligation only (an obligation has one period), so the lookup uses its own index
                    # rather than scanning the period's results.
                    ~exists().where(SettlementResultRow.obligation_id == Obligation.id),
                )
                .order_by(Obligation.id)
                .limit(limit)
            )
        )
        .scalars()
        .all()
    )
    if not obs:
        return 0, after_id
    reserve = await reserve_holdings(ctx, ses, sctx) if sctx.scheme.kind == "carbon" else []
    params = sctx.params
    if sctx.scheme.kind == "carbon":
        params = SettlementParams(
            carbon=params.carbon,
            reserve_available=sum(a for _, _, a in reserve),
            not_reported_fine_fen=params.not_reported_fine_fen,
        )
    facts, _, extra = await load_facts(ctx, ses, sctx, obs)
    results = settle(facts, params, sctx.deadline)
    now = ctx.clock.now()
    today = business_date(now)
    due_days = int(param(ctx, "fine_payment_days", today))
    reserve_left = [[inst, acc_, avail] for inst, acc_, avail in reserve]
    result_rows: list[dict[str, Any]] = []
    deduction_rows: list[dict[str, Any]] = []
    audit_items: list[list[Any]] = []
    surrender_target = await ctx.registry._system_account(ses, "surrender") if reserve else None
    for ob, r in zip(obs, results, strict=True):
        forced_txs = []
        if r.forced_quantity > 0:
            assert surrender_target is not None
            need = r.forced_quantity
            for item in reserve_left:
                inst, source, avail = item
                take = min(avail, need)
                if take <= 0:
                    continue
                tx = await ctx.registry.record_and_move(
                    ses,
                    RegistryTransaction(
                        code="forced_surrender",
                        instrument_id=inst.id or 0,
                        from_account_id=source.id,
                        to_account_id=surrender_target.id,
                        quantity=take,
                        initiated_by=0,
                        initiator_organisation_id=source.organisation_id,
                        request_key=f"compliance:forced:{ob.id}:{inst.id}",
                        period=sctx.period.code,
                        details=dump_json({"enterprise_id": ob.enterprise_id, "obligation_id": ob.id}),
                        created_at=now,
                    ),
                    inst,
                    source,
                    surrender_target,
                    now,
                )
                forced_txs.append(tx.id)
                item[2] = avail - take
                need -= take
                if need == 0:
                    break
            assert need == 0, "the reserve given to settle() is what the ledger holds"
        detail = extra.get(ob.id or 0, {})
        if forced_txs:
            detail = {**detail, "forced_transactions": forced_txs}
        # Plain rows for one multi-row INSERT per batch: building ORM objects costs more than the settlement.
        result_rows.append(
            {
                "period_id": sctx.period.id or 0,
                "enterprise_id": ob.enterprise_id,
                "obligation_id": ob.id or 0,
                "run_id": run_id,
                "kind": sctx.scheme.kind,
                "pollutant": ob.pollutant,
                "city": r.city[:8],
                "industry": r.industry[:8],
                "status": r.status.value,
                "timeliness": r.timeliness.value,
                "report_late": bool(detail.get("report_late")),
                "obligation": r.obligation,
                "surrendered_on_time": r.surrendered_on_time,
                "surrendered_late": r.surrendered_late,
                "forced_quantity": r.forced_quantity,
                "surrendered": r.surrendered,
                "excess": r.excess,
                "shortfall_at_deadline": r.shortfall_at_deadline,
                "shortfall": r.shortfall,
                "fine_fen": r.fine_fen,
                "fine_formula": r.fine_formula[:200],
                "next_allocation_deduction": r.next_allocation_deduction,
                "reserve_repayment": r.reserve_repayment,
                "citation": r.citation[:200],
                "detail": dump_json(detail),
                "fine_due_on": today + dt.timedelta(days=due_days) if r.fine_fen > 0 else None,
                "settled_at": now,
            }
        )
        owed = r.next_allocation_deduction + r.reserve_repayment
        if owed > 0:
            deduction_rows.append(
                {
                    "scheme_id": sctx.scheme.id or 0,
                    "source_period_id": sctx.period.id or 0,
                    "enterprise_id": ob.enterprise_id,
                    "pollutant": ob.pollutant,
                    "reason": "settlement",
                    "shortfall_quantity": r.next_allocation_deduction,
                    "reserve_quantity": r.reserve_repayment,
                    "quantity": owed,
                    "applied": 0,
                    "created_at": now,
                }
            )
        audit_items.append([ob.id, ob.enterprise_id, r.status.value, r.shortfall, r.fine_fen, r.forced_quantity])
    # One audit entry per batch, listing every obligation it settled ([obligation, enterprise, status,
    # shortfall, fine_fen, forced]): the same facts as one entry each, without 100,000 chain rows to append.
    uow.audit(
        actor,
        "compliance.settle",
        "compliance_period",
        str(sctx.period.id),
        {"period": sctx.period.code, "results": audit_items},
    )
    found = await ses.execute(
        select(Enterprise.id, Enterprise.organisation_id).where(
            Enterprise.id.in_({r["enterprise_id"] for r in result_rows})  # type: ignore[union-attr]
        )
    )
    orgs = {enterprise_id: org_id for enterprise_id, org_id in found.all()}
    for row in result_rows:
        emit(
            ses,
            "settlement.result",
            {
                "period_id": row["period_id"],
                "enterprise_id": row["enterprise_id"],
                "grade": row["status"],
                "shortfall_base": row["shortfall"],
                "fine_fen": row["fine_fen"],
                "fine_due_on": row["fine_due_on"].isoformat() if row["fine_due_on"] else None,
                "deduction_next_period_base": row["next_allocation_deduction"],
            },
            to=(orgs.get(row["enterprise_id"]),),
            subject=f"obligation:{row['obligation_id']}",
        )
    await ses.flush()
    await ses.execute(insert(SettlementResultRow.__table__), result_rows)  # type: ignore[attr-defined]
    if deduction_rows:
        await ses.execute(insert(AllocationDeduction.__table__), deduction_rows)  # type: ignore[attr-defined]
    await ses.execute(
        update(SettlementRun)
        .where(SettlementRun.id == run_id)
        .values(settled_count=SettlementRun.settled_count + len(obs), batches=SettlementRun.batches + 1)
    )
    return len(obs), obs[-1].id or 0


async def _dry_run(ctx: ComplianceContext, sctx: SettleContext) -> s.SettlementOut:
    batch = ctx.batch_size or int(param(ctx, "settlement_batch_size"))

    async def work(uow: UnitOfWork) -> list[tuple[Obligation, SettlementResult, Enterprise, dict[str, Any]]]:
        ses = uow.session
        out: list[tuple[Obligation, SettlementResult, Enterprise, dict[str, Any]]] = []
        reserve_left = (
            sum(a for _, _, a in await reserve_holdings(ctx, ses, sctx)) if sctx.scheme.kind == "carbon" else None
        )
        after = 0
        while True:
            obs = (
                (
                    await ses.execute(
                        select(Obligation)
                        .where(Obligation.period_id == sctx.period.id, Obligation.id > after)  # type: ignore[operator]
                        .order_by(Obligation.id)
                        .limit(batch)
                    )
                )
                .scalars()
                .all()
            )
            if not obs:
                return out
            params = sctx.params
            if reserve_left is not None:
                params = SettlementParams(
                    carbon=params.carbon,
                    reserve_available=reserve_left,
                    not_reported_fine_fen=params.not_reported_fine_fen,
                )
            facts, ents, extra = await load_facts(ctx, ses, sctx, obs)
            results = settle(facts, params, sctx.deadline)
            if reserve_left is not None:
                reserve_left -= sum(r.forced_quantity for r in results)
            out += [(o, r, ents[o.enterprise_id], extra.get(o.id or 0, {})) for o, r in zip(obs, results, strict=True)]
            after = obs[-1].id or 0

    rows = await ctx.db.read(work)
    results = [r for _, r, _, _ in rows]
    out = [_result_out_from(o, r, e, d, sctx.scheme.kind) for o, r, e, d in rows[:RESULTS_IN_ANSWER_MAX]]
    return s.SettlementOut(
        period_id=sctx.period.id or 0,
        period_code=sctx.period.code,
        dry_run=True,
        status="dry_run",
        reference_price_fen=sctx.price_fen,
        price_source=sctx.price_source,
        multiplier_k=sctx.k,
        obligations=len(rows),
        settled_now=0,
        batches=0,
        compliant=sum(r.status is Status.COMPLIANT for r in results),
        shortfall_count=sum(r.status is Status.SHORTFALL for r in results),
        not_reported=sum(r.status is Status.NOT_REPORTED for r in results),
        total_shortfall=sum(r.shortfall for r in results),
        total_fine_fen=sum(r.fine_fen for r in results),
        total_forced=sum(r.forced_quantity for r in results),
        results=out,
    )


async def _summary(
    ctx: ComplianceContext,
    sctx: SettleContext,
    run: SettlementRun | None,
    *,
    dry_run: bool,
    status: str,
    settled_now: int,
    batches: int,
) -> s.SettlementOut:
    async def work(uow: UnitOfWork) -> tuple[Any, SettlementRun | None]:
        ses = uow.session
        agg = (
            await ses.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(SettlementResultRow.shortfall), 0),
                    func.coalesce(func.sum(SettlementResultRow.fine_fen), 0),
                    func.coalesce(func.sum(SettlementResultRow.forced_quantity), 0),
                ).where(SettlementResultRow.period_id == sctx.period.id)
            )
        ).one()
        by_status: dict[str, int] = dict(
            (
                await ses.execute(
                    select(SettlementResultRow.status, func.count())
                    .where(SettlementResultRow.period_id == sctx.period.id)
                    .group_by(SettlementResultRow.status)
                )
            ).all()
        )
        stored = (
            await ses.execute(select(SettlementRun).where(SettlementRun.period_id == sctx.period.id))
        ).scalar_one_or_none()
        return (agg, by_status), stored

    (agg, by_status), stored = await ctx.db.read(work)
    run = stored or run
    return s.SettlementOut(
        period_id=sctx.period.id or 0,
        period_code=sctx.period.code,
        dry_run=dry_run,
        status=status,
        reference_price_fen=run.reference_price_fen if run else sctx.price_fen,
        price_source=run.price_source if run else sctx.price_source,
        multiplier_k=sctx.k,
        obligations=int(agg[0]),
        settled_now=settled_now,
        batches=batches,
        compliant=int(by_status.get("A", 0)),
        shortfall_count=int(by_status.get("B", 0)),
        not_reported=int(by_status.get("C", 0)),
        total_shortfall=int(agg[1]),
        total_fine_fen=int(agg[2]),
        total_forced=int(agg[3]),
        results=[],
    )


def _result_out_from(
    o: Obligation, r: SettlementResult, e: Enterprise, detail: dict[str, Any], kind: str
) -> s.SettlementResultOut:
    return s.SettlementResultOut(
        obligation_id=o.id or 0,
        enterprise_id=o.enterprise_id,
        enterprise_name=e.name,
        uscc=e.uscc,
        city=r.city,
        industry=r.industry,
        kind=kind,
        pollutant=o.pollutant or None,
        status=r.status.value,
        timeliness=r.timeliness.value,
        report_late=bool(detail.get("report_late")),
        obligation=r.obligation,
        surrendered_on_time=r.surrendered_on_time,
        surrendered_late=r.surrendered_late,
        forced_quantity=r.forced_quantity,
        surrendered=r.surrendered,
        excess=r.excess,
        shortfall_at_deadline=r.shortfall_at_deadline,
        shortfall=r.shortfall,
        fine_fen=r.fine_fen,
        fine_yuan=figures.yuan_plain(r.fine_fen),
        fine_formula=r.fine_formula,
        next_allocation_deduction=r.next_allocation_deduction,
        reserve_repayment=r.reserve_repayment,
        citation=r.citation,
        detail=detail,
        fine_due_on=None,
    )
